//! The per-port registration table: the state machine of SPEC section 3, above any backend.
//!
//! # Ordering, by construction
//!
//! Each registration lives in a slot of a [`Slab`] (slots never move) with its own small
//! lock. Every change of a registration — ENABLE, DISABLE, REMOVE, the re-arm of a
//! persistent registration, the validation of a kernel report — happens under that lock,
//! and a change's kernel operation is applied *before* the lock is released (the backend
//! may batch the operations of many slots into one transition, but it answers them all
//! before `apply` returns). So the kernel sees each socket's changes in exactly the order
//! the registry decided them, on every backend, and nothing needs repairing afterwards.
//! A thread that finds a slot's lock taken (by another thread, or by a change of its own
//! batch) first applies the changes it holds and releases their locks, so it never waits
//! while holding one.
//!
//! # Delivery without a lock
//!
//! What validating a kernel report needs (the generation, where the registration is in
//! its life, filter, trigger, socket kind) is one atomic word per slot ([`Word`]);
//! validating a report and disarming a one-shot registration is a load and a
//! compare-exchange of it, and never waits for the slot's lock. The lock orders the
//! *changes* of a registration and their kernel operations, and each change publishes its
//! new state in the word on the side of its kernel operation that keeps delivery right
//! without the lock:
//!
//! - a change that makes the registration deliverable (ENABLE, the re-arm of a persistent
//!   registration, a new registration) publishes it *before* its kernel operation, so the
//!   report the operation provokes finds it armed; if the operation fails, the word goes
//!   back to what it was (unless a delivery fired it meanwhile, which then stands);
//! - a change that ends delivery (DISABLE, REMOVE, a detach) publishes it *after* its
//!   kernel operation: a report validated in between counts as before the change, which
//!   has not returned yet.
//!
//! Delivery only ever moves a word from armed to fired (one-shot) or pending (persistent
//! level), so every other change is the lock holder's alone.
//!
//! # Tokens
//!
//! The kernel reports readiness with a *token*, `generation << 32 | slot`, fixed when the
//! registration is created. The generation changes when a slot is freed, so a report about
//! an earlier registration in the same slot (or about a closed socket) is stale and
//! dropped. Reports of the current registration are validated against its state: only an
//! armed registration turns a report into an entry.
//!
//! # Kernel interest
//!
//! Interest is one-shot in the kernel (`sys` module docs). A one-shot registration waits
//! for ENABLE after its entry; a persistent one is re-armed when the thread that received
//! the entry calls again (the *deferred re-arm*, see `queue.rs`): a program that reads
//! until `WouldBlock` before calling again sees exactly one entry per edge, and a level
//! condition that still holds is reported again on that call.
//!
//! # Socket identity
//!
//! A socket is its kernel identity, not its descriptor (rule 6). A descriptor-indexed
//! table finds the slot of the descriptor a socket was registered through, and every
//! kernel change through that descriptor checks that it still names the same socket
//! ([`ChangeError::Gone`] otherwise). A socket named through another descriptor (a `dup`)
//! is found through the process-wide owner table (`owners.rs`) by its identity.
//!
//! When the registered descriptor no longer names the socket (it was closed), the
//! registration is *detached*: it delivers nothing more, and its slot stays findable by
//! identity, so that a REMOVE or ENABLE through a remaining duplicate works (rule 7). When a
//! new socket is registered through the same descriptor number, the old slot is freed if
//! its socket is gone (the kernel no longer has its item: `kcmp(KCMP_EPOLL_TFD)`), and
//! kept detached if a duplicate keeps it open; otherwise a detached slot goes with its
//! REMOVE or the port's close. (Where the kernel cannot tell, the old slot is freed: a
//! REMOVE through a duplicate then finds no registration.)
//!
//! # Memory per registration
//!
//! A [`Slot`] (its lock and state; `slot_size` test), 4 bytes of descriptor index, and one
//! entry of the owner table (a 16-byte key and value plus the hash map's overhead).

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};

use crate::error::Failure;
use crate::event::{CompletionEntry, Events, Trigger};
use crate::owners::{self, Owner, PortId};
use crate::registration::{Registration, Request};
use crate::slab::Slab;
use crate::sync::{AtomicU64, AtomicUsize as KeyCell, Mutex, MutexGuard};
use crate::sys::{self, Change, ChangeError, Interest, Op, RawEvent, Selector, Socket};

/// Slots are indexed below this, so no token equals a sentinel token.
const MAX_SLOTS: usize = (u32::MAX - 2) as usize;

/// Where a registration is in its life.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(u8)]
enum Arm {
    /// Not a registration.
    #[default]
    Free = 0,
    /// The kernel is armed: its next report becomes an entry.
    Armed = 1,
    /// A one-shot registration that delivered its entry; waits for ENABLE.
    Fired = 2,
    /// A persistent registration that delivered its entry; re-armed when the thread that
    /// received it calls again.
    Pending = 3,
    /// DISABLE'd; waits for ENABLE.
    Disabled = 4,
}

/// Whether a registration's socket is a datagram socket, asked only when its filter has
/// HANGUP (rule 14).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(u8)]
enum Kind {
    #[default]
    Unknown = 0,
    Stream = 1,
    Datagram = 2,
}

/// A registration's state as delivery sees it, in one atomic word: the generation (bits
/// 0-31), [`Arm`] (32-34), detached (35), parked (36), [`Kind`] (37-38), the filter
/// (40-47) and the trigger (48-55).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Word(u64);

impl Word {
    const GENERATION: u64 = u32::MAX as u64;
    const ARM: u64 = 7 << 32;
    const DETACHED: u64 = 1 << 35;
    const PARKED: u64 = 1 << 36;

    fn generation(self) -> u32 {
        self.0 as u32
    }

    fn with_generation(self, generation: u32) -> Word {
        Word(self.0 & !Word::GENERATION | u64::from(generation))
    }

    fn arm(self) -> Arm {
        match (self.0 & Word::ARM) >> 32 {
            1 => Arm::Armed,
            2 => Arm::Fired,
            3 => Arm::Pending,
            4 => Arm::Disabled,
            _ => Arm::Free,
        }
    }

    fn with_arm(self, arm: Arm) -> Word {
        Word(self.0 & !Word::ARM | (arm as u64) << 32)
    }

    fn live(self) -> bool {
        self.arm() != Arm::Free
    }

    /// The registered descriptor no longer names the socket (see the module docs).
    fn detached(self) -> bool {
        self.0 & Self::DETACHED != 0
    }

    fn with_flag(self, flag: u64, on: bool) -> Word {
        Word(if on { self.0 | flag } else { self.0 & !flag })
    }

    fn with_detached(self, detached: bool) -> Word {
        self.with_flag(Self::DETACHED, detached)
    }

    /// The kernel interest is parked (see [`Interest::parked`]).
    fn parked(self) -> bool {
        self.0 & Self::PARKED != 0
    }

    fn with_parked(self, parked: bool) -> Word {
        self.with_flag(Self::PARKED, parked)
    }

    fn kind(self) -> Kind {
        match (self.0 >> 37) & 3 {
            1 => Kind::Stream,
            2 => Kind::Datagram,
            _ => Kind::Unknown,
        }
    }

    fn with_kind(self, kind: Kind) -> Word {
        Word(self.0 & !(3 << 37) | (kind as u64) << 37)
    }

    fn filter(self) -> Events {
        Events::from_bits_retain(((self.0 >> 40) & 0xff) as u16)
    }

    fn trigger(self) -> Trigger {
        Trigger::from_bits_retain((self.0 >> 48) as u8)
    }

    fn with_interest(self, filter: Events, trigger: Trigger) -> Word {
        Word(
            self.0 & !(0xffff << 40)
                | u64::from(filter.bits() as u8) << 40
                | u64::from(trigger.bits()) << 48,
        )
    }

    fn interest(self) -> Interest {
        Interest::of(self.filter(), self.trigger())
    }

    /// What an entry of this registration may report ([`Readiness::entry_filter`]).
    ///
    /// [`Readiness::entry_filter`]: crate::sys::Readiness::entry_filter
    #[inline]
    fn entry_filter(self) -> Events {
        sys::Readiness::entry_filter(self.filter(), self.kind() == Kind::Datagram)
    }

    /// Whether a report with `generation` may become an entry: the registration's own
    /// report, armed, not detached (its kernel item may be edge-armed on a socket that a
    /// duplicate keeps open; rule 7: at most one stale entry, the one that led to the
    /// detection). One compare of the three fields.
    #[inline]
    fn deliverable(self, generation: u32) -> bool {
        const FIELDS: u64 = Word::GENERATION | Word::ARM | Word::DETACHED;
        let want = Word(u64::from(generation)).with_arm(Arm::Armed);
        self.0 & FIELDS == want.0
    }

    /// The word once an armed registration delivered its entry: a one-shot registration
    /// fired, a persistent level one pending (re-armed when the receiving thread calls
    /// again), a persistent edge one still armed (its kernel interest stays armed). By
    /// table: the trigger's one-shot and edge bits pick the arm in one load.
    #[inline]
    fn delivered(self) -> Word {
        const AFTER: [Arm; 16] = {
            let mut after = [Arm::Free; 16];
            let mut bits = 0;
            while bits < after.len() {
                after[bits] = if bits as u8 & Trigger::ONESHOT.bits() != 0 {
                    Arm::Fired
                } else if bits as u8 & Trigger::EDGE.bits() != 0 {
                    Arm::Armed
                } else {
                    Arm::Pending
                };
                bits += 1;
            }
            after
        };
        const _: () = assert!(Trigger::all().bits() < 16);
        self.with_arm(AFTER[usize::from(self.trigger().bits() % 16)])
    }

    /// Whether delivering from this (armed) word owes something at the receiving thread's
    /// next call: a persistent level registration's re-arm; a parked one-shot's disarm;
    /// and for a persistent edge registration, whose kernel interest stays armed, a check
    /// that its descriptor still names the socket, so that a registered descriptor closed
    /// while a duplicate keeps the socket open yields at most one stale entry (rule 7).
    #[inline]
    fn owes(self) -> bool {
        self.delivered().arm() != Arm::Fired || self.parked()
    }
}

/// What only the lock holder reads and writes: how the kernel knows the socket.
#[derive(Clone, Copy, Debug, Default)]
struct State {
    fd: Socket,
    identity: u64,
}

/// One registration's slot.
#[derive(Debug, Default)]
pub(crate) struct Slot {
    /// Written by delivery (armed to fired or pending) and by the lock holder.
    word: AtomicU64,
    /// The registration's key, fixed for its life; written before the word that makes it
    /// live is published.
    key: KeyCell,
    state: Mutex<State>,
}

impl Slot {
    #[inline]
    fn load(&self) -> Word {
        Word(self.word.load(Ordering::Acquire))
    }

    fn store(&self, word: Word) {
        self.word.store(word.0, Ordering::Release);
    }

    /// Changes the word by `f` (the lock holder's change; delivery may fire the word in
    /// between, and `f` sees that). Returns the word it replaced.
    #[inline]
    fn update(&self, f: impl Fn(Word) -> Word) -> Word {
        let mut current = self.load();
        loop {
            let new = f(current);
            match self.word.compare_exchange_weak(
                current.0,
                new.0,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return current,
                Err(actual) => current = Word(actual),
            }
        }
    }

    fn key(&self) -> usize {
        self.key.load(Ordering::Acquire)
    }
}

/// What the slab's index bookkeeping needs a lock for.
#[derive(Debug, Default)]
struct Table {
    free: Vec<u32>,
    /// Slots ever used: the slab is allocated up to here.
    high: u32,
    live: usize,
    closed: bool,
}

/// The registrations of one port.
#[derive(Debug)]
pub(crate) struct Registry {
    port: PortId,
    slots: Slab<Slot>,
    /// Descriptor number → slot index + 1 (0: none), written under the table lock.
    by_fd: Slab<AtomicU32>,
    table: Mutex<Table>,
    /// Live registrations that are detached: not counted by [`Registry::len`].
    detached: AtomicUsize,
    /// Set once, by `close`, under the table lock (which is what orders it against the
    /// creation of slots); read without it.
    closed: AtomicBool,
}

fn token(index: u32, generation: u32) -> u64 {
    (u64::from(generation) << 32) | u64::from(index)
}

fn split(token: u64) -> (u32, u32) {
    (token as u32, (token >> 32) as u32)
}

/// A validated kernel report: the entry, and whether the report's token is owed a re-arm
/// when the thread that receives it calls again.
pub(crate) type Delivery = (CompletionEntry, bool);

impl Registry {
    pub(crate) fn new(port: PortId) -> Registry {
        Registry {
            port,
            slots: Slab::new(),
            by_fd: Slab::new(),
            table: Mutex::new(Table::default()),
            detached: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
        }
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        // Every critical section leaves the table consistent before anything can panic.
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn slot(&self, index: u32) -> &Slot {
        self.slots.get_or_grow(index as usize)
    }

    /// The number of registrations (closed sockets not yet noticed included; detached
    /// ones, whose registered descriptor was found closed, not).
    pub(crate) fn len(&self) -> usize {
        let live = self.table().live;
        live.saturating_sub(self.detached.load(Ordering::Relaxed))
    }

    /// Marks `slot` detached: its registered descriptor no longer names its socket (its
    /// lock held). Delivery stops at once.
    fn detach(&self, slot: &Slot) {
        if !slot.load().detached() {
            slot.update(|w| w.with_detached(true));
            self.detached.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Clears `slot`'s detached mark (it is freed, or re-attached; its lock held).
    fn attach(&self, slot: &Slot) {
        if slot.load().detached() {
            slot.update(|w| w.with_detached(false));
            self.detached.fetch_sub(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    fn lookup(&self, fd: Socket) -> Option<u32> {
        let raw = self.by_fd.get(sys::index(fd)?)?.load(Ordering::Acquire);
        raw.checked_sub(1)
    }

    /// Applies `registrations` in order and the deferred re-arms `rearms` (first); each
    /// registration's result is set in it, and REMOVE entries go to `removed` in order.
    pub(crate) fn apply(
        &self,
        selector: &Selector,
        registrations: &mut [Registration],
        rearms: &[u64],
        removed: &mut Vec<CompletionEntry>,
        spare: &mut Spare,
    ) {
        let mut batch = Batch {
            registry: self,
            selector,
            held: Vec::new(),
            spare_held: &mut spare.held,
            changes: &mut spare.changes,
            retries: &mut spare.retries,
            alone: registrations.len() + rearms.len() <= 1,
            registrations,
            removed,
        };
        for &token in rearms {
            batch.rearm(token);
        }
        for position in 0..batch.registrations.len() {
            match batch.registrations[position].request() {
                // Rule 19: every valid change fails on a closed port, whatever it asked.
                Ok(_) if self.is_closed() => {
                    batch.result(Some(position), Err(Failure::PortClosed));
                }
                Ok(request) => batch.request(position, request),
                Err(failure) => batch.result(Some(position), Err(failure)),
            }
        }
        // Whatever is still held.
        batch.flush();
        batch.give_back();
    }

    /// Turns one kernel report into an entry, or drops it when it is stale or filtered out.
    /// A load and a compare-exchange of the slot's word; no lock (module docs).
    ///
    /// A report with nothing the filter wants (a hang-up without `HANGUP` in the filter)
    /// would come back at once under one-shot level interest re-armed, for ever. Such a
    /// registration is *parked* ([`Interest::parked`]): the kernel reports the socket's next
    /// state change instead of its lasting state, and the first wanted report delivers an
    /// entry; the interest goes back to one-shot at the next re-arm. No wanted report is
    /// lost, and no thread spins.
    #[inline]
    pub(crate) fn deliver(&self, selector: &Selector, event: RawEvent) -> Option<Delivery> {
        let (index, generation) = split(event.token);
        let slot = self.slots.get(index as usize)?;
        let mut word = slot.load();
        loop {
            if !word.deliverable(generation) {
                return None;
            }
            let events = event.readiness.events(word.entry_filter());
            if events.is_empty() {
                self.park(selector, slot, event.token);
                return None;
            }
            // Read before the compare-exchange, which (as a release) it cannot pass: if
            // the slot was freed and taken by a new registration meanwhile, the exchange
            // fails.
            let key = slot.key();
            match slot.word.compare_exchange_weak(
                word.0,
                word.delivered().0,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    let entry = CompletionEntry::notification(key, events);
                    return Some((entry, word.owes()));
                }
                Err(actual) => word = Word(actual),
            }
        }
    }

    /// Parks the one-shot registration `token` names (a report with nothing its filter
    /// wants), under its lock: the rare path of delivery.
    fn park(&self, selector: &Selector, slot: &Slot, token: u64) {
        let st = slot.state.lock().unwrap_or_else(|e| e.into_inner());
        let word = slot.load();
        // Edge interest reports a lasting condition once: nothing to do then.
        if u64::from(word.generation()) != token >> 32
            || word.arm() != Arm::Armed
            || word.detached()
            || word.parked()
            || !word.interest().oneshot
        {
            return;
        }
        slot.update(|w| w.with_parked(true));
        let interest = Interest::parked(word.filter());
        let mut change = [Change::new(st.fd, token, Op::Arm(interest))];
        selector.apply(&mut change);
        if change[0].result == Err(ChangeError::Gone) {
            self.detach(slot);
        }
    }

    /// Ends every registration (the port is closing): no entries, no claims left.
    pub(crate) fn close(&self) {
        let high = {
            let mut table = self.table();
            if table.closed {
                return;
            }
            table.closed = true;
            self.closed.store(true, Ordering::Release);
            table.live = 0;
            table.high
        };
        let mut identities = Vec::new();
        for slot in self.slots.iter(high as usize) {
            let st = slot.state.lock().unwrap_or_else(|e| e.into_inner());
            if slot.load().live() {
                identities.push(st.identity);
                self.attach(slot);
                slot.update(|w| {
                    w.with_generation(w.generation().wrapping_add(1))
                        .with_arm(Arm::Free)
                });
            }
        }
        owners::release_all(self.port, identities.into_iter());
    }
}

/// The buffers of one thread's batches, kept from call to call (in its scratch space), so
/// that applying a batch does not allocate.
#[derive(Default)]
pub(crate) struct Spare {
    held: Vec<Held<'static>>,
    changes: Vec<Change>,
    retries: Vec<(Redo, Request)>,
}

/// An emptied vector's allocation, for elements that differ only in their lifetime.
fn recycle<'a, 'b>(held: Vec<Held<'a>>) -> Vec<Held<'b>> {
    let mut held = std::mem::ManuallyDrop::new(held);
    held.clear();
    let (ptr, capacity) = (held.as_mut_ptr(), held.capacity());
    // SAFETY: `Held<'a>` and `Held<'b>` are one type but for a lifetime, so they have the
    // same size and alignment; the vector is empty, so no value is reinterpreted; the
    // allocation is the global allocator's, of `capacity` such elements, and is owned by
    // the new vector alone (the old one is never dropped).
    unsafe { Vec::from_raw_parts(ptr.cast::<Held<'b>>(), 0, capacity) }
}

/// A registration change waiting for its kernel operation, with its slot's lock.
struct Held<'r> {
    st: MutexGuard<'r, State>,
    slot: &'r Slot,
    index: u32,
    /// The request's position in the caller's batch; `None` for a deferred re-arm.
    position: Option<usize>,
    request: Request,
    action: Action,
    /// The word before a change that published its new state ahead of its kernel
    /// operation (module docs), to go back to if the operation fails.
    before: Option<Word>,
}

/// What a held change does once the kernel has answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    /// A new registration (its word is published already).
    Create,
    /// ENABLE of a registration: new filter and trigger, armed (published already).
    Enable,
    /// ENABLE through another descriptor of a detached registration's socket (published
    /// already, but for the descriptor).
    Reattach {
        fd: Socket,
    },
    Disable,
    /// REMOVE; `named` when the caller's descriptor was just checked to name the socket,
    /// so a registered descriptor found closed does not stop it (rule 7).
    Remove {
        named: bool,
    },
    /// What a delivered entry owed: a persistent registration's re-arm (published
    /// already) or check, a parked one-shot's disarm.
    Rearm,
}

/// A request to start again after a flush: one of the caller's, or a deferred re-arm.
#[derive(Clone, Copy, Debug)]
enum Redo {
    Request(usize),
    Rearm(u64),
}

/// One call's changes: held slots, their kernel operations, and requests to try again
/// once the held ones are settled.
struct Batch<'r, 'c> {
    registry: &'r Registry,
    selector: &'r Selector,
    /// Empty, without an allocation, until the batch first holds a change: then it is the
    /// thread's spare buffer (`spare_held`), given back by [`Batch::give_back`]. A change
    /// applied at once (epoll's every change) never touches it.
    held: Vec<Held<'r>>,
    spare_held: &'c mut Vec<Held<'static>>,
    changes: &'c mut Vec<Change>,
    retries: &'c mut Vec<(Redo, Request)>,
    /// Whether the call makes one change at most (but for retries of it), so that a
    /// batching backend gains nothing by gathering.
    alone: bool,
    registrations: &'c mut [Registration],
    removed: &'c mut Vec<CompletionEntry>,
}

/// How many times [`Batch::lock`] looks at a taken slot lock again, with a growing pause
/// (at most 447 spin-loop hints in all), before it sleeps on it.
const SPIN_ROUNDS: u32 = 12;

#[inline]
fn try_lock(slot: &Slot) -> Option<MutexGuard<'_, State>> {
    match slot.state.try_lock() {
        Ok(st) => Some(st),
        // Every critical section leaves the state consistent before it can panic.
        Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
        Err(std::sync::TryLockError::WouldBlock) => None,
    }
}

/// Whether a registration's socket is a datagram socket, if its filter needs to know.
#[inline]
fn kind_for(fd: Socket, filter: Events, known: Kind) -> Result<Kind, Failure> {
    if known != Kind::Unknown || !filter.contains(Events::HANGUP) {
        return Ok(known);
    }
    match sys::is_datagram(fd) {
        Ok(true) => Ok(Kind::Datagram),
        Ok(false) => Ok(Kind::Stream),
        Err(e) => Err(Failure::from_errno(fd, &e)),
    }
}

impl<'r> Batch<'r, '_> {
    /// Locks slot `index`, first applying and releasing the held changes if the lock is
    /// taken (by another thread, or by a change of this batch).
    #[inline]
    fn lock(&mut self, index: u32) -> (&'r Slot, MutexGuard<'r, State>) {
        let slot = self.registry.slot(index);
        match try_lock(slot) {
            Some(st) => (slot, st),
            None => (slot, self.lock_taken(slot)),
        }
    }

    /// [`lock`](Batch::lock) of a slot whose lock is taken.
    #[cold]
    #[inline(never)]
    fn lock_taken(&mut self, slot: &'r Slot) -> MutexGuard<'r, State> {
        self.flush();
        // The holder is inside one kernel call (its batch's changes) and lets go as soon as
        // the kernel has answered, so look again for a few microseconds before sleeping.
        for round in 0..SPIN_ROUNDS {
            for _ in 0..1u32 << round.min(6) {
                std::hint::spin_loop();
            }
            if let Some(st) = try_lock(slot) {
                return st;
            }
        }
        slot.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn hold(
        &mut self,
        (slot, st): (&'r Slot, MutexGuard<'r, State>),
        index: u32,
        position: Option<usize>,
        request: Request,
        action: Action,
        before: Option<Word>,
        (fd, op): (Socket, Op),
    ) {
        let t = token(index, slot.load().generation());
        let change = Change::new(fd, t, op);
        let mut held = Held {
            st,
            slot,
            index,
            position,
            request,
            action,
            before,
        };
        if self.held.is_empty() {
            // A backend that makes one system call per change gains nothing by waiting:
            // the change is applied and settled now, as a flush of it alone would.
            if let Some(result) = self.selector.apply_now(&change, self.alone) {
                self.settle(&mut held, result);
                drop(held);
                return self.retry();
            }
        }
        if self.held.capacity() == 0 {
            self.take_spare();
        }
        self.changes.push(change);
        self.held.push(held);
    }

    /// Starts holding changes in the thread's spare buffer.
    #[cold]
    #[inline(never)]
    fn take_spare(&mut self) {
        self.held = recycle(std::mem::take(self.spare_held));
    }

    /// Puts the buffer of held changes back in the thread's spare space, if the batch took
    /// it (everything held is settled by now).
    #[inline]
    fn give_back(&mut self) {
        if self.held.capacity() != 0 {
            *self.spare_held = recycle(std::mem::take(&mut self.held));
        }
    }

    #[inline]
    fn result(&mut self, position: Option<usize>, result: Result<(), Failure>) {
        if let Some(position) = position {
            self.registrations[position].set_result(result);
        }
    }

    /// Publishes an armed word with `filter` and `trigger` ahead of the kernel operation
    /// that arms (module docs); returns the word before, to go back to on failure.
    #[inline]
    fn publish_armed(slot: &Slot, filter: Events, trigger: Trigger, kind: Kind) -> Word {
        // The word it replaced, not an earlier look at it: a delivery may fire it between.
        slot.update(|w| {
            w.with_interest(filter, trigger)
                .with_kind(kind)
                .with_arm(Arm::Armed)
                .with_parked(false)
        })
    }

    /// A deferred re-arm of the registration `token` names, if it is still owed.
    fn rearm(&mut self, token: u64) {
        let (index, generation) = split(token);
        let (slot, st) = self.lock(index);
        let word = slot.load();
        if word.generation() != generation || word.detached() {
            return;
        }
        let (op, before) = match word.arm() {
            Arm::Pending => {
                // Published first: the re-arm's report must find it armed.
                let before = slot.update(|w| w.with_arm(Arm::Armed).with_parked(false));
                (Op::Arm(word.interest()), Some(before))
            }
            Arm::Fired if word.parked() => (Op::Disarm, None),
            Arm::Armed if !word.interest().oneshot => (Op::Check, None),
            _ => return,
        };
        let fd = st.fd;
        self.hold(
            (slot, st),
            index,
            None,
            Request::None,
            Action::Rearm,
            before,
            (fd, op),
        );
    }

    /// Starts one request: through the descriptor it was registered with when that is
    /// the descriptor named (the kernel operation checks that it still names the socket),
    /// else through the socket's identity.
    fn request(&mut self, position: usize, request: Request) {
        let Some(fd) = request.fd() else {
            return self.result(Some(position), Ok(()));
        };
        if let Some(index) = self.registry.lookup(fd) {
            let (slot, st) = self.lock(index);
            let word = slot.load();
            if word.live() && st.fd == fd && !word.detached() {
                let key = slot.key();
                let action = match request {
                    Request::Enable {
                        key: asked,
                        filter,
                        trigger,
                        ..
                    } if asked == key => match kind_for(fd, filter, word.kind()) {
                        Ok(kind) => {
                            let before = Self::publish_armed(slot, filter, trigger, kind);
                            Some((
                                Action::Enable,
                                Some(before),
                                Op::Arm(Interest::of(filter, trigger)),
                            ))
                        }
                        Err(failure) => {
                            drop(st);
                            return self.result(Some(position), Err(failure));
                        }
                    },
                    Request::Disable { .. } => Some((Action::Disable, None, Op::Disarm)),
                    Request::Remove { .. } => {
                        Some((Action::Remove { named: false }, None, Op::Delete))
                    }
                    // Another key: whether that is an error depends on the socket `fd`
                    // names now.
                    _ => None,
                };
                if let Some((action, before, op)) = action {
                    return self.hold(
                        (slot, st),
                        index,
                        Some(position),
                        request,
                        action,
                        before,
                        (fd, op),
                    );
                }
            }
        }
        // The identity path may act at once (an error, a detached registration): what the
        // batch holds so far goes first, so that the batch takes effect in order.
        self.flush();
        self.by_identity(position, request, fd);
    }

    /// The general path: find the registration by the socket's identity.
    fn by_identity(&mut self, position: usize, request: Request, fd: Socket) {
        let identity = match sys::socket_identity(fd) {
            Ok(identity) => identity,
            Err(e) => return self.result(Some(position), Err(Failure::from_errno(fd, &e))),
        };
        let port = self.registry.port;
        let owner = owners::owner(identity);
        let Some(Owner {
            port: owner_port,
            slot: index,
        }) = owner
        else {
            return match request {
                Request::Enable {
                    key,
                    filter,
                    trigger,
                    ..
                } => self.create(position, request, fd, identity, key, filter, trigger),
                _ => self.result(Some(position), Err(Failure::NotRegistered(fd))),
            };
        };
        if owner_port != port {
            let failure = match request {
                Request::Enable { .. } => Failure::OtherPort(fd),
                _ => Failure::NotRegistered(fd),
            };
            return self.result(Some(position), Err(failure));
        }
        let (slot, st) = self.lock(index);
        let word = slot.load();
        if !word.live() || st.identity != identity {
            // Freed meanwhile (by an earlier change of this batch, or by another thread):
            // start again from what the table says now, before anything later in the batch.
            drop(st);
            std::thread::yield_now();
            return self.by_identity(position, request, fd);
        }
        // Through the registered descriptor, or through `fd` to re-attach a detached one.
        let via = st.fd;
        let (action, before, change) = match request {
            Request::Enable { key, .. } if key != slot.key() => {
                drop(st);
                return self.result(Some(position), Err(Failure::KeyChange(fd)));
            }
            Request::Enable {
                filter, trigger, ..
            } => {
                let kind = match kind_for(fd, filter, word.kind()) {
                    Ok(kind) => kind,
                    Err(failure) => {
                        drop(st);
                        return self.result(Some(position), Err(failure));
                    }
                };
                let interest = Interest::of(filter, trigger);
                if word.detached() {
                    // Attached before the kernel has the new descriptor, so that its first
                    // report is delivered (the old item's, meanwhile, reports the same
                    // socket); detached again if the kernel refuses.
                    let before = Self::publish_armed(slot, filter, trigger, kind);
                    self.registry.attach(slot);
                    (
                        Action::Reattach { fd },
                        Some(before),
                        (fd, Op::Add(interest)),
                    )
                } else {
                    let before = Self::publish_armed(slot, filter, trigger, kind);
                    (Action::Enable, Some(before), (via, Op::Arm(interest)))
                }
            }
            Request::Disable { .. } if word.detached() => {
                slot.update(|w| w.with_arm(Arm::Disabled));
                drop(st);
                return self.result(Some(position), Ok(()));
            }
            Request::Disable { .. } => (Action::Disable, None, (via, Op::Disarm)),
            Request::Remove { .. } if word.detached() => {
                let mut st = st;
                self.free(slot, &mut st, index);
                let key = slot.key();
                drop(st);
                self.removed
                    .push(CompletionEntry::notification(key, Events::REMOVE));
                return self.result(Some(position), Ok(()));
            }
            Request::Remove { .. } => (Action::Remove { named: true }, None, (via, Op::Delete)),
            Request::None => return,
        };
        self.hold(
            (slot, st),
            index,
            Some(position),
            request,
            action,
            before,
            change,
        );
    }

    /// ENABLE of a socket with no registration (rule 1).
    #[allow(clippy::too_many_arguments)]
    fn create(
        &mut self,
        position: usize,
        request: Request,
        fd: Socket,
        identity: u64,
        key: usize,
        filter: Events,
        trigger: Trigger,
    ) {
        // A slot left at this number by a socket whose descriptor was closed goes first:
        // freed if the socket is gone, detached if a duplicate keeps it open (the kernel
        // still has its item then), so that a REMOVE through the duplicate still works.
        if let Some(old) = self.registry.lookup(fd) {
            let (slot, mut st) = self.lock(old);
            let word = slot.load();
            if word.live() && st.fd == fd && st.identity != identity {
                match self.selector.holds_other_file(fd) {
                    Some(true) if !word.detached() => self.registry.detach(slot),
                    Some(true) => {}
                    _ => self.free(slot, &mut st, old),
                }
            }
        }
        let kind = match kind_for(fd, filter, Kind::Unknown) {
            Ok(kind) => kind,
            Err(failure) => return self.result(Some(position), Err(failure)),
        };
        let index = {
            let mut table = self.registry.table();
            if table.closed {
                drop(table);
                return self.result(Some(position), Err(Failure::PortClosed));
            }
            if table.live >= MAX_SLOTS {
                drop(table);
                return self.result(Some(position), Err(Failure::Os(sys::code::NO_SPACE)));
            }
            let index = table.free.pop().unwrap_or_else(|| {
                table.high += 1;
                table.high - 1
            });
            table.live += 1;
            index
        };
        let owner = Owner {
            port: self.registry.port,
            slot: index,
        };
        if let Err(current) = owners::claim(identity, owner) {
            self.registry.release_index(index, None);
            if current.port == self.registry.port {
                // Registered meanwhile by another thread of this port: try again, as a
                // change of that registration.
                std::thread::yield_now();
                return self.by_identity(position, request, fd);
            }
            return self.result(Some(position), Err(Failure::OtherPort(fd)));
        }
        let (slot, mut st) = self.lock(index);
        *st = State { fd, identity };
        slot.key.store(key, Ordering::Release);
        // Published before the kernel has the socket: its first report finds it armed.
        let generation = slot.load().generation();
        slot.store(
            Word::default()
                .with_generation(generation)
                .with_interest(filter, trigger)
                .with_kind(kind)
                .with_arm(Arm::Armed),
        );
        self.registry.set_fd(fd, Some(index));
        let op = Op::Add(Interest::of(filter, trigger));
        self.hold(
            (slot, st),
            index,
            Some(position),
            request,
            Action::Create,
            None,
            (fd, op),
        );
    }

    /// Ends the registration in `slot` (index `index`, its lock held as `st`): its tokens
    /// go stale, its claim and its descriptor entry go.
    fn free(&self, slot: &Slot, st: &mut State, index: u32) {
        self.registry.attach(slot);
        slot.update(|w| {
            w.with_generation(w.generation().wrapping_add(1))
                .with_arm(Arm::Free)
        });
        let owner = Owner {
            port: self.registry.port,
            slot: index,
        };
        owners::release(st.identity, owner);
        self.registry.release_index(index, Some(st.fd));
    }

    /// Applies the held changes and settles each with the kernel's answer, releasing
    /// their locks; then finishes the requests that must start again (a registered
    /// descriptor found closed), and after them the requests whose changes the backend did
    /// not apply because of that failure, so that every request held so far is complete,
    /// in the batch's order, before the batch goes on.
    #[inline]
    fn flush(&mut self) {
        if !self.held.is_empty() {
            self.flush_held();
        }
    }

    #[inline(never)]
    fn flush_held(&mut self) {
        while !self.held.is_empty() {
            // Taken out for the settling (which needs `self`), and put back with their
            // capacity: a batch does not allocate once its buffers have grown.
            let mut held = std::mem::take(&mut self.held);
            let mut changes = std::mem::take(self.changes);
            let mut again = Vec::new();
            self.selector.apply(&mut changes);
            for (mut held, change) in held.drain(..).zip(changes.drain(..)) {
                if change.result == Err(ChangeError::NotApplied) {
                    again.push(self.unhold(held));
                } else {
                    // Its lock goes when `held` does, at the end of this iteration.
                    self.settle(&mut held, change.result);
                }
            }
            self.held = held;
            *self.changes = changes;
            self.redo(again);
        }
    }

    /// Starts again the requests a settled change sent back, if any.
    #[inline]
    fn retry(&mut self) {
        if !self.retries.is_empty() {
            self.redo(Vec::new());
        }
    }

    /// Starts again the requests a settled change sent back (a registered descriptor found
    /// closed), then `again` (changes the backend did not apply), in order.
    #[inline(never)]
    fn redo(&mut self, again: Vec<(Redo, Request)>) {
        let retries = std::mem::take(self.retries);
        for (position, request) in retries.into_iter().chain(again) {
            match (position, request.fd()) {
                (Redo::Request(position), Some(fd)) => self.by_identity(position, request, fd),
                (Redo::Rearm(token), _) => self.rearm(token),
                (Redo::Request(_), None) => {}
            }
        }
    }

    /// Puts back the word a held change published ahead of its kernel operation, which
    /// failed or was not applied. A delivery that fired the published word meanwhile
    /// stands (it reported what the socket was doing while the change was under way), so
    /// then only the filter and trigger go back.
    fn revert(&self, held: &Held<'_>) {
        let Some(before) = held.before else {
            return;
        };
        held.slot.update(|w| {
            let w = if w.arm() == Arm::Armed || before.arm() != Arm::Armed {
                before
            } else {
                before.with_arm(w.arm())
            };
            // The detached mark goes back through `detach`, which counts it.
            w.with_detached(false)
        });
        if before.detached() {
            self.registry.detach(held.slot);
        }
    }

    /// Gives up a held change the backend did not apply: its published word goes back, a
    /// new slot goes back, the lock goes, and the request is to be started again.
    fn unhold(&mut self, mut held: Held<'r>) -> (Redo, Request) {
        let redo = match held.position {
            Some(position) => Redo::Request(position),
            None => Redo::Rearm(token(held.index, held.slot.load().generation())),
        };
        self.revert(&held);
        if held.action == Action::Create {
            let index = held.index;
            self.free(held.slot, &mut held.st, index);
        }
        (redo, held.request)
    }

    #[inline(always)]
    fn settle(&mut self, held: &mut Held<'r>, result: Result<(), ChangeError>) {
        let slot = held.slot;
        let position = held.position;
        if result.is_err() {
            self.revert(held);
        }
        let st = &mut held.st;
        match (held.action, result) {
            (Action::Create, Ok(())) => self.result(position, Ok(())),
            (Action::Create, Err(e)) => {
                let fd = st.fd;
                self.free(slot, st, held.index);
                self.result(position, Err(failure(fd, e)));
            }
            (Action::Enable, Ok(())) => self.result(position, Ok(())),
            (Action::Reattach { fd }, Ok(())) => {
                let old = st.fd;
                st.fd = fd;
                self.registry.attach(slot);
                self.registry.move_fd(old, fd, held.index);
                self.result(position, Ok(()));
            }
            (Action::Disable, Ok(())) => {
                slot.update(|w| w.with_arm(Arm::Disabled).with_parked(false));
                self.result(position, Ok(()));
            }
            (Action::Remove { .. }, Ok(()))
            | (Action::Remove { named: true }, Err(ChangeError::Gone)) => {
                self.free(slot, st, held.index);
                let key = slot.key();
                self.removed
                    .push(CompletionEntry::notification(key, Events::REMOVE));
                self.result(position, Ok(()));
            }
            (Action::Rearm, Ok(())) => {
                // A persistent edge registration is never parked (its check leaves it so).
                slot.update(|w| w.with_parked(false));
            }
            (Action::Rearm, Err(ChangeError::Gone)) => self.registry.detach(slot),
            (Action::Rearm, Err(ChangeError::Os(_))) => {
                // Left as it was (rule 21: the next ENABLE re-arms it); nothing is queued
                // for a caller to see.
            }
            (_, Err(ChangeError::Gone)) => {
                // The registered descriptor no longer names the socket: the registration
                // is detached, and the request starts again through what `fd` names now.
                self.registry.detach(slot);
                if let Some(position) = position {
                    self.retries.push((Redo::Request(position), held.request));
                }
            }
            (_, Err(ChangeError::Os(code))) => {
                // The kernel refused: the registration is as it was (rule 22).
                self.result(position, Err(Failure::Os(code)));
            }
            // `flush` starts such a change again before it would be settled.
            (_, Err(ChangeError::NotApplied)) => {}
        }
    }
}

fn failure(fd: Socket, err: ChangeError) -> Failure {
    match err {
        ChangeError::Gone => Failure::Closed(fd),
        ChangeError::Os(code) => Failure::Os(code),
        // Never settled (see `flush`); the caller may try again.
        ChangeError::NotApplied => Failure::Os(sys::code::IO),
    }
}

impl Registry {
    /// Puts slot `index` back on the free list; clears the entry of `fd` if it still names
    /// the slot.
    fn release_index(&self, index: u32, fd: Option<Socket>) {
        let mut table = self.table();
        if table.closed {
            return; // `close` accounted for every slot
        }
        if let Some(i) = fd.and_then(sys::index) {
            if let Some(entry) = self.by_fd.get(i) {
                let _ = entry.compare_exchange(index + 1, 0, Ordering::AcqRel, Ordering::Acquire);
            }
        }
        table.free.push(index);
        table.live -= 1;
    }

    /// Records that descriptor `fd` names slot `index`. A socket with no dense index (a
    /// handle value out of range) is found through the owner table alone.
    fn set_fd(&self, fd: Socket, index: Option<u32>) {
        let _table = self.table();
        let value = index.map_or(0, |i| i + 1);
        if let Some(i) = sys::index(fd) {
            self.by_fd.get_or_grow(i).store(value, Ordering::Release);
        }
    }

    /// A registration re-attached through descriptor `to` is no longer found at `from`.
    fn move_fd(&self, from: Socket, to: Socket, index: u32) {
        let _table = self.table();
        if let Some(entry) = sys::index(from).and_then(|i| self.by_fd.get(i)) {
            let _ = entry.compare_exchange(index + 1, 0, Ordering::AcqRel, Ordering::Acquire);
        }
        if let Some(i) = sys::index(to) {
            self.by_fd
                .get_or_grow(i)
                .store(index + 1, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_size() {
        // The lock and the state: the figure README.md states.
        assert!(
            std::mem::size_of::<Slot>() <= 48,
            "{}",
            std::mem::size_of::<Slot>()
        );
    }

    #[test]
    fn word_fields_do_not_overlap() {
        let arms = [
            Arm::Free,
            Arm::Armed,
            Arm::Fired,
            Arm::Pending,
            Arm::Disabled,
        ];
        let kinds = [Kind::Unknown, Kind::Stream, Kind::Datagram];
        for (i, &arm) in arms.iter().enumerate() {
            for &kind in &kinds {
                for bits in [0u8, 0xff, 0x5a] {
                    let filter = Events::from_bits_retain(u16::from(bits));
                    let trigger = Trigger::from_bits_retain(!bits);
                    let generation = u32::MAX - i as u32;
                    let w = Word::default()
                        .with_generation(generation)
                        .with_interest(filter, trigger)
                        .with_kind(kind)
                        .with_arm(arm)
                        .with_detached(i % 2 == 0)
                        .with_parked(i % 2 == 1);
                    assert_eq!(w.generation(), generation);
                    assert_eq!(w.arm(), arm);
                    assert_eq!(w.kind(), kind);
                    assert_eq!(w.filter(), filter);
                    assert_eq!(w.trigger(), trigger);
                    assert_eq!((w.detached(), w.parked()), (i % 2 == 0, i % 2 == 1));
                    let back = w.with_arm(Arm::Free).with_arm(arm);
                    assert_eq!(back, w, "setting a field changed another");
                }
            }
        }
    }

    #[test]
    fn delivery_follows_the_trigger() {
        let armed = Word::default().with_generation(9).with_arm(Arm::Armed);
        let cases = [
            (Trigger::ONESHOT | Trigger::LEVEL, Arm::Fired, false),
            (Trigger::ONESHOT | Trigger::EDGE, Arm::Fired, false),
            (Trigger::PERSISTENT | Trigger::LEVEL, Arm::Pending, true),
            (Trigger::PERSISTENT | Trigger::EDGE, Arm::Armed, true),
        ];
        for (trigger, arm, owes) in cases {
            let w = armed.with_interest(Events::IN, trigger);
            assert!(w.deliverable(9) && !w.deliverable(8), "{trigger:?}");
            assert!(!w.with_detached(true).deliverable(9));
            for other in [Arm::Free, Arm::Fired, Arm::Pending, Arm::Disabled] {
                assert!(!w.with_arm(other).deliverable(9), "{other:?}");
            }
            assert_eq!(w.delivered(), w.with_arm(arm), "{trigger:?}");
            assert_eq!(w.owes(), owes, "{trigger:?}");
            assert!(
                w.with_parked(true).owes(),
                "a parked registration owes its disarm"
            );
        }
    }

    #[test]
    fn batch_buffers_are_reused() {
        let mut held: Vec<Held<'static>> = recycle(Vec::new());
        held.reserve(8);
        let before = held.as_ptr();
        let again: Vec<Held<'_>> = recycle(held);
        assert_eq!(again.as_ptr(), before, "the allocation was not reused");
        assert!(again.capacity() >= 8);
    }

    #[test]
    fn tokens_never_collide_with_sentinels() {
        let last = token(MAX_SLOTS as u32 - 1, u32::MAX);
        assert_ne!(last, sys::WAKE_TOKEN);
        assert_eq!(split(last), (MAX_SLOTS as u32 - 1, u32::MAX));
    }
}

/// loom models of the registry's ordering: `RUSTFLAGS="--cfg loom" cargo test --release
/// --lib model`.
///
/// Each slot's lock is loom's, so loom explores the orders in which threads changing one
/// registration and a thread validating a kernel report take it; the kernel is a real epoll
/// instance (its calls are not interleaved by loom, which is the point: each change reaches
/// the kernel under the slot's lock). A harvested report is simulated by its token,
/// captured before the threads run.
#[cfg(all(test, loom))]
mod model {
    use super::*;
    use crate::port::Backend;
    use crate::registration::Operation;
    use loom::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use loom::sync::Arc;
    use loom::thread;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;
    use std::time::Duration;

    struct Fixture {
        selector: Selector,
        registry: Registry,
        fd: Socket,
        /// The report the kernel made for the registration's first arm.
        harvested: RawEvent,
        /// The socket pair, open for the model's length; the peer has written a byte.
        _pair: (UnixStream, UnixStream),
    }

    fn apply(
        fx: &Fixture,
        registration: Registration,
    ) -> (Result<(), Failure>, Vec<CompletionEntry>) {
        let mut registrations = [registration];
        let mut removed = Vec::new();
        fx.registry.apply(
            &fx.selector,
            &mut registrations,
            &[],
            &mut removed,
            &mut Spare::default(),
        );
        (registrations[0].failure().map_or(Ok(()), Err), removed)
    }

    fn enable(fd: Socket, filter: Events) -> Registration {
        Registration::from_raw(
            fd,
            7,
            filter,
            Operation::Enable,
            Trigger::ONESHOT | Trigger::LEVEL,
        )
    }

    fn remove(fd: Socket) -> Registration {
        Registration::from_raw(fd, 0, Events::empty(), Operation::Remove, Trigger::empty())
    }

    fn disable(fd: Socket) -> Registration {
        Registration::from_raw(fd, 0, Events::empty(), Operation::Disable, Trigger::empty())
    }

    /// Reports the kernel has now, turned into entries.
    fn harvest(fx: &Fixture) -> usize {
        let mut raw = sys::Reports::default();
        fx.selector
            .wait(&mut raw, 8, Some(Duration::ZERO))
            .expect("epoll_wait");
        raw.iter()
            .filter_map(|e| fx.registry.deliver(&fx.selector, e))
            .count()
    }

    fn fixture() -> Arc<Fixture> {
        let selector = Selector::new(Backend::Epoll).expect("epoll");
        let registry = Registry::new(owners::new_port());
        let pair = UnixStream::pair().expect("socketpair");
        std::io::Write::write_all(&mut &pair.0, b"x").expect("write");
        let fd = pair.1.as_raw_fd();
        let mut fx = Fixture {
            selector,
            registry,
            fd,
            harvested: RawEvent {
                token: 0,
                readiness: sys::Readiness::new(sys::Readiness::READABLE),
            },
            _pair: pair,
        };
        assert_eq!(apply(&fx, enable(fd, Events::IN)).0, Ok(()));
        let mut raw = sys::Reports::default();
        fx.selector
            .wait(&mut raw, 8, Some(Duration::ZERO))
            .expect("epoll_wait");
        let reports: Vec<RawEvent> = raw.iter().collect();
        assert_eq!(reports.len(), 1, "the readable socket was reported");
        fx.harvested = reports[0];
        Arc::new(fx)
    }

    fn model(f: impl Fn() + Sync + Send + 'static) {
        let mut builder = loom::model::Builder::new();
        if builder.preemption_bound.is_none() {
            builder.preemption_bound = Some(2);
        }
        let runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = runs.clone();
        builder.check(move || {
            counted.fetch_add(1, SeqCst);
            f()
        });
        // A model that explores one order checks nothing about ordering.
        assert!(runs.load(SeqCst) > 1, "loom explored a single interleaving");
    }

    /// Rule 4: once the REMOVE entry can be queued (the REMOVE returned), a report
    /// validated from then on is dropped. The REMOVE entry is produced once.
    #[test]
    fn remove_entry_is_last() {
        model(|| {
            let fx = fixture();
            let queued = Arc::new(AtomicUsize::new(0));
            let validator = {
                let (fx, queued) = (fx.clone(), queued.clone());
                thread::spawn(move || {
                    let after = queued.load(SeqCst) == 1;
                    let got = fx.registry.deliver(&fx.selector, fx.harvested);
                    assert!(
                        !(after && got.is_some()),
                        "an entry validated after the REMOVE entry was queued"
                    );
                })
            };
            let (result, removed) = apply(&fx, remove(fx.fd));
            queued.store(1, SeqCst);
            assert_eq!(result, Ok(()));
            assert_eq!(removed.len(), 1);
            assert_eq!((removed[0].key, removed[0].events()), (7, Events::REMOVE));
            validator.join().unwrap();
            fx.registry.close();
        });
    }

    /// The state an ENABLE publishes reaches delivery before the report its kernel
    /// operation provokes: a one-shot registration that fired is re-armed by one thread
    /// while another harvests and validates at once. The readable socket yields exactly one
    /// entry, during the re-arm or after it; publishing after the kernel operation loses
    /// it when the validation falls in between.
    #[test]
    fn a_rearm_is_published_before_its_report() {
        model(|| {
            let fx = fixture();
            assert!(fx.registry.deliver(&fx.selector, fx.harvested).is_some());
            let validator = {
                let fx = fx.clone();
                thread::spawn(move || harvest(&fx))
            };
            assert_eq!(apply(&fx, enable(fx.fd, Events::IN)).0, Ok(()));
            let during = validator.join().unwrap();
            let after = harvest(&fx);
            assert_eq!(during + after, 1, "one entry per arm ({during} + {after})");
            fx.registry.close();
        });
    }

    /// Issue 10, rows a and b: one thread re-arms a one-shot registration and another
    /// disables it, at once, while a third validates the first arm's report. Whatever the
    /// order, each change reached the kernel under the slot's lock, so afterwards the
    /// kernel agrees with the registry: armed, and the readable socket produces exactly
    /// one entry; disabled or fired (the old report validated after the re-arm), and the
    /// kernel gives nothing more.
    #[test]
    fn concurrent_changes_leave_kernel_and_registry_agreeing() {
        model(|| {
            let fx = fixture();
            let changes = [enable(fx.fd, Events::IN), disable(fx.fd)];
            let threads: Vec<_> = changes
                .into_iter()
                .map(|request| {
                    let fx = fx.clone();
                    thread::spawn(move || apply(&fx, request).0)
                })
                .collect();
            let old = usize::from(fx.registry.deliver(&fx.selector, fx.harvested).is_some());
            for t in threads {
                assert_eq!(t.join().unwrap(), Ok(()));
            }
            let index = fx.registry.lookup(fx.fd).expect("registered");
            let arm = fx.registry.slot(index).load().arm();
            let fresh = harvest(&fx);
            match arm {
                Arm::Armed => assert_eq!(fresh, 1, "armed, yet the kernel is silent"),
                Arm::Fired => assert_eq!((old, fresh), (1, 0), "fired twice for one arm"),
                Arm::Disabled => assert_eq!(fresh, 0, "disabled, yet delivered"),
                other => panic!("unexpected state {other:?}"),
            }
            // Nothing more without a re-arm.
            assert_eq!(harvest(&fx), 0);
            fx.registry.close();
        });
    }
}

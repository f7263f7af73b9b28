//! The per-port registration table: the state machine of SPEC section 3, above any backend.
//!
//! Each registration lives in a slot of a slab; a descriptor-indexed table finds the slot of
//! a socket. The kernel reports readiness with a *token*, `generation << 32 | slot`, and the
//! generation changes at every ENABLE, DISABLE and REMOVE, and when a slot is freed. A report
//! whose token is not the slot's current one is stale and dropped, so nothing the kernel
//! said before a change (or about a closed socket, or about an earlier socket with the same
//! descriptor number) reaches the caller.
//!
//! Every operation is O(1): a slab index, a descriptor index, and at most two system calls.
//!
//! # Memory per registration
//!
//! A slot is 24 bytes ([`Slot`]: key 8, descriptor 4, generation 4, incarnation 2;
//! filter, trigger, state, kind, parked flag and in-flight count 1 each), the descriptor index 4 bytes, the
//! process-wide owner table 4 bytes: 32 bytes in all, checked by the `slot_is_24_bytes` test with `size_of`. The two
//! descriptor-indexed tables cost 4 bytes per descriptor number up to the highest one
//! registered, which for the dense descriptor numbers of a server is the same figure.
//!
//! # Closed sockets
//!
//! Closing a registered socket removes it from the kernel's interest set and nobody is
//! told. The slot stays until the registry next touches that descriptor number: a re-arm,
//! DISABLE or REMOVE then fails in the kernel with `ENOENT` (or `EBADF`), and the slot is
//! freed silently (rule 7). ENABLE of a new socket with the same number then registers it
//! afresh.
//!
//! "Closing" means closing the last descriptor of the socket's open file: epoll watches
//! the open file, so if the descriptor was duplicated (`dup`, `fork`, `SCM_RIGHTS`) and a
//! copy stays open, the registration stays alive in the kernel and keeps reporting under
//! its key, as with raw epoll. REMOVE it before closing a socket that has copies.

use std::os::fd::RawFd;

use crate::error::Failure;
use crate::event::{CompletionEntry, Events, Trigger};
use crate::owners::{self, PortId};
use crate::registration::Request;
use crate::sys::{self, Change, RawEvent, Selector, SocketKind};

/// The bit of `Slot::inflight` that marks planned changes that overlapped.
const CONTENDED: u8 = 0x80;

/// No slot: the end of the free list.
const NIL: u32 = u32::MAX;
/// Slots are indexed below this, so no token equals a sentinel token.
const MAX_SLOTS: usize = (u32::MAX - 2) as usize;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum State {
    /// Not a registration; `key` holds the next free slot.
    Free,
    /// Entries are queued when the condition holds (LEVEL) or becomes true (EDGE).
    Armed,
    /// A one-shot registration that delivered its entry; waits for ENABLE.
    Fired,
    /// DISABLE'd; waits for ENABLE.
    Disabled,
}

/// One registration.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Slot {
    key: usize,
    fd: RawFd,
    generation: u32,
    filter: u8,
    trigger: u8,
    state: State,
    datagram: bool,
    /// The kernel interest is temporarily edge-triggered and persistent: the socket is in
    /// a condition the filter leaves out (see [`Registry::deliver`]).
    parked: bool,
    /// Planned changes not yet settled (batching backends), in the low 7 bits; the high
    /// bit ([`CONTENDED`]) says that two were in flight at once since the count was last 0.
    inflight: u8,
    /// Counts the registrations this slot has held, so that a change settling late knows
    /// whether the slot still holds its registration.
    incarnation: u16,
}

impl Slot {
    /// A new armed registration.
    fn armed(
        key: usize,
        fd: RawFd,
        generation: u32,
        filter: Events,
        trigger: Trigger,
        kind: SocketKind,
    ) -> Slot {
        Slot {
            key,
            fd,
            generation,
            filter: filter.bits() as u8,
            trigger: trigger.bits(),
            state: State::Armed,
            datagram: kind == SocketKind::Datagram,
            parked: false,
            inflight: 0,
            incarnation: 0,
        }
    }

    fn filter(&self) -> Events {
        Events::from_bits_retain(u16::from(self.filter))
    }

    fn trigger(&self) -> Trigger {
        Trigger::from_bits_retain(self.trigger)
    }
}

/// A change planned by [`Registry::plan`], waiting for the kernel's answer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Planned {
    pub(crate) change: Change,
    index: usize,
    previous: Slot,
}

/// The registrations of one port.
#[derive(Debug)]
pub(crate) struct Registry {
    port: PortId,
    slots: Vec<Slot>,
    free: u32,
    /// Descriptor number → slot index + 1 (0: none).
    by_fd: Vec<u32>,
    live: usize,
    closed: bool,
}

fn token(index: usize, generation: u32) -> u64 {
    (u64::from(generation) << 32) | index as u64
}

fn is(err: &std::io::Error, code: i32) -> bool {
    err.raw_os_error() == Some(code)
}

impl Registry {
    pub(crate) fn new(port: PortId) -> Registry {
        Registry {
            port,
            slots: Vec::new(),
            free: NIL,
            by_fd: Vec::new(),
            live: 0,
            closed: false,
        }
    }

    /// The number of live registrations (closed sockets not yet noticed included).
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    /// Applies one checked registration. Returns the REMOVE entry to queue, if any.
    pub(crate) fn apply(
        &mut self,
        selector: &Selector,
        request: Request,
    ) -> Result<Option<CompletionEntry>, Failure> {
        if self.closed {
            return Err(Failure::PortClosed);
        }
        match request {
            Request::None => Ok(None),
            Request::Enable {
                fd,
                key,
                filter,
                trigger,
            } => self
                .enable(selector, fd, key, filter, trigger)
                .map(|()| None),
            Request::Disable { fd } => self.disable(selector, fd).map(|()| None),
            Request::Remove { fd } => self.remove(selector, fd).map(Some),
        }
    }

    fn enable(
        &mut self,
        selector: &Selector,
        fd: RawFd,
        key: usize,
        filter: Events,
        trigger: Trigger,
    ) -> Result<(), Failure> {
        let Some(index) = self.lookup(fd) else {
            return self.create(selector, fd, key, filter, trigger);
        };
        let slot = self.slots[index];
        let generation = slot.generation.wrapping_add(1);
        if slot.key == key {
            // Rule 2: replace filter and trigger, re-arm.
            match selector.modify(fd, token(index, generation), filter, trigger) {
                Ok(()) => {
                    self.rearm(index, generation, filter, trigger);
                    Ok(())
                }
                Err(e) if is(&e, libc::ENOENT) => {
                    // The registered socket was closed; `fd` may name a new one.
                    self.forget(index);
                    self.create(selector, fd, key, filter, trigger)
                }
                Err(e) => {
                    if is(&e, libc::EBADF) {
                        self.forget(index);
                    }
                    Err(Failure::from_errno(fd, &e))
                }
            }
        } else {
            // A different key: an error if the registered socket is still open (rule 2);
            // if it was closed and `fd` now names a new socket, that socket registers afresh
            // (rule 7). Adding tells which: the kernel refuses a file it already watches.
            let kind = match sys::socket_kind(fd) {
                Ok(kind) => kind,
                Err(e) => {
                    if is(&e, libc::EBADF) {
                        self.forget(index);
                    }
                    return Err(Failure::from_errno(fd, &e));
                }
            };
            owners::claim(fd, self.port)?;
            match selector.add(fd, token(index, generation), filter, trigger) {
                Ok(()) => {
                    self.install(
                        index,
                        Slot::armed(key, fd, generation, filter, trigger, kind),
                    );
                    Ok(())
                }
                Err(e) if is(&e, libc::EEXIST) => Err(Failure::KeyChange(fd)),
                Err(e) => Err(Failure::from_errno(fd, &e)),
            }
        }
    }

    fn create(
        &mut self,
        selector: &Selector,
        fd: RawFd,
        key: usize,
        filter: Events,
        trigger: Trigger,
    ) -> Result<(), Failure> {
        let kind = sys::socket_kind(fd).map_err(|e| Failure::from_errno(fd, &e))?;
        if self.live >= MAX_SLOTS {
            return Err(Failure::Os(libc::ENOSPC));
        }
        owners::claim(fd, self.port)?;
        let index = self.alloc();
        let generation = self.slots[index].generation;
        let t = token(index, generation);
        let added = match selector.add(fd, t, filter, trigger) {
            // Only if a dup of a closed registered socket got this number back.
            Err(e) if is(&e, libc::EEXIST) => selector.modify(fd, t, filter, trigger),
            other => other,
        };
        if let Err(e) = added {
            self.release_slot(index);
            owners::release(fd, self.port);
            return Err(Failure::from_errno(fd, &e));
        }
        self.install(
            index,
            Slot::armed(key, fd, generation, filter, trigger, kind),
        );
        let fd_index = fd as usize;
        if self.by_fd.len() <= fd_index {
            self.by_fd.resize(fd_index + 1, 0);
        }
        self.by_fd[fd_index] = index as u32 + 1;
        self.live += 1;
        Ok(())
    }

    fn disable(&mut self, selector: &Selector, fd: RawFd) -> Result<(), Failure> {
        let index = self.lookup(fd).ok_or(Failure::NotRegistered(fd))?;
        let generation = self.slots[index].generation.wrapping_add(1);
        match selector.disarm(fd, token(index, generation)) {
            Ok(()) => {
                let slot = &mut self.slots[index];
                slot.generation = generation;
                slot.state = State::Disabled;
                slot.parked = false;
                Ok(())
            }
            Err(e) => Err(self.vanished(index, fd, &e)),
        }
    }

    fn remove(&mut self, selector: &Selector, fd: RawFd) -> Result<CompletionEntry, Failure> {
        let index = self.lookup(fd).ok_or(Failure::NotRegistered(fd))?;
        match selector.delete(fd) {
            Ok(()) => {
                let key = self.slots[index].key;
                self.forget(index);
                // Rule 4: the generation changed above, so from here on every report the
                // kernel made for this registration is dropped; the caller queues this entry
                // after that point.
                Ok(CompletionEntry::notification(key, Events::REMOVE))
            }
            Err(e) => Err(self.vanished(index, fd, &e)),
        }
    }

    /// The kernel refused an operation on a registered descriptor. `ENOENT`/`EBADF` mean
    /// the socket was closed: its registration ended silently (rule 7).
    fn vanished(&mut self, index: usize, fd: RawFd, err: &std::io::Error) -> Failure {
        if is(err, libc::ENOENT) || is(err, libc::EBADF) {
            self.forget(index);
            Failure::NotRegistered(fd)
        } else {
            Failure::from_errno(fd, err)
        }
    }

    /// Plans a re-arm (ENABLE of a registered socket with its own key) or a DISABLE as one
    /// interest change that a batching backend submits later, together with its wait. The
    /// registry moves to the new state now, so that reports made under the old token are
    /// dropped from here on; [`settle`](Registry::settle) confirms or undoes it once the
    /// kernel has answered. Returns `None` for every other request, which goes through
    /// [`apply`](Registry::apply).
    pub(crate) fn plan(&mut self, request: Request) -> Option<Planned> {
        if self.closed {
            return None;
        }
        let (fd, interest) = match request {
            Request::Enable {
                fd,
                key,
                filter,
                trigger,
            } => {
                let index = self.lookup(fd)?;
                if self.slots[index].key != key {
                    return None;
                }
                (fd, Some((filter, trigger)))
            }
            Request::Disable { fd } => (fd, None),
            Request::None | Request::Remove { .. } => return None,
        };
        let index = self.lookup(fd)?;
        let previous = self.slots[index];
        let count = previous.inflight & !CONTENDED;
        if count == !CONTENDED {
            return None; // applied directly instead
        }
        let contended = if count > 0 { CONTENDED } else { 0 };
        self.slots[index].inflight = (previous.inflight | contended) + 1;
        let generation = previous.generation.wrapping_add(1);
        match interest {
            Some((filter, trigger)) => self.rearm(index, generation, filter, trigger),
            None => {
                let slot = &mut self.slots[index];
                slot.generation = generation;
                slot.state = State::Disabled;
                slot.parked = false;
            }
        }
        Some(Planned {
            change: Change {
                fd,
                token: token(index, generation),
                interest,
            },
            index,
            previous,
        })
    }

    /// Confirms a planned change with the kernel's answer, or repairs the state: a socket
    /// closed since it was registered ends silently (and a re-arm then registers whatever
    /// socket `fd` names now, as [`apply`](Registry::apply) would).
    pub(crate) fn settle(
        &mut self,
        selector: &Selector,
        planned: &Planned,
        result: std::io::Result<()>,
    ) -> Result<(), Failure> {
        if self.closed {
            return Err(Failure::PortClosed);
        }
        let fd = planned.change.fd;
        let index = planned.index;
        let planned_generation = planned.previous.generation.wrapping_add(1);
        // Changes of one registration planned by different threads reach the kernel in
        // whatever order their rings run. When the last of overlapping changes has settled,
        // the kernel may hold any of them: state the registry's view again, under a new
        // token so that nothing reported under an earlier one is delivered twice. (The
        // incarnation tells whether the slot still holds the same registration.)
        let slot = &mut self.slots[index];
        let mut resync = false;
        if slot.incarnation == planned.previous.incarnation && slot.state != State::Free {
            let count = (slot.inflight & !CONTENDED).saturating_sub(1);
            resync = count == 0 && slot.inflight & CONTENDED != 0;
            slot.inflight = if count == 0 {
                0
            } else {
                count | (slot.inflight & CONTENDED)
            };
        }
        let Err(e) = result else {
            if resync {
                self.resync(selector, index);
            }
            return Ok(());
        };
        let current = self.slots.get(index).map(|s| (s.generation, s.fd));
        if current != Some((planned_generation, fd)) {
            // Another thread changed this registration meanwhile; its state stands.
            if resync {
                self.resync(selector, index);
            }
            return Err(Failure::from_errno(fd, &e));
        }
        match planned.change.interest {
            Some((filter, trigger)) if is(&e, libc::ENOENT) => {
                self.forget(index);
                self.create(selector, fd, planned.previous.key, filter, trigger)
            }
            Some(_) if !is(&e, libc::EBADF) => {
                self.restore(index, planned);
                Err(Failure::from_errno(fd, &e))
            }
            Some(_) => {
                self.forget(index);
                Err(Failure::Closed(fd))
            }
            None => {
                let failure = self.vanished(index, fd, &e);
                if !matches!(failure, Failure::NotRegistered(_)) {
                    self.restore(index, planned);
                }
                Err(failure)
            }
        }
    }

    /// Undoes a planned change the kernel refused, keeping the count of changes in flight.
    fn restore(&mut self, index: usize, planned: &Planned) {
        let inflight = self.slots[index].inflight;
        self.slots[index] = Slot {
            inflight,
            ..planned.previous
        };
    }

    /// Makes the kernel's interest match the registry's state again, under a new token.
    fn resync(&mut self, selector: &Selector, index: usize) {
        let slot = &mut self.slots[index];
        slot.generation = slot.generation.wrapping_add(1);
        slot.parked = false;
        let (fd, t) = (slot.fd, token(index, slot.generation));
        let result = match slot.state {
            State::Armed => selector.modify(fd, t, slot.filter(), slot.trigger()),
            _ => selector.disarm(fd, t),
        };
        if let Err(e) = result {
            // Closed meanwhile: the registration ends silently, as anywhere else.
            let _ = self.vanished(index, fd, &e);
        }
    }

    /// Turns one kernel report into an entry, or drops it when it is stale or filtered out.
    ///
    /// A report with nothing the filter wants (a hang-up without `HANGUP` in the filter, an
    /// error already consumed) would come back at once under level-triggered interest, and
    /// a one-shot registration would be disarmed by it. Such a registration is *parked*:
    /// its kernel interest becomes persistent and edge-triggered, so the kernel reports the
    /// socket's next change instead of its lasting state; the first wanted report restores
    /// the registration's own trigger. No wanted report is lost, and no thread spins.
    pub(crate) fn deliver(
        &mut self,
        selector: &Selector,
        event: RawEvent,
    ) -> Option<CompletionEntry> {
        let index = (event.token & u64::from(u32::MAX)) as usize;
        let generation = (event.token >> 32) as u32;
        let slot = self.slots.get_mut(index)?;
        if slot.generation != generation || slot.state != State::Armed {
            return None;
        }
        let filter = slot.filter();
        let trigger = slot.trigger();
        let events = event.readiness.events(filter, slot.datagram);
        if events.is_empty() {
            let lasting = trigger.is_oneshot() || !trigger.is_edge();
            if lasting && !slot.parked {
                slot.parked = true;
                let parked = Trigger::PERSISTENT | Trigger::EDGE;
                // Failure means the socket is gone, which the next operation on it notices.
                let _ = selector.modify(slot.fd, event.token, filter, parked);
            }
            return None;
        }
        if trigger.is_oneshot() {
            slot.state = State::Fired;
        }
        if slot.parked {
            slot.parked = false;
            let _ = if trigger.is_oneshot() {
                selector.disarm(slot.fd, event.token)
            } else {
                selector.modify(slot.fd, event.token, filter, trigger)
            };
        }
        Some(CompletionEntry::notification(slot.key, events))
    }

    /// Ends every registration (the port is closing): no entries, no claims left.
    pub(crate) fn close(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        let slots = std::mem::take(&mut self.slots);
        owners::unregister_port(
            self.port,
            slots
                .iter()
                .filter(|s| s.state != State::Free)
                .map(|s| s.fd),
        );
        self.by_fd = Vec::new();
        self.free = NIL;
        self.live = 0;
    }

    fn lookup(&self, fd: RawFd) -> Option<usize> {
        match self.by_fd.get(fd as usize) {
            Some(&i) if i != 0 => Some(i as usize - 1),
            _ => None,
        }
    }

    fn rearm(&mut self, index: usize, generation: u32, filter: Events, trigger: Trigger) {
        let slot = &mut self.slots[index];
        slot.generation = generation;
        slot.filter = filter.bits() as u8;
        slot.trigger = trigger.bits();
        slot.state = State::Armed;
        slot.parked = false;
    }

    /// Ends the registration in `index`: its tokens go stale, its claim is given up.
    fn forget(&mut self, index: usize) {
        let fd = self.slots[index].fd;
        self.by_fd[fd as usize] = 0;
        self.live -= 1;
        self.release_slot(index);
        owners::release(fd, self.port);
    }

    /// Puts a new registration in `index`, as the slot's next incarnation.
    fn install(&mut self, index: usize, slot: Slot) {
        let incarnation = self.slots[index].incarnation.wrapping_add(1);
        self.slots[index] = Slot {
            incarnation,
            ..slot
        };
    }

    fn alloc(&mut self) -> usize {
        if self.free == NIL {
            self.slots.push(Slot {
                key: NIL as usize,
                fd: -1,
                generation: 0,
                filter: 0,
                trigger: 0,
                state: State::Free,
                datagram: false,
                parked: false,
                inflight: 0,
                incarnation: 0,
            });
            return self.slots.len() - 1;
        }
        let index = self.free as usize;
        self.free = self.slots[index].key as u32;
        index
    }

    fn release_slot(&mut self, index: usize) {
        let slot = &mut self.slots[index];
        slot.generation = slot.generation.wrapping_add(1);
        slot.state = State::Free;
        slot.inflight = 0;
        slot.key = self.free as usize;
        slot.fd = -1;
        self.free = index as u32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_is_24_bytes() {
        assert_eq!(std::mem::size_of::<Slot>(), 24);
    }

    #[test]
    fn tokens_never_collide_with_sentinels() {
        let last = token(MAX_SLOTS - 1, u32::MAX);
        assert_ne!(last, sys::WAKE_TOKEN);
        assert_ne!(last, sys::PROBE_TOKEN);
    }
}

/// loom models of the registry's ordering guarantees:
/// `RUSTFLAGS="--cfg loom" cargo test --release --lib model`.
///
/// The registry runs under one lock, with real epoll calls inside it; loom explores the
/// order in which a thread validating a kernel report it harvested earlier and a thread
/// changing the registration take that lock. The harvested report is simulated by its
/// token, captured before either thread runs.
#[cfg(all(test, loom))]
mod model {
    use super::*;
    use crate::port::Backend;
    use crate::sync::{Arc, Mutex};
    use loom::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use loom::thread;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    struct Fixture {
        selector: Arc<Selector>,
        registry: Arc<Mutex<Registry>>,
        fd: RawFd,
        /// The report the kernel made under the registration's first token.
        harvested: RawEvent,
        /// Keeps the socket pair open for the model's length.
        _pair: (UnixStream, UnixStream),
    }

    fn fixture(trigger: Trigger) -> Fixture {
        let selector = Arc::new(Selector::new(Backend::Epoll).expect("epoll"));
        let mut registry = Registry::new(owners::register_port(selector.fd()));
        let pair = UnixStream::pair().expect("socketpair");
        let fd = pair.1.as_raw_fd();
        let enable = Request::Enable {
            fd,
            key: 7,
            filter: Events::IN,
            trigger,
        };
        registry.apply(&selector, enable).expect("enable");
        let index = registry.lookup(fd).expect("registered");
        let harvested = RawEvent {
            token: token(index, registry.slots[index].generation),
            readiness: sys::Readiness::new(sys::Readiness::READABLE),
        };
        Fixture {
            selector,
            registry: Arc::new(Mutex::new(registry)),
            fd,
            harvested,
            _pair: pair,
        }
    }

    /// A thread that validates the harvested report under the registry's lock; returns
    /// what it delivered and its place in `seq`.
    fn validate_harvested(
        fx: &Fixture,
        seq: &Arc<AtomicUsize>,
    ) -> thread::JoinHandle<(Option<CompletionEntry>, usize)> {
        let (registry, selector, seq) = (fx.registry.clone(), fx.selector.clone(), seq.clone());
        let event = fx.harvested;
        thread::spawn(move || {
            let mut registry = registry.lock().unwrap();
            let got = registry.deliver(&selector, event);
            (got, seq.fetch_add(1, SeqCst))
        })
    }

    /// One thread's re-arm the io_uring way: planned under the lock, applied to the kernel
    /// outside it, settled under it again.
    fn rearm_outside_the_lock(fx: &Fixture, filter: Events, ring_runs_late: bool) {
        let rearm = Request::Enable {
            fd: fx.fd,
            key: 7,
            filter,
            trigger: Trigger::ONESHOT | Trigger::LEVEL,
        };
        let planned = fx.registry.lock().unwrap().plan(rearm).expect("planned");
        if ring_runs_late {
            // Let the other thread's whole re-arm run before this one reaches the kernel.
            thread::yield_now();
        }
        let mut results = Vec::new();
        fx.selector
            .submit(&[planned.change], &mut results, &mut Vec::new(), 0, None)
            .expect("submit");
        let result = results.pop().expect("a result");
        let settled = fx
            .registry
            .lock()
            .unwrap()
            .settle(&fx.selector, &planned, result);
        assert_eq!(settled, Ok(()));
    }

    fn model(f: impl Fn() + Sync + Send + 'static) {
        let mut builder = loom::model::Builder::new();
        if builder.preemption_bound.is_none() {
            builder.preemption_bound = Some(2);
        }
        builder.check(f);
    }

    /// Rule 4: a report validated after the REMOVE is dropped; one validated before it is
    /// delivered. Either way the REMOVE entry is produced once.
    #[test]
    fn remove_entry_is_last() {
        model(|| {
            let fx = fixture(Trigger::PERSISTENT | Trigger::LEVEL);
            let seq = Arc::new(AtomicUsize::new(0));
            let validator = validate_harvested(&fx, &seq);
            let (remove, removed_at) = {
                let mut registry = fx.registry.lock().unwrap();
                let remove = registry.apply(&fx.selector, Request::Remove { fd: fx.fd });
                (remove, seq.fetch_add(1, SeqCst))
            };
            let (got, got_at) = validator.join().unwrap();
            let entry = remove.expect("remove").expect("a REMOVE entry");
            assert_eq!((entry.key, entry.events()), (7, Events::REMOVE));
            if got_at > removed_at {
                assert_eq!(got, None, "an entry validated after REMOVE was delivered");
            } else {
                assert_eq!(got.map(|e| (e.key, e.events())), Some((7, Events::IN)));
            }
            fx.registry.lock().unwrap().close();
        });
    }

    /// Rule 12 with the batching backends' plan/settle split: a re-arm planned by one
    /// thread, applied to the kernel outside the lock and settled later, races a thread
    /// validating the first arm's report. The first arm yields at most one entry, and none
    /// once the re-arm is planned.
    #[test]
    fn planned_rearm_drops_the_old_arms_report() {
        model(|| {
            let fx = fixture(Trigger::ONESHOT | Trigger::LEVEL);
            let seq = Arc::new(AtomicUsize::new(0));
            let validator = validate_harvested(&fx, &seq);
            let rearm = Request::Enable {
                fd: fx.fd,
                key: 7,
                filter: Events::IN,
                trigger: Trigger::ONESHOT | Trigger::LEVEL,
            };
            let (planned, planned_at) = {
                let mut registry = fx.registry.lock().unwrap();
                let planned = registry.plan(rearm).expect("a re-arm is planned");
                (planned, seq.fetch_add(1, SeqCst))
            };
            let mut results = Vec::new();
            fx.selector
                .submit(&[planned.change], &mut results, &mut Vec::new(), 0, None)
                .expect("submit");
            let settled = fx.registry.lock().unwrap().settle(
                &fx.selector,
                &planned,
                results.pop().expect("a result"),
            );
            assert_eq!(settled, Ok(()));
            let (got, got_at) = validator.join().unwrap();
            if got_at > planned_at {
                assert_eq!(
                    got, None,
                    "the old arm's report was delivered after the re-arm"
                );
            } else {
                assert_eq!(got.map(|e| e.key), Some(7));
            }
            // The new arm is armed: its own report is delivered, once.
            let mut registry = fx.registry.lock().unwrap();
            let fresh = RawEvent {
                token: planned.change.token,
                ..fx.harvested
            };
            assert!(registry.deliver(&fx.selector, fresh).is_some());
            assert!(registry.deliver(&fx.selector, fresh).is_none());
            registry.close();
        });
    }

    /// Two threads re-arm one registration at once, each applying its change to the kernel
    /// outside the lock, so the kernel may see them in the other order than the registry.
    /// Afterwards the socket (readable) must still produce an entry: the registration is
    /// not left silent under a token the registry no longer accepts.
    #[test]
    fn concurrent_rearms_leave_the_registration_armed() {
        model(|| {
            let fx = Arc::new(fixture(Trigger::ONESHOT | Trigger::LEVEL));
            fx._pair.0.set_nonblocking(true).unwrap();
            std::io::Write::write_all(&mut &fx._pair.0, b"x").expect("write");
            let other = {
                let fx = fx.clone();
                thread::spawn(move || {
                    rearm_outside_the_lock(&fx, Events::IN | Events::HANGUP, false)
                })
            };
            rearm_outside_the_lock(&fx, Events::IN, true);
            other.join().unwrap();
            let mut raw = Vec::new();
            fx.selector
                .wait(&mut raw, 8, Some(std::time::Duration::ZERO))
                .expect("epoll_wait");
            let mut registry = fx.registry.lock().unwrap();
            let delivered = raw
                .iter()
                .filter_map(|e| registry.deliver(&fx.selector, *e))
                .count();
            assert_eq!(delivered, 1, "reports {raw:?} gave {delivered} entries");
            registry.close();
        });
    }
}

//! A cost model of the contract, not a contender: the one-shot level echo of
//! [`probe`](super::probe) with every step that SPEC section 3 requires of one `process`
//! call written inline at its cheapest, and nothing else. It answers one question with a
//! measurement instead of an estimate: how many user-space instructions per entry would
//! the cheapest implementation of the contract pay, on one thread, one entry per call?
//!
//! What it keeps, each at one load, one read-modify-write or one table lookup, and what
//! it leaves out, is listed at [`Floor::turn`]. It is single-threaded in fact but pays the
//! atomics a shared port needs; it has no error path beyond a check of each result, no
//! posted entries, no REMOVE, no persistent registrations, no identity checks through
//! other descriptors. Anything the model leaves out can only add to what it measures, so
//! it is a floor: a real port costs at least this much.

use std::cell::Cell;
use std::io;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

use socknotify::CompletionEntry;

use crate::contender::epoll::{Epoll, ONESHOT_IN};
use crate::run::TICK;
use crate::workload::{Sockets, BATCH};

/// What a registration carries, laid out as [`socknotify::Registration`] is.
#[derive(Clone, Copy, Debug)]
pub struct Change {
    socket: i32,
    key: usize,
    events: u16,
    operation: u8,
    trigger: u8,
    result: i32,
}

impl Change {
    /// ENABLE, `IN`, one-shot level.
    pub fn oneshot_in(socket: i32, key: usize) -> Change {
        Change {
            socket,
            key,
            events: 0x01,
            operation: 0x01,
            trigger: 0x01 | 0x04,
            result: 0,
        }
    }
}

/// The trigger bits an ENABLE may carry (rule 1: at most one of ONESHOT/PERSISTENT,
/// exactly one of LEVEL/EDGE), as a table of 16: non-zero for a valid trigger.
const VALID_TRIGGER: [u8; 16] = {
    let mut t = [0u8; 16];
    let mut bits = 0;
    while bits < 16 {
        let shots = bits & 0x3;
        let level = bits & 0x4 != 0;
        let edge = bits & 0x8 != 0;
        if shots != 0x3 && level != edge {
            t[bits] = 1;
        }
        bits += 1;
    }
    t
};

/// A slot's word: generation (bits 0-31), armed (32), filter (40-47).
const ARMED: u64 = 1 << 32;

struct Slot {
    lock: AtomicU32,
    word: AtomicU64,
    key: usize,
    fd: i32,
}

thread_local! {
    /// The port this thread is released on (0: none), as a port records a release.
    static RELEASED: Cell<usize> = const { Cell::new(0) };
}

/// The model's port: an epoll instance, a slot per socket, a descriptor index, a gate word.
pub struct Floor<'a> {
    set: &'a Sockets,
    epoll: Epoll,
    slots: Vec<Slot>,
    by_fd: Vec<u32>,
    /// Released threads (low 32 bits) and threads in the kernel wait (high 32 bits).
    gate: AtomicU64,
    concurrency: u64,
    events: Vec<libc::epoll_event>,
    changes: Vec<Change>,
    entries: Vec<CompletionEntry>,
    buf: Vec<u8>,
}

impl<'a> Floor<'a> {
    /// Registers every socket of `set` one-shot level `IN` (its key is its index) and
    /// sends the first message of each pair.
    pub fn new(set: &'a Sockets, buf: Vec<u8>) -> io::Result<Floor<'a>> {
        let epoll = Epoll::new()?;
        let mut slots = Vec::new();
        let mut by_fd = Vec::new();
        for key in 0..set.len() {
            let fd = set.raw(key);
            let index = slots.len() as u32;
            slots.push(Slot {
                lock: AtomicU32::new(0),
                word: AtomicU64::new(ARMED | 0x01 << 40),
                key,
                fd,
            });
            let at = fd as usize;
            if by_fd.len() <= at {
                by_fd.resize(at + 1, 0);
            }
            by_fd[at] = index + 1;
            epoll.add(fd, ONESHOT_IN, u64::from(index))?;
        }
        set.kick()?;
        Ok(Floor {
            set,
            epoll,
            slots,
            by_fd,
            gate: AtomicU64::new(0),
            concurrency: 2,
            events: vec![libc::epoll_event { events: 0, u64: 0 }; BATCH],
            changes: Vec::with_capacity(BATCH),
            entries: vec![CompletionEntry::default(); BATCH],
            buf,
        })
    }

    /// One `process` call and the echo of what it delivered; returns (entries, messages).
    ///
    /// Kept, in order:
    /// 1. rule 1: each change's operation, filter and trigger bits checked;
    /// 2. rule 6: the slot found through the descriptor it was registered with, and the
    ///    descriptor and key compared with the slot's;
    /// 3. ordering of a registration's changes: the slot's lock around its kernel
    ///    operation (one compare-exchange, one store);
    /// 4. delivery without the lock: the armed state published in the slot's word (one
    ///    compare-exchange) before `epoll_ctl(EPOLL_CTL_MOD)`, whose result is checked and
    ///    written back into the change;
    /// 5. rule 18: the thread's release from its last call given back and the kernel wait
    ///    entered (one compare-exchange of the gate word, which also tells that no posted
    ///    entry waits), and a release taken on the way back (another);
    /// 6. a finite timeout: the clock read once, for the deadline a repeated wait needs;
    /// 7. rules 2 and 3: each report validated by its slot's generation and state, and a
    ///    one-shot registration disarmed by one compare-exchange, the entry written with
    ///    the key and the events the filter lets through (ERR always);
    /// 8. the thread's release recorded in a thread-local.
    #[inline(never)]
    pub fn turn(&mut self) -> io::Result<(u64, u64)> {
        // 1-4: the changes.
        for change in self.changes.iter_mut() {
            let valid = change.operation == 0x01
                && change.events & !0x07 == 0
                && change.trigger < 16
                && VALID_TRIGGER[change.trigger as usize] != 0
                && change.socket >= 0;
            let index = match self.by_fd.get(change.socket as usize) {
                Some(&i) if valid && i != 0 => (i - 1) as usize,
                _ => {
                    change.result = libc::EINVAL;
                    continue;
                }
            };
            let slot = &self.slots[index];
            if slot
                .lock
                .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
            {
                return Err(io::Error::other("floor model: a slot lock was taken"));
            }
            let word = slot.word.load(Ordering::Acquire);
            if slot.fd != change.socket || slot.key != change.key {
                slot.lock.store(0, Ordering::Release);
                change.result = libc::EINVAL;
                continue;
            }
            let armed = (word & 0xffff_ffff) | ARMED | u64::from(change.events) << 40;
            if slot
                .word
                .compare_exchange(word, armed, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                return Err(io::Error::other("floor model: the word changed"));
            }
            let token = (word & 0xffff_ffff) << 32 | index as u64;
            change.result = match self.epoll.modify(change.socket, ONESHOT_IN, token) {
                Ok(()) => 0,
                Err(e) => e.raw_os_error().unwrap_or(libc::EIO),
            };
            slot.lock.store(0, Ordering::Release);
        }
        // 5: give back the last release and enter the kernel wait, in one exchange.
        let released = RELEASED.with(Cell::get) != 0;
        let gate = self.gate.load(Ordering::Acquire);
        let entered = gate - u64::from(released) + (1 << 32);
        if self
            .gate
            .compare_exchange(gate, entered, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Err(io::Error::other("floor model: the gate changed"));
        }
        // 6: the deadline.
        let deadline = Instant::now().checked_add(TICK);
        // The baseline loop's wait: `TICK`, an interrupted wait counted as empty.
        let n = self.epoll.wait(&mut self.events)?;
        // 5: back from the kernel, take a release if one is free.
        let gate = self.gate.load(Ordering::Acquire);
        let took = gate & 0xffff_ffff < self.concurrency;
        if !took {
            return Err(io::Error::other(
                "floor model: no release free on one thread",
            ));
        }
        let running = gate - (1 << 32) + 1;
        if self
            .gate
            .compare_exchange(gate, running, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Err(io::Error::other("floor model: the gate changed"));
        }
        // 7: validate and deliver.
        let mut got = 0;
        for event in &self.events[..n] {
            let (index, generation) = (event.u64 as u32 as usize, event.u64 >> 32);
            let Some(slot) = self.slots.get(index) else {
                continue;
            };
            let word = slot.word.load(Ordering::Acquire);
            if word & 0xffff_ffff != generation || word & ARMED == 0 {
                continue;
            }
            let bits = event.events;
            let hangup = (bits & (libc::EPOLLRDHUP | libc::EPOLLHUP) as u32 != 0) as u32;
            let mut events =
                (bits & libc::EPOLLIN as u32) | (bits & libc::EPOLLOUT as u32) >> 1 | hangup << 2;
            events &= (word >> 40) as u32 & 0xff;
            events |= (bits & libc::EPOLLERR as u32) << 3;
            if events == 0 {
                continue;
            }
            if slot
                .word
                .compare_exchange(word, word & !ARMED, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                continue;
            }
            self.entries[got] = CompletionEntry::new(slot.key, events, 0);
            got += 1;
        }
        // 8: the release, or none.
        if got > 0 {
            RELEASED.with(|r| r.set(1));
        } else {
            self.gate.fetch_sub(1, Ordering::AcqRel);
            RELEASED.with(|r| r.set(0));
        }
        if deadline.is_none() {
            return Err(io::Error::other("floor model: no deadline"));
        }
        // The caller's part, as in the socknotify loop: check the changes' results, echo,
        // re-arm in the next call.
        if let Some(failed) = self.changes.iter().find(|c| c.result != 0) {
            return Err(io::Error::from_raw_os_error(failed.result));
        }
        self.changes.clear();
        let mut messages = 0;
        for entry in &self.entries[..got] {
            if self.set.echo(entry.key, &mut self.buf)? {
                messages += 1;
            }
            self.changes
                .push(Change::oneshot_in(self.set.raw(entry.key), entry.key));
        }
        Ok((got as u64, messages))
    }
}

//! Posted entries, wakeups, and the concurrency gate (rule 18).
//!
//! # The gate
//!
//! A port lets at most `concurrency` threads be *released* at once: a thread is released
//! from the moment a dequeue returns entries to it until it calls again (or declares that
//! it is about to block elsewhere, or exits). Waiting threads are not counted, as on
//! Windows.
//!
//! While fewer than `concurrency` threads are released, a thread that calls waits in the
//! kernel, and any number may wait there at once: the kernel serves them most recent first
//! (epoll's wait queue), so the thread that called last gets the next report or wake.
//! While `concurrency` threads are released, a thread that calls waits here instead, on a
//! stack, most recent on top. A thread that calls again while released re-takes its own
//! place without waking anyone: it is the most recent waiter, so it goes first. A released
//! thread that leaves otherwise (blocks elsewhere, exits) hands its place to the top of the
//! stack, which then waits in the kernel as the most recent waiter.
//!
//! A thread in the kernel may wake with reports while every slot is taken (it entered when
//! one was free). It then validates them into the queue and waits on the stack: nothing is
//! lost, and the next thread to run takes them.
//!
//! # One word
//!
//! Everything a thread decides on is one atomic word: the released threads, the threads in
//! the kernel wait, the threads on the stack, whether the queue is non-empty, whether a
//! kernel wake is outstanding, and whether the port is closed. Each step of a call (enter,
//! back from the kernel, leave) is one compare-exchange of that word, so two threads can
//! never both take the last slot, and a thread that goes to wait does so in the same
//! instant as it sees there is nothing to take: a thread that queues an entry or frees a
//! slot later sees it waiting and wakes it. No lock is taken on the way of a thread that
//! calls again with nothing queued, waits in the kernel and runs; the stack's lock is taken
//! only to park or to wake a parked thread.
//!
//! # Posted entries
//!
//! Posted entries, REMOVE entries, and entries validated by a thread that could not run
//! wait in a lock-free FIFO queue. The word's `QUEUED` bit is set by whoever pushes (after
//! the push) and cleared by a taker that found the queue empty (which then looks again,
//! and sets it back if an entry arrived meanwhile), so the bit is set whenever an entry
//! waits. Queuing one wakes at most one thread: one waiting in the kernel (through the
//! selector's `wake`) if there is one and none is already woken for an earlier entry,
//! otherwise the top of the stack, if a slot is free.
//!
//! # Released threads
//!
//! Which port a thread is released on, and the persistent registrations it owes a re-arm,
//! are kept in a thread-local by `port.rs`.

use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed};
use std::time::{Duration, Instant};

use crate::sync::{Arc, AtomicBool, AtomicU64, Condvar, Mutex, MutexGuard};

use crate::error::Failure;
use crate::event::CompletionEntry;

/// The `rearm` of a queued entry that owes none.
pub(crate) const NO_REARM: u64 = u64::MAX;

/// What a port's threads are doing, at one instant ([`CompletionPort::stats`]).
///
/// [`CompletionPort::stats`]: crate::CompletionPort::stats
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PortStats {
    /// Posted and REMOVE entries (and validated ones no thread could take yet) waiting to
    /// be dequeued.
    pub queued: usize,
    /// Threads released (between a dequeue that returned entries and their next call),
    /// including those that came back from [`CompletionPort::blocking`].
    ///
    /// [`CompletionPort::blocking`]: crate::CompletionPort::blocking
    pub released: usize,
    /// Threads waiting in the kernel for readiness.
    pub waiting_in_kernel: usize,
    /// Threads waiting for a slot because `concurrency` threads are released.
    pub waiting_for_slot: usize,
}

/// An entry in the queue, with the registration it owes a re-arm ([`NO_REARM`]: none).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Queued {
    pub(crate) entry: CompletionEntry,
    pub(crate) rearm: u64,
}

// The gate's word: three 20-bit counts and three flags. A count cannot overflow into its
// neighbour: no machine runs 2^20 threads in one process (Linux's `threads-max` is far
// lower), and `count` checks it in debug builds.
const BITS: u32 = 20;
const COUNT: u64 = (1 << BITS) - 1;
/// One released thread.
const RUNNING: u64 = 1;
/// One thread in the kernel wait.
const IN_KERNEL: u64 = 1 << BITS;
/// One thread on the stack (parked, or on its way there).
const PARKED: u64 = 1 << (2 * BITS);
/// The queue holds an entry.
const QUEUED: u64 = 1 << 60;
/// A kernel wake was sent and no waiter has seen it yet. Wakes sent while one is pending
/// could coalesce in the kernel, so at most one is outstanding; whoever sees it passes the
/// next one on if entries remain.
const WAKE_PENDING: u64 = 1 << 61;
const CLOSED: u64 = 1 << 62;

/// The count of `unit` (one of [`RUNNING`], [`IN_KERNEL`], [`PARKED`]) in `word`.
fn count(word: u64, unit: u64) -> usize {
    let n = (word / unit) & COUNT;
    debug_assert!(n < COUNT, "a gate count overflowed");
    n as usize
}

/// The FIFO of queued entries: lock-free (crossbeam's segmented queue); under loom, a
/// locked deque with the same interface, so that the models explore its interleavings.
#[cfg(not(loom))]
type Fifo = crossbeam_queue::SegQueue<Queued>;

#[cfg(loom)]
#[derive(Debug, Default)]
struct Fifo(Mutex<std::collections::VecDeque<Queued>>);

#[cfg(loom)]
impl Fifo {
    fn new() -> Fifo {
        Fifo::default()
    }
    fn push(&self, q: Queued) {
        self.0.lock().unwrap().push_back(q);
    }
    fn pop(&self) -> Option<Queued> {
        self.0.lock().unwrap().pop_front()
    }
    fn is_empty(&self) -> bool {
        self.0.lock().unwrap().is_empty()
    }
    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

/// The gate's shared state.
#[derive(Debug)]
pub(crate) struct Gate {
    concurrency: usize,
    word: AtomicU64,
    queue: Fifo,
    stack: Mutex<Stack>,
}

/// The parked threads, most recent last.
#[derive(Debug, Default)]
struct Stack {
    waiters: Vec<Arc<Waiter>>,
    /// Wakes for threads counted in the word's `PARKED` that had not reached the stack
    /// when they were woken; the next to arrive takes one instead of waiting.
    credits: usize,
}

/// One thread waiting for a slot.
#[derive(Debug)]
pub(crate) struct Waiter {
    cv: Condvar,
    /// Written under the stack's lock.
    woken: AtomicBool,
}

impl Waiter {
    pub(crate) fn new() -> Waiter {
        Waiter {
            cv: Condvar::new(),
            woken: AtomicBool::new(false),
        }
    }

    fn wake(&self) {
        self.woken.store(true, Relaxed);
        self.cv.notify_one();
    }
}

/// When a call gives up waiting. A call's clock is read once, when it starts, and only for
/// a finite, non-zero timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Deadline {
    /// No timeout (or one too large to represent).
    Never,
    /// A zero timeout: look, never wait.
    Passed,
    At(Instant),
}

impl Deadline {
    pub(crate) fn after(timeout: Option<Duration>) -> Deadline {
        match timeout {
            None => Deadline::Never,
            Some(Duration::ZERO) => Deadline::Passed,
            Some(t) => Instant::now()
                .checked_add(t)
                .map_or(Deadline::Never, Deadline::At),
        }
    }

    pub(crate) fn passed(self) -> bool {
        match self {
            Deadline::Never => false,
            Deadline::Passed => true,
            Deadline::At(d) => d <= Instant::now(),
        }
    }

    /// The time left (`None`: for ever).
    pub(crate) fn left(self) -> Option<Duration> {
        match self {
            Deadline::Never => None,
            Deadline::Passed => Some(Duration::ZERO),
            Deadline::At(d) => Some(d.saturating_duration_since(Instant::now())),
        }
    }
}

/// How a thread goes on from [`Gate::enter`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Enter {
    /// It took this many queued entries and is released.
    Taken(usize),
    /// It waits in the kernel; afterwards it calls [`Gate::back`].
    Kernel,
    /// The deadline passed while it waited for a slot.
    Timeout,
}

/// How a thread goes on after a kernel wait ([`Gate::back`]).
pub(crate) enum Back<'a> {
    /// It counts as released: it validates its reports into its buffer, then calls
    /// [`Gate::ran`].
    Run,
    /// Every slot is taken: it validates its reports into the queue through this, then
    /// enters again (and waits on the stack).
    Full(Stash<'a>),
}

/// The queue, for a thread that could not run; its drop marks the queue non-empty.
pub(crate) struct Stash<'a> {
    gate: &'a Gate,
    pushed: bool,
}

impl Stash<'_> {
    pub(crate) fn push(&mut self, entry: CompletionEntry, rearm: u64) {
        self.gate.queue.push(Queued { entry, rearm });
        self.pushed = true;
    }
}

impl Drop for Stash<'_> {
    fn drop(&mut self) {
        // The thread enters again next, and takes them itself if a slot is free by then;
        // otherwise whoever frees a slot sees the bit and wakes the stack.
        if self.pushed {
            self.gate.word.fetch_or(QUEUED, AcqRel);
        }
    }
}

/// What [`Gate::enter`] decided in its compare-exchange.
#[derive(Clone, Copy)]
enum Step {
    Closed,
    Take,
    Kernel,
    Timeout,
    Park,
}

/// What a thread does when a slot is free and nothing is queued.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Then {
    /// Waits in the kernel (a call).
    Wait,
    /// Gives up (the last look of a call whose deadline passed).
    GiveUp,
}

impl Gate {
    pub(crate) fn new(concurrency: usize) -> Gate {
        Gate {
            concurrency,
            word: AtomicU64::new(0),
            queue: Fifo::new(),
            stack: Mutex::new(Stack::default()),
        }
    }

    pub(crate) fn concurrency(&self) -> usize {
        self.concurrency
    }

    fn stack(&self) -> MutexGuard<'_, Stack> {
        // Every critical section leaves the stack consistent before it can panic.
        self.stack.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes the word by `f` (which returns the new word and what it decided) in one
    /// compare-exchange, trying again with the current word while another thread changes it.
    fn transition<T>(&self, mut f: impl FnMut(u64) -> (u64, T)) -> (u64, T) {
        let mut current = self.word.load(Acquire);
        loop {
            let (new, decided) = f(current);
            if new == current {
                return (new, decided);
            }
            match self
                .word
                .compare_exchange_weak(current, new, AcqRel, Acquire)
            {
                Ok(_) => return (new, decided),
                Err(actual) => current = actual,
            }
        }
    }

    fn has_slot(&self, word: u64) -> bool {
        count(word, RUNNING) < self.concurrency
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.word.load(Acquire) & CLOSED != 0
    }

    /// A snapshot of the gate for [`CompletionPort::stats`](crate::CompletionPort::stats).
    pub(crate) fn stats(&self) -> PortStats {
        let word = self.word.load(Acquire);
        PortStats {
            queued: if word & CLOSED != 0 {
                0
            } else {
                self.queue.len()
            },
            released: count(word, RUNNING),
            waiting_in_kernel: count(word, IN_KERNEL),
            waiting_for_slot: self.stack().waiters.len(),
        }
    }

    /// A thread calls (`released_here`: it was released on this port until now, and calls
    /// again). It takes queued entries into `out` (their owed re-arms into `rearms`) if a
    /// slot is free, else waits for one until `deadline`. The `bool` says whether the
    /// caller must wake a kernel waiter through the selector.
    ///
    /// One compare-exchange decides; only what follows a decision other than waiting in
    /// the kernel (taking, parking, trying again) is out of line, in [`settle`](Gate::settle).
    #[inline]
    pub(crate) fn enter(
        &self,
        out: &mut [CompletionEntry],
        rearms: &mut Vec<u64>,
        deadline: Deadline,
        released_here: bool,
    ) -> Result<(Enter, bool), Failure> {
        // The caller's own slot, given back in the same step that decides what it does
        // next: nobody else can take it in between, and nobody is woken for it. Whether the
        // deadline passed is known without the clock here: a zero timeout has, any other
        // was set a moment ago.
        let own = if released_here { RUNNING } else { 0 };
        match self.step(own, deadline == Deadline::Passed, Then::Wait) {
            Step::Kernel => Ok((Enter::Kernel, false)),
            step => self.settle(step, out, rearms, deadline, Then::Wait),
        }
    }

    /// A thread whose deadline passed after a kernel wait takes queued entries into `out`
    /// (their owed re-arms into `rearms`) if a slot is free, and otherwise gives up: what
    /// [`enter`](Gate::enter) decides for a passed deadline, without counting the thread
    /// into the kernel wait it will not make. The `bool` says whether the caller must wake
    /// a kernel waiter through the selector.
    #[inline]
    pub(crate) fn last_look(
        &self,
        out: &mut [CompletionEntry],
        rearms: &mut Vec<u64>,
    ) -> Result<(usize, bool), Failure> {
        match self.step(0, true, Then::GiveUp) {
            Step::Timeout => Ok((0, false)),
            step => match self.settle(step, out, rearms, Deadline::Passed, Then::GiveUp)? {
                (Enter::Taken(n), wake) => Ok((n, wake)),
                (_, wake) => Ok((0, wake)),
            },
        }
    }

    /// What a thread does next when it calls, in one compare-exchange: gives back `own`,
    /// and takes a slot for the queue, or (a slot free, the queue empty) does `then`, or
    /// (every slot taken) times out if `expired`, else counts itself parked.
    #[inline]
    fn step(&self, own: u64, expired: bool, then: Then) -> Step {
        self.transition(|word| {
            let word = word - own;
            if word & CLOSED != 0 {
                (word, Step::Closed)
            } else if !self.has_slot(word) {
                if expired {
                    (word, Step::Timeout)
                } else {
                    (word + PARKED, Step::Park)
                }
            } else if word & QUEUED != 0 {
                (word + RUNNING, Step::Take)
            } else if then == Then::Wait {
                (word + IN_KERNEL, Step::Kernel)
            } else {
                (word, Step::Timeout)
            }
        })
        .1
    }

    /// Carries out `step` of [`enter`](Gate::enter) or [`last_look`](Gate::last_look), and
    /// the steps after it until the thread waits in the kernel, has entries, gives up, or
    /// fails.
    #[inline(never)]
    fn settle(
        &self,
        mut step: Step,
        out: &mut [CompletionEntry],
        rearms: &mut Vec<u64>,
        deadline: Deadline,
        then: Then,
    ) -> Result<(Enter, bool), Failure> {
        // A kernel wake owed by a slot this call took and gave back.
        let mut wake = false;
        loop {
            match step {
                Step::Kernel => return Ok((Enter::Kernel, wake)),
                Step::Closed => return Err(Failure::PortClosed),
                Step::Timeout => return Ok((Enter::Timeout, wake)),
                Step::Park => self.park(deadline),
                Step::Take => {
                    let taken = self.take(out, rearms);
                    if taken > 0 {
                        return Ok((Enter::Taken(taken), self.pass_on() || wake));
                    }
                    // Another thread took them first: give the slot back, start again.
                    wake |= self.leave();
                }
            }
            step = self.step(0, deadline.passed(), then);
        }
    }

    /// Takes queued entries into `out`; clears the `QUEUED` bit if it emptied the queue
    /// (and sets it again if an entry arrived meanwhile).
    #[inline(never)]
    fn take(&self, out: &mut [CompletionEntry], rearms: &mut Vec<u64>) -> usize {
        let mut n = 0;
        while n < out.len() {
            let Some(queued) = self.queue.pop() else {
                break;
            };
            out[n] = queued.entry;
            if queued.rearm != NO_REARM {
                rearms.push(queued.rearm);
            }
            n += 1;
        }
        if self.queue.is_empty() {
            self.word.fetch_and(!QUEUED, AcqRel);
            // A push that completed before the clear is seen here; one after it sets the
            // bit again itself.
            if !self.queue.is_empty() {
                self.word.fetch_or(QUEUED, AcqRel);
            }
        }
        n
    }

    /// A thread is back from the kernel; `saw_wake` says whether it saw a kernel wake.
    ///
    /// # Errors
    /// [`Failure::PortClosed`], with whether the caller must pass the closing wake on to
    /// another kernel waiter.
    #[inline]
    pub(crate) fn back(&self, saw_wake: bool) -> Result<Back<'_>, (Failure, bool)> {
        let (word, step) = self.transition(|word| {
            let mut word = word - IN_KERNEL;
            if saw_wake {
                word &= !WAKE_PENDING;
            }
            if word & CLOSED != 0 {
                (word, Step::Closed)
            } else if self.has_slot(word) {
                (word + RUNNING, Step::Take)
            } else {
                (word, Step::Park)
            }
        });
        match step {
            // Closing wakes kernel waiters one at a time: pass it on.
            Step::Closed => Err((Failure::PortClosed, count(word, IN_KERNEL) > 0)),
            Step::Take => Ok(Back::Run),
            _ => Ok(Back::Full(Stash {
                gate: self,
                pushed: false,
            })),
        }
    }

    /// A thread that counted as released after [`back`](Gate::back) validated `got`
    /// entries; it takes queued ones into `rest`. With none in all, it is not released
    /// after all. Returns how many it took and whether to wake a kernel waiter.
    #[inline]
    pub(crate) fn ran(
        &self,
        got: usize,
        rest: &mut [CompletionEntry],
        rearms: &mut Vec<u64>,
    ) -> (usize, bool) {
        let taken = if self.word.load(Acquire) & QUEUED != 0 {
            self.take(rest, rearms)
        } else {
            0
        };
        if got + taken == 0 {
            return (0, self.leave());
        }
        (taken, self.pass_on())
    }

    /// A thread left the kernel wait without coming back through [`back`](Gate::back) (a
    /// panic, or a wait that reported nothing, so that it has nothing to run); returns
    /// whether to wake a kernel waiter.
    pub(crate) fn abandon_kernel(&self) -> bool {
        self.word.fetch_sub(IN_KERNEL, AcqRel);
        self.pass_on()
    }

    /// Queues a posted or REMOVE entry. Returns whether the caller must wake one kernel
    /// waiter through the selector.
    pub(crate) fn push(&self, entry: CompletionEntry) -> Result<bool, Failure> {
        if self.is_closed() {
            return Err(Failure::PortClosed);
        }
        self.queue.push(Queued {
            entry,
            rearm: NO_REARM,
        });
        // Accepted: a thread that took a slot before a concurrent `close` may still take
        // it, so the post must not report failure now (a later one does). If the port was
        // closed meanwhile, the entry is dropped with the queue, as every queued entry of
        // a closed port is.
        self.word.fetch_or(QUEUED, AcqRel);
        Ok(self.pass_on())
    }

    /// Makes sure someone will serve the queue, or watch the kernel: a thread in the kernel
    /// (one outstanding wake at a time; returns true when the caller must send it), else
    /// the most recent parked waiter, if a slot is free.
    fn pass_on(&self) -> bool {
        let (_, wake) = self.transition(|word| {
            let queued = word & QUEUED != 0;
            if word & CLOSED != 0 || !self.has_slot(word) {
                (word, None)
            } else if queued && count(word, IN_KERNEL) > 0 {
                if word & WAKE_PENDING != 0 {
                    (word, None)
                } else {
                    (word | WAKE_PENDING, Some(true))
                }
            } else if count(word, PARKED) > 0 && (queued || count(word, IN_KERNEL) == 0) {
                (word, Some(false))
            } else {
                (word, None)
            }
        });
        match wake {
            Some(true) => true,
            Some(false) => {
                self.wake_parked();
                false
            }
            None => false,
        }
    }

    /// Wakes the most recent parked thread, or gives a credit to one on its way to the
    /// stack.
    #[inline(never)]
    fn wake_parked(&self) {
        let mut stack = self.stack();
        if let Some(waiter) = stack.waiters.pop() {
            self.word.fetch_sub(PARKED, AcqRel);
            waiter.wake();
        } else if count(self.word.load(Acquire), PARKED) > 0 {
            // Counted, but not on the stack yet (`park` takes this lock to get there).
            self.word.fetch_sub(PARKED, AcqRel);
            stack.credits += 1;
        }
    }

    /// A released thread leaves without calling again (it blocks elsewhere, exits, or
    /// calls another port): its slot goes to the most recent parked waiter. Returns whether
    /// to wake a kernel waiter.
    pub(crate) fn leave(&self) -> bool {
        let word = self.word.fetch_sub(RUNNING, AcqRel) - RUNNING;
        if word & CLOSED != 0 {
            return false;
        }
        if self.has_slot(word) && count(word, PARKED) > 0 {
            self.wake_parked();
            return false;
        }
        self.pass_on()
    }

    /// Takes a slot back after [`leave`](Gate::leave), even past the limit (as Windows does
    /// when a thread returns from blocking elsewhere).
    pub(crate) fn retake(&self) {
        self.word.fetch_add(RUNNING, AcqRel);
    }

    /// Waits on the stack until woken, closed, or `deadline`. The caller counted itself
    /// in `PARKED` (in the step that found every slot taken).
    #[inline(never)]
    fn park(&self, deadline: Deadline) {
        let waiter = waiter();
        let mut stack = self.stack();
        if self.is_closed() {
            return;
        }
        if stack.credits > 0 {
            stack.credits -= 1;
            return;
        }
        waiter.woken.store(false, Relaxed);
        stack.waiters.push(Arc::clone(&waiter));
        loop {
            stack = match deadline.left() {
                None => waiter.cv.wait(stack).unwrap_or_else(|e| e.into_inner()),
                Some(timeout) => {
                    waiter
                        .cv
                        .wait_timeout(stack, timeout)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
            if waiter.woken.load(Relaxed) || self.is_closed() {
                return;
            }
            if deadline.passed() {
                if let Some(pos) = stack.waiters.iter().rposition(|w| Arc::ptr_eq(w, &waiter)) {
                    stack.waiters.remove(pos);
                    self.word.fetch_sub(PARKED, AcqRel);
                }
                return;
            }
        }
    }

    /// Closes the gate: queued entries are dropped, parked waiters wake and fail, every
    /// later call fails. Returns whether the caller must wake a kernel waiter (each one that
    /// wakes passes the wake on). `false` if it was closed already.
    pub(crate) fn close(&self) -> bool {
        let before = self.word.fetch_or(CLOSED, AcqRel);
        if before & CLOSED != 0 {
            return false;
        }
        while self.queue.pop().is_some() {}
        let mut stack = self.stack();
        for waiter in stack.waiters.drain(..) {
            waiter.wake();
        }
        count(before, IN_KERNEL) > 0
    }
}

crate::sync::thread_local! {
    static WAITER: Arc<Waiter> = Arc::new(Waiter::new());
}

/// This thread's waiter; a fresh one in a thread-local destructor (rule 20).
fn waiter() -> Arc<Waiter> {
    WAITER
        .try_with(Arc::clone)
        .unwrap_or_else(|_| Arc::new(Waiter::new()))
}

#[cfg(all(test, loom))]
mod model {
    use super::*;
    use loom::sync::{Condvar, Mutex};
    use loom::thread;

    /// The kernel's wait: a pending-wake flag.
    struct Kernel {
        pending: Mutex<bool>,
        cv: Condvar,
    }

    impl Kernel {
        fn new() -> Arc<Kernel> {
            Arc::new(Kernel {
                pending: Mutex::new(false),
                cv: Condvar::new(),
            })
        }

        fn wake(&self) {
            *self.pending.lock().unwrap() = true;
            self.cv.notify_one();
        }

        /// Returns whether a wake was harvested; blocks only if `block`.
        fn wait(&self, block: bool) -> bool {
            let mut pending = self.pending.lock().unwrap();
            while block && !*pending {
                pending = self.cv.wait(pending).unwrap();
            }
            std::mem::replace(&mut *pending, false)
        }
    }

    /// The port's dequeue loop without sockets: enter, wait in the kernel, come back.
    fn dequeue(gate: &Gate, kernel: &Kernel, out: &mut [CompletionEntry]) -> usize {
        let mut rearms = Vec::new();
        loop {
            let (enter, wake) = match gate.enter(out, &mut rearms, Deadline::Never, false) {
                Ok(e) => e,
                Err(_) => return 0,
            };
            if wake {
                kernel.wake();
            }
            match enter {
                Enter::Taken(n) => return n,
                Enter::Timeout => return 0,
                Enter::Kernel => {}
            }
            let saw_wake = kernel.wait(true);
            match gate.back(saw_wake) {
                Err((_, pass_on)) => {
                    if pass_on {
                        kernel.wake();
                    }
                    return 0;
                }
                Ok(Back::Run) => {
                    let (taken, wake) = gate.ran(0, out, &mut rearms);
                    if wake {
                        kernel.wake();
                    }
                    if taken > 0 {
                        return taken;
                    }
                }
                // The fake kernel has no reports to stash.
                Ok(Back::Full(_)) => {}
            }
        }
    }

    /// Explores interleavings with at most `LOOM_MAX_PREEMPTIONS` (default 2) preemptions,
    /// which keeps each model to seconds while covering the classic lost-wakeup shapes.
    fn model(f: impl Fn() + Sync + Send + 'static) {
        let mut builder = loom::model::Builder::new();
        if builder.preemption_bound.is_none() {
            builder.preemption_bound = Some(2);
        }
        builder.check(f);
    }

    /// `n` threads that each dequeue one entry, run `released` while released, and give
    /// their slot back; they return the entry's key.
    fn dequeuers(
        gate: &Arc<Gate>,
        kernel: &Arc<Kernel>,
        n: usize,
        released: fn(&Gate),
    ) -> Vec<thread::JoinHandle<usize>> {
        (0..n)
            .map(|_| {
                let (gate, kernel) = (gate.clone(), kernel.clone());
                thread::spawn(move || {
                    let mut out = [CompletionEntry::default(); 1];
                    let n = dequeue(&gate, &kernel, &mut out);
                    assert_eq!(n, 1);
                    released(&gate);
                    release_current_thread(&gate, &kernel);
                    out[0].key
                })
            })
            .collect()
    }

    /// The keys the threads returned, sorted.
    fn joined(handles: Vec<thread::JoinHandle<usize>>) -> Vec<usize> {
        let mut keys: Vec<usize> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        keys.sort_unstable();
        keys
    }

    /// Gives back this thread's released slot, as its exit would.
    fn release_current_thread(gate: &Gate, kernel: &Kernel) {
        if gate.leave() {
            kernel.wake();
        }
    }

    fn post(gate: &Gate, kernel: &Kernel, key: usize) {
        if gate.push(CompletionEntry::new(key, 0, 0)).unwrap() {
            kernel.wake();
        }
    }

    /// Two posts, two waiting threads taking one entry each: both entries are delivered,
    /// once each, whatever the interleaving (no lost or coalesced-away wakeup).
    #[test]
    fn two_posts_reach_two_waiters() {
        model(|| {
            let gate = Arc::new(Gate::new(2));
            let kernel = Kernel::new();
            let handles = dequeuers(&gate, &kernel, 2, |_| {});
            post(&gate, &kernel, 1);
            post(&gate, &kernel, 2);
            let keys = joined(handles);
            assert_eq!(keys, [1, 2]);
        });
    }

    /// A zero-timeout dequeue while another thread posts: it takes the entry (at once,
    /// after its kernel look, or in its last look) or leaves it queued, and either way
    /// leaves no count behind but its own release.
    #[test]
    fn a_passed_deadline_leaves_nothing_behind() {
        model(|| {
            let gate = Arc::new(Gate::new(1));
            let kernel = Kernel::new();
            let poster = {
                let (gate, kernel) = (gate.clone(), kernel.clone());
                thread::spawn(move || post(&gate, &kernel, 1))
            };
            let mut out = [CompletionEntry::default(); 1];
            let mut rearms = Vec::new();
            let (enter, wake) = gate
                .enter(&mut out, &mut rearms, Deadline::Passed, false)
                .unwrap();
            if wake {
                kernel.wake();
            }
            let mut got = match enter {
                Enter::Taken(n) => n,
                Enter::Timeout => 0,
                // As the port does: the fake kernel reports only its wake, and a wait that
                // reported nothing comes back without a slot.
                Enter::Kernel if !kernel.wait(false) => {
                    if gate.abandon_kernel() {
                        kernel.wake();
                    }
                    0
                }
                Enter::Kernel => {
                    let Ok(Back::Run) = gate.back(true) else {
                        panic!("one thread, concurrency 1: it runs");
                    };
                    let (taken, wake) = gate.ran(0, &mut out, &mut rearms);
                    if wake {
                        kernel.wake();
                    }
                    taken
                }
            };
            if got == 0 {
                let (taken, wake) = gate.last_look(&mut out, &mut rearms).unwrap();
                if wake {
                    kernel.wake();
                }
                got = taken;
            }
            poster.join().unwrap();
            let stats = gate.stats();
            assert_eq!(stats.waiting_in_kernel, 0);
            assert_eq!(got + stats.queued, 1, "the entry was lost or doubled");
            assert_eq!(stats.released, got);
        });
    }

    /// Concurrency 1: while one thread is released, the other waits even with an entry
    /// queued; when the first gives its slot back, the second runs.
    #[test]
    fn concurrency_one_serialises_release() {
        model(|| {
            let gate = Arc::new(Gate::new(1));
            let kernel = Kernel::new();
            post(&gate, &kernel, 1);
            post(&gate, &kernel, 2);
            let handles = dequeuers(&gate, &kernel, 2, |gate| {
                let released = gate.stats().released;
                assert!(released <= 1, "{released} released with concurrency 1");
            });
            let keys = joined(handles);
            assert_eq!(keys, [1, 2]);
            assert_eq!(gate.stats(), PortStats::default());
        });
    }

    /// Concurrency 1 and three threads: two of them wait on the stack (or are on their
    /// way there, the credit path) while the third runs; each gives its slot back as it
    /// finishes, and every entry reaches exactly one thread.
    #[test]
    fn parked_threads_are_handed_the_slot_in_turn() {
        model(|| {
            let gate = Arc::new(Gate::new(1));
            let kernel = Kernel::new();
            for key in 1..=3 {
                post(&gate, &kernel, key);
            }
            let handles = dequeuers(&gate, &kernel, 3, |_| {});
            let keys = joined(handles);
            assert_eq!(keys, [1, 2, 3]);
            assert_eq!(gate.stats(), PortStats::default());
        });
    }

    /// Closing wakes a thread waiting in the kernel and one waiting for a slot.
    #[test]
    fn close_wakes_every_waiter() {
        model(|| {
            let gate = Arc::new(Gate::new(1));
            let kernel = Kernel::new();
            let handles: Vec<_> = (0..2)
                .map(|_| {
                    let (gate, kernel) = (gate.clone(), kernel.clone());
                    thread::spawn(move || {
                        let mut out = [CompletionEntry::default(); 1];
                        dequeue(&gate, &kernel, &mut out)
                    })
                })
                .collect();
            if gate.close() {
                kernel.wake();
            }
            for h in handles {
                assert_eq!(h.join().unwrap(), 0);
            }
            assert!(gate.push(CompletionEntry::default()).is_err());
        });
    }

    /// Rule 18, "a released thread that blocks frees its slot", with a settler that blocks:
    /// concurrency 1, thread A is released and then blocks elsewhere (it leaves), and
    /// inside that wait it calls the port again; thread B waits for a slot meanwhile.
    /// Both posted entries are delivered, and the released count never exceeds the
    /// concurrency except while A comes back from blocking.
    #[test]
    fn a_thread_that_blocks_hands_its_slot_on() {
        model(|| {
            let gate = Arc::new(Gate::new(1));
            let kernel = Kernel::new();
            post(&gate, &kernel, 1);
            let mut out = [CompletionEntry::default(); 1];
            assert_eq!(dequeue(&gate, &kernel, &mut out), 1); // A is released
            let b = {
                let (gate, kernel) = (gate.clone(), kernel.clone());
                thread::spawn(move || {
                    let mut out = [CompletionEntry::default(); 1];
                    let n = dequeue(&gate, &kernel, &mut out);
                    release_current_thread(&gate, &kernel);
                    (n, out[0].key)
                })
            };
            // A blocks elsewhere: its slot goes; inside, it posts and dequeues again.
            if gate.leave() {
                kernel.wake();
            }
            post(&gate, &kernel, 2);
            post(&gate, &kernel, 3);
            let n = dequeue(&gate, &kernel, &mut out);
            assert_eq!(n, 1);
            let mine = out[0].key;
            // Back from the inner call's release, then from blocking: A's release ended
            // inside, so the outer one is not taken back.
            release_current_thread(&gate, &kernel);
            let (n, theirs) = b.join().unwrap();
            assert_eq!(n, 1);
            let mut keys = [mine, theirs];
            keys.sort_unstable();
            assert_eq!(keys, [2, 3]);
            assert_eq!(gate.stats(), PortStats::default());
        });
    }
}

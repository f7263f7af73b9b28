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
//! one was free). It then validates them into the queue, under the gate's lock, and waits
//! on the stack: nothing is lost, and the next thread to run takes them.
//!
//! # Posted entries
//!
//! Posted entries, REMOVE entries, and entries validated by a thread that could not run
//! wait in a FIFO queue. Queuing one wakes at most one thread: one waiting in the kernel
//! (through the selector's `wake`) if there is one and none is already woken for an
//! earlier entry, otherwise the top of the stack, if a slot is free.
//!
//! # Released threads
//!
//! Which port a thread is released on, and the persistent registrations it owes a re-arm,
//! are kept in a thread-local by `port.rs`.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::Instant;

use crate::sync::{Arc, AtomicBool, Condvar, Mutex, MutexGuard};

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

/// The gate's shared state.
#[derive(Debug)]
pub(crate) struct Gate {
    concurrency: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
pub(crate) struct State {
    queue: VecDeque<Queued>,
    /// Released threads.
    running: usize,
    /// Threads in the kernel wait.
    in_kernel: usize,
    /// A kernel wake was sent and no waiter has seen it yet. Wakes sent while one is
    /// pending could coalesce in the kernel, so at most one is outstanding; whoever sees it
    /// passes the next one on if entries remain.
    wake_pending: bool,
    /// Threads waiting for a slot, most recent last.
    parked: Vec<Arc<Waiter>>,
    closed: bool,
}

/// One thread waiting for a slot.
#[derive(Debug)]
pub(crate) struct Waiter {
    cv: Condvar,
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
        self.woken.store(true, Ordering::Relaxed);
        self.cv.notify_one();
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
    /// Every slot is taken: it validates its reports into the queue through this guard,
    /// then enters again (and waits on the stack).
    Full(Stash<'a>),
}

/// The queue, held under the gate's lock, for a thread that could not run.
pub(crate) struct Stash<'a>(MutexGuard<'a, State>);

impl Stash<'_> {
    pub(crate) fn push(&mut self, entry: CompletionEntry, rearm: u64) {
        self.0.queue.push_back(Queued { entry, rearm });
    }
}

impl Gate {
    pub(crate) fn new(concurrency: usize) -> Gate {
        Gate {
            concurrency,
            state: Mutex::new(State::default()),
        }
    }

    pub(crate) fn concurrency(&self) -> usize {
        self.concurrency
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves the state consistent before it can panic.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// A snapshot of the gate for [`CompletionPort::stats`](crate::CompletionPort::stats).
    pub(crate) fn stats(&self) -> PortStats {
        let st = self.lock();
        PortStats {
            queued: st.queue.len(),
            released: st.running,
            waiting_in_kernel: st.in_kernel,
            waiting_for_slot: st.parked.len(),
        }
    }

    /// A thread calls (`released_here`: it was released on this port until now, and calls
    /// again). It takes queued entries into `out` (their owed re-arms into `rearms`) if a
    /// slot is free, else waits for one until `deadline`. The `bool` says whether the
    /// caller must wake a kernel waiter through the selector.
    pub(crate) fn enter(
        &self,
        out: &mut [CompletionEntry],
        rearms: &mut Vec<u64>,
        deadline: Option<Instant>,
        released_here: bool,
    ) -> Result<(Enter, bool), Failure> {
        let mut st = self.lock();
        if released_here {
            st.running -= 1;
        }
        loop {
            if st.closed {
                return Err(Failure::PortClosed);
            }
            if st.running < self.concurrency {
                if !st.queue.is_empty() {
                    let taken = st.take(out, rearms);
                    st.running += 1;
                    let wake = self.pass_on(&mut st);
                    return Ok((Enter::Taken(taken), wake));
                }
                st.in_kernel += 1;
                return Ok((Enter::Kernel, false));
            }
            if deadline.is_some_and(|d| d <= Instant::now()) {
                return Ok((Enter::Timeout, false));
            }
            st = self.park(st, deadline);
        }
    }

    /// A thread is back from the kernel; `saw_wake` says whether it saw a kernel wake.
    ///
    /// # Errors
    /// [`Failure::PortClosed`], with whether the caller must pass the closing wake on to
    /// another kernel waiter.
    pub(crate) fn back(&self, saw_wake: bool) -> Result<Back<'_>, (Failure, bool)> {
        let mut st = self.lock();
        st.in_kernel -= 1;
        if saw_wake {
            st.wake_pending = false;
        }
        if st.closed {
            // Closing wakes kernel waiters one at a time: pass it on.
            return Err((Failure::PortClosed, st.in_kernel > 0));
        }
        if st.running < self.concurrency {
            st.running += 1;
            return Ok(Back::Run);
        }
        Ok(Back::Full(Stash(st)))
    }

    /// A thread that counted as released after [`back`](Gate::back) validated `got`
    /// entries; it takes queued ones into `rest`. With none in all, it is not released
    /// after all. Returns how many it took and whether to wake a kernel waiter.
    pub(crate) fn ran(
        &self,
        got: usize,
        rest: &mut [CompletionEntry],
        rearms: &mut Vec<u64>,
    ) -> (usize, bool) {
        let mut st = self.lock();
        let taken = st.take(rest, rearms);
        if got + taken == 0 {
            st.running -= 1;
        }
        (taken, self.pass_on(&mut st))
    }

    /// A thread left the kernel wait without coming back through [`back`](Gate::back) (a
    /// panic); returns whether to wake a kernel waiter.
    pub(crate) fn abandon_kernel(&self) -> bool {
        let mut st = self.lock();
        st.in_kernel -= 1;
        self.pass_on(&mut st)
    }

    /// Queues a posted or REMOVE entry. Returns whether the caller must wake one kernel
    /// waiter through the selector.
    pub(crate) fn push(&self, entry: CompletionEntry) -> Result<bool, Failure> {
        let mut st = self.lock();
        if st.closed {
            return Err(Failure::PortClosed);
        }
        st.queue.push_back(Queued {
            entry,
            rearm: NO_REARM,
        });
        Ok(self.pass_on(&mut st))
    }

    /// Makes sure someone will serve the queue, or watch the kernel: a thread in the kernel
    /// (one outstanding wake at a time; returns true when the caller must send it), else
    /// the most recent parked waiter, if a slot is free.
    fn pass_on(&self, st: &mut State) -> bool {
        if st.closed || st.running >= self.concurrency {
            return false;
        }
        if !st.queue.is_empty() && st.in_kernel > 0 {
            let send = !st.wake_pending;
            st.wake_pending = true;
            return send;
        }
        if !st.queue.is_empty() || st.in_kernel == 0 {
            if let Some(w) = st.parked.pop() {
                w.wake();
            }
        }
        false
    }

    /// A released thread leaves without calling again (it blocks elsewhere, exits, or
    /// calls another port): its slot goes to the most recent parked waiter. Returns whether
    /// to wake a kernel waiter.
    pub(crate) fn leave(&self) -> bool {
        let mut st = self.lock();
        st.running -= 1;
        if st.closed {
            return false;
        }
        if st.running < self.concurrency {
            if let Some(w) = st.parked.pop() {
                w.wake();
                return false;
            }
        }
        self.pass_on(&mut st)
    }

    /// Takes a slot back after [`leave`](Gate::leave), even past the limit (as Windows does
    /// when a thread returns from blocking elsewhere).
    pub(crate) fn retake(&self) {
        self.lock().running += 1;
    }

    /// Waits on this thread's condition variable until woken, closed, or `deadline`.
    fn park<'a>(
        &'a self,
        mut st: MutexGuard<'a, State>,
        deadline: Option<Instant>,
    ) -> MutexGuard<'a, State> {
        let waiter = waiter();
        // `woken` is only written under the lock, which we hold.
        waiter.woken.store(false, Ordering::Relaxed);
        st.parked.push(Arc::clone(&waiter));
        loop {
            st = match deadline {
                None => waiter.cv.wait(st).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let timeout = d.saturating_duration_since(Instant::now());
                    waiter
                        .cv
                        .wait_timeout(st, timeout)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
            if waiter.woken.load(Ordering::Relaxed) || st.closed {
                return st;
            }
            if deadline.is_some_and(|d| d <= Instant::now()) {
                if let Some(pos) = st.parked.iter().rposition(|w| Arc::ptr_eq(w, &waiter)) {
                    st.parked.remove(pos);
                }
                return st;
            }
        }
    }

    /// Closes the gate: queued entries are dropped, parked waiters wake and fail, every
    /// later call fails. Returns whether the caller must wake a kernel waiter (each one that
    /// wakes passes the wake on). `false` if it was closed already.
    pub(crate) fn close(&self) -> bool {
        let mut st = self.lock();
        if st.closed {
            return false;
        }
        st.closed = true;
        st.queue.clear();
        for w in st.parked.drain(..) {
            w.wake();
        }
        st.in_kernel > 0
    }
}

impl State {
    fn take(&mut self, out: &mut [CompletionEntry], rearms: &mut Vec<u64>) -> usize {
        let n = out.len().min(self.queue.len());
        for (slot, queued) in out.iter_mut().zip(self.queue.drain(..n)) {
            *slot = queued.entry;
            if queued.rearm != NO_REARM {
                rearms.push(queued.rearm);
            }
        }
        n
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

/// loom models of the gate: `RUSTFLAGS="--cfg loom" cargo test --release --lib model`.
///
/// The kernel side is a fake with the property that matters: wakes sent while nobody
/// harvests coalesce into one (the eventfd is edge-triggered), and a wake is never lost
/// once sent. Each model lets loom explore every interleaving of a few threads; a lost
/// wakeup shows as a deadlock, which loom reports.
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
            let (enter, wake) = match gate.enter(out, &mut rearms, None, false) {
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
            let handles: Vec<_> = (0..2)
                .map(|_| {
                    let (gate, kernel) = (gate.clone(), kernel.clone());
                    thread::spawn(move || {
                        let mut out = [CompletionEntry::default(); 1];
                        let n = dequeue(&gate, &kernel, &mut out);
                        assert_eq!(n, 1);
                        release_current_thread(&gate, &kernel);
                        out[0].key
                    })
                })
                .collect();
            post(&gate, &kernel, 1);
            post(&gate, &kernel, 2);
            let mut keys: Vec<usize> = handles.into_iter().map(|h| h.join().unwrap()).collect();
            keys.sort_unstable();
            assert_eq!(keys, [1, 2]);
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
            let handles: Vec<_> = (0..2)
                .map(|_| {
                    let (gate, kernel) = (gate.clone(), kernel.clone());
                    thread::spawn(move || {
                        let mut out = [CompletionEntry::default(); 1];
                        let n = dequeue(&gate, &kernel, &mut out);
                        assert_eq!(n, 1);
                        let released = gate.stats().released;
                        assert!(released <= 1, "{released} released with concurrency 1");
                        release_current_thread(&gate, &kernel);
                        out[0].key
                    })
                })
                .collect();
            let mut keys: Vec<usize> = handles.into_iter().map(|h| h.join().unwrap()).collect();
            keys.sort_unstable();
            assert_eq!(keys, [1, 2]);
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

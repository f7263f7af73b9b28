//! Posted entries, wakeups, and the concurrency gate (rule 18).
//!
//! # The gate
//!
//! A port lets at most `concurrency` threads be *active*. A thread is active while it waits
//! in the kernel (it holds the slot it will run on) and from the moment a dequeue returns
//! entries to it until it calls again (it is *released*). Threads beyond that wait here, in
//! user space, on a stack: when a slot frees, the most recent one goes first (LIFO, as on
//! Windows), and a thread that calls again re-takes its own slot without waking anyone.
//!
//! # Posted entries
//!
//! Posted entries and REMOVE entries wait in a FIFO queue. Queuing one wakes at most one
//! thread: a thread waiting in the kernel (through the selector's `wake`) if one is there
//! and not already woken for an earlier entry, otherwise the top waiter of the stack if a
//! slot is free. A thread that takes fewer entries than are queued passes the rest on the
//! same way before it returns.
//!
//! # Released slots
//!
//! Which port a thread is released on is kept in a thread-local. The slot is given back
//! when the thread calls `dequeue`/`process` again (on any port), when it declares that it
//! is about to block elsewhere ([`CompletionPort::blocking`]), and when the thread exits.
//!
//! [`CompletionPort::blocking`]: crate::CompletionPort::blocking

use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::Instant;

use crate::sync::{thread_local, Arc, AtomicBool, Condvar, Mutex, MutexGuard};

use crate::error::Failure;
use crate::event::CompletionEntry;

/// What a port's threads are doing, at one instant ([`CompletionPort::stats`]).
///
/// [`CompletionPort::stats`]: crate::CompletionPort::stats
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PortStats {
    /// Posted and REMOVE entries waiting to be dequeued.
    pub queued: usize,
    /// Threads released (holding a slot between a dequeue that returned entries and their
    /// next call), including those inside [`CompletionPort::blocking`] that came back.
    ///
    /// [`CompletionPort::blocking`]: crate::CompletionPort::blocking
    pub released: usize,
    /// Threads waiting in the kernel for readiness (each holds a slot).
    pub waiting_in_kernel: usize,
    /// Threads waiting for a slot, beyond the concurrency.
    pub waiting_for_slot: usize,
}

/// The gate's shared state.
#[derive(Debug)]
pub(crate) struct Gate {
    concurrency: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
pub(crate) struct State {
    queue: VecDeque<CompletionEntry>,
    /// Threads in the kernel plus released threads.
    active: usize,
    /// Threads in the kernel wait.
    in_kernel: usize,
    /// A kernel wake was sent and no waiter has seen it yet. Wakes sent while one is
    /// pending could coalesce in the kernel, so at most one is outstanding; whoever sees it
    /// passes the next one on if entries remain.
    wake_pending: bool,
    /// Threads waiting for a slot, most recent last.
    waiters: Vec<Arc<Waiter>>,
    closed: bool,
}

/// One thread waiting for a slot.
#[derive(Debug)]
pub(crate) struct Waiter {
    cv: Condvar,
    woken: AtomicBool,
}

impl Waiter {
    fn new() -> Waiter {
        Waiter {
            cv: Condvar::new(),
            woken: AtomicBool::new(false),
        }
    }
}

/// A thread admitted by [`Gate::admit`]: it holds a slot and counts as in the kernel.
#[derive(Debug)]
pub(crate) struct Admission {
    /// Queued entries it took into the front of the caller's buffer.
    pub(crate) taken: usize,
    /// The caller must wake one kernel waiter through the selector.
    pub(crate) wake: bool,
}

/// The outcome of [`Gate::back`].
#[derive(Debug)]
pub(crate) struct Back {
    /// Queued entries taken into the buffer passed to `back`.
    pub(crate) taken: usize,
    /// The caller must wake one kernel waiter through the selector.
    pub(crate) wake: bool,
    /// The thread is still admitted and should wait in the kernel again.
    pub(crate) again: bool,
}

impl Gate {
    pub(crate) fn new(concurrency: usize) -> Arc<Gate> {
        Arc::new(Gate {
            concurrency,
            state: Mutex::new(State::default()),
        })
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
            released: st.active - st.in_kernel,
            waiting_in_kernel: st.in_kernel,
            waiting_for_slot: st.waiters.len(),
        }
    }

    /// Gives back this thread's released slot (on whatever port), then waits until it may
    /// run: a free slot, or the deadline (`Ok(None)`). Once admitted, the thread counts as
    /// active and in the kernel, and the queued entries it took are at the front of `out`.
    pub(crate) fn admit(
        gate: &Arc<Gate>,
        out: &mut [CompletionEntry],
        deadline: Option<Instant>,
    ) -> Result<Option<Admission>, Failure> {
        // A slot held on this gate is taken back here, under the lock, without waking a
        // parked waiter for it: the caller is the most recent waiter, so it goes first.
        let kept = take_association(gate);
        let mut st = gate.lock();
        if kept {
            st.active -= 1;
        }
        loop {
            if st.closed {
                return Err(Failure::PortClosed);
            }
            if st.active < gate.concurrency {
                st.active += 1;
                let taken = st.take(out);
                let wake = gate.pass_on(&mut st);
                st.in_kernel += 1;
                return Ok(Some(Admission { taken, wake }));
            }
            if deadline.is_some_and(|d| d <= Instant::now()) {
                return Ok(None);
            }
            st = gate.park(st, deadline);
        }
    }

    /// Waits on this thread's condition variable until woken, closed, or `deadline`.
    fn park<'a>(
        &'a self,
        mut st: MutexGuard<'a, State>,
        deadline: Option<Instant>,
    ) -> MutexGuard<'a, State> {
        let waiter = WAITER.with(Arc::clone);
        // `woken` is only written under the lock, which we hold.
        waiter.woken.store(false, Ordering::Relaxed);
        st.waiters.push(Arc::clone(&waiter));
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
                if let Some(pos) = st.waiters.iter().rposition(|w| Arc::ptr_eq(w, &waiter)) {
                    st.waiters.remove(pos);
                }
                return st;
            }
        }
    }

    /// An admitted thread is back from one kernel wait that gave it `got` entries (queued
    /// ones taken before included); `saw_wake` says whether it saw a kernel wake. It takes
    /// queued entries into `rest` (the free part of its buffer). With entries it becomes a
    /// released thread. Without, if `again` it stays admitted to wait once more, otherwise
    /// it gives its slot to the most recent parked waiter.
    pub(crate) fn back(
        gate: &Arc<Gate>,
        got: usize,
        saw_wake: bool,
        rest: &mut [CompletionEntry],
        again: bool,
    ) -> Back {
        let mut st = gate.lock();
        st.in_kernel -= 1;
        if saw_wake {
            st.wake_pending = false;
        }
        let taken = st.take(rest);
        if st.closed {
            // Closing wakes kernel waiters one at a time: pass it on.
            st.active -= 1;
            let wake = st.in_kernel > 0;
            return Back {
                taken: 0,
                wake,
                again: false,
            };
        }
        let wake = gate.pass_on(&mut st);
        if got + taken > 0 {
            associate(gate);
            return Back {
                taken,
                wake,
                again: false,
            };
        }
        if again {
            st.in_kernel += 1;
        } else {
            st.active -= 1;
            gate.wake_waiter(&mut st);
        }
        Back { taken, wake, again }
    }

    /// Queues a posted or REMOVE entry. Returns whether the caller must wake one kernel
    /// waiter through the selector.
    pub(crate) fn push(&self, entry: CompletionEntry) -> Result<bool, Failure> {
        let mut st = self.lock();
        if st.closed {
            return Err(Failure::PortClosed);
        }
        st.queue.push_back(entry);
        Ok(self.pass_on(&mut st))
    }

    /// Makes sure someone will serve the queue: a thread in the kernel (one outstanding wake
    /// at a time; returns true when the caller must send it), else the most recent parked
    /// waiter if a slot is free. Released threads see the queue when they call again.
    fn pass_on(&self, st: &mut State) -> bool {
        if st.queue.is_empty() {
            return false;
        }
        if st.in_kernel > 0 {
            let send = !st.wake_pending;
            st.wake_pending = true;
            return send;
        }
        self.wake_waiter(st);
        false
    }

    /// Wakes the most recent parked waiter if a slot is free for it.
    fn wake_waiter(&self, st: &mut State) {
        if st.active >= self.concurrency {
            return;
        }
        if let Some(w) = st.waiters.pop() {
            w.woken.store(true, Ordering::Relaxed);
            w.cv.notify_one();
        }
    }

    /// Gives back a released slot (the thread calls again, blocks elsewhere, or exits).
    fn release_slot(&self) {
        let mut st = self.lock();
        st.active -= 1;
        if !st.closed {
            self.wake_waiter(&mut st);
        }
    }

    /// Takes a slot back after [`release_slot`](Gate::release_slot), even past the limit
    /// (as Windows does when a thread returns from blocking elsewhere).
    fn retake_slot(&self) {
        self.lock().active += 1;
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
        for w in st.waiters.drain(..) {
            w.woken.store(true, Ordering::Relaxed);
            w.cv.notify_one();
        }
        st.in_kernel > 0
    }
}

impl State {
    fn take(&mut self, out: &mut [CompletionEntry]) -> usize {
        let n = out.len().min(self.queue.len());
        for (slot, entry) in out.iter_mut().zip(self.queue.drain(..n)) {
            *slot = entry;
        }
        n
    }
}

/// A thread's released slot on one port; given back when dropped. It keeps the gate (not
/// the port) alive, so that a thread that never calls again can still give its slot back.
struct Association {
    /// `None` once the slot was accounted for elsewhere (see `take_association`).
    gate: Option<Arc<Gate>>,
}

impl Drop for Association {
    fn drop(&mut self) {
        if let Some(gate) = self.gate.take() {
            gate.release_slot();
        }
    }
}

thread_local! {
    static WAITER: Arc<Waiter> = Arc::new(Waiter::new());
}

#[cfg(not(loom))]
thread_local! {
    static RELEASED: RefCell<Option<Association>> = const { RefCell::new(None) };
}

// loom's `thread_local!` takes no `const` initialiser.
#[cfg(loom)]
thread_local! {
    static RELEASED: RefCell<Option<Association>> = RefCell::new(None);
}

/// Records that this thread now holds a released slot on `gate`.
fn associate(gate: &Arc<Gate>) {
    // The slot was counted by the caller; only the record is set here. A previous
    // association was given back by `admit`, so there is none to drop under the lock.
    RELEASED.with(|r| {
        let previous = r.borrow_mut().replace(Association {
            gate: Some(Arc::clone(gate)),
        });
        debug_assert!(previous.is_none());
        std::mem::forget(previous);
    });
}

/// Forgets this thread's released slot if it is on `gate` and returns true (the caller
/// then accounts for it under the gate's lock); gives back a slot on any other gate.
fn take_association(gate: &Arc<Gate>) -> bool {
    let association = RELEASED.try_with(|r| r.borrow_mut().take()).ok().flatten();
    match association {
        Some(mut a) if a.gate.as_ref().is_some_and(|g| Arc::ptr_eq(g, gate)) => {
            // Emptied first, so that dropping it does not give the slot back.
            a.gate = None;
            true
        }
        other => {
            drop(other);
            false
        }
    }
}

/// Runs `f` with this thread's slot on `gate` given back, if it holds one there.
pub(crate) fn blocking<R>(gate: &Arc<Gate>, f: impl FnOnce() -> R) -> R {
    let holds = RELEASED.with(|r| {
        r.borrow()
            .as_ref()
            .and_then(|a| a.gate.as_ref())
            .is_some_and(|g| Arc::ptr_eq(g, gate))
    });
    if !holds {
        return f();
    }
    gate.release_slot();
    // Restore the slot even if `f` panics, so the count stays right.
    struct Retake<'a>(&'a Gate);
    impl Drop for Retake<'_> {
        fn drop(&mut self) {
            self.0.retake_slot();
        }
    }
    let _retake = Retake(gate);
    f()
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

    /// The port's dequeue loop without sockets: admit, wait in the kernel, come back.
    fn dequeue(gate: &Arc<Gate>, kernel: &Kernel, out: &mut [CompletionEntry]) -> usize {
        let admission = match Gate::admit(gate, out, None) {
            Ok(Some(a)) => a,
            _ => return 0,
        };
        if admission.wake {
            kernel.wake();
        }
        let mut got = admission.taken;
        loop {
            let saw_wake = got < out.len() && kernel.wait(got == 0);
            let back = Gate::back(gate, got, saw_wake, &mut out[got..], got == 0);
            if back.wake {
                kernel.wake();
            }
            got += back.taken;
            if !back.again {
                return got;
            }
            if gate.is_closed() {
                return got;
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

    /// Gives back this thread's released slot, as its next call or its exit would.
    fn release_current_thread() {
        let association = RELEASED.with(|r| r.borrow_mut().take());
        drop(association);
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
            let gate = Gate::new(2);
            let kernel = Kernel::new();
            let handles: Vec<_> = (0..2)
                .map(|_| {
                    let (gate, kernel) = (gate.clone(), kernel.clone());
                    thread::spawn(move || {
                        let mut out = [CompletionEntry::default(); 1];
                        let n = dequeue(&gate, &kernel, &mut out);
                        release_current_thread();
                        assert_eq!(n, 1);
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
            let gate = Gate::new(1);
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
                        release_current_thread();
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
            let gate = Gate::new(1);
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
}

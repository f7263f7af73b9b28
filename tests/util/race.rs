//! Two threads racing one operation each, trial after trial, started together by a spinning
//! barrier (a sleeping one would let the first thread finish before the second wakes), and
//! bounded by a trial count and a deadline.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

/// How long a racer waits for its partner before it concludes the partner is gone.
const PARTNER: Duration = Duration::from_secs(30);

/// A barrier for two threads that spins (then yields), and gives up when `stop` is set.
struct SpinBarrier {
    arrived: AtomicUsize,
    generation: AtomicUsize,
}

impl SpinBarrier {
    /// Waits for the other thread; false if `stop` was set meanwhile.
    fn wait(&self, stop: &AtomicBool) -> bool {
        let generation = self.generation.load(SeqCst);
        if self.arrived.fetch_add(1, SeqCst) == 1 {
            self.arrived.store(0, SeqCst);
            self.generation.fetch_add(1, SeqCst);
            return !stop.load(SeqCst);
        }
        let deadline = Instant::now() + PARTNER;
        let mut spins = 0u32;
        while self.generation.load(SeqCst) == generation {
            if stop.load(SeqCst) {
                return false;
            }
            spins += 1;
            if spins < 200 {
                std::hint::spin_loop();
            } else {
                assert!(Instant::now() < deadline, "the other racer vanished");
                thread::yield_now();
            }
        }
        !stop.load(SeqCst)
    }
}

/// Sets `stop` when dropped, so that a panicking racer releases its partner.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, SeqCst);
    }
}

/// Runs up to `trials` trials, for at most `budget` (at least one trial): `setup` makes
/// trial `i`'s state on this thread, then `a` (on a second thread) and `b` (on this one)
/// start together on it, and `check` sees the state and both outcomes once both are done.
/// Returns the number of trials run.
pub fn race<S, RA, RB>(
    trials: usize,
    budget: Duration,
    mut setup: impl FnMut(usize) -> S,
    a: impl Fn(&S) -> RA + Sync,
    b: impl Fn(&S) -> RB,
    mut check: impl FnMut(usize, S, RA, RB),
) -> usize
where
    S: Sync,
    RA: Send,
{
    let deadline = Instant::now() + budget;
    let barrier = SpinBarrier {
        arrived: AtomicUsize::new(0),
        generation: AtomicUsize::new(0),
    };
    let stop = AtomicBool::new(false);
    let outcome: Mutex<Option<RA>> = Mutex::new(None);
    // The state of the running trial, for the other thread: an address, since `S` need not
    // be `Send`; it lives on this thread's stack until both barrier waits are past.
    let current = AtomicUsize::new(0);
    thread::scope(|scope| {
        let (barrier, stop, outcome, current, a) = (&barrier, &stop, &outcome, &current, &a);
        scope.spawn(move || {
            let _stop = StopOnDrop(stop);
            while barrier.wait(stop) {
                // SAFETY: the address is of the `S` that the main thread keeps alive and
                // unmoved until this thread has passed the second barrier wait below.
                let state = unsafe { &*(current.load(SeqCst) as *const S) };
                let result = a(state);
                *outcome.lock().unwrap() = Some(result);
                if !barrier.wait(stop) {
                    return;
                }
            }
        });
        let _stop = StopOnDrop(stop);
        let mut run = 0;
        while run < trials && (run == 0 || Instant::now() < deadline) {
            let state = setup(run);
            current.store(&state as *const S as usize, SeqCst);
            assert!(barrier.wait(stop), "the other racer stopped");
            let rb = b(&state);
            assert!(barrier.wait(stop), "the other racer stopped");
            let ra = outcome
                .lock()
                .unwrap()
                .take()
                .expect("the other racer's outcome");
            check(run, state, ra, rb);
            run += 1;
        }
        run
    })
}

/// Spins for about `n` short pauses: a small, varying head start for one racer.
pub fn jitter(n: usize) {
    for _ in 0..n {
        std::hint::spin_loop();
    }
}

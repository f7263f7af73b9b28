//! The clock of one measurement: worker threads run until told to stop; the main thread
//! warms up, opens the measured window (and the perf counting window), closes it, stops.

use std::io;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::perf::Control;
use crate::sys;

const WARMUP: u8 = 0;
const MEASURE: u8 = 1;
const STOP: u8 = 2;

/// How long a blocked worker waits before it looks at the stop flag again.
pub const TICK: Duration = Duration::from_millis(20);

/// A counter on its own cache lines, written by one thread only.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Counter(AtomicU64);

/// Shared by the workers and the main thread of one measurement.
#[derive(Debug)]
pub struct Run {
    warmup: Duration,
    duration: Duration,
    phase: AtomicU8,
    counters: Box<[Counter]>,
    error: Mutex<Option<io::Error>>,
    perf: Option<Control>,
}

/// What the measured window saw.
#[derive(Clone, Copy, Debug)]
pub struct Measured {
    /// Operations counted by the workers inside the window.
    pub count: u64,
    pub elapsed: Duration,
    /// CPU time of the whole process (every thread, user and kernel) inside the window.
    pub cpu: Duration,
    /// Operations counted from the start, warm-up and stop included (for tools that
    /// count the whole run, such as callgrind).
    pub total: u64,
}

impl Run {
    /// A run whose workers will be `threads` threads.
    pub fn new(threads: usize, warmup: Duration, duration: Duration, perf: Option<Control>) -> Run {
        Run {
            warmup,
            duration,
            phase: AtomicU8::new(WARMUP),
            counters: (0..threads).map(|_| Counter::default()).collect(),
            error: Mutex::new(None),
            perf,
        }
    }

    pub fn stopped(&self) -> bool {
        self.phase.load(Ordering::Relaxed) == STOP
    }

    /// Inside the measured window.
    pub fn measuring(&self) -> bool {
        self.phase.load(Ordering::Relaxed) == MEASURE
    }

    /// Adds `n` operations to worker `thread`'s counter. Only that worker calls this.
    pub fn add(&self, thread: usize, n: u64) {
        let c = &self.counters[thread].0;
        c.store(c.load(Ordering::Relaxed) + n, Ordering::Release);
    }

    /// Worker `thread`'s count so far.
    pub fn count(&self, thread: usize) -> u64 {
        self.counters[thread].0.load(Ordering::Acquire)
    }

    fn total(&self) -> u64 {
        (0..self.counters.len()).map(|t| self.count(t)).sum()
    }

    /// Records a worker's failure and stops the run.
    pub fn fail(&self, e: io::Error) {
        let mut slot = self.error.lock().unwrap_or_else(|p| p.into_inner());
        slot.get_or_insert(e);
        self.phase.store(STOP, Ordering::Relaxed);
    }

    /// The number of worker threads.
    pub fn threads(&self) -> usize {
        self.counters.len()
    }

    /// Runs `worker(t)` on each worker thread `t` and measures; returns when all have
    /// stopped. Call it once.
    ///
    /// # Errors
    /// The first error a worker returned, or a perf control failure.
    pub fn workers<F>(&self, worker: F) -> io::Result<Measured>
    where
        F: Fn(usize) -> io::Result<()> + Sync,
    {
        let this = self;
        let measured = std::thread::scope(|s| {
            for t in 0..self.threads() {
                let worker = &worker;
                s.spawn(move || {
                    if let Err(e) = worker(t) {
                        this.fail(e);
                    }
                });
            }
            let m = this.clock();
            this.phase.store(STOP, Ordering::Relaxed);
            m
        });
        let measured = measured.map(|m| Measured {
            total: self.total(),
            ..m
        });
        if let Some(e) = self.error.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return Err(e);
        }
        measured
    }

    /// The main thread's part: warm up, measure, and stop counting.
    fn clock(&self) -> io::Result<Measured> {
        self.sleep(self.warmup);
        if let Some(p) = &self.perf {
            p.enable()?;
        }
        let cpu0 = sys::process_cpu_time()?;
        let c0 = self.total();
        let t0 = Instant::now();
        // A worker that failed during the warm-up has stopped the run already.
        let _ = self
            .phase
            .compare_exchange(WARMUP, MEASURE, Ordering::Relaxed, Ordering::Relaxed);
        self.sleep(self.duration);
        let c1 = self.total();
        let elapsed = t0.elapsed();
        let cpu1 = sys::process_cpu_time()?;
        // perf stops counting while the workers still run, so that their stopping (a
        // thread that finishes wakes the scope's owner through a futex) is not counted
        // against the window's operations; `workers` stops them even if this fails.
        if let Some(p) = &self.perf {
            p.disable()?;
        }
        self.phase.store(STOP, Ordering::Relaxed);
        Ok(Measured {
            count: c1 - c0,
            elapsed,
            cpu: cpu1.saturating_sub(cpu0),
            total: 0,
        })
    }

    /// Sleeps `d`, or less if a worker failed.
    fn sleep(&self, d: Duration) {
        let end = Instant::now() + d;
        loop {
            let now = Instant::now();
            if now >= end || self.stopped() {
                return;
            }
            std::thread::sleep((end - now).min(Duration::from_millis(50)));
        }
    }
}

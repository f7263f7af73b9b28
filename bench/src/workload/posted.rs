//! Posted entries across threads: one producer thread posts, one consumer thread dequeues.
//!
//! socknotify posts completion entries (`PostQueuedCompletionStatus`). Its peers have no
//! such queue; their analogue, each as its documentation suggests, is a channel
//! (`std::sync::mpsc`) for the data plus the selector's own wake-up for the consumer:
//! raw epoll and poll(2) an `eventfd`, mio its `Waker`, polling `Poller::notify`.
//!
//! - *Throughput*: the producer posts as fast as it can, at most [`WINDOW`] entries ahead
//!   of the consumer (so that nothing grows without bound).
//! - *Latency*: one entry in flight. The producer stamps an entry with the time, posts it
//!   and waits (spinning) until the consumer has taken it; the consumer
//!   records now minus the stamp in an HDR histogram. This is the hand-off time from a
//!   post to the return of the dequeue that got it, mostly a thread wake-up.

use std::io;
use std::sync::Mutex;
use std::time::Instant;

use hdrhistogram::Histogram;

use crate::job::Mode;
use crate::run::{Measured, Run};

/// How far the producer may run ahead of the consumer in throughput mode.
pub const WINDOW: u64 = 1024;

/// A contender's way to hand a value from one thread to another and wake it.
pub trait Mailbox: Sync {
    /// What the consumer thread owns (a `Poll`, a receiver, a buffer...).
    type Consumer: Send;
    /// Makes the consumer's part; called once, before the threads start.
    fn consumer(&self) -> io::Result<Self::Consumer>;
    /// Sends `stamp` and makes sure the consumer will wake for it.
    fn post(&self, stamp: u64) -> io::Result<()>;
    /// Waits at most [`TICK`](crate::run::TICK) and passes every value that arrived to `got`.
    fn take(&self, consumer: &mut Self::Consumer, got: &mut dyn FnMut(u64)) -> io::Result<()>;
}

/// The result of one posted-entries run.
#[derive(Debug)]
pub struct Posted {
    /// Entries dequeued inside the measured window.
    pub measured: Measured,
    /// Post-to-dequeue latency in nanoseconds (latency mode only).
    pub latency: Option<Histogram<u64>>,
}

const PRODUCER: usize = 0;
const CONSUMER: usize = 1;

/// Runs the producer and the consumer over `mailbox`. `run` must have two workers.
pub fn drive<M: Mailbox>(mailbox: &M, mode: Mode, run: &Run) -> io::Result<Posted> {
    let base = Instant::now();
    let consumer = Mutex::new(Some(mailbox.consumer()?));
    let histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)
        .map_err(|e| io::Error::other(format!("histogram: {e}")))?;
    let histogram = Mutex::new(histogram);
    let measured = run.workers(|t| {
        if t == PRODUCER {
            return produce(mailbox, mode, run, base);
        }
        let mut state = consumer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .ok_or_else(|| io::Error::other("two consumers"))?;
        let mut h = histogram.lock().unwrap_or_else(|p| p.into_inner());
        while !run.stopped() {
            let mut n = 0;
            let record = mode == Mode::Latency && run.measuring();
            mailbox.take(&mut state, &mut |stamp| {
                n += 1;
                if record {
                    let now = base.elapsed().as_nanos() as u64;
                    h.saturating_record(now.saturating_sub(stamp).max(1));
                }
            })?;
            run.add(CONSUMER, n);
        }
        Ok(())
    })?;
    let latency =
        (mode == Mode::Latency).then(|| histogram.into_inner().unwrap_or_else(|p| p.into_inner()));
    Ok(Posted { measured, latency })
}

fn produce<M: Mailbox>(mailbox: &M, mode: Mode, run: &Run, base: Instant) -> io::Result<()> {
    let limit = match mode {
        Mode::Throughput => WINDOW,
        Mode::Latency => 1,
    };
    let mut posted = 0u64;
    while !run.stopped() {
        // Spin rather than yield, so that a yield's system call is not counted as the
        // mailbox's; give the CPU up only after a long wait (a descheduled consumer).
        let mut spins = 0u32;
        while posted - run.count(CONSUMER) >= limit {
            if run.stopped() {
                return Ok(());
            }
            spins += 1;
            if spins.is_multiple_of(1 << 20) {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
        match mailbox.post(base.elapsed().as_nanos() as u64) {
            Ok(()) => posted += 1,
            // The consumer may stop first and drop its end.
            Err(_) if run.stopped() => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

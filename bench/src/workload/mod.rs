//! The workloads, as a child runs them: the sockets they use and what they report.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use crate::job::{Job, Workload};
use crate::perf::Control;
use crate::run::Run;
use crate::sys;

pub mod posted;

/// The size of one ping-pong message.
pub const MESSAGE: usize = 64;
/// Room for one read.
pub const BUFFER: usize = 4096;
/// Entries or events taken per wait, the same for every contender.
pub const BATCH: usize = 256;

/// The sockets of a ping-pong: `active` pairs at the front, each with one message
/// bouncing between its two ends, then idle pairs that are registered but never written.
/// A socket's *key* is its index.
#[derive(Debug)]
pub struct Sockets {
    pub fds: Vec<OwnedFd>,
    active: usize,
    threads: usize,
}

impl Sockets {
    /// `active` bouncing pairs and at least `idle` idle sockets (rounded up to pairs), for
    /// `threads` worker threads.
    pub fn new(active: usize, idle: usize, threads: usize, tcp: bool) -> io::Result<Sockets> {
        let fds = sys::socket_pairs(active + idle.div_ceil(2), tcp)?;
        Ok(Sockets {
            fds,
            active,
            threads,
        })
    }

    pub fn len(&self) -> usize {
        self.fds.len()
    }

    pub fn raw(&self, key: usize) -> RawFd {
        self.fds[key].as_raw_fd()
    }

    /// Puts one message in flight on every active pair.
    pub fn kick(&self) -> io::Result<()> {
        let msg = [0x5a; MESSAGE];
        for pair in 0..self.active {
            sys::send(self.raw(2 * pair), &msg)?;
        }
        Ok(())
    }

    /// The thread that serves socket `key` when connections are partitioned: both ends of
    /// a pair go to the same thread, pairs go round-robin.
    pub fn owner(&self, key: usize) -> usize {
        (key / 2) % self.threads
    }

    /// The sockets thread `t` serves when connections are partitioned.
    pub fn partition(&self, t: usize) -> impl Iterator<Item = usize> + '_ {
        (0..self.len()).filter(move |&k| self.owner(k) == t)
    }

    /// Reads once from socket `key` and writes what came back into it, so the message goes
    /// to the other end. `Ok(false)` if there was nothing to read.
    pub fn echo(&self, key: usize, buf: &mut [u8]) -> io::Result<bool> {
        let fd = self.raw(key);
        match sys::recv(fd, buf) {
            Ok(0) => Err(io::Error::other(format!("socket {key}: the peer closed"))),
            Ok(n) => {
                let sent = sys::send(fd, &buf[..n])?;
                if sent != n {
                    return Err(io::Error::other(format!("socket {key}: short write")));
                }
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// Runs `job` in this process; returns the `RESULT` fields.
pub fn run(job: &Job, perf: Option<Control>) -> io::Result<Vec<(&'static str, f64)>> {
    let c = &job.config;
    let run = |threads| Run::new(threads, job.warmup, job.duration, perf);
    let mut out = Vec::new();
    match c.workload {
        Workload::PingPong | Workload::Idle => {
            let set = Sockets::new(c.conns, c.idle, c.threads, c.tcp)?;
            let m = job
                .contender
                .pingpong(&set, &run(c.threads), job.concurrency)?;
            out.push(("count", m.count as f64));
            out.push(("elapsed_ns", m.elapsed.as_nanos() as f64));
            out.push(("cpu_ns", m.cpu.as_nanos() as f64));
            out.push(("total", m.total as f64));
            out.push(("registered", set.len() as f64));
        }
        Workload::Churn | Workload::Batch => {
            let fds = sys::socket_pairs(c.sockets.div_ceil(2), false)?;
            let measured = if c.workload == Workload::Churn {
                job.contender.churn(&fds, &run(1), job.concurrency)?
            } else {
                job.contender
                    .batch(&fds, c.batch, &run(1), job.concurrency)?
            };
            match measured {
                Some(m) => {
                    out.push(("count", m.count as f64));
                    out.push(("elapsed_ns", m.elapsed.as_nanos() as f64));
                    out.push(("cpu_ns", m.cpu.as_nanos() as f64));
                    out.push(("total", m.total as f64));
                }
                None => out.push(("not_applicable", 1.0)),
            }
        }
        Workload::Posted => {
            let p = job.contender.posted(c.mode, &run(2), job.concurrency)?;
            out.push(("count", p.measured.count as f64));
            out.push(("elapsed_ns", p.measured.elapsed.as_nanos() as f64));
            out.push(("cpu_ns", p.measured.cpu.as_nanos() as f64));
            if let Some(h) = p.latency {
                out.push(("p50_ns", h.value_at_quantile(0.50) as f64));
                out.push(("p99_ns", h.value_at_quantile(0.99) as f64));
                out.push(("p999_ns", h.value_at_quantile(0.999) as f64));
                out.push(("max_ns", h.max() as f64));
            }
        }
        Workload::Memory => {
            let fds = sys::socket_pairs(c.sockets.div_ceil(2), false)?;
            let (before, after) = job.contender.memory(&fds, job.concurrency)?;
            let grown = after.saturating_sub(before);
            out.push(("registrations", fds.len() as f64));
            out.push(("rss_grown", grown as f64));
            out.push(("bytes_per_registration", grown as f64 / fds.len() as f64));
        }
    }
    Ok(out)
}

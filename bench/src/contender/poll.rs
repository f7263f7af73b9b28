//! poll(2), the analogue of `WSAPoll`: the interface socket state notifications replace.
//!
//! No kernel-side registration: every call passes the whole `pollfd` array and the kernel
//! checks every socket in it, so the cost of a call grows with the number of sockets. Each
//! thread owns the array of the connections it serves (partitioned); a caller scans the
//! array for ready entries and stops once it has seen as many as `poll` reported.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Mutex};

use crate::run::{Measured, Run, TICK};
use crate::sys::{self, syscall};
use crate::workload::{posted, Sockets, BUFFER};

fn pollfd(fd: &impl AsRawFd) -> libc::pollfd {
    libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    }
}

/// One `poll(2)` of at most [`TICK`]; returns how many entries have `revents`.
fn wait(fds: &mut [libc::pollfd]) -> io::Result<usize> {
    // SAFETY: `fds` is valid for `fds.len()` reads and writes of pollfd.
    match syscall!(poll(
        fds.as_mut_ptr(),
        fds.len() as libc::nfds_t,
        TICK.as_millis() as libc::c_int,
    )) {
        Ok(n) => Ok(n as usize),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
        Err(e) => Err(e),
    }
}

pub fn pingpong(set: &Sockets, run: &Run) -> io::Result<Measured> {
    set.kick()?;
    run.workers(|t| {
        let keys: Vec<usize> = set.partition(t).collect();
        let mut fds: Vec<libc::pollfd> = keys.iter().map(|&k| pollfd(&set.fds[k])).collect();
        let mut buf = [0u8; BUFFER];
        while !run.stopped() {
            let mut ready = wait(&mut fds)?;
            let mut messages = 0;
            for (i, p) in fds.iter().enumerate() {
                if ready == 0 {
                    break;
                }
                if p.revents != 0 {
                    ready -= 1;
                    if set.echo(keys[i], &mut buf)? {
                        messages += 1;
                    }
                }
            }
            run.add(t, messages);
        }
        Ok(())
    })
}

/// A channel plus an `eventfd` in the consumer's `pollfd` array; the same wake protocol as
/// the raw epoll mailbox.
#[derive(Debug)]
pub struct Mailbox {
    wake: OwnedFd,
    pending: AtomicBool,
    tx: mpsc::Sender<u64>,
    rx: Mutex<Option<mpsc::Receiver<u64>>>,
}

impl Mailbox {
    pub fn new() -> io::Result<Mailbox> {
        let (tx, rx) = mpsc::channel();
        Ok(Mailbox {
            wake: sys::eventfd()?,
            pending: AtomicBool::new(false),
            tx,
            rx: Mutex::new(Some(rx)),
        })
    }
}

impl posted::Mailbox for Mailbox {
    type Consumer = mpsc::Receiver<u64>;

    fn consumer(&self) -> io::Result<Self::Consumer> {
        let rx = self.rx.lock().unwrap_or_else(|p| p.into_inner()).take();
        rx.ok_or_else(|| io::Error::other("one consumer only"))
    }

    fn post(&self, stamp: u64) -> io::Result<()> {
        self.tx.send(stamp).map_err(io::Error::other)?;
        if !self.pending.swap(true, Ordering::SeqCst) {
            sys::eventfd_add(&self.wake)?;
        }
        Ok(())
    }

    fn take(&self, rx: &mut Self::Consumer, got: &mut dyn FnMut(u64)) -> io::Result<()> {
        let mut fds = [pollfd(&self.wake)];
        if wait(&mut fds)? > 0 {
            sys::eventfd_reset(&self.wake)?;
            self.pending.store(false, Ordering::SeqCst);
        }
        rx.try_iter().for_each(got);
        Ok(())
    }
}

/// The `pollfd` array is poll(2)'s whole registration.
pub fn memory(fds: &[OwnedFd]) -> io::Result<(u64, u64)> {
    let before = sys::rss_bytes()?;
    let array: Vec<libc::pollfd> = fds.iter().map(pollfd).collect();
    let after = sys::rss_bytes()?;
    std::hint::black_box(&array);
    Ok((before, after))
}

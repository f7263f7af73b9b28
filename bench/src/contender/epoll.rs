//! Hand-written epoll: the floor a wrapper must not fall below.
//!
//! One epoll instance shared by every thread; sockets registered `EPOLLIN | EPOLLONESHOT`;
//! after serving a socket the thread re-arms it with `epoll_ctl(EPOLL_CTL_MOD)`. No
//! bookkeeping at all: the socket's index rides in `epoll_event.u64`.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Mutex};

use crate::run::{Measured, Run, TICK};
use crate::sys::{self, syscall};
use crate::workload::{posted, Sockets, BATCH, BUFFER};

/// One-shot level interest in reading: what every one-shot epoll loop of the bench arms.
pub const ONESHOT_IN: u32 = (libc::EPOLLIN | libc::EPOLLONESHOT) as u32;

/// An epoll instance.
#[derive(Debug)]
pub struct Epoll {
    fd: OwnedFd,
}

impl Epoll {
    pub fn new() -> io::Result<Epoll> {
        // SAFETY: plain syscall with a flags argument.
        let fd = syscall!(epoll_create1(libc::EPOLL_CLOEXEC))?;
        // SAFETY: epoll_create1 returned a new descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Epoll { fd })
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, events: u32, data: u64) -> io::Result<()> {
        let mut event = libc::epoll_event { events, u64: data };
        // SAFETY: `event` is a valid epoll_event for the duration of the call; any `fd`
        // value is acceptable (a bad one gives EBADF or ENOENT).
        syscall!(epoll_ctl(self.fd.as_raw_fd(), op, fd, &mut event)).map(drop)
    }

    pub fn add(&self, fd: RawFd, events: u32, data: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, events, data)
    }

    pub fn modify(&self, fd: RawFd, events: u32, data: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, events, data)
    }

    pub fn delete(&self, fd: RawFd) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_DEL, fd, 0, 0)
    }

    /// Waits up to [`TICK`]; returns how many entries of `events` the kernel filled in.
    pub fn wait(&self, events: &mut [libc::epoll_event]) -> io::Result<usize> {
        let max = events.len().min(libc::c_int::MAX as usize) as libc::c_int;
        // SAFETY: `events` is valid for `max` writes of epoll_event.
        match syscall!(epoll_wait(
            self.fd.as_raw_fd(),
            events.as_mut_ptr(),
            max,
            TICK.as_millis() as libc::c_int,
        )) {
            Ok(n) => Ok(n as usize),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// `epoll_wait` with a zero timeout: what is ready now, without blocking.
    pub fn wait_now(&self, events: &mut [libc::epoll_event]) -> io::Result<usize> {
        let max = events.len().min(libc::c_int::MAX as usize) as libc::c_int;
        // SAFETY: `events` is valid for `max` writes of epoll_event.
        syscall!(epoll_wait(self.fd.as_raw_fd(), events.as_mut_ptr(), max, 0)).map(|n| n as usize)
    }
}

fn no_events() -> [libc::epoll_event; BATCH] {
    [libc::epoll_event { events: 0, u64: 0 }; BATCH]
}

pub fn pingpong(set: &Sockets, run: &Run) -> io::Result<Measured> {
    let epoll = Epoll::new()?;
    for key in 0..set.len() {
        epoll.add(set.raw(key), ONESHOT_IN, key as u64)?;
    }
    set.kick()?;
    run.workers(|t| {
        let mut events = no_events();
        let mut buf = [0u8; BUFFER];
        while !run.stopped() {
            let n = epoll.wait(&mut events)?;
            let mut messages = 0;
            for event in &events[..n] {
                let key = event.u64 as usize;
                if set.echo(key, &mut buf)? {
                    messages += 1;
                }
                epoll.modify(set.raw(key), ONESHOT_IN, key as u64)?;
            }
            run.add(t, messages);
        }
        Ok(())
    })
}

/// `EPOLL_CTL_ADD` then `EPOLL_CTL_DEL` for every socket: one system call each.
pub fn churn(fds: &[OwnedFd], run: &Run) -> io::Result<Measured> {
    let epoll = Epoll::new()?;
    run.workers(|t| {
        while !run.stopped() {
            for (key, fd) in fds.iter().enumerate() {
                epoll.add(fd.as_raw_fd(), ONESHOT_IN, key as u64)?;
            }
            for fd in fds {
                epoll.delete(fd.as_raw_fd())?;
            }
            run.add(t, fds.len() as u64);
        }
        Ok(())
    })
}

/// Re-arms `batch` of the registered one-shot sockets `fds` per round (one
/// `epoll_ctl(EPOLL_CTL_MOD)` each, going round the set), then one `epoll_wait` with a zero
/// timeout, as a server's loop would: the floor for socknotify's batched `process`.
pub fn batch(fds: &[OwnedFd], batch: usize, run: &Run) -> io::Result<Measured> {
    let epoll = Epoll::new()?;
    for (key, fd) in fds.iter().enumerate() {
        epoll.add(fd.as_raw_fd(), ONESHOT_IN, key as u64)?;
    }
    run.workers(|t| {
        let mut events = no_events();
        let mut next = 0;
        while !run.stopped() {
            for _ in 0..batch {
                epoll.modify(fds[next].as_raw_fd(), ONESHOT_IN, next as u64)?;
                next = (next + 1) % fds.len();
            }
            let max = events.len() as libc::c_int;
            // SAFETY: `events` is valid for `max` writes of epoll_event.
            let n = syscall!(epoll_wait(
                epoll.fd.as_raw_fd(),
                events.as_mut_ptr(),
                max,
                0
            ))?;
            if n != 0 {
                return Err(io::Error::other("an idle socket reported readiness"));
            }
            run.add(t, batch as u64);
        }
        Ok(())
    })
}

/// A channel plus an `eventfd` watched by epoll. The producer writes the eventfd only when
/// no wake is pending, the consumer clears the flag before it drains the channel.
#[derive(Debug)]
pub struct Mailbox {
    epoll: Epoll,
    wake: OwnedFd,
    pending: AtomicBool,
    tx: mpsc::Sender<u64>,
    rx: Mutex<Option<mpsc::Receiver<u64>>>,
}

impl Mailbox {
    pub fn new() -> io::Result<Mailbox> {
        let epoll = Epoll::new()?;
        let wake = sys::eventfd()?;
        epoll.add(wake.as_raw_fd(), libc::EPOLLIN as u32, 0)?;
        let (tx, rx) = mpsc::channel();
        Ok(Mailbox {
            epoll,
            wake,
            pending: AtomicBool::new(false),
            tx,
            rx: Mutex::new(Some(rx)),
        })
    }
}

impl posted::Mailbox for Mailbox {
    type Consumer = (mpsc::Receiver<u64>, [libc::epoll_event; BATCH]);

    fn consumer(&self) -> io::Result<Self::Consumer> {
        let rx = self.rx.lock().unwrap_or_else(|p| p.into_inner()).take();
        let rx = rx.ok_or_else(|| io::Error::other("one consumer only"))?;
        Ok((rx, no_events()))
    }

    fn post(&self, stamp: u64) -> io::Result<()> {
        self.tx.send(stamp).map_err(io::Error::other)?;
        if !self.pending.swap(true, Ordering::SeqCst) {
            sys::eventfd_add(&self.wake)?;
        }
        Ok(())
    }

    fn take(&self, (rx, events): &mut Self::Consumer, got: &mut dyn FnMut(u64)) -> io::Result<()> {
        if self.epoll.wait(events)? > 0 {
            sys::eventfd_reset(&self.wake)?;
            self.pending.store(false, Ordering::SeqCst);
        }
        rx.try_iter().for_each(got);
        Ok(())
    }
}

pub fn memory(fds: &[OwnedFd]) -> io::Result<(u64, u64)> {
    let epoll = Epoll::new()?;
    let before = sys::rss_bytes()?;
    for (key, fd) in fds.iter().enumerate() {
        epoll.add(fd.as_raw_fd(), ONESHOT_IN, key as u64)?;
    }
    let after = sys::rss_bytes()?;
    Ok((before, after))
}

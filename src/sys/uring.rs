//! The `io_uring(7)` backend: epoll's interest set, driven through a ring so that a batch of
//! interest changes and the wait for readiness cost one `io_uring_enter`.
//!
//! # Why epoll underneath
//!
//! A poll request (`IORING_OP_POLL_ADD`) holds a reference to the socket's file until it
//! completes, so closing a socket with an armed poll would not close it (the peer would not
//! see the connection end) and would leave a completion for a dead registration in flight.
//! Rule 7 wants closing to deregister silently and promptly, which is what epoll's interest
//! set does. So the interest set stays an epoll instance, and the ring carries
//! `IORING_OP_EPOLL_CTL` (re-arm, disable) and `IORING_OP_EPOLL_WAIT` (Linux 6.15) requests:
//! the same kernel objects and semantics as the epoll backend, fewer transitions.
//!
//! # One call
//!
//! The changes are linked (`IOSQE_IO_LINK`) in front of the wait. If one fails (the socket
//! was closed, say), the rest of the chain is cancelled and the enter returns at once; the
//! cancelled changes are then applied directly and the registry repairs what failed.
//!
//! The wait is an exclusive poll (`EPOLLEXCLUSIVE`) on the epoll instance linked to the
//! `EPOLL_WAIT` that harvests it: each readiness report wakes one waiting thread, as
//! `epoll_wait` does, where an `EPOLL_WAIT` alone would wake every waiting ring. epoll does
//! not wake pollers for reports left behind by a harvest that filled its buffer, so such a
//! harvest wakes the next waiter itself. A wait
//! that times out is cancelled before the call returns, so no request is ever left in
//! flight: a ring is used by one thread per call, taken from and returned to a pool.
//!
//! Registrations that are created or removed (`EPOLL_CTL_ADD`/`DEL`) go through the epoll
//! backend's direct calls: they need a socket check (`getsockopt`) anyway, and a REMOVE's
//! entry must be queued before the caller can wait for it.
//!
//! # References
//! - [`io_uring_enter(2)`](https://man7.org/linux/man-pages/man2/io_uring_enter.2.html)
//! - [`io_uring_prep_epoll_ctl(3)`](https://man7.org/linux/man-pages/man3/io_uring_prep_epoll_ctl.3.html)
//! - [`io_uring_prep_epoll_wait(3)`](https://man7.org/linux/man-pages/man3/io_uring_prep_epoll_wait.3.html)

use std::io;
use std::os::fd::RawFd;
use std::sync::Mutex;
use std::time::Duration;

use io_uring::{opcode, squeue, types, IoUring, Probe};

use super::epoll;
use super::{Change, RawEvent};
use crate::event::{Events, Trigger};

/// Submission queue size of each ring. Larger batches are submitted in several chunks.
const RING_ENTRIES: u32 = 128;
/// `user_data` of the wait request; changes use their index in the batch.
const WAIT: u64 = u64::MAX;
/// `user_data` of the cancellation of a timed-out wait.
const CANCEL: u64 = u64::MAX - 1;
/// `user_data` of the exclusive poll on the epoll instance that gates the wait.
const POLL: u64 = u64::MAX - 2;
/// Set to any value to make the probe fail, as on a kernel without io_uring (for tests of
/// `Backend::Auto`'s fallback).
const DISABLE_ENV: &str = "SOCKNOTIFY_DISABLE_IO_URING";

/// The epoll instance, and the rings that drive it.
#[derive(Debug)]
pub(crate) struct Selector {
    epoll: epoll::Selector,
    rings: Mutex<Vec<Ring>>,
}

/// One ring and the memory its requests point to.
struct Ring {
    ring: IoUring,
    /// Where `EPOLL_WAIT` writes its events.
    events: Vec<libc::epoll_event>,
    /// The `epoll_event` each `EPOLL_CTL` of the current chunk reads.
    ctl: Vec<libc::epoll_event>,
    /// An `EPOLL_WAIT` was submitted and its completion not yet reaped.
    wait_armed: bool,
    /// The room the last `EPOLL_WAIT` had, and whether it filled it.
    wait_max: usize,
    full: bool,
}

impl std::fmt::Debug for Ring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring").finish_non_exhaustive()
    }
}

impl Selector {
    /// An epoll instance and a first ring, after checking that the kernel has what this
    /// backend needs.
    pub(crate) fn new() -> io::Result<Selector> {
        let ring = Ring::new()?;
        Ok(Selector {
            epoll: epoll::Selector::new()?,
            rings: Mutex::new(vec![ring]),
        })
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.epoll.fd()
    }

    pub(crate) fn add(
        &self,
        fd: RawFd,
        token: u64,
        filter: Events,
        trigger: Trigger,
    ) -> io::Result<()> {
        self.epoll.add(fd, token, filter, trigger)
    }

    pub(crate) fn modify(
        &self,
        fd: RawFd,
        token: u64,
        filter: Events,
        trigger: Trigger,
    ) -> io::Result<()> {
        self.epoll.modify(fd, token, filter, trigger)
    }

    pub(crate) fn disarm(&self, fd: RawFd, token: u64) -> io::Result<()> {
        self.epoll.disarm(fd, token)
    }

    pub(crate) fn delete(&self, fd: RawFd) -> io::Result<()> {
        self.epoll.delete(fd)
    }

    pub(crate) fn wake(&self) -> io::Result<()> {
        self.epoll.wake()
    }

    pub(crate) fn wait(
        &self,
        buf: &mut Vec<RawEvent>,
        max: usize,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        self.submit(&[], &mut Vec::new(), buf, max, timeout)
    }

    /// Applies `changes` and waits for up to `max` events, in one `io_uring_enter` when the
    /// changes fit in one chunk and none fails.
    pub(crate) fn submit(
        &self,
        changes: &[Change],
        results: &mut Vec<io::Result<()>>,
        buf: &mut Vec<RawEvent>,
        max: usize,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        let pooled = self.rings.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut ring = match pooled.map_or_else(Ring::new, Ok) {
            Ok(ring) => ring,
            // No ring for this thread now (at the descriptor limit, say): the same work
            // through direct calls, rather than failing a wait that epoll can do.
            Err(_) => return self.epoll.submit(changes, results, buf, max, timeout),
        };
        let result = ring.run(self, changes, results, buf, max, timeout);
        // Every request of the call has completed (see `Ring::run`), so the ring is clean.
        self.rings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(ring);
        result
    }
}

impl Ring {
    fn new() -> io::Result<Ring> {
        if std::env::var_os(DISABLE_ENV).is_some() {
            return Err(unsupported(format!("io_uring disabled by {DISABLE_ENV}")));
        }
        let ring = IoUring::builder().build(RING_ENTRIES).map_err(|e| {
            // No io_uring (ENOSYS), or forbidden by sysctl or seccomp (EPERM, EACCES):
            // unsupported here. Resource limits (EMFILE, ENOMEM) are reported as they are.
            match e.raw_os_error() {
                Some(libc::ENOSYS | libc::EPERM | libc::EACCES) => {
                    unsupported(format!("io_uring_setup failed: {e}"))
                }
                _ => e,
            }
        })?;
        if !ring.params().is_feature_ext_arg() {
            return Err(unsupported(
                "io_uring lacks IORING_FEAT_EXT_ARG (Linux 5.11)",
            ));
        }
        let mut probe = Probe::new();
        ring.submitter()
            .register_probe(&mut probe)
            .map_err(|e| unsupported(format!("io_uring probe failed: {e}")))?;
        for (code, name) in [
            (opcode::EpollCtl::CODE, "IORING_OP_EPOLL_CTL (Linux 5.6)"),
            (opcode::EpollWait::CODE, "IORING_OP_EPOLL_WAIT (Linux 6.15)"),
            (
                opcode::AsyncCancel::CODE,
                "IORING_OP_ASYNC_CANCEL (Linux 5.5)",
            ),
        ] {
            if !probe.is_supported(code) {
                return Err(unsupported(format!("io_uring lacks {name}")));
            }
        }
        Ok(Ring {
            ring,
            events: Vec::new(),
            ctl: Vec::new(),
            wait_armed: false,
            wait_max: 0,
            full: false,
        })
    }

    /// Runs one call. On return, no request of this ring is in flight.
    fn run(
        &mut self,
        selector: &Selector,
        changes: &[Change],
        results: &mut Vec<io::Result<()>>,
        buf: &mut Vec<RawEvent>,
        max: usize,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        let first = results.len();
        results.extend(changes.iter().map(|_| Ok(())));
        // Room for the changes, the poll, the wait and two cancellations.
        let chunk = RING_ENTRIES as usize - 4;
        let epfd = selector.epoll.fd();
        let mut start = 0;
        loop {
            let end = (start + chunk).min(changes.len());
            let part = &changes[start..end];
            let wait = end == changes.len() && max > 0;
            self.push_changes(epfd, part, wait);
            if wait {
                self.push_wait(epfd, max);
            }
            let want = part.len() + 2 * usize::from(wait);
            let entered = self.enter(want, if wait { timeout } else { None });
            let (cancelled, waited) =
                self.reap(&mut results[first + start..first + end], buf, entered);
            // Changes cancelled because an earlier one failed were never applied: apply them
            // now, directly.
            for index in cancelled {
                results[first + start + index] = selector.epoll.apply(&part[index]);
            }
            if end == changes.len() {
                if wait && self.full {
                    selector.epoll.wake()?;
                }
                return waited;
            }
            start = end;
        }
    }

    fn push_changes(&mut self, epfd: RawFd, part: &[Change], link_last: bool) {
        self.ctl.clear();
        self.ctl.extend(part.iter().map(|c| libc::epoll_event {
            events: epoll::change_bits(c),
            u64: c.token,
        }));
        for (index, event) in self.ctl.iter().enumerate() {
            let entry = opcode::EpollCtl::new(
                types::Fd(epfd),
                types::Fd(part[index].fd),
                libc::EPOLL_CTL_MOD,
                (event as *const libc::epoll_event).cast(),
            )
            .build()
            .user_data(index as u64);
            let entry = if index + 1 < part.len() || link_last {
                entry.flags(squeue::Flags::IO_LINK)
            } else {
                entry
            };
            // SAFETY: the event the entry points to lives in `self.ctl`, which is not touched
            // until the chunk's completions are reaped; the queue has room (chunks are sized
            // to leave two free entries, and every request is reaped before the next chunk).
            unsafe { self.ring.submission().push(&entry) }.expect("submission queue has room");
        }
    }

    /// Queues the wait: an exclusive poll on the epoll instance, linked to the
    /// `EPOLL_WAIT` that harvests it. Many threads may wait on one port; the exclusive poll
    /// makes each readiness report wake one of them, as `epoll_wait` does (an `EPOLL_WAIT`
    /// alone would wake every waiting ring).
    fn push_wait(&mut self, epfd: RawFd, max: usize) {
        let max = max.min(i32::MAX as usize);
        if self.events.len() < max {
            // No request is in flight (see `run`), so the buffer may move.
            self.events
                .resize(max, libc::epoll_event { events: 0, u64: 0 });
        }
        let poll = opcode::PollAdd::new(
            types::Fd(epfd),
            (libc::EPOLLIN | libc::EPOLLEXCLUSIVE) as u32,
        )
        .build()
        .user_data(POLL)
        .flags(squeue::Flags::IO_LINK);
        let wait =
            opcode::EpollWait::new(types::Fd(epfd), self.events.as_mut_ptr().cast(), max as u32)
                .build()
                .user_data(WAIT);
        self.wait_armed = true;
        self.wait_max = max;
        self.full = false;
        // SAFETY: the poll carries no pointer; `self.events` holds `max` entries and is
        // neither moved nor read until the wait's completion is reaped, which `run` does
        // before it returns. The queue has room (see `push_changes`).
        unsafe {
            let mut sq = self.ring.submission();
            sq.push(&poll).expect("submission queue has room");
            sq.push(&wait).expect("submission queue has room");
        }
    }

    /// Submits what is queued and waits for `want` completions or the timeout. Returns
    /// `Ok(true)` when the wait timed out.
    fn enter(&mut self, want: usize, timeout: Option<Duration>) -> io::Result<bool> {
        loop {
            let result = match timeout {
                None => self.ring.submit_and_wait(want),
                Some(t) => {
                    let ts = types::Timespec::new()
                        .sec(t.as_secs())
                        .nsec(t.subsec_nanos());
                    let args = types::SubmitArgs::new().timespec(&ts);
                    self.ring.submitter().submit_with_args(want, &args)
                }
            };
            match result {
                Ok(_) => return Ok(false),
                Err(e) if e.raw_os_error() == Some(libc::ETIME) => return Ok(true),
                // Submission happened before the wait; entering again submits nothing new.
                Err(e) if e.kind() == io::ErrorKind::Interrupted && timeout.is_none() => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Collects every completion of the chunk. Cancels the wait if it is still pending
    /// (timeout or error). Returns the changes that were cancelled by a broken link and the
    /// wait's result.
    fn reap(
        &mut self,
        results: &mut [io::Result<()>],
        buf: &mut Vec<RawEvent>,
        entered: io::Result<bool>,
    ) -> (Vec<usize>, io::Result<()>) {
        let mut cancelled = Vec::new();
        let mut pending = results.len() + 2 * usize::from(self.wait_armed);
        let mut wait_result = entered.map(drop);
        let mut cancel_sent = false;
        loop {
            self.ring.completion().sync();
            for cqe in self.ring.completion() {
                pending -= usize::from(cqe.user_data() != CANCEL);
                let res = cqe.result();
                match cqe.user_data() {
                    WAIT => {
                        self.wait_armed = false;
                        if res > 0 {
                            epoll::convert(&self.events[..res as usize], buf);
                            // A full harvest may have left reports behind, and epoll does
                            // not wake pollers for those: let another waiter look.
                            self.full = res as usize == self.wait_max;
                        } else if res < 0 && !nothing_harvested(res) {
                            wait_result = Err(io::Error::from_raw_os_error(-res));
                        }
                    }
                    CANCEL => {}
                    POLL => {
                        if res < 0 && !nothing_harvested(res) {
                            wait_result = Err(io::Error::from_raw_os_error(-res));
                        }
                    }
                    index => {
                        let index = index as usize;
                        if res == -libc::ECANCELED {
                            cancelled.push(index);
                        } else if res < 0 {
                            results[index] = Err(io::Error::from_raw_os_error(-res));
                        }
                    }
                }
            }
            if pending == 0 {
                return (cancelled, wait_result);
            }
            if self.wait_armed && !cancel_sent {
                // The wait timed out or the enter failed: take the poll and the wait back
                // (whichever is still pending; cancelling the poll cancels its link).
                // SAFETY: cancellations carry no pointer; the queue has room for two (see
                // `run`).
                unsafe {
                    let mut sq = self.ring.submission();
                    for target in [POLL, WAIT] {
                        let entry = opcode::AsyncCancel::new(target).build().user_data(CANCEL);
                        sq.push(&entry).expect("submission queue has room");
                    }
                }
                cancel_sent = true;
            }
            // Wait for the rest; no timeout, since a cancelled wait completes at once.
            if let Err(e) = self.ring.submit_and_wait(1) {
                if e.kind() != io::ErrorKind::Interrupted {
                    // Nothing sensible is left to do with a ring that cannot be entered.
                    panic!("io_uring_enter failed while reaping: {e}");
                }
            }
        }
    }
}

/// Whether a wait or poll result only says that nothing was harvested: cancelled (by a
/// timeout or a broken link), interrupted, or `EAGAIN` (another waiter harvested first,
/// after the request was handed to an io-wq worker, which does not re-arm it).
fn nothing_harvested(res: i32) -> bool {
    res == -libc::ECANCELED || res == -libc::EINTR || res == -libc::EAGAIN
}

fn unsupported(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::Unsupported, msg.into())
}

//! The `io_uring(7)` backend: epoll's interest set, with a batch of interest changes
//! submitted through a ring in one `io_uring_enter`.
//!
//! # Why epoll underneath
//!
//! A poll request (`IORING_OP_POLL_ADD`) holds a reference to the socket's file until it
//! completes, so closing a socket with an armed poll would not close it (the peer would not
//! see the connection end) and would leave a completion for a dead registration in flight.
//! Rule 7 wants closing to deregister silently and promptly, which is what epoll's interest
//! set does. So the interest set stays an epoll instance, and the ring carries
//! `IORING_OP_EPOLL_CTL` requests: the same kernel objects and semantics as the epoll
//! backend, fewer transitions.
//!
//! # What goes through the ring, and what does not
//!
//! A batch of two or more changes is submitted as `EPOLL_CTL` requests linked in order
//! (`IOSQE_IO_LINK`: the first that fails cancels the rest, which are then reported as not
//! applied, as the contract wants; a check, whose `EEXIST` is its success, is hard-linked
//! instead, `IOSQE_IO_HARDLINK`, so that it never cancels what follows) and **reaped before `apply` returns**: the registry holds each change's registration lock across `apply`, so
//! the kernel sees each socket's changes in the registry's order, and nothing is left in
//! flight when the call returns. A single change is one `epoll_ctl` (cheaper than an
//! enter).
//!
//! The wait is a plain `epoll_wait`. Waiting in the ring (`IORING_OP_EPOLL_WAIT`, Linux
//! 6.15) would save one transition per batch that carries changes, but its waiters are
//! served in no stable order, and rule 18 wants the most recent waiter served first, which
//! epoll's own wait queue does. It also kept harvested reports inside rings between calls.
//!
//! # Rings
//!
//! Each thread that submits a batch through a port gets its own ring for that port, made
//! on first use and kept in a thread-local list keyed by the port; the port holds every
//! ring made for it as well. Whichever ends first closes the ring: the port when it closes
//! (no thread is inside `apply` then), the thread when it exits. So no descriptor outlives
//! the port, and a thread that has ended leaves none behind on a port that lives on. The
//! cost: one ring per thread and port while both live, where a pool kept one per thread
//! submitting at once.
//!
//! A ring entered by one thread only can be set up with `IORING_SETUP_SINGLE_ISSUER |
//! IORING_SETUP_DEFER_TASKRUN` (Linux 6.1): every linked request after the first is issued
//! from task work, which then runs inside the thread's own wait instead of through the
//! kernel's generic task-work path (`docs/io_uring.md`, "Setup flags"). A kernel that
//! refuses the flags gets `COOP_TASKRUN` (5.19), then none. Without a usable ring (one
//! that cannot be created or entered), the changes are applied with direct `epoll_ctl`
//! calls: never an error.
//!
//! Measured (`docs/io_uring.md`, "Setup flags", with the commands): a linked chain costs
//! the kernel 358 ns per change with `DEFER_TASKRUN` against 526 with `COOP_TASKRUN` or
//! no flag (`examples/uring_ctl_cost.rs`; a direct `epoll_ctl` is 269); in the batch
//! workload 457 CPU ns per change against 648 for the pooled rings before; per HTTP
//! request io_uring/epoll 0.99 against 1.02, not the 0.95 issue 11 asks for, which this
//! design cannot reach: the only per-request call the ring takes over is the re-arm, and
//! the whole transition it could save (about 121 ns) is under 2 % of a request's 6,200 ns
//! or more. Tried and not kept: `TASKRUN_FLAG` and `SUBMIT_ALL` (no effect: the backend
//! always waits in the enter and resubmits what was not taken), and a registered ring
//! descriptor (`IORING_REGISTER_RING_FDS`): 38 ns per enter, at most 6 ns per HTTP request,
//! and the registration is the thread's and holds the ring open, so a port closed by
//! another thread would leave its ring alive until that thread exits.
//!
//! Kernel answers that mean "try again" (`EINTR`, `EAGAIN`, `EBUSY`) are retried; a request
//! the kernel has not taken after that is applied directly instead (rule 21).
//!
//! # References
//! - [`io_uring_enter(2)`](https://man7.org/linux/man-pages/man2/io_uring_enter.2.html)
//! - [`io_uring_prep_epoll_ctl(3)`](https://man7.org/linux/man-pages/man3/io_uring_prep_epoll_ctl.3.html)

use std::cell::RefCell;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use io_uring::{opcode, squeue, types, IoUring, Probe};

use super::epoll;
use super::{Change, ChangeError, Op};

/// Submission queue size of each ring. Larger batches are submitted in several chunks.
const RING_ENTRIES: usize = 128;
/// How often a "try again" answer from `io_uring_enter` is retried before the changes the
/// kernel has not taken are applied directly.
const RETRIES: u32 = 64;
/// Set to any value to make the probe fail, as on a kernel without io_uring (for tests of
/// `Backend::Auto`'s fallback).
const DISABLE_ENV: &str = "SOCKNOTIFY_DISABLE_IO_URING";

/// The epoll instance, and the rings that drive it.
pub(crate) struct Selector {
    epoll: epoll::Selector,
    /// Which port a thread's ring belongs to (`MINE`): unique in the process, never reused.
    key: u64,
    /// Every ring made for this port, one per thread that submitted a batch through it; the
    /// port closes them all when it closes. A thread that ends closes its own.
    rings: Mutex<Vec<Arc<Slot>>>,
}

impl std::fmt::Debug for Selector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Selector")
            .field("epoll", &self.epoll)
            .finish_non_exhaustive()
    }
}

impl Drop for Selector {
    fn drop(&mut self) {
        // No thread is inside `apply` (it borrows the selector): every ring is idle.
        let rings = std::mem::take(self.rings.get_mut().unwrap_or_else(|e| e.into_inner()));
        for slot in rings {
            slot.close();
        }
    }
}

/// One thread's ring for one port, shared by the two that may close it: the port, when it
/// closes, and the thread, when it ends. Only the thread that made it enters it.
struct Slot(Mutex<Option<Ring>>);

impl Slot {
    fn close(&self) {
        drop(self.0.lock().unwrap_or_else(|e| e.into_inner()).take());
    }
}

/// This thread's rings, one per port it submitted a batch through (few: looked up by key).
struct Mine(Vec<(u64, Arc<Slot>)>);

impl Drop for Mine {
    fn drop(&mut self) {
        for (_, slot) in self.0.drain(..) {
            slot.close();
        }
    }
}

thread_local! {
    static MINE: RefCell<Mine> = const { RefCell::new(Mine(Vec::new())) };
}

/// Gives each port its key.
static KEYS: AtomicU64 = AtomicU64::new(0);

/// One ring and the memory its requests point to.
struct Ring {
    ring: IoUring,
    /// The `epoll_event` each `EPOLL_CTL` of the current chunk reads.
    ctl: Vec<libc::epoll_event>,
}

impl Selector {
    pub(crate) fn new() -> io::Result<Selector> {
        probe()?;
        Ok(Selector {
            epoll: epoll::Selector::new()?,
            key: KEYS.fetch_add(1, Ordering::Relaxed),
            rings: Mutex::new(Vec::new()),
        })
    }

    /// Applies one change directly: one `epoll_ctl` is cheaper than an enter.
    pub(crate) fn apply_one(&self, change: &Change) -> Result<(), super::ChangeError> {
        self.epoll.apply_one(change)
    }

    pub(crate) fn apply(&self, changes: &mut [Change]) {
        if changes.len() < 2 {
            return self.epoll.apply(changes);
        }
        for change in changes.iter_mut() {
            change.result = Err(PENDING);
        }
        // Without this thread's ring (the thread is ending, or none can be made), every
        // change goes directly below.
        let _ = MINE.try_with(|mine| {
            if let Ok(mut mine) = mine.try_borrow_mut() {
                self.submit(&mut mine, changes);
            }
        });
        // What the ring did not answer goes directly, in order, up to the first failure.
        let mut failed = false;
        for change in changes.iter_mut() {
            if change.result == Err(PENDING) {
                change.result = if failed {
                    Err(ChangeError::NotApplied)
                } else {
                    self.epoll.apply_one(change)
                };
            }
            failed |= change.stops();
        }
    }

    /// Submits `changes` through this thread's ring for this port, made on first use.
    fn submit(&self, mine: &mut Mine, changes: &mut [Change]) {
        let slot = match mine.0.iter().find(|(key, _)| *key == self.key) {
            Some((_, slot)) => slot,
            None => {
                let Ok(ring) = Ring::new() else { return };
                let slot = Arc::new(Slot(Mutex::new(Some(ring))));
                let mut rings = self.rings.lock().unwrap_or_else(|e| e.into_inner());
                // Rings of threads that have ended (closed, only the port holds them).
                rings.retain(|slot| Arc::strong_count(slot) > 1);
                rings.push(Arc::clone(&slot));
                drop(rings);
                // Rings of ports that have closed (only this thread holds them).
                mine.0.retain(|(_, slot)| Arc::strong_count(slot) > 1);
                mine.0.push((self.key, slot));
                &mine.0[mine.0.len() - 1].1
            }
        };
        let mut held = slot.0.lock().unwrap_or_else(|e| e.into_inner());
        if held.is_none() {
            // The last one could not be entered (the port is open: it was not the port
            // that closed it).
            *held = Ring::new().ok();
        }
        let Some(ring) = held.as_mut() else { return };
        for chunk in changes.chunks_mut(RING_ENTRIES) {
            if ring.run(self, chunk).is_err() {
                // A ring that cannot be entered is closed (its queue with it); the rest of
                // the batch goes directly, and the next batch tries a new ring.
                *held = None;
                return;
            }
            // A failure ends the batch: the later chunks are not applied.
            if chunk.iter().any(|c| c.result != Err(PENDING) && c.stops()) {
                return;
            }
        }
    }

    pub(crate) fn wait(
        &self,
        out: &mut Vec<libc::epoll_event>,
        max: usize,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        self.epoll.wait(out, max, timeout)
    }

    pub(crate) fn wake(&self) -> io::Result<()> {
        self.epoll.wake()
    }

    /// As the epoll backend's: the rings drive the same epoll instance.
    pub(crate) fn holds_other_file(&self, fd: super::Socket) -> Option<bool> {
        self.epoll.holds_other_file(fd)
    }
}

/// The result of a change the ring has not answered yet.
const PENDING: super::ChangeError = super::ChangeError::Os(-1);

impl Ring {
    fn new() -> io::Result<Ring> {
        Ok(Ring {
            ring: build(RING_ENTRIES as u32)?,
            ctl: Vec::with_capacity(RING_ENTRIES),
        })
    }

    /// Submits one chunk and reaps every completion the kernel owes for it. `Err` means
    /// the ring is unusable; the changes it did not answer are still `PENDING`.
    fn run(&mut self, selector: &Selector, chunk: &mut [Change]) -> Result<(), ()> {
        let epfd = selector.epoll.fd();
        self.ctl.clear();
        self.ctl
            .extend(chunk.iter().map(|change| libc::epoll_event {
                events: epoll::epoll_op(change.op).1,
                u64: change.token,
            }));
        let mut pushed = 0;
        {
            let mut sq = self.ring.submission();
            for (index, (change, event)) in chunk.iter().zip(&self.ctl).enumerate() {
                let entry = opcode::EpollCtl::new(
                    types::Fd(epfd),
                    types::Fd(change.socket),
                    epoll::epoll_op(change.op).0,
                    (event as *const libc::epoll_event).cast(),
                )
                .build()
                .user_data(index as u64);
                // Linked in order; a check's failure (its EEXIST is its success) does not
                // sever the chain, as it does not stop a batch (`Change::stops`).
                let entry = if index + 1 == chunk.len() {
                    entry
                } else if change.op == Op::Check {
                    entry.flags(squeue::Flags::IO_HARDLINK)
                } else {
                    entry.flags(squeue::Flags::IO_LINK)
                };
                // SAFETY: the event the entry points to lives in `self.ctl`, which is not
                // touched until every completion of this chunk is reaped below (the kernel
                // reads it when it takes the request); the queue, empty between chunks, has
                // room for a whole chunk.
                if unsafe { sq.push(&entry) }.is_err() {
                    return Err(());
                }
                pushed += 1;
            }
        }
        let mut reaped = 0;
        let mut retries = 0;
        while reaped < pushed {
            match self.ring.submit_and_wait(pushed - reaped) {
                Ok(_) => {}
                Err(e) if is_try_again(&e) && retries < RETRIES => {
                    retries += 1;
                    std::thread::yield_now();
                }
                // Nothing in flight and the kernel refuses the rest: give the ring up (its
                // queued requests go with it) and let the caller apply them directly.
                Err(_) if pushed - reaped == self.ring.submission().len() => return Err(()),
                // Requests are in flight: their completions must still be reaped.
                Err(_) => std::thread::yield_now(),
            }
            for cqe in self.ring.completion() {
                reaped += 1;
                let change = &mut chunk[cqe.user_data() as usize];
                let res = cqe.result();
                change.result = if res >= 0 {
                    epoll::settle_ok(&selector.epoll, change)
                } else if res == -libc::ECANCELED {
                    Err(ChangeError::NotApplied)
                } else {
                    let err = io::Error::from_raw_os_error(-res);
                    epoll::settle_error(&selector.epoll, change, &err)
                };
            }
        }
        Ok(())
    }
}

/// A ring only its creating thread enters: task work (each linked request after the
/// first is issued from it) runs inside that thread's wait, without a signal
/// (`SINGLE_ISSUER | DEFER_TASKRUN`, Linux 6.1). Older kernels refuse the flags (`EINVAL`):
/// then `COOP_TASKRUN` (5.19), then none.
fn build(entries: u32) -> io::Result<IoUring> {
    IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .build(entries)
        .or_else(|_| IoUring::builder().setup_coop_taskrun().build(entries))
        .or_else(|_| IoUring::new(entries))
}

fn is_try_again(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::EINTR | libc::EAGAIN | libc::EBUSY)
    )
}

/// Whether this kernel has what the backend needs: checked once per process.
fn probe() -> io::Result<()> {
    if std::env::var_os(DISABLE_ENV).is_some() {
        return Err(unsupported(format!("io_uring disabled by {DISABLE_ENV}")));
    }
    static PROBE: OnceLock<Result<(), String>> = OnceLock::new();
    PROBE
        .get_or_init(|| {
            let ring = IoUring::new(8).map_err(|e| format!("io_uring_setup failed: {e}"))?;
            let mut probe = Probe::new();
            ring.submitter()
                .register_probe(&mut probe)
                .map_err(|e| format!("io_uring probe failed: {e}"))?;
            if !probe.is_supported(opcode::EpollCtl::CODE) {
                return Err("io_uring lacks IORING_OP_EPOLL_CTL (Linux 5.6)".into());
            }
            Ok(())
        })
        .clone()
        .map_err(unsupported)
}

fn unsupported(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::Unsupported, msg.into())
}

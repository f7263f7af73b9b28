//! One watched socket: its two polls' memory and the state that says what they are doing.
//!
//! A socket has two polls in the kernel, each in memory of its own:
//!
//! - the **interest poll**, for the armed interest's AFD events, issued while the
//!   registration is armed and re-issued as the selector decides;
//! - the **close watch**, for `AFD_POLL_LOCAL_CLOSE` alone, issued once at `Add` and pending
//!   until the socket is deleted or seen closed. Nothing but a close completes it, so at
//!   every moment from `Add` on there is a poll in the kernel that sees the socket's close.
//!
//! Why two: a poll ends when it reports, and the next one is issued only by the thread
//! that reaps that report (or the cancellation of a poll being changed). If that poll were
//! the only one, a socket closed in between, and its handle value taken at once by a new
//! socket of another thread, would have no poll to tell of the close, and the re-issued
//! poll would go to the *new* socket under the old registration (issue 12's cross-thread
//! race). The close watch is never re-issued, so it cannot move to another socket: the
//! kernel writes its `LOCAL_CLOSE` result when the socket is closed, and every decision
//! (a report, a change, a socket's identity) reads it first ([`Sock::closed_early`]).
//!
//! What the close watch cannot see is the registered handle closed while a duplicate keeps
//! the socket open: no `LOCAL_CLOSE` comes, and the value may name a new socket at once.
//! For that, every interest poll once issued, every report and every identity compares
//! what the value names with what this socket showed under it ([`Sock::renamed`]).

use std::cell::UnsafeCell;
use std::fmt;
use std::os::windows::io::RawSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use windows_sys::Win32::Foundation::STATUS_PENDING;
use windows_sys::Win32::Networking::WinSock::WSAENOTSOCK;
use windows_sys::Win32::System::IO::IO_STATUS_BLOCK;

use super::afd::{self, Afd, Fingerprint, PollInfo};
use super::identity;
use crate::sys::ChangeError;

/// One watched socket and its polls' memory.
pub(super) struct Sock {
    /// The interest poll's memory. Written by the kernel while `state.poll` is not Idle;
    /// by this module only under `state`'s lock, while it is Idle.
    io: UnsafeCell<PollIo>,
    /// The close watch's memory, under the same rule with `state.watch`.
    watch_io: UnsafeCell<PollIo>,
    pub(super) state: Mutex<State>,
    pub(super) token: u64,
    /// The handle polled: the base socket of the handle that was added.
    pub(super) base: RawSocket,
    /// The socket's identity (see `identity.rs`): `base`, or the base handle under which a
    /// duplicate of it was registered first.
    pub(super) identity: RawSocket,
    pub(super) datagram: bool,
    pub(super) afd: Arc<Afd>,
    /// The socket's close has been counted in its identity's epoch (`identity::closed`).
    epoch_done: AtomicBool,
}

// SAFETY: `io` and `watch_io` are the only fields that are not Send + Sync by themselves.
// Each is written by the kernel only while its poll (`state.poll`, `state.watch`) is not
// Idle, and by this module only with `state` locked and that poll Idle (after its entry was
// dequeued, or before it is issued), so no two writers ever touch one at once. The one read
// while a poll is pending, [`Sock::closed_early`], is volatile, under `state`'s lock, of
// what the kernel writes once when the poll completes.
unsafe impl Send for Sock {}
// SAFETY: as for Send: every access to `io` and `watch_io` is serialised by `state`'s lock
// and the poll status it holds.
unsafe impl Sync for Sock {}

impl fmt::Debug for Sock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sock")
            .field("token", &self.token)
            .field("base", &self.base)
            .field("identity", &self.identity)
            .field("datagram", &self.datagram)
            .field("state", &*lock(&self.state))
            .finish_non_exhaustive()
    }
}

/// The memory one `IOCTL_AFD_POLL` reads and writes.
#[repr(C)]
pub(super) struct PollIo {
    pub(super) iosb: IO_STATUS_BLOCK,
    pub(super) info: PollInfo,
}

impl PollIo {
    fn new() -> PollIo {
        PollIo {
            iosb: IO_STATUS_BLOCK::default(),
            info: PollInfo::new(),
        }
    }
}

/// Which of a socket's two polls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Which {
    Interest,
    Watch,
}

impl Which {
    /// The low bit of the poll's context pointer: a `Sock` is aligned to 8, so the bit is
    /// free to say which of its polls an entry belongs to.
    const WATCH_TAG: usize = 1;

    /// The context the kernel gives back as the entry's `lpOverlapped` for this poll of
    /// the `Sock` at `sock` (an `Arc::into_raw`).
    pub(super) fn context(self, sock: *const Sock) -> *const u8 {
        match self {
            Which::Interest => sock.cast(),
            Which::Watch => sock.cast::<u8>().wrapping_add(Which::WATCH_TAG),
        }
    }

    /// The poll and the `Sock` pointer an entry's context names (see [`Which::context`]).
    pub(super) fn of_context(context: *const u8) -> (Which, *const Sock) {
        let tag = context as usize & Which::WATCH_TAG;
        let which = if tag == 0 {
            Which::Interest
        } else {
            Which::Watch
        };
        (which, context.wrapping_sub(tag).cast())
    }
}

const _: () = assert!(std::mem::align_of::<Sock>() > Which::WATCH_TAG);

/// Where one of a socket's polls is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Poll {
    /// No poll in the kernel.
    Idle,
    /// A poll for this AFD mask is in the kernel.
    Pending(u32),
    /// The poll in the kernel was asked to cancel; its entry has not been dequeued yet.
    Cancelling,
}

impl Poll {
    fn in_kernel(self) -> bool {
        self != Poll::Idle
    }
}

#[derive(Debug)]
pub(super) struct State {
    /// The interest poll.
    pub(super) poll: Poll,
    /// The close watch.
    pub(super) watch: Poll,
    /// The AFD mask of the armed interest; `None` while disarmed (or fired, or closed):
    /// then no interest poll is issued, and the close watch alone is pending.
    pub(super) want: Option<u32>,
    /// One-shot interest: a report disarms. Otherwise (persistent EDGE) a report disarms
    /// too, and the next `Check` polls again: AFD has no edge mode, and a poll while the
    /// reported condition still holds would report it again at once.
    pub(super) oneshot: bool,
    /// The AFD mask of the interest last given (`Add`, `Arm`).
    pub(super) mask: u32,
    /// Persistent EDGE that reported since the last `Check`.
    pub(super) edge_fired: bool,
    /// The AFD events of the last report (persistent EDGE).
    pub(super) reported: u32,
    /// Lasting conditions (`DISCONNECT`, `ABORT`, `CONNECT_FAIL`) a persistent EDGE
    /// registration has reported: never polled for again, since they never clear.
    pub(super) sticky: u32,
    /// Deleted: nothing more is reported or issued; the entries only free the memory.
    pub(super) deleted: bool,
    /// The socket was closed (`LOCAL_CLOSE` or an invalid handle): `Arm`/`Delete` say `Gone`.
    pub(super) closed: bool,
    /// What the socket has shown of itself under its handle value, to tell it from a new
    /// socket under that value ([`Sock::renamed`]).
    pub(super) fingerprint: Fingerprint,
}

impl State {
    pub(super) fn poll_mut(&mut self, which: Which) -> &mut Poll {
        match which {
            Which::Interest => &mut self.poll,
            Which::Watch => &mut self.watch,
        }
    }
}

impl Sock {
    pub(super) fn new(
        token: u64,
        base: RawSocket,
        identity: RawSocket,
        datagram: bool,
        afd: Arc<Afd>,
        mask: u32,
        oneshot: bool,
    ) -> Sock {
        Sock {
            io: UnsafeCell::new(PollIo::new()),
            watch_io: UnsafeCell::new(PollIo::new()),
            state: Mutex::new(State {
                poll: Poll::Idle,
                watch: Poll::Idle,
                want: Some(mask),
                oneshot,
                mask,
                edge_fired: false,
                reported: 0,
                sticky: 0,
                deleted: false,
                closed: false,
                fingerprint: Fingerprint::default(),
            }),
            token,
            base,
            identity,
            datagram,
            afd,
            epoch_done: AtomicBool::new(false),
        }
    }

    /// The memory of one of the polls (see the rules on [`Sock::io`]).
    pub(super) fn io(&self, which: Which) -> *mut PollIo {
        match which {
            Which::Interest => self.io.get(),
            Which::Watch => self.watch_io.get(),
        }
    }

    /// Asks the kernel to cancel the poll `which` if it is pending; returns at once. Its
    /// entry still comes, and frees its reference then. `state` must be this socket's.
    pub(super) fn cancel(&self, which: Which, state: &mut State) -> Result<(), ChangeError> {
        let poll = state.poll_mut(which);
        if !matches!(*poll, Poll::Pending(_)) {
            return Ok(());
        }
        let io = self.io(which);
        // SAFETY: the poll is pending (its entry not dequeued: `state` is locked and says
        // so), and the pointer only names the request; nothing is read or written here.
        unsafe { self.afd.cancel(&raw mut (*io).iosb) }
            .map_err(|e| ChangeError::Os(e.raw_os_error().unwrap_or(0)))?;
        *poll = Poll::Cancelling;
        Ok(())
    }

    /// Stops both polls (deleted, replaced, closed, or the selector going): nothing more
    /// is issued or reported. `state` must be this socket's.
    pub(super) fn stop(&self, state: &mut State) {
        state.want = None;
        // A failed cancel only delays the memory's release to the poll's completion.
        let _ = self.cancel(Which::Interest, state);
        let _ = self.cancel(Which::Watch, state);
    }

    /// The socket is known to be closed: no more reports, and both polls are cancelled (the
    /// interest poll may have been issued on a new socket that took the handle value).
    pub(super) fn close_seen(&self, state: &mut State) {
        state.closed = true;
        self.stop(state);
    }

    /// Whether the socket was closed: known already, or one of its polls in the kernel has
    /// completed with `LOCAL_CLOSE` though its entry is not reaped yet (the kernel writes
    /// the status block and the poll's result when the poll completes, before it queues the
    /// entry). The close watch is pending from `Add` on, so a close is seen here at once.
    /// `state` must be this socket's, locked.
    pub(super) fn closed_early(&self, state: &mut State) -> bool {
        if state.closed {
            return true;
        }
        let seen = [Which::Watch, Which::Interest]
            .into_iter()
            .any(|which| state.poll_mut(which).in_kernel() && self.saw_close(which));
        if seen {
            self.close_seen(state);
        }
        seen
    }

    /// Whether the handle value `base` no longer names this socket, as far as user mode can
    /// tell: it names no socket any more, or one whose [`Fingerprint`] differs from what
    /// this socket showed under it. Then the socket is taken for closed, as
    /// [`Sock::closed_early`] does. This is what sees the registered handle closed while a
    /// duplicate keeps the socket open, when no `LOCAL_CLOSE` comes and a new socket may
    /// have the value already. What the value's socket shows that this one had not shown
    /// yet (a port bound since, a peer connected since) is taken as this one's. `state`
    /// must be this socket's, locked.
    pub(super) fn renamed(&self, state: &mut State) -> bool {
        let renamed = match Fingerprint::of(self.base) {
            Ok(now) if now.differs(&state.fingerprint) => true,
            Ok(now) => {
                state.fingerprint.learn(now);
                false
            }
            // Closed, or under the value now: something that is not a socket.
            Err(e) => e.raw_os_error() == Some(WSAENOTSOCK),
        };
        if renamed {
            self.close_seen(state);
        }
        renamed
    }

    /// Whether the poll `which`, in the kernel, has completed with `LOCAL_CLOSE`.
    fn saw_close(&self, which: Which) -> bool {
        let io = self.io(which);
        // SAFETY: `io` lives as long as `self`; the kernel writes the status once, when the
        // poll completes, and a volatile read of an aligned i32 sees it before or after.
        let status = unsafe { std::ptr::read_volatile(&raw const (*io).iosb.Anonymous.Status) };
        if status == STATUS_PENDING {
            return false;
        }
        // SAFETY: the status is no longer STATUS_PENDING, so the kernel has written the
        // poll's result and writes nothing more to `io` for this poll.
        let info = unsafe { std::ptr::read_volatile(&raw const (*io).info) };
        status >= 0 && info.events().is_some_and(|e| e & afd::LOCAL_CLOSE != 0)
    }

    /// Counts this socket's close in its identity's epoch, once.
    pub(super) fn count_close(&self) {
        if !self.epoch_done.swap(true, Ordering::AcqRel) {
            identity::closed(self.identity);
        }
    }
}

/// Locks, ignoring poisoning: a panic elsewhere must not make the selector unusable.
pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

//! The Windows backend: the AFD poll interface on a native I/O completion port, as wepoll,
//! mio (`sys/windows/`) and polling (`iocp/`) do it.
//!
//! A [`Selector`] owns one completion port (`CreateIoCompletionPort`) and a few handles to
//! the AFD device (`\Device\Afd`, one per 32 sockets), each associated with that port. Every
//! watched socket has at most one `IOCTL_AFD_POLL` in the kernel, issued on its *base*
//! socket (`SIO_BASE_HANDLE`, with wepoll's `SIO_BSP_HANDLE_POLL` fallback for layered
//! providers). When one of the polled events holds, the poll completes and its entry
//! arrives on the port; a [`wait`](Selector::wait) dequeues it and turns it into a report.
//! A [`wake`](Selector::wake) is a `PostQueuedCompletionStatus` with a key of its own.
//!
//! # The contract (`sys/mod.rs`)
//!
//! - [`Selector::apply`] applies [`Change`](crate::sys::Change)s in order, each with its
//!   own result. `Add` finds the base socket and issues a poll, replacing any item of the
//!   same token (a registration re-attached through another handle) or of the same socket;
//!   `Arm`, `Disarm`, `Delete` and `Check` find the registration **by token**, and `Check`
//!   also asks whether `Change::socket` still has the watched base socket. Nothing blocks:
//!   a poll that no longer fits is cancelled (`NtCancelIoFileEx`) and the call returns at
//!   once. A token the selector does not have (deleted, or its socket closed) answers
//!   [`ChangeError::Gone`](crate::sys::ChangeError::Gone).
//! - **One-shot.** Every `Add` and `Arm` yields at most one report, then the registration is
//!   disarmed until the next `Arm`. The token is the registration's for its whole life, so
//!   an entry that belongs to a cancelled or superseded poll must never surface: the
//!   selector swallows every completion that carries nothing for the armed interest
//!   (`STATUS_CANCELLED`, events outside the interest, anything while disarmed or deleted)
//!   and polls again.
//! - **Persistent EDGE** (`Interest::oneshot` false) is disarmed by its report too, and
//!   polled again at the next `Check`, which the registry sends when the thread that
//!   received the entry calls again (see "EDGE on AFD").
//! - **Two polls: the interest poll and the close watch** (`sock.rs`). The interest poll is
//!   issued while the registration is armed; the close watch, a poll for
//!   `AFD_POLL_LOCAL_CLOSE` alone, is issued once at `Add` and stays pending until the
//!   socket is deleted or seen closed. So a close is seen whenever it happens (SPEC rule
//!   7), also between a report and its reaping, when no interest poll is in the kernel and
//!   another thread may already have a new socket under the closed one's handle value.
//! - **Changing the mask.** An `Arm` while a poll is pending keeps that poll if it already
//!   watches everything wanted (a completion for anything else is filtered and re-polled);
//!   otherwise it cancels it and the thread that dequeues the cancelled poll's entry issues
//!   the new one, as wepoll does. AFD has one poll per socket and no way to modify it.
//! - **Closed sockets.** When the process closes a watched socket (`closesocket`,
//!   `CloseHandle`), its close watch (and an interest poll, which watches
//!   `AFD_POLL_LOCAL_CLOSE` too) completes with `LOCAL_CLOSE`; the selector maps that to no
//!   report, cancels the other poll, drops the registration from its table, and starts a
//!   new identity epoch for the handle value (`identity.rs`), so that a new socket reusing
//!   the value is a new socket to the registry; a later change of the old token answers
//!   `Gone`. A poll refused for an invalid handle ends the same way. Every report, change
//!   and identity first reads the close watch's status block, so a close is acted on
//!   before its entry is reaped. A close that AFD does not report (the registered handle
//!   closed under a live duplicate) is found by comparing the socket the value names with
//!   the registered one (see the known limits).
//! - **Readiness.** `RECEIVE`/`ACCEPT` are READABLE; `SEND` is WRITABLE (a finished connect
//!   shows as SEND; `AFD_POLL_CONNECT` is not used, as in mio, because AFD reports it on
//!   every poll of a connected socket); `DISCONNECT` is READABLE | HANGUP; `ABORT` is
//!   READABLE | WRITABLE | HANGUP | ERROR; `CONNECT_FAIL` is READABLE | WRITABLE | ERROR, as
//!   a reset and a failed connect look on Linux. A datagram socket never reports
//!   HANGUP. ERROR is always polled (`ABORT | CONNECT_FAIL`), whatever the
//!   filter; IN polls `RECEIVE | ACCEPT | DISCONNECT`, OUT polls `SEND`, HANGUP polls
//!   `DISCONNECT | ABORT`.
//! - **Waiting.** Any number of threads may [`wait`](Selector::wait) at once; each dequeues
//!   at most `max` entries. A waiter that dequeues several wakes keeps one and posts the
//!   others again, so that one wake releases one waiter. The port itself does not limit
//!   how many waiters run (`NumberOfConcurrentThreads` is unlimited): the registry's gate
//!   does that, on every backend alike.
//!
//! # EDGE on AFD
//!
//! AFD polls are level-triggered one-shots: a poll issued while the condition holds
//! completes at once. There is no edge mode, so edge triggering is emulated: a persistent
//! EDGE registration is disarmed by its report and polled again at its next `Check`, which
//! the registry sends when the thread that received the entry calls again. The re-poll
//! comes *after the application calls again*, not after it has seen the condition clear
//! nor after new data, because neither can be known in user mode: `FIONREAD` (and the
//! stream's head) cannot tell a buffer that was drained and refilled from one left
//! untouched, and `SIO_TCP_INFO`'s byte counter, which could, is missing in Wine (and
//! before Windows 10 1703). Of the two possible mistakes this one is the harmless one
//! (SPEC rule 11): a program that drains (reads until `WouldBlock`) before calling again
//! sees exactly one entry per edge; one that calls again without draining gets another
//! entry for the data still unread, never a missing one. Lasting conditions that never
//! clear (`DISCONNECT`, `ABORT`, `CONNECT_FAIL`) are not polled again once reported, so
//! end of stream and a reset are reported once, as edges. A registration enabled while
//! the condition already holds gets one entry at once, which Windows' own EDGE would not
//! queue (also allowed by rule 11).
//!
//! # What is pinned, and when
//!
//! Each watched socket's state is one `Arc<Sock>` holding its two polls' `IO_STATUS_BLOCK`
//! and `AFD_POLL_INFO`. Issuing a poll hands the kernel one strong reference
//! (`Arc::into_raw`, its low bit saying which poll, passed as the poll's APC context, which
//! the port gives back as the entry's `lpOverlapped`); the thread that dequeues the entry
//! takes it back. So the memory is
//! allocated, unmoved and unread by this module from the moment a poll is issued until its
//! entry (completion or cancellation) has been dequeued, whatever happens meanwhile:
//! `Delete` only drops the table's reference.
//!
//! Dropping the selector cancels every pending poll and dequeues entries until every poll
//! in flight has come back (up to 5 s); only then are the AFD handles and the port closed.
//! A poll that has still not come back by then keeps its `Sock` (and AFD handle) forever:
//! leaked, never freed under the kernel.
//!
//! # Known limits
//!
//! - A close is seen by the thread that reaps its `LOCAL_CLOSE` entry, or earlier, when a
//!   report, a change or a [`socket_identity`] finds the close watch's status block already
//!   completed with `LOCAL_CLOSE` (the kernel writes it before it queues the entry): so a
//!   socket closed and its handle value reused at once, by any thread, is a new socket to
//!   the registry. Under Wine the block is written before `closesocket` returns; should
//!   Windows write it later, a reuse in that window looks like the old socket until the
//!   entry is reaped.
//! - The close watch doubles the polls in the kernel (two per socket, 64 per AFD handle).
//! - A socket's identity ([`socket_identity`]) is a handle value, because user mode cannot
//!   name the kernel object. A duplicate (`DuplicateHandle`, `WSADuplicateSocket`,
//!   `try_clone`) has a handle value of its own, so a duplicate of a *registered* socket is
//!   resolved to the registered identity by comparing objects (`identity.rs`); a duplicate
//!   of an unregistered socket keeps its own value until one of them is registered.
//! - **The registered handle closed while a duplicate stays open.** The socket lives on, so
//!   no `LOCAL_CLOSE` comes (the close watch says nothing), nothing is left to compare the
//!   duplicate with (it gets an identity of its own: a REMOVE through it answers
//!   `NotFound`), and the value may be handed out at once to a new socket, which a poll
//!   issued on the value would watch under the old registration's token. User mode cannot
//!   name the object behind a handle (`SIO_BASE_HANDLE` answers a new socket's own value,
//!   the same as the old one's; `CompareObjectHandles` needs a handle to the old object,
//!   and holding one would keep the socket open), so the selector compares what the value
//!   names with what the registered socket showed under it (`afd::Fingerprint`: its type,
//!   its local port once bound, a stream's peer once connected; none of them changes for
//!   one socket) at three points, each under the socket's lock: after every interest poll
//!   is issued (the re-arm of a persistent registration, an EDGE re-poll, a re-poll after
//!   a cancelled or empty completion: a new socket ends the registration there, with
//!   `Gone`), before every report (reaped under the lock, so compared after the poll
//!   completed: the report is dropped and the registration ends), and in
//!   [`socket_identity`] (a new socket under the value is another socket). Comparing after
//!   the poll is issued, not before, leaves no moment in which the value can change
//!   unseen. So an entry under the old key after the close is the old socket's, and at
//!   most one, and a new socket's readiness never arrives under it, unless the new socket
//!   agrees in all that is known of both when it reports: of the same type and still
//!   neither bound nor connected (an unbound UDP socket's OUT), or bound to the same port
//!   and with the same peer (or none). wepoll, mio and polling do not look: there a
//!   registered handle closed under a duplicate is the caller's to deregister first. The
//!   comparison costs three socket queries (`SO_TYPE`, `getsockname`, `getpeername`) per
//!   report and per re-issued poll; they cannot be spared for sockets not duplicated when
//!   last looked at, since a duplicate made after that look, and the original closed,
//!   leave nothing to tell. A socket that connects again after a failed connect may show
//!   another local port, and is then taken for closed.
//! - Wine 8 writes a poll's result from the thread that issued it; when that thread has
//!   exited by the time the poll completes, the entry comes with the status block and the
//!   result unwritten. The selector takes such an entry for a cancelled poll and polls
//!   again from the reaping thread (about 1 in 25 polls issued by a thread that exits at
//!   once, under Wine; a missed report and a socket taken for closed before this).
//! - Wine 8 runs all of this, with two differences from Windows that the tests allow for:
//!   its `SIO_BASE_HANDLE` answers any handle with itself (so a non-socket is refused by
//!   `getsockopt`, with the same `WSAENOTSOCK`), and it reports nothing for a UDP socket
//!   that drew an ICMP port unreachable (the datagram hangup filter is tested on the
//!   mapping table instead). Windows' native `ProcessSocketNotifications` is another
//!   backend, and Wine does not have it.

mod afd;
mod identity;
pub(crate) mod native;
mod port;
mod selector;
mod sock;
#[cfg(test)]
mod tests;

use std::io;
use std::os::windows::io::RawSocket;

use windows_sys::Win32::Networking::WinSock::INVALID_SOCKET;

pub(crate) use selector::Selector;

/// The Winsock codes the registry and `Failure` need (`sys::code` on unix has the same
/// names with errno values).
pub(crate) mod code {
    use windows_sys::Win32::Networking::WinSock::{WSAEBADF, WSAENOBUFS, WSAENOTSOCK};
    /// A closed (invalid) handle.
    pub(crate) const CLOSED: i32 = WSAEBADF;
    /// A handle that is open but is not a socket.
    pub(crate) const NOT_SOCKET: i32 = WSAENOTSOCK;
    /// No second "not a socket" code on Windows.
    pub(crate) const NOT_SOCKET_TOO: i32 = WSAENOTSOCK;
    /// No room for another registration.
    pub(crate) const NO_SPACE: i32 = WSAENOBUFS;
    /// An I/O error without a code of its own (`ERROR_GEN_FAILURE`).
    pub(crate) const IO: i32 = windows_sys::Win32::Foundation::ERROR_GEN_FAILURE as i32;
}

/// Whether `socket` can never name a socket (`INVALID_SOCKET`).
pub(crate) fn is_invalid(socket: RawSocket) -> bool {
    socket == INVALID_SOCKET as RawSocket
}

/// Handle values above this get no slot in the registry's per-socket table (they are found
/// through the owners table instead): 2^24 sockets' worth.
const MAX_INDEX: u64 = 1 << 24;

/// The registry's dense index for `socket`: handle values are multiples of 4.
pub(crate) fn index(socket: RawSocket) -> Option<usize> {
    (socket % 4 == 0 && socket / 4 < MAX_INDEX).then_some((socket / 4) as usize)
}

/// The identity of the socket `socket` names (see `identity.rs`): its base handle, or for
/// a duplicate of a socket registered on some selector of this process, the base handle it
/// was registered under, with the number of registered sockets seen closed under that
/// value in the high bits, so that a new socket reusing the value is another socket.
///
/// # Errors
/// `WSAEBADF` for a closed handle, `WSAENOTSOCK` for an open handle that is not a socket.
pub(crate) fn socket_identity(socket: RawSocket) -> io::Result<u64> {
    let base = afd::base_socket(socket).map_err(|e| not_a_socket(socket, e))?;
    // Wine answers SIO_BASE_HANDLE for any handle: a socket option tells a socket.
    afd::is_datagram(base).map_err(|e| not_a_socket(socket, e))?;
    let canonical = identity::canonical(base);
    selector::seen_closed(canonical, base);
    Ok(identity::of(canonical))
}

/// Whether `socket` is a datagram (or raw) socket, which never reports HANGUP.
///
/// # Errors
/// As [`socket_identity`].
pub(crate) fn is_datagram(socket: RawSocket) -> io::Result<bool> {
    afd::is_datagram(socket).map_err(|e| not_a_socket(socket, e))
}

/// Winsock answers `WSAENOTSOCK` for a closed handle too: tell the two apart as unix does
/// (`EBADF` / `ENOTSOCK`), by asking whether the handle is open at all.
fn not_a_socket(socket: RawSocket, err: io::Error) -> io::Error {
    if err.raw_os_error() != Some(code::NOT_SOCKET) {
        return err;
    }
    if afd::is_open(socket) {
        err
    } else {
        io::Error::from_raw_os_error(code::CLOSED)
    }
}

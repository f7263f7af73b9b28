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
//! # The contract
//!
//! - [`Selector::apply`] applies [`Change`]s in order, each with its own result. `Add`
//!   finds the base socket and issues a poll; `Arm`, `Disarm` and `Delete` find the
//!   registration **by token** (`Change::socket` is only read by `Add`). Nothing blocks:
//!   `Disarm` and `Delete` ask the kernel to cancel the pending poll (`NtCancelIoFileEx`)
//!   and return at once.
//! - **One-shot.** Every `Add` and `Arm` yields at most one report, then the registration is
//!   disarmed until the next `Arm`. The token is the registration's for its whole life, so
//!   an entry that belongs to a cancelled or superseded poll must never surface: the
//!   selector swallows every completion that carries nothing for the armed interest
//!   (`STATUS_CANCELLED`, events outside the interest, anything while disarmed or deleted)
//!   and re-polls if the registration is still armed.
//! - **Changing the mask.** An `Arm` while a poll is pending keeps that poll if it already
//!   watches everything wanted (a completion for anything else is filtered and re-polled);
//!   otherwise it cancels it and the thread that dequeues the cancelled poll's entry issues
//!   the new one, as wepoll does. AFD has one poll per socket and no way to modify it.
//! - **Closed sockets.** Every poll also watches `AFD_POLL_LOCAL_CLOSE`. When the process
//!   closes a watched socket (`closesocket`, `CloseHandle`), its poll completes with it; the
//!   selector maps that to no report, marks the registration closed and forgets its base
//!   socket (so that a new socket reusing the handle value can be added), and a later
//!   `Arm`, `Disarm` or `Delete` of it answers [`ChangeError::Gone`]. A poll refused for an
//!   invalid handle ends the same way. A closed registration keeps its token until it is
//!   deleted (`Delete` answers `Gone` and frees it); a token never added (or deleted)
//!   answers `Os(ERROR_NOT_FOUND)`.
//! - **Readiness.** `RECEIVE`/`ACCEPT` are READABLE; `SEND` is WRITABLE (a finished connect
//!   shows as SEND; `AFD_POLL_CONNECT` is not used, as in mio, because AFD reports it on
//!   every poll of a connected socket); `DISCONNECT` is READABLE | READ_HANGUP; `ABORT` is
//!   READABLE | WRITABLE | HANGUP | ERROR; `CONNECT_FAIL` is READABLE | WRITABLE | ERROR, as
//!   a reset and a failed connect look on Linux. A datagram socket never reports
//!   READ_HANGUP or HANGUP. ERROR is always polled (`ABORT | CONNECT_FAIL`), whatever the
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
//! completes at once. There is no edge mode, and `Interest::edge` does not change what is
//! polled. Edge triggering is emulated above the selector: the registry re-arms a
//! persistent EDGE registration only when the thread that received its entry calls again,
//! so a program that drains the socket (reads until `WouldBlock`) before calling again
//! sees exactly one entry per edge; one that calls again without draining gets another
//! entry for the data still unread (harmless for a program that drains, as SPEC rule 11
//! allows). A registration enabled while the condition already holds gets one entry at
//! once, which Windows' own EDGE would not queue (also allowed by rule 11).
//!
//! # What is pinned, and when
//!
//! Each watched socket's state is one `Arc<Sock>` holding the poll's `IO_STATUS_BLOCK` and
//! `AFD_POLL_INFO`. Issuing a poll hands the kernel one strong reference (`Arc::into_raw`,
//! passed as the poll's APC context, which the port gives back as the entry's
//! `lpOverlapped`); the thread that dequeues the entry takes it back. So the memory is
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
//! - A socket closed while *no* poll is pending (disarmed, or fired and not yet re-armed)
//!   produces no `LOCAL_CLOSE`. The next `Arm` polls its handle value: `Gone` if the handle
//!   is invalid, but if Windows has meanwhile reused the value for a new socket, the old
//!   registration silently watches the new socket, and an `Add` of the new socket answers
//!   `Exists`. The registry must not rely on the selector alone for SPEC rule 7 there.
//! - A socket's identity ([`socket_identity`]) is a handle value, because user mode cannot
//!   name the kernel object. A duplicate (`DuplicateHandle`, `WSADuplicateSocket`,
//!   `try_clone`) has a handle value of its own, so a duplicate of a *registered* socket is
//!   resolved to the registered identity by comparing objects (`identity.rs`); a duplicate
//!   of an unregistered socket keeps its own value until one of them is registered. Once
//!   the registered handle itself is closed, nothing can be compared with it any more: the
//!   remaining duplicate gets an identity of its own, and the registration's next poll
//!   answers `Gone`.
//! - Wine 8 runs all of this, with two differences from Windows that the tests allow for:
//!   its `SIO_BASE_HANDLE` answers any handle with itself (so a non-socket is refused by
//!   `getsockopt`, with the same `WSAENOTSOCK`), and it reports nothing for a UDP socket
//!   that drew an ICMP port unreachable (the datagram hangup filter is tested on the
//!   mapping table instead). Windows' native `ProcessSocketNotifications` is another
//!   backend, and Wine does not have it.

mod afd;
mod identity;
mod neutral;
mod port;
mod selector;
#[cfg(test)]
mod tests;

use std::io;
use std::os::windows::io::RawSocket;

pub(crate) use neutral::{Change, ChangeError, Interest, Op, RawEvent, Readiness, WAKE_TOKEN};
pub(crate) use selector::Selector;

/// The identity of the socket `socket` names and whether it is a datagram socket.
///
/// The identity is the socket's base handle, or, for a duplicate of a socket registered
/// on some selector of this process, the base handle it was registered under (see
/// `identity.rs`), so that a duplicate names the same registration.
///
/// # Errors
/// `WSAENOTSOCK` for a handle that is not a socket, and for a closed one.
pub(crate) fn socket_identity(socket: RawSocket) -> io::Result<(u64, bool)> {
    let base = afd::base_socket(socket)?;
    let datagram = afd::is_datagram(base)?;
    Ok((identity::canonical(base), datagram))
}

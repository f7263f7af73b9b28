//! Operating-system backends.
//!
//! # The contract every backend fulfils
//!
//! A backend only *translates*; the semantics (the registration state machine, the REMOVE
//! ordering, the concurrency gate, flag validation) live above it in `registry.rs`,
//! `queue.rs` and `port.rs`, written once. A backend provides a `Selector` with:
//!
//! - `add(fd, token, filter, trigger)`: start watching the socket `fd`; later readiness is
//!   reported with `token`. Fails with `EEXIST` if this selector already watches the open
//!   file that `fd` names, `EBADF` if `fd` is closed.
//! - `modify(fd, token, filter, trigger)`: replace the interest and the token and re-arm.
//!   Fails with `ENOENT` when the selector does not watch the file `fd` names *now*: that
//!   is how the registry learns that a registered socket was closed (and maybe its number
//!   reused), because closing a descriptor removes it from the kernel's interest set.
//! - `disarm(fd, token)`: keep watching but report nothing (at most one stray report that
//!   the registry drops by its token). Errors as `modify`.
//! - `delete(fd)`: stop watching. Errors as `modify`.
//! - `wait(buf, max, timeout)`: append at most `max` [`RawEvent`]s to `buf`, blocking up to
//!   `timeout` (`None`: forever) until at least one event or a `wake`. Many threads may wait
//!   at once; one readiness report or one `wake` releases one waiter, not all of them.
//! - `wake()`: release one waiter (or make the next `wait` return at once). A waiter sees
//!   the wake as an event with token [`WAKE_TOKEN`].
//! - `fd()`: a descriptor that other ports may pass to [`probe`] while this selector lives.
//!
//! And the free functions [`socket_kind`] (is this a socket, and is it a datagram socket)
//! and [`probe`] (does another port's selector watch the file `fd` names now).
//!
//! Readiness is reported in backend-neutral [`Readiness`] bits; the registry turns them
//! into [`Events`](crate::Events) using the registration's filter.
//!
//! Backends on one OS are chosen at `build()` through the `Selector` enum below: the only
//! place that dispatches.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use crate::event::{Events, Trigger};
use crate::port::Backend;

pub(crate) mod epoll;
pub(crate) mod uring;

/// Calls a libc function and turns `-1` into the thread's `errno`, as mio's `syscall!`.
macro_rules! syscall {
    ($fn: ident ( $($arg: expr),* $(,)* ) ) => {{
        // SAFETY: the caller passes arguments that satisfy the libc function's contract;
        // each call site states why in its own SAFETY comment.
        #[allow(unused_unsafe)]
        let res = unsafe { libc::$fn($($arg, )*) };
        if res == -1 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(res)
        }
    }};
}
pub(crate) use syscall;

/// The token a waiter sees when it was woken by [`Selector::wake`].
pub(crate) const WAKE_TOKEN: u64 = u64::MAX;
/// The token used while probing another port's selector; never a registration's.
pub(crate) const PROBE_TOKEN: u64 = u64::MAX - 1;

/// Readiness as the kernel reported it, before the registration's filter applies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Readiness(u8);

impl Readiness {
    pub(crate) const READABLE: u8 = 0x01;
    pub(crate) const WRITABLE: u8 = 0x02;
    /// The peer shut down its sending side (`EPOLLRDHUP`).
    pub(crate) const READ_HANGUP: u8 = 0x04;
    /// Both directions are shut down or the connection is gone (`EPOLLHUP`).
    pub(crate) const HANGUP: u8 = 0x08;
    pub(crate) const ERROR: u8 = 0x10;

    pub(crate) fn new(bits: u8) -> Self {
        Readiness(bits)
    }

    pub(crate) fn has(self, bits: u8) -> bool {
        self.0 & bits != 0
    }

    /// The entry's events for a registration with `filter`: ERR always, HANGUP only when
    /// asked for and never on a datagram socket (rules 13 and 14).
    pub(crate) fn events(self, filter: Events, datagram: bool) -> Events {
        let mut events = Events::empty();
        if self.has(Self::READABLE) {
            events |= Events::IN;
        }
        if self.has(Self::WRITABLE) {
            events |= Events::OUT;
        }
        if self.has(Self::READ_HANGUP | Self::HANGUP) && !datagram {
            events |= Events::HANGUP;
        }
        events &= filter;
        if self.has(Self::ERROR) {
            events |= Events::ERR;
        }
        events
    }
}

/// One readiness report: the registration's token and what the kernel saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RawEvent {
    pub(crate) token: u64,
    pub(crate) readiness: Readiness,
}

/// An interest change a batching backend submits together with its wait: `modify` with
/// `interest`, or `disarm` when it is `None`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Change {
    pub(crate) fd: RawFd,
    pub(crate) token: u64,
    pub(crate) interest: Option<(Events, Trigger)>,
}

/// What kind of socket a descriptor names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SocketKind {
    /// Stream and sequenced-packet sockets: HANGUP is meaningful.
    Stream,
    /// Datagram and raw sockets: never HANGUP.
    Datagram,
}

/// Whether `fd` is an open socket, and which kind.
///
/// # Errors
/// `EBADF` for a closed descriptor, `ENOTSOCK` for any other file.
pub(crate) fn socket_kind(fd: RawFd) -> io::Result<SocketKind> {
    let mut ty: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `ty` and `len` are valid for writes of the sizes passed; any `fd` value is
    // acceptable to the kernel (a bad one gives EBADF or ENOTSOCK).
    syscall!(getsockopt(
        fd,
        libc::SOL_SOCKET,
        libc::SO_TYPE,
        (&mut ty as *mut libc::c_int).cast(),
        &mut len,
    ))?;
    Ok(match ty {
        libc::SOCK_DGRAM | libc::SOCK_RAW => SocketKind::Datagram,
        _ => SocketKind::Stream,
    })
}

/// Whether the selector behind `selector_fd` (another port's, kept open by the ownership
/// table while this runs) watches the open file that `fd` names now.
pub(crate) fn probe(selector_fd: RawFd, fd: RawFd) -> io::Result<bool> {
    epoll::probe(selector_fd, fd)
}

/// The selector of one port: the single place that dispatches between backends.
#[derive(Debug)]
pub(crate) enum Selector {
    Epoll(epoll::Selector),
    IoUring(uring::Selector),
}

impl Selector {
    pub(crate) fn new(backend: Backend) -> io::Result<Selector> {
        match backend {
            Backend::Epoll => Ok(Selector::Epoll(epoll::Selector::new()?)),
            Backend::IoUring => Ok(Selector::IoUring(uring::Selector::new()?)),
            Backend::Auto => match uring::Selector::new() {
                Ok(s) => Ok(Selector::IoUring(s)),
                Err(_) => Ok(Selector::Epoll(epoll::Selector::new()?)),
            },
        }
    }

    pub(crate) fn backend(&self) -> Backend {
        match self {
            Selector::Epoll(_) => Backend::Epoll,
            Selector::IoUring(_) => Backend::IoUring,
        }
    }

    pub(crate) fn fd(&self) -> RawFd {
        match self {
            Selector::Epoll(s) => s.fd(),
            Selector::IoUring(s) => s.fd(),
        }
    }

    pub(crate) fn add(
        &self,
        fd: RawFd,
        token: u64,
        filter: Events,
        trigger: Trigger,
    ) -> io::Result<()> {
        match self {
            Selector::Epoll(s) => s.add(fd, token, filter, trigger),
            Selector::IoUring(s) => s.add(fd, token, filter, trigger),
        }
    }

    pub(crate) fn modify(
        &self,
        fd: RawFd,
        token: u64,
        filter: Events,
        trigger: Trigger,
    ) -> io::Result<()> {
        match self {
            Selector::Epoll(s) => s.modify(fd, token, filter, trigger),
            Selector::IoUring(s) => s.modify(fd, token, filter, trigger),
        }
    }

    pub(crate) fn disarm(&self, fd: RawFd, token: u64) -> io::Result<()> {
        match self {
            Selector::Epoll(s) => s.disarm(fd, token),
            Selector::IoUring(s) => s.disarm(fd, token),
        }
    }

    pub(crate) fn delete(&self, fd: RawFd) -> io::Result<()> {
        match self {
            Selector::Epoll(s) => s.delete(fd),
            Selector::IoUring(s) => s.delete(fd),
        }
    }

    pub(crate) fn wait(
        &self,
        buf: &mut Vec<RawEvent>,
        max: usize,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        match self {
            Selector::Epoll(s) => s.wait(buf, max, timeout),
            Selector::IoUring(s) => s.wait(buf, max, timeout),
        }
    }

    /// Whether [`submit`](Selector::submit) batches changes with the wait in one kernel
    /// transition; if not, the registry applies changes one by one at once.
    pub(crate) fn batches(&self) -> bool {
        matches!(self, Selector::IoUring(_))
    }

    /// Applies `changes` (their results go to `results`, in order), then waits as
    /// [`wait`](Selector::wait) does if `max > 0`.
    pub(crate) fn submit(
        &self,
        changes: &[Change],
        results: &mut Vec<io::Result<()>>,
        buf: &mut Vec<RawEvent>,
        max: usize,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        match self {
            Selector::Epoll(s) => s.submit(changes, results, buf, max, timeout),
            Selector::IoUring(s) => s.submit(changes, results, buf, max, timeout),
        }
    }

    pub(crate) fn wake(&self) -> io::Result<()> {
        match self {
            Selector::Epoll(s) => s.wake(),
            Selector::IoUring(s) => s.wake(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_respects_filter_and_socket_kind() {
        let all = Readiness::new(0x1f);
        assert_eq!(all.events(Events::IN, false), Events::IN | Events::ERR);
        assert_eq!(
            all.events(Events::FILTER, false),
            Events::IN | Events::OUT | Events::HANGUP | Events::ERR
        );
        assert_eq!(
            all.events(Events::FILTER, true),
            Events::IN | Events::OUT | Events::ERR
        );
        let hup = Readiness::new(Readiness::HANGUP);
        assert_eq!(hup.events(Events::IN | Events::OUT, false), Events::empty());
        assert_eq!(hup.events(Events::HANGUP, false), Events::HANGUP);
    }
}

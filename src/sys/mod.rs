//! Operating-system backends.
//!
//! # The contract every backend fulfils
//!
//! A backend only *translates*; the semantics (the registration state machine, the REMOVE
//! ordering, the concurrency gate, flag validation) live above it in `registry.rs`,
//! `queue.rs` and `port.rs`, written once. A backend provides a `Selector` with:
//!
//! - `apply(changes)`: applies each [`Change`] in order and fills in its `result`,
//!   stopping at the first that fails ([`Change::stops`]): the later ones are
//!   [`ChangeError::NotApplied`] (the registry applies them again once it has dealt with
//!   the failure, which may change what they mean). A failed [`Op::Check`] need not stop
//!   the batch: the registry only detaches its registration, and nothing later depends on
//!   it. The registry holds the lock of each change's registration until `apply`
//!   returns, so a socket's changes reach the kernel in the order the registry decided
//!   them, whatever the backend batches. `apply` never blocks on I/O.
//! - `wait(out, max, timeout)`: appends at most `max` [`RawEvent`]s to `out`, blocking up
//!   to `timeout` (`None`: forever) until at least one report or a `wake`. Many threads may
//!   wait at once; one report or one wake releases one waiter, the most recent first where
//!   the kernel allows it.
//! - `wake()`: releases one waiter, or makes the next `wait` return at once; the waiter
//!   sees a report with [`WAKE_TOKEN`].
//!
//! Kernel interest is **one-shot** or **edge** ([`Interest`]): each [`Op::Add`] or
//! [`Op::Arm`] with one-shot interest yields at most one report, then the socket reports
//! nothing until the next `Arm`; edge interest reports each new edge. A backend with no edge
//! mode (AFD polls are level one-shots) reports a persistent EDGE registration once and
//! polls again at its next [`Op::Check`], which the registry sends when the thread that
//! received the entry calls again: a program that drained the socket by then sees exactly
//! one entry per edge (rule 11). Neither can make the
//! port spin on a lasting condition, even for a kernel item that the registry has lost
//! track of (a registered descriptor closed while a duplicate keeps the socket open). A
//! registration's token is fixed when it is created, so a report never needs a token that
//! a later change replaced.
//!
//! Errors are backend-neutral ([`ChangeError`]): the registry never looks at `errno`.
//!
//! Backends on one OS are chosen at `build()` through the [`Selector`] enum below: the only
//! place that dispatches.
//!
//! # What differs between operating systems
//!
//! Everything the registry needs from the OS besides the selector is here too, with one
//! name on every system: [`Socket`] (a descriptor, or a `SOCKET` handle), [`index`] (a
//! dense number for the registry's per-descriptor table), [`socket_identity`],
//! [`is_datagram`], and the error codes in [`code`]. `fork` exists only on unix
//! (`owners.rs`).

use std::io;
#[cfg(unix)]
use std::os::fd::RawFd;
use std::time::Duration;

use crate::event::{Events, Trigger};
use crate::port::Backend;

#[cfg(target_os = "linux")]
pub(crate) mod epoll;
#[cfg(all(target_os = "linux", feature = "io-uring"))]
pub(crate) mod uring;
#[cfg(windows)]
pub(crate) mod windows;

#[cfg(unix)]
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
#[cfg(unix)]
pub(crate) use syscall;

/// How a socket is named to the kernel: a descriptor.
#[cfg(unix)]
pub(crate) type Socket = RawFd;
/// How a socket is named to the kernel: a `SOCKET` handle.
#[cfg(windows)]
pub(crate) type Socket = std::os::windows::io::RawSocket;

#[cfg(windows)]
pub(crate) use windows::{code, index, is_datagram, is_invalid, socket_identity};

/// The operating system's error codes the registry and `Failure` need.
#[cfg(unix)]
pub(crate) mod code {
    /// A closed descriptor.
    pub(crate) const CLOSED: i32 = libc::EBADF;
    /// Open, but not a socket.
    pub(crate) const NOT_SOCKET: i32 = libc::ENOTSOCK;
    /// Further codes that mean "not a socket" (epoll's answer for a regular file).
    pub(crate) const NOT_SOCKET_TOO: i32 = libc::EPERM;
    /// No room for another registration.
    pub(crate) const NO_SPACE: i32 = libc::ENOSPC;
    /// An I/O error without a code of its own.
    pub(crate) const IO: i32 = libc::EIO;
}

/// Whether `socket` can never name a socket (a negative descriptor).
#[cfg(unix)]
pub(crate) fn is_invalid(socket: Socket) -> bool {
    socket < 0
}

/// The registry's dense index for `socket`: the descriptor number itself.
#[cfg(unix)]
pub(crate) fn index(socket: Socket) -> Option<usize> {
    usize::try_from(socket).ok()
}

/// The token a waiter sees when it was woken by `Selector::wake`.
pub(crate) const WAKE_TOKEN: u64 = u64::MAX;

/// Readiness as the kernel reported it, before the registration's filter applies.
///
/// Laid out as [`Events`], each condition at the bit of the entry event it becomes, so
/// that [`events`](Readiness::events) is an AND with what the registration lets through.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Readiness(u8);

impl Readiness {
    pub(crate) const READABLE: u8 = Events::IN.bits() as u8;
    pub(crate) const WRITABLE: u8 = Events::OUT.bits() as u8;
    /// The peer shut down its sending side (`EPOLLRDHUP`), or both directions are shut
    /// down or the connection is gone (`EPOLLHUP`): an entry does not tell them apart.
    pub(crate) const HANGUP: u8 = Events::HANGUP.bits() as u8;
    pub(crate) const ERROR: u8 = Events::ERR.bits() as u8;

    pub(crate) fn new(bits: u8) -> Self {
        Readiness(bits)
    }

    /// Whether any of `bits` is set (for the Windows backends' tests).
    #[cfg(all(windows, test))]
    pub(crate) fn has(self, bits: u8) -> bool {
        self.0 & bits != 0
    }

    /// The entry's events for a registration that lets `through` through
    /// ([`entry_filter`]).
    ///
    /// [`entry_filter`]: Readiness::entry_filter
    #[inline]
    pub(crate) fn events(self, through: Events) -> Events {
        Events::from_bits_retain(u16::from(self.0)) & through
    }

    /// What an entry may report for a registration with `filter`: ERR always, HANGUP only
    /// when asked for and never on a datagram socket (rules 13 and 14).
    #[inline]
    pub(crate) fn entry_filter(filter: Events, datagram: bool) -> Events {
        let mut through = filter & Events::FILTER;
        if datagram {
            through.remove(Events::HANGUP);
        }
        through | Events::ERR
    }
}

/// One readiness report: the registration's token and what the kernel saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RawEvent {
    pub(crate) token: u64,
    pub(crate) readiness: Readiness,
}

/// The reports of one kernel wait, kept in the kernel's own form where it has one: epoll's
/// `epoll_event`s are read in place ([`Reports::iter`] decodes each as it is validated),
/// with no copy into a buffer of [`RawEvent`]s in between.
#[derive(Debug, Default)]
pub(crate) struct Reports {
    #[cfg(target_os = "linux")]
    events: Vec<libc::epoll_event>,
    #[cfg(not(target_os = "linux"))]
    events: Vec<RawEvent>,
}

impl Reports {
    pub(crate) fn clear(&mut self) {
        self.events.clear();
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = RawEvent> + '_ {
        #[cfg(target_os = "linux")]
        return self.events.iter().map(epoll::report);
        #[cfg(not(target_os = "linux"))]
        return self.events.iter().copied();
    }
}

/// What the kernel should watch for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Interest {
    /// `IN | OUT | HANGUP`, as the registration asks.
    pub(crate) filter: Events,
    /// Report the condition when it becomes true rather than while it holds.
    pub(crate) edge: bool,
    /// At most one report, then nothing until the next `Arm`. Without it (edge interest
    /// only), each new edge is reported: it cannot spin either, since a lasting condition
    /// is reported once.
    pub(crate) oneshot: bool,
}

impl Interest {
    /// The kernel interest of a registration with `filter` and `trigger`: one-shot, except
    /// for persistent EDGE, whose every new edge must be reported without a re-arm (a
    /// re-arm would report data that is still unread, rule 11).
    pub(crate) fn of(filter: Events, trigger: Trigger) -> Interest {
        Interest {
            filter,
            edge: trigger.is_edge(),
            oneshot: !trigger.is_edge() || trigger.is_oneshot(),
        }
    }

    /// Interest for a registration whose socket sits in a condition its filter leaves out
    /// (a hang-up without `HANGUP` in the filter), which one-shot interest would report
    /// again at each re-arm: the socket's next state change instead.
    pub(crate) fn parked(filter: Events) -> Interest {
        Interest {
            filter,
            edge: true,
            oneshot: false,
        }
    }
}

/// One change of the kernel's interest in one socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    /// Start watching the socket; its reports carry the change's token. Replaces any stale
    /// kernel item the selector still has for the same socket and descriptor.
    Add(Interest),
    /// Replace the interest of a watched socket and arm it again.
    Arm(Interest),
    /// Keep watching but report nothing until the next `Arm`.
    Disarm,
    /// Stop watching.
    Delete,
    /// Succeed if the descriptor still names the watched socket, else
    /// [`ChangeError::Gone`]. Changes nothing, except on a backend without edge mode,
    /// where it re-polls a persistent EDGE registration that has reported.
    Check,
}

/// Why a change failed, in terms the registry acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ChangeError {
    /// The descriptor no longer names the socket the selector watches: it was closed, and
    /// perhaps reused by another file.
    Gone,
    /// Any other failure, with the operating system's code.
    Os(i32),
    /// Not applied, because an earlier change of the same `apply` failed.
    NotApplied,
}

/// A change and, once applied, its result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Change {
    pub(crate) socket: Socket,
    pub(crate) token: u64,
    pub(crate) op: Op,
    pub(crate) result: Result<(), ChangeError>,
}

impl Change {
    pub(crate) fn new(socket: Socket, token: u64, op: Op) -> Change {
        Change {
            socket,
            token,
            op,
            result: Ok(()),
        }
    }

    /// Whether this applied change's result ends its batch: any failure but a check's.
    /// (The Windows backends stop at any failure, which the contract also allows.)
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub(crate) fn stops(&self) -> bool {
        self.result.is_err() && self.op != Op::Check
    }
}

#[cfg(unix)]
/// Socket identity: the kernel's cookie for the open socket (`SO_COOKIE`, Linux 4.12),
/// the same for every descriptor of the socket (`dup`, `SCM_RIGHTS`) and never reused
/// while the system runs. It also answers rule 8: `ENOTSOCK` for any other file, `EBADF`
/// for a closed descriptor.
pub(crate) fn socket_identity(fd: Socket) -> io::Result<u64> {
    let mut cookie: u64 = 0;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: `cookie` and `len` are valid for writes of the sizes passed; any `fd` value
    // is acceptable to the kernel (a bad one gives EBADF or ENOTSOCK).
    syscall!(getsockopt(
        fd,
        libc::SOL_SOCKET,
        libc::SO_COOKIE,
        (&mut cookie as *mut u64).cast(),
        &mut len,
    ))?;
    Ok(cookie)
}

#[cfg(unix)]
/// Whether the socket `fd` is a datagram (or raw) socket, which never reports HANGUP
/// (rule 14). Asked only of registrations whose filter has HANGUP.
pub(crate) fn is_datagram(fd: Socket) -> io::Result<bool> {
    let mut ty: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: as in `socket_identity`.
    syscall!(getsockopt(
        fd,
        libc::SOL_SOCKET,
        libc::SO_TYPE,
        (&mut ty as *mut libc::c_int).cast(),
        &mut len,
    ))?;
    Ok(matches!(ty, libc::SOCK_DGRAM | libc::SOCK_RAW))
}

/// The selector of one port: the single place that dispatches between backends.
#[derive(Debug)]
pub(crate) enum Selector {
    #[cfg(target_os = "linux")]
    Epoll(epoll::Selector),
    #[cfg(all(target_os = "linux", feature = "io-uring"))]
    IoUring(uring::Selector),
    #[cfg(windows)]
    Afd(windows::Selector),
    #[cfg(windows)]
    Native(windows::native::Selector),
}

/// Calls `$method` on whichever backend `$selector` is.
macro_rules! dispatch {
    ($selector: expr, $s: ident => $call: expr) => {
        match $selector {
            #[cfg(target_os = "linux")]
            Selector::Epoll($s) => $call,
            #[cfg(all(target_os = "linux", feature = "io-uring"))]
            Selector::IoUring($s) => $call,
            #[cfg(windows)]
            Selector::Afd($s) => $call,
            #[cfg(windows)]
            Selector::Native($s) => $call,
        }
    };
}

fn unsupported(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::Unsupported, why.to_string())
}

impl Selector {
    pub(crate) fn new(backend: Backend) -> io::Result<Selector> {
        match backend {
            #[cfg(target_os = "linux")]
            Backend::Epoll => Ok(Selector::Epoll(epoll::Selector::new()?)),
            #[cfg(all(target_os = "linux", feature = "io-uring"))]
            Backend::IoUring => Ok(Selector::IoUring(uring::Selector::new()?)),
            #[cfg(all(target_os = "linux", not(feature = "io-uring")))]
            Backend::IoUring => Err(unsupported(
                "socknotify was built without its `io-uring` feature",
            )),
            #[cfg(not(target_os = "linux"))]
            Backend::Epoll | Backend::IoUring => Err(unsupported("epoll and io_uring are Linux's")),
            #[cfg(windows)]
            Backend::Afd => Ok(Selector::Afd(windows::Selector::new()?)),
            #[cfg(windows)]
            Backend::Native => Ok(Selector::Native(windows::native::Selector::new()?)),
            #[cfg(not(windows))]
            Backend::Afd | Backend::Native => Err(unsupported(
                "AFD and ProcessSocketNotifications are Windows'",
            )),
            // epoll: measured ahead of io_uring on this workload (docs/benchmarks.md, "Hot
            // path"): the same instructions per entry and per empty dequeue, and where many
            // threads share a port the ring's batch holds its slots' locks for the whole
            // enter, which costs futex calls epoll does not pay.
            #[cfg(target_os = "linux")]
            Backend::Auto => Ok(Selector::Epoll(epoll::Selector::new()?)),
            #[cfg(windows)]
            Backend::Auto => Ok(Selector::Afd(windows::Selector::new()?)),
        }
    }

    pub(crate) fn backend(&self) -> Backend {
        match self {
            #[cfg(target_os = "linux")]
            Selector::Epoll(_) => Backend::Epoll,
            #[cfg(all(target_os = "linux", feature = "io-uring"))]
            Selector::IoUring(_) => Backend::IoUring,
            #[cfg(windows)]
            Selector::Afd(_) => Backend::Afd,
            #[cfg(windows)]
            Selector::Native(_) => Backend::Native,
        }
    }

    pub(crate) fn apply(&self, changes: &mut [Change]) {
        #[cfg(loom)]
        crate::sync::kernel_edge();
        dispatch!(self, s => s.apply(changes))
    }

    /// Applies `change` at once and answers, where the backend gains nothing by gathering
    /// it into one [`apply`] with others: always on epoll (one system call per change
    /// anyway), and on io_uring when the call has no other change to gather (`alone`; one
    /// change is a direct `epoll_ctl` there too). `None` otherwise, so that the registry
    /// settles each change as soon as it is decided wherever that costs nothing.
    ///
    /// [`apply`]: Selector::apply
    #[inline]
    pub(crate) fn apply_now(
        &self,
        change: &Change,
        alone: bool,
    ) -> Option<Result<(), ChangeError>> {
        // Under loom the kernel operation is a scheduling point, as in `apply`: only where
        // the change is applied here, not where it is left for `apply`.
        match self {
            #[cfg(target_os = "linux")]
            Selector::Epoll(s) => {
                #[cfg(loom)]
                crate::sync::kernel_edge();
                Some(s.apply_one(change))
            }
            #[cfg(all(target_os = "linux", feature = "io-uring"))]
            Selector::IoUring(s) if alone => {
                #[cfg(loom)]
                crate::sync::kernel_edge();
                Some(s.apply_one(change))
            }
            #[allow(unreachable_patterns)]
            _ => {
                let _ = (change, alone);
                None
            }
        }
    }

    pub(crate) fn wait(
        &self,
        reports: &mut Reports,
        max: usize,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        let out = &mut reports.events;
        let waited = dispatch!(self, s => s.wait(out, max, timeout));
        #[cfg(loom)]
        crate::sync::kernel_edge();
        waited
    }

    /// Whether the selector still watches another open file under descriptor number `fd`
    /// (`None`: it cannot tell): a registered socket whose number was closed and reused,
    /// still open through a duplicate.
    pub(crate) fn holds_other_file(&self, fd: Socket) -> Option<bool> {
        dispatch!(self, s => s.holds_other_file(fd))
    }

    pub(crate) fn wake(&self) -> io::Result<()> {
        dispatch!(self, s => s.wake())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_respects_filter_and_socket_kind() {
        let through = Readiness::entry_filter;
        let all = Readiness::new(
            Readiness::READABLE | Readiness::WRITABLE | Readiness::HANGUP | Readiness::ERROR,
        );
        assert_eq!(
            all.events(through(Events::IN, false)),
            Events::IN | Events::ERR
        );
        assert_eq!(
            all.events(through(Events::FILTER, false)),
            Events::IN | Events::OUT | Events::HANGUP | Events::ERR
        );
        assert_eq!(
            all.events(through(Events::FILTER, true)),
            Events::IN | Events::OUT | Events::ERR
        );
        let hup = Readiness::new(Readiness::HANGUP);
        let (io, hangup) = (Events::IN | Events::OUT, Events::HANGUP);
        assert_eq!(hup.events(through(io, false)), Events::empty());
        assert_eq!(hup.events(through(hangup, false)), Events::HANGUP);
        assert_eq!(hup.events(through(hangup, true)), Events::empty());
        let err = Readiness::new(Readiness::ERROR);
        assert_eq!(err.events(through(Events::empty(), false)), Events::ERR);
        // Bits of a filter that are no condition let nothing more through.
        let odd = Events::from_bits_retain(0xff);
        assert_eq!(through(odd, false), Events::FILTER | Events::ERR);
    }

    #[cfg(unix)]
    #[test]
    fn identity_is_the_socket_not_the_descriptor() {
        use std::os::fd::AsRawFd;
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let dup = a.try_clone().unwrap();
        let id = socket_identity(a.as_raw_fd()).unwrap();
        assert_eq!(socket_identity(dup.as_raw_fd()).unwrap(), id);
        assert_ne!(socket_identity(b.as_raw_fd()).unwrap(), id);
        let file = std::fs::File::open("Cargo.toml").unwrap();
        let err = socket_identity(file.as_raw_fd()).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOTSOCK));
        // A closed number could be reused by a parallel test; -1 is never open.
        let err = socket_identity(-1).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EBADF));
    }
}

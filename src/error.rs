//! The errors socknotify reports, in one place so that kinds and messages stay consistent.
//!
//! Every failure becomes a [`std::io::Error`] at the boundary. `Failure` is the compact
//! form a [`Registration`](crate::Registration) stores until its `result()` is read.

use crate::sys::{code, Socket};
use std::fmt;
use std::io;

/// A failure, small enough to store in every registration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The registration was never passed to `process`.
    NotProcessed,
    /// The operation field is not one of NONE, ENABLE, DISABLE, REMOVE.
    BadOperation(u8),
    /// The filter has bits outside `IN | OUT | HANGUP`.
    BadFilter(u16),
    /// The trigger has bits outside the four known flags.
    UnknownTrigger(u8),
    /// The trigger has both ONESHOT and PERSISTENT.
    OneshotOrPersistent(u8),
    /// The trigger has neither or both of LEVEL and EDGE.
    LevelOrEdge(u8),
    /// A negative descriptor.
    BadDescriptor(Socket),
    /// The descriptor is not open.
    Closed(Socket),
    /// The descriptor is open but is not a socket.
    NotSocket(Socket),
    /// ENABLE with a key different from the registration's.
    KeyChange(Socket),
    /// DISABLE or REMOVE of a socket with no registration on this port.
    NotRegistered(Socket),
    /// The socket is registered on another port.
    OtherPort(Socket),
    /// The port was closed.
    PortClosed,
    /// The port was inherited across `fork`.
    Forked,
    /// An operating-system error with no more specific meaning here.
    Os(i32),
}

impl Failure {
    /// The error kind callers match on.
    pub(crate) fn kind(self) -> io::ErrorKind {
        use io::ErrorKind::*;
        match self {
            Failure::NotProcessed => Other,
            Failure::BadOperation(_)
            | Failure::BadFilter(_)
            | Failure::UnknownTrigger(_)
            | Failure::OneshotOrPersistent(_)
            | Failure::LevelOrEdge(_)
            | Failure::KeyChange(_) => InvalidInput,
            Failure::NotRegistered(_) => NotFound,
            Failure::OtherPort(_) => AlreadyExists,
            Failure::PortClosed => BrokenPipe,
            Failure::Forked => Unsupported,
            Failure::BadDescriptor(_)
            | Failure::Closed(_)
            | Failure::NotSocket(_)
            | Failure::Os(_) => io::Error::from_raw_os_error(self.os_code().unwrap_or(0)).kind(),
        }
    }

    /// The operating system's code for this failure, where it has one (rule 22).
    pub(crate) fn os_code(self) -> Option<i32> {
        match self {
            Failure::BadDescriptor(_) | Failure::Closed(_) => Some(code::CLOSED),
            Failure::NotSocket(_) => Some(code::NOT_SOCKET),
            Failure::Os(code) => Some(code),
            _ => None,
        }
    }

    /// The public classification of this failure.
    pub(crate) fn cause(self) -> ErrorCause {
        match self {
            Failure::NotProcessed => ErrorCause::NotProcessed,
            Failure::BadOperation(_)
            | Failure::BadFilter(_)
            | Failure::UnknownTrigger(_)
            | Failure::OneshotOrPersistent(_)
            | Failure::LevelOrEdge(_) => ErrorCause::InvalidFlags,
            Failure::KeyChange(_) => ErrorCause::KeyChange,
            Failure::NotRegistered(_) => ErrorCause::NotRegistered,
            Failure::OtherPort(_) => ErrorCause::RegisteredElsewhere,
            Failure::PortClosed => ErrorCause::PortClosed,
            Failure::Forked => ErrorCause::InheritedAcrossFork,
            Failure::BadDescriptor(_) | Failure::Closed(_) => ErrorCause::BadDescriptor,
            Failure::NotSocket(_) => ErrorCause::NotSocket,
            Failure::Os(code) => ErrorCause::from_os_code(code),
        }
    }

    /// Maps an operating-system error about descriptor `fd` to a failure.
    pub(crate) fn from_errno(fd: Socket, err: &io::Error) -> Failure {
        match err.raw_os_error() {
            Some(code::CLOSED) => Failure::Closed(fd),
            Some(c) if c == code::NOT_SOCKET || c == code::NOT_SOCKET_TOO => Failure::NotSocket(fd),
            Some(other) => Failure::Os(other),
            None => Failure::Os(code::IO),
        }
    }
}

/// Why a call or a registration failed: the documented way to tell failures apart
/// ([`ErrorCause::of`]), beside [`io::Error::kind`] and [`io::Error::raw_os_error`].
///
/// | cause | `kind()` | `raw_os_error()` | the registration after a failed operation |
/// |---|---|---|---|
/// | [`NotProcessed`](ErrorCause::NotProcessed) | `Other` | `None` | untouched: `process` never saw it |
/// | [`InvalidFlags`](ErrorCause::InvalidFlags) | `InvalidInput` | `None` | as it was |
/// | [`KeyChange`](ErrorCause::KeyChange) | `InvalidInput` | `None` | as it was |
/// | [`NotRegistered`](ErrorCause::NotRegistered) | `NotFound` | `None` | none (there was none, or its socket was closed) |
/// | [`RegisteredElsewhere`](ErrorCause::RegisteredElsewhere) | `AlreadyExists` | `None` | none on this port; the other port's is untouched |
/// | [`PortClosed`](ErrorCause::PortClosed) | `BrokenPipe` | `None` | none: closing the port ended every registration |
/// | [`InheritedAcrossFork`](ErrorCause::InheritedAcrossFork) | `Unsupported` | `None` | the parent's, untouched |
/// | [`BadDescriptor`](ErrorCause::BadDescriptor) | from the code | `EBADF` | none (a closed socket's registration ends silently, rule 7) |
/// | [`NotSocket`](ErrorCause::NotSocket) | from the code | `ENOTSOCK` | none: only sockets are registered |
/// | [`Os`](ErrorCause::Os) | from the code | the code (`EMFILE`, `ENOMEM`, ...) | as it was |
///
/// On Windows the codes are Winsock's: `WSAEBADF` for a closed handle, `WSAENOTSOCK` for a
/// handle that is not a socket.
///
/// # Examples
///
/// ```
/// # #[cfg(unix)] {
/// use std::fs::File;
/// use socknotify::{CompletionPort, ErrorCause, Events, Registration, Trigger};
///
/// let port = CompletionPort::new()?;
/// let file = File::open("Cargo.toml")?;
/// let mut reg = [Registration::enable(&file, 1, Events::IN, Trigger::LEVEL)];
/// port.process(&mut reg, &mut [], None)?;
/// let err = reg[0].result().unwrap_err();
/// assert_eq!(ErrorCause::of(&err), Some(ErrorCause::NotSocket));
/// assert_eq!(err.raw_os_error(), Some(libc::ENOTSOCK));
/// # }
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCause {
    /// [`Registration::result`](crate::Registration::result) was read before `process`
    /// handled the registration.
    NotProcessed,
    /// Unknown or conflicting operation, filter or trigger bits (rule 1).
    InvalidFlags,
    /// ENABLE of a registered socket with another completion key (rule 2).
    KeyChange,
    /// DISABLE or REMOVE of a socket with no registration on this port (rule 5).
    NotRegistered,
    /// The socket is registered on another port (rule 6).
    RegisteredElsewhere,
    /// The port is closed (rule 19).
    PortClosed,
    /// The port was built by the parent of this process and inherited across `fork`; the
    /// child must build its own.
    InheritedAcrossFork,
    /// The descriptor is not open (`EBADF`).
    BadDescriptor,
    /// The descriptor is open but is not a socket (`ENOTSOCK`).
    NotSocket,
    /// Another operating-system error; `raw_os_error()` has its code.
    Os,
}

impl ErrorCause {
    /// The cause of an error that socknotify returned; `None` for an error that did not come
    /// from socknotify.
    #[must_use]
    pub fn of(err: &io::Error) -> Option<ErrorCause> {
        if let Some(failure) = err.get_ref().and_then(|e| e.downcast_ref::<Failure>()) {
            return Some(failure.cause());
        }
        err.raw_os_error().map(ErrorCause::from_os_code)
    }

    fn from_os_code(os: i32) -> ErrorCause {
        match os {
            code::CLOSED => ErrorCause::BadDescriptor,
            code::NOT_SOCKET => ErrorCause::NotSocket,
            _ => ErrorCause::Os,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Failure::NotProcessed => write!(f, "registration has not been processed yet"),
            Failure::BadOperation(op) => write!(
                f,
                "operation {op:#04x} is not one of NONE (0x00), ENABLE (0x01), \
                 DISABLE (0x02) or REMOVE (0x04); give exactly one operation"
            ),
            Failure::BadFilter(bits) => write!(
                f,
                "event filter {bits:#06x} has bits outside IN | OUT | HANGUP (0x07); \
                 ERR and REMOVE are delivered without being asked for"
            ),
            Failure::UnknownTrigger(bits) => write!(
                f,
                "trigger {bits:#04x} has unknown bits; use ONESHOT, PERSISTENT, LEVEL, EDGE"
            ),
            Failure::OneshotOrPersistent(bits) => write!(
                f,
                "trigger {bits:#04x} has both ONESHOT (0x01) and PERSISTENT (0x02); give at most one (neither means PERSISTENT)"
            ),
            Failure::LevelOrEdge(bits) => write!(
                f,
                "trigger {bits:#04x} needs exactly one of LEVEL (0x04) and EDGE (0x08)"
            ),
            Failure::BadDescriptor(fd) => write!(f, "descriptor {fd} is negative"),
            Failure::Closed(fd) => write!(f, "descriptor {fd} is not open"),
            Failure::NotSocket(fd) => write!(
                f,
                "descriptor {fd} is not a socket; only sockets can be registered"
            ),
            Failure::KeyChange(fd) => write!(
                f,
                "socket {fd} is registered with another completion key; to change the key, \
                 REMOVE it, wait for its REMOVE entry, then ENABLE it again"
            ),
            Failure::NotRegistered(fd) => write!(
                f,
                "socket {fd} has no registration on this port (never registered, already \
                 removed, or closed since)"
            ),
            Failure::OtherPort(fd) => write!(
                f,
                "socket {fd} is registered on another completion port; a socket can be \
                 registered on one port only"
            ),
            Failure::PortClosed => write!(f, "the completion port is closed"),
            Failure::Forked => write!(
                f,
                "the completion port was inherited across fork; build a new port in the child"
            ),
            Failure::Os(code) => write!(f, "{}", io::Error::from_raw_os_error(code)),
        }
    }
}

impl std::error::Error for Failure {}

impl From<Failure> for io::Error {
    fn from(failure: Failure) -> io::Error {
        match failure.os_code() {
            // Rule 22: the operating system's code is kept where there is one.
            Some(code) => io::Error::from_raw_os_error(code),
            None => io::Error::new(failure.kind(), failure),
        }
    }
}

/// Whether `err` says that the completion port was closed ([`CompletionPort::close`]).
///
/// Such errors have kind [`io::ErrorKind::BrokenPipe`].
///
/// # Examples
///
/// ```
/// use socknotify::{is_port_closed, CompletionEntry, CompletionPort};
/// let port = CompletionPort::new()?;
/// port.close();
/// let mut entries = [CompletionEntry::default(); 1];
/// let err = port.dequeue(&mut entries, None).unwrap_err();
/// assert!(is_port_closed(&err));
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// [`CompletionPort::close`]: crate::CompletionPort::close
#[must_use]
pub fn is_port_closed(err: &io::Error) -> bool {
    err.get_ref()
        .and_then(|inner| inner.downcast_ref::<Failure>())
        .is_some_and(|f| *f == Failure::PortClosed)
}

//! `Registration` (Winsock's `SOCK_NOTIFY_REGISTRATION`), `Operation`, and the validation of
//! their bits.

use std::fmt;
use std::io;

use crate::error::Failure;
use crate::event::{Events, Trigger};
use crate::sys;

/// What [`Registration::enable`], [`disable`](Registration::disable) and
/// [`remove`](Registration::remove) take: anything that borrows a socket. It is
/// `std::os::fd::AsFd` on unix and `std::os::windows::io::AsSocket` on Windows, so the same
/// code registers a `std::net` or `socket2` socket on both.
#[cfg(unix)]
pub use std::os::fd::AsFd as AsSocketLike;
/// What [`Registration::enable`], [`disable`](Registration::disable) and
/// [`remove`](Registration::remove) take: anything that borrows a socket. It is
/// `std::os::fd::AsFd` on unix and `std::os::windows::io::AsSocket` on Windows, so the same
/// code registers a `std::net` or `socket2` socket on both.
#[cfg(windows)]
pub use std::os::windows::io::AsSocket as AsSocketLike;

/// How a [`Registration`] names its socket: `std::os::fd::RawFd` on unix,
/// `std::os::windows::io::RawSocket` on Windows.
pub type RawSocketLike = sys::Socket;

/// The raw socket `socket` borrows.
fn raw(socket: &impl AsSocketLike) -> RawSocketLike {
    #[cfg(unix)]
    {
        std::os::fd::AsRawFd::as_raw_fd(&socket.as_fd())
    }
    #[cfg(windows)]
    {
        std::os::windows::io::AsRawSocket::as_raw_socket(&socket.as_socket())
    }
}

/// What a [`Registration`] asks `process` to do.
///
/// The values are those of Winsock's `SOCK_NOTIFY_OP_*` constants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Operation {
    /// Do nothing; the registration's result is `Ok(())` (or `InvalidInput` if a field has
    /// unknown bits, as for every operation).
    #[doc(alias = "SOCK_NOTIFY_OP_NONE")]
    None = 0x00,
    /// Create the registration, or replace its filter and trigger (and re-arm it).
    #[doc(alias = "SOCK_NOTIFY_OP_ENABLE")]
    Enable = 0x01,
    /// Stop new entries but keep the registration.
    #[doc(alias = "SOCK_NOTIFY_OP_DISABLE")]
    Disable = 0x02,
    /// Delete the registration; its last entry carries [`Events::REMOVE`].
    #[doc(alias = "SOCK_NOTIFY_OP_REMOVE")]
    Remove = 0x04,
}

/// One registration change for [`CompletionPort::process`](crate::CompletionPort::process),
/// with room for its own result.
///
/// Build one with [`enable`](Registration::enable), [`disable`](Registration::disable),
/// [`remove`](Registration::remove), or from raw values with
/// [`from_raw`](Registration::from_raw) and [`from_bits`](Registration::from_bits). The
/// socket is named by its descriptor only; the registration does not keep it open.
///
/// Its `Debug` names the operation and the flags, unknown bits included:
/// `Registration { socket: 5, key: 7, operation: Enable, events: IN | HANGUP, trigger:
/// ONESHOT | LEVEL, result: .. }`.
#[doc(alias = "SOCK_NOTIFY_REGISTRATION")]
#[derive(Clone)]
pub struct Registration {
    socket: RawSocketLike,
    key: usize,
    events: u16,
    operation: u8,
    trigger: u8,
    result: Option<Failure>,
}

/// A registration whose bits were checked: what the registry acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Request {
    None,
    Enable {
        fd: RawSocketLike,
        key: usize,
        filter: Events,
        trigger: Trigger,
    },
    Disable {
        fd: RawSocketLike,
    },
    Remove {
        fd: RawSocketLike,
    },
}

impl Request {
    /// The descriptor the request is about, if any.
    pub(crate) fn fd(&self) -> Option<RawSocketLike> {
        match *self {
            Request::None => None,
            Request::Enable { fd, .. } | Request::Disable { fd } | Request::Remove { fd } => {
                Some(fd)
            }
        }
    }
}

impl Registration {
    /// Registers `socket` with completion key `key`, or changes its registration
    /// (`SOCK_NOTIFY_OP_ENABLE`).
    ///
    /// The trigger needs exactly one of [`LEVEL`](Trigger::LEVEL) and
    /// [`EDGE`](Trigger::EDGE), and at most one of [`ONESHOT`](Trigger::ONESHOT) and
    /// [`PERSISTENT`](Trigger::PERSISTENT) (neither means `PERSISTENT`); `process` reports
    /// anything else in [`result`](Registration::result).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::net::{TcpListener, TcpStream};
    /// use std::time::Duration;
    /// use socknotify::{CompletionEntry, CompletionPort, Events, Registration, Trigger};
    ///
    /// let port = CompletionPort::new()?;
    /// let listener = TcpListener::bind("127.0.0.1:0")?;
    /// let _client = TcpStream::connect(listener.local_addr()?)?;
    /// let mut changes = [Registration::enable(&listener, 1, Events::IN, Trigger::LEVEL)];
    /// let mut entries = [CompletionEntry::default(); 4];
    /// // A connection is waiting: the listener is readable at once.
    /// let n = port.process(&mut changes, &mut entries, Some(Duration::from_secs(5)))?;
    /// changes[0].result()?;
    /// assert_eq!((n, entries[0].key, entries[0].events()), (1, 1, Events::IN));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[must_use = "a registration does nothing until it is passed to `process`"]
    pub fn enable(
        socket: &impl AsSocketLike,
        key: usize,
        events: Events,
        trigger: Trigger,
    ) -> Self {
        Self::from_raw(raw(socket), key, events, Operation::Enable, trigger)
    }

    /// Stops new entries for `socket`'s registration (`SOCK_NOTIFY_OP_DISABLE`); ENABLE
    /// turns it back on. Entries already queued may still be dequeued.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Write;
    /// use std::net::{TcpListener, TcpStream};
    /// use std::time::Duration;
    /// use socknotify::{CompletionEntry, CompletionPort, Events, Registration, Trigger};
    ///
    /// let port = CompletionPort::new()?;
    /// let listener = TcpListener::bind("127.0.0.1:0")?;
    /// let mut client = TcpStream::connect(listener.local_addr()?)?;
    /// let (server, _) = listener.accept()?;
    /// let mut changes = [
    ///     Registration::enable(&server, 7, Events::IN, Trigger::LEVEL),
    ///     Registration::disable(&server),
    /// ];
    /// port.process(&mut changes, &mut [], None)?;
    /// changes.iter().try_for_each(Registration::result)?;
    /// client.write_all(b"ping")?;
    /// // Readable, but disabled: nothing is queued.
    /// let mut entries = [CompletionEntry::default(); 4];
    /// assert_eq!(port.dequeue(&mut entries, Some(Duration::from_millis(50)))?, 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[must_use = "a registration does nothing until it is passed to `process`"]
    pub fn disable(socket: &impl AsSocketLike) -> Self {
        let fd = raw(socket);
        Self::from_raw(fd, 0, Events::empty(), Operation::Disable, Trigger::empty())
    }

    /// Removes `socket`'s registration (`SOCK_NOTIFY_OP_REMOVE`); its last entry will carry
    /// [`Events::REMOVE`]. Once that entry is dequeued, no other entry for the registration
    /// comes: only then may whatever the key refers to be freed.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::net::{TcpListener, TcpStream};
    /// use std::time::Duration;
    /// use socknotify::{CompletionEntry, CompletionPort, Events, Registration, Trigger};
    ///
    /// let port = CompletionPort::new()?;
    /// let listener = TcpListener::bind("127.0.0.1:0")?;
    /// let _client = TcpStream::connect(listener.local_addr()?)?;
    /// let (server, _) = listener.accept()?;
    /// let mut changes = [
    ///     Registration::enable(&server, 7, Events::IN, Trigger::ONESHOT | Trigger::LEVEL),
    ///     Registration::remove(&server),
    /// ];
    /// let mut entries = [CompletionEntry::default(); 4];
    /// let n = port.process(&mut changes, &mut entries, Some(Duration::from_secs(5)))?;
    /// changes.iter().try_for_each(Registration::result)?;
    /// assert_eq!((n, entries[0].key, entries[0].events()), (1, 7, Events::REMOVE));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[must_use = "a registration does nothing until it is passed to `process`"]
    pub fn remove(socket: &impl AsSocketLike) -> Self {
        let fd = raw(socket);
        Self::from_raw(fd, 0, Events::empty(), Operation::Remove, Trigger::empty())
    }

    /// A registration from raw parts, as a `SOCK_NOTIFY_REGISTRATION` holds them.
    ///
    /// This is safe whatever `socket` is: a descriptor that is closed, or not a socket, makes
    /// this registration's [`result`](Registration::result) an error. Unknown bits in
    /// `events` or `trigger` (kept by `from_bits_retain`) are reported the same way.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::net::UdpSocket;
    /// use std::os::fd::AsRawFd;
    /// use socknotify::{CompletionPort, Events, Operation, Registration, Trigger};
    ///
    /// let port = CompletionPort::new()?;
    /// let socket = UdpSocket::bind("127.0.0.1:0")?;
    /// let fd = socket.as_raw_fd();
    /// let mut changes = [
    ///     Registration::from_raw(fd, 3, Events::IN, Operation::Enable, Trigger::EDGE),
    ///     // A descriptor that is not open is that registration's error, not the batch's.
    ///     Registration::from_raw(-1, 4, Events::IN, Operation::Enable, Trigger::EDGE),
    /// ];
    /// port.process(&mut changes, &mut [], None)?;
    /// assert!(changes[0].result().is_ok());
    /// assert!(changes[1].result().is_err());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[must_use = "a registration does nothing until it is passed to `process`"]
    pub fn from_raw(
        socket: RawSocketLike,
        key: usize,
        events: Events,
        operation: Operation,
        trigger: Trigger,
    ) -> Self {
        Self::from_bits(socket, key, events.bits(), operation as u8, trigger.bits())
    }

    /// A registration from raw bit fields, for decoding foreign structures (the C interface).
    /// Any combination is accepted here and checked by `process`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::net::UdpSocket;
    /// use std::os::fd::AsRawFd;
    /// use socknotify::{CompletionPort, Events, Operation, Registration, Trigger};
    ///
    /// let port = CompletionPort::new()?;
    /// let socket = UdpSocket::bind("127.0.0.1:0")?;
    /// // SOCK_NOTIFY_OP_ENABLE, SOCK_NOTIFY_EVENT_IN, SOCK_NOTIFY_TRIGGER_LEVEL
    /// let ok = Registration::from_bits(socket.as_raw_fd(), 9, 0x01, 0x01, 0x04);
    /// assert_eq!(ok.operation(), Some(Operation::Enable));
    /// assert_eq!(ok.trigger(), Trigger::LEVEL);
    /// // REMOVE | ENABLE is two operations: refused by `process`, not here.
    /// let bad = Registration::from_bits(socket.as_raw_fd(), 9, 0x01, 0x05, 0x04);
    /// assert_eq!(bad.operation(), None);
    /// let mut changes = [ok, bad];
    /// port.process(&mut changes, &mut [], None)?;
    /// assert!(changes[0].result().is_ok());
    /// assert!(changes[1].result().is_err());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[must_use = "a registration does nothing until it is passed to `process`"]
    pub fn from_bits(
        socket: RawSocketLike,
        key: usize,
        events: u16,
        operation: u8,
        trigger: u8,
    ) -> Self {
        Registration {
            socket,
            key,
            events,
            operation,
            trigger,
            result: Some(Failure::NotProcessed),
        }
    }

    /// Sets the completion key. DISABLE and REMOVE ignore it (the REMOVE entry carries the
    /// registration's own key), so [`disable`](Registration::disable) and
    /// [`remove`](Registration::remove) leave it 0; setting it lets a batch tell which
    /// registration a failed result belongs to.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::net::UdpSocket;
    /// use socknotify::{CompletionPort, Registration};
    ///
    /// let port = CompletionPort::new()?;
    /// let socket = UdpSocket::bind("127.0.0.1:0")?;
    /// // Never registered: the REMOVE fails, and its key says whose it was.
    /// let mut changes = [Registration::remove(&socket).with_key(42)];
    /// port.process(&mut changes, &mut [], None)?;
    /// let failed: Vec<usize> = changes
    ///     .iter()
    ///     .filter(|r| r.result().is_err())
    ///     .map(Registration::key)
    ///     .collect();
    /// assert_eq!(failed, [42]);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[must_use]
    pub fn with_key(mut self, key: usize) -> Self {
        self.key = key;
        self
    }

    /// The socket's descriptor.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::net::UdpSocket;
    /// use std::os::fd::AsRawFd;
    /// use socknotify::Registration;
    ///
    /// let socket = UdpSocket::bind("127.0.0.1:0")?;
    /// assert_eq!(Registration::remove(&socket).socket(), socket.as_raw_fd());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[must_use]
    pub fn socket(&self) -> RawSocketLike {
        self.socket
    }

    /// The completion key.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::net::UdpSocket;
    /// use socknotify::{Events, Registration, Trigger};
    ///
    /// let socket = UdpSocket::bind("127.0.0.1:0")?;
    /// let r = Registration::enable(&socket, 7, Events::IN, Trigger::LEVEL);
    /// assert_eq!(r.key(), 7);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[must_use]
    pub fn key(&self) -> usize {
        self.key
    }

    /// The event filter, unknown bits included.
    ///
    /// # Examples
    ///
    /// ```
    /// use socknotify::{Events, Registration};
    ///
    /// let r = Registration::from_bits(3, 0, 0x0105, 0x01, 0x04);
    /// assert_eq!(r.events(), Events::IN | Events::HANGUP | Events::from_bits_retain(0x100));
    /// ```
    #[must_use]
    pub fn events(&self) -> Events {
        Events::from_bits_retain(self.events)
    }

    /// The trigger flags, unknown bits included.
    ///
    /// # Examples
    ///
    /// ```
    /// use socknotify::{Registration, Trigger};
    ///
    /// let r = Registration::from_bits(3, 0, 0x01, 0x01, 0x05);
    /// assert_eq!(r.trigger(), Trigger::ONESHOT | Trigger::LEVEL);
    /// assert!(r.trigger().is_oneshot());
    /// ```
    #[must_use]
    pub fn trigger(&self) -> Trigger {
        Trigger::from_bits_retain(self.trigger)
    }

    /// The operation, or `None` when the operation bits are not exactly one known operation.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::net::UdpSocket;
    /// use socknotify::{Operation, Registration};
    ///
    /// let socket = UdpSocket::bind("127.0.0.1:0")?;
    /// assert_eq!(Registration::disable(&socket).operation(), Some(Operation::Disable));
    /// assert_eq!(Registration::from_bits(3, 0, 0, 0x06, 0).operation(), None);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[must_use]
    pub fn operation(&self) -> Option<Operation> {
        match self.operation {
            0x00 => Some(Operation::None),
            0x01 => Some(Operation::Enable),
            0x02 => Some(Operation::Disable),
            0x04 => Some(Operation::Remove),
            _ => None,
        }
    }

    /// The outcome of this registration, filled in by
    /// [`process`](crate::CompletionPort::process) (`registrationResult`).
    ///
    /// # Errors
    ///
    /// [`ErrorCause::of`](crate::ErrorCause::of) tells the failures apart, and its table says
    /// what state the registration is in after each (rule 22: a failed ENABLE, DISABLE or
    /// REMOVE leaves it as it was):
    ///
    /// - not processed yet ([`ErrorCause::NotProcessed`](crate::ErrorCause::NotProcessed),
    ///   kind [`Other`](io::ErrorKind::Other));
    /// - [`InvalidInput`](io::ErrorKind::InvalidInput): bad operation, filter or trigger
    ///   bits; ENABLE with a different key;
    /// - `raw_os_error()` `EBADF` (a closed or negative descriptor) or `ENOTSOCK` (not a
    ///   socket), or another OS code (`EMFILE`, `ENOMEM`, ...);
    /// - [`NotFound`](io::ErrorKind::NotFound): DISABLE or REMOVE of a socket with no
    ///   registration on this port;
    /// - [`AlreadyExists`](io::ErrorKind::AlreadyExists): the socket is registered on
    ///   another port;
    /// - [`BrokenPipe`](io::ErrorKind::BrokenPipe): the port is closed.
    ///
    /// # Examples
    ///
    /// One bad registration does not stop the others in its batch:
    ///
    /// ```
    /// use std::fs::File;
    /// use std::net::UdpSocket;
    /// use socknotify::{CompletionPort, Events, Registration, Trigger};
    ///
    /// let port = CompletionPort::new()?;
    /// let socket = UdpSocket::bind("127.0.0.1:0")?;
    /// let file = File::open("/dev/null")?; // not a socket
    /// let mut changes = [
    ///     Registration::enable(&file, 1, Events::IN, Trigger::LEVEL),
    ///     Registration::enable(&socket, 2, Events::IN, Trigger::LEVEL),
    /// ];
    /// port.process(&mut changes, &mut [], None)?;
    /// assert!(changes[0].result().is_err());
    /// assert!(changes[1].result().is_ok());
    /// assert_eq!(port.registrations(), 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn result(&self) -> io::Result<()> {
        match self.result {
            None => Ok(()),
            Some(failure) => Err(failure.into()),
        }
    }

    pub(crate) fn set_result(&mut self, result: Result<(), Failure>) {
        self.result = result.err();
    }

    /// The failure [`result`](Registration::result) reports, if any.
    #[cfg(all(test, loom))]
    pub(crate) fn failure(&self) -> Option<Failure> {
        self.result
    }

    /// Checks the bits and says what to do (rule 1: unknown bits and more than one operation
    /// are errors; ENABLE needs exactly one of LEVEL/EDGE and at most one of
    /// ONESHOT/PERSISTENT, neither meaning PERSISTENT).
    pub(crate) fn request(&self) -> Result<Request, Failure> {
        let op = self
            .operation()
            .ok_or(Failure::BadOperation(self.operation))?;
        // Unknown bits are an error in every field, whatever the operation (rule 1).
        let filter = Events::from_bits(self.events)
            .filter(|f| Events::FILTER.contains(*f))
            .ok_or(Failure::BadFilter(self.events))?;
        let trigger =
            Trigger::from_bits(self.trigger).ok_or(Failure::UnknownTrigger(self.trigger))?;
        if op == Operation::None {
            return Ok(Request::None);
        }
        if sys::is_invalid(self.socket) {
            return Err(Failure::BadDescriptor(self.socket));
        }
        let fd = self.socket;
        Ok(match op {
            Operation::Enable => {
                if trigger.contains(Trigger::ONESHOT | Trigger::PERSISTENT) {
                    return Err(Failure::OneshotOrPersistent(self.trigger));
                }
                if trigger.contains(Trigger::LEVEL) == trigger.contains(Trigger::EDGE) {
                    return Err(Failure::LevelOrEdge(self.trigger));
                }
                // Rule 1: neither ONESHOT nor PERSISTENT means PERSISTENT, as on Windows.
                let trigger = if trigger.is_oneshot() {
                    trigger
                } else {
                    trigger | Trigger::PERSISTENT
                };
                Request::Enable {
                    fd,
                    key: self.key,
                    filter,
                    trigger,
                }
            }
            Operation::Disable => Request::Disable { fd },
            Operation::Remove => Request::Remove { fd },
            Operation::None => unreachable!("handled above"),
        })
    }
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("socket", &self.socket)
            .field("key", &self.key)
            .field(
                "operation",
                &OperationBits(self.operation(), self.operation),
            )
            .field("events", &FlagNames(self.events()))
            .field("trigger", &FlagNames(self.trigger()))
            .field("result", &ResultLine(self.result()))
            .finish()
    }
}

/// An operation field: its name, or its bits when they are not one known operation.
struct OperationBits(Option<Operation>, u8);

impl fmt::Debug for OperationBits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(op) => fmt::Debug::fmt(&op, f),
            None => write!(f, "{:#04x}", self.1),
        }
    }
}

/// Flags by name (`IN | HANGUP`), unknown bits in hex (`IN | 0x100`), `empty` for none.
struct FlagNames<B>(B);

impl<B> fmt::Debug for FlagNames<B>
where
    B: bitflags::Flags,
    B::Bits: bitflags::parser::WriteHex,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("empty")
        } else {
            bitflags::parser::to_writer(&self.0, f)
        }
    }
}

/// A result on one line: `Ok(())`, or `Err(kind: message)`.
struct ResultLine(io::Result<()>);

impl fmt::Debug for ResultLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Ok(()) => f.write_str("Ok(())"),
            Err(e) => write!(f, "Err({:?}: {e})", e.kind()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enable_bits(events: u16, trigger: u8) -> Result<Request, Failure> {
        Registration::from_bits(3, 9, events, 0x01, trigger).request()
    }

    #[test]
    fn every_trigger_byte_is_classified() {
        for t in 0..=u8::MAX {
            let got = enable_bits(0x01, t);
            let known = t & !0x0f == 0;
            let one_mode = t & 0x03 != 0x03;
            let one_edge = (t & 0x04 != 0) != (t & 0x08 != 0);
            match got {
                Ok(Request::Enable { trigger, .. }) => {
                    assert!(known && one_mode && one_edge, "trigger {t:#x} accepted");
                    // LEVEL or EDGE alone is persistent (rule 1).
                    let expected = if t & 0x01 != 0 { t } else { t | 0x02 };
                    assert_eq!(trigger.bits(), expected, "trigger {t:#x}");
                }
                Ok(other) => panic!("trigger {t:#x} gave {other:?}"),
                Err(f) => {
                    assert!(!(known && one_mode && one_edge), "trigger {t:#x} refused");
                    assert_eq!(f.kind(), io::ErrorKind::InvalidInput);
                }
            }
        }
    }

    #[test]
    fn every_operation_byte_is_classified() {
        for op in 0..=u8::MAX {
            let got = Registration::from_bits(3, 0, 0, op, 0).request();
            match op {
                0x00 => assert_eq!(got, Ok(Request::None)),
                0x01 => assert_eq!(got, Err(Failure::LevelOrEdge(0))),
                0x02 => assert_eq!(got, Ok(Request::Disable { fd: 3 })),
                0x04 => assert_eq!(got, Ok(Request::Remove { fd: 3 })),
                _ => assert_eq!(got, Err(Failure::BadOperation(op))),
            }
        }
    }

    #[test]
    fn every_filter_word_is_classified() {
        for bits in 0..=u16::MAX {
            let got = enable_bits(bits, 0x06);
            if bits & !0x07 == 0 {
                assert!(got.is_ok(), "filter {bits:#x} refused");
            } else {
                assert_eq!(got, Err(Failure::BadFilter(bits)));
            }
        }
    }

    #[test]
    fn with_key_is_carried_but_ignored_by_remove() {
        let r = Registration::from_bits(3, 0, 0, 0x04, 0).with_key(77);
        assert_eq!(r.key(), 77);
        assert_eq!(r.request(), Ok(Request::Remove { fd: 3 }));
    }

    #[test]
    fn debug_names_the_operation_and_the_flags() {
        let r = Registration::from_bits(5, 7, 0x05, 0x01, 0x05);
        let text = format!("{r:?}");
        assert!(
            text.starts_with(
                "Registration { socket: 5, key: 7, operation: Enable, events: IN | HANGUP, \
                 trigger: ONESHOT | LEVEL, result: Err("
            ),
            "{text}"
        );
        let unknown = Registration::from_bits(5, 7, 0x0101, 0x05, 0x30);
        let text = format!("{unknown:?}");
        assert!(
            text.contains("operation: 0x05, events: IN | 0x100, trigger: 0x30,"),
            "{text}"
        );
        let empty = Registration::from_bits(5, 0, 0, 0x04, 0);
        let text = format!("{empty:?}");
        assert!(
            text.contains("operation: Remove, events: empty, trigger: empty,"),
            "{text}"
        );
    }

    #[test]
    fn debug_shows_a_settled_result() {
        let port = crate::CompletionPort::new().expect("port");
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let mut changes = [Registration::enable(&socket, 7, Events::IN, Trigger::LEVEL)];
        port.process(&mut changes, &mut [], None).expect("process");
        let text = format!("{:?}", changes[0]);
        assert!(text.ends_with("trigger: LEVEL, result: Ok(()) }"), "{text}");
    }

    #[test]
    fn unprocessed_registration_says_so() {
        let r = Registration::from_bits(3, 0, 0, 0, 0);
        let err = r.result().unwrap_err();
        assert_eq!(
            crate::ErrorCause::of(&err),
            Some(crate::ErrorCause::NotProcessed)
        );
        assert_ne!(err.kind(), io::ErrorKind::WouldBlock);
    }
}

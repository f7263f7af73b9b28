//! Event bits, trigger flags and the completion entry that carries them.

use bitflags::bitflags;

bitflags! {
    /// Socket state bits: the filter a registration asks for, and the bits an entry reports.
    ///
    /// A registration's filter may contain [`IN`](Events::IN), [`OUT`](Events::OUT) and
    /// [`HANGUP`](Events::HANGUP). [`ERR`](Events::ERR) and [`REMOVE`](Events::REMOVE) are
    /// never asked for: they are delivered when they happen.
    ///
    /// The values are those of Winsock's `SOCK_NOTIFY_EVENT_*` constants.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    pub struct Events: u16 {
        /// The socket is readable (data, a pending connection, or end of stream).
        #[doc(alias = "SOCK_NOTIFY_EVENT_IN")]
        #[doc(alias = "SOCK_NOTIFY_REGISTER_EVENT_IN")]
        const IN = 0x01;
        /// The socket is writable.
        #[doc(alias = "SOCK_NOTIFY_EVENT_OUT")]
        #[doc(alias = "SOCK_NOTIFY_REGISTER_EVENT_OUT")]
        const OUT = 0x02;
        /// The stream's peer shut down its side, or the connection was closed.
        /// Never reported for datagram sockets.
        #[doc(alias = "SOCK_NOTIFY_EVENT_HANGUP")]
        #[doc(alias = "SOCK_NOTIFY_REGISTER_EVENT_HANGUP")]
        const HANGUP = 0x04;
        /// The socket has a pending error (a reset, for example). Always reported.
        #[doc(alias = "SOCK_NOTIFY_EVENT_ERR")]
        const ERR = 0x40;
        /// The registration was removed; this is its last entry.
        #[doc(alias = "SOCK_NOTIFY_EVENT_REMOVE")]
        const REMOVE = 0x80;
    }
}

impl Events {
    /// The bits a registration's filter may contain: `IN | OUT | HANGUP`.
    pub const FILTER: Events = Events::IN.union(Events::OUT).union(Events::HANGUP);

    /// Whether [`IN`](Events::IN) is set.
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
    /// client.write_all(b"ping")?;
    /// let mut changes = [Registration::enable(&server, 1, Events::IN, Trigger::LEVEL)];
    /// let mut entries = [CompletionEntry::default(); 1];
    /// port.process(&mut changes, &mut entries, Some(Duration::from_secs(5)))?;
    /// assert!(entries[0].events().is_readable());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[must_use]
    pub fn is_readable(self) -> bool {
        self.contains(Events::IN)
    }

    /// Whether [`OUT`](Events::OUT) is set.
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
    /// let client = TcpStream::connect(listener.local_addr()?)?;
    /// // A fresh connection has room to write.
    /// let trigger = Trigger::ONESHOT | Trigger::LEVEL;
    /// let mut changes = [Registration::enable(&client, 1, Events::OUT, trigger)];
    /// let mut entries = [CompletionEntry::default(); 1];
    /// port.process(&mut changes, &mut entries, Some(Duration::from_secs(5)))?;
    /// assert!(entries[0].events().is_writable());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[must_use]
    pub fn is_writable(self) -> bool {
        self.contains(Events::OUT)
    }

    /// Whether [`HANGUP`](Events::HANGUP) is set.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::net::{Shutdown, TcpListener, TcpStream};
    /// use std::time::Duration;
    /// use socknotify::{CompletionEntry, CompletionPort, Events, Registration, Trigger};
    ///
    /// let port = CompletionPort::new()?;
    /// let listener = TcpListener::bind("127.0.0.1:0")?;
    /// let client = TcpStream::connect(listener.local_addr()?)?;
    /// let (server, _) = listener.accept()?;
    /// client.shutdown(Shutdown::Both)?;
    /// let filter = Events::IN | Events::HANGUP;
    /// let trigger = Trigger::ONESHOT | Trigger::LEVEL;
    /// let mut changes = [Registration::enable(&server, 1, filter, trigger)];
    /// let mut entries = [CompletionEntry::default(); 1];
    /// port.process(&mut changes, &mut entries, Some(Duration::from_secs(5)))?;
    /// assert!(entries[0].events().is_hangup());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[must_use]
    pub fn is_hangup(self) -> bool {
        self.contains(Events::HANGUP)
    }

    /// Whether [`ERR`](Events::ERR) is set. `ERR` is never asked for: a socket with a
    /// pending error (a reset, for example) reports it whatever its filter.
    ///
    /// # Examples
    ///
    /// ```
    /// use socknotify::{CompletionEntry, Events};
    ///
    /// let entry = CompletionEntry::new(1, u32::from((Events::IN | Events::ERR).bits()), 0);
    /// assert!(entry.events().is_error());
    /// assert!(!Events::IN.is_error());
    /// ```
    #[must_use]
    pub fn is_error(self) -> bool {
        self.contains(Events::ERR)
    }

    /// Whether [`REMOVE`](Events::REMOVE) is set: the registration's last entry.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::net::UdpSocket;
    /// use std::time::Duration;
    /// use socknotify::{CompletionEntry, CompletionPort, Events, Registration, Trigger};
    ///
    /// let port = CompletionPort::new()?;
    /// let socket = UdpSocket::bind("127.0.0.1:0")?;
    /// let mut changes = [
    ///     Registration::enable(&socket, 5, Events::IN, Trigger::LEVEL),
    ///     Registration::remove(&socket),
    /// ];
    /// let mut entries = [CompletionEntry::default(); 1];
    /// port.process(&mut changes, &mut entries, Some(Duration::from_secs(5)))?;
    /// assert_eq!(entries[0].key, 5);
    /// assert!(entries[0].events().is_remove());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[must_use]
    pub fn is_remove(self) -> bool {
        self.contains(Events::REMOVE)
    }
}

bitflags! {
    /// How a registration delivers entries. An `ENABLE` needs exactly one of
    /// `LEVEL`/`EDGE` and at most one of `ONESHOT`/`PERSISTENT`; with neither, the
    /// registration is `PERSISTENT` (as on Windows: `LEVEL` alone is a persistent
    /// level-triggered registration).
    ///
    /// The values are those of Winsock's `SOCK_NOTIFY_TRIGGER_*` constants.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    pub struct Trigger: u8 {
        /// After one entry the registration is disarmed until the next `ENABLE`.
        #[doc(alias = "SOCK_NOTIFY_TRIGGER_ONESHOT")]
        const ONESHOT = 0x01;
        /// The registration stays armed after each entry.
        #[doc(alias = "SOCK_NOTIFY_TRIGGER_PERSISTENT")]
        const PERSISTENT = 0x02;
        /// Entries are queued while the condition holds.
        #[doc(alias = "SOCK_NOTIFY_TRIGGER_LEVEL")]
        const LEVEL = 0x04;
        /// Entries are queued when the condition becomes true.
        #[doc(alias = "SOCK_NOTIFY_TRIGGER_EDGE")]
        const EDGE = 0x08;
    }
}

impl Trigger {
    /// Whether [`ONESHOT`](Trigger::ONESHOT) is set.
    ///
    /// # Examples
    ///
    /// ```
    /// use socknotify::Trigger;
    ///
    /// assert!((Trigger::ONESHOT | Trigger::LEVEL).is_oneshot());
    /// assert!(!Trigger::LEVEL.is_oneshot()); // LEVEL alone is persistent
    /// ```
    #[must_use]
    pub fn is_oneshot(self) -> bool {
        self.contains(Trigger::ONESHOT)
    }

    /// Whether [`EDGE`](Trigger::EDGE) is set.
    ///
    /// # Examples
    ///
    /// ```
    /// use socknotify::Trigger;
    ///
    /// assert!(Trigger::EDGE.is_edge());
    /// assert!(!(Trigger::ONESHOT | Trigger::LEVEL).is_edge());
    /// ```
    #[must_use]
    pub fn is_edge(self) -> bool {
        self.contains(Trigger::EDGE)
    }
}

/// One completion entry, as `GetQueuedCompletionStatusEx` returns it in an `OVERLAPPED_ENTRY`.
///
/// For a socket notification, `key` is the registration's completion key, `bytes` holds the
/// [`Events`] bits and `overlapped` is 0. A posted entry carries whatever was posted.
#[doc(alias = "OVERLAPPED_ENTRY")]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CompletionEntry {
    /// The completion key (`lpCompletionKey`).
    pub key: usize,
    /// The number of bytes transferred (`dwNumberOfBytesTransferred`); the event bits for a
    /// socket notification.
    pub bytes: u32,
    /// The overlapped pointer (`lpOverlapped`); 0 for a socket notification.
    pub overlapped: usize,
}

impl CompletionEntry {
    /// An entry with the given fields, as [`CompletionPort::post`](crate::CompletionPort::post)
    /// takes it.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use socknotify::{CompletionEntry, CompletionPort};
    ///
    /// let port = CompletionPort::new()?;
    /// port.post(CompletionEntry::new(usize::MAX, 12, 0xfeed))?;
    /// let mut entries = [CompletionEntry::default(); 1];
    /// assert_eq!(port.dequeue(&mut entries, Some(Duration::from_secs(5)))?, 1);
    /// assert_eq!(entries[0], CompletionEntry::new(usize::MAX, 12, 0xfeed));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[must_use]
    pub const fn new(key: usize, bytes: u32, overlapped: usize) -> Self {
        CompletionEntry {
            key,
            bytes,
            overlapped,
        }
    }

    /// The event bits of a socket notification: the low 16 bits of `bytes`.
    ///
    /// For a posted entry this reads whatever was posted in `bytes`, as on Windows.
    ///
    /// # Examples
    ///
    /// ```
    /// use socknotify::{CompletionEntry, Events};
    ///
    /// let entry = CompletionEntry::new(7, 0x05, 0);
    /// assert_eq!(entry.events(), Events::IN | Events::HANGUP);
    /// // Unknown bits are kept.
    /// assert_eq!(CompletionEntry::new(7, 0x101, 0).events().bits(), 0x101);
    /// ```
    #[doc(alias = "SocketNotificationRetrieveEvents")]
    #[must_use]
    pub fn events(&self) -> Events {
        Events::from_bits_retain(self.bytes as u16)
    }

    pub(crate) fn notification(key: usize, events: Events) -> Self {
        CompletionEntry::new(key, u32::from(events.bits()), 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_match_winsock() {
        assert_eq!(Events::IN.bits(), 0x01);
        assert_eq!(Events::OUT.bits(), 0x02);
        assert_eq!(Events::HANGUP.bits(), 0x04);
        assert_eq!(Events::ERR.bits(), 0x40);
        assert_eq!(Events::REMOVE.bits(), 0x80);
        assert_eq!(Trigger::ONESHOT.bits(), 0x01);
        assert_eq!(Trigger::PERSISTENT.bits(), 0x02);
        assert_eq!(Trigger::LEVEL.bits(), 0x04);
        assert_eq!(Trigger::EDGE.bits(), 0x08);
    }

    #[test]
    fn events_round_trip_through_bytes() {
        let e = CompletionEntry::notification(7, Events::IN | Events::HANGUP);
        assert_eq!(e.key, 7);
        assert_eq!(e.bytes, 0x05);
        assert_eq!(e.overlapped, 0);
        assert_eq!(e.events(), Events::IN | Events::HANGUP);
    }
}

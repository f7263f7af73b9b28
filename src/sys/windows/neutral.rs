//! The backend-neutral side of the selector contract: the change a registry submits, its
//! result, and the readiness a wait reports.
//!
//! These are the types every backend shares. They live here only until the rewritten
//! `sys/mod.rs` provides them; then this file goes and `mod.rs` imports them from there.

use std::os::windows::io::RawSocket;

use crate::event::Events;

/// The token a waiter sees when it was released by [`Selector::wake`](super::Selector::wake).
pub(crate) const WAKE_TOKEN: u64 = u64::MAX;

/// What a registration asks the kernel to watch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Interest {
    /// `IN | OUT | HANGUP`; ERROR is always watched.
    pub(crate) filter: Events,
    /// Edge-triggered. The AFD backend polls the same way for both (see the module doc).
    pub(crate) edge: bool,
}

/// One interest change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    /// Start watching the socket and arm it.
    Add(Interest),
    /// Arm (or re-arm) with this interest: at most one report follows.
    Arm(Interest),
    /// Keep the registration but report nothing until the next `Arm`.
    Disarm,
    /// Stop watching.
    Delete,
}

/// Why a change failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ChangeError {
    /// The socket no longer exists: it was closed (`AFD_POLL_LOCAL_CLOSE`, an invalid handle).
    Gone,
    /// `Add` of a socket (or a token) this selector already watches.
    Exists,
    /// Any other failure, with the operating system's code.
    Os(i32),
}

/// A change and, once applied, its result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Change {
    pub(crate) socket: RawSocket,
    pub(crate) token: u64,
    pub(crate) op: Op,
    pub(crate) result: Result<(), ChangeError>,
}

/// Readiness as the kernel reported it, before the registration's filter applies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Readiness(u8);

impl Readiness {
    pub(crate) const READABLE: u8 = 0x01;
    pub(crate) const WRITABLE: u8 = 0x02;
    /// The peer shut down its sending side.
    pub(crate) const READ_HANGUP: u8 = 0x04;
    /// The connection is gone.
    pub(crate) const HANGUP: u8 = 0x08;
    pub(crate) const ERROR: u8 = 0x10;

    pub(crate) fn new(bits: u8) -> Self {
        Readiness(bits)
    }

    pub(crate) fn bits(self) -> u8 {
        self.0
    }

    pub(crate) fn has(self, bits: u8) -> bool {
        self.0 & bits != 0
    }

    pub(crate) fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// One report: the registration's token and what the kernel saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RawEvent {
    pub(crate) token: u64,
    pub(crate) readiness: Readiness,
}

//! The `SOCK_NOTIFY_*` constants and the other numeric names of the header, with their
//! Windows values.
//!
//! They are taken from the core's types, so the C values cannot drift from the Rust ones;
//! `tests/header.rs` checks that the header's `#define`s say the same.

use socknotify_core::{Events, Operation, Trigger};

use crate::types::Socket;

/// `SOCK_NOTIFY_REGISTER_EVENT_NONE`: ask for no events.
pub const SOCK_NOTIFY_REGISTER_EVENT_NONE: u16 = 0x00;
/// `SOCK_NOTIFY_REGISTER_EVENT_IN`: ask for readability.
pub const SOCK_NOTIFY_REGISTER_EVENT_IN: u16 = Events::IN.bits();
/// `SOCK_NOTIFY_REGISTER_EVENT_OUT`: ask for writability.
pub const SOCK_NOTIFY_REGISTER_EVENT_OUT: u16 = Events::OUT.bits();
/// `SOCK_NOTIFY_REGISTER_EVENT_HANGUP`: ask for hang-ups of a stream.
pub const SOCK_NOTIFY_REGISTER_EVENT_HANGUP: u16 = Events::HANGUP.bits();
/// `SOCK_NOTIFY_REGISTER_EVENTS_ALL`: `IN | OUT | HANGUP`.
pub const SOCK_NOTIFY_REGISTER_EVENTS_ALL: u16 = Events::FILTER.bits();

/// `SOCK_NOTIFY_EVENT_IN`: the socket is readable.
pub const SOCK_NOTIFY_EVENT_IN: u16 = Events::IN.bits();
/// `SOCK_NOTIFY_EVENT_OUT`: the socket is writable.
pub const SOCK_NOTIFY_EVENT_OUT: u16 = Events::OUT.bits();
/// `SOCK_NOTIFY_EVENT_HANGUP`: the stream's peer hung up.
pub const SOCK_NOTIFY_EVENT_HANGUP: u16 = Events::HANGUP.bits();
/// `SOCK_NOTIFY_EVENT_ERR`: the socket has an error; reported without being asked for.
pub const SOCK_NOTIFY_EVENT_ERR: u16 = Events::ERR.bits();
/// `SOCK_NOTIFY_EVENT_REMOVE`: the registration's last entry.
pub const SOCK_NOTIFY_EVENT_REMOVE: u16 = Events::REMOVE.bits();
/// `SOCK_NOTIFY_EVENTS_ALL`: every event bit.
pub const SOCK_NOTIFY_EVENTS_ALL: u16 = Events::all().bits();

/// `SOCK_NOTIFY_OP_NONE`: change nothing.
pub const SOCK_NOTIFY_OP_NONE: u8 = Operation::None as u8;
/// `SOCK_NOTIFY_OP_ENABLE`: create or change and re-arm the registration.
pub const SOCK_NOTIFY_OP_ENABLE: u8 = Operation::Enable as u8;
/// `SOCK_NOTIFY_OP_DISABLE`: stop new entries, keep the registration.
pub const SOCK_NOTIFY_OP_DISABLE: u8 = Operation::Disable as u8;
/// `SOCK_NOTIFY_OP_REMOVE`: delete the registration; its last entry carries REMOVE.
pub const SOCK_NOTIFY_OP_REMOVE: u8 = Operation::Remove as u8;

/// `SOCK_NOTIFY_TRIGGER_ONESHOT`: disarm after one entry.
pub const SOCK_NOTIFY_TRIGGER_ONESHOT: u8 = Trigger::ONESHOT.bits();
/// `SOCK_NOTIFY_TRIGGER_PERSISTENT`: stay armed.
pub const SOCK_NOTIFY_TRIGGER_PERSISTENT: u8 = Trigger::PERSISTENT.bits();
/// `SOCK_NOTIFY_TRIGGER_LEVEL`: queue while the condition holds.
pub const SOCK_NOTIFY_TRIGGER_LEVEL: u8 = Trigger::LEVEL.bits();
/// `SOCK_NOTIFY_TRIGGER_EDGE`: queue when the condition becomes true.
pub const SOCK_NOTIFY_TRIGGER_EDGE: u8 = Trigger::EDGE.bits();
/// `SOCK_NOTIFY_TRIGGER_ALL`: every trigger bit.
pub const SOCK_NOTIFY_TRIGGER_ALL: u8 = Trigger::all().bits();

/// `INFINITE`: a timeout that never expires.
pub const INFINITE: u32 = 0xFFFF_FFFF;
/// `INVALID_SOCKET`: `(SOCKET)~0`, what a failed `socket()` or `accept()` (-1) becomes as a
/// `SOCKET`.
pub const INVALID_SOCKET: Socket = !0;
/// `SOCKET_ERROR`: what socket calls return on failure.
pub const SOCKET_ERROR: libc::c_int = -1;

/// `WAIT_OBJECT_0`: the first handle of a wait is signalled.
pub const WAIT_OBJECT_0: u32 = 0;
/// `WAIT_ABANDONED_0`: the first handle of a wait is an abandoned mutex (never returned here).
pub const WAIT_ABANDONED_0: u32 = 0x80;
/// `WAIT_IO_COMPLETION`: an alertable wait ran an APC (never returned here).
pub const WAIT_IO_COMPLETION: u32 = 0xC0;
/// `WAIT_FAILED`: the wait failed; the last error says why.
pub const WAIT_FAILED: u32 = 0xFFFF_FFFF;
/// `MAXIMUM_WAIT_OBJECTS`: the most handles one `WaitForMultipleObjects` takes.
pub const MAXIMUM_WAIT_OBJECTS: u32 = 64;
/// `STILL_ACTIVE`: `GetExitCodeThread` of a thread that is still running.
pub const STILL_ACTIVE: u32 = 259;
/// `SOCKNOTIFY_ERRNO_LAST_ERROR`: the value the library stores in `errno` whenever it sets
/// the thread's last error, so that the compatibility header's `GetLastError` can tell
/// whether the last failure was the library's or a POSIX call's. No system call uses it.
pub const SOCKNOTIFY_ERRNO_LAST_ERROR: libc::c_int = 0x534E_4B00;

//! `Backend::Native`: Windows' own `ProcessSocketNotifications` (Windows 11, Server 2022
//! and later), found at run time with `GetProcAddress` so that the same binary runs where
//! the function is missing (older Windows, and Wine, which has none): there the backend is
//! [`Unsupported`](io::ErrorKind::Unsupported) and `Backend::Auto` uses AFD.
//!
//! The OS keeps the registrations, so this selector only translates, one
//! `ProcessSocketNotifications` call per change (why not per batch: [`Selector::apply`]),
//! with the registration's token as its completion key: `Add` and `Arm` are ENABLE
//! (one-shot, or persistent EDGE, as the interest says), `Disarm` is DISABLE, `Delete` is REMOVE (whose REMOVE entry this
//! selector swallows: the registry queues its own), `Check` asks whether the handle is
//! still a socket. The entries are dequeued from the same completion port as wakes.
//!
//! **Not run by CI**: Wine has no `ProcessSocketNotifications`, so this file is built and
//! linted under `.ci/windows`, and its tests there only check that the backend says it is
//! unsupported. It has not run on a Windows that has the function.

use std::ffi::c_void;
use std::io;
use std::sync::OnceLock;
use std::time::Duration;

use windows_sys::Win32::Foundation::{ERROR_INVALID_HANDLE, ERROR_NOT_FOUND, HANDLE, WAIT_TIMEOUT};
use windows_sys::Win32::Networking::WinSock::{
    SOCK_NOTIFY_EVENT_ERR, SOCK_NOTIFY_EVENT_HANGUP, SOCK_NOTIFY_EVENT_IN, SOCK_NOTIFY_EVENT_OUT,
    SOCK_NOTIFY_EVENT_REMOVE, SOCK_NOTIFY_OP_DISABLE, SOCK_NOTIFY_OP_ENABLE, SOCK_NOTIFY_OP_REMOVE,
    SOCK_NOTIFY_REGISTRATION, SOCK_NOTIFY_TRIGGER_EDGE, SOCK_NOTIFY_TRIGGER_LEVEL,
    SOCK_NOTIFY_TRIGGER_ONESHOT, SOCK_NOTIFY_TRIGGER_PERSISTENT, WSAEBADF, WSAENOTSOCK,
};
use windows_sys::Win32::System::LibraryLoader::{GetProcAddress, LoadLibraryW};
use windows_sys::Win32::System::IO::OVERLAPPED_ENTRY;

use super::afd;
use super::port::Port;
use crate::event::Events;
use crate::sys::{Change, ChangeError, Interest, Op, RawEvent, Readiness, WAKE_TOKEN};

/// `ProcessSocketNotifications`' signature.
type Psn = unsafe extern "system" fn(
    HANDLE,
    u32,
    *mut SOCK_NOTIFY_REGISTRATION,
    u32,
    u32,
    *mut OVERLAPPED_ENTRY,
    *mut u32,
) -> u32;

/// The completion key of a wake: never a registry token (`registry.rs` keeps tokens below
/// the sentinels).
const WAKE_KEY: usize = WAKE_TOKEN as usize;

/// `ProcessSocketNotifications`, if this Windows has it.
fn psn() -> Option<Psn> {
    static PSN: OnceLock<Option<Psn>> = OnceLock::new();
    *PSN.get_or_init(|| {
        afd::init_winsock();
        let name: Vec<u16> = "ws2_32.dll\0".encode_utf16().collect();
        // SAFETY: `name` is a NUL-terminated UTF-16 string; ws2_32 is a system DLL, and
        // the handle is never freed (the module stays loaded for the process's life).
        let module = unsafe { LoadLibraryW(name.as_ptr()) };
        if module.is_null() {
            return None;
        }
        // SAFETY: `module` is loaded; the name is a NUL-terminated ASCII string.
        let f = unsafe { GetProcAddress(module, c"ProcessSocketNotifications".as_ptr().cast()) }?;
        // SAFETY: the export named ProcessSocketNotifications has this signature
        // (winsock2.h); transmuting between function pointer types of the same size.
        Some(unsafe { std::mem::transmute::<unsafe extern "system" fn() -> isize, Psn>(f) })
    })
}

/// The selector of one port on `ProcessSocketNotifications`.
#[derive(Debug)]
pub(crate) struct Selector {
    port: Port,
}

impl Selector {
    /// # Errors
    /// [`Unsupported`](io::ErrorKind::Unsupported) where Windows has no
    /// `ProcessSocketNotifications` (before Windows 11 / Server 2022, and Wine).
    pub(crate) fn new() -> io::Result<Selector> {
        if psn().is_none() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "ProcessSocketNotifications is not available here (it needs Windows 11 or \
                 Server 2022; Wine has none): use Backend::Afd",
            ));
        }
        // No limit on released waiters: the registry's gate bounds them, as on AFD.
        Ok(Selector {
            port: Port::new(u32::MAX)?,
        })
    }

    /// Applies the changes in order, up to the first that fails (the contract: the rest are
    /// not applied), with one `ProcessSocketNotifications` per change (`Check` needs none).
    ///
    /// Why not one call for the whole batch: the call gives every element a result of its
    /// own (its reference page: "you must inspect the elements for whether the
    /// registration was processed successfully") and does not say that it stops at a
    /// failed one, so the changes after a failure would have been applied when the
    /// contract says they are not ([`ChangeError::NotApplied`]): the registry applies them
    /// again after dealing with the failure, which may change what they mean (a DISABLE
    /// through a renumbered handle, failed and retried by identity, must not be overtaken
    /// by a later ENABLE of the same socket through a duplicate: tests/ordering.rs's
    /// `rule_09_a_failed_change_does_not_let_later_ones_overtake_it`). Nor can they be
    /// taken back: this selector keeps no state to undo an ENABLE or a DISABLE, a REMOVE
    /// cannot be undone, and an undone one-shot may already have queued its entry. One call
    /// per batch needs a contract in which a backend may answer the changes after a failure
    /// with their own results and the registry retries a failed change only where no later
    /// change of the batch can concern its socket (or a mark on the changes whose failure
    /// is never retried: the registry's own re-arms): both are changes to `sys/mod.rs` and
    /// `registry.rs`, and the call's behaviour after a failed element must first be seen on
    /// a Windows that has it (Wine has none).
    pub(crate) fn apply(&self, changes: &mut [Change]) {
        let mut failed = false;
        for change in changes.iter_mut() {
            if failed {
                change.result = Err(ChangeError::NotApplied);
                continue;
            }
            change.result = match registration(change.socket, change.token, change.op) {
                None => check(change.socket),
                Some(reg) => {
                    let mut regs = [reg];
                    match self.call(&mut regs) {
                        Err(code) => Err(ChangeError::Os(code)),
                        Ok(()) => settle(change.op, regs[0].registrationResult),
                    }
                }
            };
            // An Add of a socket still registered under an older token: REMOVE that one
            // (its REMOVE entry is swallowed), then ENABLE again.
            if let (Op::Add(_), Err(ChangeError::Os(_))) = (change.op, change.result) {
                change.result = self.replace(change);
            }
            failed = change.result.is_err();
        }
    }

    fn replace(&self, change: &Change) -> Result<(), ChangeError> {
        let mut remove = [SOCK_NOTIFY_REGISTRATION {
            socket: change.socket as usize,
            operation: SOCK_NOTIFY_OP_REMOVE as u8,
            ..SOCK_NOTIFY_REGISTRATION::default()
        }];
        self.call(&mut remove).map_err(ChangeError::Os)?;
        let mut enable =
            [registration(change.socket, change.token, change.op)
                .expect("an Add is a registration")];
        self.call(&mut enable).map_err(ChangeError::Os)?;
        settle(change.op, enable[0].registrationResult)
    }

    /// One `ProcessSocketNotifications` that only registers (it dequeues nothing).
    fn call(&self, regs: &mut [SOCK_NOTIFY_REGISTRATION]) -> Result<(), i32> {
        if regs.is_empty() {
            return Ok(());
        }
        let psn = psn().expect("checked in new");
        let mut received = 0u32;
        // SAFETY: `regs` is a live, writable array of the count passed; no entries are
        // asked for (count 0, null array); the port handle is open.
        let rc = unsafe {
            psn(
                self.port.handle(),
                regs.len() as u32,
                regs.as_mut_ptr(),
                0,
                0,
                std::ptr::null_mut(),
                &mut received,
            )
        };
        // Success, or nothing to dequeue (WAIT_TIMEOUT, as no entry was asked for); a failed
        // registration fails the call too, but has its own result: only a failure of the
        // call itself is returned.
        match rc {
            0 | WAIT_TIMEOUT => Ok(()),
            _ if regs.iter().any(|r| r.registrationResult != 0) => Ok(()),
            code => Err(code as i32),
        }
    }

    /// Appends at most `max` reports to `out`, blocking up to `timeout` (None: forever)
    /// until at least one report or a wake.
    pub(crate) fn wait(
        &self,
        out: &mut Vec<RawEvent>,
        max: usize,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        self.port.wait(out, max, timeout, WAKE_KEY, |entry, out| {
            let bits = entry.dwNumberOfBytesTransferred;
            // The registry queues its own REMOVE entry.
            if bits & SOCK_NOTIFY_EVENT_REMOVE == 0 {
                out.push(RawEvent {
                    token: entry.lpCompletionKey as u64,
                    readiness: readiness(bits),
                });
            }
        })
    }

    /// Whether a stale item of a closed, duplicated socket still sits under this handle
    /// value: Windows cannot say (socket identity there counts closes instead).
    pub(crate) fn holds_other_file(&self, _socket: crate::sys::Socket) -> Option<bool> {
        None
    }

    /// Releases one waiter, or makes the next `wait` return at once.
    pub(crate) fn wake(&self) -> io::Result<()> {
        self.port.post(WAKE_KEY)
    }
}

/// The registration a change asks for; `None` for `Check`.
fn registration(socket: u64, token: u64, op: Op) -> Option<SOCK_NOTIFY_REGISTRATION> {
    let (operation, interest) = match op {
        Op::Add(i) | Op::Arm(i) => (SOCK_NOTIFY_OP_ENABLE, Some(i)),
        Op::Disarm => (SOCK_NOTIFY_OP_DISABLE, None),
        Op::Delete => (SOCK_NOTIFY_OP_REMOVE, None),
        Op::Check => return None,
    };
    Some(SOCK_NOTIFY_REGISTRATION {
        socket: socket as usize,
        completionKey: token as usize as *mut c_void,
        eventFilter: interest.map_or(0, |i| filter(i.filter)),
        operation: operation as u8,
        triggerFlags: interest.map_or(0, trigger),
        registrationResult: 0,
    })
}

fn filter(events: Events) -> u16 {
    let mut bits = 0;
    if events.contains(Events::IN) {
        bits |= SOCK_NOTIFY_EVENT_IN;
    }
    if events.contains(Events::OUT) {
        bits |= SOCK_NOTIFY_EVENT_OUT;
    }
    if events.contains(Events::HANGUP) {
        bits |= SOCK_NOTIFY_EVENT_HANGUP;
    }
    bits as u16
}

fn trigger(interest: Interest) -> u8 {
    let edge = if interest.edge {
        SOCK_NOTIFY_TRIGGER_EDGE
    } else {
        SOCK_NOTIFY_TRIGGER_LEVEL
    };
    let mode = if interest.oneshot {
        SOCK_NOTIFY_TRIGGER_ONESHOT
    } else {
        SOCK_NOTIFY_TRIGGER_PERSISTENT
    };
    (edge | mode) as u8
}

/// The change's result from its registration's `registrationResult`.
fn settle(op: Op, code: u32) -> Result<(), ChangeError> {
    let gone = [
        WSAENOTSOCK as u32,
        WSAEBADF as u32,
        ERROR_INVALID_HANDLE,
        ERROR_NOT_FOUND,
    ];
    match code {
        0 => Ok(()),
        // A registration that the OS ended (its socket closed) or a handle that is not
        // (any more) a socket: Gone, except for an Add, whose error is the caller's.
        code if gone.contains(&code) && !matches!(op, Op::Add(_)) => Err(ChangeError::Gone),
        code => Err(ChangeError::Os(code as i32)),
    }
}

/// `Check`: the handle still names a socket (the OS watches the socket itself).
fn check(socket: u64) -> Result<(), ChangeError> {
    afd::socket_type(socket)
        .map(drop)
        .map_err(|_| ChangeError::Gone)
}

/// What an entry's event bits mean in backend-neutral readiness.
fn readiness(bits: u32) -> Readiness {
    let mut r = 0;
    if bits & SOCK_NOTIFY_EVENT_IN != 0 {
        r |= Readiness::READABLE;
    }
    if bits & SOCK_NOTIFY_EVENT_OUT != 0 {
        r |= Readiness::WRITABLE;
    }
    if bits & SOCK_NOTIFY_EVENT_HANGUP != 0 {
        r |= Readiness::HANGUP;
    }
    if bits & SOCK_NOTIFY_EVENT_ERR != 0 {
        r |= Readiness::ERROR;
    }
    Readiness::new(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_is_found_or_unsupported() {
        match Selector::new() {
            Ok(_) => eprintln!("ProcessSocketNotifications found: Backend::Native can run"),
            Err(e) => assert_eq!(e.kind(), io::ErrorKind::Unsupported, "{e}"),
        }
    }

    #[test]
    fn interest_maps_to_winsock_values() {
        let i = Interest::of(Events::IN | Events::HANGUP, crate::event::Trigger::EDGE);
        assert_eq!(filter(i.filter), 0x05);
        assert_eq!(trigger(i), 0x0a, "persistent EDGE");
        let r = readiness(0x47);
        assert_eq!(
            r.events(Readiness::entry_filter(Events::FILTER, false)),
            Events::IN | Events::OUT | Events::HANGUP | Events::ERR
        );
    }
}

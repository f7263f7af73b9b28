//! `GetLastError` and `SetLastError`: a thread-local `DWORD`, as on Windows, and the
//! compatibility header's `WSAGetLastError`, which also sees the `errno` of failed POSIX
//! calls.
//!
//! Whenever the library sets the last error it also sets `errno` to
//! [`SOCKNOTIFY_ERRNO_LAST_ERROR`], a value no system call uses. A later failing POSIX call
//! (`recv`, `accept`, ...) overwrites `errno`; so [`wsa_get_last_error`] knows which failed
//! last: if `errno` still holds the marker (or is 0), the library's code, otherwise the
//! Winsock code of `errno`.

use std::cell::Cell;

use crate::codes;
use crate::consts::SOCKNOTIFY_ERRNO_LAST_ERROR;
use crate::types::Dword;

thread_local! {
    static LAST_ERROR: Cell<Dword> = const { Cell::new(0) };
}

fn errno_location() -> *mut libc::c_int {
    // SAFETY: __errno_location has no preconditions and returns this thread's errno.
    unsafe { libc::__errno_location() }
}

fn errno() -> libc::c_int {
    // SAFETY: the pointer is this thread's errno, valid for the thread's lifetime.
    unsafe { errno_location().read() }
}

/// Sets this thread's last error (for use inside the crate), and `errno` to the marker.
pub(crate) fn set(code: Dword) {
    // During thread teardown the slot may be gone; the code is then simply not kept.
    let _ = LAST_ERROR.try_with(|e| e.set(code));
    // SAFETY: as in `errno`.
    unsafe { errno_location().write(SOCKNOTIFY_ERRNO_LAST_ERROR) };
}

/// `GetLastError`: the calling thread's last error code, 0 (`ERROR_SUCCESS`) until a
/// function of this library fails on this thread or [`set_last_error`] is called.
#[doc(alias = "GetLastError")]
#[export_name = "GetLastError"]
pub extern "C" fn get_last_error() -> Dword {
    LAST_ERROR.try_with(Cell::get).unwrap_or(0)
}

/// `SetLastError`: sets the calling thread's last error code (and `errno` to the marker).
#[doc(alias = "SetLastError")]
#[export_name = "SetLastError"]
pub extern "C" fn set_last_error(code: Dword) {
    set(code);
}

/// `SocknotifyWSAGetLastError`, the compatibility header's `WSAGetLastError` and
/// `GetLastError`: the library's last error if it set one after the last failing POSIX
/// call, otherwise the Winsock code of `errno` ([`codes::errno_to_winsock`]:
/// `WSAEWOULDBLOCK` for `EAGAIN`, ...).
#[doc(alias = "WSAGetLastError")]
#[export_name = "SocknotifyWSAGetLastError"]
pub extern "C" fn wsa_get_last_error() -> Dword {
    // First, before anything else can touch errno.
    let e = errno();
    if e == 0 || e == SOCKNOTIFY_ERRNO_LAST_ERROR {
        get_last_error()
    } else {
        codes::errno_to_winsock(e)
    }
}

/// `SocknotifyErrnoToWinsock`: the Winsock code for an `errno` value
/// ([`codes::errno_to_winsock`]).
#[export_name = "SocknotifyErrnoToWinsock"]
pub extern "C" fn errno_to_winsock(errno: libc::c_int) -> Dword {
    codes::errno_to_winsock(errno)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_error_is_per_thread() {
        set_last_error(42);
        assert_eq!(get_last_error(), 42);
        let other = std::thread::spawn(|| get_last_error()).join().unwrap();
        assert_eq!(other, 0);
        assert_eq!(get_last_error(), 42);
    }

    #[test]
    fn the_later_failure_wins() {
        set_last_error(codes::WAIT_TIMEOUT);
        assert_eq!(wsa_get_last_error(), codes::WAIT_TIMEOUT);
        // SAFETY: as in `errno`.
        unsafe { errno_location().write(libc::EAGAIN) };
        assert_eq!(wsa_get_last_error(), codes::WSAEWOULDBLOCK);
        set_last_error(codes::ERROR_NOT_FOUND);
        assert_eq!(wsa_get_last_error(), codes::ERROR_NOT_FOUND);
    }
}

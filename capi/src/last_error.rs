//! `GetLastError` and `SetLastError`: a thread-local `DWORD`, as on Windows.
//!
//! The functions that return `BOOL` or a `HANDLE` set it when they fail and leave it alone
//! when they succeed; `ProcessSocketNotifications` returns its code instead.

use std::cell::Cell;

use crate::types::Dword;

thread_local! {
    static LAST_ERROR: Cell<Dword> = const { Cell::new(0) };
}

/// Sets this thread's last error (for use inside the crate).
pub(crate) fn set(code: Dword) {
    // During thread teardown the slot may be gone; the code is then simply not kept.
    let _ = LAST_ERROR.try_with(|e| e.set(code));
}

/// `GetLastError`: the calling thread's last error code, 0 (`ERROR_SUCCESS`) until a
/// function of this library fails on this thread or [`set_last_error`] is called.
#[doc(alias = "GetLastError")]
#[export_name = "GetLastError"]
pub extern "C" fn get_last_error() -> Dword {
    LAST_ERROR.try_with(Cell::get).unwrap_or(0)
}

/// `SetLastError`: sets the calling thread's last error code.
#[doc(alias = "SetLastError")]
#[export_name = "SetLastError"]
pub extern "C" fn set_last_error(code: Dword) {
    set(code);
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
}

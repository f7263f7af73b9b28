//! The C interface to socknotify, with the Winsock names, so that code written for
//! `ProcessSocketNotifications` ports to Linux by recompiling against
//! `include/socknotify.h` and linking `-lsocknotify`.
//!
//! # What it provides
//!
//! | C name | Rust core |
//! |---|---|
//! | `CreateIoCompletionPort(INVALID_HANDLE_VALUE, NULL, 0, n)` | [`CompletionPort::builder`]`().concurrency(n)` |
//! | `ProcessSocketNotifications` | [`CompletionPort::process`] |
//! | `GetQueuedCompletionStatusEx` | [`CompletionPort::dequeue`] |
//! | `GetQueuedCompletionStatus` | [`CompletionPort::dequeue`] of one entry |
//! | `PostQueuedCompletionStatus` | [`CompletionPort::post`] |
//! | `CloseHandle` | [`CompletionPort::close`]; lets go of a thread handle |
//! | `GetLastError`, `SetLastError` | a thread-local `DWORD` |
//! | `SocknotifyBlockingBegin`/`End` | [`CompletionPort::blocking`] ([`blocking_begin`]) |
//! | `SOCK_NOTIFY_REGISTRATION`, `OVERLAPPED_ENTRY`, `OVERLAPPED` | [`SockNotifyRegistration`], [`OverlappedEntry`], [`Overlapped`] |
//!
//! and, for the optional compatibility header `include/socknotify/winsock2.h`, the
//! Win32/Winsock basics under `Socknotify` names ([`threads`]): threads as handles, `Sleep`,
//! SRW locks, `closesocket`, `ioctlsocket`, and a `WSAGetLastError` that sees `errno`.
//!
//! Every constant keeps its Windows value ([`consts`], [`codes`]).
//!
//! # Handles
//!
//! A port `HANDLE` is a number, never a pointer: a process-wide table maps handle values
//! to ports. A closed, never-issued or made-up handle is looked up, not
//! dereferenced, and fails with `ERROR_INVALID_HANDLE`. Handle values are not reused.
//!
//! # Safety at the boundary
//!
//! Every function catches panics, so that no unwind crosses into C, and checks what it can
//! of its pointer arguments (NULL, alignment, overlap) before touching them. What it cannot
//! check, that a non-NULL pointer points to as many elements as the count says, is the
//! caller's contract, written in each function's `# Safety`.
//!
//! [`CompletionPort::builder`]: socknotify_core::CompletionPort::builder
//! [`CompletionPort::process`]: socknotify_core::CompletionPort::process
//! [`CompletionPort::dequeue`]: socknotify_core::CompletionPort::dequeue
//! [`CompletionPort::post`]: socknotify_core::CompletionPort::post
//! [`CompletionPort::close`]: socknotify_core::CompletionPort::close
//! [`CompletionPort::blocking`]: socknotify_core::CompletionPort::blocking

#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]
#![warn(rust_2018_idioms, missing_debug_implementations)]

mod blocking;
pub mod codes;
pub mod consts;
mod handles;
mod last_error;
mod notify;
mod port;
pub mod threads;
mod types;

pub use blocking::{blocking_begin, blocking_end};
pub use last_error::{errno_to_winsock, get_last_error, set_last_error, wsa_get_last_error};
pub use notify::process_socket_notifications;
pub use port::{
    close_handle, create_io_completion_port, get_queued_completion_status,
    get_queued_completion_status_ex, post_queued_completion_status, socknotify_close_handle,
    MAX_ENTRIES_PER_CALL,
};
pub use types::{
    Bool, Dword, Handle, Overlapped, OverlappedEntry, OverlappedOffset, OverlappedOffsets,
    SockNotifyRegistration, Socket, FALSE, INVALID_HANDLE_VALUE, TRUE,
};

use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs `f`, turning a panic into `on_panic` (and `ERROR_INTERNAL_ERROR` as the thread's
/// last error) so that no unwind crosses into C.
fn guard<T>(on_panic: T, f: impl FnOnce() -> T) -> T {
    // The core leaves its state consistent before anything that can panic (its locks are
    // taken with `unwrap_or_else(into_inner)`), so going on after a panic is sound.
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(value) => value,
        Err(payload) => {
            // Dropping the payload could itself panic; leak it instead.
            std::mem::forget(payload);
            last_error::set(codes::ERROR_INTERNAL_ERROR);
            on_panic
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_the_failure_value_and_internal_error() {
        last_error::set(0);
        let got = guard(7, || -> i32 { panic!("deliberate, to test the FFI guard") });
        assert_eq!(got, 7);
        assert_eq!(get_last_error(), codes::ERROR_INTERNAL_ERROR);
        assert_eq!(guard(7, || 3), 3);
    }
}

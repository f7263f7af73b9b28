//! The C types: Windows typedefs as Linux spells them, and the two structures.
//!
//! `include/socknotify.h` declares the same layouts; `tests/header.rs` compiles a C file
//! that checks every `sizeof` and `offsetof` against the values Rust computes here.

use std::ffi::c_void;

/// `SOCKET`: a file descriptor (`int`) on Linux.
pub type Socket = libc::c_int;
/// `DWORD`: 32 bits, as on Windows.
pub type Dword = u32;
/// `BOOL`: an `int`, as on Windows.
pub type Bool = libc::c_int;
/// `HANDLE`: an opaque pointer-sized value. Port handles are numbers looked up in a
/// process-wide table, never dereferenced.
pub type Handle = *mut c_void;

/// `TRUE`.
pub const TRUE: Bool = 1;
/// `FALSE`.
pub const FALSE: Bool = 0;
/// `INVALID_HANDLE_VALUE`: `((HANDLE)(intptr_t)-1)`.
pub const INVALID_HANDLE_VALUE: usize = usize::MAX;

/// `SOCK_NOTIFY_REGISTRATION`: one registration change for `ProcessSocketNotifications`,
/// with room for its result. Field for field the Windows structure.
#[doc(alias = "SOCK_NOTIFY_REGISTRATION")]
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SockNotifyRegistration {
    /// `socket`: the socket's descriptor.
    pub socket: Socket,
    /// `completionKey`: the key its entries carry.
    pub completion_key: *mut c_void,
    /// `eventFilter`: `SOCK_NOTIFY_REGISTER_EVENT_*` bits.
    pub event_filter: u16,
    /// `operation`: one `SOCK_NOTIFY_OP_*` value.
    pub operation: u8,
    /// `triggerFlags`: `SOCK_NOTIFY_TRIGGER_*` bits.
    pub trigger_flags: u8,
    /// `registrationResult`: written by `ProcessSocketNotifications`; `ERROR_SUCCESS` or a
    /// Win32 error code.
    pub registration_result: Dword,
}

/// `OVERLAPPED_ENTRY`: one dequeued completion entry. Field for field the Windows
/// structure.
#[doc(alias = "OVERLAPPED_ENTRY")]
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct OverlappedEntry {
    /// `lpCompletionKey`: the registration's or the poster's key.
    pub completion_key: usize,
    /// `lpOverlapped`: NULL for a socket notification; what was posted otherwise.
    pub overlapped: *mut c_void,
    /// `Internal`: always 0 here.
    pub internal: usize,
    /// `dwNumberOfBytesTransferred`: the `SOCK_NOTIFY_EVENT_*` bits of a notification;
    /// what was posted otherwise.
    pub bytes_transferred: Dword,
}

impl OverlappedEntry {
    /// The C form of a core entry.
    pub(crate) fn from_entry(entry: socknotify_core::CompletionEntry) -> Self {
        OverlappedEntry {
            completion_key: entry.key,
            // An integer the caller posted, handed back as it came: never dereferenced.
            overlapped: entry.overlapped as *mut c_void,
            internal: 0,
            bytes_transferred: entry.bytes,
        }
    }
}

//! The C types: Windows typedefs as Linux spells them, and the structures.
//!
//! `include/socknotify.h` declares the same layouts; `tests/header.rs` compiles a C file
//! that checks every `sizeof` and `offsetof` against the values Rust computes here.

use std::ffi::c_void;
use std::os::fd::RawFd;

/// `SOCKET`: `UINT_PTR`, pointer-width and unsigned, as on Windows. A POSIX descriptor
/// converts to it and back without loss; `INVALID_SOCKET` is `(SOCKET)~0`, which is what
/// `(SOCKET)-1` (a failed `socket()` or `accept()`) becomes.
pub type Socket = usize;
/// `DWORD`: 32 bits, as on Windows.
pub type Dword = u32;
/// `BOOL`: an `int`, as on Windows.
pub type Bool = libc::c_int;
/// `HANDLE`: an opaque pointer-sized value. Handles are numbers looked up in a
/// process-wide table, never dereferenced.
pub type Handle = *mut c_void;

/// `TRUE`.
pub const TRUE: Bool = 1;
/// `FALSE`.
pub const FALSE: Bool = 0;
/// `INVALID_HANDLE_VALUE`: `((HANDLE)(LONG_PTR)-1)`.
pub const INVALID_HANDLE_VALUE: usize = usize::MAX;

/// The descriptor a `SOCKET` names: values that do not fit a descriptor (`INVALID_SOCKET`
/// included) become -1, which the core rejects as a bad descriptor.
pub(crate) fn descriptor(socket: Socket) -> RawFd {
    RawFd::try_from(socket).unwrap_or(-1)
}

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
    /// Winsock/Win32 error code.
    pub registration_result: Dword,
}

/// `OVERLAPPED_ENTRY` (`struct _OVERLAPPED_ENTRY`): one dequeued completion entry. Field for
/// field the Windows structure.
#[doc(alias = "OVERLAPPED_ENTRY")]
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct OverlappedEntry {
    /// `lpCompletionKey`: the registration's or the poster's key.
    pub completion_key: usize,
    /// `lpOverlapped`: NULL for a socket notification; what was posted otherwise.
    pub overlapped: *mut Overlapped,
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
            overlapped: entry.overlapped as *mut Overlapped,
            internal: 0,
            bytes_transferred: entry.bytes,
        }
    }
}

/// `OVERLAPPED` (`struct _OVERLAPPED`), with the Windows layout. This library never reads
/// or writes one: `lpOverlapped` values are carried through as numbers.
#[doc(alias = "OVERLAPPED")]
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Overlapped {
    /// `Internal`.
    pub internal: usize,
    /// `InternalHigh`.
    pub internal_high: usize,
    /// The anonymous union of `Offset`/`OffsetHigh` and `Pointer`.
    pub offset: OverlappedOffset,
    /// `hEvent`.
    pub h_event: Handle,
}

impl std::fmt::Debug for Overlapped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Overlapped")
            .field("internal", &self.internal)
            .field("internal_high", &self.internal_high)
            .field("h_event", &self.h_event)
            .finish_non_exhaustive()
    }
}

/// The union inside `OVERLAPPED`.
#[repr(C)]
#[derive(Clone, Copy)]
pub union OverlappedOffset {
    /// `Offset` and `OffsetHigh`.
    pub offsets: OverlappedOffsets,
    /// `Pointer`.
    pub pointer: *mut c_void,
}

impl std::fmt::Debug for OverlappedOffset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OverlappedOffset { .. }")
    }
}

/// `Offset` and `OffsetHigh` of `OVERLAPPED`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct OverlappedOffsets {
    /// `Offset`.
    pub offset: Dword,
    /// `OffsetHigh`.
    pub offset_high: Dword,
}

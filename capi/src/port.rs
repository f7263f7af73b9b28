//! The I/O completion port calls: `CreateIoCompletionPort`, `CloseHandle`,
//! `PostQueuedCompletionStatus`, `GetQueuedCompletionStatusEx`.
//!
//! Each returns `BOOL` (or a `HANDLE`, NULL on failure) and sets the thread's last error
//! when it fails, as on Windows.

use std::time::Duration;

use socknotify_core::{CompletionEntry, CompletionPort};

use crate::codes::{self, *};
use crate::consts::INFINITE;
use crate::types::{
    Bool, Dword, Handle, Overlapped, OverlappedEntry, FALSE, INVALID_HANDLE_VALUE, TRUE,
};
use crate::{guard, handles, last_error};

/// The most entries one `GetQueuedCompletionStatusEx` or `ProcessSocketNotifications` call
/// returns, whatever room the caller gives. Returning fewer than there is room for is
/// always allowed; the cap bounds the memory a call allocates.
pub const MAX_ENTRIES_PER_CALL: usize = 4096;

/// A `DWORD` millisecond timeout as the core takes it: `INFINITE` is forever.
pub(crate) fn timeout(ms: Dword) -> Option<Duration> {
    (ms != INFINITE).then(|| Duration::from_millis(u64::from(ms)))
}

/// Whether `ptr` is non-NULL and aligned for a `T`.
pub(crate) fn usable<T>(ptr: *const T) -> bool {
    !ptr.is_null() && ptr.is_aligned()
}

/// Fails with `code`: sets the last error and returns `value`.
fn fail<T>(code: Dword, value: T) -> T {
    last_error::set(code);
    value
}

/// `CreateIoCompletionPort`, for creating a port only:
/// `CreateIoCompletionPort(INVALID_HANDLE_VALUE, NULL, 0, NumberOfConcurrentThreads)`.
/// A concurrency of 0 means the number of CPUs. `CompletionKey` is ignored, as on Windows
/// when a port is created.
///
/// Returns the new port's handle, or NULL with the last error set:
/// `ERROR_NOT_SUPPORTED` for associating a file handle (anything other than
/// `INVALID_HANDLE_VALUE` as `FileHandle`), `ERROR_INVALID_PARAMETER` for
/// `INVALID_HANDLE_VALUE` with an `ExistingCompletionPort`, or the error that prevented
/// creating the port (`ERROR_TOO_MANY_OPEN_FILES`, ...).
#[doc(alias = "CreateIoCompletionPort")]
#[export_name = "CreateIoCompletionPort"]
pub extern "C" fn create_io_completion_port(
    file_handle: Handle,
    existing_completion_port: Handle,
    _completion_key: usize,
    number_of_concurrent_threads: Dword,
) -> Handle {
    guard(std::ptr::null_mut(), || {
        if file_handle as usize != INVALID_HANDLE_VALUE {
            // Only sockets, through ProcessSocketNotifications, feed a port here.
            return fail(ERROR_NOT_SUPPORTED, std::ptr::null_mut());
        }
        if !existing_completion_port.is_null() {
            return fail(ERROR_INVALID_PARAMETER, std::ptr::null_mut());
        }
        let threads = usize::try_from(number_of_concurrent_threads).unwrap_or(usize::MAX);
        match CompletionPort::builder().concurrency(threads).build() {
            Ok(port) => match handles::insert(handles::Object::Port(std::sync::Arc::new(port))) {
                // A number, not an address: it is only ever looked up in the table.
                Some(handle) => handle as Handle,
                None => fail(ERROR_NO_SYSTEM_RESOURCES, std::ptr::null_mut()),
            },
            Err(e) => fail(codes::code(&e), std::ptr::null_mut()),
        }
    })
}

/// `CloseHandle` for the handles this library issues. A port is closed: threads waiting on
/// it wake with `ERROR_ABANDONED_WAIT_0`; registrations end without REMOVE entries; queued
/// entries are dropped. A thread handle (`SocknotifyCreateThread`) is let go: the thread
/// runs on. Either way every later call with the handle fails with `ERROR_INVALID_HANDLE`.
///
/// Returns `TRUE`, or `FALSE` with `ERROR_INVALID_HANDLE` if `handle` is not a live handle
/// of this library (closing twice included).
#[doc(alias = "CloseHandle")]
#[export_name = "CloseHandle"]
pub extern "C" fn close_handle(handle: Handle) -> Bool {
    guard(FALSE, || match handles::remove(handle as usize) {
        Some(handles::Object::Port(port)) => {
            port.close();
            TRUE
        }
        Some(handles::Object::Thread(_)) => TRUE,
        None => fail(ERROR_INVALID_HANDLE, FALSE),
    })
}

/// `SocknotifyCloseHandle`: [`close_handle`] under a name no program defines itself, for a
/// program with a `CloseHandle` of its own (which then takes the place of this library's)
/// to pass this library's handles on to.
#[export_name = "SocknotifyCloseHandle"]
pub extern "C" fn socknotify_close_handle(handle: Handle) -> Bool {
    close_handle(handle)
}

/// `PostQueuedCompletionStatus`: queues an entry whose `dwNumberOfBytesTransferred`,
/// `lpCompletionKey` and `lpOverlapped` come out of a dequeue unchanged. `lpOverlapped` is
/// carried as a value and never dereferenced.
///
/// Returns `TRUE`, or `FALSE` with `ERROR_INVALID_HANDLE` if `completion_port` is not a
/// live port handle.
#[doc(alias = "PostQueuedCompletionStatus")]
#[export_name = "PostQueuedCompletionStatus"]
pub extern "C" fn post_queued_completion_status(
    completion_port: Handle,
    number_of_bytes_transferred: Dword,
    completion_key: usize,
    overlapped: *mut Overlapped,
) -> Bool {
    guard(FALSE, || {
        let Some(port) = handles::port(completion_port as usize) else {
            return fail(ERROR_INVALID_HANDLE, FALSE);
        };
        let entry = CompletionEntry::new(
            completion_key,
            number_of_bytes_transferred,
            overlapped as usize,
        );
        match port.post(entry) {
            Ok(()) => TRUE,
            Err(e) => fail(codes::code(&e), FALSE),
        }
    })
}

/// `GetQueuedCompletionStatusEx`: dequeues up to `count` entries (at most
/// [`MAX_ENTRIES_PER_CALL`]), waiting up to `milliseconds` (`INFINITE`: forever) for the
/// first. `alertable` is accepted and ignored: there are no APCs on Linux.
///
/// Returns `TRUE` with `*num_entries_removed` set, or `FALSE` (and `*num_entries_removed`
/// = 0 when that pointer is usable) with the last error set: `WAIT_TIMEOUT` when nothing
/// came within the timeout, `ERROR_ABANDONED_WAIT_0` when the port was closed while
/// waiting, `ERROR_INVALID_HANDLE` for a handle that is not a live port,
/// `ERROR_INVALID_PARAMETER` for a NULL or misaligned `entries` or `num_entries_removed`
/// or a `count` of 0.
///
/// # Safety
///
/// Unless NULL, `entries` must be valid for writes of `count` consecutive
/// `OVERLAPPED_ENTRY`s and `num_entries_removed` valid for a write of one `ULONG`, for the
/// whole call.
#[doc(alias = "GetQueuedCompletionStatusEx")]
#[export_name = "GetQueuedCompletionStatusEx"]
pub unsafe extern "C" fn get_queued_completion_status_ex(
    completion_port: Handle,
    entries: *mut OverlappedEntry,
    count: u32,
    num_entries_removed: *mut u32,
    milliseconds: Dword,
    _alertable: Bool,
) -> Bool {
    guard(FALSE, || {
        let removed = |n: u32| {
            if usable(num_entries_removed) {
                // SAFETY: checked non-NULL and aligned just now; the caller guarantees it
                // is valid for one write (`# Safety`).
                unsafe { num_entries_removed.write(n) };
            }
        };
        let Some(port) = handles::port(completion_port as usize) else {
            removed(0);
            return fail(ERROR_INVALID_HANDLE, FALSE);
        };
        if count == 0 || !usable(entries) || !usable(num_entries_removed) {
            removed(0);
            return fail(ERROR_INVALID_PARAMETER, FALSE);
        }
        let room =
            usize::try_from(count).map_or(MAX_ENTRIES_PER_CALL, |c| c.min(MAX_ENTRIES_PER_CALL));
        let mut got = vec![CompletionEntry::default(); room];
        match port.dequeue(&mut got, timeout(milliseconds)) {
            Ok(0) => {
                removed(0);
                fail(WAIT_TIMEOUT, FALSE)
            }
            Ok(n) => {
                // SAFETY: `entries` is non-NULL and aligned (checked above) and valid for
                // `count >= room >= n` writes (`# Safety`).
                unsafe { write_entries(entries, &got[..n]) };
                removed(n as u32);
                TRUE
            }
            Err(e) => {
                removed(0);
                let code = if socknotify_core::is_port_closed(&e) {
                    ERROR_ABANDONED_WAIT_0
                } else {
                    codes::code(&e)
                };
                fail(code, FALSE)
            }
        }
    })
}

/// `GetQueuedCompletionStatus`: dequeues one entry, waiting up to `milliseconds`
/// (`INFINITE`: forever). Returns `TRUE` with the entry's three values written, or `FALSE`
/// with `*overlapped` set to NULL and the last error set: `WAIT_TIMEOUT`,
/// `ERROR_ABANDONED_WAIT_0` (the port was closed while waiting), `ERROR_INVALID_HANDLE`,
/// `ERROR_INVALID_PARAMETER` (a NULL or misaligned pointer).
///
/// # Safety
///
/// Unless NULL, `bytes`, `key` and `overlapped` must each be valid for a write of one
/// value, for the whole call.
#[doc(alias = "GetQueuedCompletionStatus")]
#[export_name = "GetQueuedCompletionStatus"]
pub unsafe extern "C" fn get_queued_completion_status(
    completion_port: Handle,
    bytes: *mut Dword,
    key: *mut usize,
    overlapped: *mut *mut Overlapped,
    milliseconds: Dword,
) -> Bool {
    guard(FALSE, || {
        if usable(overlapped) {
            // SAFETY: checked non-NULL and aligned; valid for one write (`# Safety`).
            unsafe { overlapped.write(std::ptr::null_mut()) };
        }
        let Some(port) = handles::port(completion_port as usize) else {
            return fail(ERROR_INVALID_HANDLE, FALSE);
        };
        if !usable(bytes) || !usable(key) || !usable(overlapped) {
            return fail(ERROR_INVALID_PARAMETER, FALSE);
        }
        let mut got = [CompletionEntry::default()];
        match port.dequeue(&mut got, timeout(milliseconds)) {
            Ok(0) => fail(WAIT_TIMEOUT, FALSE),
            Ok(_) => {
                let entry = OverlappedEntry::from_entry(got[0]);
                // SAFETY: all three checked non-NULL and aligned above; valid for one
                // write each (`# Safety`).
                unsafe {
                    bytes.write(entry.bytes_transferred);
                    key.write(entry.completion_key);
                    overlapped.write(entry.overlapped);
                }
                TRUE
            }
            Err(e) if socknotify_core::is_port_closed(&e) => fail(ERROR_ABANDONED_WAIT_0, FALSE),
            Err(e) => fail(codes::code(&e), FALSE),
        }
    })
}

/// Writes `got` to the C array `out` in the `OVERLAPPED_ENTRY` layout.
///
/// # Safety
///
/// `out` must be aligned and valid for `got.len()` consecutive writes.
pub(crate) unsafe fn write_entries(out: *mut OverlappedEntry, got: &[CompletionEntry]) {
    for (i, entry) in got.iter().enumerate() {
        // SAFETY: `i < got.len()`, so `out + i` is inside the array the caller vouches for.
        unsafe { out.add(i).write(OverlappedEntry::from_entry(*entry)) };
    }
}

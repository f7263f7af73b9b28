//! `ProcessSocketNotifications`: apply a batch of `SOCK_NOTIFY_REGISTRATION`s, then dequeue.

use std::ptr::addr_of;
use std::ptr::addr_of_mut;

use socknotify_core::{CompletionEntry, Registration};

use crate::codes::{self, *};
use crate::port::{timeout, usable, write_entries, MAX_ENTRIES_PER_CALL};
use crate::types::{descriptor, Dword, Handle, OverlappedEntry, SockNotifyRegistration};
use crate::{guard, handles};

/// `ProcessSocketNotifications`: applies `registration_count` registration changes in
/// order, then, if `completion_count` is not 0, dequeues up to `completion_count` entries
/// (at most [`MAX_ENTRIES_PER_CALL`]) as `GetQueuedCompletionStatusEx` does, waiting up to
/// `timeout_ms` (`INFINITE`: forever) for the first.
///
/// Returns a Win32 code (the thread's last error is left alone):
///
/// - `ERROR_SUCCESS`, or `WAIT_TIMEOUT` when `completion_count` is not 0 and nothing was
///   dequeued within the timeout. In both cases each registration's `registrationResult`
///   holds its own outcome (`ERROR_SUCCESS`, `WSAEINVAL`, `WSAEBADF`, `WSAENOTSOCK`,
///   `ERROR_NOT_FOUND`, `ERROR_ALREADY_EXISTS`, ...; see [`codes`]) and
///   `*received_entry_count` the number of entries written.
/// - `ERROR_INVALID_HANDLE`: `completion_port` is not a live port handle. Nothing was done.
/// - `ERROR_INVALID_PARAMETER`: a NULL or misaligned array with a non-zero count, a NULL
///   `received_entry_count` with a non-zero `completion_count`, or overlapping arrays.
///   Nothing was done.
/// - `ERROR_NOT_ENOUGH_MEMORY`: no memory to copy the registrations. Nothing was done.
/// - `ERROR_ABANDONED_WAIT_0`: the port was closed during the call (each
///   `registrationResult` says `ERROR_INVALID_HANDLE` if it was closed before the
///   registrations were applied).
///
/// Unlike Windows, which asks for NULL arrays and a zero timeout when the counts are 0,
/// this accepts any pointer and timeout there and ignores them; a non-NULL
/// `received_entry_count` then receives 0.
///
/// # Safety
///
/// Unless NULL, `registration_infos` must be valid for reads and writes of
/// `registration_count` consecutive `SOCK_NOTIFY_REGISTRATION`s, `completion_port_entries`
/// valid for writes of `completion_count` consecutive `OVERLAPPED_ENTRY`s, and
/// `received_entry_count` valid for a write of one `UINT32`, for the whole call. The
/// `registrationResult` fields need not be initialised.
#[doc(alias = "ProcessSocketNotifications")]
#[export_name = "ProcessSocketNotifications"]
pub unsafe extern "C" fn process_socket_notifications(
    completion_port: Handle,
    registration_count: u32,
    registration_infos: *mut SockNotifyRegistration,
    timeout_ms: u32,
    completion_count: u32,
    completion_port_entries: *mut OverlappedEntry,
    received_entry_count: *mut u32,
) -> Dword {
    guard(ERROR_INTERNAL_ERROR, || {
        let Some(port) = handles::port(completion_port as usize) else {
            return ERROR_INVALID_HANDLE;
        };
        let registrations = registration_count as usize;
        let wanted = completion_count as usize;
        if registrations > 0 && !usable(registration_infos) {
            return ERROR_INVALID_PARAMETER;
        }
        if wanted > 0 && !(usable(completion_port_entries) && usable(received_entry_count)) {
            return ERROR_INVALID_PARAMETER;
        }
        if !received_entry_count.is_null() && !received_entry_count.is_aligned() {
            return ERROR_INVALID_PARAMETER;
        }
        if registrations > 0
            && wanted > 0
            && overlap(
                registration_infos,
                registrations,
                completion_port_entries,
                wanted,
            )
        {
            return ERROR_INVALID_PARAMETER;
        }

        let mut batch = Vec::new();
        if batch.try_reserve_exact(registrations).is_err() {
            return ERROR_NOT_ENOUGH_MEMORY;
        }
        for i in 0..registrations {
            // SAFETY: `registration_infos` is non-NULL and aligned (checked above) and
            // valid for `registrations` elements (`# Safety`); `i` is in range.
            batch.push(unsafe { decode(registration_infos.add(i)) });
        }
        let mut got = vec![CompletionEntry::default(); wanted.min(MAX_ENTRIES_PER_CALL)];

        let result = port.process(&mut batch, &mut got, timeout(timeout_ms));

        for (i, registration) in batch.iter().enumerate() {
            let code = match registration.result() {
                Ok(()) => ERROR_SUCCESS,
                Err(e) => codes::registration_code(&e),
            };
            // SAFETY: as for `decode` above; only the output field is written, through a
            // raw place, so no reference to caller memory is made.
            unsafe { addr_of_mut!((*registration_infos.add(i)).registration_result).write(code) };
        }
        let (received, code) = match result {
            Ok(n) => {
                // SAFETY: `n <= got.len() <= wanted`; when `n > 0`, `wanted > 0`, so the
                // entries array was checked usable above and is valid for `wanted` writes.
                unsafe { write_entries(completion_port_entries, &got[..n]) };
                let code = if wanted > 0 && n == 0 {
                    WAIT_TIMEOUT
                } else {
                    ERROR_SUCCESS
                };
                (n, code)
            }
            Err(e) if socknotify_core::is_port_closed(&e) => (0, ERROR_ABANDONED_WAIT_0),
            Err(e) => (0, codes::code(&e)),
        };
        if !received_entry_count.is_null() {
            // SAFETY: non-NULL and aligned (checked above), valid for one write
            // (`# Safety`). `received <= MAX_ENTRIES_PER_CALL` fits.
            unsafe { received_entry_count.write(received as u32) };
        }
        code
    })
}

/// Reads the input fields of a `SOCK_NOTIFY_REGISTRATION` into a core registration, which
/// checks them itself when it is processed.
///
/// # Safety
///
/// `p` must be aligned and valid for reads of one `SOCK_NOTIFY_REGISTRATION` whose input
/// fields are initialised (`registrationResult` is not read).
unsafe fn decode(p: *const SockNotifyRegistration) -> Registration {
    // SAFETY: the caller vouches for `p`; each field is read through a raw place, so an
    // uninitialised `registrationResult` or padding is never read.
    unsafe {
        Registration::from_bits(
            descriptor(addr_of!((*p).socket).read()),
            addr_of!((*p).completion_key).read() as usize,
            addr_of!((*p).event_filter).read(),
            addr_of!((*p).operation).read(),
            addr_of!((*p).trigger_flags).read(),
        )
    }
}

/// Whether the arrays `[a, a + a_len)` and `[b, b + b_len)` share any byte.
fn overlap<A, B>(a: *const A, a_len: usize, b: *const B, b_len: usize) -> bool {
    let a_start = a as usize;
    let b_start = b as usize;
    let a_end = a_start.saturating_add(a_len.saturating_mul(size_of::<A>()));
    let b_end = b_start.saturating_add(b_len.saturating_mul(size_of::<B>()));
    a_start < b_end && b_start < a_end
}

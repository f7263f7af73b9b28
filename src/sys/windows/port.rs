//! The I/O completion port a selector owns: create, associate, post, dequeue.

use std::io;
use std::ptr;
use std::time::{Duration, Instant};

use crate::sys::{RawEvent, Readiness, WAKE_TOKEN};

use windows_sys::Win32::Foundation::{CloseHandle, HANDLE, INVALID_HANDLE_VALUE, WAIT_TIMEOUT};
use windows_sys::Win32::System::IO::{
    CreateIoCompletionPort, GetQueuedCompletionStatusEx, PostQueuedCompletionStatus,
    OVERLAPPED_ENTRY,
};

/// An owned completion port handle.
#[derive(Debug)]
pub(super) struct Port {
    handle: HANDLE,
}

// SAFETY: `handle` is a completion port owned by this value; every completion-port call
// may be made from any thread, by many threads at once.
unsafe impl Send for Port {}
// SAFETY: as for Send; the methods take `&self` and the kernel orders concurrent calls.
unsafe impl Sync for Port {}

impl Port {
    /// A new port that releases at most `threads` waiters at once (0: one per CPU).
    pub(super) fn new(threads: u32) -> io::Result<Port> {
        // SAFETY: INVALID_HANDLE_VALUE with no existing port asks for a new port.
        let handle =
            unsafe { CreateIoCompletionPort(INVALID_HANDLE_VALUE, ptr::null_mut(), 0, threads) };
        if handle.is_null() {
            return Err(io::Error::last_os_error());
        }
        Ok(Port { handle })
    }

    /// The port's handle, for calls that take it (`ProcessSocketNotifications`).
    pub(super) fn handle(&self) -> HANDLE {
        self.handle
    }

    /// Makes `file`'s overlapped completions arrive on this port under `key`.
    pub(super) fn associate(&self, file: HANDLE, key: usize) -> io::Result<()> {
        // SAFETY: `file` is an open handle the caller owns; `self.handle` is open.
        let rc = unsafe { CreateIoCompletionPort(file, self.handle, key, 0) };
        if rc.is_null() {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Queues an entry `{ key, bytes: 0, overlapped: null }`.
    /// A waiter dequeued `wakes` wake entries posted under `key`: it keeps one and posts the
    /// others again, so that each wake releases one waiter. Appends the wake reports it
    /// keeps to `out` (all of them where the port refuses a post, rather than lose any).
    pub(super) fn pass_wakes_on(&self, key: usize, wakes: usize, out: &mut Vec<RawEvent>) {
        if wakes == 0 {
            return;
        }
        let kept = (1..wakes).filter(|_| self.post(key).is_err()).count();
        let wake = RawEvent {
            token: WAKE_TOKEN,
            readiness: Readiness::default(),
        };
        out.extend(std::iter::repeat_n(wake, 1 + kept));
    }

    pub(super) fn post(&self, key: usize) -> io::Result<()> {
        // SAFETY: a null OVERLAPPED is allowed; the entry carries no memory.
        if unsafe { PostQueuedCompletionStatus(self.handle, 0, key, ptr::null()) } == 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// A selector's `wait`: dequeues batches until one yields a report or a wake, or
    /// `timeout` (None: forever) passes; appends at most `max` reports to `out`. Each entry
    /// not posted under `wake_key` goes to `report`, which appends what it means to `out`
    /// (nothing for an entry that carries no report: then the wait goes on). Wakes are
    /// passed on as [`Port::pass_wakes_on`] says.
    pub(super) fn wait(
        &self,
        out: &mut Vec<RawEvent>,
        max: usize,
        timeout: Option<Duration>,
        wake_key: usize,
        mut report: impl FnMut(&OVERLAPPED_ENTRY, &mut Vec<RawEvent>),
    ) -> io::Result<()> {
        if max == 0 {
            return Ok(());
        }
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let mut entries = entries::<BATCH>();
        let entries = &mut entries[..max.min(BATCH)];
        let mut remaining = timeout;
        loop {
            let n = self.get_many(entries, remaining)?;
            if n == 0 {
                return Ok(());
            }
            let before = out.len();
            let mut wakes = 0usize;
            for entry in &entries[..n] {
                if entry.lpCompletionKey == wake_key {
                    wakes += 1;
                } else {
                    report(entry, out);
                }
            }
            self.pass_wakes_on(wake_key, wakes, out);
            if out.len() > before {
                return Ok(());
            }
            // Only entries that carried nothing (cancelled or superseded polls): wait on.
            remaining = deadline
                .map(|d| d.saturating_duration_since(Instant::now()))
                .or(timeout);
        }
    }

    /// Dequeues up to `entries.len()` entries, waiting up to `timeout` (None: forever).
    /// Returns how many were dequeued, 0 on timeout.
    pub(super) fn get_many(
        &self,
        entries: &mut [OVERLAPPED_ENTRY],
        timeout: Option<Duration>,
    ) -> io::Result<usize> {
        let mut removed = 0u32;
        let len = u32::try_from(entries.len()).unwrap_or(u32::MAX);
        // SAFETY: `entries` is valid for writes of `len` entries; `removed` is a live local;
        // the call is not alertable, so no APC runs inside it.
        let ok = unsafe {
            GetQueuedCompletionStatusEx(
                self.handle,
                entries.as_mut_ptr(),
                len,
                &mut removed,
                timeout_ms(timeout),
                0,
            )
        };
        if ok == 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() == Some(WAIT_TIMEOUT as i32) {
                return Ok(0);
            }
            return Err(err);
        }
        Ok(removed as usize)
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        // SAFETY: the handle is owned by `self` and closed only here.
        unsafe { CloseHandle(self.handle) };
    }
}

/// Entries dequeued per `GetQueuedCompletionStatusEx`.
pub(super) const BATCH: usize = 64;

/// `GetQueuedCompletionStatusEx`'s "wait forever".
const INFINITE: u32 = u32::MAX;

/// A timeout in whole milliseconds, rounded up so that a wait never ends early;
/// `None` and anything past `u32::MAX - 1` ms wait forever.
fn timeout_ms(timeout: Option<Duration>) -> u32 {
    let Some(t) = timeout else { return INFINITE };
    let ms = t.as_millis() + u128::from(t.subsec_nanos() % 1_000_000 != 0);
    u32::try_from(ms)
        .ok()
        .filter(|&ms| ms != INFINITE)
        .unwrap_or(INFINITE)
}

/// An empty entry buffer for [`Port::get_many`].
pub(super) fn entries<const N: usize>() -> [OVERLAPPED_ENTRY; N] {
    [OVERLAPPED_ENTRY {
        lpCompletionKey: 0,
        lpOverlapped: ptr::null_mut(),
        Internal: 0,
        dwNumberOfBytesTransferred: 0,
    }; N]
}

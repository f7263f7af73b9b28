//! The process-wide table from `HANDLE` values to the objects this library owns: ports,
//! and the threads of the compatibility header's `CreateThread`.
//!
//! C code holds a number, not a pointer: an object is found by looking its handle up, so a
//! closed, never-issued or made-up handle is rejected (`ERROR_INVALID_HANDLE`) instead of
//! being dereferenced. Each object sits behind an [`Arc`]: `CloseHandle` takes it out of
//! the table, while threads still inside a call on it keep it alive until they return.
//!
//! Handle values are `(n << 4) | 0x5` for `n = 1, 2, ...`: never NULL, never
//! `INVALID_HANDLE_VALUE`, never reused while the process lives, and never a valid pointer
//! (the low bits make them misaligned and small ones fall in the unmapped first page).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use socknotify_core::CompletionPort;

use crate::threads::Thread;

/// What a handle names.
#[derive(Clone, Debug)]
pub(crate) enum Object {
    /// A completion port (`CreateIoCompletionPort`).
    Port(Arc<CompletionPort>),
    /// A thread (`SocknotifyCreateThread`).
    Thread(Arc<Thread>),
}

static OBJECTS: RwLock<BTreeMap<usize, Object>> = RwLock::new(BTreeMap::new());
static NEXT: AtomicUsize = AtomicUsize::new(1);

const TAG_BITS: u32 = 4;
const TAG: usize = 0x5;

fn read() -> RwLockReadGuard<'static, BTreeMap<usize, Object>> {
    // Every critical section is one map operation, which leaves the map consistent.
    OBJECTS.read().unwrap_or_else(|e| e.into_inner())
}

fn write() -> RwLockWriteGuard<'static, BTreeMap<usize, Object>> {
    OBJECTS.write().unwrap_or_else(|e| e.into_inner())
}

/// Enters `object` in the table and returns its new handle value, or `None` once the
/// handle values are used up (2^60 handles on 64-bit targets).
pub(crate) fn insert(object: Object) -> Option<usize> {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    if n == 0 || n > usize::MAX >> TAG_BITS {
        // Leave the counter exhausted rather than let it wrap into reuse.
        NEXT.store(usize::MAX, Ordering::Relaxed);
        return None;
    }
    let handle = (n << TAG_BITS) | TAG;
    write().insert(handle, object);
    Some(handle)
}

/// The port a handle names, if it is a live port handle.
pub(crate) fn port(handle: usize) -> Option<Arc<CompletionPort>> {
    match read().get(&handle) {
        Some(Object::Port(port)) => Some(Arc::clone(port)),
        _ => None,
    }
}

/// The thread a handle names, if it is a live thread handle.
pub(crate) fn thread(handle: usize) -> Option<Arc<Thread>> {
    match read().get(&handle) {
        Some(Object::Thread(thread)) => Some(Arc::clone(thread)),
        _ => None,
    }
}

/// Takes an object out of the table; later lookups of `handle` fail.
pub(crate) fn remove(handle: usize) -> Option<Object> {
    write().remove(&handle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_unique_tagged_and_forgotten_on_remove() {
        let new = || Object::Port(Arc::new(CompletionPort::new().unwrap()));
        let a = insert(new()).unwrap();
        let b = insert(new()).unwrap();
        assert_ne!(a, b);
        for h in [a, b] {
            assert_eq!(h & 0xf, TAG);
            assert_ne!(h, 0);
            assert_ne!(h, usize::MAX);
        }
        assert!(port(a).is_some());
        assert!(thread(a).is_none());
        assert!(remove(a).is_some());
        assert!(port(a).is_none());
        assert!(remove(a).is_none());
        assert!(port(0).is_none());
        assert!(port(usize::MAX).is_none());
        assert!(remove(b).is_some());
    }
}

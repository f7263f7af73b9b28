//! The process-wide table from `HANDLE` values to ports.
//!
//! C code holds a number, not a pointer: a port is found by looking its handle up, so a
//! closed, never-issued or made-up handle is rejected (`ERROR_INVALID_HANDLE`) instead of
//! being dereferenced. Each port sits behind an [`Arc`]: `CloseHandle` takes it out of the
//! table and closes it, while threads still inside a call on it keep it alive until they
//! return.
//!
//! Handle values are `(n << 4) | 0x5` for `n = 1, 2, ...`: never NULL, never
//! `INVALID_HANDLE_VALUE`, never reused while the process lives, and never a valid pointer
//! (the low bits make them misaligned and small ones fall in the unmapped first page).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use socknotify_core::CompletionPort;

static PORTS: RwLock<BTreeMap<usize, Arc<CompletionPort>>> = RwLock::new(BTreeMap::new());
static NEXT: AtomicUsize = AtomicUsize::new(1);

const TAG_BITS: u32 = 4;
const TAG: usize = 0x5;

fn read() -> RwLockReadGuard<'static, BTreeMap<usize, Arc<CompletionPort>>> {
    // Every critical section is one map operation, which leaves the map consistent.
    PORTS.read().unwrap_or_else(|e| e.into_inner())
}

fn write() -> RwLockWriteGuard<'static, BTreeMap<usize, Arc<CompletionPort>>> {
    PORTS.write().unwrap_or_else(|e| e.into_inner())
}

/// Enters `port` in the table and returns its new handle value, or `None` once the handle
/// values are used up (2^60 ports on 64-bit targets).
pub(crate) fn insert(port: CompletionPort) -> Option<usize> {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    if n == 0 || n > usize::MAX >> TAG_BITS {
        // Leave the counter exhausted rather than let it wrap into reuse.
        NEXT.store(usize::MAX, Ordering::Relaxed);
        return None;
    }
    let handle = (n << TAG_BITS) | TAG;
    write().insert(handle, Arc::new(port));
    Some(handle)
}

/// The port a handle names, if it is live.
pub(crate) fn get(handle: usize) -> Option<Arc<CompletionPort>> {
    read().get(&handle).cloned()
}

/// Takes a port out of the table; later lookups of `handle` fail.
pub(crate) fn remove(handle: usize) -> Option<Arc<CompletionPort>> {
    write().remove(&handle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_unique_tagged_and_forgotten_on_remove() {
        let a = insert(CompletionPort::new().unwrap()).unwrap();
        let b = insert(CompletionPort::new().unwrap()).unwrap();
        assert_ne!(a, b);
        for h in [a, b] {
            assert_eq!(h & 0xf, TAG);
            assert_ne!(h, 0);
            assert_ne!(h, usize::MAX);
        }
        assert!(get(a).is_some());
        assert!(remove(a).is_some());
        assert!(get(a).is_none());
        assert!(remove(a).is_none());
        assert!(get(0).is_none());
        assert!(get(usize::MAX).is_none());
        assert!(remove(b).is_some());
    }
}

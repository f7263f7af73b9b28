//! The synchronisation primitives of the concurrency gate, from `std` or, under
//! `cfg(loom)`, from loom, so that the gate's model tests explore every interleaving
//! (tokio's `src/loom/` does the same).

#[cfg(loom)]
pub(crate) use loom::{
    sync::atomic::{AtomicBool, AtomicU64, AtomicUsize},
    sync::{Arc, Condvar, Mutex, MutexGuard},
    thread_local,
};

#[cfg(not(loom))]
pub(crate) use std::{
    sync::atomic::{AtomicBool, AtomicU64, AtomicUsize},
    sync::{Arc, Condvar, Mutex, MutexGuard},
    thread_local,
};

/// Under loom, what the kernel does between a thread that changes its interest and a
/// thread that then harvests the report: a system call orders what it was told before
/// what it reports (its locks are full barriers), which loom cannot see through a real
/// epoll instance. Each call into the selector is one read-modify-write of this word.
#[cfg(loom)]
pub(crate) fn kernel_edge() {
    loom::lazy_static! {
        static ref KERNEL: AtomicUsize = AtomicUsize::new(0);
    }
    KERNEL.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
}

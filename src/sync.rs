//! The synchronisation primitives of the concurrency gate, from `std` or, under
//! `cfg(loom)`, from loom, so that the gate's model tests explore every interleaving
//! (tokio's `src/loom/` does the same).

#[cfg(loom)]
pub(crate) use loom::{
    sync::atomic::{AtomicBool, AtomicU64},
    sync::{Arc, Condvar, Mutex, MutexGuard},
    thread_local,
};

#[cfg(not(loom))]
pub(crate) use std::{
    sync::atomic::{AtomicBool, AtomicU64},
    sync::{Arc, Condvar, Mutex, MutexGuard},
    thread_local,
};

//! The process-wide table of which port owns which socket (rule 6: one port per socket),
//! and the process's fork generation.
//!
//! A socket is its kernel identity ([`sys::socket_identity`](crate::sys::socket_identity),
//! the same for every duplicate of the socket and never reused), so the table is keyed by
//! it and holds the owning port and the registration's slot there. It is consulted when a
//! registration is created or ends, and when a socket is named through a descriptor other
//! than the one it was registered with; never on re-arm or dequeue. A closed socket's entry
//! cannot be mistaken for a new socket's, since identities are not reused (on Windows,
//! where they are handle values, the backend adds an epoch bumped at each close it sees);
//! it goes when its port notices the close or closes.
//!
//! # fork
//!
//! A child of a multi-threaded process inherits this table's lock in whatever state another
//! thread left it. So the table lives behind a pointer tagged with the fork generation: a
//! `pthread_atfork` child handler bumps the generation (nothing else: it must be
//! async-signal-safe), and the child's first use builds a fresh table. Ports built before
//! the fork belong to the old generation; `port.rs` refuses to use them in the child.
//! Windows has no `fork`: the generation stays 0 there.

use std::collections::HashMap;
use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, Ordering};
#[cfg(unix)]
use std::sync::Once;
use std::sync::{Mutex, MutexGuard};

/// A port's identity in the table; never 0.
pub(crate) type PortId = u32;

/// Where a socket is registered: its port and slot there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Owner {
    pub(crate) port: PortId,
    pub(crate) slot: u32,
}

struct Table {
    fork: u64,
    owners: Mutex<HashMap<u64, Owner>>,
}

static TABLE: AtomicPtr<Table> = AtomicPtr::new(std::ptr::null_mut());
static FORK: AtomicU64 = AtomicU64::new(0);
static NEXT_PORT: AtomicU32 = AtomicU32::new(1);
#[cfg(unix)]
static AT_FORK: Once = Once::new();

#[cfg(unix)]
extern "C" fn forked_child() {
    FORK.fetch_add(1, Ordering::Relaxed);
}

/// The number of `fork`s between the process's start and this process: a port made under
/// another generation was inherited across `fork`.
pub(crate) fn fork_generation() -> u64 {
    FORK.load(Ordering::Relaxed)
}

fn table() -> &'static Table {
    let fork = fork_generation();
    let current = TABLE.load(Ordering::Acquire);
    // SAFETY: tables are leaked, never freed, so any non-null pointer stays valid.
    if let Some(table) = unsafe { current.as_ref() } {
        if table.fork == fork {
            return table;
        }
    }
    let fresh = Box::into_raw(Box::new(Table {
        fork,
        owners: Mutex::new(HashMap::new()),
    }));
    match TABLE.compare_exchange(current, fresh, Ordering::AcqRel, Ordering::Acquire) {
        // The old table is leaked on purpose: a thread of the parent may hold its lock.
        // SAFETY: `fresh` was just leaked from a Box and is never freed.
        Ok(_) => unsafe { &*fresh },
        Err(winner) => {
            // SAFETY: `fresh` was never shared; `winner` is a leaked table, never freed.
            unsafe {
                drop(Box::from_raw(fresh));
                &*winner
            }
        }
    }
}

fn lock() -> MutexGuard<'static, HashMap<u64, Owner>> {
    // Every update is one insert or remove: consistent even if a holder panicked.
    table().owners.lock().unwrap_or_else(|e| e.into_inner())
}

/// A new port's identity; installs the fork handler on first use.
pub(crate) fn new_port() -> PortId {
    #[cfg(unix)]
    AT_FORK.call_once(|| {
        // SAFETY: the handler only bumps an atomic, which is async-signal-safe.
        let rc = unsafe { libc::pthread_atfork(None, None, Some(forked_child)) };
        debug_assert_eq!(rc, 0, "pthread_atfork failed");
    });
    let id = NEXT_PORT.fetch_add(1, Ordering::Relaxed);
    assert!(id != 0, "more than 2^32 completion ports created");
    id
}

/// Claims the socket `identity` for `owner`. Returns the current owner instead if there is
/// one (this port's own registration of a duplicate, or another port's).
pub(crate) fn claim(identity: u64, owner: Owner) -> Result<(), Owner> {
    let mut owners = lock();
    match owners.get(&identity) {
        Some(&current) => Err(current),
        None => {
            owners.insert(identity, owner);
            Ok(())
        }
    }
}

/// Who owns the socket `identity`, if anyone.
pub(crate) fn owner(identity: u64) -> Option<Owner> {
    lock().get(&identity).copied()
}

/// Gives up `owner`'s claim on `identity`, if it still has it.
pub(crate) fn release(identity: u64, owner: Owner) {
    let mut owners = lock();
    if owners.get(&identity) == Some(&owner) {
        owners.remove(&identity);
    }
}

/// Gives up every claim of `port`, one per identity given.
pub(crate) fn release_all(port: PortId, identities: impl Iterator<Item = u64>) {
    let mut owners = lock();
    for identity in identities {
        if owners.get(&identity).is_some_and(|o| o.port == port) {
            owners.remove(&identity);
        }
    }
}

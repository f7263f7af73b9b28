//! The process-wide table of which port owns which socket (rule 6: one port per socket).
//!
//! One `u32` port id per descriptor number, so the table costs 4 bytes per descriptor
//! number up to the highest one registered. It is consulted when a registration is created
//! or ends, never on re-arm or dequeue.
//!
//! A closed socket leaves its claim behind (the kernel tells nobody about a close). When a
//! new socket reuses the number and another port claims it, the old owner's selector is
//! probed: if it no longer watches the file the number names now, the claim was stale and
//! passes over. Each port's selector descriptor is kept here and removed (under this lock)
//! before the port closes it, so a probe never touches a closed or reused descriptor.

use std::collections::HashMap;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};

use crate::error::Failure;
use crate::sys;

/// A port's identity in the table; never 0.
pub(crate) type PortId = u32;

#[derive(Default)]
struct Owners {
    /// Descriptor number → owning port (0: none).
    by_fd: Vec<PortId>,
    /// Port → its selector's descriptor, for probes.
    ports: HashMap<PortId, RawFd>,
}

static OWNERS: Mutex<Option<Owners>> = Mutex::new(None);
static NEXT_PORT: AtomicU32 = AtomicU32::new(1);

fn lock() -> MutexGuard<'static, Option<Owners>> {
    // The table stays consistent even if a holder panicked: every update is one store.
    OWNERS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Enters a new port whose selector is `selector_fd`; returns its id.
pub(crate) fn register_port(selector_fd: RawFd) -> PortId {
    let id = NEXT_PORT.fetch_add(1, Ordering::Relaxed);
    assert!(id != 0, "more than 2^32 completion ports created");
    lock()
        .get_or_insert_with(Owners::default)
        .ports
        .insert(id, selector_fd);
    id
}

/// Forgets a port and every claim it still has. After this returns, no probe uses the
/// port's selector descriptor, so the port may close it.
pub(crate) fn unregister_port(port: PortId, fds: impl Iterator<Item = RawFd>) {
    let mut guard = lock();
    let owners = guard.get_or_insert_with(Owners::default);
    owners.ports.remove(&port);
    for fd in fds {
        owners.release(fd, port);
    }
}

/// Claims `fd` for `port`.
///
/// # Errors
/// [`Failure::OtherPort`] if another live port watches the socket `fd` names.
pub(crate) fn claim(fd: RawFd, port: PortId) -> Result<(), Failure> {
    let mut guard = lock();
    let owners = guard.get_or_insert_with(Owners::default);
    let index = fd as usize;
    if owners.by_fd.len() <= index {
        owners.by_fd.resize(index + 1, 0);
    }
    let current = owners.by_fd[index];
    if current != 0 && current != port {
        if let Some(&selector_fd) = owners.ports.get(&current) {
            match sys::probe(selector_fd, fd) {
                Ok(true) => return Err(Failure::OtherPort(fd)),
                Ok(false) => {}
                Err(e) => return Err(Failure::from_errno(fd, &e)),
            }
        }
    }
    owners.by_fd[index] = port;
    Ok(())
}

/// Gives up `port`'s claim on `fd`, if it still has it.
pub(crate) fn release(fd: RawFd, port: PortId) {
    if let Some(owners) = lock().as_mut() {
        owners.release(fd, port);
    }
}

impl Owners {
    fn release(&mut self, fd: RawFd, port: PortId) {
        if let Some(owner) = self.by_fd.get_mut(fd as usize) {
            if *owner == port {
                *owner = 0;
            }
        }
    }
}

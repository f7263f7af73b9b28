//! Which socket a handle names.
//!
//! A Windows socket is a kernel object; a handle is one reference to it, and a duplicate
//! (`DuplicateHandle`, `WSADuplicateSocket`, `try_clone`) is a second handle with a value
//! of its own. `SIO_BASE_HANDLE` only strips layered providers: for a duplicate it answers
//! the duplicate's own value. User mode cannot name the object itself, so the identity of a
//! socket is the base handle under which it was first *registered* in this process: a
//! handle whose value is not registered, and whose object has more than one handle
//! (`NtQueryObject`), is compared (`CompareObjectHandles`) with the registered ones.
//! Sockets with a single handle, the common case, cost one `NtQueryObject` and no scan.
//!
//! Handle values are reused as soon as they are closed, so a value alone would make a new
//! socket the old one's successor in the owners table (rule 7). Each value therefore has an
//! *epoch*, bumped when a selector sees a registered socket under it closed
//! (`AFD_POLL_LOCAL_CLOSE`, or a poll refused for an invalid handle): the identity the
//! registry sees is the value with its epoch in the high bits ([`of`]).

use std::collections::{BTreeMap, HashMap};
use std::mem::size_of;
use std::os::windows::io::RawSocket;
use std::ptr;
use std::sync::{Mutex, MutexGuard};

use windows_sys::Wdk::Foundation::{NtQueryObject, ObjectBasicInformation};
use windows_sys::Win32::Foundation::{CompareObjectHandles, HANDLE, STATUS_SUCCESS};
use windows_sys::Win32::System::WindowsProgramming::PUBLIC_OBJECT_BASIC_INFORMATION;

/// Base handles of the sockets registered on any selector of this process, with how many
/// registrations hold each (one, unless the registry above misbehaves).
static REGISTERED: Mutex<BTreeMap<RawSocket, usize>> = Mutex::new(BTreeMap::new());

/// Epochs of handle values under which a registered socket was seen closed.
static EPOCHS: Mutex<Option<HashMap<RawSocket, u32>>> = Mutex::new(None);

fn epochs() -> MutexGuard<'static, Option<HashMap<RawSocket, u32>>> {
    EPOCHS.lock().unwrap_or_else(|e| e.into_inner())
}

/// The registry's identity for the socket whose canonical base handle is `canonical`.
/// Handle values fit in 32 bits (Windows keeps them so for 32-bit interoperability).
pub(super) fn of(canonical: RawSocket) -> u64 {
    let epoch = epochs()
        .as_ref()
        .and_then(|e| e.get(&canonical).copied())
        .unwrap_or(0);
    (u64::from(epoch) << 32) | (canonical & 0xffff_ffff)
}

/// Records that the registered socket with identity `canonical` was closed: the next
/// socket under that value is another socket.
pub(super) fn closed(canonical: RawSocket) {
    let mut epochs = epochs();
    let epoch = epochs
        .get_or_insert_with(HashMap::new)
        .entry(canonical)
        .or_insert(0);
    *epoch = epoch.wrapping_add(1);
}

fn registered() -> MutexGuard<'static, BTreeMap<RawSocket, usize>> {
    REGISTERED.lock().unwrap_or_else(|e| e.into_inner())
}

/// The identity of the socket whose base handle is `base`: a registered base handle
/// naming the same object, else `base` itself.
pub(super) fn canonical(base: RawSocket) -> RawSocket {
    let registered = registered();
    if registered.contains_key(&base) || !has_other_handles(base) {
        return base;
    }
    registered
        .keys()
        .copied()
        .find(|&id| same_object(id, base))
        .unwrap_or(base)
}

/// Records that a selector now watches the socket with this identity.
pub(super) fn hold(identity: RawSocket) {
    *registered().entry(identity).or_insert(0) += 1;
}

/// Records that a selector no longer watches it (deleted, closed, or the selector gone).
pub(super) fn release(identity: RawSocket) {
    let mut registered = registered();
    if let Some(count) = registered.get_mut(&identity) {
        *count -= 1;
        if *count == 0 {
            registered.remove(&identity);
        }
    }
}

/// Whether the object behind `handle` has another handle than this one (or cannot tell).
fn has_other_handles(handle: RawSocket) -> bool {
    let mut info = PUBLIC_OBJECT_BASIC_INFORMATION {
        Attributes: 0,
        GrantedAccess: 0,
        HandleCount: 0,
        PointerCount: 0,
        Reserved: [0; 10],
    };
    // SAFETY: `info` is a live local of the size passed, the layout ObjectBasicInformation
    // fills in; a bad handle only makes the call fail.
    let status = unsafe {
        NtQueryObject(
            handle as HANDLE,
            ObjectBasicInformation,
            (&mut info as *mut PUBLIC_OBJECT_BASIC_INFORMATION).cast(),
            size_of::<PUBLIC_OBJECT_BASIC_INFORMATION>() as u32,
            ptr::null_mut(),
        )
    };
    status != STATUS_SUCCESS || info.HandleCount > 1
}

/// Whether two handles name the same kernel object.
fn same_object(a: RawSocket, b: RawSocket) -> bool {
    // SAFETY: CompareObjectHandles only reads the handle table; invalid handles compare
    // unequal.
    unsafe { CompareObjectHandles(a as HANDLE, b as HANDLE) != 0 }
}

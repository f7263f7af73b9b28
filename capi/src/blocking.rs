//! `SocknotifyBlockingBegin` / `SocknotifyBlockingEnd`: the C form of
//! [`CompletionPort::blocking`], for a released thread that is about to block on something
//! else (a lock, `Sleep`, a blocking `recv`): its slot is given back from Begin to End, so
//! that another thread can take the next entry in its place.
//!
//! The Rust API is a closure: the slot is given back while the closure runs. A pair of C
//! calls must leave the closure open between them, so Begin runs `blocking` on a small
//! stack of its own (`makecontext`) with a closure that switches back to the caller
//! (`swapcontext`) and stays suspended there; End switches into it again, the closure
//! returns, `blocking` takes the slot back, and End returns. So the pair behaves exactly
//! as the closure would around the code between them: it nests (each Begin opens one more
//! closure, each End closes the innermost), and it does nothing for a thread that holds no
//! released slot on the port, because that is what `blocking` does.
//!
//! A thread that exits with pairs still open has them closed for it, innermost first, when
//! its thread-locals are destroyed.

use std::cell::{Cell, RefCell};
use std::mem::MaybeUninit;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use socknotify_core::CompletionPort;

use crate::codes::{
    ERROR_INTERNAL_ERROR, ERROR_INVALID_HANDLE, ERROR_INVALID_PARAMETER, ERROR_NOT_ENOUGH_MEMORY,
};
use crate::types::{Bool, Handle, FALSE, TRUE};
use crate::{guard, handles, last_error};

/// The stack `blocking` and the suspended closure run on: the gate's bookkeeping only.
const STACK_SIZE: usize = 128 * 1024;

/// One open Begin.
struct Block {
    handle: usize,
    port: Arc<CompletionPort>,
    /// Where Begin (then End) waits while the closure's context runs.
    caller: libc::ucontext_t,
    /// The closure's context, suspended inside `blocking`.
    inner: libc::ucontext_t,
    stack: Vec<u8>,
    finished: bool,
    /// `blocking` panicked (the panic was caught on the block's stack).
    panicked: bool,
}

/// The innermost open pairs of this thread, the last one innermost. Boxed so that the
/// contexts do not move while suspended.
// The boxes are the point: a suspended context must not move when the list grows.
#[allow(clippy::vec_box)]
struct Open(RefCell<Vec<Box<Block>>>);

impl Drop for Open {
    fn drop(&mut self) {
        // The thread is exiting with pairs open: close them, innermost first, so that each
        // `blocking` takes its slot back (and the thread's exit then gives it up once).
        while let Some(mut block) = self.0.get_mut().pop() {
            // SAFETY: as in `end`.
            unsafe { resume(&mut block) };
        }
    }
}

thread_local! {
    static OPEN: Open = const { Open(RefCell::new(Vec::new())) };
    /// The block the trampoline is to run, set just before switching to it.
    static STARTING: Cell<*mut Block> = const { Cell::new(std::ptr::null_mut()) };
}

/// The first function of a block's own stack: runs `blocking` around a closure that
/// suspends itself, and when resumed and done, switches back for good.
extern "C" fn trampoline() {
    let block = STARTING.with(Cell::get);
    // SAFETY: Begin set STARTING to its live, boxed block right before switching here, and
    // keeps it alive until End has switched back out for the last time. Only one context of
    // this thread runs at a time, so the accesses through `block` do not overlap.
    unsafe {
        // Through the block, not a clone: nothing may be left to drop on this stack. A
        // panic must not unwind off this stack (there is nothing above the trampoline).
        let ran = catch_unwind(AssertUnwindSafe(|| {
            (*block).port.blocking(|| {
                // Back to Begin, with the slot given back; End resumes here.
                libc::swapcontext(&mut (*block).inner, &(*block).caller);
            })
        }));
        if let Err(payload) = ran {
            std::mem::forget(payload);
            (*block).panicked = true;
        }
        (*block).finished = true;
        // Back to End for good: this context is never resumed, its stack freed by End.
        libc::setcontext(&(*block).caller);
    }
    // setcontext does not return on success; if it could not, there is no way back.
    std::process::abort();
}

/// Switches into a suspended block until its closure has returned.
///
/// # Safety
///
/// `block` must have been started by `begin` on this thread and not finished.
unsafe fn resume(block: &mut Block) {
    let target: *const libc::ucontext_t = &block.inner;
    // SAFETY: `inner` holds the closure's context, suspended in its swapcontext; it runs
    // until the trampoline's setcontext returns here through `caller`.
    unsafe { libc::swapcontext(&mut block.caller, target) };
    debug_assert!(block.finished);
}

/// `SocknotifyBlockingBegin`: the calling thread is about to block on something other than
/// `port`; until the matching [`SocknotifyBlockingEnd`](blocking_end), its released slot on
/// `port` (if it holds one) is given back, so another waiting thread can be released in its
/// place. A thread that holds no slot on `port` is not affected (the pair is then a no-op).
/// Pairs nest; each End closes the innermost Begin. Inside a pair the thread may use any
/// port, this one included.
///
/// Returns `TRUE`, or `FALSE` with the last error `ERROR_INVALID_HANDLE` (not a live port
/// handle) or `ERROR_NOT_ENOUGH_MEMORY`.
#[export_name = "SocknotifyBlockingBegin"]
pub extern "C" fn blocking_begin(port: Handle) -> Bool {
    guard(FALSE, || {
        let handle = port as usize;
        let Some(port) = handles::port(handle) else {
            last_error::set(ERROR_INVALID_HANDLE);
            return FALSE;
        };
        let mut stack = Vec::new();
        if stack.try_reserve_exact(STACK_SIZE).is_err() {
            last_error::set(ERROR_NOT_ENOUGH_MEMORY);
            return FALSE;
        }
        stack.resize(STACK_SIZE, 0u8);
        // SAFETY: an all-zero ucontext_t is a valid value to be filled in by getcontext.
        let zeroed = || unsafe { MaybeUninit::<libc::ucontext_t>::zeroed().assume_init() };
        let mut block = Box::new(Block {
            handle,
            port,
            caller: zeroed(),
            inner: zeroed(),
            stack,
            finished: false,
            panicked: false,
        });
        // SAFETY: getcontext fills in `inner`, which makecontext then points at the
        // trampoline on the block's own stack; `uc_link` is NULL because the trampoline
        // never returns. The stack lives in the box as long as the context can run.
        unsafe {
            if libc::getcontext(&mut block.inner) != 0 {
                last_error::set(ERROR_NOT_ENOUGH_MEMORY);
                return FALSE;
            }
            block.inner.uc_stack.ss_sp = block.stack.as_mut_ptr().cast();
            block.inner.uc_stack.ss_size = block.stack.len();
            block.inner.uc_link = std::ptr::null_mut();
            libc::makecontext(&mut block.inner, trampoline, 0);
        }
        let raw: *mut Block = &mut *block;
        STARTING.with(|s| s.set(raw));
        // SAFETY: runs the trampoline until its closure switches back here; `block` stays
        // boxed (and so in place) from now until End has finished it.
        unsafe { libc::swapcontext(&mut (*raw).caller, &(*raw).inner) };
        STARTING.with(|s| s.set(std::ptr::null_mut()));
        if block.finished {
            // `blocking` panicked before it ran the closure: nothing is open.
            last_error::set(ERROR_INTERNAL_ERROR);
            return FALSE;
        }
        OPEN.with(|open| open.0.borrow_mut().push(block));
        TRUE
    })
}

/// `SocknotifyBlockingEnd`: closes the innermost [`SocknotifyBlockingBegin`](blocking_begin)
/// of the calling thread, which must have been for `port`: the thread counts as released on
/// `port` again (if it was), even if that briefly exceeds the port's concurrency, as on
/// Windows when a thread returns from blocking.
///
/// Returns `TRUE`, or `FALSE` with the last error `ERROR_INVALID_PARAMETER` when the
/// thread has no open Begin or its innermost one was for another handle (nothing is closed
/// then).
#[export_name = "SocknotifyBlockingEnd"]
pub extern "C" fn blocking_end(port: Handle) -> Bool {
    guard(FALSE, || {
        let handle = port as usize;
        let block = OPEN.with(|open| {
            let mut open = open.0.borrow_mut();
            match open.last() {
                Some(b) if b.handle == handle => open.pop(),
                _ => None,
            }
        });
        let Some(mut block) = block else {
            last_error::set(ERROR_INVALID_PARAMETER);
            return FALSE;
        };
        // SAFETY: `block` was started by Begin on this thread and is not finished (it was
        // still on the open list).
        unsafe { resume(&mut block) };
        if block.panicked {
            last_error::set(ERROR_INTERNAL_ERROR);
            return FALSE;
        }
        TRUE
    })
}

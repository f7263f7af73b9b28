//! The Win32 basics behind the compatibility header (`include/socknotify/winsock2.h`):
//! threads as handles (`CreateThread`, `WaitForSingleObject`, `WaitForMultipleObjects`,
//! `GetExitCodeThread`, closed by `CloseHandle`), `Sleep`, `GetCurrentThreadId`, slim
//! reader/writer locks, and the Winsock calls that are not POSIX ones (`closesocket`,
//! `ioctlsocket`).
//!
//! Everything is exported with a `Socknotify` prefix, so that the library never takes a
//! Windows name a program may define itself; the compatibility header maps the Windows
//! names to these with `static inline` functions.

use std::ffi::c_void;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::codes::*;
use crate::consts::{INFINITE, MAXIMUM_WAIT_OBJECTS, STILL_ACTIVE, WAIT_FAILED, WAIT_OBJECT_0};
use crate::types::{descriptor, Bool, Dword, Handle, Socket, FALSE, TRUE};
use crate::{guard, handles, last_error};

/// A thread started by [`create_thread`]: its exit code once it has returned.
#[derive(Debug, Default)]
pub(crate) struct Thread {
    exit_code: Mutex<Option<Dword>>,
}

impl Thread {
    fn exit_code(&self) -> Option<Dword> {
        *self.exit_code.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Every thread exit bumps this and wakes every waiter, which then checks its handles.
static EXITS: Mutex<u64> = Mutex::new(0);
static EXITED: Condvar = Condvar::new();

fn exits() -> MutexGuard<'static, u64> {
    EXITS.lock().unwrap_or_else(|e| e.into_inner())
}

/// `LPTHREAD_START_ROUTINE`.
pub type ThreadStartRoutine = extern "C" fn(*mut c_void) -> Dword;

/// `CREATE_SUSPENDED`: not supported.
const CREATE_SUSPENDED: Dword = 0x4;

/// A parameter pointer carried to the new thread; the C caller vouches for it.
struct SendPtr(*mut c_void);
// SAFETY: the pointer is only handed to the C start routine, as `CreateThread` does; what it
// points to is the caller's business, as on Windows.
unsafe impl Send for SendPtr {}

/// `SocknotifyCreateThread` (`CreateThread`): starts `start(parameter)` on a new thread and
/// returns a handle to it, which `WaitForSingleObject` waits on and `CloseHandle` closes
/// (the thread runs on). `security` is ignored; `stack_size` 0 means the default; the only
/// flag refused is `CREATE_SUSPENDED` (`ERROR_NOT_SUPPORTED`). `thread_id`, unless NULL,
/// receives the thread's id, as `GetCurrentThreadId` gives it.
///
/// Returns NULL with the last error set on failure (`ERROR_INVALID_PARAMETER` for a NULL
/// routine, `ERROR_NOT_ENOUGH_MEMORY` when the thread cannot be started).
///
/// # Safety
///
/// `thread_id`, unless NULL, must be valid for a write of one `DWORD`.
#[export_name = "SocknotifyCreateThread"]
pub unsafe extern "C" fn create_thread(
    _security: *mut c_void,
    stack_size: usize,
    start: Option<ThreadStartRoutine>,
    parameter: *mut c_void,
    flags: Dword,
    thread_id: *mut Dword,
) -> Handle {
    guard(std::ptr::null_mut(), || {
        let Some(start) = start else {
            return fail(ERROR_INVALID_PARAMETER, std::ptr::null_mut());
        };
        if flags & CREATE_SUSPENDED != 0 {
            return fail(ERROR_NOT_SUPPORTED, std::ptr::null_mut());
        }
        let thread = Arc::new(Thread::default());
        let Some(handle) = handles::insert(handles::Object::Thread(Arc::clone(&thread))) else {
            return fail(ERROR_NO_SYSTEM_RESOURCES, std::ptr::null_mut());
        };
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let parameter = SendPtr(parameter);
        let mut builder = std::thread::Builder::new();
        if stack_size > 0 {
            builder = builder.stack_size(stack_size.max(64 * 1024));
        }
        let spawned = builder.spawn(move || {
            let _ = tid_tx.send(current_thread_id());
            let parameter = parameter;
            let code = start(parameter.0);
            *thread.exit_code.lock().unwrap_or_else(|e| e.into_inner()) = Some(code);
            let mut generation = exits();
            *generation = generation.wrapping_add(1);
            EXITED.notify_all();
        });
        if spawned.is_err() {
            handles::remove(handle);
            return fail(ERROR_NOT_ENOUGH_MEMORY, std::ptr::null_mut());
        }
        let tid = tid_rx.recv().unwrap_or(0);
        if !thread_id.is_null() && thread_id.is_aligned() {
            // SAFETY: non-NULL and aligned; valid for one write (`# Safety`).
            unsafe { thread_id.write(tid) };
        }
        handle as Handle
    })
}

fn fail<T>(code: Dword, value: T) -> T {
    last_error::set(code);
    value
}

fn current_thread_id() -> Dword {
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() };
    Dword::try_from(tid).unwrap_or(0)
}

/// `SocknotifyGetCurrentThreadId` (`GetCurrentThreadId`): the kernel's id of the calling
/// thread.
#[export_name = "SocknotifyGetCurrentThreadId"]
pub extern "C" fn get_current_thread_id() -> Dword {
    current_thread_id()
}

/// `SocknotifyWaitForMultipleObjects` (`WaitForMultipleObjects`) for thread handles: waits
/// up to `milliseconds` (`INFINITE`: forever) until every thread (`wait_all`) or one of
/// them has returned.
///
/// Returns `WAIT_OBJECT_0` (with `wait_all`) or `WAIT_OBJECT_0 + i` for the first returned
/// thread `i`, `WAIT_TIMEOUT`, or `WAIT_FAILED` with the last error set:
/// `ERROR_INVALID_PARAMETER` (count 0 or above `MAXIMUM_WAIT_OBJECTS`, NULL array),
/// `ERROR_INVALID_HANDLE` (a handle that is not a live thread handle: ports cannot be
/// waited on here).
///
/// # Safety
///
/// Unless NULL, `handles` must be valid for reads of `count` handles.
#[export_name = "SocknotifyWaitForMultipleObjects"]
pub unsafe extern "C" fn wait_for_multiple_objects(
    count: Dword,
    handles: *const Handle,
    wait_all: Bool,
    milliseconds: Dword,
) -> Dword {
    guard(WAIT_FAILED, || {
        if count == 0 || count > MAXIMUM_WAIT_OBJECTS || handles.is_null() || !handles.is_aligned()
        {
            return fail(ERROR_INVALID_PARAMETER, WAIT_FAILED);
        }
        let mut threads = Vec::with_capacity(count as usize);
        for i in 0..count as usize {
            // SAFETY: non-NULL, aligned, valid for `count` reads (`# Safety`); `i < count`.
            let handle = unsafe { handles.add(i).read() };
            match handles::thread(handle as usize) {
                Some(thread) => threads.push(thread),
                None => return fail(ERROR_INVALID_HANDLE, WAIT_FAILED),
            }
        }
        let deadline = (milliseconds != INFINITE)
            .then(|| Instant::now() + Duration::from_millis(u64::from(milliseconds)));
        let mut generation = exits();
        loop {
            let done: Vec<bool> = threads.iter().map(|t| t.exit_code().is_some()).collect();
            if wait_all != FALSE && done.iter().all(|d| *d) {
                return WAIT_OBJECT_0;
            }
            if wait_all == FALSE {
                if let Some(i) = done.iter().position(|d| *d) {
                    return WAIT_OBJECT_0 + i as Dword;
                }
            }
            generation = match deadline {
                None => EXITED.wait(generation).unwrap_or_else(|e| e.into_inner()),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return WAIT_TIMEOUT;
                    }
                    EXITED
                        .wait_timeout(generation, deadline - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
        }
    })
}

/// `SocknotifyWaitForSingleObject` (`WaitForSingleObject`) for a thread handle: as
/// [`wait_for_multiple_objects`] with one handle.
#[export_name = "SocknotifyWaitForSingleObject"]
pub extern "C" fn wait_for_single_object(handle: Handle, milliseconds: Dword) -> Dword {
    let handles = [handle];
    // SAFETY: `handles` holds one handle.
    unsafe { wait_for_multiple_objects(1, handles.as_ptr(), TRUE, milliseconds) }
}

/// `SocknotifyGetExitCodeThread` (`GetExitCodeThread`): the thread's return value, or
/// `STILL_ACTIVE` (259) while it runs. `FALSE` with `ERROR_INVALID_HANDLE` for a handle
/// that is not a live thread handle, `ERROR_INVALID_PARAMETER` for a NULL `exit_code`.
///
/// # Safety
///
/// Unless NULL, `exit_code` must be valid for a write of one `DWORD`.
#[export_name = "SocknotifyGetExitCodeThread"]
pub unsafe extern "C" fn get_exit_code_thread(handle: Handle, exit_code: *mut Dword) -> Bool {
    guard(FALSE, || {
        let Some(thread) = handles::thread(handle as usize) else {
            return fail(ERROR_INVALID_HANDLE, FALSE);
        };
        if exit_code.is_null() || !exit_code.is_aligned() {
            return fail(ERROR_INVALID_PARAMETER, FALSE);
        }
        // SAFETY: non-NULL and aligned; valid for one write (`# Safety`).
        unsafe { exit_code.write(thread.exit_code().unwrap_or(STILL_ACTIVE)) };
        TRUE
    })
}

/// `SocknotifySleep` (`Sleep`): sleeps `milliseconds` (`INFINITE`: forever; 0 yields).
#[export_name = "SocknotifySleep"]
pub extern "C" fn sleep(milliseconds: Dword) {
    guard((), || match milliseconds {
        0 => std::thread::yield_now(),
        INFINITE => loop {
            std::thread::park();
        },
        ms => std::thread::sleep(Duration::from_millis(u64::from(ms))),
    })
}

/// `SocknotifyCloseSocket` (`closesocket`): closes the socket's descriptor. Returns 0, or
/// `SOCKET_ERROR` (-1) with the last error `WSAENOTSOCK` for a descriptor that is not open
/// (`INVALID_SOCKET` included), `WSAEINTR`, ... A registration of the socket ends
/// silently, as on Windows (SPEC rule 7).
#[export_name = "SocknotifyCloseSocket"]
pub extern "C" fn close_socket(socket: Socket) -> libc::c_int {
    guard(-1, || {
        let fd = descriptor(socket);
        if fd < 0 {
            return fail(WSAENOTSOCK, -1);
        }
        // SAFETY: closing a descriptor the caller names; an invalid one fails with EBADF.
        if unsafe { libc::close(fd) } == 0 {
            return 0;
        }
        let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        let code = if errno == libc::EBADF {
            WSAENOTSOCK
        } else {
            errno_to_winsock(errno)
        };
        fail(code, -1)
    })
}

/// `SocknotifyIoctlSocket` (`ioctlsocket`): `FIONBIO` (non-zero `*argp`: non-blocking) and
/// `FIONREAD` (bytes waiting), with the Linux values of those names. Returns 0, or
/// `SOCKET_ERROR` with the last error set (`WSAEFAULT` for a NULL `argp`, `WSAEINVAL` for
/// another command, the Winsock code of the failure otherwise).
///
/// # Safety
///
/// Unless NULL, `argp` must be valid for a read and a write of one `u_long`.
#[export_name = "SocknotifyIoctlSocket"]
pub unsafe extern "C" fn ioctl_socket(
    socket: Socket,
    command: libc::c_long,
    argp: *mut libc::c_ulong,
) -> libc::c_int {
    guard(-1, || {
        if argp.is_null() || !argp.is_aligned() {
            return fail(WSAEFAULT, -1);
        }
        let fd = descriptor(socket);
        if fd < 0 {
            return fail(WSAENOTSOCK, -1);
        }
        let os_fail = || {
            let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
            let code = if errno == libc::EBADF {
                WSAENOTSOCK
            } else {
                errno_to_winsock(errno)
            };
            fail(code, -1)
        };
        if command as libc::c_ulong == libc::FIONBIO as libc::c_ulong {
            // SAFETY: non-NULL, aligned, valid for a read (`# Safety`).
            let on = unsafe { argp.read() } != 0;
            // SAFETY: F_GETFL/F_SETFL on a descriptor; an invalid one fails with EBADF.
            let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
            if flags < 0 {
                return os_fail();
            }
            let flags = if on {
                flags | libc::O_NONBLOCK
            } else {
                flags & !libc::O_NONBLOCK
            };
            // SAFETY: as above.
            if unsafe { libc::fcntl(fd, libc::F_SETFL, flags) } < 0 {
                return os_fail();
            }
            0
        } else if command as libc::c_ulong == libc::FIONREAD as libc::c_ulong {
            let mut waiting: libc::c_int = 0;
            // SAFETY: FIONREAD writes one int, which `waiting` is.
            if unsafe { libc::ioctl(fd, libc::FIONREAD, &mut waiting) } < 0 {
                return os_fail();
            }
            // SAFETY: non-NULL, aligned, valid for a write (`# Safety`).
            unsafe { argp.write(libc::c_ulong::try_from(waiting).unwrap_or(0)) };
            0
        } else {
            fail(WSAEINVAL, -1)
        }
    })
}

/// A slim reader/writer lock: one pointer-sized word, zero when unlocked
/// (`SRWLOCK_INIT`), of which the first 32 bits are a futex: 0 free, 1 held, 2 held with
/// waiters. Shared acquisitions take it exclusively, which is correct (readers exclude each
/// other too) if less concurrent.
fn srw_word<'a>(lock: *mut c_void) -> Option<&'a AtomicU32> {
    if lock.is_null() || !lock.cast::<AtomicU32>().is_aligned() {
        return None;
    }
    // SAFETY: the caller passes an `SRWLOCK` (pointer-sized, pointer-aligned, initialised
    // to 0); its first four bytes are only ever accessed atomically, through here.
    Some(unsafe { &*lock.cast::<AtomicU32>() })
}

fn futex(word: &AtomicU32, op: libc::c_int, value: u32) {
    // SAFETY: FUTEX_WAIT/FUTEX_WAKE on a live, aligned 32-bit word; no timeout pointer.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            op | libc::FUTEX_PRIVATE_FLAG,
            value,
            std::ptr::null::<libc::timespec>(),
        )
    };
}

fn srw_lock(word: &AtomicU32) {
    if word
        .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
        .is_ok()
    {
        return;
    }
    while word.swap(2, Ordering::Acquire) != 0 {
        futex(word, libc::FUTEX_WAIT, 2);
    }
}

fn srw_unlock(word: &AtomicU32) {
    if word.swap(0, Ordering::Release) == 2 {
        futex(word, libc::FUTEX_WAKE, 1);
    }
}

/// `SocknotifyInitializeSRWLock` (`InitializeSRWLock`): sets the lock to unlocked.
#[export_name = "SocknotifyInitializeSRWLock"]
pub extern "C" fn initialize_srw_lock(lock: *mut c_void) {
    if let Some(word) = srw_word(lock) {
        word.store(0, Ordering::Release);
    }
}

/// `SocknotifyAcquireSRWLockExclusive` (`AcquireSRWLockExclusive`, and
/// `AcquireSRWLockShared`): waits until the lock is free and takes it. Not recursive.
#[export_name = "SocknotifyAcquireSRWLockExclusive"]
pub extern "C" fn acquire_srw_lock_exclusive(lock: *mut c_void) {
    if let Some(word) = srw_word(lock) {
        srw_lock(word);
    }
}

/// `SocknotifyReleaseSRWLockExclusive` (`ReleaseSRWLockExclusive`, and
/// `ReleaseSRWLockShared`): frees the lock and wakes one waiter.
#[export_name = "SocknotifyReleaseSRWLockExclusive"]
pub extern "C" fn release_srw_lock_exclusive(lock: *mut c_void) {
    if let Some(word) = srw_word(lock) {
        srw_unlock(word);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    extern "C" fn add_one(p: *mut c_void) -> Dword {
        // SAFETY: the test passes a pointer to an AtomicU32 that outlives the thread.
        let counter = unsafe { &*p.cast::<AtomicU32>() };
        counter.fetch_add(1, Ordering::SeqCst);
        7
    }

    #[test]
    fn threads_run_are_waited_for_and_closed() {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let p = std::ptr::from_ref(&COUNTER).cast_mut().cast();
        // SAFETY: a NULL thread id; `add_one` gets a pointer to a static.
        let h = unsafe {
            create_thread(
                std::ptr::null_mut(),
                0,
                Some(add_one),
                p,
                0,
                std::ptr::null_mut(),
            )
        };
        assert!(!h.is_null());
        assert_eq!(wait_for_single_object(h, 10_000), WAIT_OBJECT_0);
        let mut code = 0;
        // SAFETY: `code` is valid for a write.
        assert_eq!(unsafe { get_exit_code_thread(h, &mut code) }, TRUE);
        assert_eq!(code, 7);
        assert_eq!(COUNTER.load(Ordering::SeqCst), 1);
        assert_eq!(crate::port::close_handle(h), TRUE);
        assert_eq!(wait_for_single_object(h, 0), WAIT_FAILED);
    }

    #[test]
    fn the_srw_lock_excludes() {
        let lock = Box::new(0usize);
        let p = std::ptr::from_ref(&*lock).cast_mut().cast::<c_void>() as usize;
        let count = Arc::new(Mutex::new(0));
        let workers: Vec<_> = (0..4)
            .map(|_| {
                let count = Arc::clone(&count);
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        acquire_srw_lock_exclusive(p as *mut c_void);
                        let mut c = count.try_lock().expect("two holders at once");
                        *c += 1;
                        drop(c);
                        release_srw_lock_exclusive(p as *mut c_void);
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        assert_eq!(*count.lock().unwrap(), 4000);
    }
}

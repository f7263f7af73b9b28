//! The C functions called from Rust, for what needs threads: `CloseHandle` waking waiters
//! with `ERROR_ABANDONED_WAIT_0`, closing a handle while other threads use it, and
//! timeouts.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use socknotify_capi::codes::*;
use socknotify_capi::consts::INFINITE;
use socknotify_capi::{
    close_handle, create_io_completion_port, get_last_error, get_queued_completion_status_ex,
    post_queued_completion_status, process_socket_notifications, Handle, OverlappedEntry, FALSE,
    INVALID_HANDLE_VALUE, TRUE,
};

const LIMIT: Duration = Duration::from_secs(10);

fn new_port(concurrency: u32) -> Handle {
    let port = create_io_completion_port(
        INVALID_HANDLE_VALUE as Handle,
        std::ptr::null_mut(),
        0,
        concurrency,
    );
    assert!(
        !port.is_null(),
        "CreateIoCompletionPort: {}",
        get_last_error()
    );
    port
}

/// A handle value that can cross threads (it is a number, not a pointer).
#[derive(Clone, Copy)]
struct Port(usize);

impl Port {
    fn handle(self) -> Handle {
        self.0 as Handle
    }
}

fn empty_entry() -> OverlappedEntry {
    OverlappedEntry {
        completion_key: 0,
        overlapped: std::ptr::null_mut(),
        internal: 0,
        bytes_transferred: 0,
    }
}

/// Waits until the thread `tid` of this process is asleep (state `S`): blocked in the
/// call it was about to make, since it does nothing else that sleeps.
fn wait_until_asleep(tid: i32) {
    let path = format!("/proc/self/task/{tid}/stat");
    let deadline = Instant::now() + LIMIT;
    loop {
        let stat = std::fs::read_to_string(&path).expect("the waiter's /proc stat");
        // "tid (comm) STATE ...": the state follows the last ')'.
        let state = stat[stat.rfind(')').expect("comm") + 1..].trim_start();
        if state.starts_with('S') {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "thread {tid} never blocked: {stat}"
        );
        std::thread::yield_now();
    }
}

/// Runs `call` on a thread that reports its thread id first, waits until it blocks, closes
/// `port`, and returns what `call` returned.
fn close_under<T: Send + 'static>(port: Port, call: impl FnOnce() -> T + Send + 'static) -> T {
    let (tid_tx, tid_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || {
        // SAFETY: gettid has no preconditions.
        tid_tx.send(unsafe { libc::gettid() }).unwrap();
        let _ = done_tx.send(call());
    });
    wait_until_asleep(tid_rx.recv_timeout(LIMIT).expect("the waiter's thread id"));
    assert_eq!(close_handle(port.handle()), TRUE);
    done_rx
        .recv_timeout(LIMIT)
        .expect("CloseHandle did not wake the waiter")
}

#[test]
fn close_handle_wakes_get_queued_completion_status_ex() {
    let port = Port(new_port(0) as usize);
    let (ok, error, removed) = close_under(port, move || {
        let mut entry = empty_entry();
        let mut removed = 99;
        // SAFETY: `entry` and `removed` are valid for the writes the call may make.
        let ok = unsafe {
            get_queued_completion_status_ex(port.handle(), &mut entry, 1, &mut removed, INFINITE, 0)
        };
        (ok, get_last_error(), removed)
    });
    assert_eq!((ok, error, removed), (FALSE, ERROR_ABANDONED_WAIT_0, 0));
}

#[test]
fn close_handle_wakes_process_socket_notifications() {
    let port = Port(new_port(0) as usize);
    let (code, received) = close_under(port, move || {
        let mut entries = [empty_entry(); 4];
        let mut received = 99;
        // SAFETY: no registrations; `entries` and `received` are valid for the writes.
        let code = unsafe {
            process_socket_notifications(
                port.handle(),
                0,
                std::ptr::null_mut(),
                INFINITE,
                4,
                entries.as_mut_ptr(),
                &mut received,
            )
        };
        (code, received)
    });
    assert_eq!((code, received), (ERROR_ABANDONED_WAIT_0, 0));
}

/// Threads post and dequeue through a handle while it is closed under them: every call
/// either works or fails with a documented code, and none crashes or hangs.
#[test]
fn closing_a_handle_in_use_fails_calls_cleanly() {
    let port = Port(new_port(2) as usize);
    let (started_tx, started_rx) = mpsc::channel();
    let workers: Vec<_> = (0..4)
        .map(|i| {
            let started = started_tx.clone();
            std::thread::spawn(move || {
                let mut codes = Vec::new();
                for n in 0..2_000usize {
                    let key = i * 10_000 + n;
                    if post_queued_completion_status(port.handle(), 1, key, std::ptr::null_mut())
                        == FALSE
                    {
                        codes.push(get_last_error());
                    }
                    let mut entries = [empty_entry(); 8];
                    let mut removed = 0;
                    // SAFETY: `entries` holds 8 entries; `removed` is valid.
                    let ok = unsafe {
                        get_queued_completion_status_ex(
                            port.handle(),
                            entries.as_mut_ptr(),
                            8,
                            &mut removed,
                            0,
                            0,
                        )
                    };
                    if ok == FALSE {
                        codes.push(get_last_error());
                    }
                    if n == 0 {
                        started.send(()).unwrap();
                    }
                    if codes.contains(&ERROR_INVALID_HANDLE) {
                        break; // the handle is gone for good
                    }
                }
                codes
            })
        })
        .collect();
    // Close once every worker has made calls, while they go on making more.
    for _ in 0..4 {
        started_rx.recv_timeout(LIMIT).expect("a worker started");
    }
    assert_eq!(close_handle(port.handle()), TRUE);
    for worker in workers {
        for code in worker.join().expect("a worker panicked") {
            assert!(
                [WAIT_TIMEOUT, ERROR_INVALID_HANDLE, ERROR_ABANDONED_WAIT_0].contains(&code),
                "undocumented code {code}"
            );
        }
    }
    assert_eq!(close_handle(port.handle()), FALSE);
    assert_eq!(get_last_error(), ERROR_INVALID_HANDLE);
}

#[test]
fn timeouts_are_milliseconds_and_nothing_comes_early() {
    let port = new_port(0);
    let mut entry = empty_entry();
    let mut removed = 0;
    let start = Instant::now();
    // SAFETY: `entry` and `removed` are valid for the writes the call may make.
    let ok = unsafe { get_queued_completion_status_ex(port, &mut entry, 1, &mut removed, 50, 0) };
    assert_eq!((ok, get_last_error()), (FALSE, WAIT_TIMEOUT));
    assert!(start.elapsed() >= Duration::from_millis(50));

    // A posted entry ends an INFINITE wait, carried through unchanged.
    let overlapped = 0x1234usize as *mut socknotify_capi::Overlapped;
    assert_eq!(post_queued_completion_status(port, 9, 77, overlapped), TRUE);
    // SAFETY: as above.
    let ok =
        unsafe { get_queued_completion_status_ex(port, &mut entry, 1, &mut removed, INFINITE, 1) };
    assert_eq!((ok, removed), (TRUE, 1));
    assert_eq!(
        (
            entry.completion_key,
            entry.bytes_transferred,
            entry.overlapped
        ),
        (77, 9, overlapped)
    );
    assert_eq!(close_handle(port), TRUE);
}

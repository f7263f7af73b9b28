//! The io_uring backend's rings, one per thread and port (`src/sys/uring.rs`, "Rings"):
//! made by a thread's first batch, closed by whichever ends first, the thread or the port.
//! Alone in its binary, as it counts the process's io_uring descriptors.

#![cfg(target_os = "linux")]

mod util;

use std::sync::{mpsc, Arc};
use std::thread;

use socknotify::{Backend, CompletionPort, Events, Registration};
use util::*;

/// The io_uring instances this process has open.
fn rings() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("list /proc/self/fd")
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy() == "anon_inode:[io_uring]")
        .count()
}

/// Two sockets registered one by one, then re-armed in one batch (a ring is used for two
/// changes or more), on this thread.
fn batch(port: &CompletionPort) -> Vec<std::net::TcpStream> {
    let (a, b) = (tcp_pair(), tcp_pair());
    enable(port, &a.1, 1, Events::IN, ONESHOT_LEVEL);
    enable(port, &b.1, 2, Events::IN, ONESHOT_LEVEL);
    let mut changes = [
        Registration::enable(&a.1, 1, Events::IN, ONESHOT_LEVEL),
        Registration::enable(&b.1, 2, Events::IN, ONESHOT_LEVEL),
    ];
    for result in apply(port, &mut changes) {
        result.expect("enable");
    }
    vec![a.0, a.1, b.0, b.1]
}

#[test]
fn rings_close_with_their_thread_and_with_their_port() {
    let port = match CompletionPort::builder().backend(Backend::IoUring).build() {
        Ok(port) => Arc::new(port),
        Err(e) if e.kind() == std::io::ErrorKind::Unsupported => {
            eprintln!("SKIP: io_uring is unavailable here: {e}");
            return;
        }
        Err(e) => panic!("building an io_uring port failed: {e}"),
    };
    let before = rings();

    // Three threads, one batch each: a ring each while they live, none once they end.
    let (ready_tx, ready_rx) = mpsc::channel();
    let mut go = Vec::new();
    let mut threads = Vec::new();
    for _ in 0..3 {
        let (port, ready_tx) = (Arc::clone(&port), ready_tx.clone());
        let (go_tx, go_rx) = mpsc::channel::<()>();
        go.push(go_tx);
        threads.push(thread::spawn(move || {
            let sockets = batch(&port);
            ready_tx.send(()).unwrap();
            go_rx.recv().unwrap();
            drop(sockets);
        }));
    }
    for _ in 0..3 {
        ready_rx.recv().unwrap();
    }
    assert_eq!(rings(), before + 3, "one ring per submitting thread");
    // A second batch on a thread reuses its ring.
    let kept = batch(&port);
    let kept_again = batch(&port);
    assert_eq!(rings(), before + 4, "this thread has one ring for the port");
    for go in go {
        go.send(()).unwrap();
    }
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(rings(), before + 1, "a thread that ends closes its ring");

    // A thread that outlives the port: the port closes the thread's ring.
    let (ready_tx, ready_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let survivor = {
        let port = Arc::clone(&port);
        thread::spawn(move || {
            let sockets = batch(&port);
            drop(port);
            ready_tx.send(()).unwrap();
            go_rx.recv().unwrap();
            drop(sockets);
        })
    };
    ready_rx.recv().unwrap();
    assert_eq!(rings(), before + 2);
    drop((kept, kept_again));
    drop(Arc::into_inner(port).expect("the last reference to the port"));
    assert_eq!(rings(), before, "the port closes every ring made for it");
    go_tx.send(()).unwrap();
    survivor.join().unwrap();
    assert_eq!(rings(), before);
}

//! Without io_uring (simulated by a process-wide environment variable, so this file holds
//! one test), `Backend::IoUring` is refused with a reason and `Backend::Auto` (epoll on
//! Linux) still builds.

#![cfg(target_os = "linux")]

use std::io::ErrorKind;

use socknotify::{Backend, CompletionPort};

#[test]
fn io_uring_refused_and_auto_builds_without_io_uring() {
    std::env::set_var("SOCKNOTIFY_DISABLE_IO_URING", "1");
    std::env::remove_var("SOCKNOTIFY_BACKEND");
    let port = CompletionPort::new().expect("Auto must still build");
    assert_eq!(port.backend(), Backend::Epoll);
    let err = CompletionPort::builder()
        .backend(Backend::IoUring)
        .build()
        .expect_err("io_uring was disabled");
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert!(
        err.to_string().contains("SOCKNOTIFY_DISABLE_IO_URING"),
        "{err}"
    );
}

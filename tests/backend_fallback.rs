//! `Backend::Auto` falls back to epoll when io_uring cannot be used. The environment
//! variable that simulates a kernel without io_uring is process-wide, so this file holds
//! one test.

#![cfg(target_os = "linux")]

use std::io::ErrorKind;

use socknotify::{Backend, CompletionPort};

#[test]
fn auto_falls_back_to_epoll_without_io_uring() {
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

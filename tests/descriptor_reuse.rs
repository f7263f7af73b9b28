//! `docs/spec.md` section 3, rule 7: closing a registered socket deregisters it silently, and a new
//! socket with the same descriptor number starts clean.
//!
//! Most cases reuse descriptor numbers on purpose (with `dup2`, unix only), which would
//! close other tests' descriptors if they ran on other threads of the same process; so they
//! run one after the other in one test, and the other test of this file waits for it. The
//! Windows forms of the reuse cases, with handle values, are in tests/windows.rs.

mod util;

#[cfg(unix)]
use std::io::ErrorKind;
use std::io::Write;
#[cfg(unix)]
use std::os::fd::{AsRawFd, IntoRawFd};
use std::sync::{Mutex, MutexGuard};

use socknotify::{Backend, ErrorCause, Events, Registration};
use util::*;

/// The tests of this file run one at a time.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(unix)]
#[test]
fn rule_07_descriptor_reuse() {
    let _serial = serial();
    each_backend(|b| {
        close_deregisters_silently_and_reuse_is_clean(b);
        reuse_with_the_same_key_and_other_ops_on_closed(b);
        reuse_after_close_on_another_port(b);
    });
}

#[test]
fn rule_07_a_socket_closed_in_the_middle_of_a_batch() {
    let _serial = serial();
    each_backend(closed_socket_in_the_middle_of_a_batch);
}

/// Puts `socket` at descriptor number `fd`, which the caller closed just before (nothing
/// else in this process allocates descriptors meanwhile), and returns it.
#[cfg(unix)]
fn move_to(socket: impl IntoRawFd, fd: i32) -> std::net::TcpStream {
    use std::os::fd::FromRawFd;
    let raw = socket.into_raw_fd();
    // SAFETY: `raw` is owned here; dup2 onto `fd`, whose previous file the test closed on
    // purpose, then `raw` is closed and `fd` is owned by the returned stream.
    unsafe {
        assert_eq!(
            libc::fcntl(fd, libc::F_GETFD),
            -1,
            "descriptor {fd} is in use"
        );
        assert_eq!(libc::dup2(raw, fd), fd);
        libc::close(raw);
        std::net::TcpStream::from_raw_fd(fd)
    }
}

#[cfg(unix)]
fn close_deregisters_silently_and_reuse_is_clean(b: Backend) {
    {
        let port = port(b);
        let (mut client, server) = tcp_pair();
        let fd = server.as_raw_fd();
        enable(&port, &server, 70, Events::IN, LEVEL);
        client.write_all(b"unread").unwrap();
        expect_entry(&port, 70, Events::IN);
        let (mut client2, server2) = tcp_pair();
        drop(server); // closed while registered, with data unread
        let server2 = move_to(server2, fd);
        // A new socket with the same number registers cleanly, with another key...
        enable(&port, &server2, 71, Events::IN, ONESHOT_LEVEL);
        expect_nothing(&port);
        client2.write_all(b"new").unwrap();
        let all = drain(&port);
        assert_eq!(all.len(), 1, "{all:?}");
        assert_eq!((all[0].key, all[0].events()), (71, Events::IN));
        drop(client);
        // ...and no REMOVE or other entry of the old registration ever appears.
        remove_and_wait(&port, &server2, 71);
        assert!(drain(&port).is_empty());
        assert_eq!(port.registrations(), 0);
    }
}

#[cfg(unix)]
fn reuse_with_the_same_key_and_other_ops_on_closed(b: Backend) {
    {
        let port = port(b);
        let (_client, server) = tcp_pair();
        let fd = server.as_raw_fd();
        enable(&port, &server, 7, Events::IN, ONESHOT_LEVEL);
        // REMOVE of a closed registered socket: it was deregistered by the close.
        let (_c, s) = tcp_pair();
        drop(server);
        let s = move_to(s, fd);
        let err = apply_one(&port, Registration::remove(&s)).expect_err("remove after close");
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert!(drain(&port).is_empty(), "no REMOVE entry after close");
        // Same key on the new socket: a fresh registration, not the old one's state.
        enable(&port, &s, 7, Events::OUT, ONESHOT_LEVEL);
        expect_entry(&port, 7, Events::OUT);
        expect_nothing(&port);
    }
}

#[cfg(unix)]
fn reuse_after_close_on_another_port(b: Backend) {
    let first = port(b);
    let second = port(b);
    let (_client, server) = tcp_pair();
    let fd = server.as_raw_fd();
    enable(&first, &server, 1, Events::IN, LEVEL);
    // The number will name a socket the first port never saw: the second may take it.
    let (mut client2, server2) = tcp_pair();
    drop(server);
    let server2 = move_to(server2, fd);
    enable(&second, &server2, 2, Events::IN, LEVEL);
    client2.write_all(b"x").unwrap();
    expect_entry(&second, 2, Events::IN);
    expect_nothing(&first);
    // And the first port, asked about it, knows it is not its own.
    let err = apply_one(&first, Registration::enable(&server2, 1, Events::IN, LEVEL))
        .expect_err("registered on two ports");
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    let err = apply_one(&first, Registration::disable(&server2)).expect_err("disable");
    assert_eq!(err.kind(), ErrorKind::NotFound);
    expect_entry(&second, 2, Events::IN);
}

fn closed_socket_in_the_middle_of_a_batch(b: Backend) {
    const SOCKETS: usize = 10;
    const CLOSED: usize = 3;
    let port = port(b);
    let mut pairs: Vec<_> = (0..SOCKETS).map(|_| tcp_pair()).collect();
    for (key, (client, server)) in pairs.iter_mut().enumerate() {
        enable(&port, server, key, Events::IN, ONESHOT_LEVEL);
        client.write_all(b"x").unwrap();
    }
    let mut fired = drain(&port);
    fired.sort_by_key(|e| e.key);
    assert_eq!(fired.len(), SOCKETS);
    // Re-arm all; one of them was closed meanwhile (its number stays free).
    let mut batch: Vec<_> = pairs
        .iter()
        .enumerate()
        .map(|(key, (_, s))| Registration::enable(s, key, Events::IN, ONESHOT_LEVEL))
        .collect();
    let (_, closed) = pairs.remove(CLOSED);
    drop(closed);
    let mut entries = [socknotify::CompletionEntry::default(); 32];
    let n = port
        .process(&mut batch, &mut entries, Some(ARRIVAL))
        .expect("process");
    for (key, r) in batch.iter().enumerate() {
        if key == CLOSED {
            let err = r.result().expect_err("closed socket re-armed");
            // Rule 22: a closed descriptor keeps its OS code.
            assert_eq!(err.raw_os_error(), Some(EBADF), "{err}");
            assert_eq!(
                ErrorCause::of(&err),
                Some(ErrorCause::BadDescriptor),
                "{err}"
            );
        } else {
            r.result().unwrap_or_else(|e| panic!("socket {key}: {e}"));
        }
    }
    let mut keys: Vec<usize> = entries[..n].iter().map(|e| e.key).collect();
    keys.extend(drain(&port).iter().map(|e| e.key));
    keys.sort_unstable();
    let want: Vec<usize> = (0..SOCKETS).filter(|k| *k != CLOSED).collect();
    assert_eq!(keys, want);
    assert_eq!(port.registrations(), SOCKETS - 1);
}

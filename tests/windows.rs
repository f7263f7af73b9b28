//! What only Windows has: handle values reused at once, duplicated socket handles,
//! `closesocket` of one of them (SPEC rules 6 and 7 on `Backend::Afd`).
#![cfg(windows)]

mod util;

use std::io::Write;
use std::net::TcpStream;

use socknotify::{Events, Registration};
use util::*;

/// Makes connected pairs until one side gets the handle value `value`; the pairs made on
/// the way are kept open in `keep` so that the value is not handed out twice.
fn pair_reusing(
    value: u64,
    keep: &mut Vec<(TcpStream, TcpStream)>,
) -> Option<(TcpStream, TcpStream)> {
    for _ in 0..64 {
        let (a, b) = tcp_pair();
        if raw(&a) == value {
            return Some((b, a));
        }
        if raw(&b) == value {
            return Some((a, b));
        }
        keep.push((a, b));
    }
    None
}

#[test]
fn rule_07_a_closed_handle_reused_at_once_is_a_new_socket() {
    each_backend(|b| {
        for same_key in [false, true] {
            let port = port(b);
            let (_client, server) = tcp_pair();
            let value = raw(&server);
            enable(&port, &server, 1, Events::IN, LEVEL);
            // Closed and reused before any thread waits on the port: the LOCAL_CLOSE entry
            // is still queued when the new socket is registered.
            drop(server);
            let mut keep = Vec::new();
            let Some((mut peer, reused)) = pair_reusing(value, &mut keep) else {
                eprintln!("SKIPPED: no new socket reused handle value {value}");
                return;
            };
            let key = if same_key { 1 } else { 2 };
            apply_one(&port, Registration::enable(&reused, key, Events::IN, LEVEL))
                .expect("a new socket registers cleanly");
            assert_eq!(port.registrations(), 1);
            peer.write_all(b"new").unwrap();
            expect_entry(&port, key, Events::IN);
            assert_eq!(read_all(&mut { reused.try_clone().unwrap() }), 3);
            expect_nothing(&port);
            remove_and_wait(&port, &reused, key);
            assert_eq!(port.registrations(), 0);
        }
    });
}

#[test]
fn rule_06_a_duplicated_handle_is_the_same_socket() {
    each_backend(|b| {
        let port = port(b);
        let other = util::port(b);
        let (mut client, server) = tcp_pair();
        let dup = server.try_clone().unwrap(); // WSADuplicateSocketW: a handle of its own
        assert_ne!(raw(&dup), raw(&server));
        enable(&port, &server, 1, Events::IN, LEVEL);
        // The duplicate names the same registration: another key is refused, another
        // port too.
        let err = apply_one(&port, Registration::enable(&dup, 2, Events::IN, LEVEL)).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
        let err = apply_one(&other, Registration::enable(&dup, 1, Events::IN, LEVEL)).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists, "{err}");
        // closesocket of the duplicate leaves the socket, and its registration, alone.
        drop(dup);
        client.write_all(b"x").unwrap();
        expect_entry(&port, 1, Events::IN);
        remove_and_wait(&port, &server, 1);
    });
}

#[test]
fn rule_07_closing_the_registered_handle_of_a_duplicated_socket() {
    each_backend(|b| {
        let port = port(b);
        let (mut client, server) = tcp_pair();
        let dup = server.try_clone().unwrap();
        enable(&port, &server, 1, Events::IN, LEVEL);
        drop(server);
        client.write_all(b"x").unwrap();
        // At most one stale report, then silence.
        let stale = drain(&port);
        assert!(stale.len() <= 1, "{stale:?}");
        // A REMOVE through the remaining handle works, or finds nothing left to remove: the
        // registered handle's close ended the registration (AFD_POLL_LOCAL_CLOSE), and
        // once it is closed user mode cannot tell that the duplicate names the same socket
        // (the Windows backend's known limits).
        match apply_one(&port, Registration::remove(&dup)) {
            Ok(()) => {
                let all = drain(&port);
                assert!(all.iter().all(|e| e.key == 1), "{all:?}");
            }
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::NotFound, "{e}"),
        }
        // The socket, still open through the duplicate, can be registered afresh.
        enable(&port, &dup, 2, Events::IN, LEVEL);
        expect_entry(&port, 2, Events::IN);
        remove_and_wait(&port, &dup, 2);
    });
}

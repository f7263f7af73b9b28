//! What only Windows has: handle values reused at once, duplicated socket handles,
//! `closesocket` of one of them (SPEC rules 6 and 7 on `Backend::Afd`).
#![cfg(windows)]

mod util;

use std::collections::HashMap;
use std::io::Write;
use std::net::{TcpStream, UdpSocket};
use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;

use socknotify::{Events, Registration};
use util::*;

/// Tests that wait for a handle value to be handed out again run one at a time, so that
/// the other tests' handles do not take it.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Binds UDP sockets (one handle each) until one gets the handle value `value`. Windows
/// hands the most recently freed value out first, Wine the lowest free one: either way the
/// value comes before the new values have gone well past it.
fn udp_reusing(value: u64) -> Option<UdpSocket> {
    let mut keep = Vec::new();
    for _ in 0..4096 {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let got = raw(&socket);
        if got == value {
            return Some(socket);
        }
        if got > value + 256 {
            return None;
        }
        keep.push(socket);
    }
    None
}

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
    let _serial = serial();
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
    // One at a time with the tests that flood handle values: the value closed here is
    // otherwise taken by their sockets, and a persistent registration whose registered
    // handle value another socket takes while a duplicate keeps the old socket open keeps
    // reporting (a known AFD limit, issue 12: the re-arm cannot tell the two apart).
    let _serial = serial();
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

/// faults_serial's `closed_socket_number_reused_by_another_thread_at_once` with handle
/// values: a registered socket is closed while threads dequeue its entries, and another
/// thread gets its handle value for a new socket at once and registers it (with the old key
/// or a new one). Nothing of the old registration reaches a call that began after the
/// close, no REMOVE comes for it, and the new registration sees only its own entries.
#[test]
fn rule_07_closed_handle_reused_by_another_thread_at_once() {
    let _serial = serial();
    each_backend(|b| {
        const ROUNDS: usize = 20;
        let port = Arc::new(port_with(b, 2));
        let dequeuers = LoggingDequeuers::spawn(&port, 2, 4);
        let seq = dequeuers.seq.clone();
        let mut closed_at = HashMap::new();
        let mut new_keys = Vec::new();
        // The other thread, started first (a new thread's handle would take the value):
        // waits for a value, gets a new socket under it, registers it.
        let (to_reuser, values) = std::sync::mpsc::channel::<(u64, usize)>();
        let (to_main, reused) = std::sync::mpsc::channel();
        let reuser = {
            let port = port.clone();
            thread::spawn(move || {
                for (value, key) in values {
                    let fresh = udp_reusing(value);
                    if let Some(fresh) = &fresh {
                        enable(&port, fresh, key, Events::OUT, LEVEL);
                    }
                    to_main.send(fresh).unwrap();
                }
            })
        };
        for round in 0..ROUNDS {
            let old_key = 2 * round;
            let new_key = if round % 2 == 0 { old_key } else { old_key + 1 };
            let (mut client, server) = tcp_pair();
            client.write_all(b"never read").unwrap();
            enable(&port, &server, old_key, Events::IN, LEVEL);
            let value = raw(&server);
            drop(server);
            closed_at.insert(old_key, seq.fetch_add(1, SeqCst));
            to_reuser.send((value, new_key)).unwrap();
            let Some(fresh) = reused.recv_timeout(ARRIVAL).expect("reuser") else {
                eprintln!("round {round}: no new socket reused handle value {value}");
                continue;
            };
            apply_one(&port, Registration::remove(&fresh)).expect("remove the new one");
            new_keys.push(new_key);
            dequeuers.wait_for_removes(new_keys.len());
        }
        drop(to_reuser);
        reuser.join().expect("reuser");
        // Another thread of the test harness may take a value first now and then.
        assert!(
            new_keys.len() >= ROUNDS / 2,
            "only {} of {ROUNDS} handle values were reused at once",
            new_keys.len()
        );
        let log = dequeuers.stop(&port);
        for l in &log {
            match l.events {
                // The old registration's: only from calls that began before its close.
                e if e == Events::IN => assert!(
                    l.before < closed_at[&(l.key & !1)],
                    "IN for {} dequeued by a call that began after the close",
                    l.key
                ),
                e if e == Events::OUT || e == Events::REMOVE => {}
                other => panic!("unexpected {other:?} for {}", l.key),
            }
        }
        assert_remove_is_last(&log);
        let removes = log.iter().filter(|l| l.events == Events::REMOVE).count();
        assert_eq!(
            removes,
            new_keys.len(),
            "one REMOVE per new registration, none for a close"
        );
        // A closed socket whose value was not reused stays counted until noticed.
        assert!(port.registrations() <= ROUNDS - new_keys.len());
    });
}

//! What only Windows has: handle values reused at once, duplicated socket handles,
//! `closesocket` of one of them (SPEC rules 6 and 7 on `Backend::Afd`).
#![cfg(windows)]

mod util;

use std::collections::HashMap;
use std::io::Write;
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;

use socket2::Socket;
use socknotify::{Backend, CompletionEntry, CompletionPort, Events, Registration, Trigger};
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

/// Collects the entries that arrive until the port has been quiet for [`QUIET`], or the
/// first `most` of a port that does not go quiet.
fn drain_at_most(port: &CompletionPort, most: usize) -> Vec<CompletionEntry> {
    let mut all = Vec::new();
    while all.len() < most {
        let got = dequeue(port, QUIET);
        if got.is_empty() {
            break;
        }
        all.extend(got);
    }
    all
}

/// A new socket under the handle value `value`, with something to read: a stream
/// connected through `listener` whose peer wrote to it, or without one a bound datagram
/// socket that sent itself a datagram. Returns it with the sockets it needs kept open (its
/// peer, and the pairs made on the way, so that the value is not handed out twice).
fn readable_reusing(value: u64, listener: Option<&TcpListener>) -> Option<(Socket, Vec<Socket>)> {
    let Some(listener) = listener else {
        let fresh = udp_reusing(value)?;
        fresh.send_to(b"new", fresh.local_addr().unwrap()).unwrap();
        return Some((fresh.into(), Vec::new()));
    };
    let mut keep: Vec<Socket> = Vec::new();
    for _ in 0..64 {
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let (mut peer, fresh) = if raw(&client) == value {
            (server, client)
        } else if raw(&server) == value {
            (client, server)
        } else {
            keep.extend([client.into(), server.into()]);
            continue;
        };
        peer.write_all(b"new").unwrap();
        keep.push(peer.into());
        return Some((fresh.into(), keep));
    }
    None
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

/// What takes a closed handle's value in the tests below.
#[derive(Clone, Copy, Debug)]
enum Fresh {
    /// A connected stream with something to read.
    Stream,
    /// A bound datagram socket with something to read.
    Datagram,
    /// A stream socket neither bound nor connected yet, so that nothing tells it from the
    /// old one when it takes the value; it connects, and gets something to read, later.
    Blank,
}

/// Makes stream sockets, neither bound nor connected, until one gets the handle value
/// `value`; returns it with the others, kept open so that the value is not handed out twice.
fn blank_reusing(value: u64) -> Option<(Socket, Vec<Socket>)> {
    let mut keep = Vec::new();
    for _ in 0..4096 {
        let socket = Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        let got = raw(&socket);
        if got == value {
            return Some((socket, keep));
        }
        if got > value + 256 {
            return None;
        }
        keep.push(socket);
    }
    None
}

/// Rule 7 where AFD reports no close: the registered handle of a socket that a duplicate
/// keeps open is closed, and a new socket takes the handle value before the old
/// registration is polled again (its persistent re-arm, or its EDGE check, owed since its
/// entry, comes with this thread's next call). The new socket's readiness never arrives
/// under the old key, also when the new socket, still blank when the old registration is
/// polled again, looks like the old one then; and the new socket registers as a new socket.
#[test]
fn rule_07_a_closed_handle_of_a_duplicated_socket_reused_at_once() {
    let _serial = serial();
    each_backend(|b| {
        for trigger in [LEVEL, EDGE] {
            for fresh in [Fresh::Stream, Fresh::Datagram, Fresh::Blank] {
                closed_handle_of_a_duplicated_socket_reused(b, trigger, fresh);
            }
        }
    });
}

fn closed_handle_of_a_duplicated_socket_reused(b: Backend, trigger: Trigger, kind: Fresh) {
    let case = format!("{trigger:?}, the new socket {kind:?}");
    let port = port(b);
    let (mut client, server) = tcp_pair();
    let mut dup = server.try_clone().unwrap();
    dup.set_nonblocking(true).unwrap();
    let value = raw(&server);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    enable(&port, &server, 1, Events::IN, trigger);
    client.write_all(b"old").unwrap();
    expect_entry(&port, 1, Events::IN);
    // Read through the duplicate: the old socket has nothing more to report.
    assert_eq!(read_all(&mut dup), 3);
    drop(server);
    let reused = match kind {
        Fresh::Stream => readable_reusing(value, Some(&listener)),
        Fresh::Datagram => readable_reusing(value, None),
        Fresh::Blank => blank_reusing(value),
    };
    let Some((fresh, mut keep)) = reused else {
        eprintln!("SKIPPED ({case}): no new socket reused handle value {value}");
        return;
    };
    // Makes the old registration's owed re-arm or check, under a value that names the new
    // socket now, which ends the old registration where the new socket tells itself apart.
    let stale = drain_at_most(&port, 8);
    assert!(
        stale.is_empty(),
        "{case}: {stale:?} after the registered handle was closed"
    );
    if !matches!(kind, Fresh::Blank) {
        assert_eq!(port.registrations(), 0, "{case}: the re-arm ends it");
    } else {
        fresh
            .connect(&listener.local_addr().unwrap().into())
            .unwrap();
        let (mut peer, _) = listener.accept().unwrap();
        peer.write_all(b"new").unwrap();
        keep.push(peer.into());
        let stale = drain_at_most(&port, 8);
        assert!(
            stale.is_empty(),
            "{case}: {stale:?} once the new socket is readable"
        );
    }
    // The new socket is a new socket, under the old key too.
    enable(&port, &fresh, 1, Events::IN, LEVEL);
    expect_entry(&port, 1, Events::IN);
    remove_and_wait(&port, &fresh, 1);
    // The duplicate's REMOVE finds nothing, or only the old registration.
    match apply_one(&port, Registration::remove(&dup)) {
        Ok(()) => {
            let all = drain(&port);
            let removes = all.iter().all(|e| e.events() == Events::REMOVE);
            assert!(removes, "{case}: {all:?}");
        }
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::NotFound, "{case}: {e}"),
    }
}

/// The same with the handle value taken at once by another thread's new socket, while
/// other threads dequeue: the old socket becomes readable after its value names the new
/// (readable) socket, so its poll completes then. No entry for the old registration reaches
/// a call that began after the close, and the new registration sees its own entries.
#[test]
fn rule_07_a_closed_handle_of_a_duplicated_socket_reused_by_another_thread_at_once() {
    let _serial = serial();
    each_backend(|b| {
        const ROUNDS: usize = 10;
        let port = Arc::new(port_with(b, 2));
        let dequeuers = LoggingDequeuers::spawn(&port, 2, 4);
        let seq = dequeuers.seq.clone();
        let mut closed_at = HashMap::new();
        let (mut removes, mut reused_rounds) = (0, 0);
        // Started first (a new thread's handle would take the value).
        let (to_reuser, values) = std::sync::mpsc::channel::<(u64, bool)>();
        let (to_main, reused) = std::sync::mpsc::channel();
        let reuser = thread::spawn(move || {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            for (value, stream) in values {
                let listener = stream.then_some(&listener);
                to_main.send(readable_reusing(value, listener)).unwrap();
            }
        });
        for round in 0..ROUNDS {
            let (old_key, mark_key, new_key) = (3 * round, 3 * round + 1, 3 * round + 2);
            let (mut client, server) = tcp_pair();
            let dup = server.try_clone().unwrap();
            enable(&port, &server, old_key, Events::IN, LEVEL);
            let value = raw(&server);
            drop(server);
            closed_at.insert(old_key, seq.fetch_add(1, SeqCst));
            to_reuser.send((value, round % 2 == 0)).unwrap();
            let Some((fresh, keep)) = reused.recv_timeout(ARRIVAL).expect("reuser") else {
                eprintln!("round {round}: no new socket reused handle value {value}");
                continue;
            };
            // The old socket's poll, issued before the close, completes now. Until the new
            // socket is registered (which compares it with the registered one), only the
            // old registration's re-arm would poll it: the client's registration, reported
            // and removed, has the dequeuers call a few times meanwhile.
            client.write_all(b"old").unwrap();
            enable(&port, &client, mark_key, Events::OUT, LEVEL);
            apply_one(&port, Registration::remove(&client)).expect("remove the client");
            removes += 1;
            dequeuers.wait_for_removes(removes);
            // The new socket is a new socket, with entries of its own.
            enable(&port, &fresh, new_key, Events::IN, LEVEL);
            apply_one(&port, Registration::remove(&fresh)).expect("remove the new one");
            removes += 1;
            dequeuers.wait_for_removes(removes);
            reused_rounds += 1;
            drop((fresh, keep, dup));
        }
        drop(to_reuser);
        reuser.join().expect("reuser");
        assert!(
            reused_rounds >= ROUNDS / 2,
            "only {reused_rounds} of {ROUNDS} handle values were reused at once"
        );
        let log = dequeuers.stop(&port);
        for l in &log {
            match l.key % 3 {
                0 => assert!(
                    l.before < closed_at[&l.key],
                    "{:?} for {} dequeued by a call that began after its handle was closed",
                    l.events,
                    l.key
                ),
                _ => assert!(
                    [Events::IN, Events::OUT, Events::REMOVE].contains(&l.events),
                    "{l:?}"
                ),
            }
        }
        assert_remove_is_last(&log);
        let logged = log.iter().filter(|l| l.events == Events::REMOVE).count();
        assert_eq!(logged, removes, "one REMOVE per removal, none for a close");
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

//! `docs/spec.md` section 3, rules 1–9: registration.

mod util;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpListener;

use socknotify::{ErrorCause, Events, Operation, Registration, Trigger};
use util::*;

#[test]
fn rule_01_enable_creates_a_registration() {
    each_backend(|b| {
        let port = port(b);
        let (mut client, server) = tcp_pair();
        enable(&port, &server, 11, Events::IN, LEVEL);
        assert_eq!(port.registrations(), 1);
        client.write_all(b"x").unwrap();
        expect_entry(&port, 11, Events::IN);
    });
}

#[test]
fn rule_01_trigger_needs_one_mode_and_one_edge() {
    each_backend(|b| {
        let port = port(b);
        let (_client, server) = tcp_pair();
        let bad = [
            Trigger::empty(),
            Trigger::ONESHOT,
            Trigger::PERSISTENT,
            Trigger::ONESHOT | Trigger::PERSISTENT | Trigger::LEVEL,
            Trigger::ONESHOT | Trigger::LEVEL | Trigger::EDGE,
            Trigger::all(),
            Trigger::from_bits_retain(0x10) | LEVEL,
        ];
        for trigger in bad {
            let err = apply_one(&port, Registration::enable(&server, 1, Events::IN, trigger))
                .expect_err("bad trigger accepted");
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "{trigger:?}: {err}");
        }
        assert_eq!(
            port.registrations(),
            0,
            "a refused ENABLE registered something"
        );
        for trigger in [LEVEL, EDGE, ONESHOT_LEVEL, ONESHOT_EDGE] {
            let fresh = tcp_pair().1;
            apply_one(&port, Registration::enable(&fresh, 1, Events::IN, trigger))
                .unwrap_or_else(|e| panic!("{trigger:?} refused: {e}"));
        }
    });
}

/// Rule 1's reading of Windows: LEVEL alone or EDGE alone is valid and persistent, as the
/// seed's poll replacement and edge UDP server register.
#[test]
fn rule_01_level_or_edge_alone_is_persistent() {
    each_backend(|b| {
        let port = port(b);
        let (mut client, server) = tcp_pair();
        enable(&port, &server, 3, Events::IN, Trigger::LEVEL);
        client.write_all(b"x").unwrap();
        // Persistent level: the unread byte is reported again on the next dequeue.
        expect_entry(&port, 3, Events::IN);
        expect_entry(&port, 3, Events::IN);

        let port = util::port(b); // a fresh port: the level registration above keeps firing
        let (mut client, mut server) = tcp_pair();
        server.set_nonblocking(true).unwrap();
        enable(&port, &server, 4, Events::IN, Trigger::EDGE);
        for _ in 0..2 {
            client.write_all(b"y").unwrap();
            // Persistent edge: each new arrival is reported again, without an ENABLE.
            expect_entry(&port, 4, Events::IN);
            let mut buf = [0u8; 16];
            assert_eq!(server.read(&mut buf).unwrap(), 1);
        }
        expect_nothing(&port);
    });
}

#[test]
fn rule_01_unknown_bits_and_several_operations_are_invalid() {
    each_backend(|b| {
        let port = port(b);
        let (_client, server) = tcp_pair();
        let fd = raw(&server);
        let cases = [
            // ERR and REMOVE are never asked for.
            Registration::from_raw(fd, 1, Events::ERR, Operation::Enable, LEVEL),
            Registration::from_raw(fd, 1, Events::REMOVE | Events::IN, Operation::Enable, LEVEL),
            Registration::from_bits(fd, 1, 0x0100, 0x01, LEVEL.bits()),
            // ENABLE | REMOVE, ENABLE | DISABLE, an unknown operation.
            Registration::from_bits(fd, 1, 0x01, 0x05, LEVEL.bits()),
            Registration::from_bits(fd, 1, 0x01, 0x03, LEVEL.bits()),
            Registration::from_bits(fd, 1, 0x01, 0x08, LEVEL.bits()),
            // Unknown trigger bits on REMOVE too.
            Registration::from_bits(fd, 1, 0, 0x04, 0x80),
        ];
        let mut batch = cases.to_vec();
        for (i, result) in apply(&port, &mut batch).into_iter().enumerate() {
            let err = result.expect_err("invalid registration accepted");
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "case {i}: {err}");
        }
        assert_eq!(port.registrations(), 0);
    });
}

#[test]
fn rule_02_enable_replaces_filter_and_rearms() {
    each_backend(|b| {
        let port = port(b);
        let (mut client, mut server) = tcp_pair();
        enable(&port, &server, 5, Events::IN, ONESHOT_LEVEL);
        client.write_all(b"a").unwrap();
        expect_entry(&port, 5, Events::IN);
        expect_nothing(&port); // fired
                               // Replace IN with OUT: a writable socket reports OUT at once, and no longer IN.
        enable(&port, &server, 5, Events::OUT, LEVEL);
        expect_entry(&port, 5, Events::OUT);
        // And back: the unread byte is reported (IN only, no OUT), and once read, nothing.
        // The entry is taken before the read: a backend may queue it as soon as the
        // registration is enabled (AFD does, as Windows' own notifications do), and an
        // entry queued while the condition held may still be dequeued after it cleared.
        enable(&port, &server, 5, Events::IN, LEVEL);
        expect_entry(&port, 5, Events::IN);
        assert_eq!(read_all(&mut server), 1);
        expect_nothing(&port);
    });
}

#[test]
fn rule_02_key_cannot_change() {
    each_backend(|b| {
        let port = port(b);
        let (mut client, server) = tcp_pair();
        enable(&port, &server, 5, Events::IN, LEVEL);
        let err = apply_one(&port, Registration::enable(&server, 6, Events::IN, LEVEL))
            .expect_err("key change accepted");
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        client.write_all(b"a").unwrap();
        expect_entry(&port, 5, Events::IN);
        // The documented way: REMOVE, wait for the REMOVE entry, register again.
        remove_and_wait(&port, &server, 5);
        enable(&port, &server, 6, Events::IN, LEVEL);
        expect_entry(&port, 6, Events::IN);
    });
}

#[test]
fn rule_03_disable_stops_entries_enable_resumes() {
    each_backend(|b| {
        let port = port(b);
        let (mut client, server) = tcp_pair();
        enable(&port, &server, 3, Events::IN, LEVEL);
        apply_one(&port, Registration::disable(&server)).expect("disable");
        client.write_all(b"a").unwrap();
        expect_nothing(&port);
        assert_eq!(port.registrations(), 1, "DISABLE keeps the registration");
        enable(&port, &server, 3, Events::IN, LEVEL);
        expect_entry(&port, 3, Events::IN);
    });
}

#[test]
fn rule_04_remove_queues_one_remove_entry_and_is_last() {
    each_backend(|b| {
        let port = port(b);
        let (mut client, server) = tcp_pair();
        // Persistent level with unread data: the kernel keeps reporting it.
        enable(&port, &server, 9, Events::IN | Events::OUT, LEVEL);
        client.write_all(b"pending").unwrap();
        // OUT alone may come first (AFD reports a poll when it completes, which can be
        // before the data arrives); level entries repeat until both hold.
        let deadline = std::time::Instant::now() + ARRIVAL;
        loop {
            let entry = next_entry(&port);
            assert_eq!(entry.key, 9, "{entry:?}");
            if entry.events() == Events::IN | Events::OUT {
                break;
            }
            assert_eq!(entry.events(), Events::OUT, "{entry:?}");
            assert!(std::time::Instant::now() < deadline, "IN never came");
        }
        apply_one(&port, Registration::remove(&server)).expect("remove");
        let all = drain(&port);
        let removes: Vec<_> = all
            .iter()
            .filter(|e| e.events() == Events::REMOVE)
            .collect();
        assert_eq!(removes.len(), 1, "exactly one REMOVE entry: {all:?}");
        assert_eq!(removes[0].key, 9);
        let pos = all
            .iter()
            .position(|e| e.events() == Events::REMOVE)
            .unwrap();
        assert!(
            all[pos + 1..].iter().all(|e| e.key != 9),
            "entries after REMOVE: {all:?}"
        );
        assert_eq!(port.registrations(), 0);
        client.write_all(b"more").unwrap();
        expect_nothing(&port);
    });
}

#[test]
fn rule_05_disable_or_remove_unknown_is_not_found() {
    each_backend(|b| {
        let port = port(b);
        let (_client, server) = tcp_pair();
        for registration in [
            Registration::disable(&server),
            Registration::remove(&server),
        ] {
            let err = apply_one(&port, registration).expect_err("unknown socket accepted");
            assert_eq!(err.kind(), ErrorKind::NotFound);
        }
        enable(&port, &server, 1, Events::IN, LEVEL);
        apply_one(&port, Registration::remove(&server)).expect("first remove");
        let err = apply_one(&port, Registration::remove(&server)).expect_err("second remove");
        assert_eq!(err.kind(), ErrorKind::NotFound);
        let all = drain(&port);
        assert_eq!(all.iter().filter(|e| e.events().is_remove()).count(), 1);
    });
}

#[test]
fn rule_06_one_port_per_socket() {
    each_backend(|b| {
        let first = port(b);
        let second = port(b);
        let (mut client, server) = tcp_pair();
        enable(&first, &server, 1, Events::IN, LEVEL);
        let err = apply_one(&second, Registration::enable(&server, 1, Events::IN, LEVEL))
            .expect_err("registered on two ports");
        assert_eq!(err.kind(), ErrorKind::AlreadyExists);
        client.write_all(b"x").unwrap();
        expect_entry(&first, 1, Events::IN);
        expect_nothing(&second);
        // After REMOVE it may move.
        remove_and_wait(&first, &server, 1);
        enable(&second, &server, 2, Events::IN, LEVEL);
        expect_entry(&second, 2, Events::IN);
        // After a port closes, its sockets are free too.
        let (_c2, s2) = tcp_pair();
        enable(&second, &s2, 3, Events::IN, LEVEL);
        second.close();
        enable(&first, &s2, 3, Events::OUT, LEVEL);
        expect_entry(&first, 3, Events::OUT);
    });
}

#[test]
fn rule_08_only_sockets() {
    each_backend(|b| {
        let port = port(b);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        // Rule 22: the OS code tells a closed descriptor from a non-socket. Closed numbers
        // are ones no descriptor has: closing one of ours instead would race with the other
        // tests' threads, which may be given the number at once.
        let non_sockets = non_sockets();
        let cases = non_sockets
            .iter()
            .map(|n| (n.raw, n.what, ENOTSOCK))
            .chain(closed_sockets().into_iter().map(|c| (c, "closed", EBADF)));
        for (fd, what, code) in cases {
            let r = Registration::from_raw(fd, 1, Events::IN, Operation::Enable, LEVEL);
            let err = apply_one(&port, r).expect_err(what);
            assert_eq!(err.raw_os_error(), Some(code), "{what} {fd}: {err}");
            let cause = if code == EBADF {
                ErrorCause::BadDescriptor
            } else {
                ErrorCause::NotSocket
            };
            assert_eq!(ErrorCause::of(&err), Some(cause), "{what} {fd}: {err}");
        }
        assert_eq!(port.registrations(), 0);
        enable(&port, &listener, 1, Events::IN, LEVEL);
    });
}

#[test]
fn rule_09_each_registration_has_its_own_result_and_the_call_dequeues() {
    each_backend(|b| {
        let port = port(b);
        let (mut c1, s1) = tcp_pair();
        let (mut c2, s2) = tcp_pair();
        let (_c3, s3) = tcp_pair();
        c1.write_all(b"1").unwrap();
        c2.write_all(b"2").unwrap();
        let mut batch = [
            Registration::enable(&s1, 1, Events::IN, Trigger::all()), // invalid trigger
            Registration::enable(&s2, 2, Events::IN, ONESHOT_LEVEL),
            Registration::remove(&s3), // not registered
            Registration::enable(&s1, 1, Events::IN, ONESHOT_LEVEL),
        ];
        let mut entries = [Default::default(); 8];
        let n = port
            .process(&mut batch, &mut entries, Some(ARRIVAL))
            .expect("process");
        assert_eq!(
            batch[0].result().unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
        batch[1].result().expect("second applied");
        assert_eq!(batch[2].result().unwrap_err().kind(), ErrorKind::NotFound);
        batch[3].result().expect("fourth applied");
        assert!(n >= 1, "the call dequeued nothing");
        let mut keys: Vec<usize> = entries[..n].iter().map(|e| e.key).collect();
        keys.extend(drain(&port).iter().map(|e| e.key));
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys, [1, 2]);
    });
}

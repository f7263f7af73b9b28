//! `docs/spec.md` section 3, rules 10–15: delivery.

mod util;

use std::io::Write;

use socknotify::{CompletionEntry, Events};
use util::*;

#[test]
fn rule_10_persistent_level_repeats_until_the_condition_clears() {
    each_backend(|b| {
        let port = port(b);
        let (mut client, mut server) = tcp_pair();
        enable(&port, &server, 10, Events::IN, LEVEL);
        expect_nothing(&port);
        client.write_all(b"hello").unwrap();
        for _ in 0..3 {
            expect_entry(&port, 10, Events::IN);
        }
        assert_eq!(read_all(&mut server), 5);
        expect_nothing(&port);
        client.write_all(b"again").unwrap();
        expect_entry(&port, 10, Events::IN);
    });
}

#[test]
fn rule_11_edge_fires_once_per_new_data() {
    each_backend(|b| {
        let port = port(b);
        let (mut client, mut server) = tcp_pair();
        enable(&port, &server, 11, Events::IN, EDGE);
        client.write_all(b"one").unwrap();
        expect_entry(&port, 11, Events::IN);
        // AFD has no edge mode: a program that calls again without draining may get the
        // unread data again there (the Windows backend's docs say why). Drained, no new
        // data means no second entry everywhere.
        let drains = cfg!(windows);
        if drains {
            assert_eq!(read_all(&mut server), 3);
        } else {
            // Not drained, no new data: no second entry.
            expect_nothing(&port);
        }
        client.write_all(b"two").unwrap();
        expect_entry(&port, 11, Events::IN);
        assert_eq!(read_all(&mut server), if drains { 3 } else { 6 });
        expect_nothing(&port);
        client.write_all(b"three").unwrap();
        expect_entry(&port, 11, Events::IN);
        if drains {
            assert_eq!(read_all(&mut server), 5);
        }
        expect_nothing(&port);
    });
}

#[test]
fn rule_12_oneshot_disarms_until_enable() {
    each_backend(|b| {
        let port = port(b);
        let (mut client, mut server) = tcp_pair();
        enable(&port, &server, 12, Events::IN, ONESHOT_LEVEL);
        client.write_all(b"a").unwrap();
        expect_entry(&port, 12, Events::IN);
        expect_nothing(&port);
        client.write_all(b"b").unwrap();
        expect_nothing(&port);
        // Re-enabling with data still unread queues an entry at once.
        enable(&port, &server, 12, Events::IN, ONESHOT_LEVEL);
        expect_entry(&port, 12, Events::IN);
        expect_nothing(&port);
        assert_eq!(read_all(&mut server), 2);
        enable(&port, &server, 12, Events::IN, ONESHOT_LEVEL);
        expect_nothing(&port);
    });
}

#[test]
fn rule_12_oneshot_edge_disarms_too() {
    each_backend(|b| {
        let port = port(b);
        let (mut client, mut server) = tcp_pair();
        enable(&port, &server, 12, Events::IN, ONESHOT_EDGE);
        client.write_all(b"a").unwrap();
        expect_entry(&port, 12, Events::IN);
        client.write_all(b"b").unwrap();
        expect_nothing(&port);
        assert_eq!(read_all(&mut server), 2);
        enable(&port, &server, 12, Events::IN, ONESHOT_EDGE);
        client.write_all(b"c").unwrap();
        expect_entry(&port, 12, Events::IN);
    });
}

#[test]
fn rule_13_hangup_only_when_asked() {
    each_backend(|b| {
        let port = port(b);
        let (client, mut server) = tcp_pair();
        enable(&port, &server, 1, Events::IN | Events::HANGUP, LEVEL);
        shutdown_write(&client);
        let entry = next_entry(&port);
        assert_eq!(entry.key, 1);
        assert!(entry.events().contains(Events::HANGUP), "{entry:?}");
        assert_eq!(read_all(&mut server), 0);

        let (client, server) = tcp_pair();
        enable(&port, &server, 2, Events::IN, ONESHOT_LEVEL);
        shutdown_write(&client);
        let entry = next_entry_for(&port, 2);
        assert_eq!(entry.events(), Events::IN, "no HANGUP without asking");
    });
}

#[test]
fn rule_13_error_is_always_reported() {
    each_backend(|b| {
        let port = port(b);
        let (client, server) = tcp_pair();
        // An empty filter: ERR comes anyway.
        enable(&port, &server, 1, Events::empty(), ONESHOT_LEVEL);
        reset(client);
        let entry = next_entry(&port);
        assert_eq!((entry.key, entry.events()), (1, Events::ERR));

        let (client, server) = tcp_pair();
        enable(
            &port,
            &server,
            2,
            Events::IN | Events::HANGUP,
            ONESHOT_LEVEL,
        );
        reset(client);
        let entry = next_entry_for(&port, 2);
        let events = entry.events();
        assert!(events.contains(Events::ERR), "{entry:?}");
        assert!(
            events.contains(Events::HANGUP),
            "several bits in one entry: {entry:?}"
        );
    });
}

#[test]
fn rule_14_udp_never_reports_hangup() {
    each_backend(|b| {
        let port = port(b);
        let (a, b_sock) = udp_pair();
        enable(&port, &b_sock, 14, Events::IN | Events::HANGUP, LEVEL);
        a.send(b"datagram").unwrap();
        expect_entry(&port, 14, Events::IN);
        let mut buf = [0u8; 64];
        b_sock.recv(&mut buf).unwrap();
        expect_nothing(&port);
        // Shutting a UDP socket down makes the kernel report a hang-up; the port must not.
        socket2::SockRef::from(&b_sock)
            .shutdown(std::net::Shutdown::Both)
            .unwrap();
        let all = collect_for(&port, 5);
        // Linux makes a shut-down UDP socket readable (end of file); Windows does not.
        assert!(
            cfg!(windows) || !all.is_empty(),
            "a shut-down socket reads end-of-file: IN expected"
        );
        for e in all {
            assert!(!e.events().contains(Events::HANGUP), "{e:?}");
        }
        drop(a);
    });
}

#[test]
fn rule_15_posted_entries_come_out_unchanged() {
    each_backend(|b| {
        let port = port(b);
        let (_client, server) = tcp_pair();
        enable(&port, &server, 42, Events::IN, LEVEL);
        let posted = [
            CompletionEntry::new(42, 0xdead_beef, 7), // the registration's key
            CompletionEntry::new(usize::MAX, u32::MAX, usize::MAX),
            CompletionEntry::new(0, 0, 0),
            CompletionEntry::new(1, Events::REMOVE.bits().into(), 0),
        ];
        for entry in posted {
            port.post(entry).unwrap();
        }
        let got: Vec<CompletionEntry> = (0..posted.len()).map(|_| next_entry(&port)).collect();
        assert_eq!(got, posted, "posted entries in order, unchanged");
        expect_nothing(&port);
    });
}

/// The next entry for `key`, skipping others; fails after [`ARRIVAL`].
fn next_entry_for(port: &socknotify::CompletionPort, key: usize) -> CompletionEntry {
    let deadline = std::time::Instant::now() + ARRIVAL;
    while std::time::Instant::now() < deadline {
        if let Some(e) = dequeue(port, QUIET).into_iter().find(|e| e.key == key) {
            return e;
        }
    }
    panic!("no entry for key {key}");
}

/// Up to `batches` batches of entries.
fn collect_for(port: &socknotify::CompletionPort, batches: usize) -> Vec<CompletionEntry> {
    (0..batches).flat_map(|_| dequeue(port, QUIET)).collect()
}

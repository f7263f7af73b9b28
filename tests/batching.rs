//! Batches of registration changes applied with the wait (`docs/spec.md` rule 9 and the `process`
//! contract), on every backend. On io_uring these go through the ring's linked chain, so
//! these tests cover batches larger than the ring and the order of mixed operations.

mod util;

use std::io::Write;

use socknotify::{CompletionEntry, Events, Registration};
use util::*;

/// Auto picks epoll on Linux (measured ahead: docs/benchmarks.md, "Hot path").
#[cfg(target_os = "linux")]
#[test]
fn auto_picks_epoll_on_linux() {
    use socknotify::{Backend, CompletionPort};
    let auto = CompletionPort::new().expect("port");
    if std::env::var_os("SOCKNOTIFY_BACKEND").is_none() {
        assert_eq!(auto.backend(), Backend::Epoll);
    }
    assert_ne!(auto.backend(), Backend::Auto);
}

#[test]
fn batch_larger_than_the_ring() {
    each_backend(|b| {
        const SOCKETS: usize = 300;
        let port = port(b);
        let mut pairs = Vec::new();
        let mut batch = Vec::new();
        for key in 0..SOCKETS {
            let (mut client, server) = tcp_pair();
            client.write_all(b"x").unwrap();
            batch.push(Registration::enable(
                &server,
                key,
                Events::IN,
                ONESHOT_LEVEL,
            ));
            pairs.push((client, server));
        }
        let mut entries = vec![CompletionEntry::default(); 2 * SOCKETS];
        for round in 0..3 {
            let mut seen = vec![false; SOCKETS];
            let mut n = port
                .process(&mut batch, &mut entries, Some(ARRIVAL))
                .expect("process");
            for r in &batch {
                r.result().unwrap_or_else(|e| panic!("round {round}: {e}"));
            }
            loop {
                for e in &entries[..n] {
                    assert_eq!(e.events(), Events::IN);
                    assert!(!seen[e.key], "round {round}: key {} twice", e.key);
                    seen[e.key] = true;
                }
                if seen.iter().all(|s| *s) {
                    break;
                }
                n = port.dequeue(&mut entries, Some(ARRIVAL)).expect("dequeue");
                assert!(n > 0, "round {round}: entries missing");
            }
            // Re-arm everything in one call: data is still unread, so each fires again.
            batch = pairs
                .iter()
                .enumerate()
                .map(|(key, (_, s))| Registration::enable(s, key, Events::IN, ONESHOT_LEVEL))
                .collect();
        }
        expect_nothing(&port);
    });
}

#[test]
fn operations_on_one_socket_keep_their_order_in_a_batch() {
    each_backend(|b| {
        let port = port(b);
        let (mut client, server) = tcp_pair();
        enable(&port, &server, 4, Events::IN, ONESHOT_LEVEL);
        client.write_all(b"x").unwrap();
        expect_entry(&port, 4, Events::IN);
        // Re-arm, then remove, in one call: the REMOVE entry is the last one.
        let mut batch = [
            Registration::enable(&server, 4, Events::IN, ONESHOT_LEVEL),
            Registration::remove(&server),
        ];
        let mut entries = [CompletionEntry::default(); 8];
        let n = port
            .process(&mut batch, &mut entries, Some(ARRIVAL))
            .expect("process");
        batch[0].result().expect("re-arm");
        batch[1].result().expect("remove");
        let mut all = entries[..n].to_vec();
        all.extend(drain(&port));
        let last = all.last().expect("entries");
        assert_eq!((last.key, last.events()), (4, Events::REMOVE), "{all:?}");
        assert_eq!(all.iter().filter(|e| e.events().is_remove()).count(), 1);
        // Disable then enable in one call: enabled, with the data still unread.
        let (mut c2, s2) = tcp_pair();
        enable(&port, &s2, 5, Events::IN, LEVEL);
        let mut batch = [
            Registration::disable(&s2),
            Registration::enable(&s2, 5, Events::IN, ONESHOT_LEVEL),
        ];
        apply(&port, &mut batch);
        c2.write_all(b"y").unwrap();
        expect_entry(&port, 5, Events::IN);
        expect_nothing(&port);
    });
}

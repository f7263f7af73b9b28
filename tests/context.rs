//! `ContextPort`: per-registration contexts on every backend, over loopback sockets. Each
//! context is handed out for its own key only, comes back exactly once (REMOVE entry,
//! refused ENABLE, or close), and a stale key never reaches a newer context.

mod util;

use std::collections::HashSet;
#[cfg(unix)]
use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use socknotify::{
    is_context_key, CompletionEntry, ContextPort, Delivery, Events, Registration, Trigger,
};
use util::*;

/// A connection's context: a name and the socket it owns.
#[derive(Debug)]
struct Conn {
    name: String,
    stream: TcpStream,
}

/// The next entry, as the context port sees it.
fn next<T>(port: &ContextPort<T>) -> Delivery<T> {
    port.entry(&next_entry(port.port()))
}

/// A connected pair whose server side is owned by a context named `name`.
fn conn(name: &str) -> (TcpStream, Arc<Conn>) {
    let (client, server) = tcp_pair();
    let conn = Conn {
        name: name.into(),
        stream: server,
    };
    (client, Arc::new(conn))
}

#[test]
fn an_entry_hands_out_the_context_of_its_own_key() {
    each_backend(|b| {
        let port: ContextPort<Conn> = ContextPort::new(util::port(b));
        let (_ca, a) = conn("a");
        let (mut cb, bc) = conn("b");
        let ka = port
            .register(&a.stream, Arc::clone(&a), Events::IN, ONESHOT_LEVEL)
            .unwrap();
        let kb = port
            .register(&bc.stream, Arc::clone(&bc), Events::IN, ONESHOT_LEVEL)
            .unwrap();
        assert_ne!(ka, kb);
        assert!(is_context_key(ka) && is_context_key(kb));
        assert_eq!(port.len(), 2);
        cb.write_all(b"x").unwrap();
        match next(&port) {
            Delivery::Event {
                key,
                events,
                context,
            } => {
                assert_eq!((key, events), (kb, Events::IN));
                assert!(Arc::ptr_eq(&context, &bc), "{}", context.name);
            }
            other => panic!("expected b's entry, got {other:?}"),
        }
        // One-shot: re-armed through the next process call, with the context's key.
        let mut changes = [Registration::enable(
            &bc.stream,
            kb,
            Events::IN,
            ONESHOT_LEVEL,
        )];
        let mut entries = [CompletionEntry::default(); 4];
        let n = port
            .port()
            .process(&mut changes, &mut entries, Some(ARRIVAL))
            .unwrap();
        changes[0].result().unwrap();
        assert_eq!(n, 1);
        assert!(matches!(port.entry(&entries[0]),
            Delivery::Event { key, context, .. } if key == kb && context.name == "b"));
    });
}

#[test]
fn the_remove_entry_hands_ownership_back() {
    each_backend(|b| {
        let port: ContextPort<Conn> = ContextPort::new(util::port(b));
        let (mut client, c) = conn("c");
        let key = port
            .register(&c.stream, Arc::clone(&c), Events::IN, LEVEL)
            .unwrap();
        client.write_all(b"queued before the REMOVE").unwrap();
        apply_one(port.port(), Registration::remove(&c.stream)).unwrap();
        drop(c);
        let mut removed = None;
        while removed.is_none() {
            match next(&port) {
                Delivery::Removed { key: k, context } => {
                    assert_eq!(k, key);
                    removed = Some(context);
                }
                // An IN entry queued before the REMOVE may still come first (rule 3).
                Delivery::Event { key: k, .. } => assert_eq!(k, key),
                other => panic!("unexpected {other:?}"),
            }
        }
        let conn = Arc::into_inner(removed.unwrap()).expect("the port still holds the context");
        assert_eq!(conn.name, "c");
        assert!(port.is_empty());
        assert!(port.get(key).is_none());
        expect_nothing(port.port());
    });
}

#[test]
fn a_refused_registration_hands_the_context_back_at_once() {
    each_backend(|b| {
        let port: ContextPort<&str> = ContextPort::new(util::port(b));
        // A file where descriptors can name one; a socket registered on another port on
        // Windows, where only sockets can be passed.
        #[cfg(unix)]
        let file = File::open("/dev/null").unwrap();
        #[cfg(windows)]
        let (_other, file) = {
            let other = util::port(b);
            let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            enable(&other, &socket, 1, Events::IN, LEVEL);
            (other, socket)
        };
        let refused = port
            .register(&file, "file", Events::IN, LEVEL)
            .expect_err("a file is not a socket");
        assert_eq!(*refused.context, "file");
        assert_eq!(
            Arc::strong_count(&refused.context),
            1,
            "the port kept a clone"
        );
        assert!(port.is_empty());
        assert_eq!(port.port().registrations(), 0);

        // A socket registered already (under another key) is refused too, and the first
        // registration's context is untouched.
        let (_client, server) = tcp_pair();
        let first = port.register(&server, "first", Events::IN, LEVEL).unwrap();
        let again = port.register(&server, "second", Events::IN, LEVEL);
        assert_eq!(*again.expect_err("a second key").context, "second");
        assert_eq!(port.len(), 1);
        assert_eq!(port.get(first).as_deref(), Some(&"first"));

        // Bad flags: refused by the registration's own result.
        let (_c2, s2) = tcp_pair();
        let bad = port.register(
            &s2,
            "bad",
            Events::IN,
            Trigger::ONESHOT | Trigger::PERSISTENT,
        );
        assert_eq!(*bad.expect_err("bad trigger").context, "bad");
        assert_eq!(port.len(), 1);
    });
}

#[test]
fn close_hands_back_whatever_is_left() {
    each_backend(|b| {
        let port: ContextPort<u32> = ContextPort::new(util::port(b));
        let sockets: Vec<UdpSocket> = (0..3).map(|_| udp_pair().0).collect();
        let keys: Vec<usize> = sockets
            .iter()
            .zip(1..)
            .map(|(s, i)| port.register(s, i, Events::IN, LEVEL).unwrap())
            .collect();
        apply_one(port.port(), Registration::remove(&sockets[1])).unwrap();
        assert!(
            matches!(next(&port), Delivery::Removed { key, context } if key == keys[1] && *context == 2)
        );
        let mut left: Vec<u32> = port.close().into_iter().map(|c| *c).collect();
        left.sort_unstable();
        assert_eq!(left, [1, 3]);
        assert!(port.is_empty());
        assert!(port.port().is_closed());
        let late = port.register(&sockets[0], 4, Events::IN, LEVEL);
        assert_eq!(*late.expect_err("the port is closed").context, 4);
        assert!(port.is_empty());
        // Entries with the old keys reach nothing.
        let old = CompletionEntry::new(keys[0], u32::from(Events::IN.bits()), 0);
        assert!(matches!(port.entry(&old), Delivery::Stale(e) if e == old));
    });
}

#[test]
fn a_stale_key_never_reaches_a_new_context() {
    each_backend(|b| {
        let port: ContextPort<&str> = ContextPort::new(util::port(b));
        let (a, _peer_a) = udp_pair();
        let old = port.register(&a, "old", Events::IN, LEVEL).unwrap();
        apply_one(port.port(), Registration::remove(&a)).unwrap();
        assert!(matches!(next(&port), Delivery::Removed { context, .. } if *context == "old"));
        // The freed slot is reused, under another generation.
        let (c, peer_c) = udp_pair();
        let new = port.register(&c, "new", Events::IN, LEVEL).unwrap();
        assert_ne!(new, old);
        // An entry with the old key, as a late or forged one would be: never "new".
        port.port()
            .post(CompletionEntry::new(old, u32::from(Events::IN.bits()), 0))
            .unwrap();
        assert!(matches!(next(&port), Delivery::Stale(e) if e.key == old));
        peer_c.send(b"x").unwrap();
        assert!(
            matches!(next(&port), Delivery::Event { key, context, .. } if key == new && *context == "new")
        );
        // `take` retires a key too: the registration's next entries are stale.
        assert_eq!(port.take(new).as_deref(), Some(&"new"));
        assert!(matches!(next(&port), Delivery::Stale(e) if e.key == new));
        apply_one(port.port(), Registration::remove(&c)).unwrap();
        let rest = drain(port.port());
        assert!(
            rest.iter()
                .all(|e| matches!(port.entry(e), Delivery::Stale(_))),
            "{rest:?}"
        );
    });
}

#[test]
fn posted_entries_with_reserved_keys_pass_through_unchanged() {
    each_backend(|b| {
        let port: ContextPort<()> = ContextPort::new(util::port(b));
        let (s, _peer) = udp_pair();
        let key = port.register(&s, (), Events::IN, LEVEL).unwrap();
        for posted in [
            CompletionEntry::new(usize::MAX, 0x80, 3),
            CompletionEntry::new(0, 0xffff_ffff, 0),
            CompletionEntry::new(12345, 1, usize::MAX),
        ] {
            assert!(!is_context_key(posted.key));
            port.port().post(posted).unwrap();
            match next(&port) {
                Delivery::Other(e) => assert_eq!(e, posted),
                other => panic!("{posted:?} came out as {other:?}"),
            }
        }
        assert_eq!(port.len(), 1, "a posted REMOVE bit freed nothing");
        assert!(port.get(key).is_some());
    });
}

#[test]
fn threads_share_a_context_port_and_each_context_comes_back_once() {
    const CONNS: usize = 24;
    const THREADS: usize = 4;
    const EXIT: usize = usize::MAX;
    each_backend(|b| {
        let port: ContextPort<(usize, TcpStream)> = ContextPort::new(util::port_with(b, 2));
        let mut clients = Vec::new();
        let mut keys = HashSet::new();
        for i in 0..CONNS {
            let (client, server) = tcp_pair();
            let conn = Arc::new((i, server));
            let key = port
                .register(
                    &conn.1,
                    Arc::clone(&conn),
                    Events::IN | Events::HANGUP,
                    ONESHOT_LEVEL,
                )
                .unwrap();
            keys.insert(key);
            clients.push(client);
        }
        let returned = Mutex::new(Vec::new());
        let removes = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..THREADS {
                scope.spawn(|| {
                    let mut changes: Vec<Registration> = Vec::new();
                    let mut entries = [CompletionEntry::default(); 4];
                    loop {
                        let n = port
                            .port()
                            .process(&mut changes, &mut entries, Some(ARRIVAL))
                            .unwrap();
                        assert!(n > 0, "no entry within {ARRIVAL:?}");
                        changes.iter().for_each(|r| r.result().unwrap());
                        changes.clear();
                        for entry in &entries[..n] {
                            match port.entry(entry) {
                                Delivery::Other(e) if e.key == EXIT => {
                                    port.port().post(e).unwrap();
                                    return;
                                }
                                Delivery::Event { key, context, .. } => {
                                    // The client only shuts down: read to the end.
                                    let mut buf = [0u8; 16];
                                    let read = (&context.1).read(&mut buf);
                                    assert!(matches!(read, Ok(0)), "{read:?}");
                                    changes.push(Registration::remove(&context.1).with_key(key));
                                }
                                Delivery::Removed { key, context } => {
                                    returned.lock().unwrap().push((key, context.0));
                                    if removes.fetch_add(1, Ordering::SeqCst) + 1 == CONNS {
                                        port.port().post(CompletionEntry::new(EXIT, 0, 0)).unwrap();
                                    }
                                }
                                other => panic!("unexpected {other:?}"),
                            }
                        }
                    }
                });
            }
            for client in clients.drain(..) {
                shutdown_write(&client);
            }
        });
        let returned = returned.into_inner().unwrap();
        assert_eq!(returned.len(), CONNS, "{returned:?}");
        let got_keys: HashSet<usize> = returned.iter().map(|r| r.0).collect();
        assert_eq!(got_keys, keys, "each context back once, under its own key");
        let mut ids: Vec<usize> = returned.iter().map(|r| r.1).collect();
        ids.sort_unstable();
        assert_eq!(ids, (0..CONNS).collect::<Vec<_>>());
        assert!(port.is_empty());
        assert_eq!(port.port().registrations(), 0);
    });
}

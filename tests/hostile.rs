//! Hostile input: every bit pattern of a registration, descriptors that are closed, absurd
//! or not sockets, double removes, a second port, keys equal to internal sentinel values,
//! and empty or huge entry buffers. Each gets a specific result; none panics, leaks a
//! descriptor, or changes another registration.
//!
//! Every test holds [`SERIAL`] and checks that the process has as many descriptors open
//! afterwards as before, which only means something while no other test of the process
//! opens or closes descriptors at the same time.

mod util;

use std::io::{ErrorKind, Write};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::Duration;

use socknotify::{Backend, CompletionEntry, ErrorCause, Events, RawSocketLike, Registration};
use util::*;

static SERIAL: Mutex<()> = Mutex::new(());

/// Runs `test` on every backend, alone, and checks that it leaves no descriptor open.
fn hostile(test: impl Fn(Backend)) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let before = open_descriptors();
    each_backend(test);
    assert_eq!(open_descriptors(), before, "descriptors leaked");
}

/// Runs `f` on another thread and fails if it does not finish within [`ARRIVAL`]: for calls
/// that must return at once even though they were given no timeout.
fn returns_promptly<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || tx.send(f()).unwrap());
    rx.recv_timeout(ARRIVAL).expect("the call blocked")
}

/// Rule 1 as a table: `None` when the bits are valid. Unknown bits are invalid in every
/// field whatever the operation, NONE included.
fn bits_error(filter: u16, op: u8, trigger: u8) -> Option<ErrorKind> {
    let invalid = Some(ErrorKind::InvalidInput);
    match op {
        0x00 | 0x01 | 0x02 | 0x04 => {}
        _ => return invalid,
    }
    if filter & !0x07 != 0 || trigger & !0x0f != 0 {
        return invalid;
    }
    // Exactly one of LEVEL/EDGE; at most one of ONESHOT/PERSISTENT (neither: PERSISTENT).
    let one_edge = (trigger & 0x04 != 0) != (trigger & 0x08 != 0);
    if op == 0x01 && !(trigger & 0x03 != 0x03 && one_edge) {
        return invalid;
    }
    None
}

/// The scratch socket that valid bit patterns are aimed at, with what the port should know
/// of it.
struct Scratch {
    fd: RawSocketLike,
    key: usize,
    registered: bool,
    removes: usize,
}

impl Scratch {
    /// The result a valid pattern must get on the scratch socket.
    fn expect(&mut self, op: u8) -> Option<ErrorKind> {
        match op {
            0x01 => {
                self.registered = true;
                None
            }
            0x02 if self.registered => None,
            0x04 if self.registered => {
                self.registered = false;
                self.removes += 1;
                None
            }
            0x02 | 0x04 => Some(ErrorKind::NotFound),
            _ => None,
        }
    }
}

#[test]
fn every_bit_pattern_gets_its_result_and_others_stay_unchanged() {
    hostile(|b| {
        const KEY: usize = 0x7a11;
        const SCRATCH_KEY: usize = 0x5c;
        let port = port(b);
        let (mut client, target) = tcp_pair();
        client.write_all(b"unread").unwrap();
        enable(&port, &target, KEY, Events::IN, LEVEL);
        expect_entry(&port, KEY, Events::IN);
        let (_c, scratch_socket) = tcp_pair();
        let mut scratch = Scratch {
            fd: raw(&scratch_socket),
            key: SCRATCH_KEY,
            registered: false,
            removes: 0,
        };
        let (in_, level) = (Events::IN.bits(), LEVEL.bits());
        let mut patterns: Vec<(u16, u8, u8)> = Vec::new();
        patterns.extend((0..=u8::MAX).map(|op| (in_, op, level)));
        for op in [0x01, 0x02, 0x04] {
            patterns.extend((0..=u8::MAX).map(|trigger| (in_, op, trigger)));
        }
        for (op, trigger) in [(0x01, level), (0x02, 0), (0x04, 0), (0x00, 0xff)] {
            patterns.extend((0..=u16::MAX).map(|filter| (filter, op, trigger)));
        }
        let mut entries = vec![CompletionEntry::default(); 16];
        let mut checked = 0;
        let mut removes = 0;
        for chunk in patterns.chunks(4096) {
            // Invalid patterns go to the registered socket, with its own key: if one were
            // applied, it would change that registration. Valid ones go to the scratch socket.
            let mut wants = Vec::new();
            let mut batch: Vec<_> = chunk
                .iter()
                .map(
                    |&(filter, op, trigger)| match bits_error(filter, op, trigger) {
                        Some(kind) => {
                            wants.push(Some(kind));
                            Registration::from_bits(raw(&target), KEY, filter, op, trigger)
                        }
                        None => {
                            wants.push(scratch.expect(op));
                            Registration::from_bits(scratch.fd, scratch.key, filter, op, trigger)
                        }
                    },
                )
                .collect();
            // The call still dequeues (rule 9).
            let n = port
                .process(&mut batch, &mut entries, Some(Duration::ZERO))
                .expect("process");
            assert!(n > 0, "no entry from the registered socket");
            for e in &entries[..n] {
                match e.key {
                    KEY => assert_eq!(e.events(), Events::IN, "{e:?}"),
                    SCRATCH_KEY if e.events() == Events::REMOVE => removes += 1,
                    SCRATCH_KEY => {}
                    _ => panic!("unexpected {e:?}"),
                }
            }
            for (r, want) in batch.iter().zip(&wants) {
                let got = r.result().err().map(|e| e.kind());
                assert_eq!(got, *want, "{r:?}");
                checked += 1;
            }
        }
        assert_eq!(checked, patterns.len());
        // The registered socket is as it was: still registered with its key, filter and
        // trigger (IN alone, persistent level: again and again, never OUT).
        let scratch_count = usize::from(scratch.registered);
        assert_eq!(port.registrations(), 1 + scratch_count);
        if scratch.registered {
            apply_one(&port, Registration::remove(&scratch_socket)).expect("remove scratch");
            scratch.removes += 1;
        }
        let mut ours = 0;
        // Persistent level: the registered socket reports IN on every dequeue, so this ends
        // once the scratch socket's REMOVE entries are all in.
        while ours < 3 || removes < scratch.removes {
            let e = next_entry(&port);
            match e.key {
                KEY => {
                    assert_eq!(e.events(), Events::IN, "{e:?}");
                    ours += 1;
                    assert!(ours < 100_000, "REMOVE entries missing");
                }
                SCRATCH_KEY if e.events() == Events::REMOVE => removes += 1,
                SCRATCH_KEY => {}
                _ => panic!("unexpected {e:?}"),
            }
        }
        assert_eq!(
            removes, scratch.removes,
            "one REMOVE entry per valid REMOVE"
        );
        remove_and_wait(&port, &target, KEY);
        assert_eq!(port.registrations(), 0);
    });
}

#[test]
fn bad_descriptors_get_their_error_and_change_nothing() {
    hostile(|b| {
        let port = port(b);
        let (mut client, server) = tcp_pair();
        enable(&port, &server, 1, Events::IN, LEVEL);
        let ops = |fd: RawSocketLike| {
            [
                Registration::from_raw(fd, 9, Events::IN, socknotify::Operation::Enable, LEVEL),
                Registration::from_raw(fd, 9, Events::IN, socknotify::Operation::Enable, EDGE),
                Registration::from_bits(fd, 9, 0, 0x02, 0),
                Registration::from_bits(fd, 9, 0, 0x04, 0),
            ]
        };
        let kinds = |r: &[Registration]| -> Vec<ErrorCause> {
            r.iter()
                .map(|r| ErrorCause::of(&r.result().unwrap_err()).expect("a socknotify error"))
                .collect()
        };
        use ErrorCause::{BadDescriptor, NotSocket};
        // Negative, or far above any open number (the limit here is far below 2^24, so no
        // other thread can have it open): a closed descriptor whatever the operation, with
        // the OS code EBADF (rule 22).
        for fd in closed_sockets() {
            let want = [BadDescriptor; 4];
            let mut batch = ops(fd);
            apply(&port, &mut batch);
            assert_eq!(kinds(&batch), want, "descriptor {fd}");
        }
        for NonSocket { what, raw, .. } in non_sockets() {
            let mut batch = ops(raw);
            apply(&port, &mut batch);
            assert_eq!(kinds(&batch), [NotSocket; 4], "{what}");
            for r in &batch {
                let code = r.result().unwrap_err().raw_os_error();
                assert_eq!(code, Some(ENOTSOCK), "{what}");
            }
        }
        // The real registration is untouched.
        assert_eq!(port.registrations(), 1);
        client.write_all(b"x").unwrap();
        expect_entry(&port, 1, Events::IN);
        remove_and_wait(&port, &server, 1);
        assert_eq!(port.registrations(), 0);
    });
}

#[test]
fn double_remove_is_not_found_and_queues_one_entry() {
    hostile(|b| {
        let port = port(b);
        let (_client, server) = tcp_pair();
        enable(&port, &server, 4, Events::OUT, LEVEL);
        // Twice in one batch, then again in another, then DISABLE after it.
        let mut batch = [Registration::remove(&server), Registration::remove(&server)];
        let results = apply(&port, &mut batch);
        assert!(results[0].is_ok(), "{:?}", results[0]);
        assert_eq!(results[1].as_ref().unwrap_err().kind(), ErrorKind::NotFound);
        for r in [
            Registration::remove(&server),
            Registration::disable(&server),
        ] {
            let err = apply_one(&port, r).expect_err("after REMOVE");
            assert_eq!(err.kind(), ErrorKind::NotFound);
        }
        let all = drain(&port);
        let removes: Vec<_> = all.iter().filter(|e| e.events().is_remove()).collect();
        assert_eq!(removes.len(), 1, "{all:?}");
        assert_eq!(*all.last().unwrap(), CompletionEntry::new(4, 0x80, 0));
        assert_eq!(port.registrations(), 0);
        // After the REMOVE entry, the socket registers afresh.
        enable(&port, &server, 5, Events::OUT, ONESHOT_LEVEL);
        expect_entry(&port, 5, Events::OUT);
        remove_and_wait(&port, &server, 5);
    });
}

#[test]
fn a_second_port_is_refused_and_the_first_keeps_the_socket() {
    hostile(|b| {
        let first = port(b);
        let (mut client, server) = tcp_pair();
        enable(&first, &server, 1, Events::IN, LEVEL);
        // Another backend of this OS (the first one), then the same backend.
        for other in [backends()[0], b] {
            let second = util::port(other);
            let mut batch = [
                Registration::enable(&server, 1, Events::IN, LEVEL),
                Registration::enable(&server, 2, Events::OUT, ONESHOT_LEVEL),
                Registration::disable(&server),
                Registration::remove(&server),
            ];
            let kinds: Vec<_> = apply(&second, &mut batch)
                .into_iter()
                .map(|r| r.unwrap_err().kind())
                .collect();
            use ErrorKind::{AlreadyExists, NotFound};
            assert_eq!(kinds, [AlreadyExists, AlreadyExists, NotFound, NotFound]);
            assert_eq!(second.registrations(), 0);
            expect_nothing(&second);
        }
        client.write_all(b"x").unwrap();
        expect_entry(&first, 1, Events::IN);
        // Once the first port lets go, another may take it.
        remove_and_wait(&first, &server, 1);
        let second = port(b);
        enable(&second, &server, 2, Events::IN, LEVEL);
        expect_entry(&second, 2, Events::IN);
        remove_and_wait(&second, &server, 2);
    });
}

/// Keys and entry fields equal to the values the implementation uses internally (the wake
/// and probe tokens, the slab's free-list end, generation boundaries).
const SENTINELS: [usize; 8] = [
    usize::MAX,
    u64::MAX as usize,
    (u64::MAX - 1) as usize,
    u32::MAX as usize,
    (u32::MAX - 1) as usize,
    (u32::MAX - 2) as usize,
    1 << 32,
    0,
];

#[test]
fn sentinel_keys_work_for_registrations_and_posts() {
    hostile(|b| {
        let port = port(b);
        let pairs: Vec<_> = SENTINELS.iter().map(|_| tcp_pair()).collect();
        for (&key, (client, server)) in SENTINELS.iter().zip(&pairs) {
            enable(&port, server, key, Events::IN, ONESHOT_LEVEL);
            (&*client).write_all(b"x").unwrap();
        }
        let mut got: Vec<_> = drain(&port).iter().map(|e| (e.key, e.bytes)).collect();
        got.sort_unstable();
        got.dedup();
        let mut want: Vec<_> = SENTINELS.iter().map(|&k| (k, 0x01)).collect();
        want.sort_unstable();
        want.dedup();
        assert_eq!(got, want);
        // Posts with every field at a sentinel come out unchanged, even with REMOVE's bit
        // and a registration's key, and end nothing.
        for &key in &SENTINELS {
            for (bytes, overlapped) in [(u32::MAX, usize::MAX), (0x80, 0), (0, key)] {
                let entry = CompletionEntry::new(key, bytes, overlapped);
                port.post(entry).unwrap();
                assert_eq!(next_entry(&port), entry);
            }
        }
        assert_eq!(port.registrations(), SENTINELS.len());
        for (&key, (_, server)) in SENTINELS.iter().zip(&pairs) {
            enable(&port, server, key, Events::IN, ONESHOT_LEVEL);
            expect_entry(&port, key, Events::IN);
            remove_and_wait(&port, server, key);
        }
        assert_eq!(port.registrations(), 0);
    });
}

#[test]
fn empty_and_huge_entry_buffers() {
    hostile(|b| {
        let port = Arc::new(port(b));
        let (mut client, server) = tcp_pair();
        // An empty buffer: dequeue refuses it at once, whatever the timeout...
        for timeout in [None, Some(Duration::ZERO), Some(ARRIVAL)] {
            let p = port.clone();
            let err = returns_promptly(move || p.dequeue(&mut [], timeout)).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "{timeout:?}");
        }
        // ...and process only registers, returning at once even without a timeout.
        let fd = raw(&server);
        let p = port.clone();
        let (n, result) = returns_promptly(move || {
            let mut batch = [Registration::from_raw(
                fd,
                3,
                Events::IN,
                socknotify::Operation::Enable,
                LEVEL,
            )];
            let n = p.process(&mut batch, &mut [], None);
            (n.unwrap(), batch[0].result())
        });
        assert_eq!(n, 0);
        result.expect("registered through an empty-buffer process");
        let p = port.clone();
        assert_eq!(
            returns_promptly(move || p.process(&mut [], &mut [], None)).unwrap(),
            0
        );
        // A huge buffer: the entries there are, no more.
        client.write_all(b"x").unwrap();
        for i in 0..3 {
            port.post(CompletionEntry::new(100 + i, 0, 0)).unwrap();
        }
        let mut huge = vec![CompletionEntry::default(); 1 << 20];
        let n = port.dequeue(&mut huge, Some(ARRIVAL)).expect("dequeue");
        let mut keys: Vec<_> = huge[..n].iter().map(|e| e.key).collect();
        keys.sort_unstable();
        keys.retain(|&k| k != 3); // the socket's entry may come in this call or the next
        assert_eq!(keys, [100, 101, 102]);
        assert!(huge[n..].iter().all(|e| *e == CompletionEntry::default()));
        let n = port
            .process(&mut [], &mut huge, Some(ARRIVAL))
            .expect("process into a huge buffer");
        assert_eq!(huge[..n], vec![CompletionEntry::new(3, 1, 0); n][..]);
        drop(huge);
        // Ordinary calls work as before.
        let mut two = [CompletionEntry::default(); 2];
        assert!(port.dequeue(&mut two, Some(ARRIVAL)).unwrap() > 0);
        remove_and_wait(&port, &server, 3);
    });
}

#[test]
fn huge_timeouts_wait_and_wake_normally() {
    hostile(|b| {
        let port = Arc::new(port(b));
        for timeout in [
            Duration::MAX,
            Duration::from_secs(u64::MAX / 4),
            Duration::from_secs(1 << 40),
            Duration::from_nanos(u64::MAX),
        ] {
            let p = port.clone();
            let waiter = thread::spawn(move || {
                let mut entries = [CompletionEntry::default(); 2];
                let n = p.dequeue(&mut entries, Some(timeout));
                n.map(|n| entries[..n].to_vec())
            });
            wait_for_stats(&port, "a waiter", |s| s.waiting_in_kernel == 1);
            let entry = CompletionEntry::new(7, 8, 9);
            port.post(entry).unwrap();
            let got = waiter.join().unwrap().expect("dequeue");
            assert_eq!(got, [entry], "{timeout:?}");
        }
    });
}

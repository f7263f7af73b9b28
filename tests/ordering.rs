//! SPEC rules 2, 4, 10, 12 and 16 under races: each socket's changes take effect in the
//! order the port decided them, whatever thread makes them and whenever that thread next
//! enters the kernel (issue 10, rows a, b and c).

mod util;

use std::io::{self, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use socknotify::{CompletionEntry, CompletionPort, ErrorCause, Events, Operation, Registration};
use util::race::{jitter, race};
use util::*;

/// A connected, non-blocking stream pair `(socket, peer)`.
fn stream_pair() -> (TcpStream, TcpStream) {
    let (client, server) = tcp_pair();
    (server, client)
}

/// Never the backend's raw ENOENT.
fn assert_no_enoent(result: &io::Result<()>, what: &str) {
    if let Err(e) = result {
        assert_ne!(e.raw_os_error(), Some(ENOENT), "{what}: raw ENOENT: {e}");
    }
}

/// The cause of a failed result, `None` for `Ok`.
fn cause(result: &io::Result<()>) -> Option<ErrorCause> {
    result.as_ref().err().map(|e| {
        ErrorCause::of(e).unwrap_or_else(|| panic!("an error socknotify did not classify: {e}"))
    })
}

/// Expects the next entry of `port` to be exactly `key` with `events`.
fn expect_next(port: &CompletionPort, key: usize, events: Events, what: &str) {
    let mut entry = [CompletionEntry::default(); 1];
    let n = port.dequeue(&mut entry, Some(ARRIVAL)).expect("dequeue");
    assert_eq!(
        n, 1,
        "{what}: no entry within {ARRIVAL:?}: the registration is silent"
    );
    let e = entry[0];
    assert_eq!(
        (e.key, e.events(), e.overlapped),
        (key, events, 0),
        "{what}: unexpected entry {e:?}"
    );
}

/// One trial of row a: socket `x`, registered under `old_key`.
struct Rearm {
    x: TcpStream,
    peer: Mutex<TcpStream>,
    old_key: usize,
    new_key: usize,
    delay: usize,
    /// A's batch, built beforehand so that A enters `process` at once.
    batch: Mutex<Vec<Registration>>,
    /// A is about to call `process`.
    started: AtomicBool,
}

/// A long batch that re-arms X last, after one re-arm of each filler: all distinct
/// sockets, so that they go to the kernel together and X's change reaches it last.
fn long_batch(
    fillers: &[(TcpStream, TcpStream)],
    x: &TcpStream,
    key: usize,
    events: Events,
) -> Vec<Registration> {
    let mut batch: Vec<_> = fillers
        .iter()
        .enumerate()
        .map(|(i, (s, _))| Registration::enable(s, 1000 + i, Events::IN, ONESHOT_LEVEL))
        .collect();
    batch.push(Registration::enable(x, key, events, ONESHOT_LEVEL));
    batch
}

/// Spins until `flag` is set.
fn spin_until(flag: &AtomicBool) {
    let deadline = Instant::now() + ARRIVAL;
    while !flag.load(SeqCst) {
        assert!(Instant::now() < deadline, "the other thread never started");
        std::hint::spin_loop();
    }
}

/// Thread A re-arms X at the end of a long batch (its change is decided early and, on a
/// backend that defers it, reaches the kernel late); thread B meanwhile REMOVEs X and
/// ENABLEs it again under another key. Whatever order the port chose, the registration
/// that is left reports when X becomes readable, under its own key.
#[test]
fn rule_04_rearm_racing_remove_and_enable_never_leaves_the_registration_silent_row_a() {
    each_backend(|b| {
        const FILLERS: usize = 500;
        let port = port(b);
        let fillers: Vec<_> = (0..FILLERS).map(|_| stream_pair()).collect();
        for (i, (s, _)) in fillers.iter().enumerate() {
            enable(&port, s, 1000 + i, Events::IN, ONESHOT_LEVEL);
        }
        let mut rng = Rng::new(0x0a0a);
        let mut outcomes = std::collections::BTreeMap::<String, usize>::new();
        let trials = race(
            60,
            Duration::from_secs(2),
            |i| {
                let (x, peer) = stream_pair();
                let old_key = 2 * i;
                enable(&port, &x, old_key, Events::IN, ONESHOT_LEVEL);
                let batch = long_batch(&fillers, &x, old_key, Events::IN);
                Rearm {
                    x,
                    peer: Mutex::new(peer),
                    old_key,
                    new_key: old_key + 1,
                    delay: rng.below(300),
                    batch: Mutex::new(batch),
                    started: AtomicBool::new(false),
                }
            },
            |t| {
                let mut batch = t.batch.lock().unwrap();
                t.started.store(true, SeqCst);
                port.process(&mut batch, &mut [], Some(Duration::ZERO))
                    .expect("process");
                for r in &batch[..batch.len() - 1] {
                    r.result().expect("filler re-arm");
                }
                batch.last().unwrap().result()
            },
            |t| {
                spin_until(&t.started);
                jitter(t.delay);
                let removed = apply_one(&port, Registration::remove(&t.x));
                let enabled = apply_one(
                    &port,
                    Registration::enable(&t.x, t.new_key, Events::IN, ONESHOT_LEVEL),
                );
                (removed, enabled)
            },
            |i, t, rearm, (removed, enabled)| {
                for (r, what) in [
                    (&rearm, "re-arm"),
                    (&removed, "REMOVE"),
                    (&enabled, "ENABLE"),
                ] {
                    assert_no_enoent(r, &format!("trial {i}, {what}"));
                }
                removed.unwrap_or_else(|e| panic!("trial {i}: REMOVE of a registered socket: {e}"));
                // Re-arm, REMOVE, ENABLE: the new key. REMOVE, re-arm, ENABLE: the re-arm
                // made a new registration with the old key, and the ENABLE is a key change.
                // REMOVE, ENABLE, re-arm: the re-arm is a key change.
                let key = match (cause(&rearm), cause(&enabled)) {
                    (None | Some(ErrorCause::KeyChange), None) => t.new_key,
                    (None, Some(ErrorCause::KeyChange)) => t.old_key,
                    other => panic!(
                        "trial {i}: no sequential order gives re-arm {rearm:?}, ENABLE \
                         {enabled:?} ({other:?})"
                    ),
                };
                *outcomes
                    .entry(format!("{:?}/{:?}", cause(&rearm), cause(&enabled)))
                    .or_default() += 1;
                let what = format!("trial {i}, key {key}");
                expect_next(&port, t.old_key, Events::REMOVE, &what);
                t.peer.lock().unwrap().write_all(b"x").unwrap();
                expect_next(&port, key, Events::IN, &what);
                apply_one(&port, Registration::remove(&t.x))
                    .unwrap_or_else(|e| panic!("{what}: REMOVE: {e}"));
                expect_next(&port, key, Events::REMOVE, &what);
            },
        );
        eprintln!("{b:?}: {trials} trials, outcomes {outcomes:?}");
        expect_nothing(&port);
        assert_eq!(port.registrations(), FILLERS);
    });
}

/// Two threads re-arm one one-shot registration at once, each with its own filter, and each
/// then waits in its own `process(.., None)`: A's re-arm comes last in a long batch (decided
/// first, it may reach the kernel last), B's alone, once A is inside `process`. Two other
/// threads wait in `dequeue(None)` all along. Then the socket becomes readable: the entry
/// must come, to one of the four, without any further call on the port to unstick it.
#[test]
fn rule_12_concurrent_rearms_then_infinite_waits_get_the_entry_row_b() {
    each_backend(|b| {
        const ROUNDS: usize = 20;
        const FILLERS: usize = 500;
        const PROMPT: Duration = Duration::from_secs(2);
        const WAKE: usize = usize::MAX - 1;
        let port = Arc::new(port_with(b, 8));
        let fillers: Arc<Vec<_>> = Arc::new((0..FILLERS).map(|_| stream_pair()).collect());
        for (i, (s, _)) in fillers.iter().enumerate() {
            enable(&port, s, 1000 + i, Events::IN, ONESHOT_LEVEL);
        }
        // Every entry any thread gets: (thread, entry).
        let (entries_tx, entries_rx) = mpsc::channel::<(usize, CompletionEntry)>();
        let waiters: Vec<_> = (2..4)
            .map(|w| {
                let (port, tx) = (port.clone(), entries_tx.clone());
                thread::spawn(move || {
                    let mut entries = [CompletionEntry::default(); 1];
                    while let Ok(n) = port.dequeue(&mut entries, None) {
                        for e in &entries[..n] {
                            tx.send((w, *e)).unwrap();
                        }
                    }
                })
            })
            .collect();
        wait_for_stats(&port, "two waiting threads", |s| {
            s.waiting_in_kernel + s.waiting_for_slot == 2
        });
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut rounds = 0;
        while rounds < ROUNDS && (rounds == 0 || Instant::now() < deadline) {
            let key = 10 + rounds;
            let (x, mut peer) = stream_pair();
            enable(&port, &x, key, Events::IN, ONESHOT_LEVEL);
            let x = Arc::new(x);
            let started = Arc::new(AtomicBool::new(false));
            let (done_tx, done_rx) = mpsc::channel();
            let rearmers: Vec<_> = [Events::IN, Events::IN | Events::HANGUP]
                .into_iter()
                .enumerate()
                .map(|(t, filter)| {
                    let (port, x, fillers, started, entries_tx, done_tx) = (
                        port.clone(),
                        x.clone(),
                        fillers.clone(),
                        started.clone(),
                        entries_tx.clone(),
                        done_tx.clone(),
                    );
                    thread::spawn(move || {
                        let mut batch = if t == 0 {
                            long_batch(&fillers, &x, key, filter)
                        } else {
                            vec![Registration::enable(&*x, key, filter, ONESHOT_LEVEL)]
                        };
                        let mut entries = [CompletionEntry::default(); 1];
                        if t == 0 {
                            started.store(true, SeqCst);
                        } else {
                            // Once A is deciding its batch: B's change is decided after A's.
                            spin_until(&started);
                            let spin = Instant::now();
                            while spin.elapsed() < Duration::from_micros(100) {
                                std::hint::spin_loop();
                            }
                        }
                        let n = port
                            .process(&mut batch, &mut entries, None)
                            .expect("process");
                        for e in &entries[..n] {
                            entries_tx.send((t, *e)).unwrap();
                        }
                        for r in &batch {
                            let r = r.result();
                            assert_no_enoent(&r, &format!("thread {t}"));
                            r.expect("re-arm");
                        }
                        done_tx.send(t).unwrap();
                    })
                })
                .collect();
            drop(done_tx);
            // All four waiting (and a moment for the changes to reach the kernel), then the
            // socket becomes readable.
            // (Polling with sleeps: a spinning test thread would keep a CPU from the racers.)
            let until = Instant::now() + ARRIVAL;
            while {
                let s = port.stats();
                s.waiting_in_kernel + s.waiting_for_slot < 4
            } {
                assert!(Instant::now() < until, "{:?}", port.stats());
                thread::sleep(Duration::from_millis(1));
            }
            thread::sleep(Duration::from_millis(20));
            peer.write_all(b"readable").unwrap();
            let arrived = loop {
                match entries_rx.recv_timeout(PROMPT) {
                    Ok((_, e)) if e.key == WAKE => continue, // a wake of an earlier round
                    Ok((who, e)) => break Some((who, e)),
                    Err(_) => break None,
                }
            };
            let Some((who, entry)) = arrived else {
                port.close();
                panic!(
                    "{b:?}, round {rounds}: no entry within {PROMPT:?} of two re-arms and \
                     the socket becoming readable"
                );
            };
            assert_eq!(
                (entry.key, entry.events()),
                (key, Events::IN),
                "thread {who}: {entry:?}"
            );
            // Wake the re-arming threads that still wait, so that they finish the round.
            let mut done = 0;
            let until = Instant::now() + ARRIVAL;
            while done < 2 {
                assert!(
                    Instant::now() < until,
                    "the re-arming threads do not return"
                );
                // A few at once: a waiter that takes one and comes back is not the only
                // one to get them.
                for _ in 0..4 {
                    port.post(CompletionEntry::new(WAKE, 0, 0)).unwrap();
                }
                if done_rx.recv_timeout(Duration::from_millis(50)).is_ok() {
                    done += 1;
                }
            }
            for h in rearmers {
                h.join().expect("a re-arming thread");
            }
            // Any second entry for the socket comes from a re-arm; anything else is wrong.
            while let Ok((who, e)) = entries_rx.recv_timeout(Duration::from_millis(20)) {
                assert!(e.key == WAKE || e.key == key, "thread {who}: {e:?}");
            }
            apply_one(&port, Registration::remove(&*x)).expect("remove");
            let until = Instant::now() + ARRIVAL;
            loop {
                let (who, e) = entries_rx
                    .recv_timeout(until.saturating_duration_since(Instant::now()))
                    .expect("no REMOVE entry");
                if e.key == key && e.events() == Events::REMOVE {
                    break;
                }
                assert!(e.key == WAKE || e.key == key, "thread {who}: {e:?}");
            }
            rounds += 1;
        }
        eprintln!("{b:?}: {rounds} rounds");
        port.close();
        for h in waiters {
            h.join().expect("a waiting thread");
        }
    });
}

/// Row c: the storm of `tests/faults.rs`, repeated until a deadline. Togglers DISABLE and
/// re-ENABLE one-shot registrations of sockets with unread data while dequeuers take the
/// entries; between two entries of one socket there must have been an ENABLE that ended
/// after the first entry's call began and began before the second entry's call ended.
#[test]
fn rule_12_disable_enable_storm_never_gives_two_one_shot_entries_without_an_enable_row_c() {
    each_backend(|b| {
        const MAX_ROUNDS: usize = 12;
        const BUDGET: Duration = Duration::from_secs(2);
        let start = Instant::now();
        let mut rounds = 0;
        let mut totals = (0, 0);
        while rounds < MAX_ROUNDS && (rounds == 0 || start.elapsed() < BUDGET) {
            let (toggles, entries) = storm(b, rounds as u64, start + BUDGET);
            totals.0 += toggles;
            totals.1 += entries;
            rounds += 1;
        }
        eprintln!(
            "{b:?}: {rounds} rounds, {} toggles, {} entries",
            totals.0, totals.1
        );
    });
}

/// One storm; returns the toggles made and the entries delivered.
fn storm(b: socknotify::Backend, seed: u64, deadline: Instant) -> (usize, usize) {
    const SOCKETS: usize = 8;
    const TOGGLERS: usize = 2;
    const DEQUEUERS: usize = 2;
    const TOGGLES: usize = 1500;
    let port = Arc::new(port_with(b, 4));
    let (clients, servers): (Vec<_>, Vec<_>) = (0..SOCKETS).map(|_| tcp_pair()).unzip();
    for (key, (mut client, server)) in clients.iter().zip(&servers).enumerate() {
        client.write_all(b"unread").unwrap();
        enable(&port, server, key, Events::IN, ONESHOT_LEVEL);
    }
    let servers = Arc::new(servers);
    let seq = Arc::new(AtomicUsize::new(0));
    let enables = Arc::new(Mutex::new(vec![Vec::new(); SOCKETS]));
    let entries_log = Arc::new(Mutex::new(vec![Vec::new(); SOCKETS]));
    let toggled = Arc::new(AtomicUsize::new(0));
    let dequeuers: Vec<_> = (0..DEQUEUERS)
        .map(|_| {
            let (port, seq, log) = (port.clone(), seq.clone(), entries_log.clone());
            thread::spawn(move || {
                let mut entries = [CompletionEntry::default(); 4];
                loop {
                    let before = seq.fetch_add(1, SeqCst);
                    let n = port.dequeue(&mut entries, Some(ARRIVAL)).expect("dequeue");
                    let after = seq.fetch_add(1, SeqCst);
                    for e in &entries[..n] {
                        if e.key == EXIT {
                            port.post(*e).unwrap();
                            return;
                        }
                        assert_eq!(e.events(), Events::IN, "{e:?}");
                        log.lock().unwrap()[e.key].push((before, after));
                    }
                }
            })
        })
        .collect();
    // The storm starts once the dequeuers are taking entries (every socket is armed with
    // unread data): on a loaded machine they may otherwise not run before the togglers are
    // done, and then take the exit entry first, leaving nothing checked.
    let started = Instant::now();
    while entries_log.lock().unwrap().iter().all(Vec::is_empty) {
        assert!(started.elapsed() < ARRIVAL, "no entry before the storm");
        thread::sleep(Duration::from_millis(1));
    }
    let togglers: Vec<_> = (0..TOGGLERS as u64)
        .map(|t| {
            let (port, seq, servers, enables, toggled) = (
                port.clone(),
                seq.clone(),
                servers.clone(),
                enables.clone(),
                toggled.clone(),
            );
            thread::spawn(move || {
                let mut rng = Rng::new(seed << 8 | t);
                let mut done = 0;
                while done < TOGGLES && (done % 64 != 0 || Instant::now() < deadline) {
                    let i = rng.below(SOCKETS);
                    let registration = if rng.one_in(2) {
                        Registration::disable(&servers[i])
                    } else {
                        Registration::enable(&servers[i], i, Events::IN, ONESHOT_LEVEL)
                    };
                    let enabling = registration.operation() == Some(Operation::Enable);
                    let before = seq.fetch_add(1, SeqCst);
                    apply_one(&port, registration).expect("toggle");
                    let after = seq.fetch_add(1, SeqCst);
                    if enabling {
                        enables.lock().unwrap()[i].push((before, after));
                    }
                    done += 1;
                }
                toggled.fetch_add(done, SeqCst);
            })
        })
        .collect();
    for h in togglers {
        h.join().expect("toggler");
    }
    port.post(CompletionEntry::new(EXIT, 0, 0)).unwrap();
    for h in dequeuers {
        h.join().expect("dequeuer");
    }
    let enables = enables.lock().unwrap();
    let log = entries_log.lock().unwrap();
    let mut total = 0;
    for i in 0..SOCKETS {
        let mut got = log[i].clone();
        got.sort_unstable();
        total += got.len();
        // Each entry was taken somewhere inside its call; calls overlap, so either entry of
        // a pair may have been taken first: an ENABLE must fit between them in one of the
        // two orders. (Any two entries of a socket have one between them, so checking the
        // pairs adjacent in call order is enough to be sound.)
        for w in got.windows(2) {
            let ((b1, a1), (b2, a2)) = (w[0], w[1]);
            assert!(
                enables[i]
                    .iter()
                    .any(|&(eb, ea)| (ea > b1 && eb < a2) || (ea > b2 && eb < a1)),
                "storm {seed}, socket {i}: a second one-shot entry without an ENABLE in \
                 between (calls {:?} and {:?})",
                w[0],
                w[1]
            );
        }
    }
    assert!(total > 0, "the storm delivered nothing at all");
    // Afterwards a final ENABLE brings every socket back, one entry each.
    for (key, server) in servers.iter().enumerate() {
        enable(&port, server, key, Events::IN, ONESHOT_LEVEL);
    }
    let mut keys: Vec<_> = drain(&port).iter().map(|e| e.key).collect();
    keys.sort_unstable();
    assert_eq!(keys.pop(), Some(EXIT));
    assert_eq!(keys, (0..SOCKETS).collect::<Vec<_>>());
    (toggled.load(SeqCst), total)
}

/// Found by the fuzzer: a request that had to start again (its slot was freed by an
/// earlier REMOVE of the same batch) ran after the later requests of the batch, so a
/// DISABLE through a duplicate hit the registration a later ENABLE created. A batch's
/// requests take effect in order.
#[test]
fn rule_09_a_batch_takes_effect_in_order_across_a_remove() {
    each_backend(|b| {
        let port = port(b);
        let (mut client, a) = tcp_pair();
        let dup = a.try_clone().expect("try_clone");
        let mut batch = [
            Registration::enable(&a, 1, Events::IN, socknotify::Trigger::LEVEL),
            Registration::remove(&a),
            Registration::disable(&dup),
            Registration::enable(&a, 6, Events::IN, socknotify::Trigger::LEVEL),
        ];
        port.process(&mut batch, &mut [], None).expect("process");
        batch[0].result().expect("enable");
        batch[1].result().expect("remove");
        let err = batch[2].result().expect_err("DISABLE after REMOVE");
        assert_eq!(
            socknotify::ErrorCause::of(&err),
            Some(socknotify::ErrorCause::NotRegistered),
            "{err}"
        );
        batch[3].result().expect("enable again");
        expect_entry(&port, 1, Events::REMOVE);
        client.write_all(b"x").unwrap();
        expect_entry(&port, 6, Events::IN);
        assert_eq!(port.registrations(), 1);
    });
}

/// Found by the fuzzer: a DISABLE of a descriptor whose registered socket was closed and
/// whose number now names another socket had its kernel change applied in one go with a
/// later ENABLE (through a duplicate) of that other socket; retried after it, the DISABLE
/// hit the new registration. The backend now stops at a failed change and the registry
/// applies the rest again after dealing with it, so the batch takes effect in order.
#[cfg(unix)] // dup2; Windows cannot put another socket under a live handle value
#[test]
fn rule_09_a_failed_change_does_not_let_later_ones_overtake_it() {
    use std::os::fd::{AsRawFd, FromRawFd};
    use std::os::unix::net::UnixStream;
    each_backend(|b| {
        let port = port(b);
        let (old, _old_peer) = UnixStream::pair().unwrap();
        let oneshot_edge = socknotify::Trigger::ONESHOT | socknotify::Trigger::EDGE;
        enable(&port, &old, 4102, Events::empty(), oneshot_edge);
        let (new, mut new_peer) = UnixStream::pair().unwrap();
        let number = old.as_raw_fd();
        // SAFETY: `number` is `old`'s only descriptor; dup2 atomically closes `old`'s socket
        // and makes the number name `new`'s; `old` is forgotten so it is not closed twice.
        assert_eq!(unsafe { libc::dup2(new.as_raw_fd(), number) }, number);
        std::mem::forget(old);
        // SAFETY: the number is a descriptor of `new`'s socket, owned here from now on.
        let renumbered = unsafe { UnixStream::from_raw_fd(number) };
        let dup = new.try_clone().unwrap();
        let oneshot_level = socknotify::Trigger::ONESHOT | socknotify::Trigger::LEVEL;
        let mut batch = [
            Registration::disable(&renumbered),
            Registration::enable(&dup, 4114, Events::IN, oneshot_level),
        ];
        port.process(&mut batch, &mut [], None).expect("process");
        let err = batch[0]
            .result()
            .expect_err("DISABLE of an unregistered socket");
        assert_eq!(
            ErrorCause::of(&err),
            Some(ErrorCause::NotRegistered),
            "{err}"
        );
        batch[1].result().expect("ENABLE through the duplicate");
        new_peer.write_all(b"x").unwrap();
        expect_entry(&port, 4114, Events::IN);
        drop((renumbered, new));
    });
}

/// The same on Windows, where no call puts another socket under a live handle value: the
/// registered socket is closed and new sockets are made until one gets its value (Windows
/// and Wine hand freed values out again soon), a UDP socket with a connected peer.
#[cfg(windows)]
#[test]
fn rule_09_a_failed_change_does_not_let_later_ones_overtake_it() {
    use std::net::UdpSocket;
    each_backend(|b| {
        let port = port(b);
        let oneshot_edge = socknotify::Trigger::ONESHOT | socknotify::Trigger::EDGE;
        let oneshot_level = socknotify::Trigger::ONESHOT | socknotify::Trigger::LEVEL;
        // Other tests of this file make sockets too and may take the value first: a few
        // tries, each with a registration of its own.
        let mut found = None;
        for attempt in 0..8 {
            let (_old_peer, old) = tcp_pair();
            enable(&port, &old, 4102 + attempt, Events::empty(), oneshot_edge);
            let number = raw(&old);
            drop(old);
            let mut keep = Vec::new();
            found = (0..256).find_map(|_| {
                let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
                if raw(&socket) == number {
                    return Some(socket);
                }
                keep.push(socket);
                None
            });
            if found.is_some() {
                break;
            }
        }
        let Some(renumbered) = found else {
            eprintln!("SKIPPED: no new socket got a closed registered socket's handle value");
            return;
        };
        let new_peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        renumbered.connect(new_peer.local_addr().unwrap()).unwrap();
        new_peer.connect(renumbered.local_addr().unwrap()).unwrap();
        let dup = renumbered.try_clone().unwrap();
        let mut batch = [
            Registration::disable(&renumbered),
            Registration::enable(&dup, 4114, Events::IN, oneshot_level),
        ];
        port.process(&mut batch, &mut [], None).expect("process");
        let err = batch[0]
            .result()
            .expect_err("DISABLE of an unregistered socket");
        assert_eq!(
            ErrorCause::of(&err),
            Some(ErrorCause::NotRegistered),
            "{err}"
        );
        batch[1].result().expect("ENABLE through the duplicate");
        new_peer.send(b"x").unwrap();
        expect_entry(&port, 4114, Events::IN);
    });
}

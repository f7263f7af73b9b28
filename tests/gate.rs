//! SPEC rule 18, the concurrency gate: `blocking()` nests and allows calls on other ports
//! (issue 10, row d); no panic leaks a slot (row i); waiting threads are released LIFO,
//! whether they wait for a slot or in the kernel (row l).

mod util;

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use socknotify::{is_port_closed, Backend, CompletionEntry, CompletionPort, Events, PortStats};
use util::child::in_child_process;
use util::*;

/// No field of the stats has wrapped around, and no more than `concurrency` are released.
fn assert_sane(port: &CompletionPort, what: &str) -> PortStats {
    assert_sane_up_to(port, what, port.concurrency())
}

/// No field of the stats has wrapped around, and no more than `released` are released.
fn assert_sane_up_to(port: &CompletionPort, what: &str, released: usize) -> PortStats {
    let s = port.stats();
    assert!(
        s.released <= released
            && s.waiting_in_kernel < 1000
            && s.waiting_for_slot < 1000
            && s.queued < 1_000_000,
        "{what}: {s:?} with concurrency {}",
        port.concurrency()
    );
    s
}

/// Makes the calling thread released on `port`: posts an entry and dequeues it.
fn become_released(port: &CompletionPort, key: usize) {
    port.post(CompletionEntry::new(key, 0, 0)).unwrap();
    expect_entry(port, key, Events::empty());
}

/// Checks that exactly `concurrency` other threads can be released on `port` while they
/// hold their slots, and that one more must wait; then lets them all go.
fn assert_slots_free(port: &Arc<CompletionPort>, what: &str) {
    let n = port.concurrency();
    let (tx, rx) = mpsc::channel();
    let (hold_tx, hold_rx) = mpsc::channel::<()>();
    let hold_rx = Arc::new(Mutex::new(hold_rx));
    let handles: Vec<_> = (0..=n)
        .map(|_| {
            let (port, tx, hold_rx) = (port.clone(), tx.clone(), hold_rx.clone());
            thread::spawn(move || {
                let mut entries = [CompletionEntry::default(); 1];
                match port.dequeue(&mut entries, Some(ARRIVAL)) {
                    Ok(1) => {
                        tx.send(entries[0].key).unwrap();
                        // Hold the slot without calling again.
                        let _ = hold_rx.lock().unwrap().recv_timeout(ARRIVAL);
                    }
                    Ok(_) => tx.send(usize::MAX).unwrap(),
                    Err(e) => assert!(is_port_closed(&e), "{e}"),
                }
            })
        })
        .collect();
    wait_for_stats(port, "all the threads waiting", |s| {
        s.waiting_in_kernel + s.waiting_for_slot == n + 1
    });
    for key in 0..=n {
        port.post(CompletionEntry::new(1000 + key, 0, 0)).unwrap();
    }
    for _ in 0..n {
        let key = rx
            .recv_timeout(ARRIVAL)
            .unwrap_or_else(|_| panic!("{what}: fewer than {n} threads could be released"));
        assert!(key >= 1000 && key != usize::MAX, "{what}: {key}");
    }
    assert!(
        rx.recv_timeout(QUIET).is_err(),
        "{what}: {} threads released at once with concurrency {n}",
        n + 1
    );
    assert_eq!(assert_sane(port, what).released, n, "{what}");
    drop(hold_tx);
    // The last thread now gets its entry, and everyone leaves.
    assert_ne!(
        rx.recv_timeout(ARRIVAL).ok(),
        None,
        "{what}: the last thread"
    );
    for h in handles {
        h.join().expect("a releasing thread");
    }
}

#[test]
fn rule_18_blocking_nests_row_d() {
    // In a child process: on a gate that gives a slot back twice, the overflow can abort
    // the process from a thread-local destructor.
    in_child_process("rule_18_blocking_nests_row_d", || {
        each_backend(|b| {
            let port = Arc::new(port_with(b, 2));
            become_released(&port, 1);
            assert_eq!(assert_sane(&port, "released").released, 1);
            let inner = port.blocking(|| {
                assert_eq!(assert_sane(&port, "in blocking").released, 0);
                let inner = port.blocking(|| assert_sane(&port, "in nested blocking"));
                assert_eq!(assert_sane(&port, "back in blocking").released, 0);
                inner
            });
            assert_eq!(inner.released, 0, "nested blocking: {inner:?}");
            assert_eq!(assert_sane(&port, "after blocking").released, 1);
            // Calling again gives the slot back; every slot is then free, and no more.
            let mut entries = [CompletionEntry::default(); 1];
            assert_eq!(port.dequeue(&mut entries, Some(Duration::ZERO)).unwrap(), 0);
            assert_eq!(assert_sane(&port, "after calling again").released, 0);
            assert_slots_free(&port, "after nested blocking");
        });
    });
}

#[test]
fn rule_18_dequeue_on_another_port_inside_blocking_row_d() {
    // In a child process: on a gate that gives a slot back twice, the overflow can abort
    // the process from a thread-local destructor.
    in_child_process(
        "rule_18_dequeue_on_another_port_inside_blocking_row_d",
        || {
            each_backend(|b| {
                let first = Arc::new(port_with(b, 1));
                let second = Arc::new(port_with(b, 1));
                become_released(&first, 1);
                first.blocking(|| {
                    assert_eq!(assert_sane(&first, "in blocking").released, 0);
                    // Another port, inside: released there, and nested blocking on both.
                    become_released(&second, 2);
                    second.blocking(|| {
                        first.blocking(|| {
                            assert_sane(&first, "nested, first");
                            assert_sane(&second, "nested, second");
                        })
                    });
                    let (mut client, server) = tcp_pair();
                    enable(&second, &server, 3, Events::IN, ONESHOT_LEVEL);
                    client.write_all(b"x").unwrap();
                    expect_entry(&second, 3, Events::IN);
                    assert_sane(&first, "after the other port");
                    assert_sane(&second, "after the other port");
                });
                assert_sane(&first, "after blocking");
                assert_sane(&second, "after blocking");
                // A call gives back whatever slot the thread holds, on either port.
                let mut entries = [CompletionEntry::default(); 1];
                assert_eq!(
                    first.dequeue(&mut entries, Some(Duration::ZERO)).unwrap(),
                    0
                );
                assert_eq!(assert_sane(&first, "after calling again").released, 0);
                assert_eq!(assert_sane(&second, "after calling again").released, 0);
                assert_slots_free(&first, "first port");
                assert_slots_free(&second, "second port");
            });
        },
    );
}

/// Threads that dequeue and then block in nested `blocking()` sections, over and over:
/// never more threads released (outside `blocking`) than the concurrency. Two threads more
/// than the concurrency, so that a slot given back twice shows as one thread too many.
#[test]
fn rule_18_nested_blocking_never_releases_more_than_the_concurrency_row_d() {
    // In a child process: on a gate that gives a slot back twice, the overflow can abort
    // the process from a thread-local destructor.
    in_child_process(
        "rule_18_nested_blocking_never_releases_more_than_the_concurrency_row_d",
        || {
            each_backend(|b| {
                const CONCURRENCY: usize = 2;
                const THREADS: usize = CONCURRENCY + 2;
                const POSTS: usize = 400;
                let port = Arc::new(port_with(b, CONCURRENCY));
                let other = Arc::new(port_with(b, 1));
                let released = Arc::new(AtomicUsize::new(0));
                let peak = Arc::new(AtomicUsize::new(0));
                let handles: Vec<_> = (0..THREADS)
                    .map(|t| {
                        let (port, other, released, peak) =
                            (port.clone(), other.clone(), released.clone(), peak.clone());
                        thread::spawn(move || {
                            let mut entries = [CompletionEntry::default(); 1];
                            let mut rng = Rng::new(t as u64);
                            loop {
                                let n = port.dequeue(&mut entries, Some(ARRIVAL)).expect("dequeue");
                                assert_eq!(n, 1, "starved");
                                let now = released.fetch_add(1, SeqCst) + 1;
                                peak.fetch_max(now, SeqCst);
                                if entries[0].key == EXIT {
                                    released.fetch_sub(1, SeqCst);
                                    port.post(entries[0]).unwrap();
                                    return;
                                }
                                thread::yield_now();
                                // Not released while blocked elsewhere (counted out before the
                                // slot is given back); straight back to dequeue afterwards.
                                released.fetch_sub(1, SeqCst);
                                port.blocking(|| {
                                    match rng.below(3) {
                                        0 => port.blocking(thread::yield_now),
                                        1 => port.blocking(|| port.blocking(thread::yield_now)),
                                        _ => {
                                            // Another port inside: a zero wait there.
                                            let mut e = [CompletionEntry::default(); 1];
                                            other.dequeue(&mut e, Some(Duration::ZERO)).unwrap();
                                        }
                                    }
                                });
                            }
                        })
                    })
                    .collect();
                for i in 0..POSTS {
                    port.post(CompletionEntry::new(i, 0, 0)).unwrap();
                    if i % 8 == 0 {
                        // A thread back from `blocking` counts as released again at once,
                        // past the concurrency until its next call (as on Windows): the
                        // port's count may briefly exceed it, never the number of threads.
                        // The released-at-once check is `peak`, below.
                        assert_sane_up_to(&port, "during the storm", THREADS);
                    }
                }
                wait_for_stats(&port, "the queue to drain", |s| s.queued == 0);
                port.post(CompletionEntry::new(EXIT, 0, 0)).unwrap();
                for h in handles {
                    h.join().expect("a dequeuing thread");
                }
                let peak = peak.load(SeqCst);
                assert!(
                    peak <= CONCURRENCY,
                    "{peak} threads released at once with concurrency {CONCURRENCY}"
                );
                // This thread has no slot; the exiting threads gave theirs back.
                let mut entries = [CompletionEntry::default(); 1];
                assert_eq!(port.dequeue(&mut entries, Some(Duration::ZERO)).unwrap(), 1); // EXIT
                assert_eq!(port.dequeue(&mut entries, Some(Duration::ZERO)).unwrap(), 0);
                assert_eq!(assert_sane(&port, "afterwards").released, 0);
                assert_slots_free(&port, "after the storm");
            });
        },
    );
}

#[test]
fn rule_18_a_panicking_released_thread_gives_its_slot_back_row_i() {
    each_backend(|b| {
        let port = Arc::new(port_with(b, 1));
        // A thread that dies of a panic while released.
        port.post(CompletionEntry::new(1, 0, 0)).unwrap();
        let dying = {
            let port = port.clone();
            thread::spawn(move || {
                let mut entries = [CompletionEntry::default(); 1];
                assert_eq!(port.dequeue(&mut entries, Some(ARRIVAL)).unwrap(), 1);
                panic!("user code panics while released (expected by the test)");
            })
        };
        assert!(dying.join().is_err());
        assert_eq!(assert_sane(&port, "after the panic").released, 0);
        assert_slots_free(&port, "after a released thread died");
        // A thread whose code panics inside `blocking`, caught: it is released again, and
        // its next call gives the slot back.
        let caught = {
            let port = port.clone();
            thread::spawn(move || {
                become_released(&port, 2);
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    port.blocking(|| panic!("user code panics inside blocking (expected)"))
                }));
                assert!(r.is_err());
                assert_sane(&port, "after a panic in blocking");
                let mut entries = [CompletionEntry::default(); 1];
                assert_eq!(port.dequeue(&mut entries, Some(Duration::ZERO)).unwrap(), 0);
            })
        };
        caught.join().expect("the thread that caught its panic");
        assert_eq!(assert_sane(&port, "after the caught panic").released, 0);
        assert_slots_free(&port, "after a panic inside blocking");
    });
}

/// What the last waiter is woken by.
#[derive(Clone, Copy, Debug)]
enum Wake {
    Post,
    Socket,
}

/// Threads call `dequeue(None)` one after another (each starts once the previous one is
/// seen waiting, and a little later); then one entry arrives: the most recent waiter must
/// get it (rule 18, as Windows does). Three rounds, each with one newer waiter.
///
/// Under Wine the order is not checked (said loudly): the AFD backend's waiters wait in the
/// completion port, and Wine's port serves them first come, first served. The rest is.
fn lifo(b: Backend, concurrency: usize, waiters: usize, wake: Wake) {
    const ROUNDS: usize = 3;
    let check_order = !under_wine();
    if !check_order {
        eprintln!("SKIP (the LIFO order only): Wine's completion port releases waiters FIFO");
    }
    let port = Arc::new(port_with(b, concurrency));
    let (tx, rx) = mpsc::channel();
    let arrivals: Arc<Mutex<Vec<(usize, Instant)>>> = Arc::default();
    let mut handles = Vec::new();
    let mut waiting = 0;
    let mut spawn = |id: usize, waiting: &mut usize| {
        let (waiter_port, tx, arrivals) = (port.clone(), tx.clone(), arrivals.clone());
        handles.push(thread::spawn(move || {
            let port = waiter_port;
            let mut entries = [CompletionEntry::default(); 1];
            arrivals.lock().unwrap().push((id, Instant::now()));
            match port.dequeue(&mut entries, None) {
                Ok(n) => tx.send((id, n, entries[0])).unwrap(),
                Err(e) => assert!(is_port_closed(&e), "waiter {id}: {e}"),
            }
        }));
        *waiting += 1;
        let want = *waiting;
        wait_for_stats(&port, "the new waiter", |s| {
            s.waiting_in_kernel + s.waiting_for_slot == want
        });
        thread::sleep(Duration::from_millis(100));
    };
    for id in 0..waiters {
        spawn(id, &mut waiting);
    }
    let pairs: Vec<_> = (0..ROUNDS).map(|_| tcp_pair()).collect();
    for (round, (client, server)) in pairs.iter().enumerate() {
        if round > 0 {
            spawn(waiters + round - 1, &mut waiting);
        }
        let newest = arrivals
            .lock()
            .unwrap()
            .iter()
            .max_by_key(|(_, at)| *at)
            .map(|(id, _)| *id)
            .unwrap();
        let key = 500 + round;
        match wake {
            Wake::Post => port.post(CompletionEntry::new(key, 7, 9)).unwrap(),
            Wake::Socket => {
                enable(&port, server, key, Events::IN, ONESHOT_LEVEL);
                (&*client).write_all(b"x").unwrap();
            }
        }
        let (id, n, entry) = rx.recv_timeout(ARRIVAL).expect("nobody got the entry");
        assert_eq!((n, entry.key), (1, key), "{entry:?}");
        let order: Vec<usize> = {
            let mut a = arrivals.lock().unwrap().clone();
            a.sort_by_key(|(_, at)| *at);
            a.into_iter().map(|(id, _)| id).collect()
        };
        assert!(
            id == newest || !check_order,
            "{wake:?}, concurrency {concurrency}, round {round}: waiter {id} got the entry, \
             not the most recent one, {newest} (arrival order {order:?})"
        );
        arrivals.lock().unwrap().retain(|(i, _)| *i != id);
        waiting -= 1;
        assert!(
            rx.recv_timeout(QUIET).is_err(),
            "a second waiter returned for one entry"
        );
    }
    port.close();
    drop(tx);
    for h in handles {
        h.join().expect("a waiter");
    }
    assert!(
        rx.try_recv().is_err(),
        "a waiter got an entry after the close"
    );
}

#[test]
fn rule_18_lifo_concurrency_1_post_row_l() {
    each_backend(|b| lifo(b, 1, 3, Wake::Post));
}

#[test]
fn rule_18_lifo_concurrency_1_socket_row_l() {
    each_backend(|b| lifo(b, 1, 3, Wake::Socket));
}

#[test]
fn rule_18_lifo_concurrency_64_post_row_l() {
    each_backend(|b| lifo(b, 64, 4, Wake::Post));
}

#[test]
fn rule_18_lifo_concurrency_64_socket_row_l() {
    each_backend(|b| lifo(b, 64, 4, Wake::Socket));
}

//! Faults: what a port reports when connections break, ports close under load, and threads
//! race on one registration. Every case runs on every backend.
//!
//! Cases that reuse descriptor numbers or change process-wide limits are in
//! `faults_serial.rs`, which runs them one at a time.

mod util;

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use socknotify::{is_port_closed, CompletionEntry, Events, Operation, Registration};
use util::*;

/// Reads `want` bytes from a non-blocking stream, waiting at most [`ARRIVAL`].
fn read_exactly(stream: &mut TcpStream, want: usize) -> Vec<u8> {
    let deadline = Instant::now() + ARRIVAL;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while got.len() < want {
        match stream.read(&mut buf) {
            Ok(0) => panic!("end of stream after {} of {want} bytes", got.len()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                assert!(
                    Instant::now() < deadline,
                    "only {} of {want} bytes",
                    got.len()
                );
                thread::yield_now();
            }
            Err(e) => panic!("read: {e}"),
        }
    }
    got
}

/// Waits until the kernel reports an error on `stream` (without consuming it).
#[cfg(windows)]
fn await_socket_error(stream: &TcpStream) {
    use std::os::windows::io::AsRawSocket;
    use windows_sys::Win32::Networking::WinSock::{WSAPoll, POLLERR, WSAPOLLFD};
    let mut pollfd = WSAPOLLFD {
        fd: stream.as_raw_socket() as usize,
        events: 0,
        revents: 0,
    };
    // SAFETY: `pollfd` is one valid, writable WSAPOLLFD; the socket is owned by `stream`,
    // open for the duration of the call.
    let n = unsafe { WSAPoll(&mut pollfd, 1, ARRIVAL.as_millis() as i32) };
    assert_eq!(n, 1, "no error reported within {ARRIVAL:?}");
    assert!(pollfd.revents & POLLERR != 0, "{:#x}", pollfd.revents);
}

/// Waits until the kernel reports an error on `stream` (without consuming it).
#[cfg(unix)]
fn await_socket_error(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    let mut pollfd = libc::pollfd {
        fd: stream.as_raw_fd(),
        events: 0,
        revents: 0,
    };
    // SAFETY: `pollfd` is one valid, writable pollfd; the descriptor is owned by `stream`,
    // open for the duration of the call.
    let n = unsafe { libc::poll(&mut pollfd, 1, ARRIVAL.as_millis() as libc::c_int) };
    assert_eq!(n, 1, "no error reported within {ARRIVAL:?}");
    assert!(pollfd.revents & libc::POLLERR != 0, "{:#x}", pollfd.revents);
}

#[test]
fn peer_reset_with_unread_data_reports_err_then_the_read_error() {
    each_backend(|b| {
        let port = port(b);
        let filters = [
            Events::empty(),
            Events::HANGUP,
            Events::IN,
            Events::IN | Events::HANGUP,
            Events::FILTER,
        ];
        for (key, filter) in filters.into_iter().enumerate() {
            let (mut client, mut server) = tcp_pair();
            // Filters that the unread data does not satisfy are registered before the reset,
            // the others once it has arrived: either way the entry is the reset's.
            let early = !filter.intersects(Events::IN | Events::OUT);
            if early {
                enable(&port, &server, key, filter, ONESHOT_LEVEL);
            }
            client.write_all(b"unread").unwrap();
            reset(client);
            await_socket_error(&server);
            if !early {
                enable(&port, &server, key, filter, ONESHOT_LEVEL);
            }
            // ERR whatever the filter; IN (end of stream), OUT and HANGUP as asked.
            expect_entry(&port, key, filter | Events::ERR);
            expect_nothing(&port);
            // The data that arrived before the reset is still there, then the error.
            assert_eq!(read_exactly(&mut server, 6), b"unread");
            let read = server.read(&mut [0u8; 16]);
            if cfg!(windows) && matches!(read, Ok(0)) {
                // Wine reads end of stream where Windows and Linux say the connection was
                // reset; the port's entries are what this test is about.
            } else {
                let err = read.expect_err("read after reset");
                assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err}");
                let err = server.write(b"late").expect_err("write after reset");
                // Winsock says WSAECONNRESET where Linux says EPIPE.
                let want = if cfg!(windows) {
                    ErrorKind::ConnectionReset
                } else {
                    ErrorKind::BrokenPipe
                };
                assert_eq!(err.kind(), want, "{err}");
            }
            // The error was consumed: no ERR any more, the rest of the state remains. AFD
            // keeps reporting the reset (AFD_POLL_ABORT) for good: ERR stays on Windows.
            enable(&port, &server, key, filter, ONESHOT_LEVEL);
            if cfg!(windows) {
                expect_entry(&port, key, filter | Events::ERR);
            } else if filter.is_empty() {
                expect_nothing(&port);
            } else {
                expect_entry(&port, key, filter);
            }
            remove_and_wait(&port, &server, key);
        }
        assert_eq!(port.registrations(), 0);
    });
}

#[test]
fn peer_half_close_reports_hangup_and_eof_while_we_keep_writing() {
    each_backend(|b| {
        let port = port(b);
        let (mut client, mut server) = tcp_pair();
        enable(
            &port,
            &server,
            1,
            Events::IN | Events::HANGUP,
            ONESHOT_LEVEL,
        );
        enable(
            &port,
            &client,
            2,
            Events::IN | Events::HANGUP,
            ONESHOT_LEVEL,
        );
        client.write_all(b"tail").unwrap();
        shutdown_write(&client);
        // The data and the end of stream may come as one entry or two (Wine reports the
        // end of stream only once the data has been read).
        let first = next_entry(&port);
        assert_eq!(first.key, 1, "{first:?}");
        assert_eq!(read_exactly(&mut server, 4), b"tail");
        if first.events() == Events::IN {
            enable(
                &port,
                &server,
                1,
                Events::IN | Events::HANGUP,
                ONESHOT_LEVEL,
            );
            expect_entry(&port, 1, Events::IN | Events::HANGUP);
        } else {
            assert_eq!(first.events(), Events::IN | Events::HANGUP);
        }
        assert_eq!(server.read(&mut [0u8; 8]).expect("read at EOF"), 0);
        // The condition holds: re-arming reports it again, with OUT if asked.
        enable(&port, &server, 1, Events::FILTER, ONESHOT_LEVEL);
        expect_entry(&port, 1, Events::FILTER);
        // Our side keeps writing, and the peer, which only shut down its sending side,
        // reads everything.
        let block = [7u8; 1000];
        for _ in 0..3 {
            server
                .write_all(&block)
                .expect("write after the peer's half-close");
        }
        expect_entry(&port, 2, Events::IN);
        assert_eq!(read_exactly(&mut client, 3000), [7u8; 3000]);
        // Now we shut down too: the peer sees end of stream and HANGUP.
        shutdown_write(&server);
        enable(
            &port,
            &client,
            2,
            Events::IN | Events::HANGUP,
            ONESHOT_LEVEL,
        );
        expect_entry(&port, 2, Events::IN | Events::HANGUP);
        assert_eq!(client.read(&mut [0u8; 8]).expect("read at EOF"), 0);
        expect_nothing(&port);
    });
}

#[test]
fn udp_port_unreachable_reports_err_and_recv_is_refused() {
    each_backend(|b| {
        let port = port(b);
        let closed = UdpSocket::bind("127.0.0.1:0").unwrap();
        let nobody = closed.local_addr().unwrap();
        drop(closed);
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.connect(nobody).unwrap();
        socket.set_nonblocking(true).unwrap();
        let filter = Events::IN | Events::HANGUP;
        enable(&port, &socket, 14, filter, LEVEL);
        expect_nothing(&port);
        socket.send(b"anyone?").unwrap();
        // The ICMP port-unreachable sets the socket's error: ERR, and never HANGUP (rule 14).
        // On Windows the error is what a read returns, so the socket is readable too.
        let entry = next_entry(&port);
        let want = if cfg!(windows) {
            Events::IN | Events::ERR
        } else {
            Events::ERR
        };
        assert_eq!((entry.key, entry.events()), (14, want), "{entry:?}");
        let err = socket.recv(&mut [0u8; 16]).expect_err("recv after ICMP");
        if cfg!(windows) {
            // Winsock says WSAECONNRESET for it; Wine has already dropped it.
            let seen = [ErrorKind::ConnectionReset, ErrorKind::WouldBlock];
            assert!(seen.contains(&err.kind()), "{err}");
        } else {
            assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");
        }
        // Reading the error cleared it.
        expect_nothing(&port);
        let err = socket.recv(&mut [0u8; 16]).expect_err("nothing to read");
        assert_eq!(err.kind(), ErrorKind::WouldBlock, "{err}");
        remove_and_wait(&port, &socket, 14);
    });
}

#[test]
fn port_closed_while_eight_threads_wait_and_others_post() {
    each_backend(|b| {
        const WAITERS: usize = 8;
        const POSTERS: usize = 3;
        const REG_KEY: usize = 1 << 40;
        let port = Arc::new(port_with(b, 2));
        let (mut client, server) = tcp_pair();
        enable(&port, &server, REG_KEY, Events::IN, LEVEL);
        let dequeued = Arc::new(AtomicUsize::new(0));
        let waiters: Vec<_> = (0..WAITERS)
            .map(|_| {
                let (port, dequeued) = (port.clone(), dequeued.clone());
                thread::spawn(move || {
                    let mut seen = Vec::new();
                    let mut entries = [CompletionEntry::default(); 4];
                    loop {
                        match port.dequeue(&mut entries, Some(ARRIVAL)) {
                            Ok(0) => panic!("a waiter timed out before the close"),
                            Ok(n) => {
                                seen.extend_from_slice(&entries[..n]);
                                dequeued.fetch_add(n, Ordering::Relaxed);
                            }
                            Err(e) => return (seen, e),
                        }
                    }
                })
            })
            .collect();
        wait_for_stats(&port, "eight waiters", |s| {
            s.waiting_in_kernel + s.waiting_for_slot == WAITERS
        });
        let posters: Vec<_> = (0..POSTERS)
            .map(|p| {
                let port = port.clone();
                thread::spawn(move || {
                    let mut posted = Vec::new();
                    for i in 0..1_000_000usize {
                        let id = p << 32 | (i + 1);
                        match port.post(CompletionEntry::new(id, i as u32, id)) {
                            Ok(()) => posted.push(id),
                            Err(e) => return (posted, Some(e)),
                        }
                    }
                    (posted, None)
                })
            })
            .collect();
        // Entries flow (posts and the socket's), then the port closes under the load.
        let deadline = Instant::now() + ARRIVAL;
        while dequeued.load(Ordering::Relaxed) < 2000 {
            assert!(Instant::now() < deadline, "entries do not flow");
            thread::yield_now();
        }
        client.write_all(b"x").unwrap();
        port.close();
        let mut posted = std::collections::HashSet::new();
        for h in posters {
            let (ids, err) = h.join().expect("poster panicked");
            let err = err.expect("a poster never saw the close");
            assert!(is_port_closed(&err), "{err}");
            assert_eq!(err.kind(), ErrorKind::BrokenPipe);
            posted.extend(ids);
        }
        let mut got = std::collections::HashSet::new();
        for h in waiters {
            let (seen, err) = h.join().expect("waiter panicked");
            assert!(is_port_closed(&err), "{err}");
            assert_eq!(err.kind(), ErrorKind::BrokenPipe);
            for e in seen {
                if e.key == REG_KEY {
                    assert_eq!((e.events(), e.overlapped), (Events::IN, 0));
                    continue;
                }
                assert_eq!(e.key, e.overlapped, "posted entry altered: {e:?}");
                assert!(posted.contains(&e.key), "never posted: {e:?}");
                assert!(got.insert(e.key), "dequeued twice: {e:?}");
            }
        }
        // Later calls fail too; nothing is accepted silently.
        let err = port.post(CompletionEntry::new(1, 2, 3)).unwrap_err();
        assert!(is_port_closed(&err));
        let mut entries = [CompletionEntry::default(); 2];
        let err = port.dequeue(&mut entries, None).unwrap_err();
        assert!(is_port_closed(&err));
        let mut batch = [Registration::enable(&server, 2, Events::IN, LEVEL)];
        let err = port.process(&mut batch, &mut entries, None).unwrap_err();
        assert!(is_port_closed(&err));
        assert!(is_port_closed(&batch[0].result().unwrap_err()));
        assert_eq!(port.registrations(), 0);
    });
}

#[test]
fn remove_racing_dequeue_of_the_same_socket() {
    each_backend(|b| {
        const ROUNDS: usize = 150;
        const THREADS: usize = 3;
        let port = Arc::new(port_with(b, THREADS));
        let dequeuers = LoggingDequeuers::spawn(&port, THREADS, 4);
        let mut rng = Rng::new(0x5eed_0016);
        let pairs: Vec<_> = (0..4).map(|_| tcp_pair()).collect();
        for (client, _) in &pairs {
            (&*client).write_all(b"never read").unwrap();
        }
        for round in 0..ROUNDS {
            let (_, server) = &pairs[round % pairs.len()];
            // A fresh key per round, on sockets that the kernel reports again and again.
            let trigger = [LEVEL, ONESHOT_LEVEL][rng.below(2)];
            enable(&port, server, round, Events::IN | Events::OUT, trigger);
            for _ in 0..rng.below(3) {
                thread::yield_now();
            }
            apply_one(&port, Registration::remove(server)).expect("remove");
            dequeuers.wait_for_removes(round + 1);
        }
        let log = dequeuers.stop(&port);
        let removed_at = assert_remove_is_last(&log);
        assert_eq!(removed_at.len(), ROUNDS, "one REMOVE entry per remove");
        assert!(
            log.iter().all(|l| removed_at.contains_key(&l.key)),
            "an entry for a key that was never removed"
        );
        assert_eq!(port.registrations(), 0);
    });
}

#[test]
fn disable_enable_storm_keeps_one_shot_entries_single() {
    each_backend(|b| {
        const SOCKETS: usize = 8;
        const TOGGLES: usize = 1500;
        let port = Arc::new(port_with(b, 4));
        let (clients, servers): (Vec<_>, Vec<_>) = (0..SOCKETS).map(|_| tcp_pair()).unzip();
        for (key, (mut client, server)) in clients.iter().zip(&servers).enumerate() {
            client.write_all(b"unread").unwrap();
            enable(&port, server, key, Events::IN, ONESHOT_LEVEL);
        }
        let servers = Arc::new(servers);
        let seq = Arc::new(AtomicUsize::new(0));
        // Per socket: ENABLE intervals (before, after) and entries (before, after).
        let enables = Arc::new(Mutex::new(vec![Vec::new(); SOCKETS]));
        let entries_log = Arc::new(Mutex::new(vec![Vec::new(); SOCKETS]));
        let stop = Arc::new(AtomicBool::new(false));
        let dequeuers: Vec<_> = (0..2)
            .map(|_| {
                let (port, seq, log) = (port.clone(), seq.clone(), entries_log.clone());
                thread::spawn(move || {
                    let mut entries = [CompletionEntry::default(); 4];
                    loop {
                        let before = seq.fetch_add(1, Ordering::SeqCst);
                        let n = port.dequeue(&mut entries, Some(ARRIVAL)).expect("dequeue");
                        let after = seq.fetch_add(1, Ordering::SeqCst);
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
        let togglers: Vec<_> = (0..2u64)
            .map(|t| {
                let (port, seq, servers, enables, stop) = (
                    port.clone(),
                    seq.clone(),
                    servers.clone(),
                    enables.clone(),
                    stop.clone(),
                );
                thread::spawn(move || {
                    let mut rng = Rng::new(t);
                    for _ in 0..TOGGLES {
                        let i = rng.below(SOCKETS);
                        let before = seq.fetch_add(1, Ordering::SeqCst);
                        let registration = if rng.one_in(2) {
                            Registration::disable(&servers[i])
                        } else {
                            Registration::enable(&servers[i], i, Events::IN, ONESHOT_LEVEL)
                        };
                        let enabling = registration.operation() == Some(Operation::Enable);
                        apply_one(&port, registration).expect("toggle");
                        let after = seq.fetch_add(1, Ordering::SeqCst);
                        if enabling {
                            enables.lock().unwrap()[i].push((before, after));
                        }
                    }
                    stop.store(true, Ordering::SeqCst);
                })
            })
            .collect();
        for h in togglers {
            h.join().expect("toggler");
        }
        assert!(stop.load(Ordering::SeqCst));
        port.post(CompletionEntry::new(EXIT, 0, 0)).unwrap();
        for h in dequeuers {
            h.join().expect("dequeuer");
        }
        // One-shot: between two entries of a socket there must have been an ENABLE, one
        // that ended after the first entry's call began and began before the second's ended.
        // Calls overlap (a long wait can take its entry after a later call took another), so
        // either entry of a pair may have been taken first: the ENABLE must fit one order.
        let enables = enables.lock().unwrap();
        let log = entries_log.lock().unwrap();
        let mut total = 0;
        for i in 0..SOCKETS {
            let mut got = log[i].clone();
            got.sort_unstable();
            total += got.len();
            for w in got.windows(2) {
                let ((b1, a1), (b2, a2)) = (w[0], w[1]);
                assert!(
                    enables[i]
                        .iter()
                        .any(|&(eb, ea)| (ea > b1 && eb < a2) || (ea > b2 && eb < a1)),
                    "socket {i}: a second one-shot entry without an ENABLE in between \
                     (calls {:?} and {:?})",
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
        // (The last dequeuer passed the EXIT entry on; it is still queued.)
        let mut keys: Vec<_> = drain(&port).iter().map(|e| e.key).collect();
        keys.sort_unstable();
        assert_eq!(keys.pop(), Some(EXIT));
        assert_eq!(keys, (0..SOCKETS).collect::<Vec<_>>());
        assert_eq!(port.registrations(), SOCKETS);
    });
}

/// Two threads re-enable one registration at once, each with its own filter, both of
/// which the socket satisfies. Whichever ENABLE counts as the later one, its filter must be
/// armed afterwards, so that entries come.
#[test]

fn concurrent_enables_leave_one_of_the_filters_armed() {
    each_backend(|b| {
        const ROUNDS: usize = 20;
        let port = Arc::new(port(b));
        let (mut client, server) = tcp_pair();
        client.write_all(b"readable").unwrap(); // and writable: IN and OUT both hold
        let server = Arc::new(server);
        let fillers: Arc<Vec<_>> = Arc::new((0..8).map(|_| tcp_pair()).collect());
        for (i, (_, s)) in fillers.iter().enumerate() {
            enable(&port, s, 100 + i, Events::IN, ONESHOT_LEVEL);
        }
        enable(&port, &*server, 7, Events::IN, LEVEL);
        let barrier = Arc::new(Barrier::new(3));
        let started = Arc::new(AtomicBool::new(false));
        // A: a long batch whose ENABLE(IN) of the socket is planned early and reaches the
        // kernel late (after many other re-arms). B: a single ENABLE(OUT) that starts once
        // A is inside `process`.
        let a = {
            let (port, server, fillers, barrier, started) = (
                port.clone(),
                server.clone(),
                fillers.clone(),
                barrier.clone(),
                started.clone(),
            );
            thread::spawn(move || {
                for _ in 0..ROUNDS {
                    let mut batch: Vec<_> = (0..2000)
                        .map(|_| {
                            Registration::from_raw(1 << 24, 1, Events::IN, Operation::Enable, LEVEL)
                        })
                        .collect();
                    batch.extend(fillers.iter().enumerate().cycle().take(3000).map(
                        |(i, (_, s))| Registration::enable(s, 100 + i, Events::IN, ONESHOT_LEVEL),
                    ));
                    batch.push(Registration::enable(&*server, 7, Events::IN, LEVEL));
                    barrier.wait();
                    started.store(true, Ordering::SeqCst);
                    port.process(&mut batch, &mut [], None).expect("process");
                    for r in &batch[2000..] {
                        r.result().expect("re-arm");
                    }
                    barrier.wait();
                }
            })
        };
        let bthread = {
            let (port, server, barrier, started) = (
                port.clone(),
                server.clone(),
                barrier.clone(),
                started.clone(),
            );
            thread::spawn(move || {
                for _ in 0..ROUNDS {
                    barrier.wait();
                    while !started.load(Ordering::SeqCst) {
                        std::hint::spin_loop();
                    }
                    enable(&port, &*server, 7, Events::OUT, LEVEL);
                    started.store(false, Ordering::SeqCst);
                    barrier.wait();
                }
            })
        };
        let mut silent = 0;
        for _ in 0..ROUNDS {
            barrier.wait();
            barrier.wait();
            let mut entries = [CompletionEntry::default(); 4];
            let n = port.dequeue(&mut entries, Some(QUIET)).expect("dequeue");
            if n == 0 {
                silent += 1;
            } else {
                assert_eq!(entries[0].key, 7);
                let events = entries[0].events();
                assert!(events == Events::IN || events == Events::OUT, "{events:?}");
            }
        }
        a.join().unwrap();
        bthread.join().unwrap();
        assert_eq!(
            silent, 0,
            "{silent} of {ROUNDS} rounds left the registration silent"
        );
    });
}

/// A registration whose filter leaves out what the kernel always reports (a hung-up
/// connection) must not make a waiting thread spin: it sleeps until its timeout.
#[test]

fn filtered_out_hangup_does_not_spin_the_waiter() {
    each_backend(|b| {
        for trigger in [LEVEL, ONESHOT_LEVEL] {
            let port = port(b);
            let (client, mut server) = tcp_pair();
            if cfg!(windows) {
                // AFD keeps reporting a reset (AFD_POLL_ABORT, ERR) for good: a hang-up
                // both ways is a normal close there.
                drop(client);
                server.shutdown(std::net::Shutdown::Write).unwrap();
            } else {
                reset(client);
            }
            let deadline = Instant::now() + ARRIVAL;
            loop {
                match server.read(&mut [0u8; 8]) {
                    Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
                    Ok(0) if cfg!(windows) => break,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        assert!(Instant::now() < deadline, "no reset arrived");
                        thread::yield_now();
                    }
                    other => panic!("read: {other:?}"),
                }
            }
            // Closed both ways, error consumed: the kernel reports only HUP, which an empty
            // filter does not want.
            enable(&port, &server, 1, Events::empty(), trigger);
            let start = thread_cpu_time();
            let waited = Instant::now();
            let mut entries = [CompletionEntry::default(); 4];
            let n = port
                .dequeue(&mut entries, Some(Duration::from_millis(300)))
                .expect("dequeue");
            let cpu = thread_cpu_time() - start;
            assert_eq!(n, 0, "{:?}", &entries[..n]);
            assert!(waited.elapsed() >= Duration::from_millis(300));
            assert!(
                cpu < Duration::from_millis(20),
                "{b:?} {trigger:?}: the waiter used {cpu:?} of CPU in a 300 ms wait"
            );
        }
    });
}

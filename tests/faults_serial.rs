//! Faults that touch process-wide state: descriptor numbers reused on purpose (with `dup2`,
//! which would close another test's descriptor if one ran at the same time) and the
//! descriptor limit (`RLIMIT_NOFILE` is per process). Every test here holds [`SERIAL`] for
//! its whole run, so they run one after the other, and no other test file shares the process.
#![cfg(unix)]

mod util;

use std::collections::HashMap;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, RawFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use socknotify::{CompletionEntry, Events, Registration};
use util::*;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    // A failed test must not stop the others: the lock protects no data.
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Puts `socket` at descriptor number `fd`, which the caller has just closed, and returns it.
fn move_to(socket: impl IntoRawFd, fd: RawFd) -> TcpStream {
    let raw = socket.into_raw_fd();
    // SAFETY: `raw` is owned here. `fd` was closed by the caller and, with SERIAL held and no
    // other code of this process opening descriptors meanwhile, is checked to be free, so
    // dup2 closes nothing of anyone's; afterwards `raw` is closed and `fd` is owned by the
    // returned stream.
    unsafe {
        assert_eq!(
            libc::fcntl(fd, libc::F_GETFD),
            -1,
            "descriptor {fd} is in use"
        );
        assert_eq!(libc::dup2(raw, fd), fd);
        libc::close(raw);
        TcpStream::from_raw_fd(fd)
    }
}

/// A registered socket is closed while threads dequeue its entries, and another thread puts
/// a new socket on its descriptor number at once and registers it (with the old key or a
/// new one). Nothing of the old registration may reach a call that began after the close,
/// no REMOVE ever comes for it, and the new registration sees only its own entries.
#[test]
fn closed_socket_number_reused_by_another_thread_at_once() {
    let _serial = serial();
    each_backend(|b| {
        const ROUNDS: usize = 40;
        const THREADS: usize = 2;
        let port = Arc::new(port_with(b, THREADS));
        let seq = Arc::new(AtomicUsize::new(0));
        // (sequence before the call, key, events, sequence after it returned)
        let log = Arc::new(Mutex::new(Vec::new()));
        let dequeuers: Vec<_> = (0..THREADS)
            .map(|_| {
                let (port, seq, log) = (port.clone(), seq.clone(), log.clone());
                thread::spawn(move || {
                    let mut entries = [CompletionEntry::default(); 4];
                    loop {
                        let before = seq.fetch_add(1, Ordering::SeqCst);
                        let n = port.dequeue(&mut entries, Some(ARRIVAL)).expect("dequeue");
                        let after = seq.fetch_add(1, Ordering::SeqCst);
                        let mut log = log.lock().unwrap();
                        for e in &entries[..n] {
                            if e.key == EXIT {
                                port.post(*e).unwrap();
                                return;
                            }
                            log.push((before, e.key, e.events(), after));
                        }
                    }
                })
            })
            .collect();
        let seen = |key: usize, events: Events| {
            let deadline = Instant::now() + ARRIVAL;
            loop {
                let found = log
                    .lock()
                    .unwrap()
                    .iter()
                    .any(|&(_, k, e, _)| k == key && e == events);
                if found {
                    return;
                }
                assert!(Instant::now() < deadline, "no {events:?} entry for {key}");
                thread::yield_now();
            }
        };
        // The other thread: waits for a number, puts its socket there, registers it.
        let (to_reuser, numbers) = mpsc::channel::<(RawFd, usize, TcpStream)>();
        let (to_main, reused) = mpsc::channel();
        let reuser = {
            let (port, seq) = (port.clone(), seq.clone());
            thread::spawn(move || {
                for (fd, key, fresh) in numbers {
                    let fresh = move_to(fresh, fd);
                    enable(&port, &fresh, key, Events::OUT, LEVEL);
                    let at = seq.fetch_add(1, Ordering::SeqCst);
                    to_main.send((fresh, at)).unwrap();
                }
            })
        };
        let mut closed_at = HashMap::new();
        for round in 0..ROUNDS {
            let old_key = 2 * round;
            let new_key = if round % 2 == 0 { old_key } else { old_key + 1 };
            let (mut client, server) = tcp_pair();
            client.write_all(b"never read").unwrap();
            enable(&port, &server, old_key, Events::IN, LEVEL);
            seen(old_key, Events::IN);
            let (_client2, fresh) = tcp_pair();
            let fd = server.as_raw_fd();
            drop(server);
            closed_at.insert(old_key, seq.fetch_add(1, Ordering::SeqCst));
            to_reuser.send((fd, new_key, fresh)).unwrap();
            let (fresh, _) = reused.recv_timeout(ARRIVAL).expect("reuser");
            assert_eq!(fresh.as_raw_fd(), fd);
            seen(new_key, Events::OUT);
            apply_one(&port, Registration::remove(&fresh)).expect("remove the new one");
            seen(new_key, Events::REMOVE);
        }
        drop(to_reuser);
        reuser.join().expect("reuser");
        port.post(CompletionEntry::new(EXIT, 0, 0)).unwrap();
        for h in dequeuers {
            h.join().expect("dequeuer");
        }
        let log = log.lock().unwrap();
        for &(before, key, events, _) in log.iter() {
            match events {
                // The old registration's: only from calls that began before its close.
                e if e == Events::IN => assert!(
                    before < closed_at[&(key & !1)],
                    "IN for {key} dequeued by a call that began after the close"
                ),
                e if e == Events::OUT => {}
                e if e == Events::REMOVE => {}
                other => panic!("unexpected {other:?} for {key}"),
            }
        }
        let removes = log.iter().filter(|r| r.2 == Events::REMOVE).count();
        assert_eq!(
            removes, ROUNDS,
            "one REMOVE per new registration, none for a close"
        );
        assert_eq!(port.registrations(), 0);
    });
}

/// Lowers `RLIMIT_NOFILE`'s soft limit so that no new descriptor can be opened, and puts it
/// back when dropped.
struct DescriptorLimit {
    saved: libc::rlimit,
}

impl DescriptorLimit {
    fn exhaust() -> DescriptorLimit {
        let mut saved = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `saved` is a valid, writable rlimit.
        assert_eq!(
            unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut saved) },
            0
        );
        // The lowest free number: every number below it is open, so a limit equal to it
        // leaves no room.
        let probe = std::fs::File::open("/dev/null").expect("open /dev/null");
        let lowest = probe.as_raw_fd();
        drop(probe);
        let lowered = libc::rlimit {
            rlim_cur: lowest as libc::rlim_t,
            rlim_max: saved.rlim_max,
        };
        // SAFETY: `lowered` is a valid rlimit; lowering the soft limit is always allowed.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lowered) }, 0);
        let err = std::fs::File::open("/dev/null").expect_err("the limit leaves room");
        assert_eq!(err.raw_os_error(), Some(libc::EMFILE));
        DescriptorLimit { saved }
    }
}

impl Drop for DescriptorLimit {
    fn drop(&mut self) {
        // SAFETY: `saved` is the valid rlimit read before; raising the soft limit back up to
        // at most the unchanged hard limit is always allowed.
        let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &self.saved) };
        assert_eq!(rc, 0, "restore RLIMIT_NOFILE");
    }
}

/// A socket made now, to be connected once no descriptor is left.
fn unconnected() -> Socket {
    Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).expect("socket")
}

#[test]
fn accept_at_the_descriptor_limit_fails_in_accept_and_the_port_keeps_working() {
    let _serial = serial();
    each_backend(|b| {
        const LISTENER: usize = 0xacce;
        let port = port(b);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let clients = [unconnected(), unconnected()];
        enable(&port, &listener, LISTENER, Events::IN, LEVEL);
        let (_peer, other) = tcp_pair();
        {
            let _limit = DescriptorLimit::exhaust();
            clients[0].connect(&addr.into()).expect("connect");
            expect_entry(&port, LISTENER, Events::IN);
            let err = listener.accept().expect_err("accept past the limit");
            assert_eq!(err.raw_os_error(), Some(libc::EMFILE), "{err}");
            // The connection still waits: level-triggered, the listener reports it again.
            expect_entry(&port, LISTENER, Events::IN);
            // One-shot too: re-arming with the connection pending reports it at once.
            enable(&port, &listener, LISTENER, Events::IN, ONESHOT_LEVEL);
            expect_entry(&port, LISTENER, Events::IN);
            expect_nothing(&port);
            // Registrations and posts work without a free descriptor.
            enable(&port, &other, 2, Events::OUT, ONESHOT_LEVEL);
            expect_entry(&port, 2, Events::OUT);
            port.post(CompletionEntry::new(3, 4, 5)).unwrap();
            assert_eq!(next_entry(&port), CompletionEntry::new(3, 4, 5));
            // A second connection arrives: the re-armed listener sees it.
            enable(&port, &listener, LISTENER, Events::IN, LEVEL);
            clients[1].connect(&addr.into()).expect("connect");
            expect_entry(&port, LISTENER, Events::IN);
        }
        // With room again, both connections are accepted and the listener goes quiet.
        let accepted: Vec<_> = (0..2)
            .map(|_| listener.accept().expect("accept after the limit"))
            .collect();
        assert_eq!(accepted.len(), 2);
        let _ = drain(&port);
        expect_nothing(&port);
        remove_and_wait(&port, &listener, LISTENER);
        remove_and_wait(&port, &other, 2);
        assert_eq!(port.registrations(), 0);
    });
}

/// Threads that wait on a port at the descriptor limit keep waiting normally: the limit is
/// the application's accept's problem, not the port's.
#[test]

fn concurrent_waiters_at_the_descriptor_limit_keep_working() {
    let _serial = serial();
    each_backend(|b| {
        const THREADS: usize = 3;
        let port = Arc::new(port_with(b, THREADS));
        let barrier = Arc::new(Barrier::new(THREADS));
        let _limit = DescriptorLimit::exhaust();
        let waiters: Vec<_> = (0..THREADS)
            .map(|_| {
                let (port, barrier) = (port.clone(), barrier.clone());
                thread::spawn(move || {
                    let mut entries = [CompletionEntry::default(); 4];
                    barrier.wait();
                    port.dequeue(&mut entries, Some(Duration::from_millis(300)))
                })
            })
            .collect();
        for h in waiters {
            let result = h.join().expect("waiter");
            assert!(matches!(result, Ok(0)), "{b:?}: {result:?}");
        }
    });
}

/// Found by the fuzzer: two ENABLEs of one socket in one batch, when the socket that was
/// registered with that number has been closed and the number reused. Both must succeed
/// (the first registers the new socket, the second changes nothing), as one by one.
#[test]

fn two_enables_in_one_batch_of_a_reused_number() {
    let _serial = serial();
    each_backend(|b| {
        let port = port(b);
        let (_client, server) = tcp_pair();
        enable(&port, &server, 1, Events::IN, ONESHOT_LEVEL);
        let (mut client2, fresh) = tcp_pair();
        let fd = server.as_raw_fd();
        drop(server);
        let fresh = move_to(fresh, fd);
        let mut batch = [
            Registration::enable(&fresh, 1, Events::IN, ONESHOT_LEVEL),
            Registration::enable(&fresh, 1, Events::IN, ONESHOT_LEVEL),
        ];
        let results = apply(&port, &mut batch);
        for (i, result) in results.iter().enumerate() {
            assert!(result.is_ok(), "{b:?}: ENABLE {i}: {result:?}");
        }
        client2.write_all(b"x").unwrap();
        expect_entry(&port, 1, Events::IN);
        expect_nothing(&port);
        assert_eq!(port.registrations(), 1);
    });
}

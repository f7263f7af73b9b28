//! SPEC rules 19 and 20: every call works from a thread-local destructor (issue 10, row f)
//! and after `fork()` in a child of a multi-threaded parent (row n); a port inherited
//! across `fork` refuses calls and drops without hanging; a closed port fails every call,
//! including a `process` whose registrations are all invalid (row k).
//!
//! Scenarios that could abort or hang the process run in a child process, so that an abort
//! or a hang shows as a failed test, not as a dead test binary.

mod util;

use std::cell::RefCell;
use std::io::Write;
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use socknotify::{
    is_port_closed, CompletionEntry, CompletionPort, ErrorCause, Events, Operation, Registration,
    Trigger,
};
use util::child::in_child_process;
use util::*;

/// Calls on the port from a thread-local destructor, and what they returned.
struct OnThreadExit {
    port: Arc<CompletionPort>,
    socket: TcpStream,
    key: usize,
    log: Arc<Mutex<Vec<String>>>,
}

impl Drop for OnThreadExit {
    fn drop(&mut self) {
        let mut log = self.log.lock().unwrap();
        // REMOVE on thread exit, without entries, then with a dequeue.
        let mut batch = [Registration::remove(&self.socket)];
        let r = self.port.process(&mut batch, &mut [], Some(Duration::ZERO));
        log.push(format!("process {:?} remove {:?}", r, batch[0].result()));
        let r = self.port.post(CompletionEntry::new(self.key + 1, 2, 3));
        log.push(format!("post {r:?}"));
        let mut entries = [CompletionEntry::default(); 4];
        let r = self
            .port
            .dequeue(&mut entries, Some(Duration::from_millis(20)));
        let got = &entries[..*r.as_ref().unwrap_or(&0)];
        log.push(format!("dequeue {r:?} {got:?}"));
        // And a registration, a wait, and blocking().
        let (other, _peer) = tcp_pair();
        let mut batch = [Registration::enable(&other, 7, Events::OUT, ONESHOT_LEVEL)];
        let r = self
            .port
            .process(&mut batch, &mut entries, Some(Duration::from_millis(20)));
        let got = &entries[..*r.as_ref().unwrap_or(&0)];
        log.push(format!(
            "process {r:?} enable {:?} {got:?}",
            batch[0].result()
        ));
        let r = self.port.blocking(|| 5);
        log.push(format!("blocking {r}"));
    }
}

thread_local! {
    static ON_EXIT: RefCell<Option<OnThreadExit>> = const { RefCell::new(None) };
}

#[test]
fn rule_20_calls_from_a_thread_local_destructor_row_f() {
    in_child_process("rule_20_calls_from_a_thread_local_destructor_row_f", || {
        each_backend(|b| {
            // One thread that used the port before its destructor ran (the crate's
            // thread-locals are then destroyed first), one that never had.
            for used_before in [true, false] {
                let port = Arc::new(port(b));
                let (mut peer, socket) = tcp_pair();
                // A second descriptor, so that the socket outlives the thread's.
                let _keep = socket.try_clone().unwrap();
                let key = 40;
                enable(&port, &socket, key, Events::IN, ONESHOT_LEVEL);
                let log = Arc::new(Mutex::new(Vec::new()));
                let thread = {
                    let (port, log) = (port.clone(), log.clone());
                    thread::spawn(move || {
                        // Ours is set first, so that it is destroyed last.
                        ON_EXIT.with(|slot| {
                            *slot.borrow_mut() = Some(OnThreadExit {
                                port: port.clone(),
                                socket,
                                key,
                                log,
                            });
                        });
                        if used_before {
                            port.post(CompletionEntry::new(1, 0, 0)).unwrap();
                            let mut entries = [CompletionEntry::default(); 1];
                            let n = port.process(&mut [], &mut entries, Some(ARRIVAL)).unwrap();
                            assert_eq!(n, 1); // released on the port when it exits
                            port.blocking(|| ());
                        }
                    })
                };
                thread.join().expect("the thread");
                let log = log.lock().unwrap().clone();
                eprintln!("{b:?}, used before {used_before}: {log:#?}");
                assert_eq!(log.len(), 5, "{log:?}");
                assert_eq!(log[0], "process Ok(0) remove Ok(())");
                assert_eq!(log[1], "post Ok(())");
                assert!(log[2].starts_with("dequeue Ok("), "{}", log[2]);
                assert!(log[3].starts_with("process Ok("), "{}", log[3]);
                assert!(log[3].contains("enable Ok(())"), "{}", log[3]);
                assert_eq!(log[4], "blocking 5");
                // One REMOVE entry in all, and the post, whoever dequeued them.
                let mut seen = log[2].clone() + &log[3];
                for e in drain(&port) {
                    seen += &format!("{e:?}");
                }
                let remove = format!("{:?}", CompletionEntry::new(key, 0x80, 0));
                let post = format!("{:?}", CompletionEntry::new(key + 1, 2, 3));
                assert_eq!(seen.matches(&remove).count(), 1, "{seen}");
                assert_eq!(seen.matches(&post).count(), 1, "{seen}");
                peer.write_all(b"x").unwrap();
                expect_nothing(&port);
                // The exited thread's slot came back.
                assert_eq!(port.stats().released, 0, "{:?}", port.stats());
            }
        });
    });
}

/// `fork` is unix's (row n); Windows has no way to copy a process with its state.
#[cfg(unix)]
mod fork {
    use super::*;
    use socknotify::Backend;
    use std::io::{self, ErrorKind};
    use std::os::unix::net::UnixStream;
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    use std::time::Instant;

    /// Forks; the child runs `child` and exits with the code it returns (101 if it panics),
    /// without running any destructor of the parent's state. Returns the child's pid.
    fn fork_child(child: impl FnOnce() -> i32) -> libc::pid_t {
        // SAFETY: the child only runs `child` and then `_exit`s; what `child` does after a
        // fork of a multi-threaded process is what these tests are about.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork: {}", io::Error::last_os_error());
        if pid == 0 {
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(child)).unwrap_or(101);
            // SAFETY: ends the child at once, as a child of a multi-threaded process must.
            unsafe { libc::_exit(code) };
        }
        pid
    }

    /// Waits for child `pid` up to `limit` (polling, no blocking wait); kills and reaps it if
    /// it takes longer. Returns its exit code, or `None` if it hung.
    fn wait_child(pid: libc::pid_t, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        loop {
            let mut status = 0;
            // SAFETY: `status` is a valid, writable int; `pid` is our child.
            let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
            assert!(r >= 0, "waitpid: {}", io::Error::last_os_error());
            if r == pid {
                assert!(
                    libc::WIFEXITED(status),
                    "child {pid} died: status {status:#x}"
                );
                return Some(libc::WEXITSTATUS(status));
            }
            if Instant::now() >= deadline {
                // SAFETY: as above; the child has not been reaped.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                    libc::waitpid(pid, &mut status, 0);
                }
                return None;
            }
            thread::sleep(Duration::from_millis(1));
        }
    }

    /// In a forked child: builds a port of its own and gets an entry from it.
    fn child_builds_and_uses_a_port(b: Backend) -> i32 {
        let Ok(port) = CompletionPort::builder().backend(b).build() else {
            return 2;
        };
        let Ok((socket, mut peer)) = UnixStream::pair() else {
            return 3;
        };
        let mut batch = [Registration::enable(&socket, 9, Events::IN, ONESHOT_LEVEL)];
        if port.process(&mut batch, &mut [], None).is_err() || batch[0].result().is_err() {
            return 4;
        }
        if peer.write_all(b"x").is_err() {
            return 5;
        }
        let mut entries = [CompletionEntry::default(); 2];
        match port.dequeue(&mut entries, Some(ARRIVAL)) {
            Ok(1) if entries[0].key == 9 && entries[0].events() == Events::IN => {}
            _ => return 6,
        }
        drop(port);
        0
    }

    #[test]
    fn rule_20_fork_while_threads_register_child_builds_its_own_port_row_n() {
        each_backend(|b| {
            const FORKS: usize = 200;
            const BUDGET: Duration = Duration::from_secs(3);
            let stop = AtomicBool::new(false);
            thread::scope(|scope| {
                // Threads that keep the process-wide state busy: registrations made and
                // removed, ports built and dropped.
                let busy: Vec<_> = (0..2)
                    .map(|t| {
                        let stop = &stop;
                        scope.spawn(move || {
                            let port = port(b);
                            let pairs: Vec<_> =
                                (0..8).map(|_| UnixStream::pair().unwrap()).collect();
                            let mut rounds = 0usize;
                            while !stop.load(SeqCst) {
                                let mut batch: Vec<_> = pairs
                                    .iter()
                                    .enumerate()
                                    .map(|(k, (s, _))| {
                                        Registration::enable(s, k, Events::IN, LEVEL)
                                    })
                                    .collect();
                                for r in apply(&port, &mut batch) {
                                    r.expect("enable");
                                }
                                let mut batch: Vec<_> =
                                    pairs.iter().map(|(s, _)| Registration::remove(s)).collect();
                                for r in apply(&port, &mut batch) {
                                    r.expect("remove");
                                }
                                let _ = dequeue(&port, Duration::ZERO);
                                if rounds % 4 == t {
                                    drop(util::port(b));
                                }
                                rounds += 1;
                            }
                            rounds
                        })
                    })
                    .collect();
                let start = Instant::now();
                let mut forks = 0;
                let result = (|| {
                    while forks < FORKS && start.elapsed() < BUDGET {
                        let pid = fork_child(|| child_builds_and_uses_a_port(b));
                        forks += 1;
                        match wait_child(pid, Duration::from_secs(5)) {
                            None => return Err(format!("child {forks} hung (killed after 5 s)")),
                            Some(0) => {}
                            Some(code) => return Err(format!("child {forks} failed: step {code}")),
                        }
                    }
                    Ok(())
                })();
                stop.store(true, SeqCst);
                let rounds: Vec<usize> = busy.into_iter().map(|h| h.join().unwrap()).collect();
                eprintln!("{b:?}: {forks} forks, busy rounds {rounds:?}");
                if let Err(e) = result {
                    panic!("{b:?}: {e}");
                }
            });
        });
    }

    /// Whether `err` says that the port was inherited across `fork`.
    fn is_inherited_error(err: &io::Error) -> bool {
        matches!(err.kind(), ErrorKind::Other | ErrorKind::Unsupported)
            && err.to_string().contains("fork")
    }

    /// In a forked child: every call on the inherited `port` fails, none hangs, and dropping
    /// the child's copy of it does not hang either. Returns 0, or the step that went wrong.
    fn child_uses_the_inherited_port(port: &CompletionPort) -> i32 {
        let check = |r: io::Result<usize>, step: i32| match r {
            Ok(_) => step,
            Err(e) if is_inherited_error(&e) => 0,
            Err(_) => step + 1,
        };
        let code = check(port.post(CompletionEntry::new(1, 2, 3)).map(|()| 0), 10);
        if code != 0 {
            return code;
        }
        let mut entries = [CompletionEntry::default(); 4];
        let code = check(port.dequeue(&mut entries, Some(Duration::ZERO)), 20);
        if code != 0 {
            return code;
        }
        let code = check(
            port.dequeue(&mut entries, Some(Duration::from_millis(50))),
            30,
        );
        if code != 0 {
            return code;
        }
        let Ok((socket, _peer)) = UnixStream::pair() else {
            return 3;
        };
        let mut batch = [Registration::enable(&socket, 5, Events::IN, LEVEL)];
        let code = check(port.process(&mut batch, &mut [], Some(Duration::ZERO)), 40);
        if code != 0 {
            return code;
        }
        if batch[0].result().is_ok() {
            return 42;
        }
        // SAFETY: this child never touches the parent's `port` again (it `_exit`s right after),
        // so dropping a bitwise copy of it here is dropping the child's only use of it.
        drop(unsafe { std::ptr::read(port) });
        0
    }

    #[test]
    fn rule_20_a_port_inherited_across_fork_refuses_calls_and_drops_safely_row_n() {
        each_backend(|b| {
            const FORKS: usize = 40;
            const BUDGET: Duration = Duration::from_secs(2);
            const KEY: usize = 1;
            let port = port(b);
            let (mut client, server) = tcp_pair();
            enable(&port, &server, KEY, Events::IN, ONESHOT_LEVEL);
            let stop = AtomicBool::new(false);
            thread::scope(|scope| {
                // A thread that keeps this port's locks busy while the parent forks.
                let busy = scope.spawn(|| {
                    let (other, _peer) = UnixStream::pair().unwrap();
                    let mut entries = [CompletionEntry::default(); 4];
                    while !stop.load(SeqCst) {
                        enable(&port, &other, 2, Events::IN, ONESHOT_LEVEL);
                        let _ = port.dequeue(&mut entries, Some(Duration::from_millis(1)));
                        apply_one(&port, Registration::remove(&other)).expect("remove");
                    }
                });
                let start = Instant::now();
                let mut forks = 0;
                let result = (|| {
                    while forks < FORKS && start.elapsed() < BUDGET {
                        let pid = fork_child(|| child_uses_the_inherited_port(&port));
                        forks += 1;
                        match wait_child(pid, Duration::from_secs(5)) {
                            None => return Err(format!("child {forks} hung (killed after 5 s)")),
                            Some(0) => {}
                            Some(code) => {
                                return Err(format!(
                                    "child {forks}: step {code} (10 post, 20 dequeue, 30 wait, \
                                 40 process, 42 registration; +0 succeeded, +1 wrong error)"
                                ))
                            }
                        }
                    }
                    Ok(())
                })();
                stop.store(true, SeqCst);
                busy.join().unwrap();
                eprintln!("{b:?}: {forks} forks");
                if let Err(e) = result {
                    panic!("{b:?}: {e}");
                }
            });
            // The parent's port is untouched by what its children did.
            client.write_all(b"x").unwrap();
            let deadline = Instant::now() + ARRIVAL;
            loop {
                assert!(
                    Instant::now() < deadline,
                    "the parent's registration went silent"
                );
                let got = dequeue(&port, Duration::from_millis(100));
                if got.iter().any(|e| e.key == KEY) {
                    assert!(
                        got.iter().all(|e| e.key != KEY || e.events() == Events::IN),
                        "{got:?}"
                    );
                    break;
                }
            }
            port.post(CompletionEntry::new(8, 8, 8)).unwrap();
            let all = drain(&port);
            assert!(all.contains(&CompletionEntry::new(8, 8, 8)), "{all:?}");
        });
    }
}

#[test]
fn rule_19_process_on_a_closed_port_fails_even_with_only_invalid_registrations_row_k() {
    each_backend(|b| {
        let port = port(b);
        let (_client, server) = tcp_pair();
        enable(&port, &server, 1, Events::IN, LEVEL);
        port.close();
        let fd = raw(&server);
        // Invalid bits only (the port is never asked about a socket), then invalid
        // descriptors too.
        let bits = || {
            vec![
                Registration::enable(&server, 1, Events::IN, Trigger::all()),
                Registration::from_bits(fd, 1, 0x01, 0x03, LEVEL.bits()),
                Registration::from_bits(fd, 1, 0x100, 0x01, LEVEL.bits()),
                Registration::from_bits(fd, 1, 0, 0x04, 0x80),
            ]
        };
        let descriptors = || {
            let mut batch = bits();
            for closed in &closed_sockets()[..2] {
                batch.push(Registration::from_raw(
                    *closed,
                    1,
                    Events::IN,
                    Operation::Enable,
                    LEVEL,
                ));
            }
            batch
        };
        let mut room = [CompletionEntry::default(); 4];
        for (what, make) in [
            ("bits", &bits as &dyn Fn() -> Vec<_>),
            ("descriptors", &descriptors),
        ] {
            for with_entries in [false, true] {
                let mut batch = make();
                let entries: &mut [CompletionEntry] =
                    if with_entries { &mut room } else { &mut [] };
                let r = port.process(&mut batch, entries, Some(Duration::ZERO));
                let err = r.expect_err("process on a closed port succeeded");
                assert!(
                    is_port_closed(&err),
                    "{what}, entries {with_entries}: {err}"
                );
                // Each registration says PortClosed, or what is wrong with it.
                for (i, r) in batch.iter().enumerate() {
                    let err = r.result().expect_err("an invalid registration succeeded");
                    let cause = ErrorCause::of(&err);
                    let own = match i {
                        0..=3 => ErrorCause::InvalidFlags,
                        _ => ErrorCause::BadDescriptor,
                    };
                    assert!(
                        cause == Some(ErrorCause::PortClosed) || cause == Some(own),
                        "{what}, entries {with_entries}, registration {i}: {err} ({cause:?})"
                    );
                }
            }
        }
        // With none at all, and with a valid one: the same.
        let err = port.process(&mut [], &mut [], None).unwrap_err();
        assert!(is_port_closed(&err), "{err}");
        let mut batch = [Registration::remove(&server)];
        let err = port.process(&mut batch, &mut [], None).unwrap_err();
        assert!(is_port_closed(&err), "{err}");
        assert!(is_port_closed(&batch[0].result().unwrap_err()));
    });
}

//! SPEC rules 6 and 7: a socket is the open socket, not its descriptor number. A duplicate
//! (`try_clone`, `SCM_RIGHTS`) names the same socket; two ports racing for one new socket
//! cannot both get it; a number that is closed and reused while another thread re-arms it
//! never leaves a registration silent (issue 10, rows g, h and o).
//!
//! Row o closes a descriptor and puts a new socket at its number while another thread
//! names the number: were another test of this process to open a descriptor meanwhile, it
//! could be handed that number. So every test here holds [`SERIAL`].

mod util;

use std::io::{self, ErrorKind, Write};
use std::net::TcpStream;
#[cfg(unix)]
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
#[cfg(unix)]
use std::os::unix::net::{UnixDatagram, UnixStream};
#[cfg(windows)]
use std::os::windows::io::OwnedSocket;
use std::sync::Mutex;
use std::time::Duration;

#[cfg(unix)]
use socknotify::Operation;
use socknotify::{Backend, CompletionPort, ErrorCause, Events, Registration};
use util::race::{jitter, race};
use util::*;

static SERIAL: Mutex<()> = Mutex::new(());

/// Runs `test` on every backend, with no other test of this file running.
fn serial(test: impl Fn(Backend)) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    each_backend(test);
}

/// The cause of a failed result, `None` for `Ok`.
#[cfg(unix)]
fn cause(result: &io::Result<()>) -> Option<ErrorCause> {
    result.as_ref().err().map(|e| {
        ErrorCause::of(e).unwrap_or_else(|| panic!("an error socknotify did not classify: {e}"))
    })
}

/// Rule 22 and issue 10: a result is never the backend's raw ENOENT or a bare NotFound
/// that no registration explains.
fn assert_no_enoent(result: &io::Result<()>, what: &str) {
    if let Err(e) = result {
        assert_ne!(e.raw_os_error(), Some(ENOENT), "{what}: raw ENOENT: {e}");
    }
}

/// A connected, non-blocking stream pair `(socket, peer)` for racing trials: a Unix pair
/// where there is one (cheaper), else TCP.
#[cfg(unix)]
fn stream_pair() -> (UnixStream, UnixStream) {
    unix_pair()
}

/// A connected, non-blocking stream pair `(socket, peer)` for racing trials: a Unix pair
/// where there is one (cheaper), else TCP.
#[cfg(windows)]
fn stream_pair() -> (TcpStream, TcpStream) {
    let (client, server) = tcp_pair();
    (server, client)
}

/// A connected, non-blocking Unix stream pair: cheaper than TCP, for racing trials.
#[cfg(unix)]
fn unix_pair() -> (UnixStream, UnixStream) {
    let (a, b) = UnixStream::pair().expect("socketpair");
    a.set_nonblocking(true).unwrap();
    b.set_nonblocking(true).unwrap();
    (a, b)
}

/// Expects the next entry of `port` to be exactly `key` with `events`.
fn expect_next(port: &CompletionPort, key: usize, events: Events, what: &str) {
    let mut entry = [socknotify::CompletionEntry::default(); 1];
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

#[test]
fn rule_06_two_ports_racing_for_one_new_socket_exactly_one_wins_row_g() {
    serial(|b| {
        let ports = [port(b), port(b)];
        let mut rng = Rng::new(0x0606);
        let mut wins = [0usize; 2];
        let trials = race(
            20_000,
            Duration::from_millis(1500),
            |i| {
                let (socket, peer) = stream_pair();
                // A small head start for one side or the other, varied over the trials.
                let delay = rng.below(200);
                let delays = if rng.one_in(2) {
                    (delay, 0)
                } else {
                    (0, delay)
                };
                (i, socket, Mutex::new(peer), delays)
            },
            |(i, socket, _, delays)| {
                jitter(delays.0);
                apply_one(
                    &ports[1],
                    Registration::enable(socket, *i, Events::IN, ONESHOT_LEVEL),
                )
            },
            |(i, socket, _, delays)| {
                jitter(delays.1);
                apply_one(
                    &ports[0],
                    Registration::enable(socket, *i, Events::IN, ONESHOT_LEVEL),
                )
            },
            |i, (_, socket, peer, _), second, first| {
                let results = [first, second];
                for (p, r) in results.iter().enumerate() {
                    assert_no_enoent(r, &format!("trial {i}, port {p}"));
                    assert_ne!(
                        r.as_ref().err().map(io::Error::kind),
                        Some(ErrorKind::NotFound),
                        "trial {i}, port {p}: {r:?}"
                    );
                }
                let winner = match (&results[0], &results[1]) {
                    (Ok(()), Ok(())) => panic!("trial {i}: registered on both ports"),
                    (Err(a), Err(b)) => panic!("trial {i}: registered on neither: {a}; {b}"),
                    (Ok(()), Err(_)) => 0,
                    (Err(_), Ok(())) => 1,
                };
                let lost = results[1 - winner].as_ref().unwrap_err();
                assert_eq!(
                    ErrorCause::of(lost),
                    Some(ErrorCause::RegisteredElsewhere),
                    "trial {i}: {lost}"
                );
                assert_eq!(lost.kind(), ErrorKind::AlreadyExists, "trial {i}");
                wins[winner] += 1;
                // The winner's registration is live, and it is the only one.
                let port = &ports[winner];
                peer.lock().unwrap().write_all(b"x").unwrap();
                expect_next(port, i, Events::IN, &format!("trial {i}"));
                apply_one(port, Registration::remove(&socket)).expect("remove");
                expect_next(port, i, Events::REMOVE, &format!("trial {i}"));
            },
        );
        eprintln!("{b:?}: {trials} trials, wins {wins:?}");
        for port in &ports {
            expect_nothing(port);
            assert_eq!(port.registrations(), 0);
        }
    });
}

/// Passes a duplicate of `fd` through a Unix datagram pair (`SCM_RIGHTS`).
#[cfg(unix)]
fn pass_descriptor(fd: RawFd) -> OwnedFd {
    let (tx, rx) = UnixDatagram::pair().unwrap();
    // SAFETY: CMSG_SPACE only computes a size from its argument.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) } as usize;
    let mut control = vec![0u8; space];
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    // SAFETY: `msg` points at `iov` and `control`, which outlive both calls; the control
    // buffer has room for one descriptor (CMSG_SPACE), written through CMSG_* as documented.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>(), fd);
        assert_eq!(
            libc::sendmsg(tx.as_raw_fd(), &msg, 0),
            1,
            "sendmsg: {}",
            io::Error::last_os_error()
        );
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        control.fill(0);
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        assert_eq!(
            libc::recvmsg(rx.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC),
            1,
            "recvmsg: {}",
            io::Error::last_os_error()
        );
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        assert!(!cmsg.is_null(), "no descriptor received");
        assert_eq!(
            ((*cmsg).cmsg_level, (*cmsg).cmsg_type),
            (libc::SOL_SOCKET, libc::SCM_RIGHTS)
        );
        let received = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>());
        assert!(received >= 0 && received != fd);
        OwnedFd::from_raw_fd(received)
    }
}

/// How a test may copy a socket: `try_clone` everywhere, `SCM_RIGHTS` on unix.
#[cfg(unix)]
const COPIES: [&str; 2] = ["try_clone", "SCM_RIGHTS"];
/// How a test may copy a socket: `try_clone` (`WSADuplicateSocketW`) on Windows.
#[cfg(windows)]
const COPIES: [&str; 1] = ["try_clone"];

/// A second descriptor or handle of `socket`'s socket, made as `how` says ([`COPIES`]).
#[cfg(unix)]
fn copy_of(socket: &TcpStream, how: &str) -> OwnedFd {
    match how {
        "try_clone" => socket.try_clone().unwrap().into(),
        _ => pass_descriptor(socket.as_raw_fd()),
    }
}

/// A second handle of `socket`'s socket, made as `how` says ([`COPIES`]).
#[cfg(windows)]
fn copy_of(socket: &TcpStream, how: &str) -> OwnedSocket {
    assert_eq!(how, "try_clone");
    socket.try_clone().unwrap().into()
}

#[test]
fn rule_06_a_duplicate_is_the_same_socket_row_h() {
    serial(|b| {
        for how in COPIES {
            let first = port(b);
            let second = port(b);
            let (mut client, server) = tcp_pair();
            let copy = copy_of(&server, how);
            enable(&first, &server, 1, Events::IN, ONESHOT_LEVEL);
            // On another port: refused, and the copy has no registration there.
            let err = apply_one(
                &second,
                Registration::enable(&copy, 2, Events::IN, ONESHOT_LEVEL),
            )
            .expect_err("a duplicate registered on a second port");
            assert_eq!(
                ErrorCause::of(&err),
                Some(ErrorCause::RegisteredElsewhere),
                "{how}: {err}"
            );
            assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{how}");
            for r in [Registration::disable(&copy), Registration::remove(&copy)] {
                let err = apply_one(&second, r).expect_err("DISABLE/REMOVE on the second port");
                assert_eq!(
                    ErrorCause::of(&err),
                    Some(ErrorCause::NotRegistered),
                    "{how}: {err}"
                );
            }
            assert_eq!(second.registrations(), 0, "{how}");
            client.write_all(b"unread").unwrap();
            expect_entry(&first, 1, Events::IN);
            expect_nothing(&first); // one-shot: fired
            expect_nothing(&second);
            // On the same port, the copy names the same registration: the same key re-arms
            // it...
            apply_one(
                &first,
                Registration::enable(&copy, 1, Events::IN, ONESHOT_LEVEL),
            )
            .unwrap_or_else(|e| panic!("{how}: ENABLE through the copy, same key: {e}"));
            assert_eq!(first.registrations(), 1, "{how}: a second registration");
            expect_entry(&first, 1, Events::IN);
            expect_nothing(&first);
            // ...another key is a key change, which leaves it as it was...
            let err = apply_one(
                &first,
                Registration::enable(&copy, 3, Events::IN, ONESHOT_LEVEL),
            )
            .expect_err("ENABLE through the copy with another key");
            assert_eq!(
                ErrorCause::of(&err),
                Some(ErrorCause::KeyChange),
                "{how}: {err}"
            );
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "{how}");
            expect_nothing(&first);
            enable(&first, &server, 1, Events::IN, ONESHOT_LEVEL);
            expect_entry(&first, 1, Events::IN);
            // ...and REMOVE through the copy removes it: one REMOVE entry, the last one.
            apply_one(&first, Registration::remove(&copy))
                .unwrap_or_else(|e| panic!("{how}: REMOVE through the copy: {e}"));
            let all = drain(&first);
            assert_eq!(
                all,
                [socknotify::CompletionEntry::new(1, 0x80, 0)],
                "{how}: not one REMOVE entry"
            );
            assert_eq!(first.registrations(), 0, "{how}");
            let err = apply_one(&first, Registration::remove(&server)).expect_err("second REMOVE");
            assert_eq!(ErrorCause::of(&err), Some(ErrorCause::NotRegistered));
            // Now free: the copy may go to the second port, and the original is refused on
            // the first.
            enable(&second, &copy, 2, Events::IN, LEVEL);
            expect_entry(&second, 2, Events::IN);
            let err = apply_one(&first, Registration::enable(&server, 1, Events::IN, LEVEL))
                .expect_err("the original registered on the first port too");
            assert_eq!(
                ErrorCause::of(&err),
                Some(ErrorCause::RegisteredElsewhere),
                "{how}: {err}"
            );
        }
    });
}

/// One trial of row o: the old socket at `fd`, registered, and the new socket waiting to be
/// moved to its number.
#[cfg(unix)]
struct Reuse {
    fd: RawFd,
    old: Mutex<Option<UnixStream>>,
    _old_peer: UnixStream,
    new: Mutex<Option<UnixStream>>,
    new_peer: Mutex<UnixStream>,
    old_key: usize,
    new_key: usize,
    delays: (usize, usize),
}

/// Unix only: it moves a new socket to the closed one's number (`F_DUPFD`), which Windows
/// cannot do with handle values. The Windows form of the race is tests/windows.rs's
/// `rule_07_closed_handle_reused_by_another_thread_at_once`, which waits for the value to
/// be handed out again.
#[cfg(unix)]
#[test]
fn rule_07_rearm_racing_close_and_reuse_never_leaves_a_registration_silent_row_o() {
    serial(|b| {
        let port = port(b);
        let mut rng = Rng::new(0x0707);
        let mut outcomes = std::collections::BTreeMap::<String, usize>::new();
        let trials = race(
            4000,
            Duration::from_secs(2),
            |i| {
                let (old, old_peer) = unix_pair();
                let (new, new_peer) = unix_pair();
                let old_key = 2 * i;
                enable(&port, &old, old_key, Events::IN, ONESHOT_LEVEL);
                Reuse {
                    fd: old.as_raw_fd(),
                    old: Mutex::new(Some(old)),
                    _old_peer: old_peer,
                    new: Mutex::new(Some(new)),
                    new_peer: Mutex::new(new_peer),
                    old_key,
                    new_key: old_key + 1,
                    delays: (rng.below(300), rng.below(60)),
                }
            },
            // A re-arms the number, with the old key.
            |t| {
                jitter(t.delays.0);
                let r = Registration::from_raw(
                    t.fd,
                    t.old_key,
                    Events::IN,
                    Operation::Enable,
                    ONESHOT_LEVEL,
                );
                apply_one(&port, r)
            },
            // B closes it, moves a new socket to the number and registers that.
            |t| {
                jitter(t.delays.1);
                drop(t.old.lock().unwrap().take());
                let new = t.new.lock().unwrap().take().unwrap();
                // SAFETY: F_DUPFD allocates the lowest free number from `fd` on, closing
                // nothing; the result is a new descriptor owned by the stream made of it.
                let moved = unsafe {
                    let fd = libc::fcntl(new.as_raw_fd(), libc::F_DUPFD_CLOEXEC, t.fd);
                    assert!(fd >= 0, "F_DUPFD: {}", io::Error::last_os_error());
                    UnixStream::from_raw_fd(fd)
                };
                drop(new);
                let r = Registration::from_raw(
                    moved.as_fd().as_raw_fd(),
                    t.new_key,
                    Events::IN,
                    Operation::Enable,
                    ONESHOT_LEVEL,
                );
                let result = apply_one(&port, r);
                (moved, result)
            },
            |i, t, rearm, (moved, enable)| {
                assert_no_enoent(&rearm, &format!("trial {i}, re-arm"));
                assert_no_enoent(&enable, &format!("trial {i}, new ENABLE"));
                let reused = moved.as_raw_fd() == t.fd;
                // The outcomes some sequential order of the four steps gives.
                let key = match (cause(&rearm), cause(&enable)) {
                    // Re-armed before the close, or refused after it (closed, or a key
                    // change once the new socket was registered): the new key.
                    (None, None)
                    | (
                        Some(
                            ErrorCause::BadDescriptor
                            | ErrorCause::NotRegistered
                            | ErrorCause::KeyChange,
                        ),
                        None,
                    ) => t.new_key,
                    // Between the reuse and the new ENABLE, the re-arm registered the new
                    // socket under the old key; the owner's ENABLE is then a key change.
                    (None, Some(ErrorCause::KeyChange)) if reused => t.old_key,
                    other => panic!(
                        "trial {i}: no sequential order gives re-arm {rearm:?}, \
                         new ENABLE {enable:?} ({other:?}, reused: {reused})"
                    ),
                };
                *outcomes
                    .entry(format!("{:?}/{:?}", cause(&rearm), cause(&enable)))
                    .or_default() += 1;
                // Whatever registration the new socket has reports, under that one key.
                t.new_peer.lock().unwrap().write_all(b"x").unwrap();
                expect_next(&port, key, Events::IN, &format!("trial {i}, key {key}"));
                apply_one(&port, Registration::remove(&moved))
                    .unwrap_or_else(|e| panic!("trial {i}: REMOVE: {e}"));
                expect_next(&port, key, Events::REMOVE, &format!("trial {i}"));
            },
        );
        eprintln!("{b:?}: {trials} trials, outcomes {outcomes:?}");
        expect_nothing(&port);
    });
}

//! Fuzz target: arbitrary bytes decoded into a sequence of registrations (built with
//! `Registration::from_bits`, so every bit pattern is reachable) and port operations on a
//! few socket pairs and duplicates of their descriptors, checked after every step against
//! a small model.
//!
//! The model knows sockets, not descriptor numbers (rules 6 and 7): every descriptor of a
//! socket (the pair's own and its `dup`s) names the same registration.
//!
//! Invariants checked:
//! - nothing panics;
//! - every registration's result has the cause the rules give it (`ErrorCause::of`), with
//!   the matching kind and OS code (rule 22): `InvalidFlags` (InvalidInput) for bad bits,
//!   `KeyChange` (InvalidInput) for another key, `BadDescriptor` (`EBADF`) for a negative
//!   or closed descriptor and `NotSocket` (`ENOTSOCK`) for a pipe, for ENABLE, DISABLE and
//!   REMOVE alike; `NotRegistered` (NotFound) for DISABLE/REMOVE of an open socket with no
//!   registration; `RegisteredElsewhere` (AlreadyExists) for a socket registered on a
//!   second port; a failure for every registration on a closed port (whose `process`
//!   fails with `PortClosed`, BrokenPipe); Ok otherwise,
//!   including LEVEL alone and EDGE alone (rule 1); an unprocessed registration says
//!   `NotProcessed` (Other);
//! - ENABLE, DISABLE and REMOVE through a duplicate act on the socket's registration, also
//!   after the descriptor it was registered through is closed (rule 7);
//! - a persistent registration (LEVEL or EDGE, with or without PERSISTENT) reports IN
//!   again for new data after its first entry (the `probe` step);
//! - `registrations()` lies between the model's attached registrations and all of its
//!   registrations plus the registered sockets closed since;
//! - posted entries come out once each, unchanged; a notification carries only known
//!   bits, and REMOVE entries come once per successful REMOVE, alone in their entry;
//! - a notification's key belongs to a registration the model has, or to one whose
//!   REMOVE entry is still owed; a registration whose socket was closed, or whose
//!   registered descriptor was closed while a duplicate keeps the socket open, may give at
//!   most one stale entry (rule 7);
//! - at the end, after removing everything, the queue drains to nothing unexpected.
//!
//! Run: `cargo +nightly fuzz run registration_sequence` (see docs/reliability.md).

#![no_main]

use std::collections::{HashMap, HashSet};
use std::io::{self, ErrorKind, Read, Write};
use std::net::Shutdown;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use socknotify::{
    is_port_closed, Backend, CompletionEntry, CompletionPort, ErrorCause, Events, Registration,
};

/// Keys that look like internal sentinels (wake and probe tokens, the free-list end).
const ODD_KEYS: [usize; 8] = [
    0,
    usize::MAX,
    usize::MAX - 1,
    u32::MAX as usize,
    u32::MAX as usize - 1,
    u32::MAX as usize - 2,
    1 << 32,
    1 << 63,
];

/// Keys of their own for each socket start here: `SOCKET_KEYS + 2 * socket + (0 or 1)`.
const SOCKET_KEYS: usize = 0x1000;

/// Well-formed trigger bytes: LEVEL and EDGE alone (persistent, rule 1), then with ONESHOT
/// or PERSISTENT.
const TRIGGERS: [u8; 6] = [0x04, 0x08, 0x05, 0x06, 0x09, 0x0a];

/// Duplicates get descriptor numbers from here up, never reused within one input, so that
/// a number only comes back for a new socket (`recreate`), never for the same one.
const FIRST_DUP_FD: RawFd = 64;

/// At most this many descriptors of sockets at once.
const MAX_ENDS: usize = 14;

/// How long the probe waits for an entry that must come.
const PROBE_WAIT: Duration = Duration::from_secs(2);

/// Reads the fuzzer's bytes; runs out quietly.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes([self.byte()?, self.byte()?]))
    }
}

/// A descriptor of one end of a pair.
enum Sock {
    Stream(UnixStream),
    Dgram(UnixDatagram),
}

impl Sock {
    fn fd(&self) -> RawFd {
        match self {
            Sock::Stream(s) => s.as_raw_fd(),
            Sock::Dgram(s) => s.as_raw_fd(),
        }
    }

    fn fd_ref(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        match self {
            Sock::Stream(s) => s.as_fd(),
            Sock::Dgram(s) => s.as_fd(),
        }
    }

    /// Sends up to 64 bytes; whether any went.
    fn send(&self, n: usize) -> bool {
        let buf = [0x5a; 64];
        let sent = match self {
            Sock::Stream(s) => (&mut &*s).write(&buf[..n.min(64)]),
            Sock::Dgram(s) => s.send(&buf[..n.min(64)]),
        };
        matches!(sent, Ok(n) if n > 0)
    }

    fn drain(&self) {
        let mut buf = [0u8; 256];
        for _ in 0..64 {
            let got = match self {
                Sock::Stream(s) => (&mut &*s).read(&mut buf),
                Sock::Dgram(s) => s.recv(&mut buf),
            };
            if !matches!(got, Ok(n) if n > 0) {
                return;
            }
        }
    }

    fn shutdown(&self) {
        let _ = match self {
            Sock::Stream(s) => s.shutdown(Shutdown::Write),
            Sock::Dgram(s) => s.shutdown(Shutdown::Write),
        };
    }

    /// A duplicate at the lowest free number from `min` up.
    fn dup(&self, min: RawFd) -> Sock {
        // SAFETY: fcntl(F_DUPFD_CLOEXEC) on a descriptor this value owns; the new
        // descriptor is owned by nothing else.
        let fd = unsafe { libc::fcntl(self.fd(), libc::F_DUPFD_CLOEXEC, min) };
        assert!(fd >= 0, "dup: {}", io::Error::last_os_error());
        // SAFETY: `fd` was just opened and is owned by nobody else.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        match self {
            Sock::Stream(_) => Sock::Stream(UnixStream::from(owned)),
            Sock::Dgram(_) => Sock::Dgram(UnixDatagram::from(owned)),
        }
    }
}

fn pair(datagram: bool) -> [Sock; 2] {
    if datagram {
        let (a, b) = UnixDatagram::pair().expect("socketpair");
        a.set_nonblocking(true).unwrap();
        b.set_nonblocking(true).unwrap();
        [Sock::Dgram(a), Sock::Dgram(b)]
    } else {
        let (a, b) = UnixStream::pair().expect("socketpair");
        a.set_nonblocking(true).unwrap();
        b.set_nonblocking(true).unwrap();
        [Sock::Stream(a), Sock::Stream(b)]
    }
}

/// One open descriptor of a socket.
struct End {
    sock: Sock,
    /// The socket it names (ids are never reused within one input).
    socket: usize,
}

/// What the model knows of one socket's registration on the port.
#[derive(Clone, Copy, Debug)]
struct Reg {
    key: usize,
    /// The descriptor number it was registered (or last re-attached) through.
    fd: RawFd,
    /// That descriptor is still open (and so names the socket: numbers of duplicates are
    /// never reused, see `FIRST_DUP_FD`).
    attached: bool,
    enabled: bool,
    oneshot: bool,
    filter: u16,
}

/// What a registration's `result()` must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Want {
    Ok,
    Cause(ErrorCause),
    /// Either cause: the rules do not order two checks that both fail.
    Either(ErrorCause, ErrorCause),
    /// Any failure with a cause.
    Failure,
}

/// What is wrong with the bits alone (rule 1).
enum Bits {
    /// Unknown bits, or not exactly one operation.
    Bad,
    /// NONE with known bits: nothing to do, Ok whatever the descriptor.
    Nothing,
    /// ENABLE with known bits but not exactly one of LEVEL/EDGE, or both ONESHOT and
    /// PERSISTENT.
    BadTrigger,
    Good,
}

fn bits(filter: u16, op: u8, trigger: u8) -> Bits {
    if !matches!(op, 0 | 1 | 2 | 4) || filter & !0x07 != 0 || trigger & !0x0f != 0 {
        return Bits::Bad;
    }
    if op == 0 {
        return Bits::Nothing;
    }
    let level_or_edge = (trigger & 0x04 != 0) != (trigger & 0x08 != 0);
    let at_most_one_mode = trigger & 0x03 != 0x03;
    if op == 1 && !(level_or_edge && at_most_one_mode) {
        return Bits::BadTrigger;
    }
    Bits::Good
}

/// Checks that `err` is what its cause says it is: kind and OS code (rule 22).
fn check_cause(err: &io::Error, cause: ErrorCause) {
    let (kind, code) = match cause {
        ErrorCause::NotProcessed => (Some(ErrorKind::Other), None),
        ErrorCause::InvalidFlags | ErrorCause::KeyChange => (Some(ErrorKind::InvalidInput), None),
        ErrorCause::NotRegistered => (Some(ErrorKind::NotFound), None),
        ErrorCause::RegisteredElsewhere => (Some(ErrorKind::AlreadyExists), None),
        ErrorCause::PortClosed => (Some(ErrorKind::BrokenPipe), None),
        ErrorCause::BadDescriptor => (None, Some(libc::EBADF)),
        ErrorCause::NotSocket => (None, Some(libc::ENOTSOCK)),
        other => panic!("unexpected cause {other:?}: {err:?}"),
    };
    if let Some(kind) = kind {
        assert_eq!(err.kind(), kind, "{cause:?}: {err:?}");
    }
    assert_eq!(err.raw_os_error(), code, "{cause:?}: {err:?}");
    assert_eq!(
        is_port_closed(err),
        cause == ErrorCause::PortClosed,
        "{err:?}"
    );
}

/// Where a registration points.
enum Target {
    Socket(usize),
    /// Negative, or a number that cannot be open.
    BadFd,
    /// An open descriptor that is not a socket.
    Pipe,
}

struct Harness {
    port: CompletionPort,
    /// A second port, for rule 6.
    other: CompletionPort,
    ends: Vec<End>,
    /// The sockets of each pair.
    pairs: Vec<[usize; 2]>,
    next_socket: usize,
    next_dup_fd: RawFd,
    /// Registrations on `port`, by socket.
    regs: HashMap<usize, Reg>,
    /// Sockets registered on `other`.
    elsewhere: HashSet<usize>,
    /// Descriptors that are never sockets on this port: a pipe's ends.
    pipes: Vec<OwnedFd>,
    closed: bool,
    /// Registered sockets closed since: the port may still count them.
    stale: usize,
    /// Stale entries allowed per key: one for each registration whose socket was closed
    /// or whose registered descriptor was closed (rule 7).
    budget: HashMap<usize, usize>,
    /// Posted entries not yet dequeued, by their (unique) `overlapped`.
    posted: HashMap<usize, CompletionEntry>,
    next_post: usize,
    /// REMOVE entries owed, per key.
    removes: HashMap<usize, usize>,
}

impl Harness {
    fn new(backend: Backend) -> Harness {
        let build = || {
            CompletionPort::builder()
                .backend(backend)
                .build()
                .or_else(|_| CompletionPort::builder().backend(Backend::Epoll).build())
                .expect("port")
        };
        let (port, other) = (build(), build());
        let (r, w) = std::io::pipe().expect("pipe");
        let mut harness = Harness {
            port,
            other,
            ends: Vec::new(),
            pairs: Vec::new(),
            next_socket: 0,
            next_dup_fd: FIRST_DUP_FD,
            regs: HashMap::new(),
            elsewhere: HashSet::new(),
            pipes: vec![r.into(), w.into()],
            closed: false,
            stale: 0,
            budget: HashMap::new(),
            posted: HashMap::new(),
            next_post: 1,
            removes: HashMap::new(),
        };
        for datagram in [false, false, true] {
            let sockets = harness.open_pair(datagram);
            harness.pairs.push(sockets);
        }
        harness
    }

    fn open_pair(&mut self, datagram: bool) -> [usize; 2] {
        let ids = [self.next_socket, self.next_socket + 1];
        self.next_socket += 2;
        for (sock, socket) in pair(datagram).into_iter().zip(ids) {
            self.ends.push(End { sock, socket });
        }
        ids
    }

    fn end_of(&self, socket: usize) -> Option<&End> {
        self.ends.iter().find(|e| e.socket == socket)
    }

    fn peer(&self, socket: usize) -> usize {
        let p = self
            .pairs
            .iter()
            .find(|p| p.contains(&socket))
            .expect("pair");
        p[usize::from(p[0] == socket)]
    }

    fn check_count(&self) {
        let n = self.port.registrations();
        if self.closed {
            assert_eq!(n, 0, "a closed port has no registrations");
            return;
        }
        let low = self.regs.values().filter(|r| r.attached).count();
        let high = self.regs.len() + self.stale;
        assert!(
            (low..=high).contains(&n),
            "registrations() = {n}, model {low} attached, {} in all, up to {} closed",
            self.regs.len(),
            self.stale
        );
    }

    /// Decodes one registration and the result the model wants for it, updating the model
    /// as if it succeeded.
    fn registration(&mut self, input: &mut Input<'_>) -> Option<(Registration, Want)> {
        let target = input.byte()?;
        let key_byte = input.byte()?;
        let (filter, op, trigger) = match input.byte()? {
            // Mostly well-formed, so that the model gets exercised past validation.
            sel @ 0..=0xbf => {
                let op = [1, 1, 2, 4][usize::from(sel & 3)];
                let t = usize::from(sel >> 2);
                (u16::try_from(t / 6).unwrap() & 0x07, op, TRIGGERS[t % 6])
            }
            _ => (input.u16()?, input.byte()?, input.byte()?),
        };
        let (fd, target) = match usize::from(target) % (self.ends.len() + 5) {
            i if i < self.ends.len() => {
                (self.ends[i].sock.fd(), Target::Socket(self.ends[i].socket))
            }
            i => match i - self.ends.len() {
                0 => (-1, Target::BadFd),
                1 => (i32::MIN, Target::BadFd),
                2 => (1 << 24, Target::BadFd), // cannot be open: above any limit here
                3 => (self.pipes[0].as_raw_fd(), Target::Pipe),
                _ => (self.pipes[1].as_raw_fd(), Target::Pipe),
            },
        };
        let key = match key_byte {
            k @ 0..=0x7f => usize::from(k % 8),
            k @ 0x80..=0xf7 => match target {
                Target::Socket(s) => SOCKET_KEYS + 2 * s + usize::from(k & 1),
                _ => SOCKET_KEYS - 1,
            },
            k => ODD_KEYS[usize::from(k - 0xf8)],
        };
        let registration = Registration::from_bits(fd, key, filter, op, trigger);
        if self.closed {
            // Rule 19: every registration fails on a closed port, NONE included (the call
            // does too, with PortClosed). Its own cause may be PortClosed or what the
            // request's first failing check says (bad bits, a bad descriptor).
            return Some((registration, Want::Failure));
        }
        let fd_cause = match target {
            Target::Socket(_) => None,
            Target::BadFd => Some(ErrorCause::BadDescriptor),
            Target::Pipe => Some(ErrorCause::NotSocket),
        };
        match (bits(filter, op, trigger), fd_cause) {
            (Bits::Bad, _) => return Some((registration, Want::Cause(ErrorCause::InvalidFlags))),
            (Bits::Nothing, _) => return Some((registration, Want::Ok)),
            (Bits::BadTrigger, None) => {
                return Some((registration, Want::Cause(ErrorCause::InvalidFlags)))
            }
            (Bits::BadTrigger, Some(c)) => {
                return Some((registration, Want::Either(ErrorCause::InvalidFlags, c)))
            }
            (Bits::Good, Some(c)) => return Some((registration, Want::Cause(c))),
            (Bits::Good, None) => {}
        }
        let Target::Socket(socket) = target else {
            unreachable!()
        };
        let want = match op {
            1 if self.elsewhere.contains(&socket) => Want::Cause(ErrorCause::RegisteredElsewhere),
            1 => match self.regs.get_mut(&socket) {
                Some(reg) if reg.key != key => Want::Cause(ErrorCause::KeyChange),
                Some(reg) => {
                    if !reg.attached {
                        // Re-attached through the descriptor named (rule 7).
                        reg.fd = fd;
                        reg.attached = true;
                    }
                    reg.enabled = true;
                    reg.oneshot = trigger & 0x01 != 0;
                    reg.filter = filter;
                    Want::Ok
                }
                None => {
                    self.regs.insert(
                        socket,
                        Reg {
                            key,
                            fd,
                            attached: true,
                            enabled: true,
                            oneshot: trigger & 0x01 != 0,
                            filter,
                        },
                    );
                    Want::Ok
                }
            },
            2 => match self.regs.get_mut(&socket) {
                Some(reg) => {
                    reg.enabled = false;
                    Want::Ok
                }
                None => Want::Cause(ErrorCause::NotRegistered),
            },
            _ => match self.regs.remove(&socket) {
                Some(reg) => {
                    *self.removes.entry(reg.key).or_default() += 1;
                    Want::Ok
                }
                None => Want::Cause(ErrorCause::NotRegistered),
            },
        };
        Some((registration, want))
    }

    fn process(&mut self, input: &mut Input<'_>) -> Option<()> {
        let count = usize::from(input.byte()? % 9);
        let room = usize::from(input.byte()? % 5);
        let mut batch = Vec::new();
        let mut wants = Vec::new();
        // The model counts a decoded registration as done, so a batch cut short by the end
        // of the input is still processed.
        let mut complete = true;
        for _ in 0..count {
            let Some((registration, want)) = self.registration(input) else {
                complete = false;
                break;
            };
            let unprocessed = registration.result().expect_err("unprocessed");
            assert_eq!(ErrorCause::of(&unprocessed), Some(ErrorCause::NotProcessed));
            check_cause(&unprocessed, ErrorCause::NotProcessed);
            batch.push(registration);
            wants.push(want);
        }
        let mut entries = vec![CompletionEntry::default(); room];
        let got = self
            .port
            .process(&mut batch, &mut entries, Some(Duration::ZERO));
        trace(|| {
            format!(
                "process {batch:?} -> {got:?} {:?}",
                &entries[..*got.as_ref().unwrap_or(&0)]
            )
        });
        for (i, (registration, want)) in batch.iter().zip(&wants).enumerate() {
            let result = registration.result();
            let seen = match &result {
                Ok(()) => Want::Ok,
                Err(e) => {
                    let cause = ErrorCause::of(e).unwrap_or_else(|| panic!("no cause: {e:?}"));
                    check_cause(e, cause);
                    Want::Cause(cause)
                }
            };
            let ok = match (*want, seen) {
                (Want::Either(a, b), Want::Cause(c)) => c == a || c == b,
                (Want::Failure, Want::Cause(_)) => true,
                (want, seen) => want == seen,
            };
            assert!(
                ok,
                "registration {i} {registration:?}: want {want:?}, got {result:?}"
            );
        }
        match got {
            Ok(n) => {
                assert!(!self.closed, "process on a closed port succeeded");
                assert!(n <= room);
                self.check_entries(&entries[..n]);
            }
            Err(e) => assert!(self.closed && is_port_closed(&e), "process: {e}"),
        }
        self.check_count();
        complete.then_some(())
    }

    fn dequeue(&mut self, room: usize, timeout: Duration) -> usize {
        let mut entries = vec![CompletionEntry::default(); room];
        let got = self.port.dequeue(&mut entries, Some(timeout));
        trace(|| {
            format!(
                "dequeue {room} -> {got:?} {:?}",
                &entries[..*got.as_ref().unwrap_or(&0)]
            )
        });
        match got {
            Ok(n) => {
                assert!(room > 0 && !self.closed && n <= room);
                self.check_entries(&entries[..n]);
                n
            }
            Err(e) if room == 0 => {
                assert_eq!(e.kind(), ErrorKind::InvalidInput);
                0
            }
            Err(e) => {
                assert!(self.closed && is_port_closed(&e), "dequeue: {e}");
                0
            }
        }
    }

    fn check_entries(&mut self, entries: &[CompletionEntry]) {
        for entry in entries {
            if entry.overlapped != 0 {
                let want = self.posted.remove(&entry.overlapped);
                assert_eq!(want, Some(*entry), "posted entry altered or repeated");
                continue;
            }
            let events = entry.events();
            assert!(entry.bytes >> 16 == 0 && !events.is_empty(), "{entry:?}");
            let known = Events::FILTER | Events::ERR | Events::REMOVE;
            assert!(known.contains(events), "unknown bits in {entry:?}");
            let key = entry.key;
            if events.is_remove() {
                assert_eq!(events, Events::REMOVE, "REMOVE shares an entry: {entry:?}");
                let owed = self.removes.get_mut(&key);
                let owed = owed.filter(|n| **n > 0).expect("unexpected REMOVE entry");
                *owed -= 1;
                continue;
            }
            // Rules 4 and 7: a notification belongs to a registration that is there (or
            // whose REMOVE entry is still to come), else it is one of the stale entries
            // allowed to a registration that was closed or lost its descriptor.
            let live = self.regs.values().any(|r| r.key == key && r.attached);
            let removing = self.removes.get(&key).is_some_and(|n| *n > 0);
            if !live && !removing {
                let budget = self.budget.get_mut(&key).filter(|n| **n > 0);
                let budget = budget.unwrap_or_else(|| {
                    panic!("{entry:?} after its registration ended (and its one stale entry)")
                });
                *budget -= 1;
            }
        }
    }

    fn post(&mut self, input: &mut Input<'_>) -> Option<()> {
        let key = ODD_KEYS[usize::from(input.byte()? % 8)];
        let bytes = u32::from(input.u16()?) << 8;
        let entry = CompletionEntry::new(key, bytes, self.next_post);
        match self.port.post(entry) {
            Ok(()) => {
                assert!(!self.closed, "post on a closed port succeeded");
                self.posted.insert(self.next_post, entry);
            }
            Err(e) => assert!(self.closed && is_port_closed(&e), "post: {e}"),
        }
        self.next_post += 1;
        Some(())
    }

    /// The registration of `socket` ends without REMOVE: its socket was closed.
    fn socket_closed(&mut self, socket: usize) {
        self.elsewhere.remove(&socket);
        if let Some(reg) = self.regs.remove(&socket) {
            self.stale += 1;
            *self.budget.entry(reg.key).or_default() += 1;
        }
    }

    /// Closes every descriptor of pair `i`'s sockets and opens a new pair in its place.
    fn recreate(&mut self, i: usize) {
        let old = self.pairs[i];
        let datagram = matches!(self.end_of(old[0]).expect("open").sock, Sock::Dgram(_));
        for socket in old {
            self.socket_closed(socket);
        }
        // Close the old descriptors first, so that the new ones may reuse their numbers.
        self.ends.retain(|e| !old.contains(&e.socket));
        self.pairs[i] = self.open_pair(datagram);
    }

    /// A duplicate of descriptor `e`: the same socket (rule 6).
    fn dup(&mut self, e: usize) {
        if self.ends.len() >= MAX_ENDS {
            return;
        }
        let sock = self.ends[e].sock.dup(self.next_dup_fd);
        self.next_dup_fd = sock.fd() + 1;
        let socket = self.ends[e].socket;
        self.ends.push(End { sock, socket });
    }

    /// Closes descriptor `e` if another descriptor keeps its socket open.
    fn close_descriptor(&mut self, e: usize) {
        let socket = self.ends[e].socket;
        if self.ends.iter().filter(|x| x.socket == socket).count() < 2 {
            return;
        }
        let fd = self.ends.remove(e).sock.fd();
        if let Some(reg) = self.regs.get_mut(&socket) {
            if reg.attached && reg.fd == fd {
                reg.attached = false;
                *self.budget.entry(reg.key).or_default() += 1;
            }
        }
    }

    /// Registers descriptor `e`'s socket on the other port, or removes it from there
    /// (rule 6: a socket, through any descriptor, is registered on one port only).
    fn other_port(&mut self, e: usize) {
        let socket = self.ends[e].socket;
        let fd = self.ends[e].sock.fd_ref();
        let there = self.elsewhere.contains(&socket);
        let mut batch = [if there {
            Registration::remove(&fd)
        } else {
            Registration::enable(&fd, 0x77, Events::IN, socknotify::Trigger::LEVEL)
        }];
        self.other
            .process(&mut batch, &mut [], Some(Duration::ZERO))
            .expect("other port");
        let result = batch[0].result();
        trace(|| format!("other port {:?} -> {result:?}", batch[0]));
        if there {
            result.expect("REMOVE on the other port");
            self.elsewhere.remove(&socket);
        } else if self.regs.contains_key(&socket) {
            let e = result.expect_err("registered on two ports");
            assert_eq!(
                ErrorCause::of(&e),
                Some(ErrorCause::RegisteredElsewhere),
                "{e:?}"
            );
            check_cause(&e, ErrorCause::RegisteredElsewhere);
        } else {
            result.expect("ENABLE on the other port");
            self.elsewhere.insert(socket);
        }
    }

    /// Rule 1 (LEVEL or EDGE alone is persistent) and rules 10/11: a persistent,
    /// enabled registration with IN in its filter reports new data twice in a row.
    fn probe(&mut self, e: usize) {
        let socket = self.ends[e].socket;
        let Some(reg) = self.regs.get(&socket).copied() else {
            return;
        };
        if self.closed || !reg.attached || !reg.enabled || reg.oneshot || reg.filter & 0x01 == 0 {
            return;
        }
        let peer = self.peer(socket);
        for round in 0..2 {
            self.ends[e].sock.drain();
            if !self.end_of(peer).expect("peer").sock.send(1) {
                return; // the peer was shut down
            }
            let deadline = Instant::now() + PROBE_WAIT;
            let mut seen = false;
            while !seen && Instant::now() < deadline {
                let mut entries = [CompletionEntry::default(); 8];
                let n = self
                    .port
                    .dequeue(&mut entries, Some(Duration::from_millis(50)))
                    .expect("probe dequeue");
                trace(|| format!("probe dequeue -> {:?}", &entries[..n]));
                seen = entries[..n].iter().any(|x| {
                    x.overlapped == 0 && x.key == reg.key && x.events().contains(Events::IN)
                });
                self.check_entries(&entries[..n]);
            }
            assert!(seen, "persistent {reg:?} gave no IN entry in round {round}");
        }
    }

    fn step(&mut self, input: &mut Input<'_>) -> Option<()> {
        let op = input.byte()?;
        trace(|| {
            let fds: Vec<_> = self
                .ends
                .iter()
                .map(|e| {
                    (
                        e.sock.fd(),
                        e.socket,
                        self.regs.get(&e.socket).map(|r| r.key),
                    )
                })
                .collect();
            format!("step {op:#04x} ({}), ends {fds:?}", op % 13)
        });
        let end = usize::from(op >> 4) % self.ends.len();
        match op % 13 {
            0..=2 => self.process(input)?,
            3 => {
                self.dequeue(usize::from(op >> 4) % 5, Duration::ZERO);
            }
            4 => {
                self.ends[end].sock.send(usize::from(input.byte()?));
            }
            5 => self.ends[end].sock.drain(),
            6 => self.ends[end].sock.shutdown(),
            7 => {
                if op >> 4 == 0xf {
                    self.port.close();
                    self.closed = true;
                    self.posted.clear();
                    self.removes.clear();
                    self.regs.clear();
                    self.stale = 0;
                    self.check_count();
                } else {
                    let socket = self.ends[end].socket;
                    let i = self.pairs.iter().position(|p| p.contains(&socket)).unwrap();
                    self.recreate(i);
                }
            }
            8 => self.post(input)?,
            9 => self.dup(end),
            10 => self.close_descriptor(end),
            11 => self.probe(end),
            _ => self.other_port(end),
        }
        Some(())
    }

    /// Removes every registration, then checks that the queue holds exactly what is owed.
    fn finish(mut self) {
        if self.closed {
            return;
        }
        let regs: Vec<_> = self.regs.drain().collect();
        let mut batch = Vec::new();
        for (socket, reg) in regs {
            let end = self.ends.iter().find(|e| e.socket == socket).expect("open");
            batch.push(Registration::remove(&end.sock.fd_ref()));
            *self.removes.entry(reg.key).or_default() += 1;
        }
        self.port
            .process(&mut batch, &mut [], Some(Duration::ZERO))
            .expect("final removes");
        trace(|| format!("final removes {batch:?}"));
        for r in &batch {
            r.result().expect("final remove");
        }
        for _ in 0..1000 {
            if self.dequeue(16, Duration::ZERO) == 0 {
                break;
            }
        }
        assert!(
            self.posted.is_empty(),
            "posted entries lost: {:?}",
            self.posted
        );
        assert!(
            self.removes.values().all(|n| *n == 0),
            "REMOVE entries missing: {:?}",
            self.removes
        );
        assert!(self.port.registrations() <= self.stale);
    }
}

/// Prints what `f` says when `FUZZ_TRACE` is set, to follow a crashing input step by step.
fn trace(f: impl FnOnce() -> String) {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *ON.get_or_init(|| std::env::var_os("FUZZ_TRACE").is_some()) {
        eprintln!("{}", f());
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let backend = match input.byte() {
        Some(b) if b & 1 == 1 => Backend::IoUring,
        _ => Backend::Epoll,
    };
    let mut harness = Harness::new(backend);
    for _ in 0..256 {
        if harness.step(&mut input).is_none() {
            break;
        }
    }
    harness.finish();
});

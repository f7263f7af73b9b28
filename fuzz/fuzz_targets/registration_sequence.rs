//! Fuzz target: arbitrary bytes decoded into a sequence of registrations (built with
//! `Registration::from_bits`, so every bit pattern is reachable) and port operations on a
//! few socket pairs, checked after every step against a small model.
//!
//! Invariants checked:
//! - nothing panics;
//! - every registration's result has the kind the rules give it (InvalidInput for bad bits,
//!   bad descriptors and key changes; NotFound for DISABLE/REMOVE of an unregistered
//!   socket; Ok otherwise), and a closed port fails everything with BrokenPipe;
//! - `registrations()` lies between the model's count and that count plus the registered
//!   sockets closed since (which the port may not have noticed yet);
//! - posted entries come out once each, unchanged; a notification carries only known
//!   bits, and REMOVE entries come once per successful REMOVE, alone in their entry;
//! - at the end, after removing everything, the queue drains to nothing unexpected.
//!
//! Run: `cargo +nightly fuzz run registration_sequence` (see docs/reliability.md).

#![no_main]

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use socknotify::{is_port_closed, Backend, CompletionEntry, CompletionPort, Events, Registration};

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

/// One end of a pair; ends `2i` and `2i + 1` are connected.
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

    fn send(&self, n: usize) {
        let buf = [0x5a; 64];
        let _ = match self {
            Sock::Stream(s) => (&mut &*s).write(&buf[..n.min(64)]),
            Sock::Dgram(s) => s.send(&buf[..n.min(64)]),
        };
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

/// What the model knows of one socket end.
struct End {
    sock: Sock,
    /// The key of its registration on the port, if it has one.
    key: Option<usize>,
}

/// What a registration's `result()` must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Want {
    Ok,
    Kind(ErrorKind),
}

/// Rule 1's classification of the bits alone: `None` when they are valid.
fn bad_bits(filter: u16, op: u8, trigger: u8) -> Option<Want> {
    let invalid = Some(Want::Kind(ErrorKind::InvalidInput));
    match op {
        0 | 1 | 2 | 4 => {}
        _ => return invalid,
    }
    // Unknown bits are invalid in every field, whatever the operation.
    if filter & !0x07 != 0 || trigger & !0x0f != 0 {
        return invalid;
    }
    if op == 0 {
        return Some(Want::Ok); // NONE with known bits: nothing to do
    }
    let one = |a: u8, b: u8| (trigger & a != 0) != (trigger & b != 0);
    if op == 1 && !(one(0x01, 0x02) && one(0x04, 0x08)) {
        return invalid;
    }
    None
}

struct Harness {
    port: CompletionPort,
    ends: Vec<End>,
    /// Descriptors that are never sockets on this port: a pipe's ends.
    others: Vec<OwnedFd>,
    closed: bool,
    /// Registered sockets closed since: the port may still count them.
    stale: usize,
    /// Posted entries not yet dequeued, by their (unique) `overlapped`.
    posted: HashMap<usize, CompletionEntry>,
    next_post: usize,
    /// REMOVE entries owed, per key.
    removes: HashMap<usize, usize>,
}

impl Harness {
    fn new(backend: Backend) -> Harness {
        let port = CompletionPort::builder()
            .backend(backend)
            .build()
            .or_else(|_| CompletionPort::builder().backend(Backend::Epoll).build())
            .expect("port");
        let mut ends = Vec::new();
        for datagram in [false, false, true] {
            for sock in pair(datagram) {
                ends.push(End { sock, key: None });
            }
        }
        let (r, w) = std::io::pipe().expect("pipe");
        Harness {
            port,
            ends,
            others: vec![r.into(), w.into()],
            closed: false,
            stale: 0,
            posted: HashMap::new(),
            next_post: 1,
            removes: HashMap::new(),
        }
    }

    fn registered(&self) -> usize {
        self.ends.iter().filter(|e| e.key.is_some()).count()
    }

    fn check_count(&self) {
        let n = self.port.registrations();
        if self.closed {
            assert_eq!(n, 0, "a closed port has no registrations");
            return;
        }
        let low = self.registered();
        assert!(
            (low..=low + self.stale).contains(&n),
            "registrations() = {n}, model {low} + up to {} closed",
            self.stale
        );
    }

    /// Decodes one registration and the result the model wants for it, updating the model
    /// as if it succeeded.
    fn registration(&mut self, input: &mut Input<'_>) -> Option<(Registration, Want)> {
        let target = input.byte()?;
        let key = match input.byte()? {
            k @ 0..=0xf7 => usize::from(k % 8),
            k => ODD_KEYS[usize::from(k - 0xf8)],
        };
        let (filter, op, trigger) = match input.byte()? {
            // Mostly well-formed, so that the model gets exercised past validation.
            sel @ 0..=0xbf => {
                let op = [1, 1, 2, 4][usize::from(sel & 3)];
                let trigger = [0x05, 0x06, 0x09, 0x0a][usize::from((sel >> 2) & 3)];
                (u16::from(sel >> 4) & 0x07, op, trigger)
            }
            _ => (input.u16()?, input.byte()?, input.byte()?),
        };
        let fd = match usize::from(target) % (self.ends.len() + 5) {
            i if i < self.ends.len() => self.ends[i].sock.fd(),
            i => match i - self.ends.len() {
                0 => -1,
                1 => i32::MIN,
                2 => 1 << 24, // cannot be open: far above any descriptor limit here
                3 => self.others[0].as_raw_fd(),
                _ => self.others[1].as_raw_fd(),
            },
        };
        let registration = Registration::from_bits(fd, key, filter, op, trigger);
        if self.closed {
            return Some((registration, Want::Kind(ErrorKind::BrokenPipe)));
        }
        if let Some(want) = bad_bits(filter, op, trigger) {
            return Some((registration, want));
        }
        let end = self.ends.iter_mut().find(|e| e.sock.fd() == fd);
        let want = match (op, end) {
            (_, None) if fd < 0 => Want::Kind(ErrorKind::InvalidInput),
            (1, None) => Want::Kind(ErrorKind::InvalidInput),
            (_, None) => Want::Kind(ErrorKind::NotFound),
            (1, Some(end)) => match end.key {
                None => {
                    end.key = Some(key);
                    Want::Ok
                }
                Some(k) if k == key => Want::Ok,
                Some(_) => Want::Kind(ErrorKind::InvalidInput),
            },
            (_, Some(End { key: None, .. })) => Want::Kind(ErrorKind::NotFound),
            (2, Some(_)) => Want::Ok,
            (_, Some(end)) => {
                let key = end.key.take().expect("registered");
                *self.removes.entry(key).or_default() += 1;
                Want::Ok
            }
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
                Err(e) => Want::Kind(e.kind()),
            };
            assert_eq!(seen, *want, "registration {i} {registration:?}: {result:?}");
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

    fn dequeue(&mut self, room: usize) {
        let mut entries = vec![CompletionEntry::default(); room];
        match self.port.dequeue(&mut entries, Some(Duration::ZERO)) {
            Ok(n) => {
                assert!(room > 0 && !self.closed && n <= room);
                self.check_entries(&entries[..n]);
            }
            Err(e) if room == 0 => assert_eq!(e.kind(), ErrorKind::InvalidInput),
            Err(e) => assert!(self.closed && is_port_closed(&e), "dequeue: {e}"),
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
            if events.is_remove() {
                assert_eq!(events, Events::REMOVE, "REMOVE shares an entry: {entry:?}");
                let owed = self.removes.get_mut(&entry.key);
                let owed = owed.filter(|n| **n > 0).expect("unexpected REMOVE entry");
                *owed -= 1;
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

    /// Closes both ends of pair `i` and opens a new pair in their place.
    fn recreate(&mut self, i: usize) {
        let datagram = matches!(self.ends[2 * i].sock, Sock::Dgram(_));
        for end in &mut self.ends[2 * i..2 * i + 2] {
            if end.key.take().is_some() {
                self.stale += 1;
            }
        }
        // Close the old ends first, so that the new ones may reuse their numbers.
        self.ends.drain(2 * i..2 * i + 2).for_each(drop);
        let fresh = pair(datagram).map(|sock| End { sock, key: None });
        self.ends.splice(2 * i..2 * i, fresh);
    }

    fn step(&mut self, input: &mut Input<'_>) -> Option<()> {
        let op = input.byte()?;
        trace(|| {
            let fds: Vec<_> = self.ends.iter().map(|e| (e.sock.fd(), e.key)).collect();
            format!("step {op:#04x} ({}), ends {fds:?}", op % 9)
        });
        let end = usize::from(op >> 4) % self.ends.len();
        match op % 9 {
            0..=2 => self.process(input)?,
            3 => self.dequeue(usize::from(op >> 4) % 5),
            4 => self.ends[end].sock.send(usize::from(input.byte()?)),
            5 => self.ends[end].sock.drain(),
            6 => self.ends[end].sock.shutdown(),
            7 => {
                if op >> 4 == 0xf {
                    self.port.close();
                    self.closed = true;
                    self.posted.clear();
                    self.removes.clear();
                    for end in &mut self.ends {
                        end.key = None;
                    }
                    self.stale = 0;
                    self.check_count();
                } else {
                    self.recreate(end / 2);
                }
            }
            _ => self.post(input)?,
        }
        Some(())
    }

    /// Removes every registration, then checks that the queue holds exactly what is owed.
    fn finish(mut self) {
        if self.closed {
            return;
        }
        let mut batch: Vec<_> = self
            .ends
            .iter_mut()
            .filter_map(|e| {
                let key = e.key.take()?;
                Some((Registration::remove(&e.sock.fd_ref()), key))
            })
            .map(|(r, key)| {
                *self.removes.entry(key).or_default() += 1;
                r
            })
            .collect();
        self.port
            .process(&mut batch, &mut [], Some(Duration::ZERO))
            .expect("final removes");
        for r in &batch {
            r.result().expect("final remove");
        }
        for _ in 0..1000 {
            let mut entries = [CompletionEntry::default(); 16];
            let n = self
                .port
                .dequeue(&mut entries, Some(Duration::ZERO))
                .expect("final dequeue");
            if n == 0 {
                break;
            }
            self.check_entries(&entries[..n]);
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

impl Sock {
    fn fd_ref(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        match self {
            Sock::Stream(s) => s.as_fd(),
            Sock::Dgram(s) => s.as_fd(),
        }
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

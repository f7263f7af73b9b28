//! A property test: random registration sequences (ENABLE with random filter, trigger and
//! key; DISABLE; REMOVE; data written and read; the peer shutting down; the socket closed and
//! re-created; dequeues) run against a port and, step by step, against a small model of
//! `docs/spec.md` section 3 written here.
//!
//! The model predicts, for each registration, which entries a dequeue may return (allowed)
//! and which one must come eventually (due), not exact timing: a zero-timeout dequeue may
//! return any subset of what is allowed, while a `Settle` step waits (bounded) until every
//! due entry has come. Level-triggered registrations with their condition holding are due
//! on every dequeue, edge-triggered ones once per edge, one-shot ones once per arm, REMOVE
//! entries once per REMOVE. Entries queued before a DISABLE or a filter change may still
//! come once (rule 3); nothing of a registration comes after its REMOVE or its socket's
//! close (rules 4 and 7).
//!
//! Sockets are Unix-domain pairs (two stream pairs, one datagram pair): sockets as far as
//! the rules go, and cheap enough for 10,000 cases.
#![cfg(unix)]

mod util;

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use proptest::collection::vec;
use proptest::prelude::*;
use socknotify::{Backend, CompletionEntry, CompletionPort, Events, Registration, Trigger};
use util::{backends, ARRIVAL, EDGE, LEVEL, ONESHOT_EDGE, ONESHOT_LEVEL};

const SOCKETS: usize = 3;
const TRIGGERS: [Trigger; 4] = [LEVEL, EDGE, ONESHOT_LEVEL, ONESHOT_EDGE];

#[derive(Clone, Debug)]
enum Op {
    /// ENABLE socket `sock` with key `sock * 16 + key`, filter bits and a trigger.
    Enable {
        sock: usize,
        key: usize,
        filter: u16,
        trigger: usize,
    },
    Disable(usize),
    Remove(usize),
    /// The peer writes one byte (one datagram).
    Write(usize),
    /// The socket reads everything there is.
    Read(usize),
    /// The peer shuts down its sending side (stream pairs only).
    Shutdown(usize),
    /// Both ends are closed and a new pair takes their place.
    Recreate(usize),
    /// A dequeue with a zero timeout.
    Dequeue,
    /// Dequeues until every due entry has come.
    Settle,
}

fn op() -> impl Strategy<Value = Op> {
    let sock = 0..SOCKETS;
    prop_oneof![
        6 => (0..SOCKETS, 0..2usize, 0..8u16, 0..4usize).prop_map(|(sock, key, filter, trigger)| {
            Op::Enable { sock, key, filter, trigger }
        }),
        2 => sock.clone().prop_map(Op::Disable),
        2 => sock.clone().prop_map(Op::Remove),
        3 => sock.clone().prop_map(Op::Write),
        2 => sock.clone().prop_map(Op::Read),
        1 => sock.clone().prop_map(Op::Shutdown),
        1 => sock.prop_map(Op::Recreate),
        3 => Just(Op::Dequeue),
        3 => Just(Op::Settle),
    ]
}

/// One socket and its peer.
enum Pair {
    Stream(UnixStream, UnixStream),
    Dgram(UnixDatagram, UnixDatagram),
    /// Between a close and the new pair.
    Closed,
}

impl Pair {
    fn new(index: usize) -> Pair {
        if index == SOCKETS - 1 {
            let (a, b) = UnixDatagram::pair().unwrap();
            a.set_nonblocking(true).unwrap();
            b.set_nonblocking(true).unwrap();
            Pair::Dgram(a, b)
        } else {
            let (a, b) = UnixStream::pair().unwrap();
            a.set_nonblocking(true).unwrap();
            b.set_nonblocking(true).unwrap();
            Pair::Stream(a, b)
        }
    }

    fn socket(&self) -> BorrowedFd<'_> {
        match self {
            Pair::Stream(s, _) => s.as_fd(),
            Pair::Dgram(s, _) => s.as_fd(),
            Pair::Closed => unreachable!("a pair is always open between steps"),
        }
    }

    fn is_stream(&self) -> bool {
        matches!(self, Pair::Stream(..))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Armed,
    Fired,
    Disabled,
}

#[derive(Clone, Copy, Debug)]
struct Reg {
    key: usize,
    filter: Events,
    trigger: Trigger,
    state: State,
    /// Edge-triggered: an edge was seen and not yet reported. `must`: the condition became
    /// true (due); otherwise only a wakeup that may report what still holds (allowed).
    edge: Option<bool>,
}

/// What the model knows of one socket.
struct Sock {
    pair: Pair,
    reg: Option<Reg>,
    /// Unread data (or, after the peer's shutdown, end of stream: readable for good).
    readable: bool,
    peer_shut: bool,
    /// Entries of earlier states of the registration that may still come once: key and
    /// the filter they were made under.
    stale: Vec<(usize, Events)>,
}

impl Sock {
    /// What the kernel reports now, through the registration's filter.
    fn condition(&self, filter: Events) -> Events {
        let mut now = Events::OUT;
        if self.readable {
            now |= Events::IN;
        }
        if self.peer_shut && self.pair.is_stream() {
            now |= Events::HANGUP;
        }
        now & filter
    }

    /// The entry the registration may give now, and whether it is due.
    fn offer(&self) -> Option<(CompletionEntry, bool)> {
        let reg = self.reg?;
        if reg.state != State::Armed {
            return None;
        }
        let events = self.condition(reg.filter);
        if events.is_empty() {
            return None;
        }
        let due = match reg.edge {
            _ if !reg.trigger.is_edge() => true,
            Some(due) => due,
            None => return None,
        };
        Some((CompletionEntry::new(reg.key, events.bits().into(), 0), due))
    }

    /// The registration's state changes (DISABLE, ENABLE, REMOVE, close): what it offered
    /// may still come once, unless `dead` (REMOVE and close end everything at once).
    fn retire(&mut self, dead: bool) {
        if dead {
            self.stale.clear();
        } else if let (Some(reg), Some(_)) = (self.reg, self.offer()) {
            self.stale.push((reg.key, reg.filter));
        }
    }
}

struct Model {
    port: CompletionPort,
    socks: Vec<Sock>,
    /// REMOVE entries queued and not yet dequeued, by key.
    removes: HashMap<usize, usize>,
    /// Registered sockets closed since: the port may still count them.
    closed: usize,
}

fn want(result: std::io::Result<()>, kind: Option<ErrorKind>, what: &str) {
    match (result, kind) {
        (Ok(()), None) => {}
        (Err(e), Some(k)) if e.kind() == k => {}
        (got, _) => panic!("{what}: got {got:?}, want {kind:?}"),
    }
}

impl Model {
    fn new(backend: Backend) -> Model {
        let port = CompletionPort::builder().backend(backend).build().unwrap();
        let socks = (0..SOCKETS)
            .map(|i| Sock {
                pair: Pair::new(i),
                reg: None,
                readable: false,
                peer_shut: false,
                stale: Vec::new(),
            })
            .collect();
        Model {
            port,
            socks,
            removes: HashMap::new(),
            closed: 0,
        }
    }

    fn apply(&self, registration: Registration) -> std::io::Result<()> {
        let mut batch = [registration];
        let n = self
            .port
            .process(&mut batch, &mut [], Some(Duration::ZERO))
            .unwrap();
        assert_eq!(n, 0);
        batch[0].result()
    }

    /// A wakeup of socket `i` because `became` became true. Only an edge registration that
    /// asked for one of them gets a due entry; with `any`, the wakeup carries no event mask
    /// and may report whatever holds to any edge registration.
    fn edge(&mut self, i: usize, became: Events, any: bool) {
        let sock = &mut self.socks[i];
        if let Some(reg) = sock.reg.as_mut() {
            if reg.trigger.is_edge() && reg.state == State::Armed {
                let must = reg.filter.intersects(became);
                if must || any {
                    reg.edge = Some(reg.edge == Some(true) || must);
                }
            }
        }
    }

    fn step(&mut self, op: &Op) {
        match *op {
            Op::Enable {
                sock: i,
                key,
                filter,
                trigger,
            } => {
                let key = i * 16 + key;
                let filter = Events::from_bits(filter).unwrap();
                let trigger = TRIGGERS[trigger];
                let sock = &self.socks[i];
                let result = self.apply(Registration::enable(
                    &sock.pair.socket(),
                    key,
                    filter,
                    trigger,
                ));
                match sock.reg {
                    Some(reg) if reg.key != key => {
                        want(result, Some(ErrorKind::InvalidInput), "ENABLE, other key");
                        return;
                    }
                    _ => want(result, None, "ENABLE"),
                }
                let sock = &mut self.socks[i];
                sock.retire(false);
                let mut reg = Reg {
                    key,
                    filter,
                    trigger,
                    state: State::Armed,
                    edge: None,
                };
                // Arming polls the socket: what holds is reported once, even edge-triggered.
                if trigger.is_edge() && !sock.condition(filter).is_empty() {
                    reg.edge = Some(true);
                }
                sock.reg = Some(reg);
            }
            Op::Disable(i) => {
                let result = self.apply(Registration::disable(&self.socks[i].pair.socket()));
                let sock = &mut self.socks[i];
                if sock.reg.is_none() {
                    return want(result, Some(ErrorKind::NotFound), "DISABLE");
                }
                want(result, None, "DISABLE");
                sock.retire(false);
                let reg = sock.reg.as_mut().unwrap();
                reg.state = State::Disabled;
                reg.edge = None;
            }
            Op::Remove(i) => {
                let result = self.apply(Registration::remove(&self.socks[i].pair.socket()));
                let sock = &mut self.socks[i];
                let Some(reg) = sock.reg else {
                    return want(result, Some(ErrorKind::NotFound), "REMOVE");
                };
                want(result, None, "REMOVE");
                sock.retire(true);
                sock.reg = None;
                *self.removes.entry(reg.key).or_default() += 1;
            }
            Op::Write(i) => {
                if self.socks[i].peer_shut {
                    return; // the peer can no longer send
                }
                match &self.socks[i].pair {
                    Pair::Stream(_, peer) => (&*peer).write_all(b"x").unwrap(),
                    Pair::Dgram(_, peer) => assert_eq!(peer.send(b"x").unwrap(), 1),
                    Pair::Closed => unreachable!(),
                }
                self.socks[i].readable = true;
                self.edge(i, Events::IN, false);
            }
            Op::Read(i) => {
                let sock = &mut self.socks[i];
                let mut buf = [0u8; 64];
                loop {
                    let got = match &sock.pair {
                        Pair::Stream(s, _) => (&*s).read(&mut buf),
                        Pair::Dgram(s, _) => s.recv(&mut buf),
                        Pair::Closed => unreachable!(),
                    };
                    match got {
                        Ok(0) => break,
                        Ok(_) => {}
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) => panic!("read: {e}"),
                    }
                }
                sock.readable = sock.peer_shut;
            }
            Op::Shutdown(i) => {
                let sock = &mut self.socks[i];
                let Pair::Stream(_, peer) = &sock.pair else {
                    return;
                };
                if sock.peer_shut {
                    return;
                }
                peer.shutdown(Shutdown::Write).unwrap();
                sock.peer_shut = true;
                sock.readable = true;
                // A shutdown wakes the socket with no event mask.
                self.edge(i, Events::IN | Events::HANGUP, true);
            }
            Op::Recreate(i) => {
                let sock = &mut self.socks[i];
                sock.retire(true);
                if sock.reg.take().is_some() {
                    self.closed += 1;
                }
                // Close the old pair first, so that the new one may get its numbers.
                sock.pair = Pair::Closed;
                sock.pair = Pair::new(i);
                sock.readable = false;
                sock.peer_shut = false;
            }
            Op::Dequeue => {
                let mut entries = [CompletionEntry::default(); 32];
                let n = self
                    .port
                    .dequeue(&mut entries, Some(Duration::ZERO))
                    .unwrap();
                for e in &entries[..n] {
                    self.take(e);
                }
            }
            Op::Settle => self.settle(),
        }
        self.check_count();
    }

    fn check_count(&self) {
        let low = self.socks.iter().filter(|s| s.reg.is_some()).count();
        let n = self.port.registrations();
        assert!(
            (low..=low + self.closed).contains(&n),
            "registrations() = {n}, model {low} (+{} closed)",
            self.closed
        );
    }

    /// Accounts for one dequeued entry, which must be allowed.
    fn take(&mut self, e: &CompletionEntry) {
        assert_eq!(e.overlapped, 0, "{e:?}");
        if e.events() == Events::REMOVE {
            let owed = self.removes.get_mut(&e.key).filter(|n| **n > 0);
            *owed.unwrap_or_else(|| panic!("REMOVE entry not owed: {e:?}")) -= 1;
            return;
        }
        let sock = &mut self.socks[e.key / 16];
        if let Some((offer, _)) = sock.offer() {
            if offer == *e {
                let reg = sock.reg.as_mut().unwrap();
                if reg.trigger.is_oneshot() {
                    reg.state = State::Fired;
                }
                reg.edge = None;
                return;
            }
        }
        let stale = sock
            .stale
            .iter()
            .position(|&(key, filter)| key == e.key && filter.contains(e.events()));
        match stale {
            Some(p) => {
                sock.stale.swap_remove(p);
            }
            None => panic!(
                "entry {e:?} not allowed: registration {:?}, readable {}, peer shut {}",
                sock.reg, sock.readable, sock.peer_shut
            ),
        }
    }

    /// Dequeues until every due entry has come at least once (bounded by [`ARRIVAL`]).
    fn settle(&mut self) {
        let mut due: Vec<CompletionEntry> = self
            .socks
            .iter()
            .filter_map(|s| s.offer().filter(|(_, due)| *due).map(|(e, _)| e))
            .collect();
        for (&key, &n) in &self.removes {
            due.extend((0..n).map(|_| CompletionEntry::new(key, Events::REMOVE.bits().into(), 0)));
        }
        let deadline = Instant::now() + ARRIVAL;
        let mut entries = [CompletionEntry::default(); 32];
        while !due.is_empty() {
            assert!(Instant::now() < deadline, "due entries never came: {due:?}");
            let n = self
                .port
                .dequeue(&mut entries, Some(Duration::from_millis(50)))
                .unwrap();
            for e in &entries[..n] {
                if let Some(p) = due.iter().position(|d| d == e) {
                    due.swap_remove(p);
                }
                self.take(e);
            }
        }
    }

    /// Removes every registration; all REMOVE entries come, the registry empties.
    fn finish(mut self) {
        for i in 0..SOCKETS {
            if self.socks[i].reg.is_some() {
                self.step(&Op::Remove(i));
            }
        }
        // Nothing is due now but the REMOVE entries.
        for sock in &mut self.socks {
            sock.stale.clear();
        }
        self.settle();
        assert!(self.port.registrations() <= self.closed);
    }
}

fn available() -> &'static [Backend] {
    static BACKENDS: OnceLock<Vec<Backend>> = OnceLock::new();
    BACKENDS.get_or_init(backends)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 10_000,
        ..ProptestConfig::default()
    })]

    #[test]
    fn registration_sequences_follow_the_model(backend in 0..2usize, ops in vec(op(), 1..16)) {
        let backends = available();
        let mut model = Model::new(backends[backend % backends.len()]);
        for op in &ops {
            model.step(op);
        }
        model.finish();
    }
}

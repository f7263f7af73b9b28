//! The hidden `hot-one` subcommand: one hot-path loop in this fresh process, one thread,
//! for a fixed number of turns (for callgrind: the count of instructions must not depend
//! on time) or for a time (for the clock), reported as a `RESULT` line.
//!
//! Every loop runs inside [`measured`], the one function callgrind is told to collect
//! (`--toggle-collect`, see [`TOGGLE`]): it is generic over the loop and never inlined,
//! and the loops' own code is in trait methods, so no other function's name matches and
//! nothing toggles collection off inside it. Set-up (sockets, registrations, the port)
//! and a warm-up of [`WARMUP`] turns run outside it.

use std::io;
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Interest, Poll, Token};
use socknotify::{Backend, CompletionEntry, CompletionPort, Events, Registration, Trigger};

use super::floor::Floor;
use crate::contender::epoll::{Epoll, ONESHOT_IN};
use crate::options::{invalid, Args};
use crate::perf::Control;
use crate::run::TICK;
use crate::sys;
use crate::workload::{Sockets, BATCH, BUFFER};

pub const COMMAND: &str = "hot-one";

/// The callgrind `--toggle-collect` pattern that matches [`measured`] (every instance)
/// and nothing else.
pub const TOGGLE: &str = "*hotpath::probe::measured*";

/// Turns run before the measured ones: lazy initialisation, first-use allocations.
const WARMUP: u64 = 200;

/// What one process measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Case {
    /// One-shot level echo on `conns` socket pairs, both ends served by the one thread.
    Echo,
    /// `dequeue` with a zero timeout on a port with idle registrations.
    Dequeue,
}

impl Case {
    pub fn name(self) -> &'static str {
        match self {
            Case::Echo => "echo",
            Case::Dequeue => "dequeue",
        }
    }

    fn parse(s: &str) -> io::Result<Case> {
        match s {
            "echo" => Ok(Case::Echo),
            "dequeue" => Ok(Case::Dequeue),
            _ => Err(invalid(format!("hot-one: unknown case {s:?}"))),
        }
    }
}

/// Who runs the loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Loop {
    /// Hand-written epoll, `EPOLLIN | EPOLLONESHOT`, `EPOLL_CTL_MOD` after each message:
    /// the baseline of the echo; in the dequeue case, a bare `epoll_wait(0)`.
    EpollOneshot,
    /// Hand-written epoll, `EPOLLIN | EPOLLET`, read until `EAGAIN`, never re-armed.
    EpollEdge,
    /// mio 1.x, edge-triggered, read until `WouldBlock`.
    Mio,
    /// socknotify, `Backend::Epoll`.
    SocknotifyEpoll,
    /// socknotify, `Backend::IoUring`.
    SocknotifyUring,
    /// Not a contender: the contract's required steps inline at their cheapest, on epoll
    /// ([`floor`](super::floor)); what any implementation of the contract pays at least.
    Floor,
}

impl Loop {
    pub const ECHO: [Loop; 6] = [
        Loop::EpollOneshot,
        Loop::EpollEdge,
        Loop::Mio,
        Loop::Floor,
        Loop::SocknotifyEpoll,
        Loop::SocknotifyUring,
    ];
    pub const DEQUEUE: [Loop; 3] = [
        Loop::EpollOneshot,
        Loop::SocknotifyEpoll,
        Loop::SocknotifyUring,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Loop::EpollOneshot => "epoll-oneshot",
            Loop::EpollEdge => "epoll-edge",
            Loop::Mio => "mio",
            Loop::SocknotifyEpoll => "socknotify-epoll",
            Loop::SocknotifyUring => "socknotify-io_uring",
            Loop::Floor => "contract-floor",
        }
    }

    fn parse(s: &str) -> io::Result<Loop> {
        Loop::ECHO
            .into_iter()
            .find(|l| l.name() == s)
            .ok_or_else(|| invalid(format!("hot-one: unknown loop {s:?}")))
    }

    pub fn backend(self) -> Option<Backend> {
        match self {
            Loop::SocknotifyEpoll => Some(Backend::Epoll),
            Loop::SocknotifyUring => Some(Backend::IoUring),
            _ => None,
        }
    }
}

/// How long a process runs its loop.
#[derive(Clone, Copy, Debug)]
pub enum Length {
    /// Exactly this many entries (echo) or calls (dequeue).
    Turns(u64),
    /// Until this much time has passed, looking at the clock every [`CHUNK`] turns.
    Time(Duration),
}

/// Turns between two looks at the clock in a timed run.
const CHUNK: u64 = 1000;

/// The arguments of one `hot-one` child.
#[derive(Clone, Debug)]
pub struct Probe {
    pub case: Case,
    pub lp: Loop,
    pub length: Length,
    /// Echo: active socket pairs; dequeue: idle registered sockets.
    pub sockets: usize,
}

impl Probe {
    pub fn to_args(&self) -> Vec<String> {
        let mut args = vec![
            COMMAND.to_string(),
            "--case".into(),
            self.case.name().into(),
            "--loop".into(),
            self.lp.name().into(),
            "--sockets".into(),
            self.sockets.to_string(),
        ];
        match self.length {
            Length::Turns(n) => args.extend(["--turns".into(), n.to_string()]),
            Length::Time(d) => args.extend(["--seconds".into(), d.as_secs_f64().to_string()]),
        }
        args
    }

    fn from_args(args: &[String]) -> io::Result<Probe> {
        let mut a = Args::new(args);
        let (mut case, mut lp, mut length, mut sockets) = (None, None, None, 1);
        while let Some(flag) = a.next_flag() {
            match flag.as_str() {
                "--case" => case = Some(Case::parse(&a.value(&flag)?)?),
                "--loop" => lp = Some(Loop::parse(&a.value(&flag)?)?),
                "--sockets" => sockets = a.number(&flag)?.max(1),
                "--turns" => length = Some(Length::Turns(a.number(&flag)? as u64)),
                "--seconds" => length = Some(Length::Time(a.seconds(&flag)?)),
                other => return Err(invalid(format!("hot-one: unknown option {other:?}"))),
            }
        }
        Ok(Probe {
            case: case.ok_or_else(|| invalid("hot-one needs --case"))?,
            lp: lp.ok_or_else(|| invalid("hot-one needs --loop"))?,
            length: length.ok_or_else(|| invalid("hot-one needs --turns or --seconds"))?,
            sockets,
        })
    }
}

/// What a loop did in the measured part.
#[derive(Clone, Copy, Debug, Default)]
struct Done {
    /// Loop iterations: `process`/`dequeue`/wait calls.
    turns: u64,
    /// Entries or events delivered.
    entries: u64,
    /// Messages echoed (a successful read and its write).
    messages: u64,
}

/// One turn of a hot loop: one wait (or `process`) and the handling of what it delivered.
trait Turn {
    /// Adds to `done` what the turn delivered and echoed.
    fn turn(&mut self, done: &mut Done) -> io::Result<()>;

    /// What a run of [`Length::Turns`] counts: entries delivered (echo), unless a loop
    /// says calls (dequeue).
    fn units(done: &Done) -> u64 {
        done.entries
    }
}

/// The measured loop: `turns` turns, or turns until `limit` passed. The only function
/// callgrind collects.
#[inline(never)]
fn measured<T: Turn>(t: &mut T, length: Length) -> io::Result<(Done, Duration)> {
    let mut done = Done::default();
    let start = Instant::now();
    match length {
        Length::Turns(n) => {
            while T::units(&done) < n {
                t.turn(&mut done)?;
            }
        }
        Length::Time(limit) => loop {
            for _ in 0..CHUNK {
                t.turn(&mut done)?;
            }
            if start.elapsed() >= limit {
                break;
            }
        },
    }
    Ok((done, start.elapsed()))
}

pub fn main(args: &[String]) -> io::Result<()> {
    let probe = Probe::from_args(args)?;
    let perf = Control::from_env()?;
    let out = match probe.case {
        Case::Echo => echo(&probe, perf.as_ref())?,
        Case::Dequeue => dequeue(&probe, perf.as_ref())?,
    };
    let mut line = String::from("RESULT");
    for (k, v) in out {
        line.push_str(&format!(" {k}={v}"));
    }
    println!("{line}");
    Ok(())
}

/// Warms up, then runs [`measured`] with perf counting (when it is there) around it.
fn drive<T: Turn>(
    t: &mut T,
    probe: &Probe,
    perf: Option<&Control>,
) -> io::Result<Vec<(&'static str, f64)>> {
    let mut warm = Done::default();
    for _ in 0..WARMUP {
        t.turn(&mut warm)?;
    }
    if let Some(p) = perf {
        p.enable()?;
    }
    let cpu0 = sys::process_cpu_time()?;
    let (done, elapsed) = measured(t, probe.length)?;
    let cpu = sys::process_cpu_time()?.saturating_sub(cpu0);
    if let Some(p) = perf {
        p.disable()?;
    }
    Ok(vec![
        ("turns", done.turns as f64),
        ("entries", done.entries as f64),
        ("messages", done.messages as f64),
        ("elapsed_ns", elapsed.as_nanos() as f64),
        ("cpu_ns", cpu.as_nanos() as f64),
    ])
}

/// A port on `backend`, and nothing else: a port that settled on another backend would
/// make the row measure the wrong thing.
fn port(backend: Backend) -> io::Result<CompletionPort> {
    let port = CompletionPort::builder().backend(backend).build()?;
    if port.backend() != backend {
        return Err(io::Error::other(format!(
            "asked for {backend:?}, the port uses {:?}",
            port.backend()
        )));
    }
    Ok(port)
}

fn oneshot_level(fd: &impl std::os::fd::AsFd, key: usize) -> Registration {
    Registration::enable(fd, key, Events::IN, Trigger::ONESHOT | Trigger::LEVEL)
}

fn no_events() -> Vec<libc::epoll_event> {
    vec![libc::epoll_event { events: 0, u64: 0 }; BATCH]
}

const EDGE_IN: u32 = (libc::EPOLLIN | libc::EPOLLET) as u32;

// ---- echo: one-shot level echo over `sockets` socket pairs, one thread ----

fn echo(probe: &Probe, perf: Option<&Control>) -> io::Result<Vec<(&'static str, f64)>> {
    let set = Sockets::new(probe.sockets, 0, 1, false)?;
    let buf = vec![0u8; BUFFER];
    let out = match probe.lp {
        Loop::EpollOneshot | Loop::EpollEdge => {
            let edge = probe.lp == Loop::EpollEdge;
            let epoll = Epoll::new()?;
            let interest = if edge { EDGE_IN } else { ONESHOT_IN };
            for key in 0..set.len() {
                epoll.add(set.raw(key), interest, key as u64)?;
            }
            set.kick()?;
            let events = no_events();
            drive(
                &mut EpollEcho {
                    set: &set,
                    epoll,
                    events,
                    buf,
                    edge,
                },
                probe,
                perf,
            )?
        }
        Loop::Mio => {
            let poll = Poll::new()?;
            for key in 0..set.len() {
                let fd = set.raw(key);
                poll.registry()
                    .register(&mut SourceFd(&fd), Token(key), Interest::READABLE)?;
            }
            set.kick()?;
            let events = mio::Events::with_capacity(BATCH);
            drive(
                &mut MioEcho {
                    set: &set,
                    poll,
                    events,
                    buf,
                },
                probe,
                perf,
            )?
        }
        Loop::Floor => drive(&mut FloorEcho(Floor::new(&set, buf)?), probe, perf)?,
        Loop::SocknotifyEpoll | Loop::SocknotifyUring => {
            let port = port(probe.lp.backend().expect("a socknotify loop"))?;
            let mut all: Vec<Registration> = (0..set.len())
                .map(|k| oneshot_level(&set.fds[k], k))
                .collect();
            port.process(&mut all, &mut [], Some(Duration::ZERO))?;
            all.iter().try_for_each(Registration::result)?;
            set.kick()?;
            let mut t = PortEcho {
                set: &set,
                port,
                changes: Vec::with_capacity(BATCH),
                entries: vec![CompletionEntry::default(); BATCH],
                buf,
            };
            drive(&mut t, probe, perf)?
        }
    };
    Ok(out)
}

struct EpollEcho<'a> {
    set: &'a Sockets,
    epoll: Epoll,
    events: Vec<libc::epoll_event>,
    buf: Vec<u8>,
    edge: bool,
}

impl Turn for EpollEcho<'_> {
    fn turn(&mut self, done: &mut Done) -> io::Result<()> {
        let n = self.epoll.wait(&mut self.events)?;
        done.turns += 1;
        done.entries += n as u64;
        for event in &self.events[..n] {
            let key = event.u64 as usize;
            if self.edge {
                while self.set.echo(key, &mut self.buf)? {
                    done.messages += 1;
                }
            } else {
                if self.set.echo(key, &mut self.buf)? {
                    done.messages += 1;
                }
                self.epoll
                    .modify(self.set.raw(key), ONESHOT_IN, key as u64)?;
            }
        }
        Ok(())
    }
}

/// The contract's cost model ([`floor`](super::floor)).
struct FloorEcho<'a>(Floor<'a>);

impl Turn for FloorEcho<'_> {
    fn turn(&mut self, done: &mut Done) -> io::Result<()> {
        let (entries, messages) = self.0.turn()?;
        done.turns += 1;
        done.entries += entries;
        done.messages += messages;
        Ok(())
    }
}

struct MioEcho<'a> {
    set: &'a Sockets,
    poll: Poll,
    events: mio::Events,
    buf: Vec<u8>,
}

impl Turn for MioEcho<'_> {
    fn turn(&mut self, done: &mut Done) -> io::Result<()> {
        match self.poll.poll(&mut self.events, Some(TICK)) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => other?,
        }
        done.turns += 1;
        for event in &self.events {
            done.entries += 1;
            while self.set.echo(event.token().0, &mut self.buf)? {
                done.messages += 1;
            }
        }
        Ok(())
    }
}

/// socknotify's idiom, as in the ping-pong contender: the `ENABLE`s of the sockets served
/// go into the next `process` call.
struct PortEcho<'a> {
    set: &'a Sockets,
    port: CompletionPort,
    changes: Vec<Registration>,
    entries: Vec<CompletionEntry>,
    buf: Vec<u8>,
}

impl Turn for PortEcho<'_> {
    fn turn(&mut self, done: &mut Done) -> io::Result<()> {
        let n = self
            .port
            .process(&mut self.changes, &mut self.entries, Some(TICK))?;
        self.changes.iter().try_for_each(Registration::result)?;
        self.changes.clear();
        done.turns += 1;
        done.entries += n as u64;
        for entry in &self.entries[..n] {
            if self.set.echo(entry.key, &mut self.buf)? {
                done.messages += 1;
            }
            self.changes
                .push(oneshot_level(&self.set.fds[entry.key], entry.key));
        }
        Ok(())
    }
}

// ---- dequeue: zero-timeout calls on an idle port ----

fn dequeue(probe: &Probe, perf: Option<&Control>) -> io::Result<Vec<(&'static str, f64)>> {
    // `sockets` idle registered sockets, rounded up to pairs; nothing is ever written.
    let set = Sockets::new(0, probe.sockets, 1, false)?;
    match probe.lp {
        Loop::EpollOneshot => {
            let epoll = Epoll::new()?;
            for key in 0..set.len() {
                epoll.add(set.raw(key), ONESHOT_IN, key as u64)?;
            }
            let mut t = EpollIdle {
                epoll,
                events: no_events(),
            };
            drive(&mut t, probe, perf)
        }
        Loop::SocknotifyEpoll | Loop::SocknotifyUring => {
            let port = port(probe.lp.backend().expect("a socknotify loop"))?;
            let mut all: Vec<Registration> = (0..set.len())
                .map(|k| oneshot_level(&set.fds[k], k))
                .collect();
            port.process(&mut all, &mut [], Some(Duration::ZERO))?;
            all.iter().try_for_each(Registration::result)?;
            let mut t = PortIdle {
                port,
                entries: vec![CompletionEntry::default(); BATCH],
            };
            drive(&mut t, probe, perf)
        }
        other => Err(invalid(format!(
            "hot-one: no dequeue case for {}",
            other.name()
        ))),
    }
}

fn idle_delivered(what: &str) -> io::Error {
    io::Error::other(format!("{what}: an idle socket delivered an entry"))
}

struct EpollIdle {
    epoll: Epoll,
    events: Vec<libc::epoll_event>,
}

impl Turn for EpollIdle {
    fn units(done: &Done) -> u64 {
        done.turns
    }

    fn turn(&mut self, done: &mut Done) -> io::Result<()> {
        done.turns += 1;
        match self.epoll.wait_now(&mut self.events)? {
            0 => Ok(()),
            _ => Err(idle_delivered("epoll_wait")),
        }
    }
}

struct PortIdle {
    port: CompletionPort,
    entries: Vec<CompletionEntry>,
}

impl Turn for PortIdle {
    fn units(done: &Done) -> u64 {
        done.turns
    }

    fn turn(&mut self, done: &mut Done) -> io::Result<()> {
        done.turns += 1;
        match self.port.dequeue(&mut self.entries, Some(Duration::ZERO))? {
            0 => Ok(()),
            _ => Err(idle_delivered("dequeue")),
        }
    }
}

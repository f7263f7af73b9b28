//! Winsock *socket state notifications* — `ProcessSocketNotifications` on an I/O completion
//! port — with the same semantics on every platform.
//!
//! # The model
//!
//! A [`CompletionPort`] is a queue of [`CompletionEntry`]s shared by any number of threads.
//! A socket is **registered** on a port with a completion key, an event filter
//! ([`Events::IN`], [`Events::OUT`], [`Events::HANGUP`]) and trigger flags
//! ([`Trigger::ONESHOT`] or [`Trigger::PERSISTENT`], [`Trigger::LEVEL`] or
//! [`Trigger::EDGE`]). From then on, when the socket's state matches, the port queues an
//! entry `{ key, bytes: event bits, overlapped: 0 }` ([`CompletionEntry::events`] reads the
//! bits). [`Events::ERR`] is always reported; [`Events::REMOVE`] marks a registration's last
//! entry, after which whatever the key refers to may be freed. Any thread can also
//! [`post`](CompletionPort::post) its own entries. Threads **dequeue** entries in batches
//! with a timeout. One call, [`process`](CompletionPort::process), applies a batch of
//! [`Registration`] changes and then dequeues.
//!
//! A port has a *concurrency*: at most that many threads are released at once (a thread is
//! released from the moment a dequeue returns entries to it until it calls again); the
//! others wait, the most recent first. [`CompletionPort::blocking`] frees a released
//! thread's slot while it blocks on something else.
//!
//! A *persistent LEVEL* registration's entry is re-armed when the thread that received it
//! calls again (or blocks, or exits), so one thread handles a socket's level entry at a
//! time. A *persistent EDGE* registration stays armed: each new arrival queues an entry,
//! which may reach another thread while the first still reads, as on Windows; a program
//! that reads until `WouldBlock` sees one entry per arrival. (Windows queues nothing for a condition that already held when
//! an EDGE registration was enabled; socknotify may queue one entry then, which a program
//! that drains does not notice.)
//!
//! The full rules are in [the specification](spec) (the repository's `docs/spec.md`); each
//! has a conformance test in the repository's `tests/` that runs against every backend on
//! the machine.
//!
//! # Backends
//!
//! | platform | backend | status |
//! |---|---|---|
//! | Linux | [`Backend::Epoll`] | complete: one `epoll_ctl` per change, one `epoll_wait` per dequeue |
//! | Linux 5.6+ | [`Backend::IoUring`] | complete: a batch of registration changes in one `io_uring_enter` (see `docs/io_uring.md`) |
//! | Windows 10+ | [`Backend::Afd`] | the AFD poll interface on a native completion port, as wepoll, mio and polling; tested under Wine |
//! | Windows 11, Server 2022+ | [`Backend::Native`] | opt-in: `ProcessSocketNotifications` itself, found at run time; built and linted by CI, not yet run there (Wine has no such function) |
//! | macOS, BSD | kqueue | planned |
//!
//! [`Backend::Auto`] picks epoll on Linux (io_uring is measured level with it or behind on
//! CPU on this crate's hot path, and saves only system calls: see `docs/benchmarks.md`;
//! [`Backend::IoUring`] is one builder call away) and AFD on Windows.
//! `SOCKNOTIFY_BACKEND=epoll` (or `io_uring`, `afd`) forces one for a whole process, which is how
//! a test suite can be run once per backend.
//!
//! # One API on unix and Windows
//!
//! [`Registration::enable`] and its siblings take `&impl` [`AsSocketLike`]: `AsFd` on unix,
//! `AsSocket` on Windows, so the same code registers a `std::net` or `socket2` socket on
//! both. [`Registration::from_raw`] takes a [`RawSocketLike`] (`RawFd` / `RawSocket`).
//! OS error codes are the system's own (`EBADF`, `ENOTSOCK` on unix; `WSAEBADF`,
//! `WSAENOTSOCK` on Windows).
//!
//! # Errors
//!
//! Every error is an [`std::io::Error`]:
//!
//! | kind | when |
//! |---|---|
//! | [`InvalidInput`](std::io::ErrorKind::InvalidInput) | unknown or conflicting operation, filter or trigger bits; ENABLE with a different key; an empty entries buffer for `dequeue` |
//! | `raw_os_error()` `EBADF`, `ENOTSOCK`, ... | a closed descriptor, one that is not a socket, or another operating-system error (rule 22 keeps the code) |
//! | [`NotFound`](std::io::ErrorKind::NotFound) | DISABLE or REMOVE of a socket with no registration on this port |
//! | [`AlreadyExists`](std::io::ErrorKind::AlreadyExists) | the socket is registered on another port |
//! | [`BrokenPipe`](std::io::ErrorKind::BrokenPipe) | the port is closed ([`is_port_closed`]) |
//! | [`Unsupported`](std::io::ErrorKind::Unsupported) | a backend this machine cannot provide |
//! | [`Other`](std::io::ErrorKind::Other) | [`Registration::result`] before `process` |
//!
//! [`ErrorCause::of`] tells every failure apart and documents the registration's state
//! after each.
//!
//! Per-socket failures go to each [`Registration::result`]; `process` itself fails only for
//! the call as a whole.
//!
//! # Per-registration context
//!
//! A completion key is a `usize`. [`ContextPort`] gives each registration an owned context
//! instead, without `unsafe`: an entry hands back the context of its key, the REMOVE entry
//! hands ownership back, and keys are generation-checked so that a stale entry never
//! reaches a newer context. [The guide](guide) shows how a multi-threaded server uses it.
//!
//! # Example
//!
//! An echo server on one thread. Connections are one-shot and re-armed through the next
//! `process` call; what a non-blocking write does not take waits for an `OUT` entry; a
//! failed registration costs one connection; an `accept` error (out of descriptors, say)
//! pauses the listener instead of spinning on it. [The guide](guide) explains each choice
//! and ends with a multi-threaded version.
//!
//! ```no_run
//! use std::io::{self, ErrorKind, Read, Write};
//! use std::net::{TcpListener, TcpStream};
//! use std::sync::{Arc, Mutex};
//! use std::time::Duration;
//! use socknotify::{CompletionEntry, CompletionPort, ContextPort, Delivery};
//! use socknotify::{Events, Operation, Registration, Trigger};
//!
//! const LISTENER: usize = 0; // a key of our own: context keys are never 0
//! const ONESHOT_LEVEL: Trigger = Trigger::ONESHOT.union(Trigger::LEVEL);
//!
//! struct Conn {
//!     stream: TcpStream,
//!     unsent: Mutex<Vec<u8>>, // what the socket has not taken yet
//! }
//!
//! fn main() -> io::Result<()> {
//!     let conns: ContextPort<Conn> = ContextPort::new(CompletionPort::new()?);
//!     let listener = TcpListener::bind("127.0.0.1:7878")?;
//!     listener.set_nonblocking(true)?;
//!     let listen = Registration::enable(&listener, LISTENER, Events::IN, ONESHOT_LEVEL);
//!     let (mut changes, mut paused) = (vec![listen.clone()], false);
//!     let mut entries = [CompletionEntry::default(); 64];
//!     loop {
//!         // Apply the changes of the last round, then wait for entries: one call.
//!         let timeout = Some(Duration::from_secs(1));
//!         let n = conns.port().process(&mut changes, &mut entries, timeout)?;
//!         let failed: Vec<_> = changes.drain(..).filter(|r| r.result().is_err()).collect();
//!         for r in failed {
//!             eprintln!("{r:?}"); // one failure costs one registration, not the server
//!             if r.key() == LISTENER {
//!                 paused = true; // retried after a quiet second
//!             } else if r.operation() == Some(Operation::Enable) {
//!                 // A failed re-arm leaves the connection registered but disarmed.
//!                 if let Some(conn) = conns.get(r.key()) {
//!                     changes.push(Registration::remove(&conn.stream).with_key(r.key()));
//!                 }
//!             } else {
//!                 drop(conns.take(r.key())); // a failed REMOVE: no REMOVE entry will come
//!             }
//!         }
//!         if n == 0 && paused {
//!             paused = false;
//!             changes.push(listen.clone());
//!         }
//!         for entry in &entries[..n] {
//!             match conns.entry(entry) {
//!                 Delivery::Other(e) if e.key == LISTENER => {
//!                     if accept(&conns, &listener) {
//!                         changes.push(listen.clone()); // one-shot: re-arm it
//!                     } else {
//!                         paused = true;
//!                     }
//!                 }
//!                 Delivery::Event { key, context, .. } => changes.push(echo(key, &context)),
//!                 // The connection's last entry: dropping its context closes the socket,
//!                 // which frees a descriptor for a paused listener.
//!                 Delivery::Removed { .. } if paused => {
//!                     paused = false;
//!                     changes.push(listen.clone());
//!                 }
//!                 Delivery::Removed { .. } | Delivery::Other(_) | Delivery::Stale(_) => {}
//!             }
//!         }
//!     }
//! }
//!
//! /// Accepts until `WouldBlock` (true) or an error such as EMFILE (false: re-arming now
//! /// would report the same pending connection at once, for ever).
//! fn accept(conns: &ContextPort<Conn>, listener: &TcpListener) -> bool {
//!     loop {
//!         let stream = match listener.accept() {
//!             Ok((stream, _)) => stream,
//!             Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
//!             Err(e) if e.kind() == ErrorKind::ConnectionAborted => continue,
//!             Err(e) => {
//!                 eprintln!("accept: {e}; pausing the listener");
//!                 return false;
//!             }
//!         };
//!         if let Err(e) = stream.set_nonblocking(true) {
//!             eprintln!("{e}");
//!             continue;
//!         }
//!         let conn = Arc::new(Conn { stream, unsent: Mutex::default() });
//!         let filter = Events::IN | Events::HANGUP;
//!         let registered = conns.register(&conn.stream, conn.clone(), filter, ONESHOT_LEVEL);
//!         if let Err(refused) = registered {
//!             eprintln!("not registered: {}", refused.error); // dropping it closes it
//!         }
//!     }
//! }
//!
//! /// Reads one chunk, echoes what the socket takes now, and says what to do next.
//! fn echo(key: usize, conn: &Conn) -> Registration {
//!     let mut unsent = conn.unsent.lock().unwrap();
//!     let later =
//!         |e: &io::Error| matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted);
//!     let mut buf = [0u8; 4096];
//!     let (mut eof, mut failed) = (false, false);
//!     match (&conn.stream).read(&mut buf) {
//!         Ok(0) => eof = true, // the peer has finished sending
//!         Ok(n) => unsent.extend_from_slice(&buf[..n]),
//!         Err(e) if later(&e) => {}
//!         Err(_) => failed = true,
//!     }
//!     while !failed && !unsent.is_empty() {
//!         match (&conn.stream).write(&unsent) {
//!             Ok(0) => failed = true,
//!             Ok(n) => {
//!                 unsent.drain(..n);
//!             }
//!             Err(e) if later(&e) => break, // the rest waits for an OUT entry
//!             Err(_) => failed = true,
//!         }
//!     }
//!     let filter = match (eof, unsent.is_empty()) {
//!         _ if failed => return Registration::remove(&conn.stream).with_key(key),
//!         (true, true) => return Registration::remove(&conn.stream).with_key(key),
//!         (true, false) => Events::OUT,
//!         (false, true) => Events::IN | Events::HANGUP,
//!         (false, false) => Events::IN | Events::HANGUP | Events::OUT,
//!     };
//!     Registration::enable(&conn.stream, key, filter, ONESHOT_LEVEL)
//! }
//! ```

#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]
#![warn(rust_2018_idioms, missing_debug_implementations)]

// One clear error where no backend is wired in yet.
#[cfg(not(any(target_os = "linux", windows)))]
compile_error!(
    "socknotify runs on Linux (epoll, io_uring) and Windows (AFD poll) for now; kqueue \
     (macOS, BSD) is planned"
);

mod error;
mod event;
mod owners;
mod port;
mod queue;
mod registration;
mod registry;
mod slab;
mod sync;
mod sys;

/// The README's example, compiled and run as a doctest so that it cannot rot.
#[cfg(all(doctest, target_os = "linux"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

// Documentation only: a guide and the rules, as docs.rs shows them. Then per-registration
// contexts, built on the public API.
pub mod guide;
pub mod spec;

mod context;
pub use context::{is_context_key, ContextPort, Delivery, Refused};

pub use error::{is_port_closed, ErrorCause};
pub use event::{CompletionEntry, Events, Trigger};
pub use port::{Backend, CompletionPort, PortBuilder};
pub use queue::PortStats;
pub use registration::{AsSocketLike, Operation, RawSocketLike, Registration};

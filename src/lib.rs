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
//! The full rules are in [the specification](spec) (the repository's `docs/spec.md`); each
//! has a conformance test in the repository's `tests/` that runs against every backend on
//! the machine.
//!
//! # Backends
//!
//! | platform | backend | status |
//! |---|---|---|
//! | Linux | [`Backend::Epoll`] | complete: one `epoll_ctl` per change, one `epoll_wait` per dequeue |
//! | Linux 6.15+ | [`Backend::IoUring`] | complete: re-arms and the wait in one `io_uring_enter` (see `docs/io_uring.md`) |
//! | Windows | native `ProcessSocketNotifications` | planned |
//! | macOS, BSD | kqueue | planned |
//!
//! [`Backend::Auto`] picks io_uring when the kernel has everything it needs, else epoll;
//! `SOCKNOTIFY_BACKEND=epoll` (or `io_uring`) forces one for a whole process, which is how
//! a test suite can be run once per backend.
//!
//! # Errors
//!
//! Every error is an [`std::io::Error`]:
//!
//! | kind | when |
//! |---|---|
//! | [`InvalidInput`](std::io::ErrorKind::InvalidInput) | unknown or conflicting operation, filter or trigger bits; a closed descriptor or one that is not a socket; ENABLE with a different key; an empty entries buffer for `dequeue` |
//! | [`NotFound`](std::io::ErrorKind::NotFound) | DISABLE or REMOVE of a socket with no registration on this port |
//! | [`AlreadyExists`](std::io::ErrorKind::AlreadyExists) | the socket is registered on another port |
//! | [`BrokenPipe`](std::io::ErrorKind::BrokenPipe) | the port is closed ([`is_port_closed`]) |
//! | [`Unsupported`](std::io::ErrorKind::Unsupported) | a backend this machine cannot provide |
//! | [`WouldBlock`](std::io::ErrorKind::WouldBlock) | [`Registration::result`] before `process` |
//!
//! Per-socket failures go to each [`Registration::result`]; `process` itself fails only for
//! the call as a whole.
//!
//! # Example
//!
//! An echo server on one thread, re-arming one-shot registrations through the next
//! `process` call:
//!
//! ```no_run
//! use std::collections::HashMap;
//! use std::io::{self, Read, Write};
//! use std::net::{TcpListener, TcpStream};
//! use std::time::Duration;
//! use socknotify::{CompletionEntry, CompletionPort, Events, Registration, Trigger};
//!
//! fn main() -> io::Result<()> {
//!     let port = CompletionPort::new()?;
//!     let listener = TcpListener::bind("127.0.0.1:0")?;
//!     listener.set_nonblocking(true)?;
//!     const LISTENER: usize = usize::MAX;
//!     let mut changes = vec![Registration::enable(
//!         &listener,
//!         LISTENER,
//!         Events::IN,
//!         Trigger::PERSISTENT | Trigger::LEVEL,
//!     )];
//!     let mut conns: HashMap<usize, TcpStream> = HashMap::new();
//!     let mut next_key = 0;
//!     let mut entries = [CompletionEntry::default(); 64];
//!     loop {
//!         let n = port.process(&mut changes, &mut entries, Some(Duration::from_secs(1)))?;
//!         for r in &changes {
//!             r.result()?;
//!         }
//!         changes.clear();
//!         for entry in &entries[..n] {
//!             let events = entry.events();
//!             if entry.key == LISTENER {
//!                 while let Ok((stream, _)) = listener.accept() {
//!                     stream.set_nonblocking(true)?;
//!                     let trigger = Trigger::ONESHOT | Trigger::LEVEL;
//!                     let filter = Events::IN | Events::HANGUP;
//!                     changes.push(Registration::enable(&stream, next_key, filter, trigger));
//!                     conns.insert(next_key, stream);
//!                     next_key += 1;
//!                 }
//!             } else if events.is_remove() {
//!                 conns.remove(&entry.key); // the last entry: now the socket may go
//!             } else if let Some(stream) = conns.get_mut(&entry.key) {
//!                 let mut buf = [0u8; 4096];
//!                 match stream.read(&mut buf) {
//!                     Ok(0) | Err(_) => changes.push(Registration::remove(stream)),
//!                     Ok(n) => {
//!                         stream.write_all(&buf[..n])?;
//!                         let trigger = Trigger::ONESHOT | Trigger::LEVEL;
//!                         let filter = Events::IN | Events::HANGUP;
//!                         changes.push(Registration::enable(stream, entry.key, filter, trigger));
//!                     }
//!                 }
//!             }
//!         }
//!     }
//! }
//! ```

#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]
#![warn(rust_2018_idioms, missing_debug_implementations)]

#[cfg(not(target_os = "linux"))]
compile_error!("socknotify supports Linux only for now; other platforms are planned");

mod error;
mod event;
mod owners;
mod port;
mod queue;
mod registration;
mod registry;
mod sync;
mod sys;

/// The README's example, compiled and run as a doctest so that it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

// Documentation only: the rules, as docs.rs shows them. Then per-registration contexts,
// built on the public API.
pub mod spec;

mod context;
pub use context::{is_context_key, ContextPort, Delivery, Refused};

pub use error::is_port_closed;
pub use event::{CompletionEntry, Events, Trigger};
pub use port::{Backend, CompletionPort, PortBuilder};
pub use queue::PortStats;
pub use registration::{Operation, Registration};

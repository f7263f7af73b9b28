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
//! A *persistent* registration's entry is re-armed when the thread that received it calls
//! again (or blocks, or exits): one thread handles a socket's entry at a time, and an EDGE
//! registration whose data was read until `WouldBlock` before that call sees exactly one
//! entry per new arrival. (Windows queues nothing for a condition that already held when
//! an EDGE registration was enabled; socknotify may queue one entry then, which a program
//! that drains does not notice.)
//!
//! The full rules are in the repository's `SPEC.md`; each has a conformance test in
//! `tests/` that runs against every backend on the machine.
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
//! [`Backend::Auto`] picks io_uring when the kernel has what it needs (and the default
//! `io-uring` feature is on), else epoll; on Windows it picks AFD.
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

pub use error::{is_port_closed, ErrorCause};
pub use event::{CompletionEntry, Events, Trigger};
pub use port::{Backend, CompletionPort, PortBuilder};
pub use queue::PortStats;
pub use registration::{AsSocketLike, Operation, RawSocketLike, Registration};

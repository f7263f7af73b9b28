//! The contenders. Each module does every workload with its own idiomatic best pattern:
//!
//! | contender | threads share | re-arm | module |
//! |---|---|---|---|
//! | `epoll` (the floor) | one epoll instance | `EPOLLONESHOT`, `epoll_ctl(MOD)` per message | [`epoll`] |
//! | `socknotify-epoll`, `socknotify-io_uring` | one `CompletionPort` | one-shot level `ENABLE`s in the next `process` call's batch | [`socknotify`] |
//! | `mio` | nothing: one `Poll` per thread, connections partitioned | none (edge-triggered, read until `WouldBlock`) | [`mio`] |
//! | `polling` | one `Poller` | `modify` (oneshot) per message | [`polling`] |
//! | `poll` (WSAPoll's analogue) | nothing: one `pollfd` array per thread | none (level-triggered) | [`poll`] |

use std::io;
use std::os::fd::OwnedFd;

use ::socknotify::{Backend, CompletionPort};

use crate::job::Mode;
use crate::options::invalid;
use crate::run::{Measured, Run};
use crate::workload::posted::Posted;
use crate::workload::Sockets;

pub mod epoll;
pub mod mio;
pub mod poll;
pub mod polling;
pub mod socknotify;

/// Who is measured. The order is the order of the tables: the baseline first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Contender {
    /// Hand-written epoll with `EPOLLONESHOT`: the floor.
    Epoll,
    /// socknotify on its epoll backend.
    SocknotifyEpoll,
    /// socknotify on its io_uring backend.
    SocknotifyUring,
    /// mio 1.x.
    Mio,
    /// polling 3.x.
    Polling,
    /// poll(2).
    Poll,
}

impl Contender {
    pub const ALL: [Contender; 6] = [
        Contender::Epoll,
        Contender::SocknotifyEpoll,
        Contender::SocknotifyUring,
        Contender::Mio,
        Contender::Polling,
        Contender::Poll,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Contender::Epoll => "epoll",
            Contender::SocknotifyEpoll => "socknotify-epoll",
            Contender::SocknotifyUring => "socknotify-io_uring",
            Contender::Mio => "mio",
            Contender::Polling => "polling",
            Contender::Poll => "poll",
        }
    }

    pub fn parse(s: &str) -> io::Result<Contender> {
        Contender::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| invalid(format!("unknown contender {s:?}")))
    }

    /// The socknotify backend this contender uses, if it is socknotify.
    pub fn backend(self) -> Option<Backend> {
        match self {
            Contender::SocknotifyEpoll => Some(Backend::Epoll),
            Contender::SocknotifyUring => Some(Backend::IoUring),
            _ => None,
        }
    }

    /// Every contender that works on this machine, and a note for each one that does not
    /// (a socknotify backend whose port cannot be built here).
    pub fn available() -> (Vec<Contender>, Vec<String>) {
        let mut found = Vec::new();
        let mut notes = Vec::new();
        for c in Contender::ALL {
            match c.backend() {
                None => found.push(c),
                Some(b) => match CompletionPort::builder().backend(b).build() {
                    Ok(_) => found.push(c),
                    Err(e) => notes.push(format!("{} left out: {e}", c.name())),
                },
            }
        }
        (found, notes)
    }

    /// Ping-pong (and idle scaling, which is ping-pong with one active pair).
    pub fn pingpong(self, set: &Sockets, run: &Run, concurrency: usize) -> io::Result<Measured> {
        match self {
            Contender::Epoll => epoll::pingpong(set, run),
            Contender::SocknotifyEpoll | Contender::SocknotifyUring => {
                socknotify::pingpong(self.port(concurrency)?, set, run)
            }
            Contender::Mio => mio::pingpong(set, run),
            Contender::Polling => polling::pingpong(set, run),
            Contender::Poll => poll::pingpong(set, run),
        }
    }

    /// Register and remove every socket in `fds`, again and again; counts one operation per
    /// socket registered and removed. `None` for poll(2), which has nothing to register.
    pub fn churn(
        self,
        fds: &[OwnedFd],
        run: &Run,
        concurrency: usize,
    ) -> io::Result<Option<Measured>> {
        match self {
            Contender::Epoll => epoll::churn(fds, run).map(Some),
            Contender::SocknotifyEpoll | Contender::SocknotifyUring => {
                socknotify::churn(self.port(concurrency)?, fds, run).map(Some)
            }
            Contender::Mio => mio::churn(fds, run).map(Some),
            Contender::Polling => polling::churn(fds, run).map(Some),
            Contender::Poll => Ok(None),
        }
    }

    /// `batch` re-arms of registered one-shot sockets per call, going round `fds`. `None`
    /// for the peers: only raw epoll (the floor) and socknotify take part.
    pub fn batch(
        self,
        fds: &[OwnedFd],
        batch: usize,
        run: &Run,
        concurrency: usize,
    ) -> io::Result<Option<Measured>> {
        match self {
            Contender::Epoll => epoll::batch(fds, batch, run).map(Some),
            Contender::SocknotifyEpoll | Contender::SocknotifyUring => {
                socknotify::batch(self.port(concurrency)?, fds, batch, run).map(Some)
            }
            Contender::Mio | Contender::Polling | Contender::Poll => Ok(None),
        }
    }

    /// One producer thread posts, one consumer thread dequeues.
    pub fn posted(self, mode: Mode, run: &Run, concurrency: usize) -> io::Result<Posted> {
        use crate::workload::posted::drive;
        match self {
            Contender::Epoll => drive(&epoll::Mailbox::new()?, mode, run),
            Contender::SocknotifyEpoll | Contender::SocknotifyUring => drive(
                &socknotify::Mailbox::new(self.port(concurrency)?),
                mode,
                run,
            ),
            Contender::Mio => drive(&mio::Mailbox::new()?, mode, run),
            Contender::Polling => drive(&polling::Mailbox::new()?, mode, run),
            Contender::Poll => drive(&poll::Mailbox::new()?, mode, run),
        }
    }

    /// Resident bytes before and after registering every socket in `fds` (the contender's
    /// selector exists in both readings).
    pub fn memory(self, fds: &[OwnedFd], concurrency: usize) -> io::Result<(u64, u64)> {
        match self {
            Contender::Epoll => epoll::memory(fds),
            Contender::SocknotifyEpoll | Contender::SocknotifyUring => {
                socknotify::memory(&self.port(concurrency)?, fds)
            }
            Contender::Mio => mio::memory(fds),
            Contender::Polling => polling::memory(fds),
            Contender::Poll => poll::memory(fds),
        }
    }

    fn port(self, concurrency: usize) -> io::Result<CompletionPort> {
        let backend = self
            .backend()
            .expect("only socknotify contenders have a port");
        CompletionPort::builder()
            .backend(backend)
            .concurrency(concurrency)
            .build()
    }
}

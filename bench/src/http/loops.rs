//! The event-loop servers that are not socknotify: raw epoll edge-triggered (the baseline)
//! and one-shot, mio, polling. Each worker runs until the server is stopped, waking at
//! least every [`TICK`] to look.

use std::io;
use std::num::NonZeroUsize;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use super::{accept_all, Served, Server, Shared, BUFFER};
use crate::contender::epoll::Epoll;
use crate::run::TICK;
use crate::workload::BATCH;

/// The key of the listening socket: no descriptor has it.
/// (polling reserves `usize::MAX` for its own notifications.)
const LISTENER: usize = usize::MAX - 1;

/// The worker function of `server` (not socknotify, not tokio).
pub fn worker(server: Server) -> fn(&Shared, usize) -> io::Result<()> {
    match server {
        Server::EpollEdge => epoll_edge,
        Server::EpollOneshot => epoll_oneshot,
        Server::Mio => mio,
        Server::Polling => polling,
        other => unreachable!("{} has its own module", other.name()),
    }
}

fn no_events() -> Vec<libc::epoll_event> {
    vec![libc::epoll_event { events: 0, u64: 0 }; BATCH]
}

/// One epoll instance per thread; the listener in each with `EPOLLEXCLUSIVE` (the kernel
/// wakes one of them per connection); connections `EPOLLIN | EPOLLET` in the instance of
/// the thread that accepted them, drained on every event, never re-armed.
fn epoll_edge(shared: &Shared, t: usize) -> io::Result<()> {
    let epoll = Epoll::new()?;
    let listener = shared.listener.as_raw_fd();
    let exclusive = (libc::EPOLLIN | libc::EPOLLEXCLUSIVE) as u32;
    epoll.add(listener, exclusive, LISTENER as u64)?;
    let edge = (libc::EPOLLIN | libc::EPOLLET) as u32;
    let mut events = no_events();
    let mut buf = [0u8; BUFFER];
    while !shared.stopped() {
        let n = epoll.wait(&mut events)?;
        let mut served = 0;
        for event in &events[..n] {
            let key = event.u64 as usize;
            if key == LISTENER {
                accept_all(&shared.listener, |s| {
                    let fd = shared.table.insert(s)?;
                    epoll.add(fd, edge, fd as u64)
                })?;
            } else {
                // Closing the connection (dropping `closed`) removes it from epoll.
                served += shared.table.serve(key as RawFd, true, &mut buf).responses;
            }
        }
        shared.add(t, served);
    }
    Ok(())
}

/// One epoll instance shared by every thread; listener and connections
/// `EPOLLIN | EPOLLONESHOT`, re-armed with `EPOLL_CTL_MOD` after each event.
fn epoll_oneshot(shared: &Shared, t: usize) -> io::Result<()> {
    use std::sync::OnceLock;
    // The workers of one server share it; one server per process.
    static EPOLL: OnceLock<Epoll> = OnceLock::new();
    const ONESHOT: u32 = (libc::EPOLLIN | libc::EPOLLONESHOT) as u32;
    let listener = shared.listener.as_raw_fd();
    let epoll = match EPOLL.get() {
        Some(e) => e,
        None => {
            let e = Epoll::new()?;
            e.add(listener, ONESHOT, LISTENER as u64)?;
            EPOLL.get_or_init(|| e)
        }
    };
    let mut events = no_events();
    let mut buf = [0u8; BUFFER];
    while !shared.stopped() {
        let n = epoll.wait(&mut events)?;
        let mut served = 0;
        for event in &events[..n] {
            let key = event.u64 as usize;
            if key == LISTENER {
                accept_all(&shared.listener, |s| {
                    let fd = shared.table.insert(s)?;
                    epoll.add(fd, ONESHOT, fd as u64)
                })?;
                epoll.modify(listener, ONESHOT, LISTENER as u64)?;
                continue;
            }
            let fd = key as RawFd;
            let Served { responses, closed } = shared.table.serve(fd, false, &mut buf);
            served += responses;
            if closed.is_none() {
                epoll.modify(fd, ONESHOT, key as u64)?;
            }
        }
        shared.add(t, served);
    }
    Ok(())
}

/// One `Poll` per thread (a `Poll` cannot be shared); the listener registered in each
/// (edge: every thread wakes, the quickest accepts); connections edge-triggered in the
/// accepting thread's `Poll`, drained, never re-armed.
fn mio(shared: &Shared, t: usize) -> io::Result<()> {
    let mut poll = Poll::new()?;
    let listener = shared.listener.as_raw_fd();
    poll.registry().register(
        &mut SourceFd(&listener),
        Token(LISTENER),
        Interest::READABLE,
    )?;
    let mut events = Events::with_capacity(BATCH);
    let mut buf = [0u8; BUFFER];
    while !shared.stopped() {
        match poll.poll(&mut events, Some(TICK)) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => other?,
        }
        let mut served = 0;
        for event in &events {
            let key = event.token().0;
            if key == LISTENER {
                accept_all(&shared.listener, |s| {
                    let fd = shared.table.insert(s)?;
                    poll.registry().register(
                        &mut SourceFd(&fd),
                        Token(fd as usize),
                        Interest::READABLE,
                    )
                })?;
            } else {
                served += shared.table.serve(key as RawFd, true, &mut buf).responses;
            }
        }
        shared.add(t, served);
    }
    Ok(())
}

/// One `Poller` per thread (its `wait` lets one thread wait at a time); the listener added
/// to each in oneshot mode (polling's default) and re-armed after accepting; connections
/// oneshot in the accepting thread's `Poller`, re-armed with `modify` after each event and
/// deleted before they are closed, as polling requires.
fn polling(shared: &Shared, t: usize) -> io::Result<()> {
    use polling::{Event, Events, Poller};
    let poller = Poller::new()?;
    let listener = shared.listener.as_fd();
    // SAFETY: polling requires a source to be deleted before it is closed. The listener
    // outlives this poller (it lives until the process ends) and is deleted below.
    unsafe { poller.add(&listener, Event::readable(LISTENER))? };
    let mut events = Events::with_capacity(NonZeroUsize::new(BATCH).expect("BATCH is not zero"));
    let mut buf = [0u8; BUFFER];
    let result = (|| {
        while !shared.stopped() {
            events.clear();
            match poller.wait(&mut events, Some(TICK)) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => other?,
            };
            let mut served = 0;
            for event in events.iter() {
                if event.key == LISTENER {
                    accept_all(&shared.listener, |s| {
                        let fd = shared.table.insert(s)?;
                        // SAFETY: the connection lives in the table until `serve` hands it
                        // back closed, and it is deleted from this poller before it is
                        // dropped (below); connections still open when the server stops
                        // outlive this poller, which is dropped first.
                        unsafe { poller.add(fd, Event::readable(fd as usize)) }
                    })?;
                    poller.modify(listener, Event::readable(LISTENER))?;
                    continue;
                }
                let fd = event.key as RawFd;
                let Served { responses, closed } = shared.table.serve(fd, false, &mut buf);
                served += responses;
                // SAFETY: the connection is open while the table or `closed` holds it.
                let source = unsafe { BorrowedFd::borrow_raw(fd) };
                match closed {
                    Some(stream) => {
                        poller.delete(source)?;
                        drop(stream);
                    }
                    None => poller.modify(source, Event::readable(event.key))?,
                }
            }
            shared.add(t, served);
        }
        Ok(())
    })();
    poller.delete(listener)?;
    result
}

//! mio 1.x. A `Poll` is not shareable between threads, so its idiom is one `Poll` per
//! thread with the connections partitioned among the threads. Registrations are
//! edge-triggered: a handler reads until `WouldBlock` and never re-arms.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{mpsc, Mutex};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};

use crate::run::{Measured, Run, TICK};
use crate::sys;
use crate::workload::{posted, Sockets, BATCH, BUFFER};

const WAKE: Token = Token(usize::MAX);

fn register(poll: &Poll, fd: &OwnedFd, key: usize) -> io::Result<()> {
    poll.registry().register(
        &mut SourceFd(&fd.as_raw_fd()),
        Token(key),
        Interest::READABLE,
    )
}

fn wait(poll: &mut Poll, events: &mut Events) -> io::Result<()> {
    match poll.poll(events, Some(TICK)) {
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
        other => other,
    }
}

pub fn pingpong(set: &Sockets, run: &Run) -> io::Result<Measured> {
    set.kick()?;
    run.workers(|t| {
        let mut poll = Poll::new()?;
        for key in set.partition(t) {
            register(&poll, &set.fds[key], key)?;
        }
        let mut events = Events::with_capacity(BATCH);
        let mut buf = [0u8; BUFFER];
        while !run.stopped() {
            wait(&mut poll, &mut events)?;
            let mut messages = 0;
            for event in &events {
                while set.echo(event.token().0, &mut buf)? {
                    messages += 1;
                }
            }
            run.add(t, messages);
        }
        Ok(())
    })
}

/// `register` then `deregister` for every socket.
pub fn churn(fds: &[OwnedFd], run: &Run) -> io::Result<Measured> {
    run.workers(|t| {
        let poll = Poll::new()?;
        while !run.stopped() {
            for (key, fd) in fds.iter().enumerate() {
                register(&poll, fd, key)?;
            }
            for fd in fds {
                poll.registry().deregister(&mut SourceFd(&fd.as_raw_fd()))?;
            }
            run.add(t, fds.len() as u64);
        }
        Ok(())
    })
}

/// A channel plus mio's `Waker`, woken after every send as mio's documentation shows.
#[derive(Debug)]
pub struct Mailbox {
    waker: Waker,
    tx: mpsc::Sender<u64>,
    consumer: Mutex<Option<(Poll, mpsc::Receiver<u64>)>>,
}

impl Mailbox {
    pub fn new() -> io::Result<Mailbox> {
        let poll = Poll::new()?;
        let waker = Waker::new(poll.registry(), WAKE)?;
        let (tx, rx) = mpsc::channel();
        Ok(Mailbox {
            waker,
            tx,
            consumer: Mutex::new(Some((poll, rx))),
        })
    }
}

impl posted::Mailbox for Mailbox {
    type Consumer = (Poll, Events, mpsc::Receiver<u64>);

    fn consumer(&self) -> io::Result<Self::Consumer> {
        let taken = self
            .consumer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let (poll, rx) = taken.ok_or_else(|| io::Error::other("one consumer only"))?;
        Ok((poll, Events::with_capacity(BATCH), rx))
    }

    fn post(&self, stamp: u64) -> io::Result<()> {
        self.tx.send(stamp).map_err(io::Error::other)?;
        self.waker.wake()
    }

    fn take(
        &self,
        (poll, events, rx): &mut Self::Consumer,
        got: &mut dyn FnMut(u64),
    ) -> io::Result<()> {
        wait(poll, events)?;
        rx.try_iter().for_each(got);
        Ok(())
    }
}

pub fn memory(fds: &[OwnedFd]) -> io::Result<(u64, u64)> {
    let poll = Poll::new()?;
    let before = sys::rss_bytes()?;
    for (key, fd) in fds.iter().enumerate() {
        register(&poll, fd, key)?;
    }
    let after = sys::rss_bytes()?;
    Ok((before, after))
}

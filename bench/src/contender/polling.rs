//! polling 3.x: one `Poller` shared by every thread, sockets added in oneshot mode (its
//! default) and re-armed with `modify` after each message.
//!
//! `Poller::wait` lets one thread wait at a time: a second caller gets `Ok(0)` at once
//! (polling's documentation). A worker that gets nothing yields its CPU before it tries
//! again, so the idle threads do not spin at full speed.

use std::io;
use std::num::NonZeroUsize;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::{mpsc, Mutex};

use polling::{Event, Events, Poller};

use crate::run::{Measured, Run, TICK};
use crate::sys;
use crate::workload::{posted, Sockets, BATCH, BUFFER};

fn events() -> Events {
    Events::with_capacity(NonZeroUsize::new(BATCH).expect("BATCH is not zero"))
}

/// Adds every socket in `fds` with its index as key.
fn add_all(poller: &Poller, fds: &[OwnedFd]) -> io::Result<()> {
    for (key, fd) in fds.iter().enumerate() {
        // SAFETY: polling requires a source to be deleted before it is closed. `fds` belong
        // to the caller and outlive every local `Poller` of this module; each caller
        // deletes them (`delete_all`) when it is done, and on an early error the poller is
        // dropped, closing its epoll instance, before the caller closes any socket.
        unsafe { poller.add(fd.as_raw_fd(), Event::readable(key))? };
    }
    Ok(())
}

fn delete_all(poller: &Poller, fds: &[OwnedFd]) -> io::Result<()> {
    fds.iter().try_for_each(|fd| poller.delete(fd.as_fd()))
}

fn wait(poller: &Poller, events: &mut Events) -> io::Result<usize> {
    events.clear();
    match poller.wait(events, Some(TICK)) {
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
        other => other,
    }
}

pub fn pingpong(set: &Sockets, run: &Run) -> io::Result<Measured> {
    let poller = Poller::new()?;
    add_all(&poller, &set.fds)?;
    set.kick()?;
    let measured = run.workers(|t| {
        let mut events = events();
        let mut buf = [0u8; BUFFER];
        while !run.stopped() {
            if wait(&poller, &mut events)? == 0 {
                // Another thread holds the wait, or nothing happened.
                std::thread::yield_now();
                continue;
            }
            let mut messages = 0;
            for event in events.iter() {
                if set.echo(event.key, &mut buf)? {
                    messages += 1;
                }
                poller.modify(set.fds[event.key].as_fd(), Event::readable(event.key))?;
            }
            run.add(t, messages);
        }
        Ok(())
    });
    delete_all(&poller, &set.fds)?;
    measured
}

/// `add` then `delete` for every socket.
pub fn churn(fds: &[OwnedFd], run: &Run) -> io::Result<Measured> {
    let poller = Poller::new()?;
    run.workers(|t| {
        while !run.stopped() {
            add_all(&poller, fds)?;
            delete_all(&poller, fds)?;
            run.add(t, fds.len() as u64);
        }
        Ok(())
    })
}

/// A channel plus `Poller::notify`, which wakes the waiting thread (and coalesces).
#[derive(Debug)]
pub struct Mailbox {
    poller: Poller,
    tx: mpsc::Sender<u64>,
    rx: Mutex<Option<mpsc::Receiver<u64>>>,
}

impl Mailbox {
    pub fn new() -> io::Result<Mailbox> {
        let (tx, rx) = mpsc::channel();
        Ok(Mailbox {
            poller: Poller::new()?,
            tx,
            rx: Mutex::new(Some(rx)),
        })
    }
}

impl posted::Mailbox for Mailbox {
    type Consumer = (Events, mpsc::Receiver<u64>);

    fn consumer(&self) -> io::Result<Self::Consumer> {
        let rx = self.rx.lock().unwrap_or_else(|p| p.into_inner()).take();
        let rx = rx.ok_or_else(|| io::Error::other("one consumer only"))?;
        Ok((events(), rx))
    }

    fn post(&self, stamp: u64) -> io::Result<()> {
        self.tx.send(stamp).map_err(io::Error::other)?;
        self.poller.notify()
    }

    fn take(&self, (events, rx): &mut Self::Consumer, got: &mut dyn FnMut(u64)) -> io::Result<()> {
        wait(&self.poller, events)?;
        rx.try_iter().for_each(got);
        Ok(())
    }
}

pub fn memory(fds: &[OwnedFd]) -> io::Result<(u64, u64)> {
    let poller = Poller::new()?;
    let before = sys::rss_bytes()?;
    add_all(&poller, fds)?;
    let after = sys::rss_bytes()?;
    delete_all(&poller, fds)?;
    Ok((before, after))
}

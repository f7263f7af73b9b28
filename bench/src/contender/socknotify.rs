//! socknotify, on whichever backend the port was built with.
//!
//! Its idiom: one `CompletionPort` shared by every thread; sockets registered one-shot and
//! level-triggered; each thread re-arms the sockets it served by passing their `ENABLE`s
//! to its next `process` call, which applies the batch and dequeues in one call.

use std::io;
use std::os::fd::OwnedFd;
use std::time::Duration;

use socknotify::{CompletionEntry, CompletionPort, Events, Registration, Trigger};

use crate::run::{Measured, Run, TICK};
use crate::sys;
use crate::workload::{posted, Sockets, BATCH, BUFFER};

fn context(what: &str, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("socknotify, {what}: {e}"))
}

fn arm(fd: &OwnedFd, key: usize) -> Registration {
    Registration::enable(fd, key, Events::IN, Trigger::ONESHOT | Trigger::LEVEL)
}

/// Applies `changes` without dequeuing, and fails on the first refused registration.
fn apply(port: &CompletionPort, changes: &mut [Registration]) -> io::Result<()> {
    port.process(changes, &mut [], Some(Duration::ZERO))?;
    changes.iter().try_for_each(Registration::result)
}

pub fn pingpong(port: CompletionPort, set: &Sockets, run: &Run) -> io::Result<Measured> {
    let mut all: Vec<Registration> = set
        .fds
        .iter()
        .enumerate()
        .map(|(k, fd)| arm(fd, k))
        .collect();
    apply(&port, &mut all)?;
    drop(all);
    set.kick()?;
    run.workers(|t| {
        let mut changes: Vec<Registration> = Vec::with_capacity(BATCH);
        let mut entries = [CompletionEntry::default(); BATCH];
        let mut buf = [0u8; BUFFER];
        while !run.stopped() {
            let n = port
                .process(&mut changes, &mut entries, Some(TICK))
                .map_err(|e| context("process", e))?;
            changes
                .iter()
                .try_for_each(Registration::result)
                .map_err(|e| context("a re-arm", e))?;
            changes.clear();
            let mut messages = 0;
            for entry in &entries[..n] {
                if set
                    .echo(entry.key, &mut buf)
                    .map_err(|e| context(&format!("entry {entry:?}"), e))?
                {
                    messages += 1;
                }
                changes.push(arm(&set.fds[entry.key], entry.key));
            }
            run.add(t, messages);
        }
        Ok(())
    })
}

/// Registers every socket in one batch, removes every socket in one batch, and dequeues
/// the REMOVE entries (a registration is not over before its REMOVE entry is taken).
pub fn churn(port: CompletionPort, fds: &[OwnedFd], run: &Run) -> io::Result<Measured> {
    run.workers(|t| {
        let mut enables: Vec<Registration> =
            fds.iter().enumerate().map(|(k, fd)| arm(fd, k)).collect();
        let mut removes: Vec<Registration> = fds.iter().map(Registration::remove).collect();
        let mut entries = vec![CompletionEntry::default(); fds.len().clamp(1, BATCH)];
        while !run.stopped() {
            apply(&port, &mut enables)?;
            let mut left = fds.len();
            let mut n = port.process(&mut removes, &mut entries, Some(Duration::ZERO))?;
            removes.iter().try_for_each(Registration::result)?;
            loop {
                let removed = entries[..n].iter().filter(|e| e.events().is_remove());
                left = left.saturating_sub(removed.count());
                if left == 0 || run.stopped() {
                    break;
                }
                n = port.dequeue(&mut entries, Some(TICK))?;
            }
            run.add(t, fds.len() as u64);
        }
        Ok(())
    })
}

/// Re-arms `batch` of the registered one-shot sockets `fds` per `process` call (an
/// `ENABLE` with the same key each, going round the set), and dequeues without waiting:
/// the cost per change as a function of the batch size.
pub fn batch(
    port: CompletionPort,
    fds: &[OwnedFd],
    batch: usize,
    run: &Run,
) -> io::Result<Measured> {
    let mut all: Vec<Registration> = fds.iter().enumerate().map(|(k, fd)| arm(fd, k)).collect();
    apply(&port, &mut all)?;
    drop(all);
    run.workers(|t| {
        let mut changes: Vec<Registration> = Vec::with_capacity(batch);
        let mut entries = [CompletionEntry::default(); BATCH];
        let mut next = 0;
        while !run.stopped() {
            changes.clear();
            for _ in 0..batch {
                changes.push(arm(&fds[next], next));
                next = (next + 1) % fds.len();
            }
            let n = port
                .process(&mut changes, &mut entries, Some(Duration::ZERO))
                .map_err(|e| context("process", e))?;
            changes
                .iter()
                .try_for_each(Registration::result)
                .map_err(|e| context("a re-arm", e))?;
            if n != 0 {
                return Err(io::Error::other(format!(
                    "an idle socket delivered {:?}",
                    entries[0]
                )));
            }
            run.add(t, batch as u64);
        }
        Ok(())
    })
}

/// Posts completion entries; the consumer dequeues them in batches.
#[derive(Debug)]
pub struct Mailbox {
    port: CompletionPort,
}

impl Mailbox {
    pub fn new(port: CompletionPort) -> Mailbox {
        Mailbox { port }
    }
}

impl posted::Mailbox for Mailbox {
    type Consumer = Vec<CompletionEntry>;

    fn consumer(&self) -> io::Result<Self::Consumer> {
        Ok(vec![CompletionEntry::default(); BATCH])
    }

    fn post(&self, stamp: u64) -> io::Result<()> {
        self.port.post(CompletionEntry {
            key: 1,
            bytes: 0,
            overlapped: stamp as usize,
        })
    }

    fn take(&self, entries: &mut Self::Consumer, got: &mut dyn FnMut(u64)) -> io::Result<()> {
        let n = self.port.dequeue(entries, Some(TICK))?;
        for e in &entries[..n] {
            got(e.overlapped as u64);
        }
        Ok(())
    }
}

/// Resident bytes before and after registering every socket in `fds` in one batch.
pub fn memory(port: &CompletionPort, fds: &[OwnedFd]) -> io::Result<(u64, u64)> {
    let mut all: Vec<Registration> = fds.iter().enumerate().map(|(k, fd)| arm(fd, k)).collect();
    let before = sys::rss_bytes()?;
    apply(port, &mut all)?;
    let after = sys::rss_bytes()?;
    Ok((before, after))
}

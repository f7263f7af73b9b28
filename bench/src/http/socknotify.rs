//! socknotify's servers: one `CompletionPort` (concurrency = the server's threads) shared
//! by every worker. The listener is registered one-shot level and re-enabled after each
//! accepting round; new connections are registered in the accepting thread's next
//! `process` call.
//!
//! - one-shot: connections `ONESHOT | LEVEL`; a request is read once and the connection is
//!   re-armed by an `ENABLE` with the same key in the thread's next `process` call.
//! - persistent edge: connections `PERSISTENT | EDGE`, drained on every entry and never
//!   re-armed by the application (the port re-arms them when the thread calls again).

use std::io;
use std::os::fd::RawFd;

use socknotify::{
    Backend, CompletionEntry, CompletionPort, Events, Operation, Registration, Trigger,
};

use super::{accept_all, Running, Served, Shared, BUFFER};
use crate::run::TICK;
use crate::workload::BATCH;

const LISTENER: usize = usize::MAX;

fn enable(fd: RawFd, key: usize, trigger: Trigger) -> Registration {
    Registration::from_raw(fd, key, Events::IN, Operation::Enable, trigger)
}

fn context(what: &str, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("socknotify server, {what}: {e}"))
}

struct Port {
    port: CompletionPort,
    trigger: Trigger,
}

pub fn start(
    shared: Shared,
    threads: usize,
    backend: Backend,
    edge: bool,
) -> io::Result<Box<dyn Running>> {
    use std::os::fd::AsRawFd;
    let port = CompletionPort::builder()
        .backend(backend)
        .concurrency(threads)
        .build()?;
    let listen = enable(
        shared.listener.as_raw_fd(),
        LISTENER,
        Trigger::ONESHOT | Trigger::LEVEL,
    );
    let mut first = [listen];
    port.process(&mut first, &mut [], None)?;
    first[0].result().map_err(|e| context("the listener", e))?;
    let trigger = if edge {
        Trigger::PERSISTENT | Trigger::EDGE
    } else {
        Trigger::ONESHOT | Trigger::LEVEL
    };
    PORT.set(Port { port, trigger })
        .map_err(|_| io::Error::other("one server per process"))?;
    super::spawn(shared, threads, worker)
}

static PORT: std::sync::OnceLock<Port> = std::sync::OnceLock::new();

fn worker(shared: &Shared, t: usize) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let Port { port, trigger } = PORT.get().expect("start sets the port");
    let (trigger, edge) = (*trigger, trigger.is_edge());
    let listener = shared.listener.as_raw_fd();
    let mut changes: Vec<Registration> = Vec::with_capacity(BATCH);
    let mut entries = [CompletionEntry::default(); BATCH];
    let mut buf = [0u8; BUFFER];
    while !shared.stopped() {
        let n = port
            .process(&mut changes, &mut entries, Some(TICK))
            .map_err(|e| context("process", e))?;
        for c in &changes {
            c.result().map_err(|e| context(&format!("{c:?}"), e))?;
        }
        changes.clear();
        let mut served = 0;
        for entry in &entries[..n] {
            if entry.key == LISTENER {
                accept_all(&shared.listener, |s| {
                    let fd = shared.table.insert(s)?;
                    changes.push(enable(fd, fd as usize, trigger));
                    Ok(())
                })?;
                changes.push(enable(
                    listener,
                    LISTENER,
                    Trigger::ONESHOT | Trigger::LEVEL,
                ));
                continue;
            }
            let fd = entry.key as RawFd;
            // A closed connection (dropped here) is deregistered silently (rule 7).
            let Served { responses, closed } = shared.table.serve(fd, edge, &mut buf);
            served += responses;
            if closed.is_none() && !edge {
                changes.push(enable(fd, entry.key, trigger));
            }
        }
        shared.add(t, served);
    }
    Ok(())
}

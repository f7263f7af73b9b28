//! The Winsock document's multi-threaded TCP server, as a model to copy: 16 threads share
//! one port whose concurrency (the CPU count) bounds how many run at once.
//!
//! - Per-connection state is a [`ContextPort`] context: no `unsafe`, no global map.
//! - Connections are `ONESHOT | LEVEL`, so one thread at a time owns each: it reads a chunk,
//!   echoes it with non-blocking writes (what the socket does not take waits for an OUT
//!   entry), and re-arms the connection through its *next* `process` call.
//! - The listener is `ONESHOT | LEVEL` too: one thread accepts until `WouldBlock`, then
//!   re-arms it; after an accept error (EMFILE) it stays disarmed until a connection closes
//!   or a quiet second passes, so it cannot spin. A failed registration costs one
//!   connection, never the server.
//! - Shutdown: after the last expected client the listener is removed; whoever dequeues the
//!   last REMOVE entry posts the exit entry, and each thread applies its pending changes,
//!   posts the exit entry again for the next thread, and leaves.
//!
//! `main.rs` beside this file runs it against a pool of clients and prints a summary
//! (flags: `--threads N --clients N --messages N --backend auto|epoll|io_uring`). The C
//! sample's defects, and what this does instead: `docs/seed-defects.md`.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use socknotify::{CompletionEntry, ContextPort, Delivery};
use socknotify::{Events, Operation, Registration, Trigger};

// Keys of our own, outside the range of context keys (`socknotify::is_context_key`).
pub(crate) const EXIT: usize = usize::MAX;
pub(crate) const LISTENER: usize = 0;
pub(crate) const ONESHOT_LEVEL: Trigger = Trigger::ONESHOT.union(Trigger::LEVEL);
pub(crate) const PAYLOAD: [u8; 4] = 0xdead_beef_u32.to_le_bytes();

/// One connection: its socket, and the echo the socket has not taken yet.
pub(crate) struct Conn {
    pub(crate) stream: TcpStream,
    pub(crate) unsent: Mutex<Vec<u8>>,
}

#[derive(Default)]
pub(crate) struct Counts {
    pub(crate) accepted: AtomicUsize,
    pub(crate) removed: AtomicUsize,
    pub(crate) echoed: AtomicUsize,
    pub(crate) rearms: AtomicUsize,
    pub(crate) errors: AtomicUsize,
    pub(crate) ended: AtomicUsize, // registrations ended: the connections and the listener
    pub(crate) paused: AtomicBool, // the listener is disarmed; whoever clears this re-arms it
}

pub(crate) struct Server {
    pub(crate) conns: ContextPort<Conn>,
    pub(crate) listener: TcpListener,
    pub(crate) clients: usize,
    pub(crate) n: Counts,
}

impl Server {
    /// One server thread; true if it left through the exit entry.
    pub(crate) fn serve(&self) -> bool {
        let (port, mut changes) = (self.conns.port(), Vec::new());
        let (mut entries, mut buf) = ([CompletionEntry::default(); 8], [0; 4096]);
        loop {
            let timeout = Some(Duration::from_secs(1));
            let n = match port.process(&mut changes, &mut entries, timeout) {
                Ok(n) => n,
                Err(e) => return self.error(format_args!("process: {e}")),
            };
            self.check(&mut changes);
            if n == 0 {
                self.resume_listener(&mut changes); // a quiet second
            }
            let mut exit = false;
            for entry in &entries[..n] {
                match self.conns.entry(entry) {
                    Delivery::Event { key, context, .. } => {
                        self.ready(key, &context, &mut buf, &mut changes)
                    }
                    // A connection's last entry: dropping its context closes it.
                    Delivery::Removed { .. } => {
                        self.n.removed.fetch_add(1, SeqCst);
                        self.resume_listener(&mut changes);
                        self.end();
                    }
                    Delivery::Other(e) if e.key == EXIT => exit = true,
                    Delivery::Other(e) if e.key == LISTENER && e.events().is_remove() => self.end(),
                    Delivery::Other(e) if e.key == LISTENER => self.accept(&mut changes),
                    Delivery::Other(e) | Delivery::Stale(e) => {
                        self.error(format_args!("unexpected entry {e:?}"));
                    }
                }
            }
            if exit {
                // Apply what is pending, then wake the next thread.
                let applied = port.process(&mut changes, &mut [], Some(Duration::ZERO));
                self.check(&mut changes);
                return applied.is_ok() && port.post(CompletionEntry::new(EXIT, 0, 0)).is_ok();
            }
        }
    }

    /// Empties `changes`, dealing with those that failed; the server goes on.
    fn check(&self, changes: &mut Vec<Registration>) {
        let failed: Vec<_> = changes.drain(..).filter(|r| r.result().is_err()).collect();
        for r in failed {
            self.error(format_args!("{r:?}"));
            match (r.operation(), r.key()) {
                // The listener stays disarmed: the next quiet second re-arms it.
                (_, LISTENER) => self.n.paused.store(true, SeqCst),
                // A failed re-arm leaves the connection registered and disarmed: remove it.
                (Some(Operation::Enable), key) => {
                    if let Some(conn) = self.conns.get(key) {
                        changes.push(Registration::remove(&conn.stream).with_key(key));
                    }
                }
                // A failed REMOVE: no REMOVE entry will come, so let the context go now.
                (_, key) => {
                    if self.conns.take(key).is_some() {
                        self.end();
                    }
                }
            }
        }
    }

    fn accept(&self, changes: &mut Vec<Registration>) {
        loop {
            let stream = match self.listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::ConnectionAborted | ErrorKind::Interrupted
                    ) =>
                {
                    continue
                }
                Err(e) => {
                    // EMFILE and the like: re-armed now, the listener would report the same
                    // pending connection at once, for ever. Wait for a descriptor to free.
                    self.error(format_args!("accept: {e}; pausing the listener"));
                    return self.n.paused.store(true, SeqCst);
                }
            };
            self.n.accepted.fetch_add(1, SeqCst);
            let unsent = Mutex::new(Vec::new());
            let conn = Arc::new(Conn { stream, unsent });
            let (filter, conns) = (Events::IN | Events::HANGUP, &self.conns);
            let registered = conn.stream.set_nonblocking(true).and_then(|()| {
                Ok(conns.register(&conn.stream, conn.clone(), filter, ONESHOT_LEVEL)?)
            });
            if let Err(e) = registered {
                self.error(format_args!("registering a connection: {e}"));
                self.end(); // dropping `conn` closes it
            }
        }
        changes.push(self.listener_change());
    }

    /// Re-arms the listener, or removes it once every expected client has come.
    fn listener_change(&self) -> Registration {
        if self.n.accepted.load(SeqCst) < self.clients {
            Registration::enable(&self.listener, LISTENER, Events::IN, ONESHOT_LEVEL)
        } else {
            Registration::remove(&self.listener).with_key(LISTENER)
        }
    }

    fn resume_listener(&self, changes: &mut Vec<Registration>) {
        if self.n.paused.swap(false, SeqCst) {
            changes.push(self.listener_change());
        }
    }

    /// An entry for a connection: read one chunk, echo what the socket takes, re-arm.
    fn ready(&self, key: usize, conn: &Conn, buf: &mut [u8], changes: &mut Vec<Registration>) {
        let mut unsent = conn.unsent.lock().unwrap_or_else(|e| e.into_inner());
        let later =
            |e: &io::Error| matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted);
        let (mut eof, mut result) = (false, Ok(()));
        match (&conn.stream).read(buf) {
            Ok(0) => eof = true,
            Ok(n) => unsent.extend_from_slice(&buf[..n]),
            Err(e) if later(&e) => {}
            Err(e) => result = Err(e),
        }
        while result.is_ok() && !unsent.is_empty() {
            match (&conn.stream).write(&unsent) {
                Ok(0) => result = Err(ErrorKind::WriteZero.into()),
                Ok(n) => {
                    unsent.drain(..n);
                    self.n.echoed.fetch_add(n, SeqCst);
                }
                Err(e) if later(&e) => break,
                Err(e) => result = Err(e),
            }
        }
        if let Err(e) = &result {
            self.error(format_args!("connection {key:#x}: {e}"));
        }
        let rearm = match (eof, unsent.is_empty()) {
            _ if result.is_err() => None,
            (true, true) => None,               // everything echoed: done
            (true, false) => Some(Events::OUT), // only the echo is left
            (false, true) => Some(Events::IN | Events::HANGUP),
            (false, false) => Some(Events::IN | Events::HANGUP | Events::OUT),
        };
        changes.push(match rearm {
            Some(events) => {
                self.n.rearms.fetch_add(1, SeqCst);
                Registration::enable(&conn.stream, key, events, ONESHOT_LEVEL)
            }
            None => Registration::remove(&conn.stream).with_key(key),
        });
    }

    /// A registration ended; after the last one, the exit entry goes round.
    fn end(&self) {
        if self.n.ended.fetch_add(1, SeqCst) == self.clients {
            if let Err(e) = self.conns.port().post(CompletionEntry::new(EXIT, 0, 0)) {
                self.error(format_args!("posting the exit entry: {e}"));
            }
        }
    }

    /// Reports an error and counts it; false, for a thread that has to leave.
    fn error(&self, what: std::fmt::Arguments<'_>) -> bool {
        eprintln!("multithreaded_tcp_server: {what}");
        self.n.errors.fetch_add(1, SeqCst);
        false
    }
}

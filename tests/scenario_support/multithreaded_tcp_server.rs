//! The seed's "multithreaded server" (`MultiThreadedTcpServer`), corrected.
//!
//! One port, many server threads (over-subscribed on purpose: the port's concurrency lets
//! only so many run at once). The listener is registered `PERSISTENT | LEVEL` for `IN`;
//! each accepted connection `ONESHOT | LEVEL` for `IN | HANGUP`. A thread that handled a
//! connection's entry re-arms it through the registration batch of its *next* `process`
//! call: one kernel transition per batch. A connection ends when a read returns 0 (or
//! fails): the thread queues its REMOVE, and whoever dequeues the REMOVE entry frees it.
//! The thread that frees the last connection posts an exit entry; every thread that takes
//! it posts it again before leaving, so all of them leave.
//!
//! Clients run on a bounded pool of threads, each opening its share of the connections,
//! writing the payloads round-robin, then shutting each connection down.
//!
//! The checked variant of `examples/multithreaded_tcp_server.rs`, run by
//! `tests/scenarios.rs`: the same scenario with the counters and checks the tests assert on
//! (every byte per connection, one REMOVE entry per registration and nothing after it, the
//! concurrency bound measured from outside the port). The example is the model to read; this
//! is the apparatus.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use socknotify::{
    is_port_closed, Backend, CompletionEntry, CompletionPort, Events, Operation, Registration,
    Trigger,
};

use crate::common::{self, Context, PayloadStream};

/// The key of the posted exit entry (the seed's `SERVER_EXIT_KEY`, `(ULONG_PTR)-1`).
pub const EXIT_KEY: usize = usize::MAX;
/// The listener's completion key. Connections get keys counting up from 0.
pub const LISTENER_KEY: usize = usize::MAX - 1;

/// Descriptors kept free for everything but the connections.
const SPARE_DESCRIPTORS: u64 = 64;
/// Problems kept for the report; past that only the count grows.
const MAX_PROBLEMS: usize = 16;

/// What to run.
#[derive(Clone, Debug)]
pub struct Config {
    /// Server threads (the seed's `SERVER_THREAD_COUNT`, 16).
    pub server_threads: usize,
    /// Client connections (the seed's `CLIENT_THREAD_COUNT`, 100).
    pub clients: usize,
    /// Payloads per connection (the seed's `CLIENT_LOOP_COUNT`, 10).
    pub messages: u32,
    /// Client threads; 0 picks one per client up to 100 clients (the document's shape),
    /// and a pool of 32 beyond.
    pub client_threads: usize,
    /// Entries per `process` call (the seed's `SERVER_DEQUEUE_COUNT` was 3).
    pub batch: usize,
    /// The listen backlog (the seed asked for 0; std's `TcpListener` asks for 128).
    pub backlog: i32,
    /// The whole scenario must finish within this.
    pub timeout: Duration,
    /// Print each server thread's exit.
    pub verbose: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            server_threads: 16,
            clients: 100,
            messages: 10,
            client_threads: 0,
            batch: 8,
            backlog: 4096,
            timeout: Duration::from_secs(60),
            verbose: false,
        }
    }
}

impl Config {
    /// The number of client threads [`run`] uses.
    #[must_use]
    pub fn client_threads(&self) -> usize {
        let threads = match self.client_threads {
            0 if self.clients <= 100 => self.clients,
            0 => 32,
            n => n,
        };
        threads.min(self.clients).max(1)
    }
}

/// What the run did. [`Report::problems`] says whether it matched what was sent.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// The port's backend.
    pub backend: Backend,
    /// The port's concurrency.
    pub concurrency: usize,
    /// Server threads started.
    pub server_threads: usize,
    /// Client threads started.
    pub client_threads: usize,
    /// Connections the clients made.
    pub connected: usize,
    /// Connections the server accepted.
    pub accepted: usize,
    /// REMOVE entries dequeued, one per connection.
    pub removes: usize,
    /// Bytes read over all connections.
    pub bytes: u64,
    /// Payloads read: each connection's bytes / 4, summed.
    pub payloads: u64,
    /// Connections whose bytes were exactly `messages` intact payloads.
    pub intact: usize,
    /// Entries dequeued in all (listener, connection, REMOVE and exit entries).
    pub entries: u64,
    /// Listener entries, and of those, how many found no connection left to accept
    /// (another thread had taken it: a PERSISTENT LEVEL listener may wake several).
    pub listener_entries: u64,
    /// Listener entries whose accept found nothing.
    pub empty_accepts: u64,
    /// One-shot re-arms sent through the next `process` call.
    pub rearms: u64,
    /// The most server threads released at once (measured from outside the port).
    pub max_released: usize,
    /// Server threads that left through the posted exit entry.
    pub exits: usize,
    /// Connections still in the table at the end (none when every REMOVE arrived).
    pub leaked: usize,
    /// The soft `RLIMIT_NOFILE` before and after, if it had to be raised.
    pub nofile_raised: Option<(u64, u64)>,
    /// From the first server thread's start to the last one's exit.
    pub elapsed: Duration,
    /// Errors and timeouts, the first few of them.
    pub errors: Vec<String>,
    /// Errors in all.
    pub error_count: usize,
}

impl Report {
    /// Everything that differs from what `config` sent, in words; empty when all is well.
    #[must_use]
    pub fn problems(&self, config: &Config) -> Vec<String> {
        let clients = config.clients;
        let payloads = clients as u64 * u64::from(config.messages);
        let mut problems = Vec::new();
        let mut expect = |what: &str, got: u64, want: u64| {
            if got != want {
                problems.push(format!("{what}: {got}, expected {want}"));
            }
        };
        expect("connections made", self.connected as u64, clients as u64);
        expect("connections accepted", self.accepted as u64, clients as u64);
        expect("REMOVE entries", self.removes as u64, clients as u64);
        expect("bytes", self.bytes, payloads * 4);
        expect("payloads", self.payloads, payloads);
        expect("intact connections", self.intact as u64, clients as u64);
        expect(
            "threads that left through the exit entry",
            self.exits as u64,
            self.server_threads as u64,
        );
        expect("connections never removed", self.leaked as u64, 0);
        if self.max_released > self.concurrency {
            problems.push(format!(
                "{} threads were released at once, more than the concurrency {}",
                self.max_released, self.concurrency
            ));
        }
        if clients > 0 && self.max_released == 0 {
            problems.push("no server thread was ever released".into());
        }
        problems.extend(self.errors.iter().cloned());
        if self.error_count > self.errors.len() {
            problems.push(format!(
                "... and {} more errors",
                self.error_count - self.errors.len()
            ));
        }
        problems
    }
}

/// One accepted connection: the completion key's referent. Freed when its REMOVE entry
/// is dequeued, never before.
#[derive(Debug)]
struct Conn {
    stream: TcpStream,
    stream_check: Mutex<PayloadStream>,
}

/// What the server threads share.
struct Server<'a> {
    port: &'a CompletionPort,
    listener: TcpListener,
    clients: usize,
    messages: u64,
    conns: Mutex<HashMap<usize, Arc<Conn>>>,
    next_key: AtomicUsize,
    /// Connections whose life ended (REMOVE entry, or cleanup after a failed registration).
    finished: AtomicUsize,
    released: AtomicUsize,
    max_released: AtomicUsize,
    accepted: AtomicUsize,
    removes: AtomicUsize,
    intact: AtomicUsize,
    bytes: AtomicU64,
    payloads: AtomicU64,
    entries: AtomicU64,
    listener_entries: AtomicU64,
    empty_accepts: AtomicU64,
    rearms: AtomicU64,
    errors: Mutex<(Vec<String>, usize)>,
}

/// How a server thread ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Exit {
    /// It took the exit entry (and posted it again).
    Entry,
    /// The port was closed under it (the last-resort shutdown after a timeout).
    Closed,
    /// `process` failed.
    Failed,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The data stays consistent if a holder panicked: every update is a single step.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Server<'_> {
    fn error(&self, message: String) {
        let mut errors = lock(&self.errors);
        if errors.0.len() < MAX_PROBLEMS {
            errors.0.push(message);
        }
        errors.1 += 1;
    }

    /// Posts the exit entry. If the port is closed, every thread is leaving anyway.
    fn post_exit(&self) {
        if let Err(e) = self.port.post(CompletionEntry::new(EXIT_KEY, 0, 0)) {
            if !is_port_closed(&e) {
                self.error(format!("posting the exit entry failed: {e}"));
            }
        }
    }

    /// A connection's life ended; the last one tells every thread to leave.
    fn finish(&self, key: usize) {
        let Some(conn) = lock(&self.conns).remove(&key) else {
            self.error(format!("connection {key} ended twice"));
            return;
        };
        let check = lock(&conn.stream_check).clone();
        self.bytes.fetch_add(check.bytes(), Ordering::Relaxed);
        self.payloads.fetch_add(check.payloads(), Ordering::Relaxed);
        if check.is_exactly(self.messages) {
            self.intact.fetch_add(1, Ordering::Relaxed);
        }
        // `conn` is dropped here: the socket closes after its last entry (rule 4).
        if self.finished.fetch_add(1, Ordering::AcqRel) + 1 == self.clients {
            self.post_exit();
        }
    }

    /// The seed's `ServerThreadRoutine`, corrected.
    fn serve(&self, config: &Config) -> Exit {
        // Re-arms and first registrations for the next `process` call, with their keys.
        let mut changes: Vec<Registration> = Vec::new();
        let mut keys: Vec<usize> = Vec::new();
        let mut entries = vec![CompletionEntry::default(); config.batch.max(1)];
        let mut buf = [0u8; 512];
        let mut released = false;
        loop {
            if released {
                // Released until it calls again: measured right before the call.
                self.released.fetch_sub(1, Ordering::SeqCst);
                released = false;
            }
            let result = self
                .port
                .process(&mut changes, &mut entries, Some(common::TICK));
            let n = match result {
                Ok(n) => n,
                Err(e) if is_port_closed(&e) => return Exit::Closed,
                Err(e) => {
                    self.error(format!("process failed: {e}"));
                    self.post_exit();
                    return Exit::Failed;
                }
            };
            if n > 0 {
                let now = self.released.fetch_add(1, Ordering::SeqCst) + 1;
                self.max_released.fetch_max(now, Ordering::SeqCst);
                released = true;
            }
            self.check_changes(&mut changes, &mut keys);
            self.entries.fetch_add(n as u64, Ordering::Relaxed);
            let mut exit = false;
            for entry in &entries[..n] {
                match entry.key {
                    // Finish the batch first: the seed left mid-batch, dropping the rest.
                    EXIT_KEY => exit = true,
                    LISTENER_KEY => self.accept(&mut changes, &mut keys),
                    key => self.connection(key, entry.events(), &mut buf, &mut changes, &mut keys),
                }
            }
            if exit {
                if released {
                    self.released.fetch_sub(1, Ordering::SeqCst);
                }
                if !changes.is_empty() {
                    self.error(format!(
                        "{} registration changes were left when the exit entry came",
                        changes.len()
                    ));
                }
                // Pass it on: one entry wakes one thread.
                self.post_exit();
                return Exit::Entry;
            }
        }
    }

    /// Reads the per-registration results of the last `process` call. A connection whose
    /// ENABLE failed is disarmed, so only this thread can reach it: it tries REMOVE (whose
    /// entry will end it), and ends it here if that fails too. Either way it counts, so a
    /// failure cannot hang the shutdown (the seed's count never reached its goal then).
    fn check_changes(&self, changes: &mut Vec<Registration>, keys: &mut Vec<usize>) {
        for (change, key) in changes.drain(..).zip(keys.drain(..)) {
            let Err(e) = change.result() else { continue };
            self.error(format!(
                "{:?} of connection {key} failed: {e}",
                change.operation()
            ));
            if change.operation() == Some(Operation::Enable) {
                let conn = lock(&self.conns).get(&key).cloned();
                if let Some(conn) = conn {
                    let mut remove = [Registration::remove(&conn.stream)];
                    let removed = self
                        .port
                        .process(&mut remove, &mut [], Some(Duration::ZERO))
                        .and_then(|_| remove[0].result());
                    if removed.is_ok() {
                        continue;
                    }
                }
            }
            self.finish(key);
        }
    }

    /// Accepts until `WouldBlock`: a PERSISTENT LEVEL listener entry may reach several
    /// threads at once, so another thread may have taken the connection already.
    fn accept(&self, changes: &mut Vec<Registration>, keys: &mut Vec<usize>) {
        self.listener_entries.fetch_add(1, Ordering::Relaxed);
        let mut accepted = 0;
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if let Err(e) = stream.set_nonblocking(true) {
                        self.error(format!("making an accepted connection non-blocking: {e}"));
                        continue;
                    }
                    let key = self.next_key.fetch_add(1, Ordering::Relaxed);
                    let conn = Arc::new(Conn {
                        stream,
                        stream_check: Mutex::new(PayloadStream::default()),
                    });
                    // Registered by the next `process` call, with the re-arms.
                    changes.push(Registration::enable(
                        &conn.stream,
                        key,
                        Events::IN | Events::HANGUP,
                        Trigger::ONESHOT | Trigger::LEVEL,
                    ));
                    keys.push(key);
                    lock(&self.conns).insert(key, conn);
                    accepted += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                    ) => {}
                Err(e) => {
                    // Out of descriptors, typically: the level-triggered listener would
                    // only report it again, so stop the run.
                    self.error(format!("accept failed: {e}"));
                    self.post_exit();
                    break;
                }
            }
        }
        if accepted == 0 {
            self.empty_accepts.fetch_add(1, Ordering::Relaxed);
        }
        self.accepted.fetch_add(accepted, Ordering::Relaxed);
    }

    /// One entry for connection `key`: REMOVE frees it; otherwise one chunk is read (one
    /// chunk per entry, as the document recommends for ONESHOT | LEVEL), then the
    /// connection is re-armed, or removed at the end of its stream.
    fn connection(
        &self,
        key: usize,
        events: Events,
        buf: &mut [u8],
        changes: &mut Vec<Registration>,
        keys: &mut Vec<usize>,
    ) {
        if events.is_remove() {
            self.removes.fetch_add(1, Ordering::Relaxed);
            self.finish(key);
            return;
        }
        let Some(conn) = lock(&self.conns).get(&key).cloned() else {
            self.error(format!(
                "an entry for unknown connection {key} ({events:?})"
            ));
            return;
        };
        let remove = match (&conn.stream).read(buf) {
            // The end of the stream: everything the client sent has been read.
            Ok(0) => true,
            Ok(n) => {
                lock(&conn.stream_check).feed(&buf[..n]);
                false
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                false
            }
            Err(e) => {
                self.error(format!("reading connection {key} ({events:?}): {e}"));
                true
            }
        };
        if remove {
            changes.push(Registration::remove(&conn.stream));
        } else {
            changes.push(Registration::enable(
                &conn.stream,
                key,
                Events::IN | Events::HANGUP,
                Trigger::ONESHOT | Trigger::LEVEL,
            ));
            self.rearms.fetch_add(1, Ordering::Relaxed);
        }
        keys.push(key);
    }
}

/// Sends `()` when dropped, so that the main thread learns of a server thread's end even
/// if it panicked.
struct Done(mpsc::Sender<()>);

impl Drop for Done {
    fn drop(&mut self) {
        // The receiver may have given up waiting; nothing to tell then.
        let _ = self.0.send(());
    }
}

/// Runs the scenario on `port`.
///
/// # Errors
/// Failures to set the scenario up (descriptor limit, listener, registering the listener,
/// starting threads). Failures while it runs are in [`Report::errors`].
pub fn run(port: &CompletionPort, config: &Config) -> io::Result<Report> {
    if config.server_threads == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "at least one server thread is needed",
        ));
    }
    let client_threads = config.client_threads();
    // Both ends of every connection live in this process, all open at once at worst.
    let needed = 2 * config.clients as u64 + SPARE_DESCRIPTORS;
    let nofile_raised = raise_nofile_limit(needed)?;

    let listener = common::loopback_listener(config.backlog)?;
    listener
        .set_nonblocking(true)
        .context("making the listener non-blocking")?;
    let addr = listener
        .local_addr()
        .context("reading the listener's address")?;
    let mut change = [Registration::enable(
        &listener,
        LISTENER_KEY,
        Events::IN,
        Trigger::PERSISTENT | Trigger::LEVEL,
    )];
    port.process(&mut change, &mut [], Some(Duration::ZERO))
        .context("registering the listener")?;
    // The seed checked only the call's result, not the registration's.
    change[0].result().context("registering the listener")?;

    let server = Server {
        port,
        listener,
        clients: config.clients,
        messages: u64::from(config.messages),
        conns: Mutex::new(HashMap::new()),
        next_key: AtomicUsize::new(0),
        finished: AtomicUsize::new(0),
        released: AtomicUsize::new(0),
        max_released: AtomicUsize::new(0),
        accepted: AtomicUsize::new(0),
        removes: AtomicUsize::new(0),
        intact: AtomicUsize::new(0),
        bytes: AtomicU64::new(0),
        payloads: AtomicU64::new(0),
        entries: AtomicU64::new(0),
        listener_entries: AtomicU64::new(0),
        empty_accepts: AtomicU64::new(0),
        rearms: AtomicU64::new(0),
        errors: Mutex::new((Vec::new(), 0)),
    };
    let start = Instant::now();
    let deadline = start + config.timeout;
    let mut report = Report {
        backend: port.backend(),
        concurrency: port.concurrency(),
        client_threads,
        nofile_raised,
        ..Report::default()
    };

    thread::scope(|scope| {
        let (done_tx, done_rx) = mpsc::channel();
        let mut servers = Vec::new();
        // The seed's loop never advanced its counter; this one starts exactly N threads.
        for i in 0..config.server_threads {
            let done = Done(done_tx.clone());
            let server = &server;
            let spawned = thread::Builder::new()
                .name(format!("server-{i}"))
                .spawn_scoped(scope, move || {
                    let _done = done;
                    let exit = server.serve(config);
                    if config.verbose {
                        println!("server thread {i} exited ({exit:?})");
                    }
                    exit
                });
            match spawned {
                Ok(handle) => servers.push(handle),
                Err(e) => {
                    server.error(format!("starting server thread {i}: {e}"));
                    server.post_exit();
                    break;
                }
            }
        }
        drop(done_tx);
        report.server_threads = servers.len();
        if config.clients == 0 {
            server.post_exit();
        }

        let mut clients = Vec::new();
        for t in 0..client_threads {
            // Connections t, t + T, t + 2T, ...
            let connections = (config.clients - t).div_ceil(client_threads);
            let messages = config.messages;
            let spawned = thread::Builder::new()
                .name(format!("client-{t}"))
                .spawn_scoped(scope, move || client(addr, connections, messages, deadline));
            match spawned {
                Ok(handle) => clients.push(handle),
                Err(e) => {
                    server.error(format!("starting client thread {t}: {e}"));
                    server.post_exit();
                    break;
                }
            }
        }
        for (t, handle) in clients.into_iter().enumerate() {
            match handle.join() {
                Ok(Ok(made)) => report.connected += made,
                Ok(Err((made, e))) => {
                    report.connected += made;
                    server.error(format!("client thread {t}: {e}"));
                    // The server would wait for connections that never come.
                    server.post_exit();
                }
                Err(_) => {
                    server.error(format!("client thread {t} panicked"));
                    server.post_exit();
                }
            }
        }

        // Every server thread leaves through the exit entry; past the deadline, closing the
        // port makes the stragglers leave with an error.
        for _ in 0..report.server_threads {
            let left = deadline.saturating_duration_since(Instant::now());
            if done_rx.recv_timeout(left).is_err() {
                server.error(format!(
                    "the server did not finish within {:?} ({} of {} connections ended)",
                    config.timeout,
                    server.finished.load(Ordering::Relaxed),
                    config.clients
                ));
                port.close();
                break;
            }
        }
        for (i, handle) in servers.into_iter().enumerate() {
            match handle.join() {
                Ok(Exit::Entry) => report.exits += 1,
                Ok(_) => {}
                Err(_) => server.error(format!("server thread {i} panicked")),
            }
        }
    });
    report.elapsed = start.elapsed();

    report.accepted = server.accepted.load(Ordering::Relaxed);
    report.removes = server.removes.load(Ordering::Relaxed);
    report.bytes = server.bytes.load(Ordering::Relaxed);
    report.payloads = server.payloads.load(Ordering::Relaxed);
    report.intact = server.intact.load(Ordering::Relaxed);
    report.entries = server.entries.load(Ordering::Relaxed);
    report.listener_entries = server.listener_entries.load(Ordering::Relaxed);
    report.empty_accepts = server.empty_accepts.load(Ordering::Relaxed);
    report.rearms = server.rearms.load(Ordering::Relaxed);
    report.max_released = server.max_released.load(Ordering::SeqCst);
    report.leaked = lock(&server.conns).len();
    let (errors, count) = std::mem::take(&mut *lock(&server.errors));
    report.errors = errors;
    report.error_count = count;
    Ok(report)
}

/// One client thread: opens `connections` connections, writes `messages` payloads on each
/// (round-robin, so that the server sees many connections at once), then shuts each down
/// and closes it. Returns how many connections it made, with the error if it failed.
fn client(
    addr: SocketAddr,
    connections: usize,
    messages: u32,
    deadline: Instant,
) -> Result<usize, (usize, io::Error)> {
    let mut streams = Vec::with_capacity(connections);
    for i in 0..connections {
        let stream = common::connect(addr, deadline).map_err(|e| (streams.len(), e))?;
        stream
            .set_write_timeout(Some(common::time_left(deadline)))
            .context(format_args!("setting connection {i}'s write timeout"))
            .map_err(|e| (streams.len() + 1, e))?;
        streams.push(stream);
    }
    let made = streams.len();
    for m in 0..messages {
        for (i, stream) in streams.iter_mut().enumerate() {
            stream
                .write_all(&common::PAYLOAD_BYTES)
                .context(format_args!("sending payload {m} on connection {i}"))
                .map_err(|e| (made, e))?;
        }
    }
    for (i, stream) in streams.iter().enumerate() {
        stream
            .shutdown(Shutdown::Write)
            .context(format_args!("shutting connection {i} down"))
            .map_err(|e| (made, e))?;
    }
    Ok(made)
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit when fewer than `needed` descriptors
/// are allowed. Returns the soft limit before and after when it changed it.
///
/// # Errors
/// When even the hard limit is too low, or the kernel refuses.
#[cfg(unix)]
pub fn raise_nofile_limit(needed: u64) -> io::Result<Option<(u64, u64)>> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a live, writable `rlimit` for the duration of the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error()).context("reading RLIMIT_NOFILE");
    }
    if limit.rlim_cur >= needed {
        return Ok(None);
    }
    if limit.rlim_max != libc::RLIM_INFINITY && limit.rlim_max < needed {
        return Err(io::Error::other(format!(
            "this run needs about {needed} descriptors but RLIMIT_NOFILE's hard limit is {}; \
             use fewer clients or raise the hard limit",
            limit.rlim_max
        )));
    }
    let before = limit.rlim_cur;
    limit.rlim_cur = if limit.rlim_max == libc::RLIM_INFINITY {
        needed
    } else {
        limit.rlim_max
    };
    // SAFETY: `limit` is a valid `rlimit` whose soft limit does not exceed its hard limit.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Err(io::Error::last_os_error()).context(format_args!(
            "raising the soft RLIMIT_NOFILE from {before} to {}",
            limit.rlim_cur
        ));
    }
    Ok(Some((before, limit.rlim_cur)))
}

/// Windows has no descriptor limit to raise (a process may open millions of handles).
///
/// # Errors
/// Never.
#[cfg(windows)]
pub fn raise_nofile_limit(_needed: u64) -> io::Result<Option<(u64, u64)>> {
    Ok(None)
}

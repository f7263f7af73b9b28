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
//! Flags: `--threads N --clients N --messages N --backend auto|epoll|io_uring`. The C
//! sample's defects, and what this does instead: `docs/seed-defects.md`.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use socknotify::{Backend, CompletionEntry, CompletionPort, ContextPort, Delivery};
use socknotify::{Events, Operation, Registration, Trigger};

// Keys of our own, outside the range of context keys (`socknotify::is_context_key`).
const EXIT: usize = usize::MAX;
const LISTENER: usize = 0;
const ONESHOT_LEVEL: Trigger = Trigger::ONESHOT.union(Trigger::LEVEL);
const PAYLOAD: [u8; 4] = 0xdead_beef_u32.to_le_bytes();

/// One connection: its socket, and the echo the socket has not taken yet.
struct Conn {
    stream: TcpStream,
    unsent: Mutex<Vec<u8>>,
}

#[derive(Default)]
struct Counts {
    accepted: AtomicUsize,
    removed: AtomicUsize,
    echoed: AtomicUsize,
    rearms: AtomicUsize,
    errors: AtomicUsize,
    ended: AtomicUsize, // registrations ended: the connections and the listener
    paused: AtomicBool, // the listener is disarmed; whoever clears this re-arms it
}

struct Server {
    conns: ContextPort<Conn>,
    listener: TcpListener,
    clients: usize,
    n: Counts,
}

impl Server {
    /// One server thread; true if it left through the exit entry.
    fn serve(&self) -> bool {
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

/// A client thread: `turns` connections one after the other, each sending `messages`
/// payloads and checking the echo. Returns how many got it all back.
fn client(addr: SocketAddr, turns: usize, messages: usize) -> usize {
    let echo = || -> io::Result<bool> {
        let mut stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        for _ in 0..messages {
            stream.write_all(&PAYLOAD)?;
        }
        stream.shutdown(Shutdown::Write)?;
        let mut echo = Vec::new();
        stream.read_to_end(&mut echo)?;
        Ok(echo.len() == 4 * messages && echo.chunks(4).all(|p| p == PAYLOAD))
    };
    let report = |e: &io::Error| eprintln!("multithreaded_tcp_server: client: {e}");
    (0..turns)
        .filter(|_| echo().inspect_err(report).unwrap_or(false))
        .count()
}

/// Serves `clients` clients of `messages` payloads each with `threads` threads on `port`,
/// prints a summary, and says whether everything came back.
pub fn run(port: CompletionPort, [threads, clients, messages]: [usize; 3]) -> io::Result<bool> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let listen = Registration::enable(&listener, LISTENER, Events::IN, ONESHOT_LEVEL);
    let mut first = vec![listen];
    if clients == 0 {
        first.push(Registration::remove(&listener)); // nobody to wait for
    }
    port.process(&mut first, &mut [], None)?;
    first.iter().try_for_each(Registration::result)?;
    let (b, c) = (port.backend(), port.concurrency());
    println!("  port          backend {b:?}, concurrency {c} (the CPU count)");
    let (conns, n, start) = (ContextPort::new(port), Counts::default(), Instant::now());
    let server = Server {
        conns,
        listener,
        clients,
        n,
    };
    let (ok, exits) = std::thread::scope(|scope| {
        let servers: Vec<_> = (0..threads)
            .map(|_| scope.spawn(|| server.serve()))
            .collect();
        let pool = clients.clamp(1, 100); // past 100 clients, they take turns
        let turns = move |t: usize| clients.saturating_sub(t).div_ceil(pool);
        let spawn = |t| scope.spawn(move || client(addr, turns(t), messages));
        let pool: Vec<_> = (0..pool).map(spawn).collect();
        let ok: usize = pool.into_iter().map(|c| c.join().unwrap_or(0)).sum();
        if ok < clients {
            server.conns.close(); // the server would wait for them: wake every thread
        }
        let exits = servers.into_iter().map(|s| s.join().unwrap_or(false));
        (ok, exits.filter(|&through_exit| through_exit).count())
    });
    let registrations = server.conns.port().registrations();
    let left = server.conns.close().len();
    let n = &server.n;
    let [accepted, removed, echoed, rearms, errors] =
        [&n.accepted, &n.removed, &n.echoed, &n.rearms, &n.errors].map(|a| a.load(SeqCst));
    let bytes = 4 * clients * messages;
    println!("  connections   {accepted} accepted, {removed} REMOVE entries, {left} contexts left");
    println!("  bytes         {echoed} of {bytes} echoed, {ok} of {clients} clients got them all");
    println!("  re-arms       {rearms} (one-shot, through the next process call)");
    println!("  errors        {errors}");
    println!("  shutdown      {exits} of {threads} server threads left through the exit entry");
    println!("  wall time     {:.1?}", start.elapsed());
    let served = [accepted, removed, ok] == [clients; 3] && echoed == bytes;
    let ok = served && left + registrations + errors == 0 && exits == threads;
    println!("  result        {}", if ok { "OK" } else { "FAILED" });
    Ok(ok)
}

fn main() -> ExitCode {
    let ([t, c, m], backend) = match parse(std::env::args().skip(1)) {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("multithreaded_tcp_server: {e}");
            eprintln!("flags: --threads N --clients N --messages N --backend auto|epoll|io_uring");
            return ExitCode::from(2);
        }
    };
    println!("multithreaded_tcp_server: {c} clients x {m} payloads of 4 bytes, {t} server threads");
    let port = CompletionPort::builder().backend(backend).build();
    match port.and_then(|port| run(port, [t, c, m])) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("multithreaded_tcp_server: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The flags: `--threads N --clients N --messages N --backend auto|epoll|io_uring`.
fn parse(args: impl Iterator<Item = String>) -> Result<([usize; 3], Backend), String> {
    let (args, mut backend) = (args.collect::<Vec<_>>(), Backend::Auto);
    let [mut threads, mut clients, mut messages] = [16, 100, 10];
    for pair in args.chunks(2) {
        let [flag, value] = pair else {
            return Err(format!("{pair:?} needs a value"));
        };
        let number = || {
            value
                .parse()
                .map_err(|_| format!("{flag} {value}: not a number"))
        };
        match (flag.as_str(), value.as_str()) {
            ("--threads", _) => threads = number()?,
            ("--clients", _) => clients = number()?,
            ("--messages", _) => messages = number()?,
            ("--backend", "auto") => backend = Backend::Auto,
            ("--backend", "epoll") => backend = Backend::Epoll,
            ("--backend", "io_uring") => backend = Backend::IoUring,
            _ => return Err(format!("{flag} {value}: unknown")),
        }
    }
    Ok(([threads.max(1), clients, messages], backend))
}

//! The real-client benchmark: an HTTP/1.1 keep-alive server per contender, each answering
//! every request with the same small response, driven by `wrk` over 127.0.0.1.
//!
//! The parent ([`driver`]) starts each server as a child (`socknotify-bench serve ...`),
//! which binds a listener on an ephemeral loopback port, starts its worker threads and
//! prints the port. The parent then brackets one `wrk` run with the child's CPU time
//! (`getrusage`, every thread, user and system) and, when perf works, with a
//! `perf stat -e raw_syscalls:sys_enter -p PID` count, and tells the child to stop. A child
//! also ends by itself when its time is up, whatever the parent does.
//!
//! | server | threads share | re-arm | module |
//! |---|---|---|---|
//! | `epoll-et` (the baseline) | nothing: one epoll per thread, listener `EPOLLEXCLUSIVE` | none (`EPOLLET`, drain) | [`loops`] |
//! | `epoll-oneshot` | one epoll instance | `epoll_ctl(MOD)` per request | [`loops`] |
//! | `socknotify-{epoll,io_uring}-oneshot` | one port | `ENABLE` in the next `process` | [`socknotify`] |
//! | `socknotify-{epoll,io_uring}-edge` | one port | none (persistent edge, drain) | [`socknotify`] |
//! | `mio` | nothing: one `Poll` per thread | none (edge, drain) | [`loops`] |
//! | `polling` | nothing: one `Poller` per thread | `modify` (oneshot) per request | [`loops`] |
//! | `tokio` | its multi-threaded runtime | its own | [`tokio`] |

use std::io::{self, BufRead, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use ::socknotify::{Backend, CompletionPort};

use crate::options::{invalid, Args};
use crate::sys;

pub mod driver;
pub mod loops;
pub mod report;
pub mod socknotify;
pub mod tokio;

/// The subcommand that runs one server.
pub const COMMAND: &str = "serve";

/// The answer to every request.
pub const RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nHello, world!";

/// Room for one read.
const BUFFER: usize = 4096;

/// A server under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Server {
    /// Edge-triggered epoll, one instance per thread: the baseline.
    EpollEdge,
    /// One-shot epoll shared by every thread.
    EpollOneshot,
    SocknotifyEpollOneshot,
    SocknotifyEpollEdge,
    SocknotifyUringOneshot,
    SocknotifyUringEdge,
    Mio,
    Polling,
    Tokio,
}

impl Server {
    pub const ALL: [Server; 9] = [
        Server::EpollEdge,
        Server::EpollOneshot,
        Server::SocknotifyEpollOneshot,
        Server::SocknotifyEpollEdge,
        Server::SocknotifyUringOneshot,
        Server::SocknotifyUringEdge,
        Server::Mio,
        Server::Polling,
        Server::Tokio,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Server::EpollEdge => "epoll-et",
            Server::EpollOneshot => "epoll-oneshot",
            Server::SocknotifyEpollOneshot => "socknotify-epoll-oneshot",
            Server::SocknotifyEpollEdge => "socknotify-epoll-edge",
            Server::SocknotifyUringOneshot => "socknotify-io_uring-oneshot",
            Server::SocknotifyUringEdge => "socknotify-io_uring-edge",
            Server::Mio => "mio",
            Server::Polling => "polling",
            Server::Tokio => "tokio",
        }
    }

    pub fn parse(s: &str) -> io::Result<Server> {
        Server::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| invalid(format!("unknown server {s:?}")))
    }

    /// The socknotify backend, and whether the registrations are persistent edge.
    fn socknotify(self) -> Option<(Backend, bool)> {
        match self {
            Server::SocknotifyEpollOneshot => Some((Backend::Epoll, false)),
            Server::SocknotifyEpollEdge => Some((Backend::Epoll, true)),
            Server::SocknotifyUringOneshot => Some((Backend::IoUring, false)),
            Server::SocknotifyUringEdge => Some((Backend::IoUring, true)),
            _ => None,
        }
    }

    /// Every server that works here, and a note for each one that does not.
    pub fn available() -> (Vec<Server>, Vec<String>) {
        let mut found = Vec::new();
        let mut notes = Vec::new();
        for s in Server::ALL {
            match s.socknotify() {
                Some((b, _)) => match CompletionPort::builder().backend(b).build() {
                    Ok(_) => found.push(s),
                    Err(e) => notes.push(format!("http: {} left out: {e}", s.name())),
                },
                None => found.push(s),
            }
        }
        (found, notes)
    }
}

/// How many complete requests (`\r\n\r\n`-terminated heads; `GET` has no body) `tail`
/// followed by `data` holds; keeps the bytes after the last one in `tail`.
pub fn requests(tail: &mut Vec<u8>, data: &[u8]) -> usize {
    fn complete(bytes: &[u8]) -> (usize, usize) {
        let mut count = 0;
        let mut end = 0;
        let mut i = 0;
        while i + 4 <= bytes.len() {
            if &bytes[i..i + 4] == b"\r\n\r\n" {
                count += 1;
                i += 4;
                end = i;
            } else {
                i += 1;
            }
        }
        (count, end)
    }
    if tail.is_empty() {
        let (count, end) = complete(data);
        tail.extend_from_slice(&data[end..]);
        count
    } else {
        tail.extend_from_slice(data);
        let (count, end) = complete(tail);
        tail.drain(..end);
        count
    }
}

/// `count` responses in one buffer.
pub fn responses(count: usize) -> Vec<u8> {
    RESPONSE.repeat(count)
}

/// One connection: its stream and the start of a request that has not fully arrived.
#[derive(Debug)]
struct Conn {
    stream: TcpStream,
    tail: Vec<u8>,
}

/// Every open connection, by descriptor number. One lock per slot: an event loop that
/// hands a connection to one thread at a time never waits on it.
#[derive(Debug)]
pub struct Table {
    slots: Box<[Mutex<Option<Conn>>]>,
}

/// What serving a connection did.
#[derive(Debug)]
pub struct Served {
    /// Responses written.
    pub responses: u64,
    /// The connection ended (the peer closed, or an error): the caller deregisters it if
    /// its selector needs that, then drops it, which closes it.
    pub closed: Option<TcpStream>,
}

impl Table {
    pub fn new(files: usize) -> Table {
        Table {
            slots: (0..files).map(|_| Mutex::new(None)).collect(),
        }
    }

    /// Stores a new connection; returns its descriptor (its key everywhere).
    pub fn insert(&self, stream: TcpStream) -> io::Result<RawFd> {
        let fd = stream.as_raw_fd();
        let slot = self
            .slots
            .get(fd as usize)
            .ok_or_else(|| io::Error::other(format!("descriptor {fd} beyond the table")))?;
        *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(Conn {
            stream,
            tail: Vec::new(),
        });
        Ok(fd)
    }

    /// Reads what `fd`'s peer sent and answers every complete request. `drain` (edge
    /// interest) reads until a read comes back short or would block: a short read has
    /// emptied the receive queue, so the next byte to arrive is a new edge. Otherwise
    /// (level or one-shot interest) it reads once; what is left is reported again.
    pub fn serve(&self, fd: RawFd, drain: bool, buf: &mut [u8]) -> Served {
        let mut served = Served {
            responses: 0,
            closed: None,
        };
        let Some(slot) = self.slots.get(fd as usize) else {
            return served;
        };
        let mut guard = slot.lock().unwrap_or_else(|p| p.into_inner());
        // A stale report for a connection that another thread closed already.
        let Some(conn) = guard.as_mut() else {
            return served;
        };
        let end = loop {
            match (&conn.stream).read(buf) {
                Ok(0) => break true,
                Ok(n) => {
                    let count = requests(&mut conn.tail, &buf[..n]);
                    if count > 0 {
                        let written = if count == 1 {
                            (&conn.stream).write(RESPONSE)
                        } else {
                            (&conn.stream).write(&responses(count))
                        };
                        // One request in flight per connection: the send buffer has room
                        // for the answer; anything else ends the connection.
                        match written {
                            Ok(w) if w == RESPONSE.len() * count => {}
                            _ => break true,
                        }
                        served.responses += count as u64;
                    }
                    if !drain || n < buf.len() {
                        break false;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break true,
            }
        };
        if end {
            served.closed = guard.take().map(|c| c.stream);
        }
        served
    }
}

/// Accepts every pending connection on `listener` (non-blocking), makes it non-blocking
/// with `TCP_NODELAY`, and hands it to `add`.
pub fn accept_all(
    listener: &TcpListener,
    mut add: impl FnMut(TcpStream) -> io::Result<()>,
) -> io::Result<()> {
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nodelay(true)?;
                stream.set_nonblocking(true)?;
                add(stream)?;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // Out of descriptors, or a connection reset before it was taken: try later.
            Err(e) if e.raw_os_error() == Some(libc::EMFILE) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => {}
            Err(e) => return Err(e),
        }
    }
}

/// A per-thread count on its own cache lines.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Counter(AtomicU64);

/// What every worker of one server shares.
#[derive(Debug)]
pub struct Shared {
    pub listener: TcpListener,
    pub table: Table,
    stop: AtomicBool,
    served: Box<[Counter]>,
}

impl Shared {
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Adds `n` responses to worker `t`'s count. Only that worker calls this.
    pub fn add(&self, t: usize, n: u64) {
        let c = &self.served[t].0;
        c.store(c.load(Ordering::Relaxed) + n, Ordering::Relaxed);
    }

    fn total(&self) -> u64 {
        self.served
            .iter()
            .map(|c| c.0.load(Ordering::Relaxed))
            .sum()
    }
}

/// A running server: stopped by [`Running::stop`], which returns once every worker ended.
pub trait Running {
    fn stop(self: Box<Self>) -> io::Result<u64>;
}

/// Event-loop servers: `threads` scoped workers over one [`Shared`].
struct Workers {
    shared: &'static Shared,
    handles: Vec<std::thread::JoinHandle<io::Result<()>>>,
}

impl Running for Workers {
    fn stop(self: Box<Self>) -> io::Result<u64> {
        self.shared.stop.store(true, Ordering::Relaxed);
        for h in self.handles {
            h.join()
                .map_err(|_| io::Error::other("a server thread panicked"))??;
        }
        Ok(self.shared.total())
    }
}

/// Starts `threads` workers running `work(shared, t)`.
fn spawn(
    shared: Shared,
    threads: usize,
    work: fn(&Shared, usize) -> io::Result<()>,
) -> io::Result<Box<dyn Running>> {
    // The server lives until the process ends, which is soon: leaking it lets the workers
    // borrow it without reference counting on the hot path.
    let shared: &'static Shared = Box::leak(Box::new(shared));
    let handles = (0..threads)
        .map(|t| {
            std::thread::Builder::new()
                .name(format!("server-{t}"))
                .spawn(move || work(shared, t))
        })
        .collect::<io::Result<_>>()?;
    Ok(Box::new(Workers { shared, handles }))
}

/// The `serve` child: `--server NAME --threads T --limit SECS`. Prints `LISTEN port`, then
/// answers `start` with `STARTED` (CPU time taken) and `stop` (or the end of its input)
/// with a `RESULT` line, and exits. It ends itself after `--limit` seconds in any case.
pub fn main(args: &[String]) -> io::Result<()> {
    let mut a = Args::new(args);
    let (mut server, mut threads, mut limit) = (None, 1, Duration::from_secs(30));
    while let Some(flag) = a.next_flag() {
        match flag.as_str() {
            "--server" => server = Some(Server::parse(&a.value(&flag)?)?),
            "--threads" => threads = a.number(&flag)?.max(1),
            "--limit" => limit = a.seconds(&flag)?,
            other => return Err(invalid(format!("serve: unknown option {other:?}"))),
        }
    }
    let server = server.ok_or_else(|| invalid("serve needs --server"))?;
    let files = sys::raise_nofile(crate::child::WANTED_FILES)?;
    std::thread::spawn(move || {
        std::thread::sleep(limit);
        eprintln!("serve: still running after {limit:?}; giving up");
        std::process::exit(3);
    });
    let listener = TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let port = listener.local_addr()?.port();
    let running = if server == Server::Tokio {
        tokio::start(listener, threads)?
    } else {
        let shared = Shared {
            listener,
            table: Table::new(files as usize),
            stop: AtomicBool::new(false),
            served: (0..threads).map(|_| Counter::default()).collect(),
        };
        match server.socknotify() {
            Some((backend, edge)) => socknotify::start(shared, threads, backend, edge)?,
            None => spawn(shared, threads, loops::worker(server))?,
        }
    };
    let mut out = io::stdout().lock();
    writeln!(out, "LISTEN {port}")?;
    out.flush()?;
    let mut cpu0 = sys::rusage_self()?;
    let mut line = String::new();
    let stdin = io::stdin();
    loop {
        line.clear();
        if stdin.lock().read_line(&mut line)? == 0 || line.trim() == "stop" {
            break;
        }
        if line.trim() == "start" {
            cpu0 = sys::rusage_self()?;
            writeln!(out, "STARTED")?;
            out.flush()?;
        }
    }
    let cpu1 = sys::rusage_self()?;
    let served = running.stop()?;
    let user = cpu1.0.saturating_sub(cpu0.0);
    let system = cpu1.1.saturating_sub(cpu0.1);
    writeln!(
        out,
        "RESULT cpu_ns={} user_ns={} sys_ns={} served={served}",
        (user + system).as_nanos(),
        user.as_nanos(),
        system.as_nanos()
    )?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::requests;

    #[test]
    fn requests_are_counted_across_reads() {
        let mut tail = Vec::new();
        let get = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(requests(&mut tail, get), 1);
        assert!(tail.is_empty());
        assert_eq!(requests(&mut tail, &get[..10]), 0);
        assert_eq!(tail.len(), 10);
        let mut rest = get[10..].to_vec();
        rest.extend_from_slice(get);
        rest.extend_from_slice(&get[..3]);
        assert_eq!(requests(&mut tail, &rest), 2);
        assert_eq!(tail, b"GET");
    }
}

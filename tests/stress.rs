//! Stress with an invariant checker: a server of 8 threads re-arming one-shot registrations
//! through `process` batches, thousands of connections opening and closing, and random
//! DISABLE/ENABLE and early REMOVE, on every backend. The checker confirms that
//!
//! - every byte a client wrote arrives once, in order (clients send numbered words);
//! - no entry follows its registration's REMOVE entry (keys are never reused);
//! - each explicit REMOVE gives exactly one REMOVE entry;
//! - the registry is empty at the end, and the process has as many descriptors open as it
//!   had at the start (so this file holds one test: nothing else runs beside it).
//!
//! It runs `SOCKNOTIFY_STRESS_SECS` seconds per backend (default 15), so CI stays short; a
//! soak run (the `--long` mode of other suites) sets it higher:
//!
//! ```text
//! SOCKNOTIFY_STRESS_SECS=600 cargo test --release --test stress -- --nocapture
//! ```
//!
//! `SOCKNOTIFY_STRESS_SEED` replays a run's random choices (the seed is printed).

mod util;

use std::collections::{HashMap, VecDeque};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use socknotify::{Backend, CompletionEntry, CompletionPort, Events, Registration, Trigger};
use util::*;

const WORKERS: usize = 8;
const CLIENT_THREADS: usize = 2;
/// Connections each client thread keeps open at once.
const OPEN_PER_CLIENT: usize = 48;
const EXIT: usize = usize::MAX;
const LISTENER: usize = usize::MAX - 1;
const FILTER: Events = Events::IN.union(Events::HANGUP);
const ONESHOT: Trigger = Trigger::ONESHOT.union(Trigger::LEVEL);

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

/// What the server knows of one accepted connection.
struct Conn {
    stream: TcpStream,
    /// The bytes received (the first four are the client's connection id).
    received: usize,
    /// A word not yet complete.
    partial: Vec<u8>,
    id: Option<u32>,
    /// The next word expected.
    next: u32,
}

/// The server's record of a finished connection: bytes received, and whether it was
/// removed early on purpose (then the client may have written more).
type Finished = (usize, bool);

#[derive(Default)]
struct Server {
    /// Live registrations by key.
    conns: Mutex<HashMap<usize, Arc<Mutex<Conn>>>>,
    finished: Mutex<HashMap<u32, Finished>>,
    /// Keys whose REMOVE entry was dequeued, with the sequence number after that call.
    removed: Mutex<HashMap<usize, usize>>,
    /// Keys removed on purpose early, to be recorded as aborted.
    aborted: Mutex<Vec<usize>>,
    /// Successful explicit REMOVEs.
    removes_applied: AtomicUsize,
    /// Keys disabled on purpose, waiting to be enabled again.
    parked: Mutex<VecDeque<(Instant, usize)>>,
    next_key: AtomicUsize,
    seq: AtomicUsize,
    entries: AtomicUsize,
    disables: AtomicUsize,
}

impl Server {
    /// Reads what `conn` has; checks the numbering. Returns false at end of stream or error.
    fn read(&self, conn: &mut Conn) -> bool {
        let mut buf = [0u8; 8192];
        loop {
            match conn.stream.read(&mut buf) {
                Ok(0) => return false,
                Ok(n) => {
                    conn.received += n;
                    conn.partial.extend_from_slice(&buf[..n]);
                    let whole = conn.partial.len() / 4 * 4;
                    for word in conn.partial[..whole].chunks(4) {
                        let word = u32::from_be_bytes(word.try_into().unwrap());
                        match conn.id {
                            None => conn.id = Some(word),
                            Some(id) => {
                                assert_eq!(word, conn.next, "connection {id}: word out of order");
                                conn.next += 1;
                            }
                        }
                    }
                    conn.partial.drain(..whole);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
    }
}

fn worker(port: &CompletionPort, server: &Server, listener: &TcpListener, seed: u64) {
    let mut rng = Rng::new(seed);
    let mut changes: Vec<Registration> = Vec::new();
    let mut to_park = Vec::new();
    let mut entries = [CompletionEntry::default(); 16];
    loop {
        // Parked registrations come back after a while.
        {
            let mut parked = server.parked.lock().unwrap();
            while let Some(&(since, key)) = parked.front() {
                if since.elapsed() < Duration::from_millis(2) {
                    break;
                }
                parked.pop_front();
                if let Some(conn) = server.conns.lock().unwrap().get(&key) {
                    let stream = &conn.lock().unwrap().stream;
                    changes.push(Registration::enable(stream, key, FILTER, ONESHOT));
                }
            }
        }
        let before = server.seq.fetch_add(1, Ordering::SeqCst);
        let n = port
            .process(&mut changes, &mut entries, Some(Duration::from_millis(100)))
            .expect("process");
        let after = server.seq.fetch_add(1, Ordering::SeqCst);
        for r in &changes {
            r.result().unwrap_or_else(|e| panic!("{r:?}: {e}"));
            if r.operation() == Some(socknotify::Operation::Remove) {
                server.removes_applied.fetch_add(1, Ordering::SeqCst);
            }
        }
        changes.clear();
        // DISABLEs are applied now: only from here may another thread enable them again.
        server
            .parked
            .lock()
            .unwrap()
            .extend(to_park.drain(..).map(|key| (Instant::now(), key)));
        server.entries.fetch_add(n, Ordering::Relaxed);
        for entry in &entries[..n] {
            let key = entry.key;
            if key == EXIT {
                port.post(*entry).unwrap();
                return;
            }
            if key == LISTENER && entry.events() == Events::REMOVE {
                let previous = server.removed.lock().unwrap().insert(key, after);
                assert!(previous.is_none(), "two REMOVE entries for the listener");
                continue;
            }
            if key == LISTENER {
                accept_all(listener, server, &mut changes);
                continue;
            }
            if let Some(&at) = server.removed.lock().unwrap().get(&key) {
                assert!(
                    before < at,
                    "{entry:?} dequeued by a call that began after its REMOVE entry"
                );
            }
            if entry.events() == Events::REMOVE {
                let previous = server.removed.lock().unwrap().insert(key, after);
                assert!(previous.is_none(), "two REMOVE entries for {key}");
                let conn = server.conns.lock().unwrap().remove(&key);
                let conn = conn.expect("REMOVE entry for an unknown key");
                let conn = conn.lock().unwrap();
                let id = conn.id.expect("a connection that sent nothing was removed");
                let aborted = {
                    let mut aborted = server.aborted.lock().unwrap();
                    let pos = aborted.iter().position(|k| *k == key);
                    pos.map(|p| aborted.swap_remove(p)).is_some()
                };
                let mut finished = server.finished.lock().unwrap();
                assert!(finished.insert(id, (conn.received, aborted)).is_none());
                continue; // the stream closes here, after its last entry
            }
            let conn = server.conns.lock().unwrap().get(&key).cloned();
            let Some(conn) = conn else {
                // Only possible for a call that began before the REMOVE entry was taken.
                let removed = server.removed.lock().unwrap().get(&key).copied();
                let at = removed.unwrap_or_else(|| panic!("{entry:?} for an unknown key"));
                assert!(before < at, "{entry:?} dequeued after its REMOVE entry");
                continue;
            };
            let mut conn = conn.lock().unwrap();
            let open = server.read(&mut conn);
            let registration = if !open {
                Registration::remove(&conn.stream)
            } else if conn.id.is_some() && rng.one_in(200) {
                server.aborted.lock().unwrap().push(key);
                Registration::remove(&conn.stream)
            } else if rng.one_in(20) {
                server.disables.fetch_add(1, Ordering::Relaxed);
                to_park.push(key);
                Registration::disable(&conn.stream)
            } else {
                Registration::enable(&conn.stream, key, FILTER, ONESHOT)
            };
            changes.push(registration);
        }
    }
}

fn accept_all(listener: &TcpListener, server: &Server, changes: &mut Vec<Registration>) {
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(true).unwrap();
                let key = server.next_key.fetch_add(1, Ordering::Relaxed);
                changes.push(Registration::enable(&stream, key, FILTER, ONESHOT));
                let conn = Conn {
                    stream,
                    received: 0,
                    partial: Vec::new(),
                    id: None,
                    next: 0,
                };
                let previous = server
                    .conns
                    .lock()
                    .unwrap()
                    .insert(key, Arc::new(Mutex::new(conn)));
                assert!(previous.is_none());
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("accept: {e}"),
        }
    }
}

/// One client connection: its id, the words still to send, and what is written.
struct Client {
    stream: TcpStream,
    id: u32,
    out: Vec<u8>,
    written: usize,
    words_left: u32,
    next: u32,
}

/// Opens connections, sends numbered words, closes them; returns, per connection id, the
/// bytes written and whether the server cut it off.
fn client(addr: SocketAddr, first_id: u32, until: Instant, seed: u64) -> HashMap<u32, Finished> {
    let mut rng = Rng::new(seed);
    let mut open: Vec<Client> = Vec::new();
    let mut done = HashMap::new();
    let mut next_id = first_id;
    while Instant::now() < until || !open.is_empty() {
        let closing = Instant::now() >= until;
        if !closing && open.len() < OPEN_PER_CLIENT && rng.one_in(4) {
            // The id goes first, whole, so that the server can name every connection.
            let mut stream = TcpStream::connect(addr).expect("connect");
            stream.write_all(&next_id.to_be_bytes()).expect("write id");
            stream.set_nonblocking(true).unwrap();
            open.push(Client {
                stream,
                id: next_id,
                out: Vec::new(),
                written: 4,
                words_left: rng.below(2000) as u32 + 1,
                next: 0,
            });
            next_id += 1;
        }
        let mut progress = false;
        let mut i = 0;
        while i < open.len() {
            let c = &mut open[i];
            while c.out.len() < 4096 && c.words_left > 0 && !closing {
                let burst = (rng.below(64) as u32 + 1).min(c.words_left);
                for _ in 0..burst {
                    c.out.extend_from_slice(&c.next.to_be_bytes());
                    c.next += 1;
                }
                c.words_left -= burst;
            }
            let mut cut = false;
            if !c.out.is_empty() {
                match c.stream.write(&c.out) {
                    Ok(n) => {
                        c.written += n;
                        c.out.drain(..n);
                        progress |= n > 0;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(_) => cut = true, // the server removed it early and closed it
                }
            }
            if cut || (c.out.is_empty() && c.words_left == 0) || closing {
                let c = open.swap_remove(i);
                done.insert(c.id, (c.written, cut));
                continue;
            }
            i += 1;
        }
        if !progress {
            thread::sleep(Duration::from_micros(500)); // pacing, not synchronisation
        }
    }
    done
}

fn run(backend: Backend, secs: u64, seed: u64) {
    let port = Arc::new(port_with(backend, WORKERS));
    let server = Arc::new(Server::default());
    let listener = Arc::new(TcpListener::bind("127.0.0.1:0").unwrap());
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let lt = Trigger::PERSISTENT | Trigger::LEVEL;
    enable(&port, &*listener, LISTENER, Events::IN, lt);
    let workers: Vec<_> = (0..WORKERS as u64)
        .map(|w| {
            let (port, server, listener) = (port.clone(), server.clone(), listener.clone());
            thread::spawn(move || worker(&port, &server, &listener, seed ^ w << 8))
        })
        .collect();
    let until = Instant::now() + Duration::from_secs(secs);
    let clients: Vec<_> = (0..CLIENT_THREADS as u32)
        .map(|c| thread::spawn(move || client(addr, c << 24, until, seed ^ u64::from(c) << 16)))
        .collect();
    let mut sent = HashMap::new();
    for h in clients {
        sent.extend(h.join().expect("client thread"));
    }
    // Every connection ends on the server: its REMOVE entry arrives and the stream closes.
    let deadline = Instant::now() + ARRIVAL * 2;
    while !server.conns.lock().unwrap().is_empty() {
        assert!(
            Instant::now() < deadline,
            "connections never ended: {:?}",
            server.conns.lock().unwrap().keys().collect::<Vec<_>>()
        );
        thread::sleep(Duration::from_millis(1));
    }
    apply_one(&port, Registration::remove(&*listener)).expect("remove listener");
    server.removes_applied.fetch_add(1, Ordering::SeqCst);
    port.post(CompletionEntry::new(EXIT, 0, 0)).unwrap();
    for h in workers {
        h.join().expect("worker thread");
    }
    // The listener's REMOVE entry may have gone to a worker or still be queued.
    let mut listener_removed = usize::from(server.removed.lock().unwrap().contains_key(&LISTENER));
    for e in drain(&port) {
        match (e.key, e.events()) {
            (EXIT, _) => {}
            (LISTENER, Events::REMOVE) => listener_removed += 1,
            (LISTENER, _) => {}
            other => panic!("unexpected entry after the run: {other:?}"),
        }
    }
    assert_eq!(listener_removed, 1, "one REMOVE entry for the listener");
    // The checker.
    let finished = server.finished.lock().unwrap();
    let removed = server.removed.lock().unwrap();
    let removes_seen = removed.len() + usize::from(!removed.contains_key(&LISTENER));
    assert_eq!(
        server.removes_applied.load(Ordering::SeqCst),
        removes_seen,
        "one REMOVE entry per explicit remove"
    );
    assert_eq!(
        finished.len(),
        sent.len(),
        "connections the server never saw end"
    );
    let mut bytes = 0;
    let mut aborted = 0;
    for (id, &(written, cut)) in &sent {
        let &(received, removed_early) = finished
            .get(id)
            .unwrap_or_else(|| panic!("connection {id} never reached the server"));
        if removed_early {
            aborted += 1;
            assert!(
                received <= written,
                "connection {id}: more bytes than written"
            );
        } else {
            assert!(!cut, "connection {id} cut off without an early remove");
            assert_eq!(received, written, "connection {id}: bytes lost or repeated");
        }
        bytes += received;
    }
    assert!(
        sent.len() >= 100,
        "only {} connections in {secs} s",
        sent.len()
    );
    assert_eq!(port.registrations(), 0, "the registry is not empty");
    eprintln!(
        "{backend:?}: {} connections ({aborted} removed early), {bytes} bytes, {} entries, \
         {} disables, {} removes",
        sent.len(),
        server.entries.load(Ordering::Relaxed),
        server.disables.load(Ordering::Relaxed),
        server.removes_applied.load(Ordering::SeqCst),
    );
}

#[test]
fn stress_with_invariant_checker() {
    let secs = env_u64("SOCKNOTIFY_STRESS_SECS", 15);
    let seed = env_u64("SOCKNOTIFY_STRESS_SEED", 0x50c4_0f17);
    eprintln!("stress: {secs} s per backend, seed {seed}");
    let before = open_descriptors();
    each_backend(|b| run(b, secs, seed));
    assert_eq!(open_descriptors(), before, "descriptors leaked");
}

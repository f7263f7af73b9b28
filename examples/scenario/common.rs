//! Helpers shared by the seed scenarios (`examples/poll_replacement.rs`,
//! `examples/edge_udp_server.rs`, the checked multithreaded variant in
//! `tests/scenario_support/`) and `tests/scenarios.rs`:
//! the payload and its checker, a loopback listener with a real backlog, a client connect
//! that retries, and the seed's `DeregisterAndWait`, fixed.

#![allow(dead_code)] // each example uses a different subset

use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use socknotify::{CompletionEntry, CompletionPort, Registration};

/// The seed's payload, `const UINT32 payload = 0xdeadbeef`.
pub const PAYLOAD: u32 = 0xdead_beef;
/// The payload on the wire: little endian, everywhere (the seed sent host order).
pub const PAYLOAD_BYTES: [u8; 4] = PAYLOAD.to_le_bytes();

/// How long one wait may last before the scenario says what it is still waiting for.
pub const TICK: Duration = Duration::from_millis(250);

/// Adds what was being done to an error, keeping its kind.
pub trait Context<T> {
    /// `Err(e)` becomes `Err("{what}: {e}")`.
    fn context(self, what: impl fmt::Display) -> io::Result<T>;
}

impl<T> Context<T> for io::Result<T> {
    fn context(self, what: impl fmt::Display) -> io::Result<T> {
        self.map_err(|e| io::Error::new(e.kind(), format!("{what}: {e}")))
    }
}

/// A `TimedOut` error saying what did not happen in time.
pub fn timed_out(what: impl fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, what.to_string())
}

/// How long is left until `deadline`, at most [`TICK`], so that waits stay short and the
/// caller gets to check its deadline.
pub fn tick_until(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now()).min(TICK)
}

/// Checks a byte stream made of back-to-back payloads, across chunk boundaries: TCP may
/// split or merge the 4-byte writes, so bytes are counted and payloads derived from them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PayloadStream {
    bytes: u64,
    mismatches: u64,
}

impl PayloadStream {
    /// Checks and counts the next chunk of the stream.
    pub fn feed(&mut self, chunk: &[u8]) {
        for &byte in chunk {
            if byte != PAYLOAD_BYTES[(self.bytes % 4) as usize] {
                self.mismatches += 1;
            }
            self.bytes += 1;
        }
    }

    /// Bytes seen so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Whole payloads seen so far.
    pub fn payloads(&self) -> u64 {
        self.bytes / 4
    }

    /// Bytes that differed from the pattern.
    pub fn mismatches(&self) -> u64 {
        self.mismatches
    }

    /// Whether the stream is exactly `payloads` intact payloads.
    pub fn is_exactly(&self, payloads: u64) -> bool {
        self.mismatches == 0 && self.bytes == payloads * 4
    }
}

/// A TCP listener on 127.0.0.1 with a port chosen by the OS and the given backlog (std's
/// `TcpListener::bind` always asks for 128; the seed asked for 0).
pub fn loopback_listener(backlog: i32) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))
        .context("creating the listening socket")?;
    let addr = SocketAddr::from(([127, 0, 0, 1], 0));
    socket
        .bind(&addr.into())
        .context("binding the listener to 127.0.0.1:0")?;
    socket
        .listen(backlog)
        .context(format_args!("listening with a backlog of {backlog}"))?;
    Ok(socket.into())
}

/// How often a client tries to connect before giving up.
pub const CONNECT_ATTEMPTS: u32 = 8;

/// Connects to `addr`, retrying a bounded number of times when the server is momentarily
/// unable to take the connection (refused, would block, timed out), and never past
/// `deadline`.
pub fn connect(addr: SocketAddr, deadline: Instant) -> io::Result<TcpStream> {
    let mut attempt = 1;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(timed_out(format_args!(
                "connecting to {addr}: out of time after {} attempts",
                attempt - 1
            )));
        }
        match TcpStream::connect_timeout(&addr, left) {
            Ok(stream) => return Ok(stream),
            Err(e)
                if attempt < CONNECT_ATTEMPTS
                    && matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionRefused
                            | io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) =>
            {
                // Back off a little more each time: the listener's queue needs the server
                // to accept before it has room again.
                thread::sleep(Duration::from_millis(5 << attempt).min(left));
                attempt += 1;
            }
            Err(e) => {
                return Err(e).context(format_args!(
                    "connecting to {addr} (attempt {attempt} of {CONNECT_ATTEMPTS})"
                ))
            }
        }
    }
}

/// The time left until `deadline`, for a socket timeout (which must not be zero).
pub fn time_left(deadline: Instant) -> Duration {
    deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1))
}

/// What [`deregister_and_wait`] saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Removal {
    /// REMOVE entries with the registration's key (exactly one when all is well).
    pub removes: usize,
    /// Other entries dequeued while waiting for the REMOVE entry (the seed dropped these).
    pub others: Vec<CompletionEntry>,
    /// Entries with the registration's key found after its REMOVE entry (rule 4: none).
    pub after: usize,
}

/// Removes `socket`'s registration (key `key`) and waits for its REMOVE entry, until
/// `deadline`: the seed's `DeregisterAndWait`, fixed. The REMOVE goes in once, in the
/// `process` call that also starts dequeuing (the seed issued it again on every loop, so a
/// second REMOVE failed whenever another entry came first). Entries that are not the REMOVE
/// are returned, not silently dropped. Once the REMOVE entry is there, the port is polled
/// once more without blocking to show that nothing else arrives for the key.
pub fn deregister_and_wait(
    port: &CompletionPort,
    socket: &impl socknotify::AsSocketLike,
    key: usize,
    deadline: Instant,
) -> io::Result<Removal> {
    let mut removal = Removal::default();
    let mut entries = [CompletionEntry::default(); 8];
    let mut change = [Registration::remove(socket)];
    let mut n = port
        .process(&mut change, &mut entries, Some(tick_until(deadline)))
        .context("removing the registration")?;
    change[0].result().context("removing the registration")?;
    loop {
        for entry in &entries[..n] {
            if entry.key == key && removal.removes > 0 {
                removal.after += 1;
            } else if entry.key == key && entry.events().is_remove() {
                removal.removes += 1;
            } else {
                removal.others.push(*entry);
            }
        }
        if removal.removes > 0 {
            break;
        }
        if Instant::now() >= deadline {
            return Err(timed_out(format_args!(
                "no REMOVE entry for key {key} arrived in time"
            )));
        }
        n = port
            .dequeue(&mut entries, Some(tick_until(deadline)))
            .context("waiting for the REMOVE entry")?;
    }
    // Anything still queued for the key now would break rule 4.
    let n = port
        .dequeue(&mut entries, Some(Duration::ZERO))
        .context("checking that nothing follows the REMOVE entry")?;
    for entry in &entries[..n] {
        if entry.key == key {
            removal.after += 1;
        } else {
            removal.others.push(*entry);
        }
    }
    Ok(removal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_stream_checks_across_chunks() {
        let mut stream = PayloadStream::default();
        let wire: Vec<u8> = PAYLOAD_BYTES.iter().cycle().take(12).copied().collect();
        stream.feed(&wire[..3]);
        stream.feed(&wire[3..10]);
        stream.feed(&wire[10..]);
        assert!(stream.is_exactly(3));
        stream.feed(&[0]);
        assert!(!stream.is_exactly(3));
        assert_eq!(stream.mismatches(), 1);
    }
}

//! The seed's "edge-triggered UDP server" (`SimpleEdgeTriggeredSample`), corrected: a
//! non-blocking UDP socket registered `EDGE | PERSISTENT` for `IN` *before* it is bound, so
//! no datagram can arrive before the registration exists; each entry is drained to
//! `WouldBlock` (an edge comes only when new data arrives); a UDP socket never reports
//! HANGUP; finally the registration is removed and its REMOVE entry awaited.
//!
//! Shared by `examples/edge_udp_server.rs` and `tests/scenarios.rs`.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::thread;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use socknotify::{CompletionEntry, CompletionPort, Events, Registration, Trigger};

use crate::common::{self, Context};

/// The socket's completion key.
pub const SOCKET_KEY: usize = 7;

/// What to run.
#[derive(Clone, Debug)]
pub struct Config {
    /// Datagrams the client sends (the seed's `CLIENT_LOOP_COUNT`).
    pub datagrams: u32,
    /// The whole scenario must finish within this.
    pub timeout: Duration,
    /// Print each step and entry.
    pub verbose: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            datagrams: 10,
            timeout: Duration::from_secs(10),
            verbose: false,
        }
    }
}

/// What the server saw.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Entries dequeued for the socket before it was removed.
    pub entries: usize,
    /// Datagrams received.
    pub datagrams: usize,
    /// Datagrams that were not exactly one payload.
    pub malformed: usize,
    /// Datagrams received per IN entry, in order: each drain ran to `WouldBlock`.
    pub per_entry: Vec<usize>,
    /// Entries that reported HANGUP (none: rule 14).
    pub hangups: usize,
    /// REMOVE entries for the socket (one).
    pub removes: usize,
    /// Other entries seen while waiting for the REMOVE entry (none).
    pub others: usize,
    /// Entries for the socket after its REMOVE entry (none, rule 4).
    pub after_remove: usize,
}

/// Runs the scenario on `port`.
///
/// # Errors
/// Any failure of the server or the client, with what was being done.
pub fn run(port: &CompletionPort, config: &Config) -> io::Result<Report> {
    let deadline = Instant::now() + config.timeout;
    let say = |line: std::fmt::Arguments<'_>| {
        if config.verbose {
            println!("{line}");
        }
    };
    // std's UdpSocket binds as it is created; the registration must come first.
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))
        .context("creating the UDP socket")?;
    // PERSISTENT | EDGE: the seed gave EDGE alone, which lacks ONESHOT/PERSISTENT (rule 1).
    let mut change = [Registration::enable(
        &socket,
        SOCKET_KEY,
        Events::IN,
        Trigger::PERSISTENT | Trigger::EDGE,
    )];
    port.process(&mut change, &mut [], Some(Duration::ZERO))
        .context("registering the unbound UDP socket")?;
    change[0]
        .result()
        .context("registering the unbound UDP socket")?;
    say(format_args!(
        "server: registered key {SOCKET_KEY} for IN, PERSISTENT | EDGE, before bind"
    ));
    // Edge-triggered needs non-blocking reads: the drain stops at WouldBlock.
    socket
        .set_nonblocking(true)
        .context("making the UDP socket non-blocking")?;
    let addr = SocketAddr::from(([127, 0, 0, 1], 0));
    socket
        .bind(&addr.into())
        .context("binding the UDP socket to 127.0.0.1:0")?;
    // The registration names the descriptor, which the conversion keeps.
    let socket: UdpSocket = socket.into();
    let addr = socket.local_addr().context("reading the bound address")?;
    say(format_args!("server: bound to {addr}"));

    let datagrams = config.datagrams;
    let client = thread::Builder::new()
        .name("udp-client".into())
        .spawn(move || client(addr, datagrams))
        .context("starting the client thread")?;
    let result = serve(port, config, &socket, deadline, &say);
    let client_result = client
        .join()
        .map_err(|_| io::Error::other("the client thread panicked"))?;
    client_result.context("client")?;
    result
}

fn serve(
    port: &CompletionPort,
    config: &Config,
    socket: &UdpSocket,
    deadline: Instant,
    say: &impl Fn(std::fmt::Arguments<'_>),
) -> io::Result<Report> {
    let expected = config.datagrams as usize;
    let mut report = Report::default();
    let mut buf = [0u8; 512];
    let mut entry = [CompletionEntry::default()];
    while report.datagrams < expected {
        if Instant::now() >= deadline {
            return Err(common::timed_out(format_args!(
                "{} of {expected} datagrams arrived within {:?}",
                report.datagrams, config.timeout
            )));
        }
        let n = port
            .dequeue(&mut entry, Some(common::tick_until(deadline)))
            .context("dequeuing")?;
        if n == 0 {
            say(format_args!("server: waiting for client action..."));
            continue;
        }
        let entry = entry[0];
        let events = entry.events();
        if entry.key != SOCKET_KEY {
            return Err(io::Error::other(format!(
                "an entry with unknown key {} (events {events:?})",
                entry.key
            )));
        }
        report.entries += 1;
        if events.is_hangup() {
            report.hangups += 1;
        }
        if events.is_error() {
            let cause = socket
                .take_error()
                .context("reading the socket error")?
                .unwrap_or_else(|| io::Error::other("no error recorded"));
            return Err(io::Error::new(
                cause.kind(),
                format!("the UDP socket failed: {cause}"),
            ));
        }
        if !events.is_readable() {
            continue;
        }
        // Drain to WouldBlock, or the next datagram makes no new edge.
        let mut drained = 0;
        loop {
            match socket.recv_from(&mut buf) {
                Ok((len, _from)) => {
                    drained += 1;
                    if buf[..len] != common::PAYLOAD_BYTES {
                        report.malformed += 1;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e).context("receiving a datagram"),
            }
        }
        report.datagrams += drained;
        report.per_entry.push(drained);
        say(format_args!(
            "server: entry key {} events {events:?}: drained {drained} datagrams to WouldBlock \
             ({} of {expected})",
            entry.key, report.datagrams
        ));
    }
    say(format_args!(
        "server: received all {} datagrams; removing the registration",
        report.datagrams
    ));
    let removal = common::deregister_and_wait(port, socket, SOCKET_KEY, deadline)?;
    report.removes = removal.removes;
    report.others = removal.others.len();
    report.after_remove = removal.after;
    say(format_args!(
        "server: REMOVE entry received; {} entries after it",
        removal.after
    ));
    Ok(report)
}

/// The UDP client the seed only assumed ("assume that CreateClientThread creates a UDP
/// socket instead"): sends the payloads as separate datagrams.
fn client(server: SocketAddr, datagrams: u32) -> io::Result<()> {
    let socket = UdpSocket::bind("127.0.0.1:0").context("binding the client socket")?;
    for i in 0..datagrams {
        let sent = socket
            .send_to(&common::PAYLOAD_BYTES, server)
            .context(format_args!("sending datagram {i}"))?;
        if sent != common::PAYLOAD_BYTES.len() {
            return Err(io::Error::other(format!(
                "datagram {i}: sent {sent} of {} bytes",
                common::PAYLOAD_BYTES.len()
            )));
        }
    }
    Ok(())
}

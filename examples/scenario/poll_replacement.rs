//! The seed's "simple replacement for polling" (`SimplePollReplacement`), corrected: one
//! thread, one accepted TCP connection registered `PERSISTENT | LEVEL` for `IN | HANGUP`,
//! entries taken with `dequeue` (nothing needs re-arming), the connection read to its end,
//! then removed, and the REMOVE entry awaited before the socket is closed.
//!
//! Shared by `examples/poll_replacement.rs` and `tests/scenarios.rs`.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::thread;
use std::time::{Duration, Instant};

use socket2::SockRef;
use socknotify::{CompletionEntry, CompletionPort, Events, Registration, Trigger};

use crate::common::{self, Context, PayloadStream};

/// The connection's completion key. The seed used the socket itself; here the stream stays
/// owned by the scenario and the key only names it.
pub const CONNECTION_KEY: usize = 1;

/// What to run.
#[derive(Clone, Debug)]
pub struct Config {
    /// Payloads the client sends (the seed's `CLIENT_LOOP_COUNT`).
    pub messages: u32,
    /// The whole scenario must finish within this.
    pub timeout: Duration,
    /// Print each step and entry.
    pub verbose: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            messages: 10,
            timeout: Duration::from_secs(10),
            verbose: false,
        }
    }
}

/// What the server saw.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Entries dequeued for the connection before it was removed.
    pub entries: usize,
    /// Entries whose events included HANGUP.
    pub hangups: usize,
    /// `read` calls that returned data.
    pub reads: usize,
    /// The bytes read, checked against the payload pattern.
    pub stream: PayloadStream,
    /// Whether a read returned 0 (the end of the stream).
    pub end_of_stream: bool,
    /// REMOVE entries for the connection (one).
    pub removes: usize,
    /// Other entries seen while waiting for the REMOVE entry (none).
    pub others: usize,
    /// Entries for the connection after its REMOVE entry (none, rule 4).
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
    let listener = common::loopback_listener(16)?;
    let addr = listener
        .local_addr()
        .context("reading the listener's address")?;
    // accept() honours SO_RCVTIMEO on Linux: a client that never comes is an error, not a
    // hang (the seed blocked in accept forever).
    SockRef::from(&listener)
        .set_read_timeout(Some(config.timeout))
        .context("setting the accept timeout")?;
    say(format_args!("server: listening on {addr}"));

    let messages = config.messages;
    let client = thread::Builder::new()
        .name("client".into())
        .spawn(move || client(addr, messages, deadline))
        .context("starting the client thread")?;

    let result = serve(port, config, &listener, deadline, &say);
    // The client's own error says more than the server's view of it.
    let client_result = client
        .join()
        .map_err(|_| io::Error::other("the client thread panicked"))?;
    client_result.context("client")?;
    result
}

fn serve(
    port: &CompletionPort,
    config: &Config,
    listener: &std::net::TcpListener,
    deadline: Instant,
    say: &impl Fn(std::fmt::Arguments<'_>),
) -> io::Result<Report> {
    let (mut stream, peer) = listener.accept().context("accepting the client")?;
    stream
        .set_nonblocking(true)
        .context("making the connection non-blocking")?;
    say(format_args!("server: accepted {peer}"));

    // PERSISTENT | LEVEL: the seed gave LEVEL alone, which lacks ONESHOT/PERSISTENT (rule 1).
    let mut change = [Registration::enable(
        &stream,
        CONNECTION_KEY,
        Events::IN | Events::HANGUP,
        Trigger::PERSISTENT | Trigger::LEVEL,
    )];
    port.process(&mut change, &mut [], Some(Duration::ZERO))
        .context("registering the connection")?;
    change[0].result().context("registering the connection")?;
    say(format_args!(
        "server: registered key {CONNECTION_KEY} for IN | HANGUP, PERSISTENT | LEVEL"
    ));

    let mut report = Report::default();
    let mut saw_hangup = false;
    let mut buf = [0u8; 512];
    let mut entry = [CompletionEntry::default()];
    // Done when the peer hung up *and* everything it sent has been read: HANGUP can come
    // in the same entry as IN while data is still queued (the seed left on HANGUP at once).
    while !(saw_hangup && report.end_of_stream) {
        if Instant::now() >= deadline {
            return Err(common::timed_out(format_args!(
                "the client did not finish within {:?} ({} bytes read, hangup seen: {saw_hangup})",
                config.timeout,
                report.stream.bytes()
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
        if entry.key != CONNECTION_KEY {
            return Err(io::Error::other(format!(
                "an entry with unknown key {} (events {events:?})",
                entry.key
            )));
        }
        report.entries += 1;
        if events.is_error() {
            // The seed read the error with a recv whose success left it stale; SO_ERROR
            // says what it was.
            let cause = stream
                .take_error()
                .context("reading the socket error")?
                .unwrap_or_else(|| io::Error::other("no error recorded"));
            return Err(io::Error::new(
                cause.kind(),
                format!("the connection failed: {cause}"),
            ));
        }
        if events.is_hangup() {
            report.hangups += 1;
            saw_hangup = true;
        }
        let mut outcome = String::from("nothing to read");
        if events.intersects(Events::IN | Events::HANGUP) {
            match stream.read(&mut buf) {
                Ok(0) => {
                    report.end_of_stream = true;
                    outcome = "end of stream".into();
                }
                Ok(got) => {
                    report.reads += 1;
                    report.stream.feed(&buf[..got]);
                    outcome = format!("read {got} bytes");
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(e).context("reading from the client"),
            }
        }
        say(format_args!(
            "server: entry key {} events {events:?}: {outcome}",
            entry.key
        ));
    }
    say(format_args!(
        "server: client hung up after {} bytes ({} payloads); removing the registration",
        report.stream.bytes(),
        report.stream.payloads()
    ));

    let removal = common::deregister_and_wait(port, &stream, CONNECTION_KEY, deadline)?;
    report.removes = removal.removes;
    report.others = removal.others.len();
    report.after_remove = removal.after;
    say(format_args!(
        "server: REMOVE entry received; {} entries after it",
        removal.after
    ));
    // Only now may the socket go (rule 4).
    drop(stream);
    Ok(report)
}

/// The seed's `ClientThreadRoutine`: connect, send the payloads, shut down; errors are
/// returned (the seed swallowed them and closed `INVALID_SOCKET` instead of its socket).
fn client(addr: SocketAddr, messages: u32, deadline: Instant) -> io::Result<()> {
    let mut stream = common::connect(addr, deadline)?;
    stream
        .set_write_timeout(Some(common::time_left(deadline)))
        .context("setting the write timeout")?;
    for i in 0..messages {
        stream
            .write_all(&common::PAYLOAD_BYTES)
            .context(format_args!("sending payload {i}"))?;
    }
    stream
        .shutdown(Shutdown::Write)
        .context("shutting the connection down")?;
    Ok(())
}

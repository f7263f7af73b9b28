//! A one-shot level-triggered echo server on one thread, for counting system calls per
//! served message on each backend.
//!
//! The server (this process's main thread, and no other thread) serves `--connections`
//! loopback connections; a child process of the same binary plays the clients, each
//! connection sending `--messages` 8-byte messages and waiting for each echo. Every entry
//! is answered with `recv` + `send` and a re-arm that rides in the next `process` call.
//!
//! ```text
//! cargo build --release --example echo_syscalls
//! perf stat --no-inherit -e raw_syscalls:sys_enter -- \
//!     target/release/examples/echo_syscalls --backend epoll
//! ```
//!
//! `--no-inherit` counts the server's main thread only: the clients run in a child process.
//! The program prints messages served, kernel transitions spent in `process` per batch, and
//! the batch sizes, so the count can be divided per message.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use socknotify::{Backend, CompletionEntry, CompletionPort, Events, Registration, Trigger};

struct Args {
    backend: Backend,
    connections: usize,
    messages: usize,
    client_of: Option<u16>,
}

fn parse() -> Result<Args, String> {
    let mut args = Args {
        backend: Backend::Auto,
        connections: 64,
        messages: 2000,
        client_of: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--backend" => {
                args.backend = match value()?.as_str() {
                    "auto" => Backend::Auto,
                    "epoll" => Backend::Epoll,
                    "io_uring" => Backend::IoUring,
                    other => return Err(format!("unknown backend {other}")),
                }
            }
            "--connections" => args.connections = value()?.parse().map_err(|e| format!("{e}"))?,
            "--messages" => args.messages = value()?.parse().map_err(|e| format!("{e}"))?,
            "--client-of" => args.client_of = Some(value()?.parse().map_err(|e| format!("{e}"))?),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(args)
}

/// The client side: one thread per connection, ping-pong `messages` times.
fn clients(port: u16, connections: usize, messages: usize) -> io::Result<()> {
    let handles: Vec<_> = (0..connections)
        .map(|_| {
            std::thread::spawn(move || -> io::Result<()> {
                let mut s = TcpStream::connect(("127.0.0.1", port))?;
                s.set_nodelay(true)?;
                let mut buf = [0u8; 8];
                for i in 0..messages as u64 {
                    s.write_all(&i.to_le_bytes())?;
                    s.read_exact(&mut buf)?;
                    if u64::from_le_bytes(buf) != i {
                        return Err(io::Error::other("wrong echo"));
                    }
                }
                Ok(())
            })
        })
        .collect();
    for h in handles {
        h.join()
            .map_err(|_| io::Error::other("client panicked"))??;
    }
    Ok(())
}

fn serve(args: &Args) -> io::Result<()> {
    let port = CompletionPort::builder()
        .backend(args.backend)
        .concurrency(1)
        .build()?;
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let mut child = Command::new(std::env::current_exe()?)
        .args(["--client-of", &addr.port().to_string()])
        .args(["--connections", &args.connections.to_string()])
        .args(["--messages", &args.messages.to_string()])
        .spawn()?;
    let mut conns = Vec::with_capacity(args.connections);
    let trigger = Trigger::ONESHOT | Trigger::LEVEL;
    let mut batch = Vec::new();
    for key in 0..args.connections {
        let (s, _) = listener.accept()?;
        s.set_nonblocking(true)?;
        s.set_nodelay(true)?;
        batch.push(Registration::enable(&s, key, Events::IN, trigger));
        conns.push(s);
    }
    let want = args.connections * args.messages;
    let mut served = 0;
    let mut calls = 0u64;
    let mut entries = vec![CompletionEntry::default(); args.connections];
    let start = Instant::now();
    let mut buf = [0u8; 64];
    while served < want {
        let n = port.process(&mut batch, &mut entries, Some(Duration::from_secs(10)))?;
        calls += 1;
        for r in &batch {
            r.result()?;
        }
        batch.clear();
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "no entry in 10 s"));
        }
        for e in &entries[..n] {
            let s = &mut conns[e.key];
            match s.read(&mut buf) {
                Ok(0) => continue,
                Ok(len) => {
                    s.write_all(&buf[..len])?;
                    served += len / 8;
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                Err(err) => return Err(err),
            }
            batch.push(Registration::enable(&*s, e.key, Events::IN, trigger));
        }
    }
    let elapsed = start.elapsed();
    let status = child.wait()?;
    if !status.success() {
        return Err(io::Error::other(format!("clients failed: {status}")));
    }
    println!(
        "backend={:?} connections={} messages_served={} process_calls={} \
         entries_per_call={:.2} msgs_per_sec={:.0}",
        port.backend(),
        args.connections,
        served,
        calls,
        served as f64 / calls as f64,
        served as f64 / elapsed.as_secs_f64()
    );
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("echo_syscalls: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match args.client_of {
        Some(port) => clients(port, args.connections, args.messages),
        None => serve(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("echo_syscalls: {e}");
            ExitCode::FAILURE
        }
    }
}

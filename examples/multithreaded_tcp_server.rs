//! A multithreaded TCP server on one completion port: the third scenario of the Winsock
//! document.
//!
//! The port's concurrency is the CPU count and 16 server threads share it (over-subscribed
//! on purpose: the port releases at most that many at once). The listener is registered
//! `PERSISTENT | LEVEL` for `IN` and accepted non-blocking until `WouldBlock`; each
//! connection is registered `ONESHOT | LEVEL` for `IN | HANGUP` and re-armed through the
//! registration batch of the thread's next `process` call. 100 clients send 10 payloads of 4
//! bytes each; the server checks every byte, sees one REMOVE entry per connection, and
//! shuts down through a posted exit entry that each exiting thread posts again.
//!
//! This ports the intent of the document's `MultiThreadedTcpServer`, not its bugs: its
//! thread-creation loop never advanced, its clients closed `INVALID_SOCKET`, a HANGUP with
//! data made a `REMOVE | ENABLE` operation, and nothing ever posted the exit entry in a
//! normal run. `docs/seed-defects.md` lists every defect found in the C samples and what the
//! Rust versions do instead.
//!
//! ```text
//! cargo run --release --example multithreaded_tcp_server
//! cargo run --release --example multithreaded_tcp_server -- --clients 5000 --messages 100
//! ```
//!
//! Flags: `--threads N` (server threads, 16), `--clients N` (100), `--messages N` (10),
//! `--client-threads N` (0: one per client up to 100, else a pool of 32), `--backend
//! auto|epoll|io_uring`, `--timeout SECONDS` (60), `--verbose`.

use std::process::ExitCode;
use std::time::Duration;

use socknotify::{Backend, CompletionPort};

#[path = "scenario/common.rs"]
mod common;
#[path = "scenario/multithreaded_tcp_server.rs"]
mod scenario;

const USAGE: &str = "usage: multithreaded_tcp_server [--threads N] [--clients N] \
[--messages N] [--client-threads N] [--backend auto|epoll|io_uring] [--timeout SECONDS] \
[--verbose]";

fn main() -> ExitCode {
    let (config, backend) = match parse(std::env::args().skip(1)) {
        Ok(Some(parsed)) => parsed,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("multithreaded_tcp_server: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let port = match CompletionPort::builder().backend(backend).build() {
        Ok(port) => port,
        Err(e) if e.kind() == std::io::ErrorKind::Unsupported => {
            eprintln!("multithreaded_tcp_server: backend {backend:?} is unavailable: {e}");
            return ExitCode::from(3);
        }
        Err(e) => {
            eprintln!("multithreaded_tcp_server: cannot create the completion port: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "multithreaded_tcp_server: {} clients x {} payloads of 4 bytes, {} server threads",
        config.clients, config.messages, config.server_threads
    );
    let report = match scenario::run(&port, &config) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("multithreaded_tcp_server: error: {e}");
            return ExitCode::FAILURE;
        }
    };
    print_summary(&config, &report);
    let problems = report.problems(&config);
    if problems.is_empty() {
        println!("  result            OK");
        ExitCode::SUCCESS
    } else {
        eprintln!("  result            FAILED:");
        for problem in &problems {
            eprintln!("    - {problem}");
        }
        ExitCode::FAILURE
    }
}

fn print_summary(config: &scenario::Config, report: &scenario::Report) {
    let payloads = config.clients as u64 * u64::from(config.messages);
    println!(
        "  port              backend {:?}, concurrency {} (the CPU count)",
        report.backend, report.concurrency
    );
    println!(
        "  threads           {} server threads, {} client threads",
        report.server_threads, report.client_threads
    );
    if let Some((before, after)) = report.nofile_raised {
        println!("  descriptors       raised the soft RLIMIT_NOFILE from {before} to {after}");
    }
    println!(
        "  connections       {} made, {} accepted, {} REMOVE entries, {} intact",
        report.connected, report.accepted, report.removes, report.intact
    );
    println!(
        "  bytes             {} of {} ({} payloads of {})",
        report.bytes,
        payloads * 4,
        report.payloads,
        payloads
    );
    println!(
        "  entries dequeued  {} ({} for the listener, {} of them found nothing to accept)",
        report.entries, report.listener_entries, report.empty_accepts
    );
    println!(
        "  re-arms           {} (one-shot, through the next process call)",
        report.rearms
    );
    println!(
        "  released at once  at most {} of {} server threads (concurrency {})",
        report.max_released, report.server_threads, report.concurrency
    );
    println!(
        "  shutdown          {} of {} server threads left through the exit entry",
        report.exits, report.server_threads
    );
    println!("  wall time         {:.1?}", report.elapsed);
}

/// Parses the flags; `Ok(None)` for `--help`.
fn parse(
    mut args: impl Iterator<Item = String>,
) -> Result<Option<(scenario::Config, Backend)>, String> {
    let mut config = scenario::Config::default();
    let mut backend = Backend::Auto;
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            return Ok(None);
        }
        if flag == "--verbose" {
            config.verbose = true;
            continue;
        }
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--threads" => config.server_threads = number(&flag, &value)?,
            "--clients" => config.clients = number(&flag, &value)?,
            "--messages" => config.messages = number(&flag, &value)?,
            "--client-threads" => config.client_threads = number(&flag, &value)?,
            "--timeout" => config.timeout = Duration::from_secs(number(&flag, &value)?),
            "--backend" => {
                backend = match value.as_str() {
                    "auto" => Backend::Auto,
                    "epoll" => Backend::Epoll,
                    "io_uring" | "io-uring" | "uring" => Backend::IoUring,
                    other => {
                        return Err(format!(
                            "--backend {other:?} is not one of auto, epoll, io_uring"
                        ))
                    }
                }
            }
            other => return Err(format!("unknown flag {other:?}")),
        }
    }
    if config.server_threads == 0 {
        return Err("--threads must be at least 1".into());
    }
    Ok(Some((config, backend)))
}

fn number<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("{flag} {value:?} is not a valid number"))
}

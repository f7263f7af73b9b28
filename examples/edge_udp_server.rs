//! An edge-triggered UDP server: the second scenario of the Winsock document.
//!
//! A non-blocking UDP socket is registered `EDGE | PERSISTENT` for `IN` before it is
//! bound, so that no datagram can arrive unseen; a client sends ten 4-byte datagrams; the
//! server drains the socket to `WouldBlock` on every entry (with EDGE there is no second
//! entry without new data), counts exactly ten, checks that no HANGUP was reported (UDP has
//! none), removes the registration and waits for its REMOVE entry.
//!
//! This ports the intent of the document's `SimpleEdgeTriggeredSample`, not its bugs: its
//! trigger lacked PERSISTENT, it stored `ioctlsocket`'s return value as an error code, and
//! its client was a TCP client "assumed" to be UDP. `docs/seed-defects.md` lists every
//! defect found in the C samples and what the Rust versions do instead.
//!
//! ```text
//! cargo run --example edge_udp_server
//! ```

use std::process::ExitCode;

use socknotify::CompletionPort;

#[path = "scenario/common.rs"]
mod common;
#[path = "scenario/edge_udp_server.rs"]
mod scenario;

fn main() -> ExitCode {
    let port = match CompletionPort::new() {
        Ok(port) => port,
        Err(e) => {
            eprintln!("edge_udp_server: cannot create the completion port: {e}");
            return ExitCode::FAILURE;
        }
    };
    let config = scenario::Config {
        verbose: true,
        ..scenario::Config::default()
    };
    println!(
        "edge_udp_server: backend {:?}, {} datagrams",
        port.backend(),
        config.datagrams
    );
    match scenario::run(&port, &config) {
        Ok(report) => {
            let ok = report.datagrams == config.datagrams as usize
                && report.malformed == 0
                && report.hangups == 0
                && report.removes == 1
                && report.after_remove == 0;
            println!(
                "edge_udp_server: {} entries, {} datagrams (per entry {:?}), {} malformed, \
                 {} HANGUP, REMOVE entries: {}, entries after REMOVE: {}",
                report.entries,
                report.datagrams,
                report.per_entry,
                report.malformed,
                report.hangups,
                report.removes,
                report.after_remove
            );
            if ok {
                println!("edge_udp_server: OK");
                ExitCode::SUCCESS
            } else {
                eprintln!("edge_udp_server: FAILED: the counts above are not what was sent");
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("edge_udp_server: error: {e}");
            ExitCode::FAILURE
        }
    }
}

//! A direct replacement for `WSAPoll`: the first scenario of the Winsock document.
//!
//! One thread accepts one TCP connection and registers it `PERSISTENT | LEVEL` for
//! `IN | HANGUP`; a client thread sends ten 4-byte payloads (`0xdeadbeef`) and shuts down.
//! The server takes entries with `dequeue` (a persistent registration needs no re-arming),
//! reads all 40 bytes, sees HANGUP and the end of the stream, removes the registration and
//! waits for its REMOVE entry before closing the socket.
//!
//! This ports the intent of the document's `SimplePollReplacement`, not its bugs: its
//! trigger lacked PERSISTENT (socknotify requires exactly one of ONESHOT/PERSISTENT), it
//! left on HANGUP without reading to the end of the stream, and its `DeregisterAndWait`
//! issued REMOVE again on every loop. `docs/seed-defects.md` lists every defect found in
//! the C samples and what the Rust versions do instead.
//!
//! ```text
//! cargo run --example poll_replacement
//! ```

use std::process::ExitCode;

use socknotify::CompletionPort;

#[path = "scenario/common.rs"]
mod common;
#[path = "scenario/poll_replacement.rs"]
mod scenario;

fn main() -> ExitCode {
    let port = match CompletionPort::new() {
        Ok(port) => port,
        Err(e) => {
            eprintln!("poll_replacement: cannot create the completion port: {e}");
            return ExitCode::FAILURE;
        }
    };
    let config = scenario::Config {
        verbose: true,
        ..scenario::Config::default()
    };
    println!(
        "poll_replacement: backend {:?}, {} payloads",
        port.backend(),
        config.messages
    );
    match scenario::run(&port, &config) {
        Ok(report) => {
            let ok = report.stream.is_exactly(u64::from(config.messages))
                && report.end_of_stream
                && report.removes == 1
                && report.after_remove == 0;
            println!(
                "poll_replacement: {} entries, {} with HANGUP, {} reads, {} bytes = {} payloads \
                 ({} mismatched bytes), end of stream: {}, REMOVE entries: {}, entries after \
                 REMOVE: {}",
                report.entries,
                report.hangups,
                report.reads,
                report.stream.bytes(),
                report.stream.payloads(),
                report.stream.mismatches(),
                report.end_of_stream,
                report.removes,
                report.after_remove
            );
            if ok {
                println!("poll_replacement: OK");
                ExitCode::SUCCESS
            } else {
                eprintln!("poll_replacement: FAILED: the counts above are not what was sent");
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("poll_replacement: error: {e}");
            ExitCode::FAILURE
        }
    }
}

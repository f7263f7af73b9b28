//! The seed document's three Winsock programs (`tests/seed/*.cpp`), with only their own
//! bugs fixed (each file lists which), compiled unchanged against the compatibility header
//! (`#include <winsock2.h>` found in `include/socknotify/`), linked statically against the
//! library, run once per backend and judged by what they print.
//!
//! The programs print no counts of their own, so the counts are of their lines: the
//! multithreaded server, for one, starts shutting down only after its 100th REMOVE entry,
//! so 16 "exited" lines and no error mean that every client was served and removed.

mod util;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// What one run printed, line by line, with its backend.
struct Run {
    backend: &'static str,
    lines: Vec<String>,
    text: String,
}

impl Run {
    /// How many lines are exactly `line` once thread ids are taken out.
    fn count(&self, line: &str) -> usize {
        self.lines.iter().filter(|l| l.as_str() == line).count()
    }

    fn check_no_errors(&self) {
        assert!(
            !self.text.contains("encountered an error"),
            "{}: the program reported an error:\n{}",
            self.backend,
            self.text
        );
        assert_eq!(
            self.count("RESULT returned"),
            1,
            "{}:\n{}",
            self.backend,
            self.text
        );
    }
}

/// "Server thread 1234 exited" -> "Server thread N exited".
fn without_ids(line: &str) -> String {
    let mut out = String::new();
    let mut in_number = false;
    for c in line.chars() {
        if c.is_ascii_digit() && out.ends_with("thread ") {
            out.push('N');
            in_number = true;
        } else if in_number && c.is_ascii_digit() {
        } else {
            in_number = false;
            out.push(c);
        }
    }
    out.trim_end().to_string()
}

fn run_seed(name: &str) -> Vec<Run> {
    let dir = util::scratch(&format!("seed-{name}"));
    let program = dir.join(name);
    let seed = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/seed");
    let mut cxx = Command::new("c++");
    cxx.args(util::CXX_FLAGS)
        // The seed's `#pragma comment(lib, "Ws2_32")` is MSVC's; GCC warns about it.
        .args(["-Wno-unknown-pragmas", "-O1", "-pthread", "-I"])
        .arg(&seed)
        .arg("-I")
        .arg(util::include_dir().join("socknotify"))
        .arg("-I")
        .arg(util::include_dir())
        .arg(seed.join(format!("{name}.cpp")))
        .arg(util::static_lib())
        .args(["-lpthread", "-ldl", "-lm", "-o"])
        .arg(&program);
    util::run_tool(cxx);
    util::backends()
        .into_iter()
        .map(|backend| {
            let output = util::run_program(&program, backend, Duration::from_secs(90));
            Run {
                backend,
                lines: output.stdout.lines().map(without_ids).collect(),
                text: output.stdout,
            }
        })
        .collect()
}

#[test]
fn seed_poll_replacement_reads_until_the_hang_up() {
    for run in run_seed("poll_replacement") {
        run.check_no_errors();
        assert_eq!(run.count("Client hung up. Exiting."), 1, "{}", run.text);
        // One read per notification; TCP may merge the ten 4-byte sends, and the hang-up's
        // entry carries IN too (the end of the stream is readable), whose read of 0 bytes
        // the seed also reports: 1 to 11 reads. (Eleven happen on a loaded machine, where
        // every send arrives on its own.)
        let reads = run.count("Received client data.");
        assert!((1..=11).contains(&reads), "{}: {reads} reads", run.backend);
    }
}

#[test]
fn seed_edge_udp_server_drains_all_ten_datagrams() {
    for run in run_seed("edge_udp_server") {
        run.check_no_errors();
        assert_eq!(run.count("Received client data."), 10, "{}", run.text);
        assert_eq!(
            run.count("Received all data. Exiting..."),
            1,
            "{}",
            run.text
        );
    }
}

#[test]
fn seed_multithreaded_tcp_server_serves_every_client_and_every_thread_exits() {
    for run in run_seed("multithreaded_tcp_server") {
        run.check_no_errors();
        assert_eq!(run.count("Server thread N exited"), 16, "{}", run.text);
        assert_eq!(
            run.count("Waiting for 16 server threads to exit..."),
            1,
            "{}",
            run.text
        );
        assert!(run.count("Server thread N waiting for client action...") >= 16);
    }
}

//! The seed document's three scenarios, written in C against `socknotify.h`
//! (`capi/examples/*.c`): compiled with the system C compiler, linked statically against
//! the `libsocknotify.a` that cargo built for this test run, run with a time limit once per
//! backend, and judged by the counts on their `RESULT` line.

mod util;

use std::time::Duration;

/// One run of a scenario: its backend and its RESULT pairs.
#[derive(Debug)]
struct Run {
    backend: &'static str,
    result: Vec<(String, u64)>,
}

impl Run {
    fn get(&self, key: &str) -> u64 {
        let found = self.result.iter().find(|(k, _)| k == key);
        found.map_or_else(
            || panic!("{}: no {key} in {:?}", self.backend, self.result),
            |(_, v)| *v,
        )
    }
}

/// Builds `examples/<name>.c` and runs it once per backend.
fn run_scenario(name: &str) -> Vec<Run> {
    let dir = util::scratch(name);
    let program = dir.join(name);
    util::build_static(&util::example(&format!("{name}.c")), &program);
    util::backends()
        .into_iter()
        .map(|backend| {
            let output = util::run_program(&program, backend, Duration::from_secs(90));
            Run {
                backend,
                result: util::result_line(&output),
            }
        })
        .collect()
}

#[test]
fn poll_replacement_reads_every_payload_then_the_hang_up() {
    for run in run_scenario("poll_replacement") {
        assert_eq!(run.get("bytes"), 40, "{run:?}");
        assert_eq!(run.get("payloads"), 10, "{run:?}");
        assert_eq!(run.get("corrupt"), 0, "{run:?}");
        assert_eq!(run.get("hangups"), 1, "{run:?}");
        assert_eq!(run.get("removes"), 1, "{run:?}");
    }
}

#[test]
fn edge_udp_server_drains_every_datagram_and_never_sees_a_hang_up() {
    for run in run_scenario("edge_udp_server") {
        assert_eq!(run.get("datagrams"), 10, "{run:?}");
        assert_eq!(run.get("bytes"), 40, "{run:?}");
        assert_eq!(run.get("corrupt"), 0, "{run:?}");
        assert_eq!(run.get("hangups"), 0, "{run:?}");
        assert_eq!(run.get("removes"), 1, "{run:?}");
        // Several datagrams may share one rising edge, but each entry had some.
        assert!((1..=10).contains(&run.get("notifications")), "{run:?}");
    }
}

#[test]
fn multithreaded_tcp_server_serves_every_client_once_and_exits_cleanly() {
    for run in run_scenario("multithreaded_tcp_server") {
        assert_eq!(run.get("clients"), 100, "{run:?}");
        assert_eq!(run.get("accepted"), 100, "{run:?}");
        assert_eq!(run.get("bytes"), 4000, "{run:?}");
        assert_eq!(run.get("payloads"), 1000, "{run:?}");
        assert_eq!(run.get("corrupt"), 0, "{run:?}");
        assert_eq!(run.get("removes"), 100, "{run:?}");
        assert_eq!(run.get("failures"), 0, "{run:?}");
        assert_eq!(run.get("threads"), 16, "{run:?}");
        assert_eq!(run.get("exited"), 16, "{run:?}");
    }
}

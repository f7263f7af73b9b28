//! The seed document's three scenarios, written in C against `socknotify.h`
//! (`capi/examples/*.c`): compiled with the system C compiler, linked statically against
//! the `libsocknotify.a` that cargo built for this test run, run with a time limit, and
//! judged by the counts on their `RESULT` line.

mod util;

use std::time::Duration;

/// Builds and runs `examples/<name>.c`; returns its RESULT pairs.
fn run_scenario(name: &str) -> Vec<(String, u64)> {
    let dir = util::scratch(name);
    let program = dir.join(name);
    util::build_static(&util::example(&format!("{name}.c")), &program);
    let output = util::run_program(&program, Duration::from_secs(90));
    util::result_line(&output)
}

#[test]
fn poll_replacement_reads_every_payload_then_the_hang_up() {
    let r = run_scenario("poll_replacement");
    assert_eq!(util::value(&r, "bytes"), 40, "{r:?}");
    assert_eq!(util::value(&r, "payloads"), 10, "{r:?}");
    assert_eq!(util::value(&r, "corrupt"), 0, "{r:?}");
    assert_eq!(util::value(&r, "hangups"), 1, "{r:?}");
    assert_eq!(util::value(&r, "removes"), 1, "{r:?}");
}

#[test]
fn edge_udp_server_drains_every_datagram_and_never_sees_a_hang_up() {
    let r = run_scenario("edge_udp_server");
    assert_eq!(util::value(&r, "datagrams"), 10, "{r:?}");
    assert_eq!(util::value(&r, "bytes"), 40, "{r:?}");
    assert_eq!(util::value(&r, "corrupt"), 0, "{r:?}");
    assert_eq!(util::value(&r, "hangups"), 0, "{r:?}");
    assert_eq!(util::value(&r, "removes"), 1, "{r:?}");
    let notifications = util::value(&r, "notifications");
    assert!((1..=10).contains(&notifications), "{r:?}");
}

#[test]
fn multithreaded_tcp_server_serves_every_client_once_and_exits_cleanly() {
    let r = run_scenario("multithreaded_tcp_server");
    assert_eq!(util::value(&r, "clients"), 100, "{r:?}");
    assert_eq!(util::value(&r, "accepted"), 100, "{r:?}");
    assert_eq!(util::value(&r, "bytes"), 4000, "{r:?}");
    assert_eq!(util::value(&r, "payloads"), 1000, "{r:?}");
    assert_eq!(util::value(&r, "corrupt"), 0, "{r:?}");
    assert_eq!(util::value(&r, "removes"), 100, "{r:?}");
    assert_eq!(util::value(&r, "failures"), 0, "{r:?}");
    assert_eq!(util::value(&r, "threads"), 16, "{r:?}");
    assert_eq!(util::value(&r, "exited"), 16, "{r:?}");
}

//! Documented behaviours in C (`tests/c/behaviour.c`, through the shared library and the
//! compatibility header), one test per group, each run once per backend. A group passes
//! when every check ran (the count is pinned) and none failed.

mod util;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

fn program() -> &'static PathBuf {
    static PROGRAM: OnceLock<PathBuf> = OnceLock::new();
    PROGRAM.get_or_init(|| {
        let dir = util::scratch("behaviour");
        let program = dir.join("behaviour");
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/behaviour.c");
        util::build_shared(&source, &program);
        program
    })
}

/// Runs one group on every backend; fails with every backend's failures.
fn group(name: &str, expected_checks: u64) {
    let mut problems = Vec::new();
    for backend in util::backends() {
        let mut child = Command::new(program());
        child.arg(name);
        let output = util::run_group(child, backend, Duration::from_secs(60));
        let result = util::result_line(&output);
        let failures = util::value(&result, "failures");
        let checks = util::value(&result, "checks");
        if failures != 0 || checks != expected_checks {
            problems.push(format!(
                "{backend}: {failures} failed, {checks} of {expected_checks} checks ran\n{}",
                output.stderr
            ));
        }
    }
    assert!(problems.is_empty(), "{name}:\n{}", problems.join("\n"));
}

#[test]
fn c_lifo_concurrency_1_most_recent_waiter_first() {
    group("lifo1", 13);
}

#[test]
fn c_lifo_concurrency_8_most_recent_waiter_first() {
    group("lifo8", 13);
}

#[test]
fn c_blocking_pair_frees_the_slot_of_a_blocked_thread() {
    group("blocking", 9);
}

#[test]
fn c_blocking_pairs_nest_and_misuse_fails_cleanly() {
    group("nesting", 16);
}

#[test]
fn c_get_queued_completion_status() {
    group("gqcs", 13);
}

#[test]
fn c_thread_handles_wait_and_close() {
    group("threads", 12);
}

#[test]
fn c_last_error_sees_posix_failures_and_library_failures_in_order() {
    group("errors", 13);
}

#[test]
fn c_edge_with_data_already_waiting_queues_at_most_one_entry() {
    group("edge", 8);
}

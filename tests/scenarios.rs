//! The Winsock document's three scenarios (`examples/`), run on every backend on this
//! machine. The tests run the examples' own code (the modules under `examples/scenario/`,
//! not a copy; for the multithreaded server, the main example itself and its checked
//! variant in `tests/scenario_support/`) and assert what the server saw: the counts, the
//! REMOVE entries, and the concurrency bound.

use std::io;
use std::time::Duration;

use socknotify::{Backend, CompletionPort, Events};

#[path = "../examples/scenario/common.rs"]
mod common;
#[path = "../examples/scenario/edge_udp_server.rs"]
mod edge_udp_server;
/// The main example, as a newcomer reads it (its `main` is unused here).
#[allow(dead_code)]
#[path = "../examples/multithreaded_tcp_server/main.rs"]
mod model;
#[path = "scenario_support/multithreaded_tcp_server.rs"]
mod multithreaded_tcp_server;
#[path = "../examples/scenario/poll_replacement.rs"]
mod poll_replacement;

/// A failsafe: a scenario that has not finished by then fails with what it waited for.
const TIMEOUT: Duration = Duration::from_secs(20);

/// A port with `concurrency` on every backend this machine has; says loudly which it skips.
fn ports(concurrency: usize) -> Vec<CompletionPort> {
    let mut ports = Vec::new();
    let candidates: &[Backend] = if cfg!(windows) {
        &[Backend::Afd, Backend::Native]
    } else {
        &[Backend::Epoll, Backend::IoUring]
    };
    for &backend in candidates {
        let built = CompletionPort::builder()
            .backend(backend)
            .concurrency(concurrency)
            .build();
        match built {
            Ok(port) => {
                assert_eq!(port.backend(), backend, "backend() must say what it uses");
                ports.push(port);
            }
            Err(e) if e.kind() == io::ErrorKind::Unsupported => {
                eprintln!("SKIP: backend {backend:?} unavailable: {e}");
            }
            Err(e) => panic!("building a port on {backend:?}: {e}"),
        }
    }
    assert!(!ports.is_empty(), "no backend is available at all");
    ports
}

#[test]
fn poll_replacement_reads_to_the_end_and_sees_one_remove() {
    for port in ports(0) {
        let backend = port.backend();
        let config = poll_replacement::Config {
            messages: 10,
            timeout: TIMEOUT,
            verbose: false,
        };
        let report = poll_replacement::run(&port, &config)
            .unwrap_or_else(|e| panic!("{backend:?}: poll replacement failed: {e}"));
        assert_eq!(report.stream.bytes(), 40, "{backend:?}: {report:?}");
        assert_eq!(report.stream.payloads(), 10, "{backend:?}: {report:?}");
        assert_eq!(report.stream.mismatches(), 0, "{backend:?}: {report:?}");
        assert!(report.stream.is_exactly(10), "{backend:?}: {report:?}");
        assert!(
            report.end_of_stream,
            "{backend:?}: no end of stream: {report:?}"
        );
        assert!(report.hangups >= 1, "{backend:?}: no HANGUP: {report:?}");
        assert!(report.reads >= 1, "{backend:?}: {report:?}");
        // Every read and the end of the stream came from an entry.
        assert!(report.entries > report.reads, "{backend:?}: {report:?}");
        assert_eq!(
            report.removes, 1,
            "{backend:?}: one REMOVE entry: {report:?}"
        );
        assert_eq!(report.others, 0, "{backend:?}: stray entries: {report:?}");
        assert_eq!(report.after_remove, 0, "{backend:?}: rule 4: {report:?}");
        assert_eq!(port.registrations(), 0, "{backend:?}: registration left");
    }
}

#[test]
fn edge_udp_server_drains_exactly_ten_datagrams_and_sees_one_remove() {
    for port in ports(0) {
        let backend = port.backend();
        let config = edge_udp_server::Config {
            datagrams: 10,
            timeout: TIMEOUT,
            verbose: false,
        };
        let report = edge_udp_server::run(&port, &config)
            .unwrap_or_else(|e| panic!("{backend:?}: edge UDP server failed: {e}"));
        assert_eq!(report.datagrams, 10, "{backend:?}: {report:?}");
        assert_eq!(report.malformed, 0, "{backend:?}: {report:?}");
        assert_eq!(report.hangups, 0, "{backend:?}: rule 14, UDP: {report:?}");
        // Each IN entry was drained to WouldBlock, and with EDGE an entry needs a new
        // datagram: never more entries than datagrams. (An entry may find nothing: its
        // datagram can arrive during the previous drain, which takes it.)
        assert_eq!(
            report.per_entry.iter().sum::<usize>(),
            10,
            "{backend:?}: {report:?}"
        );
        assert!(report.entries <= 10, "{backend:?}: {report:?}");
        assert_eq!(
            report.entries,
            report.per_entry.len(),
            "{backend:?}: {report:?}"
        );
        assert_eq!(
            report.removes, 1,
            "{backend:?}: one REMOVE entry: {report:?}"
        );
        assert_eq!(report.others, 0, "{backend:?}: stray entries: {report:?}");
        assert_eq!(report.after_remove, 0, "{backend:?}: rule 4: {report:?}");
        assert_eq!(port.registrations(), 0, "{backend:?}: registration left");
    }
}

/// Runs the multithreaded server and asserts everything its report says.
fn multithreaded(port: &CompletionPort, config: &multithreaded_tcp_server::Config) {
    let backend = port.backend();
    let report = multithreaded_tcp_server::run(port, config)
        .unwrap_or_else(|e| panic!("{backend:?}: multithreaded server failed: {e}"));
    let problems = report.problems(config);
    assert!(
        problems.is_empty(),
        "{backend:?}: {problems:#?}\n{report:#?}"
    );
    let clients = config.clients;
    let payloads = clients as u64 * u64::from(config.messages);
    assert_eq!(report.backend, backend);
    assert_eq!(report.concurrency, port.concurrency());
    assert_eq!(report.server_threads, config.server_threads, "{report:#?}");
    assert_eq!(
        report.client_threads,
        config.client_threads(),
        "{report:#?}"
    );
    assert_eq!(report.connected, clients, "{backend:?}: {report:#?}");
    assert_eq!(report.accepted, clients, "{backend:?}: {report:#?}");
    assert_eq!(
        report.removes, clients,
        "{backend:?}: one REMOVE per connection"
    );
    assert_eq!(report.bytes, payloads * 4, "{backend:?}: {report:#?}");
    assert_eq!(report.payloads, payloads, "{backend:?}: {report:#?}");
    assert_eq!(report.intact, clients, "{backend:?}: {report:#?}");
    assert!(
        report.max_released >= 1 && report.max_released <= port.concurrency(),
        "{backend:?}: {} threads released at once with concurrency {}",
        report.max_released,
        port.concurrency()
    );
    assert_eq!(
        report.exits, config.server_threads,
        "{backend:?}: every thread leaves through the exit entry"
    );
    assert_eq!(report.leaked, 0, "{backend:?}: {report:#?}");
    assert!(report.errors.is_empty() && report.error_count == 0);
    // Each connection needs at least one data entry and its REMOVE entry; every entry
    // that did not end a connection re-armed it, and the listener entries are counted.
    assert!(report.entries >= 2 * clients as u64, "{report:#?}");
    assert!(report.listener_entries >= 1, "{report:#?}");
    assert!(
        report.empty_accepts <= report.listener_entries,
        "{report:#?}"
    );
    assert!(report.rearms <= report.entries, "{report:#?}");
    assert!(report.elapsed < TIMEOUT, "{report:#?}");
    assert_eq!(
        report.nofile_raised, None,
        "a small run needs no more descriptors"
    );
    assert_eq!(
        port.registrations(),
        1,
        "{backend:?}: only the listener stays"
    );
}

#[test]
fn the_main_example_echoes_every_byte_and_shuts_down_through_the_exit_entry() {
    // The document's numbers: 16 server threads, 100 clients x 10 payloads; and a run with
    // a pool of clients taking turns and more threads than the concurrency allows.
    for [threads, clients, messages] in [[16, 100, 10], [3, 250, 40]] {
        for port in ports(0) {
            let backend = port.backend();
            let ok = model::run(port, [threads, clients, messages])
                .unwrap_or_else(|e| panic!("{backend:?}: the example failed: {e}"));
            assert!(ok, "{backend:?}: the example's summary (above) says FAILED");
        }
    }
}

#[test]
fn multithreaded_server_counts_every_byte_and_every_remove() {
    // The document's numbers: 16 server threads, 100 clients x 10 payloads.
    let config = multithreaded_tcp_server::Config {
        timeout: TIMEOUT,
        ..multithreaded_tcp_server::Config::default()
    };
    for port in ports(0) {
        multithreaded(&port, &config);
    }
}

#[test]
fn multithreaded_server_with_concurrency_one_releases_one_thread_at_a_time() {
    let config = multithreaded_tcp_server::Config {
        server_threads: 8,
        clients: 50,
        timeout: TIMEOUT,
        ..multithreaded_tcp_server::Config::default()
    };
    for port in ports(1) {
        assert_eq!(port.concurrency(), 1);
        multithreaded(&port, &config);
    }
}

#[test]
fn multithreaded_server_with_a_client_pool_and_one_entry_per_call() {
    // Many connections per client thread, and one entry per `process` call so that every
    // re-arm goes through its own call.
    let config = multithreaded_tcp_server::Config {
        clients: 400,
        messages: 20,
        client_threads: 4,
        batch: 1,
        timeout: TIMEOUT,
        ..multithreaded_tcp_server::Config::default()
    };
    assert_eq!(config.client_threads(), 4);
    for port in ports(0) {
        multithreaded(&port, &config);
    }
}

#[test]
fn multithreaded_report_notices_a_mismatch() {
    // The check must be able to fail: the same run judged against other numbers.
    let config = multithreaded_tcp_server::Config {
        server_threads: 2,
        clients: 3,
        messages: 2,
        timeout: TIMEOUT,
        ..multithreaded_tcp_server::Config::default()
    };
    let port = ports(0).swap_remove(0);
    let report = multithreaded_tcp_server::run(&port, &config).expect("small run");
    assert_eq!(report.problems(&config), Vec::<String>::new());
    let more_messages = multithreaded_tcp_server::Config {
        messages: 3,
        ..config.clone()
    };
    let problems = report.problems(&more_messages);
    assert!(
        problems.iter().any(|p| p.starts_with("bytes")),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.starts_with("payloads")),
        "{problems:?}"
    );
    let mut over = report.clone();
    over.max_released = over.concurrency + 1;
    assert!(
        over.problems(&config)
            .iter()
            .any(|p| p.contains("concurrency")),
        "a concurrency overrun must be reported"
    );
}

#[test]
fn client_thread_defaults_follow_the_document_then_pool() {
    let with = |clients, client_threads| multithreaded_tcp_server::Config {
        clients,
        client_threads,
        ..multithreaded_tcp_server::Config::default()
    };
    assert_eq!(with(100, 0).client_threads(), 100);
    assert_eq!(with(5000, 0).client_threads(), 32);
    assert_eq!(with(3, 8).client_threads(), 3);
    assert_eq!(with(0, 0).client_threads(), 1);
}

#[test]
fn payload_bytes_are_little_endian_deadbeef() {
    assert_eq!(common::PAYLOAD_BYTES, [0xef, 0xbe, 0xad, 0xde]);
    assert!(!Events::FILTER.contains(Events::REMOVE));
}

//! `socknotify-bench`: socknotify side by side with raw epoll, poll(2), mio and polling,
//! and as an HTTP server beside those and tokio, driven by `wrk`.
//!
//! The parent (the default command) plans every measurement and runs each one in a fresh
//! child process, `socknotify-bench run-one ...`, optionally under `perf stat` to count
//! system calls. It prints tables, writes CSV files and draws SVG plots into the results
//! folder. See `docs/benchmarks.md` in the repository for the method and the results.
//!
//! ```text
//! cargo run --release -p socknotify-bench -- [--smoke] [--out DIR] [--reps N] ...
//! cargo run --release -p socknotify-bench -- --help
//! cargo run --release -p socknotify-bench -- hotpath   # issue 11's hot-path table
//! ```

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]
#![warn(rust_2018_idioms, missing_debug_implementations)]

mod child;
mod contender;
mod exec;
mod harness;
mod hotpath;
mod http;
mod job;
mod options;
mod perf;
mod report;
mod run;
mod sys;
mod workload;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some(child::COMMAND) => child::main(&args[1..]),
        Some(http::COMMAND) => http::main(&args[1..]),
        Some(hotpath::COMMAND) => hotpath::main(&args[1..]),
        Some(hotpath::probe::COMMAND) => hotpath::probe::main(&args[1..]),
        _ => harness::main(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("socknotify-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

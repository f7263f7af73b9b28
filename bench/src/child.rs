//! The hidden `run-one` subcommand: one measurement in this fresh process, reported as a
//! single `RESULT key=value ...` line on standard output for the parent to parse.

use std::io;
use std::time::Duration;

use crate::job::Job;
use crate::perf::Control;
use crate::{sys, workload};

pub const COMMAND: &str = "run-one";

/// The descriptor limit a child asks for; the kernel caps it at the hard limit unless the
/// process may raise that.
pub const WANTED_FILES: u64 = 250_000;

/// How long past its planned end a child may run before it ends itself.
const GRACE: Duration = Duration::from_secs(60);

pub fn main(args: &[String]) -> io::Result<()> {
    let job = Job::from_args(args)?;
    sys::raise_nofile(WANTED_FILES)?;
    let limit = job.warmup + job.duration + GRACE;
    std::thread::spawn(move || {
        std::thread::sleep(limit);
        eprintln!("run-one: still running after {limit:?}; giving up");
        std::process::exit(3);
    });
    let perf = Control::from_env()?;
    let fields = workload::run(&job, perf)?;
    let mut line = String::from("RESULT");
    for (k, v) in fields {
        line.push_str(&format!(" {k}={v}"));
    }
    println!("{line}");
    Ok(())
}

/// Parses a `RESULT` line into its fields.
pub fn parse_result(stdout: &str) -> Option<Vec<(String, f64)>> {
    let line = stdout.lines().find_map(|l| l.strip_prefix("RESULT"))?;
    line.split_whitespace()
        .map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::parse_result;

    #[test]
    fn result_lines_round_trip() {
        let got = parse_result("noise\nRESULT count=12 elapsed_ns=5e8\n").unwrap();
        assert_eq!(
            got,
            vec![("count".into(), 12.0), ("elapsed_ns".into(), 5e8)]
        );
        assert!(parse_result("RESULT count=x").is_none());
        assert!(parse_result("nothing").is_none());
    }
}

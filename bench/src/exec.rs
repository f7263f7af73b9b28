//! Runs one job in a child process (`run-one`), optionally under `perf stat`, with a time
//! limit, and collects its `RESULT` line.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::child;
use crate::job::Job;
use crate::perf::Perf;

/// How long past its planned length the parent lets a child run before it kills it (the
/// child gives up by itself a little earlier).
const LIMIT: Duration = Duration::from_secs(90);

/// Where children's output goes; removed when dropped.
#[derive(Debug)]
pub struct Runner {
    program: PathBuf,
    dir: PathBuf,
}

/// A child's fields, and the system calls it made inside its window when counted.
#[derive(Debug)]
pub struct ChildResult {
    pub fields: Vec<(String, f64)>,
    pub syscalls: Option<u64>,
    /// Every event the [`Perf`] counted, in its order (the first is `syscalls`); empty
    /// without perf.
    pub counts: Vec<Option<u64>>,
}

impl Runner {
    pub fn new(dir: &Path) -> io::Result<Runner> {
        fs::create_dir_all(dir)?;
        Ok(Runner {
            program: std::env::current_exe()?,
            dir: dir.to_path_buf(),
        })
    }

    /// Runs `job`; under `perf` when given.
    ///
    /// # Errors
    /// A message with the end of the child's standard error when it failed.
    pub fn run(&self, job: &Job, perf: Option<&Perf>) -> Result<ChildResult, String> {
        let mut args = vec![child::COMMAND.to_string()];
        args.extend(job.to_args());
        self.run_args(&args, job.warmup + job.duration, perf)
    }

    /// Runs this program with `args` (a subcommand and its options) that plans to take
    /// `planned`; under `perf` when given.
    ///
    /// # Errors
    /// A message with the end of the child's standard error when it failed.
    pub fn run_args(
        &self,
        args: &[String],
        planned: Duration,
        perf: Option<&Perf>,
    ) -> Result<ChildResult, String> {
        let (command, wrapped) = match perf {
            Some(p) => {
                let (command, wrapped) = p
                    .wrap("child", &self.program, args)
                    .map_err(|e| format!("cannot set up perf: {e}"))?;
                (command, Some(wrapped))
            }
            None => {
                let mut c = Command::new(&self.program);
                c.args(args);
                (c, None)
            }
        };
        let (status, stdout, stderr) = self.finish(command, planned)?;
        let counts = wrapped.as_ref().map(|w| w.counts()).unwrap_or_default();
        let syscalls = counts.first().copied().flatten();
        if !status.success() {
            let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            return Err(format!("child failed ({status}): {}", tail.join(" | ")));
        }
        let fields = child::parse_result(&stdout)
            .ok_or_else(|| format!("child printed no RESULT line: {stdout:?}"))?;
        Ok(ChildResult {
            fields,
            syscalls,
            counts,
        })
    }

    /// This program, for a caller that wraps it in a tool of its own (valgrind).
    pub fn program(&self) -> &Path {
        &self.program
    }

    /// Runs `command` to its end (killing it `LIMIT` past `planned`); its exit status,
    /// standard output and standard error.
    ///
    /// # Errors
    /// It could not start, or ran out of time.
    pub fn finish(
        &self,
        mut command: Command,
        planned: Duration,
    ) -> Result<(ExitStatus, String, String), String> {
        let out_path = self.dir.join("child.out");
        let err_path = self.dir.join("child.err");
        let out = File::create(&out_path).map_err(|e| e.to_string())?;
        let err = File::create(&err_path).map_err(|e| e.to_string())?;
        command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .env_remove("SOCKNOTIFY_BACKEND");
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot start a child: {e}"))?;
        let deadline = Instant::now() + planned + LIMIT;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Ok(None) => {
                    // Our own child, by its id.
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!("timed out after {LIMIT:?} past its planned end"));
                }
                Err(e) => return Err(format!("cannot wait for a child: {e}")),
            }
        };
        let stdout = fs::read_to_string(&out_path).unwrap_or_default();
        let stderr = fs::read_to_string(&err_path).unwrap_or_default();
        Ok((status, stdout, stderr))
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

//! The parent's side of the HTTP benchmark: for each repetition, configuration and
//! server, one server child, one `wrk` run, the child's CPU time and (with perf) its system
//! calls over that run.

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use super::{Server, COMMAND};
use crate::options::Options;
use crate::perf::Perf;

/// How to get `wrk` when it is missing.
pub const INSTALL: &str = "install it with `apt-get install wrk` (Debian package wrk)";

/// How long a server may outlive its planned run before it ends itself.
const GRACE: Duration = Duration::from_secs(30);

/// One row of the HTTP tables: server threads and wrk connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Config {
    pub threads: usize,
    pub conns: usize,
}

impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "T={} c={}", self.threads, self.conns)
    }
}

/// What one run measured.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// Responses wrk received, over `seconds`.
    pub requests: f64,
    pub seconds: f64,
    /// CPU time of the server process over the run (user + system, every thread).
    pub cpu_ns: f64,
    pub user_ns: f64,
    pub sys_ns: f64,
    /// Responses the server counted (a cross-check).
    pub served: f64,
    /// System calls of the server over the run, when perf counted them.
    pub syscalls: Option<f64>,
    /// wrk's socket errors and non-2xx responses.
    pub errors: f64,
}

/// Every repetition of one server in one configuration.
#[derive(Debug)]
pub struct Outcome {
    pub config: Config,
    pub server: Server,
    pub reps: Vec<Option<Sample>>,
    pub failures: Vec<String>,
}

/// Everything the HTTP benchmark measured.
#[derive(Debug)]
pub struct Results {
    pub servers: Vec<Server>,
    pub configs: Vec<Config>,
    pub outcomes: Vec<Outcome>,
    pub duration: Duration,
    pub wrk_threads: usize,
}

/// Whether `wrk` runs here.
pub fn wrk_found() -> bool {
    Command::new("wrk")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Runs the HTTP benchmark as `opts` say; `perf` counts system calls when given.
pub fn run(opts: &Options, perf: Option<&Perf>, scratch: &Path) -> io::Result<Results> {
    let (mut servers, left_out) = Server::available();
    for n in left_out {
        eprintln!("note: {n}");
    }
    if let Some(chosen) = &opts.servers {
        servers.retain(|s| *s == Server::EpollEdge || chosen.contains(s));
    }
    let mut configs = Vec::new();
    for &threads in &opts.http_threads {
        for &conns in &opts.http_conns {
            configs.push(Config { threads, conns });
        }
    }
    let mut outcomes: Vec<Outcome> = configs
        .iter()
        .flat_map(|&config| {
            servers.iter().map(move |&server| Outcome {
                config,
                server,
                reps: Vec::new(),
                failures: Vec::new(),
            })
        })
        .collect();
    let runs = outcomes.len() * opts.http_reps;
    eprintln!(
        "socknotify-bench: http: {} servers x {} configurations x {} repetitions of {:?} \
         (wrk -t{}), about {:.0?}",
        servers.len(),
        configs.len(),
        opts.http_reps,
        opts.http_duration,
        opts.wrk_threads,
        (opts.http_duration + Duration::from_millis(400)) * runs as u32
    );
    let program = std::env::current_exe()?;
    for rep in 0..opts.http_reps {
        for o in &mut outcomes {
            let run = Run {
                program: &program,
                scratch,
                perf,
                duration: opts.http_duration,
                wrk_threads: opts.wrk_threads,
            };
            match run.measure(o.server, o.config) {
                Ok(s) => {
                    eprintln!(
                        "[http rep {}/{}] {} {}: {:.0} requests/s, {:.2} us CPU/request, {} \
                         system calls/request{}",
                        rep + 1,
                        opts.http_reps,
                        o.config,
                        o.server.name(),
                        s.requests / s.seconds,
                        s.cpu_ns / s.requests / 1e3,
                        s.syscalls
                            .map_or_else(|| "n/a".into(), |c| format!("{:.2}", c / s.requests)),
                        if s.errors > 0.0 {
                            format!(", {} wrk errors", s.errors)
                        } else {
                            String::new()
                        }
                    );
                    o.reps.push(Some(s));
                }
                Err(e) => {
                    eprintln!("  http {} {}: {e}", o.config, o.server.name());
                    o.reps.push(None);
                    o.failures.push(e);
                }
            }
        }
    }
    Ok(Results {
        servers,
        configs,
        outcomes,
        duration: opts.http_duration,
        wrk_threads: opts.wrk_threads,
    })
}

/// What one measurement needs.
struct Run<'a> {
    program: &'a Path,
    scratch: &'a Path,
    perf: Option<&'a Perf>,
    duration: Duration,
    wrk_threads: usize,
}

/// A child process that is killed (by its own id) and reaped if it is still running when
/// this is dropped.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

fn line(out: &mut BufReader<ChildStdout>, what: &str) -> Result<String, String> {
    let mut l = String::new();
    match out.read_line(&mut l) {
        Ok(0) => Err(format!("the server ended before it printed {what}")),
        Ok(_) => Ok(l.trim().to_string()),
        Err(e) => Err(format!("reading the server's {what}: {e}")),
    }
}

fn tell(stdin: &mut ChildStdin, what: &str) -> Result<(), String> {
    writeln!(stdin, "{what}")
        .and_then(|()| stdin.flush())
        .map_err(|e| format!("telling the server {what}: {e}"))
}

impl Run<'_> {
    fn measure(&self, server: Server, config: Config) -> Result<Sample, String> {
        let err_path: PathBuf = self.scratch.join("server.err");
        let err = File::create(&err_path).map_err(|e| e.to_string())?;
        let limit = self.duration + GRACE;
        let mut child = Command::new(self.program)
            .args([COMMAND, "--server", server.name(), "--threads"])
            .arg(config.threads.to_string())
            .arg("--limit")
            .arg(limit.as_secs_f64().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(err)
            .env_remove("SOCKNOTIFY_BACKEND")
            .spawn()
            .map_err(|e| format!("cannot start the server: {e}"))?;
        let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err("the server has no pipes".into());
        };
        let pid = child.id();
        let server_child = Reaped(child);
        let mut stdout = BufReader::new(stdout);
        let result = self.drive(pid, &mut stdin, &mut stdout, config);
        drop(stdin);
        drop(server_child);
        result.map_err(|e| {
            let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
            let tail: Vec<&str> = stderr.lines().rev().take(3).collect();
            format!("{e} {}", tail.join(" | "))
        })
    }

    fn drive(
        &self,
        pid: u32,
        stdin: &mut ChildStdin,
        stdout: &mut BufReader<ChildStdout>,
        config: Config,
    ) -> Result<Sample, String> {
        let listen = line(stdout, "its port")?;
        let port: u16 = listen
            .strip_prefix("LISTEN ")
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| format!("the server printed {listen:?}, not its port"))?;
        let counting = match self.perf {
            Some(p) => {
                let (mut command, wrapped) =
                    p.attach("server", pid).map_err(|e| format!("perf: {e}"))?;
                let perf = command
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .map_err(|e| format!("cannot start perf: {e}"))?;
                let control = wrapped.control().map_err(|e| format!("perf: {e}"))?;
                Some((Reaped(perf), wrapped, control))
            }
            None => None,
        };
        tell(stdin, "start")?;
        let started = line(stdout, "STARTED")?;
        if started != "STARTED" {
            return Err(format!("the server answered {started:?} to start"));
        }
        if let Some((_, _, control)) = &counting {
            control.enable().map_err(|e| format!("perf: {e}"))?;
        }
        let url = format!("http://127.0.0.1:{port}/");
        let wrk = Command::new("wrk")
            .arg(format!("-t{}", self.wrk_threads.min(config.conns)))
            .arg(format!("-c{}", config.conns))
            .arg(format!(
                "-d{}s",
                self.duration.as_secs_f64().ceil().max(1.0)
            ))
            .args(["--timeout", "5s"])
            .arg(&url)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run wrk ({e}); {INSTALL}"))?;
        if let Some((_, _, control)) = &counting {
            control.disable().map_err(|e| format!("perf: {e}"))?;
        }
        tell(stdin, "stop")?;
        let result = line(stdout, "its RESULT")?;
        let fields = crate::child::parse_result(&result)
            .ok_or_else(|| format!("the server printed {result:?}"))?;
        let field = |k: &str| fields.iter().find(|(n, _)| n == k).map(|f| f.1);
        let syscalls = match counting {
            Some((mut perf, wrapped, control)) => {
                drop(control);
                // Counting is disabled already; SIGINT makes perf write its count and end.
                // SAFETY: plain syscall; the pid is our own child's, not yet reaped.
                unsafe { libc::kill(perf.0.id() as libc::pid_t, libc::SIGINT) };
                let _ = perf.0.wait();
                wrapped.count().map(|c| c as f64)
            }
            None => None,
        };
        let text = String::from_utf8_lossy(&wrk.stdout);
        if !wrk.status.success() {
            let err = String::from_utf8_lossy(&wrk.stderr);
            return Err(format!("wrk failed ({}): {}", wrk.status, err.trim()));
        }
        let w = parse_wrk(&text).ok_or_else(|| format!("cannot read wrk's output: {text:?}"))?;
        if w.requests <= 0.0 {
            return Err(format!("wrk got no response: {text:?}"));
        }
        Ok(Sample {
            requests: w.requests,
            seconds: w.seconds,
            cpu_ns: field("cpu_ns").unwrap_or(f64::NAN),
            user_ns: field("user_ns").unwrap_or(f64::NAN),
            sys_ns: field("sys_ns").unwrap_or(f64::NAN),
            served: field("served").unwrap_or(f64::NAN),
            syscalls,
            errors: w.errors,
        })
    }
}

/// What wrk reported.
#[derive(Debug, PartialEq)]
struct Wrk {
    requests: f64,
    seconds: f64,
    errors: f64,
}

/// Reads `N requests in 3.00s, ...`, `Socket errors: connect A, read B, write C, timeout
/// D` and `Non-2xx or 3xx responses: E` from wrk's report.
fn parse_wrk(text: &str) -> Option<Wrk> {
    let head = text.lines().find(|l| l.contains(" requests in "))?;
    let mut words = head.split_whitespace();
    let requests: f64 = words.next()?.parse().ok()?;
    let span = words.nth(2)?.trim_end_matches(',');
    let seconds = if let Some(ms) = span.strip_suffix("ms") {
        ms.parse::<f64>().ok()? / 1e3
    } else if let Some(s) = span.strip_suffix('s') {
        s.parse().ok()?
    } else if let Some(m) = span.strip_suffix('m') {
        m.parse::<f64>().ok()? * 60.0
    } else {
        return None;
    };
    let numbers = |l: &str| -> f64 {
        l.split(|c: char| !c.is_ascii_digit())
            .filter_map(|n| n.parse::<f64>().ok())
            .sum()
    };
    let mut errors = 0.0;
    for l in text.lines() {
        if let Some(rest) = l.trim().strip_prefix("Socket errors:") {
            errors += numbers(rest);
        }
        if let Some(rest) = l.trim().strip_prefix("Non-2xx or 3xx responses:") {
            errors += numbers(rest);
        }
    }
    Some(Wrk {
        requests,
        seconds,
        errors,
    })
}

#[cfg(test)]
mod tests {
    use super::{parse_wrk, Wrk};

    #[test]
    fn reads_wrk_reports() {
        let out = "Running 3s test @ http://127.0.0.1:4000/\n  2 threads and 100 connections\n\
                   \x20 Thread Stats   Avg      Stdev     Max   +/- Stdev\n\
                   \x20   Latency     1.20ms  300.00us   5.00ms   80.00%\n\
                   \x20 123456 requests in 3.01s, 10.00MB read\n\
                   \x20 Socket errors: connect 0, read 2, write 0, timeout 1\n\
                   Requests/sec:  41015.28\nTransfer/sec:      3.32MB\n";
        let got = parse_wrk(out).unwrap();
        assert_eq!(
            got,
            Wrk {
                requests: 123_456.0,
                seconds: 3.01,
                errors: 3.0
            }
        );
        assert!(parse_wrk("nothing").is_none());
    }
}

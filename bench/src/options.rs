//! Command-line options: a small hand-rolled parser (a handful of flags does not need a
//! parser crate).

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use crate::contender::Contender;
use crate::http::Server;
use crate::job::Workload;

pub fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg.into())
}

/// A cursor over `--flag value` arguments.
#[derive(Debug)]
pub struct Args<'a> {
    rest: std::slice::Iter<'a, String>,
}

impl<'a> Args<'a> {
    pub fn new(args: &'a [String]) -> Args<'a> {
        Args { rest: args.iter() }
    }

    pub fn next_flag(&mut self) -> Option<String> {
        self.rest.next().cloned()
    }

    pub fn value(&mut self, flag: &str) -> io::Result<String> {
        self.rest
            .next()
            .cloned()
            .ok_or_else(|| invalid(format!("{flag} needs a value")))
    }

    pub fn number(&mut self, flag: &str) -> io::Result<usize> {
        let v = self.value(flag)?;
        v.parse()
            .map_err(|_| invalid(format!("{flag}: {v:?} is not a whole number")))
    }

    pub fn seconds(&mut self, flag: &str) -> io::Result<Duration> {
        let v = self.value(flag)?;
        v.parse::<f64>()
            .ok()
            .and_then(|s| Duration::try_from_secs_f64(s).ok())
            .ok_or_else(|| invalid(format!("{flag}: {v:?} is not a number of seconds")))
    }

    pub fn list(&mut self, flag: &str) -> io::Result<Vec<usize>> {
        let v = self.value(flag)?;
        v.split(',')
            .map(|n| {
                n.trim()
                    .parse()
                    .map_err(|_| invalid(format!("{flag}: {n:?} is not a whole number")))
            })
            .collect()
    }
}

pub const HELP: &str = "\
socknotify-bench: socknotify against raw epoll, poll(2), mio and polling

USAGE:
    cargo run --release -p socknotify-bench -- [OPTIONS]

OPTIONS:
    --smoke               every workload for a fraction of a second, tiny sizes (CI)
    --out DIR             results folder [default: results]
    --reps N              repetitions of each measurement [default: 5; smoke: 1]
    --warmup SECS         warm-up before each measurement [default: 0.2]
    --duration SECS       length of each measurement [default: 0.5]
    --only LIST           workloads, comma-separated: pingpong,idle,churn,posted,memory,
                          batch,http [default: all; --smoke: all but http]
    --contenders LIST     contenders, comma-separated (raw epoll is always included):
                          socknotify-epoll,socknotify-io_uring,mio,polling,poll
    --conns LIST          ping-pong connection counts [default: 64,1000,10000]
    --threads LIST        ping-pong thread counts [default: 1,2,16]
    --idle LIST           idle registered sockets [default: 10,1000,10000,100000]
    --sockets N           sockets for churn [default: 1000]
    --memory-sockets N    registrations for memory [default: 100000]
    --batch LIST          re-arms per process call [default: 100,4000]; the sockets
                          registered are as many as the largest batch
    --tcp                 ping-pong and idle over TCP on 127.0.0.1 instead of socket pairs
    --no-perf             do not count system calls with perf even if it is there
    --concurrency N       socknotify ports' concurrency [default: 0, the number of CPUs]
    --servers LIST        http servers (epoll-et, the baseline, is always included):
                          epoll-oneshot,socknotify-epoll-oneshot,socknotify-epoll-edge,
                          socknotify-io_uring-oneshot,socknotify-io_uring-edge,mio,
                          polling,tokio
    --http-conns LIST     wrk connections [default: 100,1000]
    --http-threads LIST   server threads [default: 1,2]
    --http-duration SECS  length of each wrk run [default: 3]
    --http-reps N         repetitions of each http run [default: 3]
    --wrk-threads N       wrk's threads [default: 2]
    --help                this text

issue 11's hot-path figures (instructions per entry, futex calls per message,
zero-timeout dequeue), one table in about a minute; needs valgrind and perf:
    cargo run --release -p socknotify-bench -- hotpath [--smoke] [--reps N]

The http workload needs wrk (Debian: apt-get install wrk); without it, it is skipped
with a note (an error when --only asks for it).

Sizes that do not fit the descriptor limit are shrunk or skipped with a note.
";

/// The parent's options.
#[derive(Clone, Debug)]
pub struct Options {
    pub smoke: bool,
    pub out: PathBuf,
    pub reps: usize,
    pub warmup: Duration,
    pub duration: Duration,
    pub workloads: Vec<Workload>,
    pub contenders: Option<Vec<Contender>>,
    pub conns: Vec<usize>,
    pub threads: Vec<usize>,
    pub idle: Vec<usize>,
    pub churn_sockets: usize,
    pub memory_sockets: usize,
    pub batch: Vec<usize>,
    pub tcp: bool,
    pub perf: bool,
    pub concurrency: usize,
    /// Run the HTTP benchmark.
    pub http: bool,
    /// `--only` asked for it: a missing wrk is an error, not a note.
    pub http_asked: bool,
    pub servers: Option<Vec<Server>>,
    pub http_conns: Vec<usize>,
    pub http_threads: Vec<usize>,
    pub http_duration: Duration,
    pub http_reps: usize,
    pub wrk_threads: usize,
    pub help: bool,
}

impl Options {
    pub fn parse(args: &[String]) -> io::Result<Options> {
        let smoke = args.iter().any(|a| a == "--smoke");
        let mut o = if smoke {
            Options {
                smoke,
                out: PathBuf::from("results"),
                reps: 1,
                warmup: Duration::from_millis(20),
                duration: Duration::from_millis(60),
                workloads: Workload::ALL.to_vec(),
                contenders: None,
                conns: vec![16],
                threads: vec![1, 2],
                idle: vec![10, 100],
                churn_sockets: 64,
                memory_sockets: 1000,
                batch: vec![10, 100],
                tcp: false,
                perf: true,
                concurrency: 0,
                http: false,
                http_asked: false,
                servers: None,
                http_conns: vec![16],
                http_threads: vec![1],
                http_duration: Duration::from_secs(1),
                http_reps: 1,
                wrk_threads: 1,
                help: false,
            }
        } else {
            Options {
                smoke,
                out: PathBuf::from("results"),
                reps: 5,
                warmup: Duration::from_millis(200),
                duration: Duration::from_millis(500),
                workloads: Workload::ALL.to_vec(),
                contenders: None,
                conns: vec![64, 1000, 10000],
                threads: vec![1, 2, 16],
                idle: vec![10, 1000, 10000, 100000],
                churn_sockets: 1000,
                memory_sockets: 100_000,
                batch: vec![100, 4000],
                tcp: false,
                perf: true,
                concurrency: 0,
                http: true,
                http_asked: false,
                servers: None,
                http_conns: vec![100, 1000],
                http_threads: vec![1, 2],
                http_duration: Duration::from_secs(3),
                http_reps: 3,
                wrk_threads: 2,
                help: false,
            }
        };
        let mut a = Args::new(args);
        while let Some(flag) = a.next_flag() {
            match flag.as_str() {
                "--smoke" => {}
                "--out" => o.out = PathBuf::from(a.value(&flag)?),
                "--reps" => o.reps = a.number(&flag)?.max(1),
                "--warmup" => o.warmup = a.seconds(&flag)?,
                "--duration" => o.duration = a.seconds(&flag)?,
                "--only" => {
                    let list = a.value(&flag)?;
                    let names: Vec<&str> = list.split(',').map(str::trim).collect();
                    o.http = names.contains(&"http");
                    o.http_asked = o.http;
                    o.workloads = names
                        .into_iter()
                        .filter(|w| *w != "http")
                        .map(Workload::parse)
                        .collect::<io::Result<_>>()?;
                }
                "--servers" => {
                    let list = a
                        .value(&flag)?
                        .split(',')
                        .map(|c| Server::parse(c.trim()))
                        .collect::<io::Result<_>>()?;
                    o.servers = Some(list);
                }
                "--http-conns" => o.http_conns = a.list(&flag)?,
                "--http-threads" => o.http_threads = a.list(&flag)?,
                "--http-duration" => o.http_duration = a.seconds(&flag)?,
                "--http-reps" => o.http_reps = a.number(&flag)?.max(1),
                "--wrk-threads" => o.wrk_threads = a.number(&flag)?.max(1),
                "--contenders" => {
                    let list = a
                        .value(&flag)?
                        .split(',')
                        .map(|c| Contender::parse(c.trim()))
                        .collect::<io::Result<_>>()?;
                    o.contenders = Some(list);
                }
                "--conns" => o.conns = a.list(&flag)?,
                "--threads" => o.threads = a.list(&flag)?,
                "--idle" => o.idle = a.list(&flag)?,
                "--sockets" => o.churn_sockets = a.number(&flag)?.max(2),
                "--memory-sockets" => o.memory_sockets = a.number(&flag)?.max(2),
                "--batch" => o.batch = a.list(&flag)?,
                "--tcp" => o.tcp = true,
                "--no-perf" => o.perf = false,
                "--concurrency" => o.concurrency = a.number(&flag)?,
                "--help" | "-h" => o.help = true,
                other => {
                    return Err(invalid(format!(
                        "unknown option {other:?}; --help lists the options"
                    )))
                }
            }
        }
        if o.batch.contains(&0) {
            return Err(invalid("--batch: every batch size must be at least 1"));
        }
        if o.http_threads.contains(&0) || o.http_conns.contains(&0) {
            return Err(invalid(
                "--http-threads, --http-conns: every value must be at least 1",
            ));
        }
        if o.threads.contains(&0) {
            return Err(invalid("--threads: every thread count must be at least 1"));
        }
        Ok(o)
    }
}

//! One measurement: a workload, its sizes and a contender. The parent turns a [`Job`] into
//! the arguments of a `run-one` child, which parses them back.

use std::fmt;
use std::io;
use std::time::Duration;

use crate::contender::Contender;
use crate::options::{invalid, Args};

/// What a child measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Workload {
    /// Messages bounce over `conns` connections served by `threads` threads.
    PingPong,
    /// One active connection among `idle` registered idle sockets.
    Idle,
    /// Register and remove `sockets` sockets, over and over.
    Churn,
    /// One thread posts entries, another dequeues them.
    Posted,
    /// Resident memory per registration over `sockets` registrations.
    Memory,
    /// Re-arms of `batch` registered one-shot sockets (out of `sockets`) per call.
    Batch,
}

impl Workload {
    pub const ALL: [Workload; 6] = [
        Workload::PingPong,
        Workload::Idle,
        Workload::Churn,
        Workload::Posted,
        Workload::Memory,
        Workload::Batch,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Workload::PingPong => "pingpong",
            Workload::Idle => "idle",
            Workload::Churn => "churn",
            Workload::Posted => "posted",
            Workload::Memory => "memory",
            Workload::Batch => "batch",
        }
    }

    pub fn parse(s: &str) -> io::Result<Workload> {
        Workload::ALL
            .into_iter()
            .find(|w| w.name() == s)
            .ok_or_else(|| invalid(format!("unknown workload {s:?}")))
    }
}

/// How the posted-entries workload runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mode {
    /// The producer posts as fast as it can (at most a window ahead of the consumer).
    Throughput,
    /// One entry in flight: post, wait until it was dequeued, post the next.
    Latency,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Throughput => "throughput",
            Mode::Latency => "latency",
        }
    }

    fn parse(s: &str) -> io::Result<Mode> {
        match s {
            "throughput" => Ok(Mode::Throughput),
            "latency" => Ok(Mode::Latency),
            _ => Err(invalid(format!("unknown mode {s:?}"))),
        }
    }
}

/// The sizes of a measurement, without the contender: the rows of the result tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Config {
    pub workload: Workload,
    /// Active connections (pairs of sockets).
    pub conns: usize,
    pub threads: usize,
    /// Idle registered sockets beside the active connections.
    pub idle: usize,
    /// Sockets for churn and memory; registered sockets for batch.
    pub sockets: usize,
    /// Registration changes per call (batch).
    pub batch: usize,
    pub mode: Mode,
    /// TCP over 127.0.0.1 instead of Unix socket pairs.
    pub tcp: bool,
}

impl Config {
    pub fn new(workload: Workload) -> Config {
        Config {
            workload,
            conns: 1,
            threads: 1,
            idle: 0,
            sockets: 0,
            batch: 0,
            mode: Mode::Throughput,
            tcp: false,
        }
    }
}

impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.workload {
            Workload::PingPong => write!(f, "N={} T={}", self.conns, self.threads)?,
            Workload::Idle => write!(f, "idle={}", self.idle)?,
            Workload::Churn | Workload::Memory => write!(f, "sockets={}", self.sockets)?,
            Workload::Posted => write!(f, "{}", self.mode.name())?,
            Workload::Batch => write!(f, "batch={} of {}", self.batch, self.sockets)?,
        }
        if self.tcp {
            f.write_str(" tcp")?;
        }
        Ok(())
    }
}

/// One measurement to run in a child process.
#[derive(Clone, Debug)]
pub struct Job {
    pub config: Config,
    pub contender: Contender,
    pub warmup: Duration,
    pub duration: Duration,
    /// The socknotify port's concurrency (0: the number of CPUs, the default).
    pub concurrency: usize,
}

impl Job {
    /// The `run-one` arguments that describe this job.
    pub fn to_args(&self) -> Vec<String> {
        let c = &self.config;
        let mut args = vec![
            "--workload".into(),
            c.workload.name().into(),
            "--contender".into(),
            self.contender.name().into(),
            "--conns".into(),
            c.conns.to_string(),
            "--threads".into(),
            c.threads.to_string(),
            "--idle".into(),
            c.idle.to_string(),
            "--sockets".into(),
            c.sockets.to_string(),
            "--batch".into(),
            c.batch.to_string(),
            "--mode".into(),
            c.mode.name().into(),
            "--warmup".into(),
            self.warmup.as_secs_f64().to_string(),
            "--duration".into(),
            self.duration.as_secs_f64().to_string(),
            "--concurrency".into(),
            self.concurrency.to_string(),
        ];
        if c.tcp {
            args.push("--tcp".into());
        }
        args
    }

    /// Parses the arguments [`to_args`](Job::to_args) makes.
    pub fn from_args(args: &[String]) -> io::Result<Job> {
        let mut a = Args::new(args);
        let mut config = Config::new(Workload::PingPong);
        let mut contender = None;
        let mut job_warmup = Duration::from_millis(200);
        let mut job_duration = Duration::from_millis(500);
        let mut concurrency = 0;
        while let Some(flag) = a.next_flag() {
            match flag.as_str() {
                "--workload" => config.workload = Workload::parse(&a.value(&flag)?)?,
                "--contender" => contender = Some(Contender::parse(&a.value(&flag)?)?),
                "--conns" => config.conns = a.number(&flag)?,
                "--threads" => config.threads = a.number(&flag)?,
                "--idle" => config.idle = a.number(&flag)?,
                "--sockets" => config.sockets = a.number(&flag)?,
                "--batch" => config.batch = a.number(&flag)?,
                "--mode" => config.mode = Mode::parse(&a.value(&flag)?)?,
                "--warmup" => job_warmup = a.seconds(&flag)?,
                "--duration" => job_duration = a.seconds(&flag)?,
                "--concurrency" => concurrency = a.number(&flag)?,
                "--tcp" => config.tcp = true,
                other => return Err(invalid(format!("run-one: unknown option {other:?}"))),
            }
        }
        let contender = contender.ok_or_else(|| invalid("run-one needs --contender"))?;
        if config.threads == 0 {
            return Err(invalid("--threads must be at least 1"));
        }
        Ok(Job {
            config,
            contender,
            warmup: job_warmup,
            duration: job_duration,
            concurrency,
        })
    }
}

//! The HTTP benchmark's tables, samples file and plots: every figure as a ratio against the
//! edge-triggered raw epoll server of the same repetition.

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};

use super::driver::{Config, Results, Sample};
use super::Server;
use crate::report::plots::{bars, Bar};
use crate::report::{si, Stat};

/// One figure per run.
#[derive(Clone, Copy, Debug)]
struct Metric {
    name: &'static str,
    higher_is_better: bool,
    value: fn(&Sample) -> Option<f64>,
}

const METRICS: [Metric; 3] = [
    Metric {
        name: "requests/s",
        higher_is_better: true,
        value: |s| Some(s.requests / s.seconds),
    },
    Metric {
        name: "CPU ns/request",
        higher_is_better: false,
        value: |s| Some(s.cpu_ns / s.requests),
    },
    Metric {
        name: "system calls/request",
        higher_is_better: false,
        value: |s| Some(s.syscalls? / s.requests),
    },
];

impl Results {
    fn outcome(&self, config: Config, server: Server) -> Option<&super::driver::Outcome> {
        self.outcomes
            .iter()
            .find(|o| o.config == config && o.server == server)
    }

    fn stat(&self, config: Config, server: Server, m: &Metric) -> Option<Stat> {
        let o = self.outcome(config, server)?;
        let v: Vec<f64> = o.reps.iter().flatten().filter_map(m.value).collect();
        Stat::of(&v)
    }

    /// `m` of `server` over the baseline's, repetition by repetition.
    fn ratio(&self, config: Config, server: Server, m: &Metric) -> Option<Stat> {
        let o = self.outcome(config, server)?;
        let base = self.outcome(config, Server::EpollEdge)?;
        let v: Vec<f64> = o
            .reps
            .iter()
            .zip(&base.reps)
            .filter_map(|(a, b)| {
                let (a, b) = ((m.value)(a.as_ref()?)?, (m.value)(b.as_ref()?)?);
                (b > 0.0).then(|| a / b)
            })
            .collect();
        Stat::of(&v)
    }

    fn cell(
        &self,
        config: Config,
        server: Server,
        s: Option<Stat>,
        f: fn(f64) -> String,
    ) -> String {
        match s {
            Some(s) => format!("{} ({}–{})", f(s.median), f(s.min), f(s.max)),
            None => match self.outcome(config, server) {
                Some(o) if !o.failures.is_empty() => "failed".into(),
                _ => "n/a".into(),
            },
        }
    }
}

fn two(x: f64) -> String {
    format!("{x:.2}")
}

/// The HTTP section of the tables.
pub fn markdown(r: &Results) -> String {
    let mut out = String::from("### HTTP/1.1 keep-alive server driven by wrk over 127.0.0.1\n\n");
    let reps = r.outcomes.first().map_or(0, |o| o.reps.len());
    let _ = writeln!(
        out,
        "`wrk -t{} -cN -d{}s`, {reps} repetitions, every server run once per repetition one \
         after the other. T = server threads, c = connections. Each cell: the median of the \
         per-repetition ratios against `epoll-et` (edge-triggered raw epoll, one instance per \
         thread) with their min–max; the first column is `epoll-et`'s own median (min–max). \
         CPU: the server process's user + system time over the wrk run (`getrusage`). \
         System calls: `perf stat -e raw_syscalls:sys_enter -p PID` over the same run.\n",
        r.wrk_threads,
        r.duration.as_secs_f64().ceil()
    );
    let others: Vec<Server> = r
        .servers
        .iter()
        .copied()
        .filter(|&s| s != Server::EpollEdge)
        .collect();
    for m in &METRICS {
        let better = if m.higher_is_better {
            "higher"
        } else {
            "lower"
        };
        let _ = writeln!(out, "**{}** ({better} is better)\n", m.name);
        let names: Vec<&str> = others.iter().map(|s| s.name()).collect();
        let _ = writeln!(out, "| config | epoll-et | {} |", names.join(" | "));
        let _ = writeln!(out, "|---|---|{}", "---|".repeat(names.len()));
        for &c in &r.configs {
            let base = r.cell(c, Server::EpollEdge, r.stat(c, Server::EpollEdge, m), si);
            let cells: Vec<String> = others
                .iter()
                .map(|&s| r.cell(c, s, r.ratio(c, s, m), two))
                .collect();
            let _ = writeln!(out, "| {c} | {base} | {} |", cells.join(" | "));
        }
        out.push('\n');
    }
    let errors: Vec<String> = r
        .outcomes
        .iter()
        .filter_map(|o| {
            let n: f64 = o.reps.iter().flatten().map(|s| s.errors).sum();
            (n > 0.0).then(|| format!("{} {}: {n}", o.config, o.server.name()))
        })
        .collect();
    if !errors.is_empty() {
        let _ = writeln!(
            out,
            "wrk reported socket errors or non-2xx responses (summed over the repetitions): \
             {}.\n",
            errors.join("; ")
        );
    }
    out
}

/// `http_samples.csv`: every run as measured.
pub fn samples(r: &Results, path: &Path) -> io::Result<()> {
    let mut out = String::from(
        "config,server,rep,requests,seconds,cpu_ns,user_ns,sys_ns,served,syscalls,errors\n",
    );
    for o in &r.outcomes {
        for (rep, s) in o.reps.iter().enumerate() {
            let Some(s) = s else { continue };
            let _ = writeln!(
                out,
                "{},{},{rep},{},{},{},{},{},{},{},{}",
                o.config,
                o.server.name(),
                s.requests,
                s.seconds,
                s.cpu_ns,
                s.user_ns,
                s.sys_ns,
                s.served,
                s.syscalls.map(|c| c.to_string()).unwrap_or_default(),
                s.errors
            );
        }
    }
    std::fs::write(path, out)
}

fn color(s: Server) -> plotters::style::RGBColor {
    use plotters::style::RGBColor;
    match s {
        Server::EpollEdge => RGBColor(0, 0, 0),
        Server::EpollOneshot => RGBColor(127, 127, 127),
        Server::SocknotifyEpollOneshot => RGBColor(214, 39, 40),
        Server::SocknotifyEpollEdge => RGBColor(255, 152, 150),
        Server::SocknotifyUringOneshot => RGBColor(255, 127, 14),
        Server::SocknotifyUringEdge => RGBColor(255, 187, 120),
        Server::Mio => RGBColor(31, 119, 180),
        Server::Polling => RGBColor(44, 160, 44),
        Server::Tokio => RGBColor(148, 103, 189),
    }
}

/// `http_cpu.svg` and `http_rps.svg`: ratios against `epoll-et`, a bar per server and
/// configuration.
pub fn plots(r: &Results, dir: &Path) -> io::Result<Vec<PathBuf>> {
    let groups: Vec<String> = r.configs.iter().map(Config::to_string).collect();
    let mut written = Vec::new();
    for (file, m, title) in [
        (
            "http_cpu.svg",
            &METRICS[1],
            "HTTP: CPU per request vs epoll-et",
        ),
        ("http_rps.svg", &METRICS[0], "HTTP: requests/s vs epoll-et"),
    ] {
        let series: Vec<Bar<'_>> = r
            .servers
            .iter()
            .map(|&s| Bar {
                name: s.name(),
                color: color(s),
                values: r.configs.iter().map(|&c| r.ratio(c, s, m)).collect(),
            })
            .filter(|b| b.values.iter().any(Option::is_some))
            .collect();
        let path = dir.join(file);
        bars(
            &path,
            title,
            &format!("{} / epoll-et", m.name),
            &groups,
            &series,
            false,
        )?;
        written.push(path);
    }
    Ok(written)
}

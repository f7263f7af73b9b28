//! What the parent collected, and the statistics drawn from it: medians and spreads of
//! each metric, ratios against raw epoll, system calls per operation.

use crate::contender::Contender;
use crate::job::{Config, Job, Mode, Workload};

pub mod csv;
pub mod page;
pub mod plots;
pub mod tables;

/// Every repetition of one job, and its perf run.
#[derive(Debug)]
pub struct Outcome {
    pub job: Job,
    /// One entry per repetition, in order (`None`: that repetition failed).
    pub reps: Vec<Option<Vec<(String, f64)>>>,
    /// System calls counted by perf inside the window, and the operations in that window.
    pub syscalls: Option<(u64, f64)>,
    pub failures: Vec<String>,
}

impl Outcome {
    pub fn new(job: Job) -> Outcome {
        Outcome {
            job,
            reps: Vec::new(),
            syscalls: None,
            failures: Vec::new(),
        }
    }

    /// Whether the contender has nothing to measure here (poll(2) has no registrations).
    pub fn not_applicable(&self) -> bool {
        self.reps
            .iter()
            .flatten()
            .any(|f| field(f, "not_applicable").is_some())
    }
}

fn field(fields: &[(String, f64)], name: &str) -> Option<f64> {
    fields.iter().find(|(k, _)| k == name).map(|&(_, v)| v)
}

/// How a metric is computed from a child's fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// `count` per second of `elapsed_ns`.
    Rate,
    /// Nanoseconds of `elapsed_ns` per `count`.
    Cost,
    /// Nanoseconds of `cpu_ns` (process CPU time) per `count`.
    Cpu,
    /// A field as it is.
    Field(&'static str),
}

/// One number a workload reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Metric {
    pub name: &'static str,
    pub higher_is_better: bool,
    kind: Kind,
}

impl Metric {
    const fn new(name: &'static str, higher_is_better: bool, kind: Kind) -> Metric {
        Metric {
            name,
            higher_is_better,
            kind,
        }
    }

    pub fn value(&self, fields: &[(String, f64)]) -> Option<f64> {
        match self.kind {
            Kind::Rate => {
                let (n, ns) = (field(fields, "count")?, field(fields, "elapsed_ns")?);
                (ns > 0.0).then(|| n / (ns / 1e9))
            }
            Kind::Cost => {
                let (n, ns) = (field(fields, "count")?, field(fields, "elapsed_ns")?);
                (n > 0.0).then(|| ns / n)
            }
            Kind::Cpu => {
                let (n, ns) = (field(fields, "count")?, field(fields, "cpu_ns")?);
                (n > 0.0).then(|| ns / n)
            }
            Kind::Field(name) => field(fields, name),
        }
    }
}

/// The metrics of a configuration; the first is its headline.
pub fn metrics(config: &Config) -> Vec<Metric> {
    match (config.workload, config.mode) {
        (Workload::PingPong, _) => vec![
            Metric::new("messages/s", true, Kind::Rate),
            Metric::new("CPU ns/message", false, Kind::Cpu),
        ],
        (Workload::Idle, _) => vec![
            Metric::new("ns per entry", false, Kind::Cost),
            Metric::new("CPU ns/entry", false, Kind::Cpu),
        ],
        (Workload::Churn, _) => vec![
            Metric::new("register+remove/s", true, Kind::Rate),
            Metric::new("CPU ns/op", false, Kind::Cpu),
        ],
        (Workload::Posted, Mode::Throughput) => vec![Metric::new("entries/s", true, Kind::Rate)],
        (Workload::Posted, Mode::Latency) => vec![
            Metric::new("p50 ns", false, Kind::Field("p50_ns")),
            Metric::new("p99 ns", false, Kind::Field("p99_ns")),
            Metric::new("p99.9 ns", false, Kind::Field("p999_ns")),
        ],
        (Workload::Batch, _) => vec![
            Metric::new("ns/change", false, Kind::Cost),
            Metric::new("CPU ns/change", false, Kind::Cpu),
        ],
        (Workload::Memory, _) => vec![Metric::new(
            "bytes/registration",
            false,
            Kind::Field("bytes_per_registration"),
        )],
    }
}

/// Median and range of a set of values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stat {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Stat {
    pub fn of(values: &[f64]) -> Option<Stat> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let mid = v.len() / 2;
        let median = if v.len() % 2 == 1 {
            v[mid]
        } else {
            (v[mid - 1] + v[mid]) / 2.0
        };
        Some(Stat {
            median,
            min: v[0],
            max: v[v.len() - 1],
        })
    }
}

/// Everything the parent measured.
#[derive(Debug)]
pub struct Results {
    pub outcomes: Vec<Outcome>,
    pub contenders: Vec<Contender>,
}

impl Results {
    /// The configurations of `workload`, in order.
    pub fn configs(&self, workload: Workload) -> Vec<Config> {
        let mut c: Vec<Config> = self
            .outcomes
            .iter()
            .map(|o| o.job.config)
            .filter(|c| c.workload == workload)
            .collect();
        c.sort();
        c.dedup();
        c
    }

    pub fn outcome(&self, config: &Config, contender: Contender) -> Option<&Outcome> {
        self.outcomes
            .iter()
            .find(|o| o.job.config == *config && o.job.contender == contender)
    }

    /// `metric` over the repetitions of one job.
    pub fn stat(&self, config: &Config, contender: Contender, metric: &Metric) -> Option<Stat> {
        let o = self.outcome(config, contender)?;
        let values: Vec<f64> = o
            .reps
            .iter()
            .flatten()
            .filter_map(|f| metric.value(f))
            .collect();
        Stat::of(&values)
    }

    /// `metric` of `contender` divided by raw epoll's, repetition by repetition (they ran
    /// interleaved, so each pair saw the same machine), then summarised.
    pub fn ratio(&self, config: &Config, contender: Contender, metric: &Metric) -> Option<Stat> {
        let o = self.outcome(config, contender)?;
        let base = self.outcome(config, Contender::Epoll)?;
        let ratios: Vec<f64> = o
            .reps
            .iter()
            .zip(&base.reps)
            .filter_map(|(a, b)| {
                let (a, b) = (metric.value(a.as_ref()?)?, metric.value(b.as_ref()?)?);
                (b > 0.0).then(|| a / b)
            })
            .collect();
        Stat::of(&ratios)
    }

    /// `metric` of `contender` in `config` divided by its value in `base`, repetition by
    /// repetition (both ran in each repetition), then summarised.
    pub fn scaling(
        &self,
        config: &Config,
        base: &Config,
        contender: Contender,
        metric: &Metric,
    ) -> Option<Stat> {
        let a = self.outcome(config, contender)?;
        let b = self.outcome(base, contender)?;
        let ratios: Vec<f64> = a
            .reps
            .iter()
            .zip(&b.reps)
            .filter_map(|(a, b)| {
                let (a, b) = (metric.value(a.as_ref()?)?, metric.value(b.as_ref()?)?);
                (b > 0.0).then(|| a / b)
            })
            .collect();
        Stat::of(&ratios)
    }

    /// System calls per counted operation in the perf run.
    pub fn syscalls_per_op(&self, config: &Config, contender: Contender) -> Option<f64> {
        let (calls, ops) = self.outcome(config, contender)?.syscalls?;
        (ops > 0.0).then(|| calls as f64 / ops)
    }
}

/// A number with an SI suffix and three significant digits: `1.23M`, `456k`, `7.89`.
pub fn si(x: f64) -> String {
    let (v, suffix) = match x.abs() {
        a if a >= 1e9 => (x / 1e9, "G"),
        a if a >= 1e6 => (x / 1e6, "M"),
        a if a >= 1e3 => (x / 1e3, "k"),
        _ => (x, ""),
    };
    let digits = match v.abs() {
        a if a >= 100.0 => 0,
        a if a >= 10.0 => 1,
        _ => 2,
    };
    format!("{v:.digits$}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::{si, Stat};

    #[test]
    fn medians_and_ranges() {
        let s = Stat::of(&[3.0, 1.0, 2.0, 10.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.5, 1.0, 10.0));
        assert_eq!(Stat::of(&[5.0, 1.0, 3.0]).unwrap().median, 3.0);
        assert!(Stat::of(&[]).is_none());
    }

    #[test]
    fn si_suffixes() {
        assert_eq!(si(1_234_567.0), "1.23M");
        assert_eq!(si(456_000.0), "456k");
        assert_eq!(si(7.891), "7.89");
        assert_eq!(si(42.0), "42.0");
    }
}

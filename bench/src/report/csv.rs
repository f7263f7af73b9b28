//! CSV files: every sample as measured, and the summary the tables show.

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::Path;

use super::{metrics, Results};

/// `samples.csv`: one line per field of every repetition and perf run.
pub fn samples(r: &Results, path: &Path) -> io::Result<()> {
    let mut out = String::from("workload,config,contender,rep,field,value\n");
    for o in &r.outcomes {
        let (w, c, k) = (
            o.job.config.workload.name(),
            o.job.config,
            o.job.contender.name(),
        );
        for (rep, fields) in o.reps.iter().enumerate() {
            for (name, value) in fields.iter().flatten() {
                let _ = writeln!(out, "{w},{c},{k},{rep},{name},{value}");
            }
        }
        if let Some((calls, ops)) = o.syscalls {
            let _ = writeln!(out, "{w},{c},{k},perf,syscalls,{calls}");
            let _ = writeln!(out, "{w},{c},{k},perf,count,{ops}");
        }
    }
    fs::write(path, out)
}

/// `summary.csv`: per job and metric, the median and range, the ratio against raw epoll,
/// and system calls per operation.
pub fn summary(r: &Results, path: &Path) -> io::Result<()> {
    let mut out = String::from(
        "workload,config,contender,metric,higher_is_better,median,min,max,\
         ratio_median,ratio_min,ratio_max,syscalls_per_op,failures\n",
    );
    let opt = |x: Option<f64>| x.map(|v| v.to_string()).unwrap_or_default();
    for o in &r.outcomes {
        let config = o.job.config;
        for m in metrics(&config) {
            let s = r.stat(&config, o.job.contender, &m);
            let q = r.ratio(&config, o.job.contender, &m);
            let _ = writeln!(
                out,
                "{},{},{},{},{},{},{},{},{},{},{},{},{}",
                config.workload.name(),
                config,
                o.job.contender.name(),
                m.name,
                m.higher_is_better,
                opt(s.map(|s| s.median)),
                opt(s.map(|s| s.min)),
                opt(s.map(|s| s.max)),
                opt(q.map(|s| s.median)),
                opt(q.map(|s| s.min)),
                opt(q.map(|s| s.max)),
                opt(r.syscalls_per_op(&config, o.job.contender)),
                o.failures.len(),
            );
        }
    }
    fs::write(path, out)
}

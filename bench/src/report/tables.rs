//! Markdown tables: ratios against raw epoll, absolute values, system calls per operation.

use std::fmt::Write;

use super::{metrics, si, Metric, Results, Stat};
use crate::contender::Contender;
use crate::job::{Config, Workload};

/// What each workload's operation is, for the headings.
pub fn title(workload: Workload) -> &'static str {
    match workload {
        Workload::PingPong => {
            "Ping-pong: one 64-byte message bouncing on each of N connections, T threads"
        }
        Workload::Idle => {
            "Idle scaling: one active connection among `idle` registered idle sockets, 1 thread"
        }
        Workload::Churn => {
            "Registration churn: register then remove every socket, batched where the API allows"
        }
        Workload::Posted => "Posted entries: one producer thread, one consumer thread",
        Workload::Memory => "Memory: resident bytes per registration",
        Workload::Batch => {
            "Registration batches: re-arms (`ENABLE`, same key) of registered one-shot sockets \
             per call"
        }
    }
}

fn operation(workload: Workload) -> &'static str {
    match workload {
        Workload::PingPong | Workload::Idle => "message",
        Workload::Churn => "register+remove",
        Workload::Posted => "entry",
        Workload::Memory => "registration",
        Workload::Batch => "change",
    }
}

/// A workload's tables, each a list of rows. Posted entries keep every metric in one table
/// (a row per configuration and metric); the other workloads get one table per metric.
fn groups(r: &Results, workload: Workload) -> Vec<Vec<(Config, Metric)>> {
    let configs = r.configs(workload);
    let Some(first) = configs.first() else {
        return Vec::new();
    };
    let rows = |k: Option<usize>| -> Vec<(Config, Metric)> {
        configs
            .iter()
            .flat_map(|c| {
                metrics(c)
                    .into_iter()
                    .enumerate()
                    .filter(move |(i, _)| k.is_none_or(|k| k == *i))
                    .map(move |(_, m)| (*c, m))
            })
            .collect()
    };
    if workload == Workload::Posted {
        vec![rows(None)]
    } else {
        (0..metrics(first).len()).map(|k| rows(Some(k))).collect()
    }
}

fn label(config: &Config, metric: &Metric, several: bool) -> String {
    if several {
        format!("{config} {}", metric.name)
    } else {
        config.to_string()
    }
}

fn range(s: Stat, f: impl Fn(f64) -> String) -> String {
    format!("{} ({}–{})", f(s.median), f(s.min), f(s.max))
}

fn header(out: &mut String, first: &str, contenders: &[Contender]) {
    let names: Vec<&str> = contenders.iter().map(|c| c.name()).collect();
    let _ = writeln!(out, "| {first} | {} |", names.join(" | "));
    let _ = writeln!(out, "|---|{}", "---|".repeat(names.len()));
}

/// The cell for a job that has no value: not applicable, failed, or not run.
fn missing(r: &Results, config: &Config, c: Contender) -> String {
    match r.outcome(config, c) {
        Some(o) if o.not_applicable() => "n/a".into(),
        Some(o) if !o.failures.is_empty() => "failed".into(),
        _ => "—".into(),
    }
}

/// The tables of every workload that ran.
pub fn markdown(r: &Results) -> String {
    let mut out = String::new();
    let others: Vec<Contender> = r
        .contenders
        .iter()
        .copied()
        .filter(|&c| c != Contender::Epoll)
        .collect();
    for workload in Workload::ALL {
        if workload == Workload::Batch {
            batch_section(&mut out, r);
            continue;
        }
        let groups = groups(r, workload);
        if groups.is_empty() {
            continue;
        }
        let _ = writeln!(out, "### {}\n", title(workload));
        for rows in &groups {
            let several = rows.len() > r.configs(workload).len();
            let mut names: Vec<&str> = rows.iter().map(|(_, m)| m.name).collect();
            names.dedup();
            let mut directions: Vec<String> = rows
                .iter()
                .map(|(_, m)| {
                    let better = if m.higher_is_better {
                        "higher"
                    } else {
                        "lower"
                    };
                    format!("{}, {better} is better", m.name)
                })
                .collect();
            directions.dedup();
            if workload == Workload::Memory {
                // Raw epoll keeps nothing in user space: no ratio to draw.
                let _ = writeln!(out, "In user space ({}).", directions.join("; "));
            } else {
                let _ = writeln!(
                    out,
                    "**{}** relative to raw epoll ({}): median of the per-repetition ratios \
                     (min–max).\n",
                    names.join(", "),
                    directions.join("; ")
                );
                ratio_table(&mut out, r, rows, &others, several);
            }
            let _ = writeln!(out, "\nAbsolute {}: median (min–max).\n", names.join(", "));
            header(&mut out, "config", &r.contenders);
            for (config, metric) in rows {
                let cells: Vec<String> = r
                    .contenders
                    .iter()
                    .map(|&c| match r.stat(config, c, metric) {
                        Some(s) => range(s, si),
                        None => missing(r, config, c),
                    })
                    .collect();
                let _ = writeln!(
                    out,
                    "| {} | {} |",
                    label(config, metric, several),
                    cells.join(" | ")
                );
            }
            out.push('\n');
        }
        if workload != Workload::Memory {
            syscall_table(&mut out, r, workload);
            out.push('\n');
        }
    }
    out
}

fn ratio_table(
    out: &mut String,
    r: &Results,
    rows: &[(Config, Metric)],
    others: &[Contender],
    several: bool,
) {
    header(out, "config", others);
    for (config, metric) in rows {
        let cells: Vec<String> = others
            .iter()
            .map(|&c| match r.ratio(config, c, metric) {
                Some(s) => range(s, |x| format!("{x:.2}")),
                None => missing(r, config, c),
            })
            .collect();
        let _ = writeln!(
            out,
            "| {} | {} |",
            label(config, metric, several),
            cells.join(" | ")
        );
    }
}

fn syscall_table(out: &mut String, r: &Results, workload: Workload) {
    let _ = writeln!(
        out,
        "\nSystem calls per {} (`perf stat -e raw_syscalls:sys_enter`, one run, \
         measured window only).\n",
        operation(workload)
    );
    header(out, "config", &r.contenders);
    for config in r.configs(workload) {
        let cells: Vec<String> = r
            .contenders
            .iter()
            .map(|&c| {
                r.syscalls_per_op(&config, c)
                    .map_or_else(|| "n/a".into(), |x| format!("{x:.2}"))
            })
            .collect();
        let _ = writeln!(out, "| {config} | {} |", cells.join(" | "));
    }
}

/// Batch sizes side by side per contender, and how the cost per change grows from the
/// smallest batch to the largest (median of the per-repetition ratios: both sizes ran in
/// the same repetition).
fn batch_section(out: &mut String, r: &Results) {
    let configs = r.configs(Workload::Batch);
    let (Some(small), Some(big)) = (configs.first(), configs.last()) else {
        return;
    };
    let _ = writeln!(out, "### {}\n", title(Workload::Batch));
    let _ = writeln!(
        out,
        "{} sockets registered one-shot level `IN` (idle: nothing is ever delivered); each \
         call re-arms the next `batch` of them and dequeues with a zero timeout. Raw epoll \
         is the same loop with one `epoll_ctl(EPOLL_CTL_MOD)` per change and one \
         `epoll_wait`. Median (min–max) of the repetitions; the ratio columns are the \
         median of the per-repetition ratios batch={} / batch={}.\n",
        big.sockets, big.batch, small.batch
    );
    let mut heads = Vec::new();
    for m in metrics(big) {
        for c in &configs {
            heads.push(format!("{} batch={}", m.name, c.batch));
        }
        heads.push(format!("{} {}/{}", m.name, big.batch, small.batch));
    }
    for c in &configs {
        heads.push(format!("system calls/change batch={}", c.batch));
    }
    let _ = writeln!(out, "| contender | {} |", heads.join(" | "));
    let _ = writeln!(out, "|---|{}", "---|".repeat(heads.len()));
    for &contender in &r.contenders {
        if configs
            .iter()
            .all(|c| r.outcome(c, contender).is_none_or(|o| o.not_applicable()))
        {
            continue;
        }
        let mut cells = Vec::new();
        for m in metrics(big) {
            for c in &configs {
                cells.push(match r.stat(c, contender, &m) {
                    Some(s) => range(s, si),
                    None => missing(r, c, contender),
                });
            }
            cells.push(match r.scaling(big, small, contender, &m) {
                Some(s) => range(s, |x| format!("{x:.2}")),
                None => "n/a".into(),
            });
        }
        for c in &configs {
            cells.push(
                r.syscalls_per_op(c, contender)
                    .map_or_else(|| "n/a".into(), |x| format!("{x:.3}")),
            );
        }
        let _ = writeln!(out, "| {} | {} |", contender.name(), cells.join(" | "));
    }
    out.push('\n');
}

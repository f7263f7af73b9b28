//! The parent: plans the jobs, runs each one in a child process (timed runs first, all
//! contenders interleaved within each repetition, then one perf run per job), and writes
//! the report.

use std::fs;
use std::io;
use std::time::Instant;

use crate::child::WANTED_FILES;
use crate::contender::Contender;
use crate::exec::Runner;
use crate::http;
use crate::job::{Config, Job, Mode, Workload};
use crate::options::{Options, HELP};
use crate::perf::Perf;
use crate::report::page::{self, Machine};
use crate::report::{csv, metrics, plots, si, tables, Outcome, Results};
use crate::sys;

/// Descriptors kept free for everything that is not a benchmark socket.
const RESERVE: u64 = 64;

pub fn main(args: &[String]) -> io::Result<()> {
    let opts = Options::parse(args)?;
    if opts.help {
        print!("{HELP}");
        return Ok(());
    }
    let load_at_start = sys::load_average();
    let files = sys::raise_nofile(WANTED_FILES)?;
    let mut notes = Vec::new();
    if opts.smoke {
        notes.push("--smoke: tiny sizes and windows; these numbers only show that it runs".into());
    }
    let (mut contenders, left_out) = Contender::available();
    notes.extend(left_out);
    if let Some(chosen) = &opts.contenders {
        contenders.retain(|c| *c == Contender::Epoll || chosen.contains(c));
    }
    let scratch = std::env::temp_dir().join(format!("socknotify-bench-{}", std::process::id()));
    let runner = Runner::new(&scratch)?;
    let perf = if opts.perf {
        match Perf::detect(&scratch) {
            Ok(p) => Some(p),
            Err(why) => {
                notes.push(format!("system calls: n/a ({why})"));
                None
            }
        }
    } else {
        notes.push("system calls: n/a (--no-perf)".into());
        None
    };
    let configs = plan(&opts, files, &mut notes);
    let mut outcomes: Vec<Outcome> = configs
        .iter()
        .flat_map(|config| {
            contenders.iter().map(|&contender| {
                Outcome::new(Job {
                    config: *config,
                    contender,
                    warmup: opts.warmup,
                    duration: opts.duration,
                    concurrency: opts.concurrency,
                })
            })
        })
        .collect();
    let per_job = opts.warmup + opts.duration;
    let perf_jobs = if perf.is_some() { outcomes.len() } else { 0 };
    let runs = outcomes.len() * opts.reps + perf_jobs;
    eprintln!(
        "socknotify-bench: {} contenders ({}), {} jobs x {} repetitions{}, about {:.0?} of \
         measuring",
        contenders.len(),
        contenders
            .iter()
            .map(|c| c.name())
            .collect::<Vec<_>>()
            .join(", "),
        outcomes.len(),
        opts.reps,
        if perf.is_some() {
            " + 1 perf run each"
        } else {
            ""
        },
        per_job * runs as u32,
    );
    for n in &notes {
        eprintln!("note: {n}");
    }
    let started = Instant::now();
    for rep in 0..opts.reps {
        for o in &mut outcomes {
            match runner.run(&o.job, None) {
                Ok(r) => {
                    progress(&format!("rep {}/{}", rep + 1, opts.reps), o, &r.fields);
                    o.reps.push(Some(r.fields));
                }
                Err(e) => {
                    eprintln!("  {} {}: {e}", o.job.config, o.job.contender.name());
                    o.reps.push(None);
                    o.failures.push(e);
                }
            }
        }
    }
    if let Some(perf) = &perf {
        for o in &mut outcomes {
            if o.job.config.workload == Workload::Memory || o.not_applicable() {
                continue;
            }
            match runner.run(&o.job, Some(perf)) {
                Ok(r) => {
                    let count = r.fields.iter().find(|(k, _)| k == "count").map(|f| f.1);
                    if let (Some(calls), Some(count)) = (r.syscalls, count) {
                        o.syscalls = Some((calls, count));
                        eprintln!(
                            "[perf] {} {} {}: {:.2} system calls per operation",
                            o.job.config.workload.name(),
                            o.job.config,
                            o.job.contender.name(),
                            calls as f64 / count.max(1.0)
                        );
                    }
                }
                Err(e) => {
                    eprintln!("  perf {} {}: {e}", o.job.config, o.job.contender.name());
                }
            }
        }
    }
    let http = if !opts.http {
        if opts.smoke {
            notes.push(
                "http skipped in --smoke (it needs wrk and seconds per run; --only http runs \
                 it)"
                .into(),
            );
        }
        None
    } else if !http::driver::wrk_found() {
        let why = format!("http skipped: wrk not found; {}", http::driver::INSTALL);
        if opts.http_asked {
            return Err(io::Error::other(why));
        }
        eprintln!("note: {why}");
        notes.push(why);
        None
    } else {
        Some(http::driver::run(&opts, perf.as_ref(), &scratch)?)
    };
    eprintln!("socknotify-bench: measured in {:.1?}", started.elapsed());
    let http_failures: usize = http
        .iter()
        .flat_map(|h| &h.outcomes)
        .map(|o| o.failures.len())
        .sum();
    let failures: usize = outcomes.iter().map(|o| o.failures.len()).sum::<usize>() + http_failures;
    if failures > 0 {
        notes.push(format!("{failures} runs failed; their cells say so"));
    }
    let results = Results {
        outcomes,
        contenders,
    };
    let syscalls = if perf.is_some() {
        "perf stat -e raw_syscalls:sys_enter".into()
    } else {
        "n/a".into()
    };
    write_all(
        &opts,
        args,
        &results,
        http.as_ref(),
        &notes,
        Machine::detect(files, syscalls, load_at_start),
    )?;
    drop(runner);
    if failures > 0 {
        return Err(io::Error::other(format!("{failures} runs failed")));
    }
    Ok(())
}

fn progress(tag: &str, o: &Outcome, fields: &[(String, f64)]) {
    let config = o.job.config;
    let shown: Vec<String> = metrics(&config)
        .iter()
        .filter_map(|m| Some(format!("{} {}", si(m.value(fields)?), m.name)))
        .collect();
    let shown = if shown.is_empty() {
        "n/a".to_string()
    } else {
        shown.join(", ")
    };
    eprintln!(
        "[{tag}] {} {} {}: {shown}",
        config.workload.name(),
        config,
        o.job.contender.name()
    );
}

/// The configurations to run, shrunk or skipped to fit `files` descriptors.
fn plan(opts: &Options, files: u64, notes: &mut Vec<String>) -> Vec<Config> {
    let room = files.saturating_sub(RESERVE) as usize;
    let mut configs = Vec::new();
    for &workload in &opts.workloads {
        match workload {
            Workload::PingPong => {
                for &n in &opts.conns {
                    let mut conns = n;
                    if 2 * n > room {
                        conns = (room / 2) / 100 * 100;
                        notes.push(format!(
                            "ping-pong N={n} needs {} descriptors and the limit is {files}: \
                             ran N={conns} instead",
                            2 * n
                        ));
                    }
                    if conns == 0 {
                        continue;
                    }
                    for &threads in &opts.threads {
                        configs.push(Config {
                            conns,
                            threads,
                            tcp: opts.tcp,
                            ..Config::new(workload)
                        });
                    }
                }
            }
            Workload::Idle => {
                for &idle in &opts.idle {
                    if idle.div_ceil(2) * 2 + 2 > room {
                        notes.push(format!(
                            "idle={idle} skipped: it needs {} descriptors and the limit is \
                             {files} (raising the hard limit needs CAP_SYS_RESOURCE)",
                            idle + 2
                        ));
                        continue;
                    }
                    configs.push(Config {
                        idle,
                        tcp: opts.tcp,
                        ..Config::new(workload)
                    });
                }
            }
            Workload::Churn | Workload::Memory => {
                let wanted = if workload == Workload::Churn {
                    opts.churn_sockets
                } else {
                    opts.memory_sockets
                };
                let sockets = wanted.min(room) / 2 * 2;
                if sockets < wanted {
                    notes.push(format!(
                        "{} over {wanted} sockets does not fit the descriptor limit {files}: \
                         ran {sockets}",
                        workload.name()
                    ));
                }
                configs.push(Config {
                    sockets,
                    ..Config::new(workload)
                });
            }
            Workload::Batch => {
                let wanted = opts.batch.iter().copied().max().unwrap_or(1);
                let sockets = wanted.div_ceil(2) * 2;
                if sockets > room {
                    notes.push(format!(
                        "batch skipped: it needs {sockets} descriptors and the limit is {files}"
                    ));
                    continue;
                }
                for &batch in &opts.batch {
                    configs.push(Config {
                        sockets,
                        batch,
                        ..Config::new(workload)
                    });
                }
            }
            Workload::Posted => {
                for mode in [Mode::Throughput, Mode::Latency] {
                    configs.push(Config {
                        mode,
                        ..Config::new(workload)
                    });
                }
            }
        }
    }
    configs
}

fn write_all(
    opts: &Options,
    args: &[String],
    results: &Results,
    http: Option<&http::driver::Results>,
    notes: &[String],
    machine: Machine,
) -> io::Result<()> {
    fs::create_dir_all(&opts.out)?;
    let mut tables = tables::markdown(results);
    if let Some(h) = http {
        tables.push_str(&http::report::markdown(h));
    }
    println!("{tables}");
    csv::samples(results, &opts.out.join("samples.csv"))?;
    csv::summary(results, &opts.out.join("summary.csv"))?;
    fs::write(opts.out.join("tables.md"), &tables)?;
    let mut plots = plots::draw(results, &opts.out)?;
    if let Some(h) = http {
        http::report::samples(h, &opts.out.join("http_samples.csv"))?;
        plots.extend(http::report::plots(h, &opts.out)?);
    }
    let mut command = String::from("cargo run --release -p socknotify-bench --");
    for a in args {
        command.push(' ');
        command.push_str(a);
    }
    page::write(
        &opts.out.join("report.md"),
        &machine,
        &command,
        notes,
        &tables,
        &plots,
    )?;
    eprintln!(
        "socknotify-bench: wrote report.md, tables.md, samples.csv, summary.csv and {} plots \
         to {}",
        plots.len(),
        opts.out.display()
    );
    Ok(())
}

//! `socknotify-bench hotpath`: the hot-path figures of issue 11, item 2, in one run and one
//! table, every ratio against a baseline measured in the same invocation.
//!
//! 1. User-space instructions per delivered entry of a one-shot level echo (callgrind,
//!    [`callgrind`]), one thread, one socket pair: socknotify on each backend against a
//!    hand-written one-shot epoll loop (the baseline), an edge-triggered one, mio, and the
//!    contract's cost model ([`floor`]: what any implementation of the contract pays).
//! 2. `futex` calls per message (`perf stat -e syscalls:sys_enter_futex`, counting only
//!    inside the child's measured window) of the ping-pong workload (`run-one`): one
//!    thread on a port, and 16 threads on a port of concurrency 2 over 64 connections.
//! 3. A zero-timeout `dequeue` on an idle port with 100 registrations: wall and CPU ns
//!    per call (interleaved repetitions), system calls per call (perf) and instructions
//!    per call (callgrind), each backend against the other and a bare `epoll_wait(0)`.
//!
//! Each piece says n/a when its tool (valgrind, perf) is missing, and why.

use std::io;
use std::time::Duration;

use crate::contender::Contender;
use crate::exec::Runner;
use crate::job::{Config, Job, Workload};
use crate::options::{invalid, Args};
use crate::perf::{Perf, FUTEX, SYSCALLS};
use crate::sys;

mod callgrind;
mod floor;
pub mod probe;

use callgrind::{field, Callgrind};
use probe::{Case, Length, Loop, Probe};

pub const COMMAND: &str = "hotpath";

const HELP: &str = "\
socknotify-bench hotpath: issue 11's hot-path figures in one table (about a minute)

USAGE:
    cargo run --release -p socknotify-bench -- hotpath [--smoke] [--reps N]

OPTIONS:
    --smoke        tiny sizes: shows that every piece runs, in about 10 s
    --reps N       repetitions of the timed dequeue runs and of the futex runs
                   [default: 5]
    --help         this text

Needs valgrind (instructions) and perf with tracepoints (futex and system calls);
Debian: apt-get install valgrind linux-perf. A missing tool makes its cells n/a.
";

/// Sizes of one invocation.
#[derive(Clone, Debug)]
struct Plan {
    /// The two lengths of a callgrind pair, in entries (echo) or calls (dequeue).
    callgrind: (u64, u64),
    futex_reps: usize,
    futex_warmup: Duration,
    futex_duration: Duration,
    dequeue_reps: usize,
    dequeue_time: Duration,
    /// Idle registrations in the dequeue case.
    idle: usize,
}

impl Plan {
    fn parse(args: &[String]) -> io::Result<Option<Plan>> {
        let smoke = args.iter().any(|a| a == "--smoke");
        let mut plan = if smoke {
            Plan {
                callgrind: (200, 1200),
                futex_reps: 1,
                futex_warmup: Duration::from_millis(20),
                futex_duration: Duration::from_millis(100),
                dequeue_reps: 1,
                dequeue_time: Duration::from_millis(50),
                idle: 100,
            }
        } else {
            Plan {
                callgrind: (2_000, 22_000),
                futex_reps: 5,
                futex_warmup: Duration::from_millis(200),
                futex_duration: Duration::from_secs(1),
                dequeue_reps: 5,
                dequeue_time: Duration::from_millis(300),
                idle: 100,
            }
        };
        let mut a = Args::new(args);
        while let Some(flag) = a.next_flag() {
            match flag.as_str() {
                "--smoke" => {}
                "--reps" => {
                    let n = a.number(&flag)?.max(1);
                    plan.futex_reps = n;
                    plan.dequeue_reps = n;
                }
                "--help" | "-h" => return Ok(None),
                other => {
                    return Err(invalid(format!(
                        "hotpath: unknown option {other:?}; hotpath --help lists them"
                    )))
                }
            }
        }
        Ok(Some(plan))
    }
}

/// One line of the table.
#[derive(Debug)]
struct Row {
    measure: &'static str,
    who: &'static str,
    value: String,
    ratio: String,
    target: String,
}

pub fn main(args: &[String]) -> io::Result<()> {
    let Some(plan) = Plan::parse(args)? else {
        print!("{HELP}");
        return Ok(());
    };
    let load_start = sys::load_average();
    let scratch = std::env::temp_dir().join(format!("socknotify-hotpath-{}", std::process::id()));
    let runner = Runner::new(&scratch)?;
    let mut notes = Vec::new();
    let mut rows = Vec::new();
    let loops = available(&mut notes);

    match Callgrind::detect(&scratch) {
        Ok(cg) => {
            instructions(&cg, &runner, &plan, &loops, &mut rows, &mut notes);
        }
        Err(why) => notes.push(format!("instructions: n/a ({why})")),
    }
    let perf = Perf::detect_events(&scratch, &[SYSCALLS, FUTEX]);
    match &perf {
        Ok(perf) => futexes(perf, &runner, &plan, &loops, &mut rows, &mut notes),
        Err(why) => notes.push(format!("futex calls: n/a ({why})")),
    }
    dequeue_timed(&runner, &plan, &loops, &mut rows, &mut notes);
    match &perf {
        Ok(perf) => dequeue_syscalls(perf, &runner, &plan, &loops, &mut rows, &mut notes),
        Err(why) => notes.push(format!("dequeue system calls: n/a ({why})")),
    }
    if let Ok(cg) = Callgrind::detect(&scratch) {
        dequeue_instructions(&cg, &runner, &plan, &loops, &mut rows, &mut notes);
    }
    drop(runner);

    println!("{}", table(&rows));
    println!(
        "load average (1, 5, 15 min): {load_start} at the start, {} at the end; {} CPUs; \
         kernel {}",
        sys::load_average(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        sys::kernel_release()
    );
    for n in &notes {
        println!("note: {n}");
    }
    let failed = notes.iter().filter(|n| n.starts_with("FAILED")).count();
    if failed > 0 {
        return Err(io::Error::other(format!("{failed} measurements failed")));
    }
    Ok(())
}

/// The loops whose port builds here (a missing io_uring is a note, not a failure).
fn available(notes: &mut Vec<String>) -> Vec<Loop> {
    Loop::ECHO
        .into_iter()
        .filter(|l| match l.backend() {
            None => true,
            Some(b) => match socknotify::CompletionPort::builder().backend(b).build() {
                Ok(_) => true,
                Err(e) => {
                    notes.push(format!("{} left out: {e}", l.name()));
                    false
                }
            },
        })
        .collect()
}

fn progress(what: &str) {
    eprintln!("[hotpath] {what}");
}

// ---- 1. instructions per delivered entry ----

const ECHO: &str = "instructions/entry, one-shot level echo (callgrind)";

fn instructions(
    cg: &Callgrind,
    runner: &Runner,
    plan: &Plan,
    loops: &[Loop],
    rows: &mut Vec<Row>,
    notes: &mut Vec<String>,
) {
    let (short, long) = plan.callgrind;
    let mut got = Vec::new();
    for &lp in loops {
        let probe = Probe {
            case: Case::Echo,
            lp,
            length: Length::Turns(0),
            sockets: 1,
        };
        match cg.per_unit(runner, &probe, "entries", short, long) {
            Ok(p) => {
                progress(&format!(
                    "{ECHO}: {} {:.0} (runs {:?})",
                    lp.name(),
                    p.instructions,
                    p.runs
                ));
                got.push((lp, p.instructions));
            }
            Err(e) => notes.push(format!("FAILED {ECHO}, {}: {e}", lp.name())),
        }
    }
    let base = got
        .iter()
        .find(|(l, _)| *l == Loop::EpollOneshot)
        .map(|g| g.1);
    for (lp, n) in got {
        let target = match lp {
            Loop::SocknotifyEpoll => judge("≤ 350", n <= 350.0),
            Loop::EpollOneshot => "~210 (the issue's figure)".into(),
            Loop::Floor => "cost model: the contract's steps alone".into(),
            _ => String::new(),
        };
        rows.push(Row {
            measure: ECHO,
            who: lp.name(),
            value: format!("{n:.0}"),
            ratio: base.map_or("n/a".into(), |b| format!("{:.2}", n / b)),
            target,
        });
    }
}

fn judge(target: &str, met: bool) -> String {
    format!("{target}: {}", if met { "met" } else { "NOT met" })
}

// ---- 2. futex calls per message ----

fn futexes(
    perf: &Perf,
    runner: &Runner,
    plan: &Plan,
    loops: &[Loop],
    rows: &mut Vec<Row>,
    notes: &mut Vec<String>,
) {
    let contenders: Vec<Contender> = [
        (Loop::EpollOneshot, Contender::Epoll),
        (Loop::SocknotifyEpoll, Contender::SocknotifyEpoll),
        (Loop::SocknotifyUring, Contender::SocknotifyUring),
    ]
    .into_iter()
    .filter(|(l, _)| loops.contains(l))
    .map(|c| c.1)
    .collect();
    // (measure, connections, threads, concurrency, target)
    let cases: [(&'static str, usize, usize, usize, f64); 2] = [
        (
            "futex calls/message, 1 thread, 1 connection (perf)",
            1,
            1,
            0,
            0.0,
        ),
        (
            "futex calls/message, 16 threads, concurrency 2, 64 connections (perf)",
            64,
            16,
            2,
            0.01,
        ),
    ];
    for (measure, conns, threads, concurrency, target) in cases {
        // per contender: every repetition's (futex calls, messages, system calls)
        let mut reps: Vec<Vec<(f64, f64, f64)>> = vec![Vec::new(); contenders.len()];
        for _ in 0..plan.futex_reps {
            for (i, &contender) in contenders.iter().enumerate() {
                let job = Job {
                    config: Config {
                        conns,
                        threads,
                        ..Config::new(Workload::PingPong)
                    },
                    contender,
                    warmup: plan.futex_warmup,
                    duration: plan.futex_duration,
                    concurrency,
                };
                let counted = runner.run(&job, Some(perf)).and_then(|r| {
                    let messages = field(&r.fields, "count")?;
                    match r.counts[..] {
                        [Some(calls), Some(futex)] => Ok((futex as f64, messages, calls as f64)),
                        _ => Err("perf counted nothing".into()),
                    }
                });
                match counted {
                    Ok(c) => {
                        progress(&format!(
                            "{measure}: {} {} futex calls, {} messages",
                            contender.name(),
                            c.0,
                            c.1
                        ));
                        reps[i].push(c);
                    }
                    Err(e) => notes.push(format!("FAILED {measure}, {}: {e}", contender.name())),
                }
            }
        }
        for (contender, reps) in contenders.iter().zip(reps) {
            if reps.is_empty() {
                continue;
            }
            let per: Vec<f64> = reps.iter().map(|r| r.0 / r.1.max(1.0)).collect();
            let (median, lo, hi) = spread(&per);
            let calls: Vec<f64> = reps.iter().map(|r| r.2 / r.1.max(1.0)).collect();
            let futex: Vec<f64> = reps.iter().map(|r| r.0).collect();
            let messages: Vec<f64> = reps.iter().map(|r| r.1).collect();
            let target = match contender {
                Contender::Epoll => String::new(),
                _ if target == 0.0 => judge("0", hi == 0.0),
                _ => judge(&format!("≤ {target}"), median <= target),
            };
            rows.push(Row {
                measure,
                who: contender.name(),
                value: format!(
                    "{} ({}–{}); {:.0} futex / {:.0} messages; {:.2} system calls/message",
                    small(median),
                    small(lo),
                    small(hi),
                    spread(&futex).0,
                    spread(&messages).0,
                    spread(&calls).0,
                ),
                ratio: String::new(),
                target,
            });
        }
    }
}

// ---- 3. zero-timeout dequeue ----

const DEQUEUE_NS: &str = "zero-timeout dequeue, wall ns/call";
const DEQUEUE_CPU: &str = "zero-timeout dequeue, CPU ns/call";
const DEQUEUE_CALLS: &str = "zero-timeout dequeue, system calls/call (perf)";
const DEQUEUE_IR: &str = "zero-timeout dequeue, instructions/call (callgrind)";

fn dequeue_loops(loops: &[Loop]) -> Vec<Loop> {
    Loop::DEQUEUE
        .into_iter()
        .filter(|l| loops.contains(l))
        .collect()
}

fn dequeue_probe(lp: Loop, plan: &Plan, length: Length) -> Probe {
    Probe {
        case: Case::Dequeue,
        lp,
        length,
        sockets: plan.idle,
    }
}

/// The name of a dequeue loop in the table: raw epoll is a bare `epoll_wait(0)` here.
fn dequeue_name(lp: Loop) -> &'static str {
    match lp {
        Loop::EpollOneshot => "epoll_wait(0), raw",
        other => other.name(),
    }
}

fn dequeue_timed(
    runner: &Runner,
    plan: &Plan,
    loops: &[Loop],
    rows: &mut Vec<Row>,
    notes: &mut Vec<String>,
) {
    let loops = dequeue_loops(loops);
    // per loop, per repetition: (wall ns/call, CPU ns/call); None when the run failed
    let mut reps: Vec<Vec<Option<(f64, f64)>>> = vec![Vec::new(); loops.len()];
    for _ in 0..plan.dequeue_reps {
        for (i, &lp) in loops.iter().enumerate() {
            let probe = dequeue_probe(lp, plan, Length::Time(plan.dequeue_time));
            let r = runner
                .run_args(&probe.to_args(), plan.dequeue_time, None)
                .and_then(|r| {
                    let calls = field(&r.fields, "turns")?.max(1.0);
                    Ok((
                        field(&r.fields, "elapsed_ns")? / calls,
                        field(&r.fields, "cpu_ns")? / calls,
                    ))
                });
            match r {
                Ok(v) => reps[i].push(Some(v)),
                Err(e) => {
                    notes.push(format!("FAILED {DEQUEUE_NS}, {}: {e}", lp.name()));
                    reps[i].push(None);
                }
            }
        }
    }
    let base = loops.iter().position(|&l| l == Loop::SocknotifyEpoll);
    for (measure, pick) in [(DEQUEUE_NS, 0usize), (DEQUEUE_CPU, 1usize)] {
        let value = |r: &Option<(f64, f64)>| r.map(|v| if pick == 0 { v.0 } else { v.1 });
        for (i, &lp) in loops.iter().enumerate() {
            let own: Vec<f64> = reps[i].iter().filter_map(value).collect();
            if own.is_empty() {
                continue;
            }
            // ratios repetition by repetition, against the epoll backend's
            let ratios: Vec<f64> = match base {
                Some(b) => reps[i]
                    .iter()
                    .zip(&reps[b])
                    .filter_map(|(x, y)| Some(value(x)? / value(y)?))
                    .collect(),
                None => Vec::new(),
            };
            let (m, lo, hi) = spread(&own);
            let ratio = if ratios.is_empty() {
                "n/a".into()
            } else {
                let (rm, rlo, rhi) = spread(&ratios);
                format!("{rm:.2} ({rlo:.2}–{rhi:.2})")
            };
            let target = match lp {
                Loop::SocknotifyUring if !ratios.is_empty() => {
                    judge("≤ 1.2x socknotify-epoll", spread(&ratios).0 <= 1.2)
                }
                _ => String::new(),
            };
            rows.push(Row {
                measure,
                who: dequeue_name(lp),
                value: format!("{m:.0} ({lo:.0}–{hi:.0})"),
                ratio,
                target,
            });
        }
    }
}

fn dequeue_syscalls(
    perf: &Perf,
    runner: &Runner,
    plan: &Plan,
    loops: &[Loop],
    rows: &mut Vec<Row>,
    notes: &mut Vec<String>,
) {
    let mut got = Vec::new();
    for lp in dequeue_loops(loops) {
        let probe = dequeue_probe(lp, plan, Length::Time(plan.dequeue_time));
        let r = runner
            .run_args(&probe.to_args(), plan.dequeue_time, Some(perf))
            .and_then(|r| {
                let calls = field(&r.fields, "turns")?.max(1.0);
                let counted = r.syscalls.ok_or("perf counted nothing")?;
                Ok(counted as f64 / calls)
            });
        match r {
            Ok(v) => got.push((lp, v)),
            Err(e) => notes.push(format!("FAILED {DEQUEUE_CALLS}, {}: {e}", lp.name())),
        }
    }
    push_against_epoll_backend(rows, DEQUEUE_CALLS, &got, |v| format!("{v:.2}"));
}

fn dequeue_instructions(
    cg: &Callgrind,
    runner: &Runner,
    plan: &Plan,
    loops: &[Loop],
    rows: &mut Vec<Row>,
    notes: &mut Vec<String>,
) {
    let (short, long) = plan.callgrind;
    let mut got = Vec::new();
    for lp in dequeue_loops(loops) {
        let probe = dequeue_probe(lp, plan, Length::Turns(0));
        match cg.per_unit(runner, &probe, "turns", short, long) {
            Ok(p) => {
                progress(&format!(
                    "{DEQUEUE_IR}: {} {:.0} (runs {:?})",
                    lp.name(),
                    p.instructions,
                    p.runs
                ));
                got.push((lp, p.instructions));
            }
            Err(e) => notes.push(format!("FAILED {DEQUEUE_IR}, {}: {e}", lp.name())),
        }
    }
    push_against_epoll_backend(rows, DEQUEUE_IR, &got, |v| format!("{v:.0}"));
}

fn push_against_epoll_backend(
    rows: &mut Vec<Row>,
    measure: &'static str,
    got: &[(Loop, f64)],
    show: impl Fn(f64) -> String,
) {
    let base = got
        .iter()
        .find(|(l, _)| *l == Loop::SocknotifyEpoll)
        .map(|g| g.1);
    for &(lp, v) in got {
        rows.push(Row {
            measure,
            who: dequeue_name(lp),
            value: show(v),
            ratio: match base {
                Some(b) if b > 0.0 => format!("{:.2}", v / b),
                _ => "n/a".into(),
            },
            target: String::new(),
        });
    }
}

// ---- the table ----

/// Median, minimum and maximum.
fn spread(values: &[f64]) -> (f64, f64, f64) {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    (median, v[0], v[n - 1])
}

/// A small ratio with enough digits to tell 0 from 0.00004.
fn small(x: f64) -> String {
    if x == 0.0 {
        "0".into()
    } else if x >= 0.1 {
        format!("{x:.2}")
    } else {
        format!("{x:.5}")
    }
}

fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| measure | contender | value | ratio (same run) | target |\n|---|---|---|---|---|\n",
    );
    let mut last = "";
    for r in rows {
        let measure = if r.measure == last { "" } else { r.measure };
        last = r.measure;
        out.push_str(&format!(
            "| {measure} | {} | {} | {} | {} |\n",
            r.who, r.value, r.ratio, r.target
        ));
    }
    out.push_str(
        "\nratio: instructions against epoll-oneshot; dequeue figures against \
         socknotify-epoll (timed rows: median (min–max) of the per-repetition ratios).\n",
    );
    out
}

//! SVG plots drawn with plotters' SVG backend: lines over sizes for ping-pong and idle
//! scaling, bars for the rest; every point or bar is a median with its min–max range.

use std::io;
use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{metrics, si, Results, Stat};
use crate::contender::Contender;
use crate::job::{Config, Mode, Workload};

const SIZE: (u32, u32) = (900, 560);

fn color(c: Contender) -> RGBColor {
    match c {
        Contender::Epoll => RGBColor(0, 0, 0),
        Contender::SocknotifyEpoll => RGBColor(214, 39, 40),
        Contender::SocknotifyUring => RGBColor(255, 127, 14),
        Contender::Mio => RGBColor(31, 119, 180),
        Contender::Polling => RGBColor(44, 160, 44),
        Contender::Poll => RGBColor(148, 103, 189),
    }
}

fn fail(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("plot: {e}"))
}

/// One line: a contender's medians (with ranges) over x.
struct Series {
    contender: Contender,
    points: Vec<(f64, Stat)>,
}

/// Both axes logarithmic.
fn lines(
    path: &Path,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[Series],
) -> io::Result<()> {
    let xs = series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let ys = series
        .iter()
        .flat_map(|s| s.points.iter().flat_map(|p| [p.1.min, p.1.max]));
    let (x0, x1) = bounds(xs);
    let (y0, y1) = bounds(ys);
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(fail)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .build_cartesian_2d(
            (x0 / 1.5..x1 * 1.5).log_scale(),
            (y0 / 1.3..y1 * 1.3).log_scale(),
        )
        .map_err(fail)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_label_formatter(&|x| si(*x))
        .y_label_formatter(&|y| si(*y))
        .draw()
        .map_err(fail)?;
    for s in series {
        let c = color(s.contender);
        let style = ShapeStyle::from(c).stroke_width(2);
        chart
            .draw_series(LineSeries::new(
                s.points.iter().map(|&(x, st)| (x, st.median)),
                style,
            ))
            .map_err(fail)?
            .label(s.contender.name())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        chart
            .draw_series(
                s.points
                    .iter()
                    .map(|&(x, st)| Circle::new((x, st.median), 3, c.filled())),
            )
            .map_err(fail)?;
        chart
            .draw_series(
                s.points
                    .iter()
                    .map(|&(x, st)| ErrorBar::new_vertical(x, st.min, st.median, st.max, c, 8)),
            )
            .map_err(fail)?;
    }
    legend(&mut chart)?;
    root.present().map_err(fail)
}

fn legend<'a, X, Y>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
) -> io::Result<()>
where
    X: plotters::coord::ranged1d::Ranged,
    Y: plotters::coord::ranged1d::Ranged,
{
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(fail)
}

/// Bars grouped by category (each contender one bar per group), linear or log y.
fn bars(
    path: &Path,
    title: &str,
    y_desc: &str,
    groups: &[String],
    series: &[(Contender, Vec<Option<Stat>>)],
    log_y: bool,
) -> io::Result<()> {
    let ys = series
        .iter()
        .flat_map(|(_, v)| v.iter().flatten().map(|s| s.max));
    let (y0, y1) = bounds(
        ys.chain(
            series
                .iter()
                .flat_map(|(_, v)| v.iter().flatten().map(|s| s.min)),
        ),
    );
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(fail)?;
    let n = groups.len() as f64;
    if log_y {
        let mut chart = builder(&root, title)
            .build_cartesian_2d(-0.5..n - 0.5, (y0 / 1.5..y1 * 1.5).log_scale())
            .map_err(fail)?;
        let floor = y0 / 1.5;
        mesh_and_bars(&mut chart, y_desc, groups, series, floor)?;
        legend(&mut chart)?;
    } else {
        let mut chart = builder(&root, title)
            .build_cartesian_2d(-0.5..n - 0.5, 0.0..y1 * 1.15)
            .map_err(fail)?;
        mesh_and_bars(&mut chart, y_desc, groups, series, 0.0)?;
        legend(&mut chart)?;
    }
    root.present().map_err(fail)
}

fn builder<'a, 'b>(
    root: &'a DrawingArea<SVGBackend<'b>, Shift>,
    title: &str,
) -> ChartBuilder<'a, 'b, SVGBackend<'b>> {
    let mut b = ChartBuilder::on(root);
    b.caption(title, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(70);
    b
}

fn mesh_and_bars<'a, Y>(
    chart: &mut ChartContext<
        'a,
        SVGBackend<'a>,
        Cartesian2d<plotters::coord::types::RangedCoordf64, Y>,
    >,
    y_desc: &str,
    groups: &[String],
    series: &[(Contender, Vec<Option<Stat>>)],
    floor: f64,
) -> io::Result<()>
where
    Y: plotters::coord::ranged1d::Ranged<ValueType = f64>
        + plotters::coord::ranged1d::ValueFormatter<f64>,
{
    let label = |x: &f64| {
        let i = x.round();
        if (x - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < groups.len() {
            groups[i as usize].clone()
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(groups.len() * 2 + 1)
        .x_label_formatter(&label)
        .y_desc(y_desc)
        .y_label_formatter(&|y| si(*y))
        .draw()
        .map_err(fail)?;
    let width = 0.8 / series.len().max(1) as f64;
    for (k, (contender, values)) in series.iter().enumerate() {
        let c = color(*contender);
        let left = |g: usize| g as f64 - 0.4 + k as f64 * width;
        chart
            .draw_series(values.iter().enumerate().filter_map(|(g, s)| {
                let s = (*s)?;
                Some(Rectangle::new(
                    [(left(g), floor), (left(g) + width * 0.9, s.median)],
                    c.filled(),
                ))
            }))
            .map_err(fail)?
            .label(contender.name())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], c.filled()));
        chart
            .draw_series(values.iter().enumerate().filter_map(|(g, s)| {
                let s = (*s)?;
                let mid = left(g) + width * 0.45;
                Some(ErrorBar::new_vertical(
                    mid, s.min, s.median, s.max, BLACK, 6,
                ))
            }))
            .map_err(fail)?;
    }
    Ok(())
}

/// The smallest and largest positive value, with a fallback for empty input.
fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite() && *v > 0.0)
        .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lo > hi {
        (1.0, 10.0)
    } else if lo == hi {
        (lo / 2.0, hi * 2.0)
    } else {
        (lo, hi)
    }
}

/// Draws every plot the results allow into `dir`; returns the files written.
pub fn draw(r: &Results, dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let mut emit = |name: &str, f: &dyn Fn(&Path) -> io::Result<()>| -> io::Result<()> {
        let path = dir.join(name);
        f(&path)?;
        written.push(path);
        Ok(())
    };
    // Ping-pong: one plot per thread count, messages/s over connections.
    let pingpong = r.configs(Workload::PingPong);
    let mut threads: Vec<usize> = pingpong.iter().map(|c| c.threads).collect();
    threads.dedup();
    threads.sort_unstable();
    threads.dedup();
    for t in threads {
        let configs: Vec<Config> = pingpong
            .iter()
            .copied()
            .filter(|c| c.threads == t)
            .collect();
        let series = line_series(r, &configs, |c| c.conns as f64);
        emit(&format!("pingpong_t{t}.svg"), &|p| {
            lines(
                p,
                &format!("Ping-pong, {t} thread(s)"),
                "connections",
                "messages/s",
                &series,
            )
        })?;
    }
    let idle = r.configs(Workload::Idle);
    if !idle.is_empty() {
        let series = line_series(r, &idle, |c| c.idle as f64);
        emit("idle.svg", &|p| {
            lines(
                p,
                "Idle scaling: one active connection",
                "registered idle sockets",
                "ns per entry",
                &series,
            )
        })?;
    }
    for (workload, name, title, log_y) in [
        (Workload::Churn, "churn.svg", "Registration churn", false),
        (
            Workload::Memory,
            "memory.svg",
            "Resident memory per registration",
            false,
        ),
    ] {
        let configs = r.configs(workload);
        if configs.is_empty() {
            continue;
        }
        let metric = metrics(&configs[0])[0];
        let groups: Vec<String> = configs.iter().map(Config::to_string).collect();
        let series = bar_series(r, &configs, |c, k| r.stat(c, k, &metric));
        emit(name, &|p| {
            bars(p, title, metric.name, &groups, &series, log_y)
        })?;
    }
    let posted = r.configs(Workload::Posted);
    if let Some(c) = posted.iter().find(|c| c.mode == Mode::Throughput) {
        let metric = metrics(c)[0];
        let series = bar_series(r, &[*c], |c, k| r.stat(c, k, &metric));
        emit("posted_throughput.svg", &|p| {
            bars(
                p,
                "Posted entries: throughput",
                metric.name,
                &[c.to_string()],
                &series,
                false,
            )
        })?;
    }
    if let Some(c) = posted.iter().find(|c| c.mode == Mode::Latency) {
        let ms = metrics(c);
        let groups: Vec<String> = ms.iter().map(|m| m.name.to_string()).collect();
        let series: Vec<(Contender, Vec<Option<Stat>>)> = r
            .contenders
            .iter()
            .map(|&k| (k, ms.iter().map(|m| r.stat(c, k, m)).collect()))
            .collect();
        emit("posted_latency.svg", &|p| {
            bars(
                p,
                "Posted entries: post-to-dequeue latency",
                "ns",
                &groups,
                &series,
                true,
            )
        })?;
    }
    Ok(written)
}

fn line_series(r: &Results, configs: &[Config], x: impl Fn(&Config) -> f64) -> Vec<Series> {
    r.contenders
        .iter()
        .map(|&k| Series {
            contender: k,
            points: configs
                .iter()
                .filter_map(|c| Some((x(c), r.stat(c, k, &metrics(c)[0])?)))
                .collect(),
        })
        .filter(|s| !s.points.is_empty())
        .collect()
}

fn bar_series(
    r: &Results,
    configs: &[Config],
    stat: impl Fn(&Config, Contender) -> Option<Stat>,
) -> Vec<(Contender, Vec<Option<Stat>>)> {
    r.contenders
        .iter()
        .map(|&k| (k, configs.iter().map(|c| stat(c, k)).collect::<Vec<_>>()))
        .filter(|(_, v)| v.iter().any(Option::is_some))
        .collect()
}

//! SVG plots drawn with plotters' SVG backend: lines over sizes for ping-pong and idle
//! scaling, bars for the rest; every point or bar is a median with its min–max range.

use std::io;
use std::path::{Path, PathBuf};

use plotters::coord::ranged1d::{Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::{metrics, si, Results, Stat};
use crate::contender::Contender;
use crate::job::{Config, Mode, Workload};

const SIZE: (u32, u32) = (900, 560);
/// Width of the legend panel on the right.
const LEGEND: u32 = 170;

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

/// Logarithmic x; logarithmic or linear (from zero) y.
fn lines(
    path: &Path,
    title: &str,
    (x_desc, y_desc): (&str, &str),
    series: &[Series],
    log_y: bool,
) -> io::Result<()> {
    let xs = series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let ys = series
        .iter()
        .flat_map(|s| s.points.iter().flat_map(|p| [p.1.min, p.1.max]));
    let (x0, x1) = bounds(xs);
    let (y0, y1) = bounds(ys);
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(fail)?;
    let (plot, side) = root.split_horizontally(SIZE.0 - LEGEND);
    let x = (x0 / 1.5..x1 * 1.5).log_scale();
    if log_y {
        let mut chart = builder(&plot, title)
            .build_cartesian_2d(x, (y0 / 1.5..y1 * 1.5).log_scale())
            .map_err(fail)?;
        draw_lines(&mut chart, x_desc, y_desc, series)?;
    } else {
        let mut chart = builder(&plot, title)
            .build_cartesian_2d(x, 0.0..y1 * 1.1)
            .map_err(fail)?;
        draw_lines(&mut chart, x_desc, y_desc, series)?;
    }
    let shown: Vec<(&str, RGBColor)> = series
        .iter()
        .map(|s| (s.contender.name(), color(s.contender)))
        .collect();
    legend(&side, &shown, false)?;
    root.present().map_err(fail)
}

fn draw_lines<'a, Y>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<LogCoord<f64>, Y>>,
    x_desc: &str,
    y_desc: &str,
    series: &[Series],
) -> io::Result<()>
where
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
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
            .map_err(fail)?;
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
    Ok(())
}

/// The legend, in its own panel beside the chart so that it never hides data.
fn legend(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    shown: &[(&str, RGBColor)],
    bars: bool,
) -> io::Result<()> {
    for (i, &(name, colour)) in shown.iter().enumerate() {
        let y = 70 + 24 * i as i32;
        if bars {
            area.draw(&Rectangle::new([(8, y - 6), (28, y + 6)], colour.filled()))
                .map_err(fail)?;
        } else {
            area.draw(&PathElement::new(
                vec![(8, y), (28, y)],
                ShapeStyle::from(colour).stroke_width(2),
            ))
            .map_err(fail)?;
        }
        area.draw(&Text::new(
            name,
            (34, y - 7),
            ("sans-serif", 14).into_font(),
        ))
        .map_err(fail)?;
    }
    Ok(())
}

/// One bar per group: a name for the legend, its colour, and a value (or none) per group.
#[derive(Debug)]
pub struct Bar<'a> {
    pub name: &'a str,
    pub color: RGBColor,
    pub values: Vec<Option<Stat>>,
}

/// Bars grouped by category (each series one bar per group), linear or log y.
pub fn bars(
    path: &Path,
    title: &str,
    y_desc: &str,
    groups: &[String],
    series: &[Bar<'_>],
    log_y: bool,
) -> io::Result<()> {
    let stats = || series.iter().flat_map(|b| b.values.iter().flatten());
    let (y0, y1) = bounds(stats().flat_map(|s| [s.min, s.max]));
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(fail)?;
    let (plot, side) = root.split_horizontally(SIZE.0 - LEGEND);
    let n = groups.len() as f64;
    if log_y {
        let mut chart = builder(&plot, title)
            .build_cartesian_2d(-0.5..n - 0.5, (y0 / 1.5..y1 * 1.5).log_scale())
            .map_err(fail)?;
        mesh_and_bars(&mut chart, y_desc, groups, series, y0 / 1.5)?;
    } else {
        let mut chart = builder(&plot, title)
            .build_cartesian_2d(-0.5..n - 0.5, 0.0..y1 * 1.1)
            .map_err(fail)?;
        mesh_and_bars(&mut chart, y_desc, groups, series, 0.0)?;
    }
    let shown: Vec<(&str, RGBColor)> = series.iter().map(|b| (b.name, b.color)).collect();
    legend(&side, &shown, true)?;
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
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<RangedCoordf64, Y>>,
    y_desc: &str,
    groups: &[String],
    series: &[Bar<'_>],
    floor: f64,
) -> io::Result<()>
where
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
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
    for (k, bar) in series.iter().enumerate() {
        let (c, values) = (bar.color, &bar.values);
        let left = |g: usize| g as f64 - 0.4 + k as f64 * width;
        chart
            .draw_series(values.iter().enumerate().filter_map(|(g, s)| {
                let s = (*s)?;
                let corners = [(left(g), floor), (left(g) + width * 0.9, s.median)];
                Some(Rectangle::new(corners, c.filled()))
            }))
            .map_err(fail)?;
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
            let title = format!("Ping-pong, {t} thread(s)");
            lines(p, &title, ("connections", "messages/s"), &series, false)
        })?;
    }
    let idle = r.configs(Workload::Idle);
    if !idle.is_empty() {
        let series = line_series(r, &idle, |c| c.idle as f64);
        emit("idle.svg", &|p| {
            let axes = ("registered idle sockets", "ns per entry");
            lines(
                p,
                "Idle scaling: one active connection",
                axes,
                &series,
                true,
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
        let series: Vec<Bar<'static>> = r
            .contenders
            .iter()
            .map(|&k| contender_bar(k, ms.iter().map(|m| r.stat(c, k, m)).collect()))
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
) -> Vec<Bar<'static>> {
    r.contenders
        .iter()
        .map(|&k| contender_bar(k, configs.iter().map(|c| stat(c, k)).collect()))
        .filter(|b| b.values.iter().any(Option::is_some))
        .collect()
}

fn contender_bar(k: Contender, values: Vec<Option<Stat>>) -> Bar<'static> {
    Bar {
        name: k.name(),
        color: color(k),
        values,
    }
}

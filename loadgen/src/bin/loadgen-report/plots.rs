//! The report's SVG plots, drawn with plotters' SVG backend (no system fonts or C
//! libraries: text is written as SVG `<text>` for the viewer to lay out).

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::hgrm::Point;
use crate::samples::{cpu_percent_series, Sample};

type Result<T> = std::result::Result<T, String>;

fn err<E: std::fmt::Debug>(e: E) -> String {
    format!("plot: {e:?}")
}

/// `1/(1-p)` → a percentile label: 1 → "0%", 100 → "99%", 1000 → "99.9%".
pub fn percentile_label(x: f64) -> String {
    if x <= 1.0 {
        return "0%".into();
    }
    let p = (1.0 - 1.0 / x) * 100.0;
    let text = format!("{p:.4}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}%")
}

/// A named, coloured percentile distribution, for [`latency`].
pub type Distribution<'a> = (&'a str, RGBColor, &'a [Point]);

/// Latency percentile distributions: x is `1/(1-p)` on a log scale (the classic
/// HdrHistogram plot), y milliseconds on a log scale. Several distributions (the delivery
/// latency of version-1 and version-2 readers) share the axes, with a legend; an empty
/// one is left out.
pub fn latency(path: &Path, title: &str, distributions: &[Distribution]) -> Result<()> {
    let root = SVGBackend::new(path, (900, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let lines: Vec<Series> = distributions
        .iter()
        .map(|(name, color, points)| {
            let data: Vec<(f64, f64)> = points
                .iter()
                .filter(|p| p.percentile < 1.0)
                .map(|p| (1.0 / (1.0 - p.percentile), p.value_ms.max(0.001)))
                .collect();
            (*name, *color, data)
        })
        .filter(|(_, _, data)| !data.is_empty())
        .collect();
    let all = || lines.iter().flat_map(|l| l.2.iter());
    if lines.is_empty() {
        root.titled(&format!("{title}: no samples"), ("sans-serif", 20))
            .map_err(err)?;
        root.present().map_err(err)?;
        return Ok(());
    }
    let x_max = all().map(|d| d.0).fold(10.0, f64::max) * 1.5;
    let y_min = all().map(|d| d.1).fold(f64::MAX, f64::min) / 1.5;
    let y_max = all().map(|d| d.1).fold(0.0, f64::max) * 1.5;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((1.0..x_max).log_scale(), (y_min..y_max).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (ms)")
        .x_label_formatter(&|x| percentile_label(*x))
        .y_label_formatter(&|y| format!("{y}"))
        .draw()
        .map_err(err)?;
    for (name, color, data) in &lines {
        let color = *color;
        chart
            .draw_series(LineSeries::new(data.iter().copied(), color.stroke_width(2)))
            .map_err(err)?
            .label(*name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color));
    }
    if lines.len() > 1 {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
    }
    root.present().map_err(err)
}

/// A named, coloured line of (x, y) points.
type Series<'a> = (&'a str, RGBColor, Vec<(f64, f64)>);

/// The run's windows on a time axis (seconds since loadgen started): every plot over time
/// shades the warm-up and marks the steady window's edges, so that no reader takes the
/// warm-up's figures for the steady state.
#[derive(Clone, Copy, Debug, Default)]
pub struct Windows {
    /// From the end of the ramp to the start of the steady window.
    pub warmup: Option<(f64, f64)>,
    pub steady: Option<(f64, f64)>,
}

/// The colours of the lines, for the callers of [`latency`].
pub const BLUE: RGBColor = plotters::style::colors::BLUE;
pub const RED: RGBColor = plotters::style::colors::RED;

/// The orange of the steady window's edges.
const STEADY: RGBColor = RGBColor(230, 120, 0);
/// The grey of the warm-up.
const WARMUP: RGBColor = RGBColor(225, 225, 225);

/// What the marks mean, for a panel's caption.
pub const MARKS: &str = "warm-up shaded, steady window between the orange lines";

/// A time series panel.
fn series_panel(
    area: &DrawingArea<SVGBackend, Shift>,
    title: &str,
    y_desc: &str,
    series: &[Series],
    windows: &Windows,
) -> Result<()> {
    let all = series.iter().flat_map(|s| s.2.iter());
    let (mut x_max, mut y_max) = (1.0f64, 0.0f64);
    for &(x, y) in all {
        x_max = x_max.max(x);
        y_max = y_max.max(y);
    }
    for (_, end) in [windows.warmup, windows.steady].into_iter().flatten() {
        x_max = x_max.max(end);
    }
    let y_max = if y_max > 0.0 { y_max * 1.1 } else { 1.0 };
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(35)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("seconds since loadgen started")
        .y_desc(y_desc)
        .draw()
        .map_err(err)?;
    let label = |text: &'static str, x: f64| {
        Text::new(
            text,
            (x, y_max * 0.98),
            ("sans-serif", 13).into_font().color(&BLACK),
        )
    };
    if let Some((a, b)) = windows.warmup {
        chart
            .draw_series([Rectangle::new([(a, 0.0), (b, y_max)], WARMUP.filled())])
            .map_err(err)?;
        chart.draw_series([label("warm-up", a)]).map_err(err)?;
    }
    if let Some((a, b)) = windows.steady {
        for m in [a, b] {
            chart
                .draw_series(LineSeries::new(
                    [(m, 0.0), (m, y_max)],
                    STEADY.stroke_width(2),
                ))
                .map_err(err)?;
        }
        chart
            .draw_series([label("steady window", a)])
            .map_err(err)?;
    }
    for (name, color, data) in series {
        let color = *color;
        chart
            .draw_series(LineSeries::new(data.iter().copied(), color.stroke_width(2)))
            .map_err(err)?
            .label(*name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color));
    }
    if series.len() > 1 {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
    }
    Ok(())
}

/// Server RSS and CPU over time (seconds since `t0`), with the run's windows marked.
pub fn server(
    path: &Path,
    server: &[Sample],
    loadgen: &[Sample],
    t0: f64,
    windows: &Windows,
) -> Result<()> {
    let root = SVGBackend::new(path, (900, 720)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let (top, bottom) = root.split_vertically(360);
    let rss: Vec<(f64, f64)> = server
        .iter()
        .filter(|s| s.t >= t0)
        .map(|s| (s.t - t0, s.rss_kib / 1024.0))
        .collect();
    series_panel(
        &top,
        &format!("kaichat-server RSS ({MARKS})"),
        "RSS (MiB)",
        &[("server RSS", BLUE, rss)],
        windows,
    )?;
    let cpu = |samples: &[Sample]| -> Vec<(f64, f64)> {
        cpu_percent_series(samples)
            .into_iter()
            .filter(|(t, _)| *t >= t0)
            .map(|(t, c)| (t - t0, c))
            .collect()
    };
    series_panel(
        &bottom,
        "CPU (% of one core)",
        "CPU %",
        &[
            ("kaichat-server", RED, cpu(server)),
            ("loadgen", GREEN, cpu(loadgen)),
        ],
        windows,
    )?;
    root.present().map_err(err)
}

/// loadgen's own per-second view (seconds since loadgen started): handshakes per second,
/// and answers per second to the QUERYs due in the steady window next to messages
/// delivered per second (pushed or polled), with the run's windows marked.
pub fn timeline(
    path: &Path,
    handshakes: Vec<(f64, f64)>,
    queries: Vec<(f64, f64)>,
    delivered: Vec<(f64, f64)>,
    windows: &Windows,
) -> Result<()> {
    let root = SVGBackend::new(path, (900, 720)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let (top, bottom) = root.split_vertically(360);
    series_panel(
        &top,
        "Handshakes completed per second",
        "handshakes/s",
        &[("handshakes", BLUE, handshakes)],
        windows,
    )?;
    series_panel(
        &bottom,
        "Per second: answers to QUERYs due in the steady window, messages delivered",
        "per second",
        &[
            ("QUERY answers", RED, queries),
            ("messages delivered", BLUE, delivered),
        ],
        windows,
    )?;
    root.present().map_err(err)
}

#[cfg(test)]
mod tests;

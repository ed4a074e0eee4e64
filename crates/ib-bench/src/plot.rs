//! PNG plots from the JSON reports: latency against creation rate, RSS against pods watched, and the
//! churn run over time. Text is drawn with a TrueType font read from disk (plotters' pure-Rust glyph
//! renderer), so no system font library is needed.

use std::path::{Path, PathBuf};

use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use crate::scenarios::churn::ChurnReport;
use crate::scenarios::latency::LatencyReport;
use crate::scenarios::memory::MemoryReport;

mod gpu;
pub use gpu::{job_ready_vs_ufm, rss_vs_pods_gpu};

/// Debian's and Ubuntu's fonts-dejavu-core.
pub const DEFAULT_FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
const FONT: &str = "sans-serif";
const SIZE: (u32, u32) = (900, 560);
const MIB: f64 = 1024.0 * 1024.0;

#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("cannot read the font {path}: {source} (install fonts-dejavu-core or pass --font)")]
    FontRead { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a TrueType or OpenType font")]
    FontInvalid { path: PathBuf },
    #[error("drawing {path}: {message}")]
    Draw { path: PathBuf, message: String },
    #[error("the {0} report has no data to plot")]
    Empty(&'static str),
}

/// Registers the font every plot uses; call once before plotting.
pub fn load_font(path: &Path) -> Result<(), PlotError> {
    let bytes = std::fs::read(path).map_err(|source| PlotError::FontRead { path: path.to_owned(), source })?;
    // plotters keeps registered fonts for the life of the process.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    register_font(FONT, FontStyle::Normal, bytes).map_err(|_| PlotError::FontInvalid { path: path.to_owned() })
}

/// The series labels in a framed box at `position`.
fn legend<'a, DB, CT>(chart: &mut ChartContext<'a, DB, CT>, position: SeriesLabelPosition) -> Result<(), String>
where
    DB: DrawingBackend + 'a,
    CT: CoordTranslate,
{
    chart
        .configure_series_labels()
        .position(position)
        .label_font((FONT, 15))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())
}

/// A labelled line through `points` with a marker at each: a circle, or a thin cross when `light`.
fn marked_line<'a, DB, CT>(
    chart: &mut ChartContext<'a, DB, CT>,
    label: String,
    color: RGBAColor,
    light: bool,
    points: Vec<(f64, f64)>,
) -> Result<(), String>
where
    DB: DrawingBackend + 'a,
    CT: CoordTranslate<From = (f64, f64)>,
{
    let width = if light { 1 } else { 2 };
    chart
        .draw_series(LineSeries::new(points.clone(), color.stroke_width(width)))
        .map_err(|e| e.to_string())?
        .label(label)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(width)));
    if light {
        chart.draw_series(points.into_iter().map(|p| Cross::new(p, 4, color.stroke_width(1))))
    } else {
        chart.draw_series(points.into_iter().map(|p| Circle::new(p, 4, color.filled())))
    }
    .map(drop)
    .map_err(|e| e.to_string())
}

/// RSS against pods: two marked series (settled and peak) and a black reference line, on linear axes
/// from zero to `max_pods` and `max_mib`.
fn rss_plot(
    path: &Path,
    caption: &str,
    x_desc: &str,
    (max_pods, max_mib): (f64, f64),
    series: [(&str, Vec<(f64, f64)>); 2],
    (reference_label, reference): (&str, Vec<(f64, f64)>),
) -> Result<(), PlotError> {
    let err = draw_error(path);
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, (FONT, 24))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..max_pods * 1.05, 0.0..max_mib)
        .map_err(|e| err(e.to_string()))?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc("RSS (MiB)")
        .label_style((FONT, 15))
        .draw()
        .map_err(|e| err(e.to_string()))?;
    for ((label, points), color) in series.into_iter().zip([BLUE, RED]) {
        marked_line(&mut chart, label.to_owned(), color.to_rgba(), false, points).map_err(&err)?;
    }
    chart
        .draw_series(LineSeries::new(reference, BLACK.stroke_width(1)))
        .map_err(|e| err(e.to_string()))?
        .label(reference_label)
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.stroke_width(1)));
    legend(&mut chart, SeriesLabelPosition::UpperLeft).map_err(&err)?;
    root.present().map_err(|e| err(e.to_string()))
}

fn draw_error(path: &Path) -> impl Fn(String) -> PlotError + '_ {
    move |message| PlotError::Draw { path: path.to_owned(), message }
}

type StepValue = fn(&crate::scenarios::latency::RateStep) -> f64;

/// Latency percentiles against the creation rate, log–log, with the floor as a line.
pub fn latency_vs_rate(report: &LatencyReport, path: &Path) -> Result<(), PlotError> {
    let steps = &report.steps;
    if steps.is_empty() {
        return Err(PlotError::Empty("latency"));
    }
    let err = draw_error(path);
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let rates = || steps.iter().map(|s| s.rate_per_s);
    let (min_rate, max_rate) = (rates().fold(f64::MAX, f64::min), rates().fold(0.0, f64::max));
    let max_ms = steps.iter().map(|s| s.latency.p99_ms).fold(report.idle_floor.total_ms, f64::max) * 2.0;
    let min_ms = (report.floor.total_ms / 2.0).max(0.01);
    let mut chart = ChartBuilder::on(&root)
        .caption("ib-kubernetes: pod created -> configured", (FONT, 24))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d((min_rate / 1.5..max_rate * 1.5).log_scale(), (min_ms..max_ms).log_scale())
        .map_err(|e| err(e.to_string()))?;
    chart
        .configure_mesh()
        .x_desc("pods created per second")
        .y_desc("latency (ms)")
        .label_style((FONT, 15))
        .draw()
        .map_err(|e| err(e.to_string()))?;
    let series: [(&str, RGBColor, StepValue); 3] =
        [("p50", BLUE, |s| s.latency.p50_ms), ("p90", GREEN, |s| s.latency.p90_ms), ("p99", RED, |s| s.latency.p99_ms)];
    for (label, color, value) in series {
        let points: Vec<(f64, f64)> = steps.iter().map(|s| (s.rate_per_s, value(s).max(min_ms))).collect();
        marked_line(&mut chart, label.to_owned(), color.to_rgba(), false, points).map_err(&err)?;
    }
    let (floor, idle) = (report.floor.total_ms, report.idle_floor.total_ms);
    for (label, y, color) in [
        (format!("floor: PATCH + UFM add, back to back ({floor:.2} ms)"), floor, BLACK),
        (format!("floor, 100 ms apart ({idle:.2} ms)"), idle, RGBColor(128, 128, 128)),
    ] {
        chart
            .draw_series(LineSeries::new(vec![(min_rate / 1.5, y), (max_rate * 1.5, y)], color.stroke_width(1)))
            .map_err(|e| err(e.to_string()))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(1)));
    }
    legend(&mut chart, SeriesLabelPosition::UpperLeft).map_err(&err)?;
    root.present().map_err(|e| err(e.to_string()))
}

/// Settled RSS against pods watched, with the budget of 1 KiB per pod over the smallest step.
pub fn rss_vs_pods(report: &MemoryReport, path: &Path) -> Result<(), PlotError> {
    let steps = &report.steps;
    let Some(base) = steps.first() else { return Err(PlotError::Empty("memory")) };
    let max_pods = steps.iter().map(|s| s.pods).max().unwrap_or(0).max(1) as f64;
    let budget = |pods: f64| (base.usage.rss_bytes as f64 + (pods - base.pods as f64) * 1024.0) / MIB;
    let max_mib = steps.iter().map(|s| s.usage.peak_rss_bytes as f64 / MIB).fold(budget(max_pods), f64::max) * 1.15;
    let rss: Vec<(f64, f64)> = steps.iter().map(|s| (s.pods as f64, s.usage.rss_bytes as f64 / MIB)).collect();
    let peak: Vec<(f64, f64)> = steps.iter().map(|s| (s.pods as f64, s.usage.peak_rss_bytes as f64 / MIB)).collect();
    let line = vec![(base.pods as f64, budget(base.pods as f64)), (max_pods, budget(max_pods))];
    rss_plot(
        path,
        "ib-kubernetes: controller memory by pods watched",
        "pods watched (half InfiniBand, configured)",
        (max_pods, max_mib),
        [("settled RSS", rss), ("peak RSS", peak)],
        ("budget: 1 KiB per pod over the empty cluster", line),
    )
}

/// The churn run over time: latency per window above, RSS below.
pub fn churn(report: &ChurnReport, path: &Path) -> Result<(), PlotError> {
    let windows = &report.windows;
    if windows.is_empty() {
        return Err(PlotError::Empty("churn"));
    }
    let err = draw_error(path);
    let root = BitMapBackend::new(path, (SIZE.0, SIZE.1 + 240)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let (upper, lower) = root.split_vertically((SIZE.1 + 240) / 2);
    let end = windows.iter().map(|w| w.at_s).fold(0.0, f64::max);
    let max_ms = windows.iter().map(|w| w.latency.p99_ms).fold(0.0, f64::max).max(0.1) * 1.2;
    let title =
        format!("ib-kubernetes churn: {} pods alive, {}/s created and deleted", report.alive, report.rate_per_s);
    let mut chart = ChartBuilder::on(&upper)
        .caption(title, (FONT, 22))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..end, 0.0..max_ms)
        .map_err(|e| err(e.to_string()))?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc("latency (ms)")
        .label_style((FONT, 14))
        .draw()
        .map_err(|e| err(e.to_string()))?;
    for (label, color, value) in [
        ("p50", BLUE, (|w: &crate::scenarios::churn::Window| w.latency.p50_ms) as fn(&_) -> f64),
        ("p99", RED, |w| w.latency.p99_ms),
    ] {
        chart
            .draw_series(LineSeries::new(windows.iter().map(|w| (w.at_s, value(w))), color.stroke_width(2)))
            .map_err(|e| err(e.to_string()))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    legend(&mut chart, SeriesLabelPosition::UpperRight).map_err(&err)?;

    let max_mib = windows.iter().map(|w| w.rss_bytes as f64 / MIB).fold(0.0, f64::max) * 1.2;
    let mut chart = ChartBuilder::on(&lower)
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..end, 0.0..max_mib)
        .map_err(|e| err(e.to_string()))?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc("controller RSS (MiB)")
        .label_style((FONT, 14))
        .draw()
        .map_err(|e| err(e.to_string()))?;
    chart
        .draw_series(LineSeries::new(windows.iter().map(|w| (w.at_s, w.rss_bytes as f64 / MIB)), BLUE.stroke_width(2)))
        .map_err(|e| err(e.to_string()))?;
    root.present().map_err(|e| err(e.to_string()))
}

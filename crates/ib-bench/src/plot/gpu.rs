//! Plots of the GPU scenarios: job-ready time against UFM's service time, and RSS against pods at a
//! GPU cluster's leader start.

use std::path::Path;

use plotters::prelude::*;

use super::{FONT, MIB, PlotError, SIZE, draw_error, legend, marked_line, rss_plot};
use crate::rails::Layout;
use crate::scenarios::gang::{GangReport, GangRun};
use crate::scenarios::gpu_start::GpuStartReport;

/// Job-ready time and the job floor against UFM's service time per request, log–log, one colour per
/// layout of the rails and daemon. The floor is drawn once per layout, from the first daemon's runs
/// (each daemon's run measures its own; they agree within the noise). A job a daemon did not finish is
/// drawn as a hollow square at its deadline, a lower bound, off the line.
pub fn job_ready_vs_ufm(report: &GangReport, path: &Path) -> Result<(), PlotError> {
    let runs = &report.runs;
    if runs.is_empty() {
        return Err(PlotError::Empty("gang"));
    }
    let err = draw_error(path);
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let service = || runs.iter().map(|r| r.ufm.service_ms.max(0.01));
    let (min_x, max_x) = (service().fold(f64::MAX, f64::min) / 2.0, service().fold(0.0, f64::max) * 2.0);
    let ys = || runs.iter().flat_map(|r| [r.job_ready_seconds, r.floor.total_ms / 1000.0]);
    let (min_y, max_y) = (ys().fold(f64::MAX, f64::min).max(1e-3) / 2.0, ys().fold(0.0, f64::max) * 3.0);
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("gang job of {} pods x {} rails: ready time", report.pods, report.rails), (FONT, 24))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d((min_x..max_x).log_scale(), (min_y..max_y).log_scale())
        .map_err(|e| err(e.to_string()))?;
    chart
        .configure_mesh()
        .x_desc("UFM service time per request (ms)")
        .y_desc("first create -> last pod configured (s)")
        .label_style((FONT, 15))
        .draw()
        .map_err(|e| err(e.to_string()))?;
    let daemons = report.daemons();
    // This controller in blue and red, a second daemon in green and purple.
    let palette = [[BLUE, RED], [RGBColor(0, 140, 0), RGBColor(140, 0, 160)]];
    for (d, daemon) in daemons.iter().enumerate() {
        let colors = palette[d % palette.len()];
        for (layout, color) in [Layout::OnePkey, Layout::PerRail].into_iter().zip(colors) {
            let mine: Vec<_> = runs.iter().filter(|r| r.layout == layout && r.daemon == *daemon).collect();
            if mine.is_empty() {
                continue;
            }
            let x = |r: &GangRun| r.ufm.service_ms.max(0.01);
            let name = layout.label();
            let who = if *daemon == "ours" { "this controller".to_owned() } else { format!("{daemon} daemon") };
            let ready: Vec<(f64, f64)> =
                mine.iter().filter(|r| r.unfinished.is_none()).map(|r| (x(r), r.job_ready_seconds)).collect();
            let label = format!("job ready, {who}, rails on {name}");
            marked_line(&mut chart, label, color.to_rgba(), false, ready).map_err(&err)?;
            let unfinished = mine.iter().filter(|r| r.unfinished.is_some()).map(|r| (x(r), r.job_ready_seconds));
            chart
                .draw_series(
                    unfinished.map(|(x, y)| {
                        EmptyElement::at((x, y)) + Rectangle::new([(-5, -5), (5, 5)], color.stroke_width(2))
                    }),
                )
                .map_err(|e| err(e.to_string()))?;
            if d == 0 {
                let floor: Vec<(f64, f64)> = mine.iter().map(|r| (x(r), r.floor.total_ms / 1000.0)).collect();
                marked_line(&mut chart, format!("job floor, rails on {name}"), color.mix(0.5), true, floor)
                    .map_err(&err)?;
            }
        }
    }
    // Lower right: slow UFMs are to the right and slow daemons at the top.
    legend(&mut chart, SeriesLabelPosition::LowerRight).map_err(&err)?;
    root.present().map_err(|e| err(e.to_string()))
}

/// Peak and settled RSS against pods at a leader start in a GPU cluster, with the 200 MiB peak target.
pub fn rss_vs_pods_gpu(report: &GpuStartReport, path: &Path) -> Result<(), PlotError> {
    let steps = &report.steps;
    if steps.is_empty() {
        return Err(PlotError::Empty("gpu-start"));
    }
    const TARGET_MIB: f64 = 200.0;
    let max_pods = steps.iter().map(|s| s.pods).max().unwrap_or(0).max(1) as f64;
    let max_mib = steps.iter().map(|s| s.at_configured.peak_rss_bytes as f64 / MIB).fold(TARGET_MIB, f64::max) * 1.15;
    let settled: Vec<(f64, f64)> = steps.iter().map(|s| (s.pods as f64, s.settled.rss_bytes as f64 / MIB)).collect();
    let peak: Vec<(f64, f64)> =
        steps.iter().map(|s| (s.pods as f64, s.at_configured.peak_rss_bytes as f64 / MIB)).collect();
    rss_plot(
        path,
        "leader start, every pod InfiniBand: controller memory",
        &format!("pods ({:.0}% of them {}-rail)", report.multi_share * 100.0, report.rails),
        (max_pods, max_mib),
        [("settled RSS", settled), ("peak RSS during the start", peak)],
        ("target: peak 200 MiB at 100,000 pods", vec![(0.0, TARGET_MIB), (max_pods * 1.05, TARGET_MIB)]),
    )
}

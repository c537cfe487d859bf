//! The plots of BENCHMARKS.md, drawn from a run's JSON (`Report::series`) as SVG: GuiSessions
//! Ready over time in the burst, each session's lateness in the renewal wave, and the operator
//! processes' RSS over the run. `bench --plot <json> <dir>` draws them from a JSON file; a run
//! with `--json` draws them beside it.
//!
//! SVG only, text as SVG `<text>`: plotters is built without its font loader, so nothing links a
//! system library. Every series is drawn in a colour of [`PALETTE`] and nothing else is (axes,
//! grid and marks are black or grey), which is how tests/bench_smoke.rs tells series apart.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use crate::report::Report;

const SIZE: (u32, u32) = (960, 540);

/// The series colours (Tableau 10); nothing but a data series is drawn in one of them.
pub const PALETTE: [RGBColor; 7] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0xe3, 0x77, 0xc2),
];

/// The plots, by the suffix of their file names: `<name>-<suffix>.svg`.
pub const READY: &str = "ready-over-time";
pub const LATENESS: &str = "renewal-lateness";
pub const RSS: &str = "rss";

pub fn file(dir: &Path, name: &str, plot: &str) -> PathBuf {
    dir.join(format!("{name}-{plot}.svg"))
}

type Error = Box<dyn std::error::Error + Send + Sync>;
/// Draws one plot into a file.
type Draw<'a> = &'a dyn Fn(&Path) -> Result<(), Error>;

/// Draws every plot whose series `report` has into `dir` as `<name>-<plot>.svg`; says on stderr
/// which it skipped (JSON written before the series were recorded, or a partial run). Returns
/// the files written.
pub fn render(report: &Report, name: &str, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    let s = &report.series;
    let what = format!(
        "N = {}, commit {}, {}",
        report.config.n,
        report.versions.git_commit,
        report.config.started_at.get(..10).unwrap_or("")
    );
    let plots: [(&str, bool, Draw); 3] = [
        (READY, !s.burst_ready_s.is_empty(), &|p| {
            ready_over_time(report, &what, p)
        }),
        (LATENESS, !s.renewal_lateness_s.is_empty(), &|p| {
            renewal_lateness(report, &what, p)
        }),
        (RSS, s.rss.iter().any(|r| !r.t_s.is_empty()), &|p| {
            rss(report, &what, p)
        }),
    ];
    for (plot, has_data, draw) in plots {
        let path = file(dir, name, plot);
        if !has_data {
            eprintln!(
                "bench: no {plot} series in the report: {} not drawn",
                path.display()
            );
            continue;
        }
        draw(&path).map_err(|e| anyhow::anyhow!("drawing {}: {e}", path.display()))?;
        eprintln!("bench: wrote {}", path.display());
        written.push(path);
    }
    Ok(written)
}

/// Reads a report from `json` and draws its plots into `dir`, named after the file.
pub fn render_file(json: &Path, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    use anyhow::Context as _;
    let text =
        std::fs::read_to_string(json).with_context(|| format!("reading {}", json.display()))?;
    let report: Report =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", json.display()))?;
    let name = json
        .file_stem()
        .and_then(|s| s.to_str())
        .context("the JSON file has no name")?;
    render(&report, name, dir)
}

/// `[lo, hi]` widened so that it is never empty, with a margin of 5 % on top.
fn span(lo: f64, hi: f64) -> std::ops::Range<f64> {
    let hi = if hi > lo { hi } else { lo + 1.0 };
    lo..hi + (hi - lo) * 0.05
}

fn max(values: impl Iterator<Item = f64>) -> f64 {
    values.fold(f64::NEG_INFINITY, f64::max)
}

fn area(path: &Path) -> Result<DrawingArea<SVGBackend<'_>, Shift>, Error> {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    Ok(root)
}

fn mesh_style<'a, DB: DrawingBackend>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    x: &str,
    y: &str,
) -> Result<(), Error>
where
    DB::ErrorType: 'static,
{
    chart
        .configure_mesh()
        .x_desc(x)
        .y_desc(y)
        .bold_line_style(BLACK.mix(0.15))
        .light_line_style(BLACK.mix(0.05))
        .axis_style(BLACK)
        .x_label_formatter(&|v| format!("{v}"))
        .y_label_formatter(&|v| format!("{v}"))
        .draw()
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// One line: GuiSessions Ready against seconds since the first create, a point per Ready
/// transition (from (0, 0)).
fn ready_over_time(report: &Report, what: &str, path: &Path) -> Result<(), Error> {
    let at = &report.series.burst_ready_s;
    let root = area(path)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("Burst: GuiSessions Ready over time ({what})"),
            ("sans-serif", 20),
        )
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(
            span(0.0, max(at.iter().copied())),
            span(0.0, report.config.n as f64),
        )?;
    mesh_style(
        &mut chart,
        "seconds since the first create was sent",
        "GuiSessions Ready",
    )?;
    let points =
        std::iter::once((0.0, 0.0)).chain(at.iter().enumerate().map(|(k, t)| (*t, (k + 1) as f64)));
    chart.draw_series(LineSeries::new(points, PALETTE[0].stroke_width(2)))?;
    root.present()?;
    Ok(())
}

/// Two cumulative curves of the renewal wave: sessions renewed within x seconds of falling due,
/// and within x seconds of falling due or of the wave's operator starting, whichever is later
/// (every session fell due before: the benchmark starts the operator late on purpose, and the
/// first curve includes that wait while the second is the operator's own lateness). Each is
/// (0, 0) and then one point per renewal.
fn renewal_lateness(report: &Report, what: &str, path: &Path) -> Result<(), Error> {
    let s = &report.series;
    let sorted = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v
    };
    let past_due = sorted(s.renewal_lateness_s.clone());
    let past_start = sorted(
        s.renewal_due_s
            .iter()
            .zip(&s.renewal_lateness_s)
            .map(|(due, late)| late - (-due).max(0.0))
            .collect(),
    );
    let root = area(path)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "Renewal wave, maxSessionAge {:.0} s: sessions renewed within x s ({what})",
                report.renewal.max_session_age_s
            ),
            ("sans-serif", 20),
        )
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(
            span(0.0, max(past_due.iter().chain(&past_start).copied())),
            span(0.0, past_due.len() as f64),
        )?;
    mesh_style(
        &mut chart,
        "lateness, seconds (first Ready with a new session seen − due)",
        "sessions renewed",
    )?;
    let curves = [
        (
            past_due,
            "after falling due (the operator was stopped until the wave)",
        ),
        (
            past_start,
            "after falling due or the wave's operator starting, whichever is later",
        ),
    ];
    for (i, (late, label)) in curves.into_iter().enumerate() {
        let color = PALETTE[i];
        let points = std::iter::once((0.0, 0.0)).chain(
            late.into_iter()
                .enumerate()
                .map(|(k, l)| (l, (k + 1) as f64)),
        );
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))?
            .label(label)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 16, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::MiddleMiddle)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

/// One line per operator process: its RSS against seconds since the run started.
fn rss(report: &Report, what: &str, path: &Path) -> Result<(), Error> {
    let series: Vec<_> = report
        .series
        .rss
        .iter()
        .filter(|r| !r.t_s.is_empty())
        .collect();
    let root = area(path)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "Operator RSS over the run, sampled every {} s ({what})",
                report.series.rss_interval_s
            ),
            ("sans-serif", 20),
        )
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(
            span(0.0, max(series.iter().flat_map(|r| r.t_s.iter().copied()))),
            span(
                0.0,
                max(series.iter().flat_map(|r| r.rss_mib.iter().copied())) * 1.1,
            ),
        )?;
    mesh_style(&mut chart, "seconds since the run started", "VmRSS, MiB")?;
    for (i, r) in series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        chart
            .draw_series(LineSeries::new(
                r.t_s.iter().copied().zip(r.rss_mib.iter().copied()),
                color.stroke_width(2),
            ))?
            .label(r.process.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 16, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

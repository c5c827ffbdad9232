//! The report's charts, drawn by plotters as SVG text to inline in the HTML.
//!
//! Variants run down the vertical axis (their ids are long labels that read well only
//! horizontally); values run along the horizontal one. Accuracy is drawn as `1 − cos` on a log
//! scale, where FP32 (1e-14), FP16 (1e-7) and FP8 (1e-3) are all visible and the gate is a line.

use plotters::coord::ranged1d::ValueFormatter;
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::ReportError;
use crate::results::{Status, VariantRecord};

type DrawResult = Result<(), DrawingAreaErrorKind<std::io::Error>>;

const WIDTH: u32 = 900;
const ROW_HEIGHT: u32 = 26;
const FONT: &str = "sans-serif";
/// Font size of every label and axis text. plotters writes a size `s` as `s / 1.24` pixels in
/// SVG: 15 draws at 12.1 px, the smallest text a report has.
const TEXT: u32 = 15;
/// Font size of chart titles (16 px).
const TITLE: u32 = 20;
/// `1 − cos` at or below this (an exact match, or a cosine rounded above 1) is drawn here.
pub const ONE_MINUS_COS_FLOOR: f64 = 1e-16;

// Colours from Okabe and Ito's palette, which people with every common colour-vision
// deficiency tell apart; its yellow is left out (too light on white).
const PASSED: RGBColor = RGBColor(0, 114, 178);
const FAILED: RGBColor = RGBColor(213, 94, 0);
const ERRORED: RGBColor = RGBColor(110, 110, 110);
const SPREAD: RGBColor = RGBColor(86, 180, 233);
const FRONT: RGBColor = RGBColor(0, 0, 0);
/// One colour per line of a chart with several (cycled beyond seven).
const LINES: [RGBColor; 7] = [
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(0, 158, 115),
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(204, 121, 167),
    RGBColor(0, 0, 0),
];

/// The colour of a verdict.
fn color(status: Status) -> RGBColor {
    match status {
        Status::Passed => PASSED,
        Status::Failed => FAILED,
        Status::Error | Status::Skipped => ERRORED,
    }
}

/// `1 − cos` as drawn on a log axis: clamped to [`ONE_MINUS_COS_FLOOR`]; `None` for NaN.
pub fn one_minus_cos(cos: f64) -> Option<f64> {
    let value = 1.0 - cos;
    (!value.is_nan()).then(|| value.max(ONE_MINUS_COS_FLOOR))
}

/// Draws into an SVG of `width × height` and returns its text.
pub fn svg(
    chart: &'static str,
    (width, height): (u32, u32),
    draw: impl FnOnce(&DrawingArea<SVGBackend, Shift>) -> DrawResult,
) -> Result<String, ReportError> {
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, (width, height)).into_drawing_area();
        let drawn = root
            .fill(&WHITE)
            .and_then(|()| draw(&root))
            .and_then(|()| root.present());
        drawn.map_err(|e| ReportError::Chart {
            chart,
            message: e.to_string(),
        })?;
    }
    Ok(text)
}

/// A log range covering `values` with some room either side.
pub fn log_range(values: impl Iterator<Item = f64>) -> std::ops::Range<f64> {
    let (low, high) = values.fold((f64::INFINITY, 0.0f64), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !low.is_finite() {
        return ONE_MINUS_COS_FLOOR..1.0;
    }
    low / 3.0..(high * 3.0).max(low * 10.0)
}

/// Pixels for the longest label among `labels` (the naive font is about 7 px a character).
fn label_width<'a>(labels: impl Iterator<Item = &'a str>) -> u32 {
    let longest = labels.map(|l| l.chars().count()).max().unwrap_or(0);
    (longest as u32 * 7 + 16).clamp(60, 360)
}

/// Rows of a per-variant chart: variant `i` is centred at `y = n − i − 0.5`, so the first
/// variant is at the top.
struct Rows<'a> {
    records: Vec<&'a VariantRecord>,
}

impl<'a> Rows<'a> {
    fn y(&self, i: usize) -> f64 {
        (self.records.len() - i) as f64 - 0.5
    }

    fn y_range(&self) -> std::ops::Range<f64> {
        0.0..self.records.len() as f64
    }

    /// Writes each variant's id left of its row. (plotters' own labels sit on tick positions it
    /// chooses; rows need one label each, at their centre.)
    fn draw_labels<X: Ranged<ValueType = f64>>(
        &self,
        root: &DrawingArea<SVGBackend, Shift>,
        chart: &ChartContext<SVGBackend, Cartesian2d<X, RangedCoordf64>>,
        x: f64,
    ) -> DrawResult {
        let style =
            TextStyle::from((FONT, TEXT).into_font()).pos(Pos::new(HPos::Right, VPos::Center));
        for (i, record) in self.records.iter().enumerate() {
            let (left, y) = chart.backend_coord(&(x, self.y(i)));
            root.draw_text(&record.id, &style, (left - 8, y))?;
        }
        Ok(())
    }

    fn height(&self) -> u32 {
        self.records.len() as u32 * ROW_HEIGHT + 90
    }

    fn label_width(&self) -> u32 {
        label_width(self.records.iter().map(|r| r.id.as_str()))
    }
}

/// `1 − cos` per variant on a log scale, with each variant's `cos_min` gate as an orange tick.
/// `None` when no variant has an accuracy.
pub fn cosine(records: &[VariantRecord]) -> Result<Option<String>, ReportError> {
    let rows = Rows {
        records: records.iter().filter(|r| r.accuracy.is_some()).collect(),
    };
    if rows.records.is_empty() {
        return Ok(None);
    }
    let gates = rows.records.iter().map(|r| 1.0 - r.gates.cos_min);
    let values = rows
        .records
        .iter()
        .filter_map(|r| one_minus_cos(r.accuracy.expect("filtered").cos));
    let x_range = log_range(gates.chain(values));
    let top = x_range.end;
    svg("cosine", (WIDTH, rows.height()), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(
                "1 − cos per variant (log scale; orange tick: the cos_min gate)",
                (FONT, TITLE),
            )
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(rows.label_width())
            .build_cartesian_2d(x_range.clone().log_scale(), rows.y_range())?;
        chart
            .configure_mesh()
            .label_style((FONT, TEXT))
            .axis_desc_style((FONT, TEXT))
            .disable_y_mesh()
            .y_labels(0)
            .x_desc("1 − cos")
            .x_label_formatter(&|v| format!("{v:.0e}"))
            .draw()?;
        rows.draw_labels(root, &chart, x_range.start)?;
        for (i, record) in rows.records.iter().enumerate() {
            let y = rows.y(i);
            // NaN (a non-finite output) is drawn as a full bar: it is as wrong as it gets.
            let value = one_minus_cos(record.accuracy.expect("filtered").cos).unwrap_or(top);
            chart.draw_series(std::iter::once(Rectangle::new(
                [(x_range.start, y - 0.3), (value, y + 0.3)],
                color(record.status).mix(0.8).filled(),
            )))?;
            let gate = 1.0 - record.gates.cos_min;
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(gate, y - 0.45), (gate, y + 0.45)],
                FAILED.stroke_width(3),
            )))?;
        }
        Ok(())
    })
    .map(Some)
}

/// Median latency per variant (a dot) with its p10–p90 spread (a bar), in ms. `None` when no
/// variant was timed.
pub fn latency(records: &[VariantRecord]) -> Result<Option<String>, ReportError> {
    let rows = Rows {
        records: records.iter().filter(|r| r.latency.is_some()).collect(),
    };
    if rows.records.is_empty() {
        return Ok(None);
    }
    let slowest = rows
        .records
        .iter()
        .filter_map(|r| r.latency.as_ref())
        .map(|l| l.p90_ms.max(l.median_ms))
        .fold(0.0f64, f64::max);
    svg("latency", (WIDTH, rows.height()), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(
                "median latency per variant (dot) and p10–p90 (bar), ms",
                (FONT, TITLE),
            )
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(rows.label_width())
            .build_cartesian_2d(0.0..slowest * 1.1, rows.y_range())?;
        chart
            .configure_mesh()
            .label_style((FONT, TEXT))
            .axis_desc_style((FONT, TEXT))
            .disable_y_mesh()
            .y_labels(0)
            .x_desc("ms")
            .draw()?;
        rows.draw_labels(root, &chart, 0.0)?;
        for (i, record) in rows.records.iter().enumerate() {
            let (y, l) = (rows.y(i), record.latency.as_ref().expect("filtered"));
            chart.draw_series(std::iter::once(Rectangle::new(
                [(l.p10_ms, y - 0.25), (l.p90_ms, y + 0.25)],
                SPREAD.filled(),
            )))?;
            chart.draw_series(std::iter::once(Circle::new(
                (l.median_ms, y),
                5,
                color(record.status).filled(),
            )))?;
        }
        Ok(())
    })
    .map(Some)
}

/// The indices of the Pareto front of `points` (`(latency, error)`, both smaller is better),
/// fastest first: the points no other point beats on both.
pub fn pareto_front(points: &[(f64, f64)]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..points.len()).collect();
    order.sort_by(|&a, &b| {
        points[a]
            .0
            .total_cmp(&points[b].0)
            .then(points[a].1.total_cmp(&points[b].1))
    });
    let mut best_error = f64::INFINITY;
    order
        .into_iter()
        .filter(|&i| {
            let on_front = points[i].1 < best_error;
            if on_front {
                best_error = points[i].1;
            }
            on_front
        })
        .collect()
}

/// Accuracy against speed: `1 − cos` (log) against median latency, each variant labelled, and
/// each model's Pareto front (its precisions that no other precision beats on both) ringed and
/// joined. Fronts are per model: a small model is faster than a large one at any precision. `None`
/// when no variant has both numbers from a native run: an emulation's speed is not its
/// precision's ([`super::cells::timed_natively`]).
pub fn accuracy_vs_speed(records: &[VariantRecord]) -> Result<Option<String>, ReportError> {
    let plotted: Vec<(&VariantRecord, (f64, f64))> = records
        .iter()
        .filter(|r| super::cells::timed_natively(r))
        .filter_map(|r| {
            let error = one_minus_cos(r.accuracy?.cos)?;
            Some((r, (r.latency.as_ref()?.median_ms, error)))
        })
        .collect();
    if plotted.is_empty() {
        return Ok(None);
    }
    let mut models: Vec<&str> = Vec::new();
    for (record, _) in &plotted {
        if !models.contains(&record.model.as_str()) {
            models.push(&record.model);
        }
    }
    let fronts: Vec<Vec<(f64, f64)>> = models
        .iter()
        .map(|model| {
            let points: Vec<(f64, f64)> = plotted
                .iter()
                .filter(|(r, _)| r.model == *model)
                .map(|(_, p)| *p)
                .collect();
            pareto_front(&points)
                .into_iter()
                .map(|i| points[i])
                .collect()
        })
        .collect();
    let slowest = plotted.iter().map(|(_, p)| p.0).fold(0.0f64, f64::max);
    let y_range = log_range(plotted.iter().map(|(_, p)| p.1));
    svg("accuracy vs speed", (WIDTH, 520), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(
                "accuracy against speed (black: each model's Pareto front)",
                (FONT, TITLE),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..slowest * 1.35, y_range.log_scale())?;
        chart
            .configure_mesh()
            .label_style((FONT, TEXT))
            .axis_desc_style((FONT, TEXT))
            .x_desc("median latency, ms")
            .y_desc("1 − cos")
            .y_label_formatter(&|v| format!("{v:.0e}"))
            .draw()?;
        for front in &fronts {
            chart.draw_series(LineSeries::new(front.clone(), FRONT.stroke_width(2)))?;
            chart.draw_series(
                front
                    .iter()
                    .map(|&p| Circle::new(p, 9, FRONT.stroke_width(2))),
            )?;
        }
        chart.draw_series(
            plotted
                .iter()
                .map(|(record, point)| Circle::new(*point, 5, color(record.status).filled())),
        )?;
        let labels: Vec<Label> = plotted
            .iter()
            .map(|(record, point)| Label::right_of(chart.backend_coord(point), &record.id))
            .collect();
        draw_labels(root, &labels, |_| BLACK)
    })
    .map(Some)
}

/// Height of a label's box in pixels: [`TEXT`]'s 12 px and a little air.
const LABEL_HEIGHT: i32 = 15;

/// A text label for a point of a chart, placed right of it.
struct Label<'a> {
    /// The point, in pixels.
    anchor: (i32, i32),
    /// Where the label's left edge and vertical centre want to be.
    at: (i32, i32),
    text: &'a str,
}

impl<'a> Label<'a> {
    fn right_of(anchor: (i32, i32), text: &'a str) -> Self {
        Label {
            anchor,
            at: (anchor.0 + 9, anchor.1),
            text,
        }
    }

    fn width(&self) -> i32 {
        label_width(std::iter::once(self.text)) as i32 - 16
    }
}

/// Where each label goes so that no two overlap: in order of height, each moves down from where
/// it wants to be until its box is clear of those already placed (points close together get
/// their labels stacked, each joined to its point by a thin line).
fn place_labels(labels: &[Label]) -> Vec<(i32, i32)> {
    let mut order: Vec<usize> = (0..labels.len()).collect();
    order.sort_by_key(|&i| (labels[i].at.1, labels[i].at.0));
    let mut placed: Vec<(i32, i32, i32)> = Vec::new();
    let mut at = vec![(0, 0); labels.len()];
    for i in order {
        let (x, mut y) = labels[i].at;
        let width = labels[i].width();
        let overlaps = |y: i32, placed: &[(i32, i32, i32)]| {
            placed
                .iter()
                .any(|&(px, py, pw)| (y - py).abs() < LABEL_HEIGHT && x < px + pw && px < x + width)
        };
        while overlaps(y, &placed) {
            y += LABEL_HEIGHT;
        }
        placed.push((x, y, width));
        at[i] = (x, y);
    }
    at
}

/// Draws `labels` where [`place_labels`] puts them, in the colour `color` gives each, with a
/// leader line to its point when it had to move.
fn draw_labels(
    root: &DrawingArea<SVGBackend, Shift>,
    labels: &[Label],
    color: impl Fn(usize) -> RGBColor,
) -> DrawResult {
    for (i, (label, (x, y))) in labels.iter().zip(place_labels(labels)).enumerate() {
        let ink = color(i);
        let style = TextStyle::from((FONT, TEXT).into_font())
            .color(&ink)
            .pos(Pos::new(HPos::Left, VPos::Center));
        if (x, y) != label.at {
            let leader = [label.anchor, (x - 2, y)];
            root.draw(&PathElement::new(leader, ink.mix(0.5)))?;
        }
        root.draw_text(label.text, &style, (x, y))?;
    }
    Ok(())
}

/// The histogram of one variant's timed iterations (ms), with its median marked. `None` for a
/// variant with fewer than two samples.
pub fn histogram(record: &VariantRecord) -> Result<Option<String>, ReportError> {
    let Some(samples) = record.latency.as_ref().map(|l| &l.samples_ms) else {
        return Ok(None);
    };
    if samples.len() < 2 {
        return Ok(None);
    }
    let (low, high) = samples
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    // Square-root choice of bins, at least one bin's width even when every sample is equal.
    let bins = (samples.len() as f64).sqrt().ceil().clamp(5.0, 40.0) as usize;
    let width = ((high - low) / bins as f64)
        .max(high.abs() * 1e-6)
        .max(1e-9);
    let mut counts = vec![0u32; bins];
    for &v in samples {
        counts[(((v - low) / width) as usize).min(bins - 1)] += 1;
    }
    let tallest = counts.iter().copied().max().unwrap_or(1);
    let median = record.latency.as_ref().map_or(low, |l| l.median_ms);
    svg("histogram", (560, 240), |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(low..low + width * bins as f64, 0u32..tallest + 1)?;
        chart
            .configure_mesh()
            .label_style((FONT, TEXT))
            .axis_desc_style((FONT, TEXT))
            .x_desc("ms per iteration")
            .y_desc("iterations")
            .x_labels(5)
            .y_labels(4)
            .draw()?;
        chart.draw_series(counts.iter().enumerate().map(|(i, &n)| {
            let left = low + width * i as f64;
            Rectangle::new([(left, 0), (left + width, n)], SPREAD.filled())
        }))?;
        chart.draw_series(std::iter::once(PathElement::new(
            [(median, 0), (median, tallest + 1)],
            PASSED.stroke_width(2),
        )))?;
        Ok(())
    })
    .map(Some)
}

/// `1 − cos` after each layer of every variant that reports layers (a stack), one line per
/// variant: where along the depth the error grows. `None` when no variant has layers.
pub fn depth(records: &[VariantRecord]) -> Result<Option<String>, ReportError> {
    let lines: Vec<(&VariantRecord, Vec<(f64, f64)>)> = records
        .iter()
        .filter(|r| !r.layers.is_empty())
        .map(|r| {
            let points = r
                .layers
                .iter()
                .enumerate()
                .filter_map(|(i, layer)| Some((i as f64, one_minus_cos(layer.accuracy.cos)?)))
                .collect();
            (r, points)
        })
        .collect();
    if lines.is_empty() {
        return Ok(None);
    }
    let deepest = lines.iter().map(|(r, _)| r.layers.len()).max().unwrap_or(1);
    let y_range = log_range(lines.iter().flat_map(|(_, p)| p.iter().map(|&(_, y)| y)));
    svg("depth", (WIDTH, 560), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption("1 − cos after each layer (log scale)", (FONT, TITLE))
            .margin(12)
            // Room right of the last layer for each line's variant id.
            .margin_right(label_width(lines.iter().map(|(r, _)| r.id.as_str())))
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(-0.3..deepest as f64 - 0.7, y_range.log_scale())?;
        chart
            .configure_mesh()
            .label_style((FONT, TEXT))
            .axis_desc_style((FONT, TEXT))
            .x_labels(deepest)
            .x_label_formatter(&|x| format!("layer {x:.0}"))
            .x_desc("layer")
            .y_desc("1 − cos")
            .y_label_formatter(&|v| format!("{v:.0e}"))
            .draw()?;
        for (index, (_, points)) in lines.iter().enumerate() {
            let line = LINES[index % LINES.len()];
            chart.draw_series(LineSeries::new(points.clone(), line.stroke_width(2)))?;
            chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, line.filled())))?;
        }
        let labels: Vec<Label> = lines
            .iter()
            .filter_map(|(record, points)| {
                Some(Label::right_of(
                    chart.backend_coord(points.last()?),
                    &record.id,
                ))
            })
            .collect();
        let colors: Vec<RGBColor> = lines
            .iter()
            .enumerate()
            .filter(|(_, (_, points))| !points.is_empty())
            .map(|(index, _)| LINES[index % LINES.len()])
            .collect();
        draw_labels(root, &labels, |i| colors[i])
    })
    .map(Some)
}

/// One series of a history chart: a value per run, `None` where the run did not measure it.
pub struct HistorySeries<'a> {
    /// Chart title.
    pub title: &'a str,
    /// Axis description.
    pub unit: &'a str,
    /// Labels of the runs, oldest first.
    pub runs: &'a [String],
    /// The value in each run.
    pub values: Vec<Option<f64>>,
    /// A `(low, high)` band per run (p10–p90 latency), if any.
    pub band: Vec<Option<(f64, f64)>>,
    /// Whether the variant failed (or errored) in each run: marked with an orange cross.
    pub failed: Vec<bool>,
    /// A horizontal threshold line (the gate), if any.
    pub threshold: Option<f64>,
    /// Log scale (for `1 − cos`).
    pub log: bool,
}

/// A small line chart of one variant's metric over runs.
pub fn history(series: &HistorySeries) -> Result<String, ReportError> {
    let present = series.values.iter().flatten().copied();
    let band_edges = series.band.iter().flatten().flat_map(|&(lo, hi)| [lo, hi]);
    let all: Vec<f64> = present.chain(band_edges).chain(series.threshold).collect();
    let y_range = if series.log {
        log_range(all.iter().copied())
    } else {
        0.0..all
            .iter()
            .copied()
            .fold(0.0f64, f64::max)
            .max(f64::MIN_POSITIVE)
            * 1.15
    };
    let x_range = -0.5..series.runs.len() as f64 - 0.5;
    svg("history", (440, 260), |root| {
        if series.log {
            let mut chart = history_axes(root, series, x_range, y_range.log_scale())?;
            draw_history(&mut chart, series)
        } else {
            let mut chart = history_axes(root, series, x_range, y_range)?;
            draw_history(&mut chart, series)
        }
    })
}

type HistoryChart<'a, 'b, Y> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, Y>>;

fn history_axes<'a, 'b, Y>(
    root: &'a DrawingArea<SVGBackend<'b>, Shift>,
    series: &HistorySeries,
    x_range: std::ops::Range<f64>,
    y_range: impl plotters::coord::ranged1d::AsRangedCoord<CoordDescType = Y, Value = f64>,
) -> Result<HistoryChart<'a, 'b, Y>, DrawingAreaErrorKind<std::io::Error>>
where
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let mut chart = ChartBuilder::on(root)
        .caption(series.title, (FONT, TEXT))
        .margin(8)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(x_range, y_range)?;
    let run_label = |x: &f64| {
        let i = x.round();
        if (x - i).abs() < 1e-6 && i >= 0.0 {
            series.runs.get(i as usize).cloned().unwrap_or_default()
        } else {
            String::new()
        }
    };
    let log = series.log;
    let y_label = move |v: &f64| {
        if log {
            format!("{v:.0e}")
        } else {
            format!("{v:.3}")
        }
    };
    chart
        .configure_mesh()
        .label_style((FONT, TEXT))
        .axis_desc_style((FONT, TEXT))
        .x_labels(6)
        .x_label_formatter(&run_label)
        .y_label_formatter(&y_label)
        .y_desc(series.unit)
        .draw()?;
    Ok(chart)
}

fn draw_history<Y>(chart: &mut HistoryChart<'_, '_, Y>, series: &HistorySeries) -> DrawResult
where
    Y: Ranged<ValueType = f64>,
{
    let top = chart.y_range().end;
    if let Some(threshold) = series.threshold {
        chart.draw_series(LineSeries::new(
            [
                (-0.5, threshold),
                (series.runs.len() as f64 - 0.5, threshold),
            ],
            FAILED.stroke_width(1),
        ))?;
    }
    for (x, band) in series.band.iter().enumerate() {
        if let Some((low, high)) = band {
            let x = x as f64;
            chart.draw_series(std::iter::once(Rectangle::new(
                [(x - 0.15, *low), (x + 0.15, *high)],
                SPREAD.filled(),
            )))?;
        }
    }
    let points: Vec<(f64, f64)> = series
        .values
        .iter()
        .enumerate()
        .filter_map(|(x, v)| Some((x as f64, (*v)?)))
        .collect();
    chart.draw_series(LineSeries::new(points.clone(), FRONT.stroke_width(2)))?;
    chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, FRONT.filled())))?;
    let failures = series.failed.iter().enumerate().filter(|(_, f)| **f);
    chart.draw_series(failures.map(|(x, _)| {
        let y = series.values[x].unwrap_or(top);
        Cross::new((x as f64, y), 6, FAILED.stroke_width(3))
    }))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_of_nearby_points_never_overlap_and_lone_ones_stay_put() {
        // Five variants within a few pixels of each other, and one far away.
        let anchors = [
            (100, 200),
            (102, 201),
            (98, 203),
            (101, 199),
            (100, 200),
            (600, 50),
        ];
        let labels: Vec<Label> = anchors
            .iter()
            .map(|&a| Label::right_of(a, "paligemma_mlp/fp8_e4m3/h200"))
            .collect();
        let placed = place_labels(&labels);
        for (i, a) in placed.iter().enumerate() {
            for b in &placed[i + 1..] {
                assert!(
                    (a.1 - b.1).abs() >= LABEL_HEIGHT || (a.0 - b.0).abs() >= labels[i].width(),
                    "{a:?} and {b:?} overlap"
                );
            }
        }
        assert_eq!(placed[5], labels[5].at, "a label with room keeps its place");
    }

    #[test]
    fn pareto_front_keeps_the_points_nothing_beats_on_both() {
        // (latency, error): 1 is slower and worse than 0; 3 ties 2 on latency but is worse.
        let points = [
            (1.0, 1e-3),
            (2.0, 1e-2),
            (3.0, 1e-5),
            (3.0, 1e-4),
            (5.0, 1e-7),
        ];
        assert_eq!(pareto_front(&points), [0, 2, 4]);
    }

    #[test]
    fn one_minus_cos_is_clamped_for_the_log_axis_and_nan_is_kept_out() {
        assert_eq!(one_minus_cos(1.0), Some(ONE_MINUS_COS_FLOOR));
        assert_eq!(one_minus_cos(0.5), Some(0.5));
        assert_eq!(one_minus_cos(f64::NAN), None);
    }
}

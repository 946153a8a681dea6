//! Ready-made charts for the CLI: the training `results.png` panels and the precision-recall
//! chart of `eval`.
//!
//! * [`results_charts`]: one panel per metric over epochs, the raw values with markers plus a
//!   smoothed line once there are enough epochs (Gaussian weights over finite neighbours). Only
//!   the first panel names its series so the legend appears once in a grid.
//! * [`pr_curve_chart`]: per-class precision over recall on `[0, 1]` axes, plus a thick
//!   "all classes" mean curve whose legend gives the 101-point interpolated AP (COCO-style:
//!   precision made non-increasing in recall, sampled at recall 0, 0.01, ..., 1).

use crate::chart::{ChartOptions, LineChart, Series};

/// Colour of the raw values in results panels.
const RESULTS_COLOR: [u8; 3] = [31, 102, 176];
/// Colour of the smoothed line in results panels.
const SMOOTH_COLOR: [u8; 3] = [240, 128, 20];
/// Colour of the mean PR curve.
const MEAN_COLOR: [u8; 3] = [20, 50, 160];
/// Fewest finite values for which a smoothed line is drawn.
const MIN_SMOOTH_POINTS: usize = 5;

/// Panel options suited to a grid of small charts (`results.png`).
#[must_use]
pub fn panel_options() -> ChartOptions {
    ChartOptions { width: 400, height: 280, tick_target: 5, ..ChartOptions::default() }
}

/// One chart per `(name, values)` metric, `values[i]` belonging to `epochs[i]` (pairs beyond the
/// shorter of the two are ignored; non-finite values are skipped).
#[must_use]
pub fn results_charts(epochs: &[f64], metrics: &[(&str, &[f64])]) -> Vec<LineChart> {
    metrics
        .iter()
        .enumerate()
        .map(|(index, (name, values))| {
            let points: Vec<(f64, f64)> =
                epochs.iter().copied().zip(values.iter().copied()).collect();
            let label = |text: &str| if index == 0 { text.to_string() } else { String::new() };
            let mut series = vec![Series {
                name: label("results"),
                points: points.clone(),
                color: Some(RESULTS_COLOR),
                markers: true,
                ..Series::default()
            }];
            let finite = points.iter().filter(|(x, y)| x.is_finite() && y.is_finite()).count();
            if finite >= MIN_SMOOTH_POINTS {
                series.push(Series {
                    name: label("smooth"),
                    points: smooth(&points, (finite as f64 / 20.0).max(1.0)),
                    color: Some(SMOOTH_COLOR),
                    line_width: Some(1),
                    ..Series::default()
                });
            }
            LineChart { title: (*name).to_string(), series, ..LineChart::default() }
        })
        .collect()
}

/// Gaussian smoothing of the finite points (by position in the sequence, not by `x`).
fn smooth(points: &[(f64, f64)], sigma: f64) -> Vec<(f64, f64)> {
    let finite: Vec<(f64, f64)> =
        points.iter().copied().filter(|(x, y)| x.is_finite() && y.is_finite()).collect();
    let reach = (3.0 * sigma).ceil() as isize;
    (0..finite.len() as isize)
        .map(|i| {
            let (mut sum, mut weight) = (0.0, 0.0);
            for j in (i - reach).max(0)..=(i + reach).min(finite.len() as isize - 1) {
                let d = (j - i) as f64;
                let w = (-0.5 * d * d / (sigma * sigma)).exp();
                sum += w * finite[j as usize].1;
                weight += w;
            }
            (finite[i as usize].0, sum / weight)
        })
        .collect()
}

/// A precision-recall chart of `classes` (points `(recall, precision)`), drawn thin, plus the
/// thick mean curve over the classes with at least one finite point.
#[must_use]
pub fn pr_curve_chart(title: &str, classes: &[Series]) -> LineChart {
    let mut series: Vec<Series> = classes
        .iter()
        .map(|s| Series { line_width: Some(s.line_width.unwrap_or(1)), ..s.clone() })
        .collect();
    let curves: Vec<Vec<f64>> = classes
        .iter()
        .filter(|s| s.points.iter().any(|(r, p)| r.is_finite() && p.is_finite()))
        .map(|s| interpolated_precision(&s.points))
        .collect();
    if !curves.is_empty() {
        let mean: Vec<f64> = (0..=100)
            .map(|k| curves.iter().map(|c| c[k]).sum::<f64>() / curves.len() as f64)
            .collect();
        let ap = mean.iter().sum::<f64>() / mean.len() as f64;
        series.push(Series {
            name: format!("all classes {ap:.3} AP"),
            points: mean.iter().enumerate().map(|(k, &p)| (k as f64 / 100.0, p)).collect(),
            color: Some(MEAN_COLOR),
            line_width: Some(3),
            markers: false,
        });
    }
    LineChart {
        title: title.to_string(),
        x_label: "Recall".into(),
        y_label: "Precision".into(),
        series,
        x_range: Some((0.0, 1.0)),
        y_range: Some((0.0, 1.0)),
    }
}

/// Precision at recall 0, 0.01, ..., 1: the best precision at any recall at least as high
/// (0 beyond the highest recall reached).
fn interpolated_precision(points: &[(f64, f64)]) -> Vec<f64> {
    let mut finite: Vec<(f64, f64)> =
        points.iter().copied().filter(|(r, p)| r.is_finite() && p.is_finite()).collect();
    finite.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Envelope from the right: best precision at this recall or beyond.
    let mut best = 0.0_f64;
    for point in finite.iter_mut().rev() {
        best = best.max(point.1);
        point.1 = best;
    }
    (0..=100)
        .map(|k| {
            let r = k as f64 / 100.0;
            let at = finite.partition_point(|&(recall, _)| recall < r - 1e-12);
            finite.get(at).map_or(0.0, |&(_, p)| p)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chart::render_grid;

    #[test]
    fn results_panels_one_per_metric_with_legend_once() {
        let epochs: Vec<f64> = (1..=12).map(f64::from).collect();
        let loss: Vec<f64> = epochs.iter().map(|e| 3.0 / e).collect();
        let map = [f64::NAN; 12];
        let charts = results_charts(&epochs, &[("train/xy_loss", &loss), ("metrics/mAP50", &map)]);
        assert_eq!(charts.len(), 2);
        assert_eq!(charts[0].title, "train/xy_loss");
        assert_eq!(charts[0].series.len(), 2);
        assert_eq!(charts[0].series[0].name, "results");
        assert!(charts[1].series.iter().all(|s| s.name.is_empty()));
        assert_eq!(charts[1].series.len(), 1, "no smoothing without finite values");
        let image = render_grid(&charts, 5, &panel_options());
        assert_eq!(image.dimensions(), (800, 280));
    }

    #[test]
    fn smoothing_keeps_constants_and_skips_nan() {
        let points = vec![(0.0, 2.0), (1.0, f64::NAN), (2.0, 2.0), (3.0, 2.0)];
        let smoothed = smooth(&points, 1.0);
        assert_eq!(smoothed.len(), 3);
        assert!(smoothed.iter().all(|&(_, y)| (y - 2.0).abs() < 1e-12));
    }

    #[test]
    fn interpolation_takes_the_envelope() {
        let curve = interpolated_precision(&[(0.1, 1.0), (0.2, 0.5), (0.4, 0.8), (0.6, 0.4)]);
        assert_eq!(curve[0], 1.0);
        assert_eq!(curve[10], 1.0);
        assert_eq!(curve[11], 0.8);
        assert_eq!(curve[40], 0.8);
        assert_eq!(curve[41], 0.4);
        assert_eq!(curve[60], 0.4);
        assert_eq!(curve[61], 0.0);
    }

    #[test]
    fn pr_chart_adds_the_mean_curve_with_its_ap() {
        let perfect = Series::new("a", vec![(0.5, 1.0), (1.0, 1.0)]);
        let half = Series::new("b", vec![(0.5, 1.0), (1.0, 0.0)]);
        let chart = pr_curve_chart("PR", &[perfect, half, Series::new("none", vec![])]);
        assert_eq!(chart.series.len(), 4);
        let mean = chart.series.last().unwrap();
        // a: 1 everywhere; b: 1 up to 0.5, then 0 -> mean 1 for 51 samples, 0.5 for 50.
        let expected = (51.0 + 25.0) / 101.0;
        assert_eq!(mean.name, format!("all classes {expected:.3} AP"));
        assert_eq!(chart.x_range, Some((0.0, 1.0)));
        assert_eq!(chart.series[0].line_width, Some(1));
        assert_eq!(pr_curve_chart("empty", &[]).series.len(), 0);
    }
}

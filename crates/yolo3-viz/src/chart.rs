//! Line charts rendered to images: one chart ([`render_chart`]) or a grid of small charts in one
//! picture ([`render_grid`], the training `results.png`).
//!
//! Conventions:
//! * Data coordinates are `f64`; `x` grows right and `y` grows up inside the plot area.
//! * Points whose `x` or `y` is not finite are skipped: the line joins the finite neighbours.
//!   A series with a single finite point shows as a dot; a chart with no finite point shows its
//!   axes over `[0, 1]` and the words "no data".
//! * Axis ranges come from the data (with a small margin) unless the chart fixes them; ticks are
//!   nice steps (see [`crate::ticks`]). Everything outside the plot area is clipped.
//! * Series take palette colours in order ([`crate::palette::color`]) unless they name one.
//! * The background is white, text is near-black, all drawing is opaque.

use image::{imageops, Rgb, RgbImage};

use crate::draw::{draw_rect, draw_thick_line, fill_rect, PixelRect};
use crate::font::{draw_text, draw_text_vertical, text_height, text_width};
use crate::palette;
use crate::ticks::{finite_range, format_tick, padded_range, ticks};

const BACKGROUND: [u8; 3] = [255, 255, 255];
const TEXT: [u8; 3] = [30, 30, 30];
const FRAME: [u8; 3] = [90, 90, 90];
const GRID: [u8; 3] = [228, 228, 228];
const MUTED: [u8; 3] = [150, 150, 150];

/// One line of a chart.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Series {
    /// Legend text; empty to leave the series out of the legend.
    pub name: String,
    /// `(x, y)` points in drawing order; non-finite points are skipped.
    pub points: Vec<(f64, f64)>,
    /// Line colour; `None` takes the palette colour of the series' index.
    pub color: Option<[u8; 3]>,
    /// Line width in pixels; `None` takes [`ChartOptions::line_width`].
    pub line_width: Option<u32>,
    /// Whether to draw a small square at every point.
    pub markers: bool,
}

impl Series {
    /// A series with default style.
    #[must_use]
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Self { name: name.into(), points, ..Self::default() }
    }

    /// A series of `values` over `x = 0, 1, 2, ...`.
    #[must_use]
    pub fn from_values(name: impl Into<String>, values: &[f64]) -> Self {
        Self::new(name, values.iter().enumerate().map(|(i, &v)| (i as f64, v)).collect())
    }
}

/// A chart: title, axis labels, series and optional fixed axis ranges.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LineChart {
    /// Text above the plot; may be empty.
    pub title: String,
    /// Text under the horizontal axis; may be empty.
    pub x_label: String,
    /// Text beside the vertical axis (drawn reading upwards); may be empty.
    pub y_label: String,
    /// The lines, drawn in order (later on top).
    pub series: Vec<Series>,
    /// Fixed horizontal range; `None` fits the data.
    pub x_range: Option<(f64, f64)>,
    /// Fixed vertical range; `None` fits the data.
    pub y_range: Option<(f64, f64)>,
}

/// Where the legend goes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LegendPlacement {
    /// No legend.
    Hidden,
    /// The inside corner of the plot area that covers the fewest drawn line pixels.
    #[default]
    Auto,
    /// Inside, top-right corner.
    TopRight,
    /// Inside, top-left corner.
    TopLeft,
    /// Inside, bottom-right corner.
    BottomRight,
    /// Inside, bottom-left corner.
    BottomLeft,
    /// Outside, right of the plot area (the plot gets narrower).
    Right,
}

/// How a chart is laid out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChartOptions {
    /// Image width in pixels (of one panel, for [`render_grid`]).
    pub width: u32,
    /// Image height in pixels (of one panel, for [`render_grid`]).
    pub height: u32,
    /// Font scale of tick labels, axis labels and the legend.
    pub text_scale: u32,
    /// Font scale of the title.
    pub title_scale: u32,
    /// Default line width in pixels.
    pub line_width: u32,
    /// Where the legend goes.
    pub legend: LegendPlacement,
    /// Most legend rows; further series are summarised as "+N more".
    pub legend_limit: usize,
    /// About how many tick intervals per axis.
    pub tick_target: usize,
}

impl Default for ChartOptions {
    fn default() -> Self {
        Self {
            width: 640,
            height: 400,
            text_scale: 1,
            title_scale: 2,
            line_width: 2,
            legend: LegendPlacement::Auto,
            legend_limit: 12,
            tick_target: 6,
        }
    }
}

/// Where the data lands in the image.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Frame {
    /// The plot area in image pixels.
    plot: PixelRect,
    /// Shown `x` range.
    x: (f64, f64),
    /// Shown `y` range.
    y: (f64, f64),
}

impl Frame {
    /// Data `(x, y)` to a pixel relative to the plot area's top-left corner.
    fn to_plot(self, (x, y): (f64, f64)) -> (i32, i32) {
        let w = f64::from(self.plot.width().max(1) - 1);
        let h = f64::from(self.plot.height().max(1) - 1);
        let u = (x - self.x.0) / (self.x.1 - self.x.0) * w;
        let v = h - (y - self.y.0) / (self.y.1 - self.y.0) * h;
        (u.round().clamp(-1e9, 1e9) as i32, v.round().clamp(-1e9, 1e9) as i32)
    }

    /// Data `(x, y)` to an image pixel.
    fn to_image(self, point: (f64, f64)) -> (i32, i32) {
        let (u, v) = self.to_plot(point);
        (self.plot.left + u, self.plot.top + v)
    }
}

/// Renders `chart` as an `options.width x options.height` image.
#[must_use]
pub fn render_chart(chart: &LineChart, options: &ChartOptions) -> RgbImage {
    let mut image =
        RgbImage::from_pixel(options.width.max(1), options.height.max(1), Rgb(BACKGROUND));
    let frame = layout(chart, options);
    if frame.plot.width() < 2 || frame.plot.height() < 2 {
        draw_title(&mut image, chart, options);
        return image;
    }
    let (x_ticks, x_step) = ticks(frame.x.0, frame.x.1, options.tick_target);
    let (y_ticks, y_step) = ticks(frame.y.0, frame.y.1, options.tick_target);

    // Grid and lines go on a canvas the size of the plot area, which clips them.
    let mut canvas = RgbImage::from_pixel(frame.plot.width(), frame.plot.height(), Rgb(BACKGROUND));
    let (cw, ch) = (canvas.width() as i32, canvas.height() as i32);
    for &x in &x_ticks {
        let (u, _) = frame.to_plot((x, frame.y.0));
        fill_rect(&mut canvas, PixelRect::new(u, 0, u + 1, ch), GRID);
    }
    for &y in &y_ticks {
        let (_, v) = frame.to_plot((frame.x.0, y));
        fill_rect(&mut canvas, PixelRect::new(0, v, cw, v + 1), GRID);
    }
    let blank = canvas.clone();
    let mut any_point = false;
    for (index, series) in chart.series.iter().enumerate() {
        any_point |= draw_series(&mut canvas, &frame, series, series_color(series, index), options);
    }
    let legend_corner = choose_legend_corner(chart, options, &blank, &canvas);
    imageops::replace(&mut image, &canvas, i64::from(frame.plot.left), i64::from(frame.plot.top));

    draw_axes(&mut image, &frame, (&x_ticks, x_step), (&y_ticks, y_step), options);
    draw_title(&mut image, chart, options);
    draw_axis_labels(&mut image, chart, &frame, options);
    if !any_point {
        let scale = options.text_scale.max(1) * 2;
        let text = "no data";
        let x = frame.plot.left + (frame.plot.width() as i32 - text_width(text, scale) as i32) / 2;
        let y = frame.plot.top + (frame.plot.height() as i32 - text_height(scale) as i32) / 2;
        draw_text(&mut image, x, y, text, scale, MUTED);
    }
    draw_legend(&mut image, chart, &frame, legend_corner, options);
    image
}

/// Renders `charts` as panels of `options.width x options.height` in a grid with `columns`
/// columns (at least 1), filled row by row. No chart gives one blank panel.
#[must_use]
pub fn render_grid(charts: &[LineChart], columns: usize, options: &ChartOptions) -> RgbImage {
    let columns = columns.max(1);
    let rows = charts.len().div_ceil(columns).max(1);
    let (pw, ph) = (options.width.max(1), options.height.max(1));
    let used_columns = if charts.len() < columns { charts.len().max(1) } else { columns };
    let mut image =
        RgbImage::from_pixel(pw * used_columns as u32, ph * rows as u32, Rgb(BACKGROUND));
    for (i, chart) in charts.iter().enumerate() {
        let panel = render_chart(chart, options);
        let x = (i % columns) as i64 * i64::from(pw);
        let y = (i / columns) as i64 * i64::from(ph);
        imageops::replace(&mut image, &panel, x, y);
    }
    image
}

/// The colour of series number `index`.
fn series_color(series: &Series, index: usize) -> [u8; 3] {
    series.color.unwrap_or_else(|| palette::color(index))
}

/// Computes the plot area and the shown ranges.
fn layout(chart: &LineChart, options: &ChartOptions) -> Frame {
    let scale = options.text_scale.max(1);
    let text_h = text_height(scale) as i32;
    let gap = 4 * scale as i32;
    let tick_len = 4;
    let all_points = || chart.series.iter().flat_map(|s| s.points.iter().copied());
    let finite_points = || all_points().filter(|(x, y)| x.is_finite() && y.is_finite());
    let x = chart
        .x_range
        .unwrap_or_else(|| padded_range(finite_range(finite_points().map(|p| p.0)), 0.03));
    let y = chart
        .y_range
        .unwrap_or_else(|| padded_range(finite_range(finite_points().map(|p| p.1)), 0.06));
    let x = padded_range(Some(x), 0.0);
    let y = padded_range(Some(y), 0.0);

    let (y_ticks, y_step) = ticks(y.0, y.1, options.tick_target);
    let widest_tick =
        y_ticks.iter().map(|&v| text_width(&format_tick(v, y_step), scale)).max().unwrap_or(0)
            as i32;
    let title_h =
        if chart.title.is_empty() { 0 } else { text_height(options.title_scale) as i32 + gap };
    let y_label_w = if chart.y_label.is_empty() { 0 } else { text_h + gap };
    let x_label_h = if chart.x_label.is_empty() { 0 } else { text_h + gap };

    let left = gap + y_label_w + widest_tick + gap / 2 + tick_len;
    let top = gap * 2 + title_h;
    let bottom = options.height as i32 - (gap + x_label_h + text_h + gap / 2 + tick_len);
    let mut right = options.width as i32 - gap * 3;
    if options.legend == LegendPlacement::Right {
        let (legend_w, _) = legend_size(chart, options);
        right -= legend_w as i32 + gap;
    }
    // Leave room for the last x tick label, centred on the right edge.
    let x_label_half = text_width(&format_tick(x.1, 1.0), scale) as i32 / 2;
    right = right.min(options.width as i32 - x_label_half - 2);
    Frame { plot: PixelRect::new(left, top, right.max(left), bottom.max(top)), x, y }
}

/// Draws one series on the plot canvas; returns whether it had a finite point.
fn draw_series(
    canvas: &mut RgbImage,
    frame: &Frame,
    series: &Series,
    color: [u8; 3],
    options: &ChartOptions,
) -> bool {
    let width = series.line_width.unwrap_or(options.line_width).max(1);
    let pixels: Vec<(i32, i32)> = series
        .points
        .iter()
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .map(|&p| frame.to_plot(p))
        .collect();
    for pair in pixels.windows(2) {
        draw_thick_line(canvas, pair[0], pair[1], width, color);
    }
    if series.markers || pixels.len() == 1 {
        let size = width + 3;
        let half = (size / 2) as i32;
        for &(u, v) in &pixels {
            fill_rect(canvas, PixelRect::from_size(u - half, v - half, size, size), color);
        }
    }
    !pixels.is_empty()
}

/// The frame, ticks and tick labels.
fn draw_axes(
    image: &mut RgbImage,
    frame: &Frame,
    x_axis: (&[f64], f64),
    y_axis: (&[f64], f64),
    options: &ChartOptions,
) {
    let scale = options.text_scale.max(1);
    let plot = frame.plot;
    let outline = PixelRect::new(plot.left - 1, plot.top - 1, plot.right + 1, plot.bottom + 1);
    draw_rect(image, outline, 1, FRAME);
    let label_gap = 2 * scale as i32;
    for &x in x_axis.0 {
        let (px, _) = frame.to_image((x, frame.y.0));
        fill_rect(image, PixelRect::new(px, plot.bottom + 1, px + 1, plot.bottom + 5), FRAME);
        let text = format_tick(x, x_axis.1);
        let tx = px - text_width(&text, scale) as i32 / 2;
        draw_text(image, tx, plot.bottom + 5 + label_gap, &text, scale, TEXT);
    }
    for &y in y_axis.0 {
        let (_, py) = frame.to_image((frame.x.0, y));
        fill_rect(image, PixelRect::new(plot.left - 5, py, plot.left - 1, py + 1), FRAME);
        let text = format_tick(y, y_axis.1);
        let tx = plot.left - 5 - label_gap - text_width(&text, scale) as i32;
        let ty = py - text_height(scale) as i32 / 2 + scale as i32 / 2;
        draw_text(image, tx, ty, &text, scale, TEXT);
    }
}

/// The title, centred at the top.
fn draw_title(image: &mut RgbImage, chart: &LineChart, options: &ChartOptions) {
    if chart.title.is_empty() {
        return;
    }
    let scale = options.title_scale.max(1);
    let gap = 4 * options.text_scale.max(1) as i32;
    let x = (image.width() as i32 - text_width(&chart.title, scale) as i32) / 2;
    draw_text(image, x.max(gap), gap * 2, &chart.title, scale, TEXT);
}

/// The axis labels: x centred under the tick labels, y reading upwards at the left edge.
fn draw_axis_labels(
    image: &mut RgbImage,
    chart: &LineChart,
    frame: &Frame,
    options: &ChartOptions,
) {
    let scale = options.text_scale.max(1);
    let gap = 4 * scale as i32;
    let plot = frame.plot;
    let centre_x = i32::midpoint(plot.left, plot.right);
    let centre_y = i32::midpoint(plot.top, plot.bottom);
    if !chart.x_label.is_empty() {
        let x = centre_x - text_width(&chart.x_label, scale) as i32 / 2;
        let y = image.height() as i32 - gap - text_height(scale) as i32;
        draw_text(image, x, y, &chart.x_label, scale, TEXT);
    }
    if !chart.y_label.is_empty() {
        let y = centre_y - text_width(&chart.y_label, scale) as i32 / 2;
        draw_text_vertical(image, gap, y, &chart.y_label, scale, TEXT);
    }
}

/// Legend rows: the named series with their colours, cut to the limit.
fn legend_rows(chart: &LineChart, options: &ChartOptions) -> Vec<(String, Option<[u8; 3]>)> {
    let named: Vec<(String, Option<[u8; 3]>)> = chart
        .series
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.name.is_empty())
        .map(|(i, s)| (s.name.clone(), Some(series_color(s, i))))
        .collect();
    let limit = options.legend_limit.max(1);
    if named.len() <= limit {
        return named;
    }
    let mut rows: Vec<_> = named[..limit - 1].to_vec();
    rows.push((format!("+{} more", named.len() - (limit - 1)), None));
    rows
}

/// Width and height of the legend box in pixels (0 x 0 when there is nothing to show).
fn legend_size(chart: &LineChart, options: &ChartOptions) -> (u32, u32) {
    let rows = legend_rows(chart, options);
    if rows.is_empty() {
        return (0, 0);
    }
    let scale = options.text_scale.max(1);
    let pad = 4 * scale;
    let swatch = 14 * scale;
    let widest = rows.iter().map(|(name, _)| text_width(name, scale)).max().unwrap_or(0);
    let row_h = text_height(scale) + 3 * scale;
    (pad * 2 + swatch + pad + widest, pad * 2 + row_h * rows.len() as u32 - 3 * scale)
}

/// Picks the inside corner for the legend (`None` when hidden, outside or empty).
fn choose_legend_corner(
    chart: &LineChart,
    options: &ChartOptions,
    blank: &RgbImage,
    drawn: &RgbImage,
) -> Option<LegendPlacement> {
    let corners = [
        LegendPlacement::TopRight,
        LegendPlacement::TopLeft,
        LegendPlacement::BottomRight,
        LegendPlacement::BottomLeft,
    ];
    match options.legend {
        LegendPlacement::Hidden => None,
        LegendPlacement::Right => Some(LegendPlacement::Right),
        LegendPlacement::Auto => {
            let (w, h) = legend_size(chart, options);
            corners.into_iter().min_by_key(|&corner| {
                let r = corner_rect(corner, w, h, drawn.width(), drawn.height());
                let r = r.clip(drawn.width(), drawn.height());
                let mut covered = 0_usize;
                for y in r.top..r.bottom {
                    for x in r.left..r.right {
                        covered += usize::from(
                            blank.get_pixel(x as u32, y as u32)
                                != drawn.get_pixel(x as u32, y as u32),
                        );
                    }
                }
                covered
            })
        }
        fixed => Some(fixed),
    }
}

/// The legend rectangle in a corner of a `width x height` area, inset by a margin.
fn corner_rect(corner: LegendPlacement, w: u32, h: u32, width: u32, height: u32) -> PixelRect {
    let inset = 6;
    let right_x = width as i32 - inset - w as i32;
    let bottom_y = height as i32 - inset - h as i32;
    let (x, y) = match corner {
        LegendPlacement::TopLeft => (inset, inset),
        LegendPlacement::BottomRight => (right_x, bottom_y),
        LegendPlacement::BottomLeft => (inset, bottom_y),
        _ => (right_x, inset),
    };
    PixelRect::from_size(x, y, w, h)
}

/// Draws the legend box at `placement`.
fn draw_legend(
    image: &mut RgbImage,
    chart: &LineChart,
    frame: &Frame,
    placement: Option<LegendPlacement>,
    options: &ChartOptions,
) {
    let Some(placement) = placement else {
        return;
    };
    let rows = legend_rows(chart, options);
    if rows.is_empty() {
        return;
    }
    let (w, h) = legend_size(chart, options);
    let plot = frame.plot;
    let rect = if placement == LegendPlacement::Right {
        PixelRect::from_size(plot.right + 4 * options.text_scale.max(1) as i32, plot.top, w, h)
    } else {
        let r = corner_rect(placement, w, h, plot.width(), plot.height());
        PixelRect::new(
            r.left + plot.left,
            r.top + plot.top,
            r.right + plot.left,
            r.bottom + plot.top,
        )
    };
    fill_rect(image, rect, BACKGROUND);
    draw_rect(image, rect, 1, [200, 200, 200]);
    let scale = options.text_scale.max(1);
    let pad = 4 * scale as i32;
    let swatch = 14 * scale as i32;
    let row_h = (text_height(scale) + 3 * scale) as i32;
    for (i, (name, color)) in rows.iter().enumerate() {
        let y = rect.top + pad + i as i32 * row_h;
        if let Some(color) = color {
            let mid = y + text_height(scale) as i32 / 2 - 1;
            let band = (2 * scale) as i32;
            fill_rect(
                image,
                PixelRect::new(
                    rect.left + pad,
                    mid - band / 2 + 1,
                    rect.left + pad + swatch,
                    mid + band / 2 + 1,
                ),
                *color,
            );
        }
        let text_color = if color.is_some() { TEXT } else { MUTED };
        draw_text(image, rect.left + pad + swatch + pad, y, name, scale, text_color);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_background(p: Rgb<u8>) -> bool {
        p.0 == BACKGROUND || p.0 == GRID
    }

    fn two_point_chart() -> LineChart {
        LineChart {
            title: "loss".into(),
            x_label: "epoch".into(),
            y_label: "value".into(),
            series: vec![Series::new("train", vec![(0.0, 0.0), (10.0, 10.0)])],
            x_range: Some((0.0, 10.0)),
            y_range: Some((0.0, 10.0)),
        }
    }

    #[test]
    fn chart_has_the_requested_size_and_the_line_where_expected() {
        let chart = two_point_chart();
        let options = ChartOptions { legend: LegendPlacement::Hidden, ..ChartOptions::default() };
        let image = render_chart(&chart, &options);
        assert_eq!(image.dimensions(), (640, 400));
        let frame = layout(&chart, &options);
        let color = palette::color(0);
        for t in [0.25, 0.5, 0.8] {
            let (x, y) = frame.to_image((10.0 * t, 10.0 * t));
            assert_eq!(image.get_pixel(x as u32, y as u32).0, color, "at t = {t}");
        }
        // Off the line, inside the plot, is background or grid.
        let (x, y) = frame.to_image((8.0, 2.0));
        assert!(is_background(*image.get_pixel(x as u32, y as u32)));
    }

    #[test]
    fn nan_points_are_skipped_and_neighbours_joined() {
        let mut chart = two_point_chart();
        chart.series[0].points =
            vec![(0.0, 0.0), (5.0, f64::NAN), (f64::INFINITY, 3.0), (10.0, 10.0)];
        let options = ChartOptions { legend: LegendPlacement::Hidden, ..ChartOptions::default() };
        let image = render_chart(&chart, &options);
        let frame = layout(&chart, &options);
        let (x, y) = frame.to_image((5.0, 5.0));
        assert_eq!(image.get_pixel(x as u32, y as u32).0, palette::color(0));
    }

    #[test]
    fn automatic_ranges_contain_the_data() {
        let chart = LineChart {
            series: vec![Series::from_values("loss", &[3.0, 2.0, f64::NAN, 1.5, 1.2])],
            ..LineChart::default()
        };
        let options = ChartOptions { width: 300, height: 200, ..ChartOptions::default() };
        let image = render_chart(&chart, &options);
        assert_eq!(image.dimensions(), (300, 200));
        let frame = layout(&chart, &options);
        assert!(frame.x.0 < 0.0 && frame.x.1 > 4.0 && frame.y.0 < 1.2 && frame.y.1 > 3.0);
        let (x, y) = frame.to_image((0.5, 2.5));
        assert_eq!(image.get_pixel(x as u32, y as u32).0, palette::color(0));
    }

    #[test]
    fn empty_and_all_nan_charts_render() {
        let options = ChartOptions::default();
        for series in [
            vec![],
            vec![Series::new("nan", vec![(f64::NAN, 1.0), (2.0, f64::NAN)])],
            vec![Series::default()],
        ] {
            let chart = LineChart { title: "empty".into(), series, ..LineChart::default() };
            let image = render_chart(&chart, &options);
            assert_eq!(image.dimensions(), (640, 400));
            assert!(image.pixels().any(|p| p.0 == MUTED), "'no data' is written");
        }
    }

    #[test]
    fn single_point_draws_a_dot() {
        let chart = LineChart {
            series: vec![Series::new("one", vec![(3.0, 7.0)])],
            ..LineChart::default()
        };
        let options = ChartOptions { legend: LegendPlacement::Hidden, ..ChartOptions::default() };
        let image = render_chart(&chart, &options);
        let frame = layout(&chart, &options);
        let (x, y) = frame.to_image((3.0, 7.0));
        assert_eq!(image.get_pixel(x as u32, y as u32).0, palette::color(0));
    }

    #[test]
    fn tiny_images_do_not_panic() {
        let chart = two_point_chart();
        for (w, h) in [(1, 1), (0, 0), (30, 20), (80, 60)] {
            let image = render_chart(
                &chart,
                &ChartOptions { width: w, height: h, ..ChartOptions::default() },
            );
            assert_eq!(image.dimensions(), (w.max(1), h.max(1)));
        }
    }

    #[test]
    fn legend_lists_series_and_summarises_the_rest() {
        let series =
            (0..30).map(|i| Series::new(format!("class {i}"), vec![(0.0, f64::from(i))])).collect();
        let chart = LineChart { series, ..LineChart::default() };
        let options = ChartOptions {
            legend_limit: 5,
            legend: LegendPlacement::Right,
            ..ChartOptions::default()
        };
        let rows = legend_rows(&chart, &options);
        assert_eq!(rows.len(), 5);
        assert_eq!(rows[4], ("+26 more".to_string(), None));
        let image = render_chart(&chart, &options);
        assert_eq!(image.dimensions(), (640, 400));
    }

    #[test]
    fn auto_legend_avoids_the_lines() {
        // A line near the top edge, where top legends would go: the legend must go to a
        // bottom corner.
        let chart = LineChart {
            series: vec![
                Series::new("top", vec![(0.0, 0.97), (1.0, 0.97)]),
                Series::new("x", vec![]),
            ],
            x_range: Some((0.0, 1.0)),
            y_range: Some((0.0, 1.0)),
            ..LineChart::default()
        };
        let options = ChartOptions::default();
        let frame = layout(&chart, &options);
        let mut canvas =
            RgbImage::from_pixel(frame.plot.width(), frame.plot.height(), Rgb(BACKGROUND));
        let blank = canvas.clone();
        draw_series(&mut canvas, &frame, &chart.series[0], [0, 0, 255], &options);
        let corner = choose_legend_corner(&chart, &options, &blank, &canvas).unwrap();
        assert!(matches!(corner, LegendPlacement::BottomRight | LegendPlacement::BottomLeft));
    }

    #[test]
    fn grid_places_panels_row_by_row() {
        let charts: Vec<LineChart> = (0..5).map(|_| two_point_chart()).collect();
        let options = ChartOptions { width: 200, height: 150, ..ChartOptions::default() };
        let image = render_grid(&charts, 3, &options);
        assert_eq!(image.dimensions(), (600, 300));
        // The sixth slot (row 1, column 2) is empty.
        assert!(image
            .enumerate_pixels()
            .filter(|(x, y, _)| *x >= 400 && *y >= 150)
            .all(|(_, _, p)| p.0 == BACKGROUND));
        assert_eq!(render_grid(&[], 4, &options).dimensions(), (200, 150));
        assert_eq!(render_grid(&charts[..2], 0, &options).dimensions(), (200, 300));
    }
}

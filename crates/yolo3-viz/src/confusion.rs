//! Confusion matrices of a detector and their heat-map picture.
//!
//! Conventions:
//! * A matrix over `C` classes is `(C + 1) x (C + 1)`: index `C` is "background" (a detection
//!   that matched no ground truth, or a ground truth no detection found).
//! * Rows are the **predicted** class, columns the **true** class; `count(p, t)` is how often
//!   class `t` was detected as `p`.
//! * The picture normalises each column (true class) to sum to 1 by default, so the diagonal is
//!   the per-class recall. Columns with no count stay empty.
//! * Colours go from white (0) to dark blue (1, or the largest count when not normalised); cell
//!   text is black or white, whichever reads better. Cells too small for text show colour only;
//!   when rows are too narrow for every class name, names are shown at a regular stride.

use image::{Rgb, RgbImage};

use crate::draw::{draw_rect, fill_rect, PixelRect};
use crate::error::VizError;
use crate::font::{draw_text, draw_text_vertical, text_height, text_width};
use crate::palette::text_color_on;

const BACKGROUND: [u8; 3] = [255, 255, 255];
const TEXT: [u8; 3] = [30, 30, 30];
const EMPTY_CELL: [u8; 3] = [250, 250, 250];

/// Heat-map colour stops, from 0 to 1.
const STOPS: [[u8; 3]; 5] =
    [[252, 253, 255], [201, 222, 242], [118, 168, 214], [44, 102, 172], [10, 38, 96]];

/// Counts of (predicted, true) class pairs, background included.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfusionMatrix {
    names: Vec<String>,
    /// Row-major `(C + 1)^2` counts: row = predicted, column = true.
    counts: Vec<u64>,
}

impl ConfusionMatrix {
    /// An all-zero matrix over the classes `names` (background is added).
    #[must_use]
    pub fn new(names: Vec<String>) -> Self {
        let n = names.len() + 1;
        Self { names, counts: vec![0; n * n] }
    }

    /// A matrix from `rows[predicted][true]`, which must be `(C + 1) x (C + 1)` for the `C`
    /// classes `names` (the last row and column being background).
    pub fn from_rows(names: Vec<String>, rows: &[Vec<u64>]) -> Result<Self, VizError> {
        let n = names.len() + 1;
        let shape_error =
            |found: String| VizError::MatrixShape { classes: names.len(), expected: n, found };
        if rows.len() != n {
            return Err(shape_error(format!("{} rows", rows.len())));
        }
        if let Some((i, row)) = rows.iter().enumerate().find(|(_, r)| r.len() != n) {
            return Err(shape_error(format!("row {i} has {} columns", row.len())));
        }
        let counts = rows.iter().flatten().copied().collect();
        Ok(Self { names, counts })
    }

    /// Number of classes `C` (without background).
    #[must_use]
    pub fn num_classes(&self) -> usize {
        self.names.len()
    }

    /// The class names (without background).
    #[must_use]
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Counts one event: class `truth` detected as `predicted` (`None` is background).
    pub fn add(&mut self, predicted: Option<usize>, truth: Option<usize>) -> Result<(), VizError> {
        let i = self.index(predicted, truth)?;
        self.counts[i] += 1;
        Ok(())
    }

    /// How often `truth` was detected as `predicted` (`None` is background); 0 for an index out
    /// of range.
    #[must_use]
    pub fn count(&self, predicted: Option<usize>, truth: Option<usize>) -> u64 {
        self.index(predicted, truth).map_or(0, |i| self.counts[i])
    }

    /// The matrix with each column divided by its sum (row-major, like the counts); all-zero
    /// columns stay zero.
    #[must_use]
    pub fn column_normalized(&self) -> Vec<f64> {
        let n = self.names.len() + 1;
        let sums: Vec<u64> = (0..n).map(|t| (0..n).map(|p| self.counts[p * n + t]).sum()).collect();
        self.counts
            .iter()
            .enumerate()
            .map(|(i, &c)| {
                let sum = sums[i % n];
                if sum == 0 {
                    0.0
                } else {
                    c as f64 / sum as f64
                }
            })
            .collect()
    }

    fn index(&self, predicted: Option<usize>, truth: Option<usize>) -> Result<usize, VizError> {
        let c = self.names.len();
        let resolve = |class: Option<usize>| match class {
            None => Ok(c),
            Some(k) if k < c => Ok(k),
            Some(index) => Err(VizError::ClassIndex { index, classes: c }),
        };
        Ok(resolve(predicted)? * (c + 1) + resolve(truth)?)
    }

    /// The label of row or column `i` (`"background"` for the last).
    fn label(&self, i: usize) -> &str {
        self.names.get(i).map_or("background", String::as_str)
    }
}

/// How [`render_confusion`] draws.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfusionOptions {
    /// Text above the matrix; may be empty.
    pub title: String,
    /// Divide each column by its sum (recall on the diagonal) instead of showing raw counts.
    pub normalize: bool,
    /// Cell side in pixels; `None` aims at a matrix about 640 pixels wide (cells 12 to 64).
    pub cell_size: Option<u32>,
    /// Font scale of the names and cell values.
    pub text_scale: u32,
}

impl Default for ConfusionOptions {
    fn default() -> Self {
        Self { title: "Confusion Matrix".into(), normalize: true, cell_size: None, text_scale: 1 }
    }
}

/// Draws `matrix` as a heat map with class names on both axes, the values in the cells (when
/// they fit) and a colour bar.
#[must_use]
pub fn render_confusion(matrix: &ConfusionMatrix, options: &ConfusionOptions) -> RgbImage {
    let n = matrix.num_classes() + 1;
    let scale = options.text_scale.max(1);
    let gap = 6 * scale as i32;
    let text_h = text_height(scale) as i32;
    let cell = options.cell_size.unwrap_or_else(|| (640 / n as u32).clamp(12, 64)).max(1) as i32;
    let grid = cell * n as i32;
    let values: Vec<f64> = if options.normalize {
        matrix.column_normalized()
    } else {
        matrix.counts.iter().map(|&c| c as f64).collect()
    };
    let top_value =
        if options.normalize { 1.0 } else { values.iter().copied().fold(0.0, f64::max).max(1.0) };

    let name_w = (0..n).map(|i| text_width(matrix.label(i), scale)).max().unwrap_or(0) as i32;
    let title_scale = scale + 1;
    let title_h = if options.title.is_empty() { 0 } else { text_height(title_scale) as i32 + gap };
    let bar_w = 16 * scale as i32;
    let bar_label_w = text_width(&format_value(top_value, options.normalize), scale) as i32;

    let left = gap + text_h + gap + name_w + gap;
    let top = gap + title_h + gap / 2;
    let bar_left = left + grid + gap * 2;
    let width = bar_left + bar_w + 6 + 2 * scale as i32 + bar_label_w + gap * 2;
    let height = top + grid + gap + name_w + gap + text_h + gap;
    let mut image = RgbImage::from_pixel(width as u32, height as u32, Rgb(BACKGROUND));

    // Cells, with values at double scale when the cells are large enough.
    let widest_value = format_value(top_value, options.normalize);
    let fits = |s: u32| {
        cell >= text_width(&widest_value, s) as i32 + 12 * s as i32
            && cell >= text_height(s) as i32 + 4
    };
    let value_scale = if fits(scale * 2) { scale * 2 } else { scale };
    let value_fits = fits(value_scale);
    let value_h = text_height(value_scale) as i32;
    for p in 0..n {
        for t in 0..n {
            let value = values[p * n + t];
            let rect = PixelRect::from_size(
                left + t as i32 * cell,
                top + p as i32 * cell,
                cell as u32,
                cell as u32,
            );
            let fraction = value / top_value;
            let color = if value > 0.0 { heat_color(fraction) } else { EMPTY_CELL };
            fill_rect(&mut image, rect, color);
            let shown = if options.normalize { value >= 0.005 } else { value > 0.0 };
            if value_fits && shown {
                let text = format_value(value, options.normalize);
                let tw = text_width(&text, value_scale) as i32;
                let x = rect.left + (cell - tw) / 2;
                let y = rect.top + (cell - value_h) / 2 + value_scale as i32 / 2;
                draw_text(&mut image, x, y, &text, value_scale, text_color_on(color));
            }
        }
    }
    draw_rect(
        &mut image,
        PixelRect::new(left - 1, top - 1, left + grid + 1, top + grid + 1),
        1,
        [160, 160, 160],
    );

    // Names: rows right-aligned left of the grid, columns reading upwards under it.
    let stride = ((text_h + 2) as f64 / f64::from(cell)).ceil().max(1.0) as usize;
    for i in (0..n).step_by(stride) {
        let label = matrix.label(i);
        let lw = text_width(label, scale) as i32;
        let row_y = top + i as i32 * cell + (cell - text_h) / 2 + scale as i32 / 2;
        draw_text(&mut image, left - gap / 2 - lw, row_y, label, scale, TEXT);
        let col_x = left + i as i32 * cell + (cell - text_h) / 2;
        draw_text_vertical(&mut image, col_x, top + grid + gap / 2, label, scale, TEXT);
    }
    // Axis titles.
    let true_label = "True";
    let x = left + (grid - text_width(true_label, scale) as i32) / 2;
    draw_text(&mut image, x, height - gap - text_h, true_label, scale, TEXT);
    let predicted = "Predicted";
    let y = top + (grid - text_width(predicted, scale) as i32) / 2;
    draw_text_vertical(&mut image, gap, y, predicted, scale, TEXT);
    if !options.title.is_empty() {
        let x = left + (grid - text_width(&options.title, title_scale) as i32) / 2;
        draw_text(&mut image, x.max(gap), gap, &options.title, title_scale, TEXT);
    }
    draw_color_bar(
        &mut image,
        PixelRect::from_size(bar_left, top, bar_w as u32, grid as u32),
        top_value,
        options,
    );
    image
}

/// The colour bar: the heat map from top (max) to bottom (0) with labels at 0, half and max.
fn draw_color_bar(
    image: &mut RgbImage,
    bar: PixelRect,
    top_value: f64,
    options: &ConfusionOptions,
) {
    let scale = options.text_scale.max(1);
    let h = bar.height().max(2) as i32;
    for y in bar.top..bar.bottom {
        let fraction = 1.0 - f64::from(y - bar.top) / f64::from(h - 1);
        fill_rect(image, PixelRect::new(bar.left, y, bar.right, y + 1), heat_color(fraction));
    }
    draw_rect(
        image,
        PixelRect::new(bar.left - 1, bar.top - 1, bar.right + 1, bar.bottom + 1),
        1,
        [160, 160, 160],
    );
    for fraction in [0.0, 0.5, 1.0] {
        let y = bar.bottom - 1 - (fraction * f64::from(h - 1)).round() as i32;
        fill_rect(image, PixelRect::new(bar.right + 1, y, bar.right + 4, y + 1), TEXT);
        let text = format_value(fraction * top_value, options.normalize);
        let ty = (y - text_height(scale) as i32 / 2)
            .clamp(bar.top - 2, bar.bottom - text_height(scale) as i32 + 2);
        draw_text(image, bar.right + 6 + 2 * scale as i32, ty, &text, scale, TEXT);
    }
}

/// A normalised value with two decimals, a count as an integer.
fn format_value(value: f64, normalized: bool) -> String {
    if normalized {
        format!("{value:.2}")
    } else {
        format!("{}", value.round())
    }
}

/// The heat-map colour of `fraction` in `[0, 1]` (clamped), interpolating the stops.
#[must_use]
fn heat_color(fraction: f64) -> [u8; 3] {
    let f = if fraction.is_finite() { fraction.clamp(0.0, 1.0) } else { 0.0 };
    let pos = f * (STOPS.len() - 1) as f64;
    let i = (pos.floor() as usize).min(STOPS.len() - 2);
    let t = pos - i as f64;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    [0, 1, 2].map(|k| (f64::from(a[k]) + (f64::from(b[k]) - f64::from(a[k])) * t).round() as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("class{i}")).collect()
    }

    fn sample() -> ConfusionMatrix {
        ConfusionMatrix::from_rows(names(2), &[vec![8, 1, 2], vec![1, 5, 0], vec![1, 4, 0]])
            .unwrap()
    }

    #[test]
    fn counts_and_column_normalisation() {
        let m = sample();
        assert_eq!(m.count(Some(0), Some(0)), 8);
        assert_eq!(m.count(None, Some(1)), 4);
        assert_eq!(m.count(Some(0), None), 2);
        let norm = m.column_normalized();
        assert!((norm[0] - 0.8).abs() < 1e-12);
        assert!((norm[4] - 0.5).abs() < 1e-12);
        assert_eq!(norm[2], 1.0);
        for t in 0..3 {
            let sum: f64 = (0..3).map(|p| norm[p * 3 + t]).sum();
            assert!((sum - 1.0).abs() < 1e-12);
        }
        assert_eq!(ConfusionMatrix::new(names(1)).column_normalized(), vec![0.0; 4]);
    }

    #[test]
    fn add_checks_indices() {
        let mut m = ConfusionMatrix::new(names(3));
        m.add(Some(1), Some(2)).unwrap();
        m.add(Some(1), Some(2)).unwrap();
        m.add(None, Some(0)).unwrap();
        assert_eq!(m.count(Some(1), Some(2)), 2);
        assert_eq!(m.count(None, Some(0)), 1);
        assert!(matches!(m.add(Some(3), None), Err(VizError::ClassIndex { index: 3, classes: 3 })));
        assert_eq!(m.count(Some(7), None), 0);
    }

    #[test]
    fn shape_is_checked() {
        assert!(ConfusionMatrix::from_rows(names(2), &[vec![0; 3], vec![0; 3]]).is_err());
        let err = ConfusionMatrix::from_rows(names(2), &[vec![0; 3], vec![0; 2], vec![0; 3]])
            .unwrap_err();
        assert!(err.to_string().contains("row 1 has 2 columns"), "{err}");
    }

    #[test]
    fn renders_cells_in_heat_colours() {
        let m = sample();
        let options = ConfusionOptions { cell_size: Some(40), ..ConfusionOptions::default() };
        let image = render_confusion(&m, &options);
        assert!(image.width() > 3 * 40 && image.height() > 3 * 40);
        // The darkest cell (value 1.0, predicted class0 / true background) has the top colour
        // somewhere in it; the empty cell (predicted background / true background) is pale.
        let dark = heat_color(1.0);
        assert!(image.pixels().any(|p| p.0 == dark));
        assert!(image.pixels().any(|p| p.0 == EMPTY_CELL));
    }

    #[test]
    fn raw_counts_and_many_classes_render() {
        let mut m = ConfusionMatrix::new(names(80));
        for k in 0..80 {
            m.add(Some(k), Some(k)).unwrap();
            m.add(None, Some(k)).unwrap();
        }
        let image = render_confusion(&m, &ConfusionOptions::default());
        assert!(image.width() >= 81 * 12);
        let counts = ConfusionOptions {
            normalize: false,
            title: String::new(),
            ..ConfusionOptions::default()
        };
        let image = render_confusion(&sample(), &counts);
        assert!(image.pixels().any(|p| p.0 == heat_color(1.0)));
        let empty =
            render_confusion(&ConfusionMatrix::new(Vec::new()), &ConfusionOptions::default());
        assert!(empty.width() > 0);
    }

    #[test]
    fn heat_colours_run_from_pale_to_dark() {
        assert_eq!(heat_color(0.0), STOPS[0]);
        assert_eq!(heat_color(1.0), STOPS[4]);
        assert_eq!(heat_color(2.0), STOPS[4]);
        assert_eq!(heat_color(f64::NAN), STOPS[0]);
        let luma = |c: [u8; 3]| c.iter().map(|&v| u32::from(v)).sum::<u32>();
        assert!((0..10)
            .all(|i| luma(heat_color(f64::from(i) / 10.0))
                > luma(heat_color(f64::from(i + 1) / 10.0))));
    }
}

//! Pictures of detector results without a tensor framework, a font file or a plotting crate:
//! detections drawn onto images, training curves, precision-recall charts and confusion
//! matrices, all rendered into [`image::RgbImage`]s with an embedded bitmap font and saved
//! atomically.
//!
//! Conventions shared by every module:
//! * Pixel coordinates have `(0, 0)` at the top-left, `x` right, `y` down. Boxes are
//!   [`yolo3_core::BoxXyxy`] in pixels of the image they are drawn on.
//! * Colours are `[r, g, b]` bytes; drawing is opaque (no alpha).
//! * Drawing clips to the image: nothing outside panics, non-finite input is skipped.
//! * Renderers return images; only [`save_png`] and [`save_image`] touch the file system.
//!
//! ```
//! use yolo3_core::BoxXyxy;
//! use yolo3_viz::{annotate, palette, render_chart, AnnotateOptions, Annotation, ChartOptions, LineChart, Series};
//!
//! let mut image = image::RgbImage::new(320, 240);
//! let dog = Annotation { bbox: BoxXyxy::new(40.0, 60.0, 200.0, 220.0), label: "dog 0.87".into(), color: palette::color(16) };
//! annotate(&mut image, &[dog], &AnnotateOptions::default());
//!
//! let chart = LineChart {
//!     title: "loss".into(),
//!     series: vec![Series::from_values("train", &[3.0, 2.1, f64::NAN, 1.4])],
//!     ..LineChart::default()
//! };
//! let picture = render_chart(&chart, &ChartOptions::default());
//! assert_eq!(picture.dimensions(), (640, 400));
//! ```

pub mod annotate;
pub mod chart;
pub mod confusion;
pub mod draw;
pub mod error;
pub mod font;
pub mod palette;
pub mod presets;
pub mod save;
pub mod ticks;

pub use annotate::{annotate, AnnotateOptions, Annotation};
pub use chart::{render_chart, render_grid, ChartOptions, LegendPlacement, LineChart, Series};
pub use confusion::{render_confusion, ConfusionMatrix, ConfusionOptions};
pub use draw::PixelRect;
pub use error::VizError;
pub use presets::{panel_options, pr_curve_chart, results_charts};
pub use save::{save_image, save_png};

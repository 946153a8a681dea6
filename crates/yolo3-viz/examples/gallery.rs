//! Renders a sample of every picture the crate makes into a folder (default `/tmp`), for a
//! visual check: `cargo run -p yolo3-viz --example gallery -- /tmp`.

use std::path::PathBuf;

use image::{Rgb, RgbImage};
use yolo3_core::BoxXyxy;
use yolo3_viz::{
    annotate, palette, panel_options, pr_curve_chart, render_chart, render_confusion, render_grid,
    results_charts, save_png, AnnotateOptions, Annotation, ChartOptions, ConfusionMatrix,
    ConfusionOptions, Series,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "/tmp".into()));

    // Results grid: ten metrics over 30 epochs.
    let epochs: Vec<f64> = (1..=30).map(f64::from).collect();
    let decay = |scale: f64, floor: f64, wobble: f64| -> Vec<f64> {
        epochs.iter().map(|e| floor + scale * (-e / 8.0).exp() + wobble * (e * 1.7).sin()).collect()
    };
    let rise = |top: f64, wobble: f64| -> Vec<f64> {
        epochs.iter().map(|e| top * (1.0 - (-e / 7.0).exp()) + wobble * (e * 2.3).cos()).collect()
    };
    let mut val = decay(4.0, 1.5, 0.08);
    val[7] = f64::NAN;
    let lr: Vec<f64> = epochs.iter().map(|e| 1e-3 * (1.0 - e / 31.0)).collect();
    let metrics: Vec<(&str, Vec<f64>)> = vec![
        ("train/xy_loss", decay(2.0, 0.4, 0.03)),
        ("train/wh_loss", decay(1.5, 0.3, 0.02)),
        ("train/conf_loss", decay(6.0, 1.0, 0.1)),
        ("train/class_loss", decay(1.0, 0.1, 0.02)),
        ("val/loss", val),
        ("metrics/precision", rise(0.8, 0.03)),
        ("metrics/recall", rise(0.7, 0.03)),
        ("metrics/mAP50", rise(0.65, 0.02)),
        ("metrics/mAP50-95", rise(0.42, 0.015)),
        ("lr", lr),
    ];
    let borrowed: Vec<(&str, &[f64])> = metrics.iter().map(|(n, v)| (*n, v.as_slice())).collect();
    let grid = render_grid(&results_charts(&epochs, &borrowed), 5, &panel_options());
    save_png(&grid, &out.join("viz_results.png"))?;

    // PR curves of five classes.
    let names = ["person", "car", "dog", "bicycle", "traffic light"];
    let classes: Vec<Series> = names
        .iter()
        .enumerate()
        .map(|(k, name)| {
            let quality = 0.95 - 0.12 * k as f64;
            let points = (0..=60)
                .map(|i| {
                    let r = f64::from(i) / 60.0 * (0.98 - 0.08 * k as f64);
                    (
                        r,
                        (quality - 0.9 * r.powi(3 + k as i32 % 3) * (1.0 - quality / 2.0))
                            .clamp(0.0, 1.0),
                    )
                })
                .collect();
            Series::new(format!("{name} {quality:.3}"), points)
        })
        .collect();
    let pr =
        render_chart(&pr_curve_chart("Precision-Recall Curve", &classes), &ChartOptions::default());
    save_png(&pr, &out.join("viz_pr.png"))?;

    // Annotated image: a gradient with boxes, two of them partly outside.
    let mut image = RgbImage::from_fn(640, 480, |x, y| {
        Rgb([(x / 3) as u8, (y / 3) as u8, 120 + (x / 8) as u8])
    });
    let detections = [
        (BoxXyxy::new(50.0, 80.0, 300.0, 400.0), "person 0.92", 0),
        (BoxXyxy::new(320.0, 200.0, 600.0, 330.0), "car 0.87", 2),
        (BoxXyxy::new(-40.0, 300.0, 120.0, 520.0), "dog 0.55", 16),
        (BoxXyxy::new(560.0, 5.0, 700.0, 120.0), "traffic light 0.31", 9),
        (BoxXyxy::new(400.0, 60.0, 470.0, 160.0), "bicycle 0.78", 4),
    ];
    let annotations: Vec<Annotation> = detections
        .iter()
        .map(|&(bbox, label, class)| Annotation {
            bbox,
            label: label.into(),
            color: palette::color(class),
        })
        .collect();
    annotate(&mut image, &annotations, &AnnotateOptions::default());
    save_png(&image, &out.join("viz_annotated.png"))?;

    // Palette swatches.
    let mut swatches = RgbImage::new(20 * 40, 40);
    for i in 0..20 {
        for y in 0..40 {
            for x in 0..40 {
                swatches.put_pixel(i * 40 + x, y, Rgb(palette::color(i as usize)));
            }
        }
    }
    save_png(&swatches, &out.join("viz_palette.png"))?;

    // Confusion matrix over the five classes.
    let mut matrix = ConfusionMatrix::new(names.iter().map(ToString::to_string).collect());
    let counts = [
        [50, 2, 1, 0, 0, 6],
        [1, 40, 0, 3, 0, 9],
        [3, 0, 22, 0, 0, 4],
        [0, 4, 0, 12, 0, 2],
        [0, 0, 0, 0, 7, 3],
        [6, 8, 5, 4, 6, 0],
    ];
    for (p, row) in counts.iter().enumerate() {
        for (t, &n) in row.iter().enumerate() {
            for _ in 0..n {
                matrix.add((p < 5).then_some(p), (t < 5).then_some(t))?;
            }
        }
    }
    save_png(
        &render_confusion(&matrix, &ConfusionOptions::default()),
        &out.join("viz_confusion.png"),
    )?;

    let big = ConfusionOptions { cell_size: Some(90), ..ConfusionOptions::default() };
    save_png(&render_confusion(&matrix, &big), &out.join("viz_confusion_big.png"))?;
    let mut many = ConfusionMatrix::new((0..80).map(|k| format!("class{k}")).collect());
    for k in 0..80 {
        for _ in 0..(k % 7 + 3) {
            many.add(Some(k), Some(k))?;
        }
        many.add(Some((k * 7 + 3) % 80), Some(k))?;
        many.add(None, Some(k))?;
    }
    save_png(
        &render_confusion(&many, &ConfusionOptions::default()),
        &out.join("viz_confusion_80.png"),
    )?;

    // The whole font.
    let text: String = (32u8..127).map(char::from).collect();
    let mut font = RgbImage::from_pixel(16 * 6 * 3 + 20, 6 * 10 * 3 + 20, Rgb([255, 255, 255]));
    for (row, chunk) in text.as_bytes().chunks(16).enumerate() {
        let line = std::str::from_utf8(chunk)?;
        yolo3_viz::font::draw_text(&mut font, 10, 10 + row as i32 * 30, line, 3, [0, 0, 0]);
    }
    save_png(&font, &out.join("viz_font.png"))?;
    Ok(())
}

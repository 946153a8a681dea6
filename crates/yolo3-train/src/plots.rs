//! `results.png`: one small chart per column of `results.csv` (ultralytics' layout), drawn by
//! `yolo3-viz`.

use std::path::Path;

use crate::error::Result;
use crate::results::EpochRow;

/// Draws the training curves of `rows` into `path`.
pub fn write_results_png(path: &Path, rows: &[EpochRow]) -> Result<()> {
    let epochs: Vec<f64> = rows.iter().map(|r| r.epoch as f64).collect();
    let column = |f: &dyn Fn(&EpochRow) -> f64| rows.iter().map(f).collect::<Vec<f64>>();
    let columns = [
        ("train xy loss", column(&|r| r.train.xy)),
        ("train wh loss", column(&|r| r.train.wh)),
        ("train confidence loss", column(&|r| r.train.confidence)),
        ("train class loss", column(&|r| r.train.class)),
        ("val loss", column(&|r| r.val.total())),
        ("precision", column(&|r| r.precision)),
        ("recall", column(&|r| r.recall)),
        ("mAP50", column(&|r| r.map50)),
        ("mAP50-95", column(&|r| r.map50_95)),
        ("learning rate", column(&|r| r.lr)),
    ];
    let metrics: Vec<(&str, &[f64])> = columns.iter().map(|(n, v)| (*n, v.as_slice())).collect();
    let charts = yolo3_viz::results_charts(&epochs, &metrics);
    let image = yolo3_viz::render_grid(&charts, 5, &yolo3_viz::panel_options());
    Ok(yolo3_viz::save_png(&image, path)?)
}

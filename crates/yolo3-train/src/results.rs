//! `results.csv`: one row per epoch of a run, its columns in a fixed order, written whole and
//! atomically after every epoch and read back by `--resume`.

use std::path::Path;

use yolo3_core::LossTerms;
use yolo3_io::fsio::Existing;
use yolo3_io::fsio::FileError;

use crate::error::{Result, TrainError};

/// The header of `results.csv`; its columns never change order.
pub const RESULTS_HEADER: &str = "epoch,train_xy,train_wh,train_conf,train_class,train_loss,\
val_xy,val_wh,val_conf,val_class,val_loss,precision,recall,map50,map50_95,lr,seconds";

/// One row of `results.csv`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EpochRow {
    /// Epoch, 1-based.
    pub epoch: usize,
    /// Mean training loss terms per image batch.
    pub train: LossTerms,
    /// Validation loss terms.
    pub val: LossTerms,
    /// Precision at the best-F1 point (mean over classes).
    pub precision: f64,
    /// Recall at the best-F1 point (mean over classes).
    pub recall: f64,
    /// COCO AP at IoU 0.5.
    pub map50: f64,
    /// COCO AP averaged over IoU 0.5:0.95.
    pub map50_95: f64,
    /// Learning rate at the end of the epoch.
    pub lr: f64,
    /// Wall time since the start of the run.
    pub seconds: f64,
}

impl EpochRow {
    /// The CSV line (no newline).
    #[must_use]
    pub fn to_csv(&self) -> String {
        let t = self.train;
        let v = self.val;
        format!(
            "{},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6},{:.3e},{:.1}",
            self.epoch,
            t.xy,
            t.wh,
            t.confidence,
            t.class,
            t.total(),
            v.xy,
            v.wh,
            v.confidence,
            v.class,
            v.total(),
            self.precision,
            self.recall,
            self.map50,
            self.map50_95,
            self.lr,
            self.seconds
        )
    }

    /// Parses a line written by [`EpochRow::to_csv`].
    pub fn parse(line: &str, path: &Path, line_no: usize) -> Result<Self> {
        let v: Vec<f64> = line
            .split(',')
            .map(|f| f.trim().parse::<f64>())
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| TrainError::format(path, format!("line {line_no}: not a number"), e))?;
        if v.len() != RESULTS_HEADER.split(',').count() {
            return Err(TrainError::RunFile {
                path: path.to_owned(),
                message: format!(
                    "line {line_no}: {} columns, expected {}",
                    v.len(),
                    RESULTS_HEADER.split(',').count()
                ),
            });
        }
        Ok(Self {
            epoch: v[0] as usize,
            train: LossTerms { xy: v[1], wh: v[2], confidence: v[3], class: v[4] },
            val: LossTerms { xy: v[6], wh: v[7], confidence: v[8], class: v[9] },
            precision: v[11],
            recall: v[12],
            map50: v[13],
            map50_95: v[14],
            lr: v[15],
            seconds: v[16],
        })
    }
}

impl std::fmt::Display for EpochRow {
    /// The one-line epoch summary that progress output prints.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (t, v) = (self.train, self.val);
        write!(
            f,
            "epoch {:>3}: train loss {:.3} (xy {:.3} wh {:.3} conf {:.3} cls {:.3})  val loss {:.3}  \
             P {:.3} R {:.3} mAP50 {:.3} mAP50-95 {:.3}  lr {:.1e}  {:.0}s",
            self.epoch,
            t.total(),
            t.xy,
            t.wh,
            t.confidence,
            t.class,
            v.total(),
            self.precision,
            self.recall,
            self.map50,
            self.map50_95,
            self.lr,
            self.seconds
        )
    }
}

/// Reads `results.csv` (an absent file is an empty table).
pub fn read_results(path: &Path) -> Result<Vec<EpochRow>> {
    let text = match yolo3_io::fsio::read_text(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(FileError::on("reading", path)(source).into()),
    };
    text.lines()
        .enumerate()
        .skip(1)
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| EpochRow::parse(l, path, n + 1))
        .collect()
}

/// Writes the whole table (atomically).
pub fn write_results(path: &Path, rows: &[EpochRow]) -> Result<()> {
    let mut text = String::from(RESULTS_HEADER);
    text.push('\n');
    for r in rows {
        text.push_str(&r.to_csv());
        text.push('\n');
    }
    yolo3_io::fsio::write_atomic(path, text.as_bytes(), Existing::Replace)
        .map_err(FileError::on("writing", path))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_round_trip() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("results.csv");
        let row = EpochRow {
            epoch: 3,
            train: LossTerms { xy: 1.0, wh: 2.0, confidence: 3.0, class: 4.0 },
            map50: 0.5,
            lr: 1e-3,
            ..EpochRow::default()
        };
        write_results(&path, std::slice::from_ref(&row)).unwrap();
        let back = read_results(&path).unwrap();
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].epoch, 3);
        assert_eq!(back[0].train, row.train);
        assert!(std::fs::read_to_string(&path).unwrap().starts_with(RESULTS_HEADER));
    }
}

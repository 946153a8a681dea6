//! What `train --help` says a flag takes when it is not given: read from the library's
//! defaults (`TrainConfig::default()` and the schedules' presets) when the help is built, so
//! the text cannot drift from what a run uses (which `args.toml` records).

use std::fmt::Display;

use yolo3_train::{DataSource, ModelSource, Schedule, TrainConfig};

/// `text [default: value]`, the value read from the default configuration.
pub(super) fn of<T: Display>(text: &str, value: impl Fn(&TrainConfig) -> T) -> String {
    format!("{text} [default: {}]", value(&TrainConfig::default()))
}

/// A flag of the synthetic dataset: `pick` takes (training images, validation images, side).
pub(super) fn synthetic(text: &str, pick: impl Fn((usize, usize, u32)) -> usize) -> String {
    of(text, |c| match c.data {
        DataSource::Synthetic { train_images, val_images, size, .. } => {
            pick((train_images, val_images, size)).to_string()
        }
        DataSource::Files { .. } => "none".to_owned(),
    })
}

/// `--width-divisor`.
pub(super) fn width_divisor(text: &str) -> String {
    of(text, |c| match c.model {
        ModelSource::TinyPreset { width_divisor } => width_divisor.to_string(),
        ModelSource::Cfg { .. } => "none".to_owned(),
    })
}

/// `--lr`: each schedule's own.
pub(super) fn learning_rate() -> String {
    let lr = |s: &Schedule| s.learning_rates().first().map_or(0.0, |(_, lr)| *lr);
    format!(
        "Peak learning rate, > 0 (keras schedule: the frozen stage's; the unfrozen stage uses a \
         tenth) [default: {} with the cosine schedule, {} with keras, {} with darknet]",
        lr(&TrainConfig::default().schedule),
        lr(&Schedule::keras(0)),
        Schedule::DARKNET_LR
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_help_shows_the_librarys_defaults() {
        let c = TrainConfig::default();
        assert_eq!(of("Epochs", |c| c.epochs), format!("Epochs [default: {}]", c.epochs));
        assert!(synthetic("Images", |d| d.0).ends_with("[default: 1200]"));
        assert!(width_divisor("Divisor").ends_with("[default: 4]"));
        assert!(learning_rate().contains("0.003 with the cosine schedule"), "{}", learning_rate());
    }
}

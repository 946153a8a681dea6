//! The `[net]` section: input size and the training hyper-parameters darknet keeps there.
//!
//! Defaults are pjreddie's `parse_net_options`. The input size is required (darknet stops
//! with "No input parameters supplied"); `size=N` is accepted as shorthand for
//! `width=height=N` when either is missing.

use super::section::SectionReader;
use crate::error::Result;

/// Learning-rate policy (`policy=` and the keys it reads).
#[derive(Debug, Clone, PartialEq)]
pub enum LrPolicy {
    /// `constant`: the base rate throughout.
    Constant,
    /// `step`: multiply by `scale` every `step` batches.
    Step {
        /// Period in batches.
        step: u64,
        /// Factor per period.
        scale: f64,
    },
    /// `steps`: multiply by `scales[i]` once the batch count reaches `steps[i]`.
    Steps {
        /// Batch counts, ascending.
        steps: Vec<u64>,
        /// One factor per step.
        scales: Vec<f64>,
    },
    /// `exp`: `rate * gamma^batch`.
    Exp {
        /// Base of the decay.
        gamma: f64,
    },
    /// `poly`: `rate * (1 - batch/max_batches)^power`.
    Poly {
        /// Exponent.
        power: f64,
    },
    /// `sigmoid`: `rate / (1 + exp(gamma*(batch - step)))`.
    Sigmoid {
        /// Steepness.
        gamma: f64,
        /// Midpoint in batches.
        step: u64,
    },
}

/// Parsed `[net]` section.
#[derive(Debug, Clone, PartialEq)]
pub struct NetParams {
    /// Input width in pixels.
    pub width: i64,
    /// Input height in pixels.
    pub height: i64,
    /// Input channels.
    pub channels: i64,
    /// Images per optimizer step.
    pub batch: i64,
    /// Forward passes a batch is split into.
    pub subdivisions: i64,
    /// Base learning rate.
    pub learning_rate: f64,
    /// SGD momentum.
    pub momentum: f64,
    /// Weight decay.
    pub decay: f64,
    /// Warm-up length in batches (`rate * (batch/burn_in)^power` before it).
    pub burn_in: u64,
    /// Warm-up exponent (`power`, darknet default 4).
    pub burn_in_power: f64,
    /// Training length in batches.
    pub max_batches: u64,
    /// Learning-rate policy.
    pub policy: LrPolicy,
    /// Rotation augmentation in degrees.
    pub angle: f64,
    /// Hue augmentation (fraction of the hue circle).
    pub hue: f64,
    /// Saturation augmentation factor.
    pub saturation: f64,
    /// Exposure augmentation factor.
    pub exposure: f64,
    /// Crop jitter when given in `[net]` (`AlexeyAB` darknet); `[yolo]` has its own.
    pub jitter: Option<f64>,
}

impl NetParams {
    pub(crate) fn read(r: &SectionReader<'_>) -> Result<Self> {
        let size = r.opt_int("size")?;
        let width = r.opt_int("width")?.or(size).ok_or_else(|| r.missing("width"))?;
        let height = r.opt_int("height")?.or(size).ok_or_else(|| r.missing("height"))?;
        let channels = r.req_int("channels")?;
        for (key, v) in [("width", width), ("height", height), ("channels", channels)] {
            if v <= 0 {
                return Err(r.key_error(key, "must be positive"));
            }
        }
        let max_batches = non_negative(r, "max_batches", r.int("max_batches", 0)?)?;
        let policy = read_policy(r)?;
        let params = Self {
            width,
            height,
            channels,
            batch: r.int_at_least("batch", 1, 1)?,
            subdivisions: r.int_at_least("subdivisions", 1, 1)?,
            learning_rate: r.float("learning_rate", 0.001)?,
            momentum: r.float("momentum", 0.9)?,
            decay: r.float("decay", 0.0001)?,
            burn_in: non_negative(r, "burn_in", r.int("burn_in", 0)?)?,
            burn_in_power: r.float("power", 4.0)?,
            max_batches,
            policy,
            angle: r.float("angle", 0.0)?,
            hue: r.float("hue", 0.0)?,
            saturation: r.float("saturation", 1.0)?,
            exposure: r.float("exposure", 1.0)?,
            jitter: r.opt_float("jitter")?,
        };
        if params.batch % params.subdivisions != 0 {
            return Err(
                r.key_error("subdivisions", format!("does not divide batch={}", params.batch))
            );
        }
        Ok(params)
    }
}

fn non_negative(r: &SectionReader<'_>, key: &'static str, v: i64) -> Result<u64> {
    u64::try_from(v).map_err(|_| r.key_error(key, "must not be negative"))
}

fn read_policy(r: &SectionReader<'_>) -> Result<LrPolicy> {
    let name = r.text("policy").unwrap_or("constant");
    let policy = match name {
        "constant" => LrPolicy::Constant,
        "step" => LrPolicy::Step {
            step: non_negative(r, "step", r.int("step", 1)?)?,
            scale: r.float("scale", 1.0)?,
        },
        "steps" => {
            let steps: Vec<u64> = r.opt_list("steps", "a batch count")?.unwrap_or_default();
            let scales: Vec<f64> = r.opt_list("scales", "a number")?.unwrap_or_default();
            if steps.len() != scales.len() {
                return Err(r.key_error(
                    "scales",
                    format!("{} scales for {} steps", scales.len(), steps.len()),
                ));
            }
            if steps.windows(2).any(|w| w[0] > w[1]) {
                return Err(r.key_error("steps", "must be ascending"));
            }
            LrPolicy::Steps { steps, scales }
        }
        "exp" => LrPolicy::Exp { gamma: r.float("gamma", 1.0)? },
        "poly" => LrPolicy::Poly { power: r.float("power", 1.0)? },
        "sigmoid" => LrPolicy::Sigmoid {
            gamma: r.float("gamma", 1.0)?,
            step: non_negative(r, "step", r.int("step", 1)?)?,
        },
        other => {
            return Err(r.key_error("policy", format!("unsupported policy `{other}`")));
        }
    };
    Ok(policy)
}

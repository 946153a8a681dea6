//! Whether a network and a forward pass fit in memory, checked before they are attempted.
//!
//! libtorch aborts the process (with a C++ backtrace) when an allocation fails, so a cfg with
//! huge layers, a large `--input` or a large `--batch` would end in a crash rather than an error.
//! A network's parameters are counted from its cfg ([`check_parameters`], before it is built). The activations of a
//! darknet network are known from its cfg: every layer's output is `c x h x w` float32 values
//! per image. Their sum bounds what inference holds at once; training keeps them all for
//! backward, with the gradients and batch-norm intermediates roughly quadrupling it. The total
//! is compared with what the operating system reports as available (Linux `MemAvailable`);
//! where that is unknown, nothing is refused.

use crate::cfg::Config;
use crate::error::{ModelError, Result};

/// How a pass uses its activations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pass {
    /// Forward only, no autograd.
    Inference,
    /// Forward and backward.
    Training,
}

impl Pass {
    fn factor(self) -> u64 {
        match self {
            Self::Inference => 1,
            Self::Training => 4,
        }
    }
}

/// Bytes of the float32 outputs of every layer of `cfg` for `batch` images of `side x side`.
pub fn activation_bytes(cfg: &Config, side: u32, batch: usize) -> Result<u64> {
    let shapes = cfg.output_shapes(i64::from(side), i64::from(side))?;
    let size = |s: &crate::Shape| {
        (s.c.max(0) as u64).saturating_mul(s.h.max(0) as u64).saturating_mul(s.w.max(0) as u64)
    };
    let per_image = shapes.iter().map(size).fold(0u64, u64::saturating_add);
    let input = 3 * u64::from(side) * u64::from(side);
    Ok(per_image.saturating_add(input).saturating_mul(4).saturating_mul(batch as u64))
}

/// Memory the operating system says can be allocated without swapping, in bytes.
#[must_use]
pub fn available_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Refuses a network whose float32 parameters alone would not fit in the available memory
/// (building it would abort inside libtorch).
pub fn check_parameters(cfg: &Config) -> Result<()> {
    let needed = cfg.parameter_count().saturating_mul(4);
    match available_bytes() {
        Some(available) if needed > available => Err(ModelError::TooManyParameters {
            cfg: cfg.name().to_owned(),
            parameters: cfg.parameter_count(),
            needed_mb: needed / (1 << 20),
            available_mb: available / (1 << 20),
        }),
        _ => Ok(()),
    }
}

/// Refuses a pass of `batch` images at `side` whose activations would not fit in the
/// available memory.
pub fn check_fits(cfg: &Config, side: u32, batch: usize, pass: Pass) -> Result<()> {
    let needed = activation_bytes(cfg, side, batch)?.saturating_mul(pass.factor());
    match available_bytes() {
        Some(available) if needed > available => Err(ModelError::OutOfMemory {
            side,
            batch,
            pass: match pass {
                Pass::Inference => "inference",
                Pass::Training => "training",
            },
            needed_mb: needed / (1 << 20),
            available_mb: available / (1 << 20),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: &str = "[net]\nwidth=64\nheight=64\nchannels=3\n\n\
        [convolutional]\nfilters=8\nsize=3\nstride=1\npad=1\nactivation=leaky\n\n\
        [maxpool]\nsize=2\nstride=2\n";

    #[test]
    fn activations_are_counted_per_layer_and_image() {
        let cfg = Config::parse(CFG, "t.cfg").unwrap();
        // input 3x64x64, conv 8x64x64, pool 8x32x32; float32; two images.
        let per_image = 3 * 64 * 64 + 8 * 64 * 64 + 8 * 32 * 32;
        assert_eq!(activation_bytes(&cfg, 64, 2).unwrap(), 2 * 4 * per_image);
    }

    #[test]
    fn a_network_larger_than_the_machine_is_refused_before_it_is_built() {
        let cfg = Config::parse(CFG, "t.cfg").unwrap();
        assert_eq!(cfg.parameter_count(), 8 * 3 * 3 * 3 + 8);
        check_parameters(&cfg).unwrap();
        let huge = CFG.replace("filters=8", "filters=2000000000");
        let cfg = Config::parse(&huge, "huge.cfg").unwrap();
        if available_bytes().is_some() {
            let e = check_parameters(&cfg).unwrap_err();
            assert!(e.to_string().starts_with("huge.cfg: 56000000000 parameters"), "{e}");
        }
    }

    #[test]
    fn a_pass_far_beyond_the_machine_is_refused() {
        let cfg = Config::parse(CFG, "t.cfg").unwrap();
        check_fits(&cfg, 64, 1, Pass::Training).unwrap();
        if available_bytes().is_some() {
            // 8192^2 x 19 floats x 4 bytes x 1024 images x 4 = 20 TB.
            let e = check_fits(&cfg, 8192, 1024, Pass::Training).unwrap_err();
            assert!(e.to_string().contains("needs about"), "{e}");
        }
    }
}

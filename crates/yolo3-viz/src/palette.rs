//! Deterministic colours: one per class or chart series, and a readable text colour for any
//! background.
//!
//! The palette has [`PALETTE_SIZE`] base colours whose hues step by the golden ratio around the
//! colour wheel (so neighbouring indices are far apart in hue), with alternating saturation and
//! brightness so that colours whose hues happen to be close still differ. Index `i` and index
//! `i + PALETTE_SIZE` share a colour. Colours are `[r, g, b]` bytes.

/// Number of distinct base colours before the palette repeats.
pub const PALETTE_SIZE: usize = 20;

/// Golden-ratio conjugate: the hue step between consecutive palette entries.
const HUE_STEP: f64 = 0.618_033_988_749_894_9;
/// Hue of entry 0 (a blue), in turns.
const HUE_START: f64 = 0.58;

/// The colour for class or series `index`.
#[must_use]
pub fn color(index: usize) -> [u8; 3] {
    let i = index % PALETTE_SIZE;
    let hue = (HUE_START + i as f64 * HUE_STEP).fract();
    let (saturation, value) = match i % 3 {
        0 => (0.80, 0.90),
        1 => (0.90, 0.75),
        _ => (0.65, 0.97),
    };
    hsv_to_rgb(hue, saturation, value)
}

/// Black or white, whichever reads better on `background` (by its Rec. 601 luma).
#[must_use]
pub fn text_color_on(background: [u8; 3]) -> [u8; 3] {
    let [r, g, b] = background.map(f64::from);
    let luma = 0.299 * r + 0.587 * g + 0.114 * b;
    if luma > 150.0 {
        [0, 0, 0]
    } else {
        [255, 255, 255]
    }
}

/// Converts hue (turns, `[0, 1)`), saturation and value (`[0, 1]`) to RGB bytes.
#[must_use]
pub fn hsv_to_rgb(hue: f64, saturation: f64, value: f64) -> [u8; 3] {
    let h = hue.rem_euclid(1.0) * 6.0;
    let s = saturation.clamp(0.0, 1.0);
    let v = value.clamp(0.0, 1.0);
    let sector = h.floor();
    let f = h - sector;
    let p = v * (1.0 - s);
    let q = v * (1.0 - s * f);
    let t = v * (1.0 - s * (1.0 - f));
    let (r, g, b) = match sector as u32 {
        0 => (v, t, p),
        1 => (q, v, p),
        2 => (p, v, t),
        3 => (p, q, v),
        4 => (t, p, v),
        _ => (v, p, q),
    };
    [r, g, b].map(|c| (c * 255.0).round() as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn palette_is_deterministic_distinct_and_cyclic() {
        let colors: Vec<[u8; 3]> = (0..PALETTE_SIZE).map(color).collect();
        for (i, a) in colors.iter().enumerate() {
            for b in &colors[i + 1..] {
                let distance: i32 =
                    a.iter().zip(b).map(|(&x, &y)| (i32::from(x) - i32::from(y)).abs()).sum();
                assert!(distance > 40, "{a:?} and {b:?} are too close");
            }
        }
        assert_eq!(color(3), color(3 + PALETTE_SIZE));
        assert_eq!(color(7), colors[7]);
    }

    #[test]
    fn hsv_primaries() {
        assert_eq!(hsv_to_rgb(0.0, 1.0, 1.0), [255, 0, 0]);
        assert_eq!(hsv_to_rgb(1.0 / 3.0, 1.0, 1.0), [0, 255, 0]);
        assert_eq!(hsv_to_rgb(2.0 / 3.0, 1.0, 1.0), [0, 0, 255]);
        assert_eq!(hsv_to_rgb(0.5, 0.0, 0.5), [128, 128, 128]);
    }

    #[test]
    fn text_contrasts_with_background() {
        assert_eq!(text_color_on([255, 255, 0]), [0, 0, 0]);
        assert_eq!(text_color_on([0, 0, 128]), [255, 255, 255]);
    }
}

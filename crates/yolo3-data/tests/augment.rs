//! Augmentation keeps boxes consistent with the image: a solid coloured rectangle on a grey
//! background is augmented with many seeds, and the transformed box must match the bounding
//! box of the coloured pixels in the output.

use image::{Rgb, RgbImage};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use yolo3_core::{BoxXyxy, LabeledBox};
use yolo3_data::{
    letterbox, mosaic, random_data, AugmentOptions, InputSize, Letterbox, MosaicOptions,
};

/// An image of `w x h` grey 128 with a red rectangle; its box in pixels.
fn fixture(w: u32, h: u32, b: [u32; 4]) -> (RgbImage, LabeledBox) {
    let img = RgbImage::from_fn(w, h, |x, y| {
        if x >= b[0] && x < b[2] && y >= b[1] && y < b[3] {
            Rgb([230, 30, 30])
        } else {
            Rgb([128, 128, 128])
        }
    });
    let lb = LabeledBox {
        bbox: BoxXyxy::new(b[0] as f32, b[1] as f32, b[2] as f32, b[3] as f32),
        class: 0,
    };
    (img, lb)
}

/// Chroma (max - min over RGB) of every pixel of a CHW image.
fn chroma(chw: &[f32], input: InputSize) -> Vec<f32> {
    let plane = (input.width * input.height) as usize;
    (0..plane)
        .map(|i| {
            let (r, g, b) = (chw[i], chw[plane + i], chw[2 * plane + i]);
            r.max(g).max(b) - r.min(g).min(b)
        })
        .collect()
}

/// Bounding box (continuous) of the pixels whose chroma exceeds half the maximum, or `None`.
fn coloured_bbox(chw: &[f32], input: InputSize) -> Option<BoxXyxy> {
    let c = chroma(chw, input);
    let max = c.iter().copied().fold(0.0, f32::max);
    if max < 0.05 {
        return None;
    }
    let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
    for y in 0..input.height {
        for x in 0..input.width {
            if c[(y * input.width + x) as usize] > 0.5 * max {
                (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x + 1), y1.max(y + 1));
            }
        }
    }
    (x0 != u32::MAX).then(|| BoxXyxy::new(x0 as f32, y0 as f32, x1 as f32, y1 as f32))
}

fn close(a: &BoxXyxy, b: &BoxXyxy, tol: f32) -> bool {
    (a.x_min - b.x_min).abs() <= tol
        && (a.y_min - b.y_min).abs() <= tol
        && (a.x_max - b.x_max).abs() <= tol
        && (a.y_max - b.y_max).abs() <= tol
}

fn check_random_data(options: &AugmentOptions, seeds: u64) {
    let input = InputSize { width: 96, height: 80 };
    let (img, lb) = fixture(120, 90, [30, 20, 70, 60]);
    let mut kept = 0;
    for seed in 0..seeds {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let out = random_data(&img, &[lb], input, options, &mut rng);
        assert_eq!(out.image.len(), 3 * 96 * 80);
        assert!(
            out.image.iter().all(|v| (0.0..=1.0).contains(v)),
            "seed {seed}: values outside [0, 1]"
        );
        let seen = coloured_bbox(&out.image, input);
        match (out.boxes.first(), seen) {
            (Some(b), Some(s)) => {
                assert!(
                    close(&b.bbox, &s, 2.0),
                    "seed {seed}: box {:?} but coloured pixels span {s:?}",
                    b.bbox
                );
                kept += 1;
            }
            (Some(b), None) => panic!("seed {seed}: box {:?} but no coloured pixels", b.bbox),
            (None, Some(s)) => {
                // Dropped boxes are at most ~1 px thin slivers (or pushed off the canvas).
                assert!(
                    s.width() <= 3.0 || s.height() <= 3.0,
                    "seed {seed}: box dropped but pixels span {s:?}"
                );
            }
            (None, None) => {}
        }
    }
    assert!(kept > seeds * 3 / 4, "only {kept} of {seeds} seeds kept the box");
}

#[test]
fn geometric_augmentation_keeps_boxes_on_the_shape() {
    let options =
        AugmentOptions { hue: 0.0, saturation: 1.0, value: 1.0, ..AugmentOptions::default() };
    check_random_data(&options, 200);
}

#[test]
fn full_keras_augmentation_keeps_boxes_on_the_shape() {
    // Hue, saturation and value change the colour but never turn grey into colour (s = 0 stays
    // 0) or the red rectangle into grey, so the chroma mask still finds the shape.
    check_random_data(&AugmentOptions::default(), 200);
}

#[test]
fn max_boxes_and_tiny_boxes() {
    let (img, _) = fixture(64, 64, [0, 0, 1, 1]);
    let boxes: Vec<LabeledBox> = (0..30)
        .map(|i| LabeledBox {
            bbox: BoxXyxy::new(i as f32, 10.0, i as f32 + 20.0, 40.0),
            class: i % 3,
        })
        .collect();
    let options = AugmentOptions {
        max_boxes: 5,
        scale_min: 1.0,
        scale_max: 1.0,
        jitter: 0.0,
        ..Default::default()
    };
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let out = random_data(&img, &boxes, InputSize::square(64), &options, &mut rng);
    assert_eq!(out.boxes.len(), 5);
    let tiny = [LabeledBox { bbox: BoxXyxy::new(10.0, 10.0, 10.5, 40.0), class: 0 }];
    let out = random_data(&img, &tiny, InputSize::square(64), &options, &mut rng);
    assert!(out.boxes.is_empty());
}

#[test]
fn mosaic_boxes_cover_the_coloured_pixels() {
    let input = InputSize::square(96);
    let (a, la) = fixture(100, 80, [10, 10, 60, 50]);
    let (b, lb) = fixture(60, 90, [20, 30, 50, 80]);
    let options = AugmentOptions::default();
    for seed in 0..100 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (ba, bb) = ([la], [lb]);
        let tiles = [(&a, &ba[..]), (&b, &bb[..]), (&a, &ba[..]), (&b, &bb[..])];
        let out = mosaic(tiles, input, &MosaicOptions::default(), &options, &mut rng);
        let c = chroma(&out.image, input);
        let max = c.iter().copied().fold(0.0, f32::max);
        // Every strongly coloured pixel lies in some box (2 px slack for resampling) or in a
        // thin strip (a box clipped to width or height <= 1 is dropped, like keras does), and
        // every box is mostly coloured.
        let on = |x: i64, y: i64| {
            (0..96).contains(&x) && (0..96).contains(&y) && c[(y * 96 + x) as usize] > 0.5 * max
        };
        let run = |x: i64, y: i64, dx: i64, dy: i64| {
            let (mut n, mut k) = (1, 1);
            while on(x + k * dx, y + k * dy) {
                n += 1;
                k += 1;
            }
            k = 1;
            while on(x - k * dx, y - k * dy) {
                n += 1;
                k += 1;
            }
            n
        };
        for y in 0..96i64 {
            for x in 0..96i64 {
                if on(x, y) {
                    let (fx, fy) = (x as f32 + 0.5, y as f32 + 0.5);
                    let inside = out.boxes.iter().any(|b| {
                        fx > b.bbox.x_min - 2.0
                            && fx < b.bbox.x_max + 2.0
                            && fy > b.bbox.y_min - 2.0
                            && fy < b.bbox.y_max + 2.0
                    });
                    let sliver = run(x, y, 1, 0) <= 3 || run(x, y, 0, 1) <= 3;
                    assert!(
                        inside || sliver,
                        "seed {seed}: coloured pixel ({x}, {y}) outside every box {:?}",
                        out.boxes
                    );
                }
            }
        }
        for b in &out.boxes {
            let (x0, y0, x1, y1) = (
                b.bbox.x_min.ceil() as u32,
                b.bbox.y_min.ceil() as u32,
                b.bbox.x_max as u32,
                b.bbox.y_max as u32,
            );
            let (mut on, mut all) = (0, 0);
            for y in y0..y1 {
                for x in x0..x1 {
                    all += 1;
                    on += u32::from(c[(y * 96 + x) as usize] > 0.5 * max);
                }
            }
            assert!(
                all == 0 || on * 10 >= all * 6,
                "seed {seed}: box {:?} only {on}/{all} coloured",
                b.bbox
            );
        }
    }
}

#[test]
fn letterbox_round_trip_and_placement() {
    for (iw, ih, w, h) in
        [(120, 90, 96, 80), (50, 200, 64, 64), (640, 480, 416, 416), (33, 17, 320, 320)]
    {
        let x1 = iw * 3 / 4;
        let y1 = ih * 3 / 4;
        let (img, lb) = fixture(iw, ih, [iw / 4, ih / 4, x1, y1]);
        let input = InputSize { width: w, height: h };
        let (out, boxes, t) = letterbox(&img, &[lb], input);
        assert_eq!(t, Letterbox::new(yolo3_data::ImageSize { width: iw, height: ih }, input));
        let back = t.inverse(boxes[0].bbox);
        assert!(close(&back, &lb.bbox, 1e-3), "{back:?} vs {:?}", lb.bbox);
        let chw = yolo3_data::to_chw(&out);
        let seen = coloured_bbox(&chw, input).unwrap();
        assert!(close(&boxes[0].bbox, &seen, 2.0), "{:?} vs {seen:?}", boxes[0].bbox);
    }
}

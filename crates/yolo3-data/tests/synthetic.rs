//! The synthetic generator is deterministic, its boxes land on the shapes, and its output reads
//! back through the keras reader.

use yolo3_data::synthetic::{render, Split, CLASS_COLOURS};
use yolo3_data::{generate, read_train_txt, ReadOptions, SyntheticOptions};

fn small() -> SyntheticOptions {
    SyntheticOptions {
        images_train: 24,
        images_val: 8,
        size: 96,
        seed: 7,
        ..SyntheticOptions::default()
    }
}

#[test]
fn generation_is_deterministic_and_readable() {
    let (d1, d2, d3) =
        (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = generate(d1.path(), &small()).unwrap();
    let b = generate(d2.path(), &small()).unwrap();
    let c = generate(d3.path(), &SyntheticOptions { seed: 8, ..small() }).unwrap();
    let read = |p: &std::path::Path| std::fs::read(p).unwrap();
    assert_eq!(read(&a.train), read(&b.train));
    assert_eq!(read(&a.val), read(&b.val));
    assert_ne!(read(&a.train), read(&c.train));
    for i in [0, 5, 23] {
        let rel = format!("images/train/{i:06}.png");
        assert_eq!(read(&d1.path().join(&rel)), read(&d2.path().join(&rel)));
    }
    let train = read_train_txt(&a.train, &a.classes, &ReadOptions::default()).unwrap();
    let val = read_train_txt(&a.val, &a.classes, &ReadOptions::default()).unwrap();
    assert_eq!(train.samples.len(), 24);
    assert_eq!(val.samples.len(), 8);
    assert_eq!(train.class_names, ["circle", "square", "triangle", "cross"]);
    assert!(train.unreadable.is_empty());
    let summary = train.summary();
    assert!(summary.per_class.iter().all(|(_, n)| *n > 0), "{summary}");
    assert!(train.samples.iter().all(|s| (1..=4).contains(&s.boxes.len())));
}

#[test]
fn boxes_land_on_the_shapes() {
    let options = SyntheticOptions { size: 128, ..SyntheticOptions::default() };
    let mut checked = 0;
    for i in 0..200 {
        let (image, boxes) = render(&options, Split::Train, i);
        for b in &boxes {
            let bb = b.bbox;
            assert!(bb.x_min >= 0.0 && bb.y_min >= 0.0 && bb.x_max <= 128.0 && bb.y_max <= 128.0);
            let side = (bb.width() * bb.height()).sqrt();
            assert!(side >= 0.12 * 128.0 - 1.0, "box {bb:?} too small");
            // The pixel at the box centre has the class colour (nearest of the four).
            let (cx, cy) = (
                f32::midpoint(bb.x_min, bb.x_max) as u32,
                f32::midpoint(bb.y_min, bb.y_max) as u32,
            );
            let p = image.get_pixel(cx, cy).0;
            let dist = |c: [u8; 3]| {
                (0..3).map(|k| (f32::from(p[k]) - f32::from(c[k])).powi(2)).sum::<f32>().sqrt()
            };
            let nearest = (0..4)
                .min_by(|&a, &b| dist(CLASS_COLOURS[a]).total_cmp(&dist(CLASS_COLOURS[b])))
                .unwrap();
            assert_eq!(nearest, b.class, "image {i}: centre of {bb:?} is {p:?}");
            assert!(
                dist(CLASS_COLOURS[b.class]) < 60.0,
                "image {i}: centre colour {p:?} far from class {}",
                b.class
            );
            checked += 1;
        }
    }
    assert!(checked > 300);
}

#[test]
fn boxes_are_tight() {
    // A single object of each class on its own: the pixels differing from the background lie
    // inside the box and reach every side of it within a pixel.
    let options = SyntheticOptions {
        size: 128,
        min_objects: 1,
        max_objects: 1,
        ..SyntheticOptions::default()
    };
    for i in 0..60 {
        let (image, boxes) = render(&options, Split::Val, i);
        let b = boxes[0];
        let col = CLASS_COLOURS[b.class];
        let is_obj = |x: u32, y: u32| {
            let p = image.get_pixel(x, y).0;
            (0..3).map(|k| (f32::from(p[k]) - f32::from(col[k])).powi(2)).sum::<f32>().sqrt() < 70.0
        };
        let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
        for y in b.bbox.y_min as u32..b.bbox.y_max as u32 {
            for x in b.bbox.x_min as u32..b.bbox.x_max as u32 {
                if is_obj(x, y) {
                    (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x + 1), y1.max(y + 1));
                }
            }
        }
        // A triangle's apex is a sub-pixel point whose faint antialiased pixels do not count.
        let tol = if b.class == 2 { 3.0 } else { 1.5 };
        assert!(
            (x0 as f32 - b.bbox.x_min).abs() <= tol
                && (y0 as f32 - b.bbox.y_min).abs() <= tol
                && (x1 as f32 - b.bbox.x_max).abs() <= tol
                && (y1 as f32 - b.bbox.y_max).abs() <= tol,
            "image {i} class {}: box {:?}, pixels ({x0},{y0})-({x1},{y1})",
            b.class,
            b.bbox
        );
    }
}

/// Not a timed test: run with `--ignored --nocapture` to see how long the default set takes.
#[test]
#[ignore = "measurement"]
fn default_generation_time() {
    let dir = tempfile::tempdir().unwrap();
    let start = std::time::Instant::now();
    generate(dir.path(), &SyntheticOptions::default()).unwrap();
    eprintln!("default synthetic set (1000 + 200 images): {:.2?}", start.elapsed());
}

//! Real-photo inputs, generated here: EXIF-rotated JPEGs, every odd colour type, and images
//! too large to decode. The files are written by independent encoders (`jpeg-encoder`, `png`)
//! and the expected pixels are derived from the EXIF specification, not from the reader.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use image::Rgb;
use yolo3_data::{image_size, load_rgb, read_train_txt_with_classes, DataError, ReadOptions};

const W: u32 = 48;
const H: u32 = 32;

/// The picture as the user sees it: black, with a red rectangle in x 16..40, y 8..16 (placed
/// off both centre lines, so that each flip and turn moves it somewhere else).
fn in_box(x: u32, y: u32) -> bool {
    (16..40).contains(&x) && (8..16).contains(&y)
}

/// Where the stored pixel `(i, j)` of a file tagged `orientation` appears on screen, per the
/// EXIF 2.3 definition of tag 0x0112 (which side row 0 and column 0 of the stored image are
/// shown on).
fn displayed_at(orientation: u16, i: u32, j: u32) -> (u32, u32) {
    match orientation {
        1 => (i, j),
        2 => (W - 1 - i, j),
        3 => (W - 1 - i, H - 1 - j),
        4 => (i, H - 1 - j),
        5 => (j, i),
        6 => (W - 1 - j, i),
        7 => (W - 1 - j, H - 1 - i),
        8 => (j, H - 1 - i),
        _ => unreachable!(),
    }
}

/// An EXIF APP1 payload holding only the orientation tag (big-endian TIFF).
fn exif_orientation(orientation: u16) -> Vec<u8> {
    let mut v = b"Exif\0\0MM\0\x2a\0\0\0\x08".to_vec();
    v.extend([0, 1]); // one IFD entry
    v.extend([0x01, 0x12, 0, 3, 0, 0, 0, 1]); // tag 0x0112, SHORT, count 1
    v.extend(orientation.to_be_bytes());
    v.extend([0, 0, 0, 0, 0, 0]); // value padding, no next IFD
    v
}

fn write_jpeg(
    path: &Path,
    data: &[u8],
    w: u32,
    h: u32,
    color: jpeg_encoder::ColorType,
    app1: Option<Vec<u8>>,
) {
    let mut encoder = jpeg_encoder::Encoder::new_file(path, 100).unwrap();
    encoder.set_sampling_factor(jpeg_encoder::SamplingFactor::R_4_4_4);
    if let Some(segment) = app1 {
        encoder.add_app_segment(1, segment).unwrap();
    }
    encoder.encode(data, w as u16, h as u16, color).unwrap();
}

fn is_red(p: Rgb<u8>) -> bool {
    p[0] > 128 && p[1] < 100 && p[2] < 100
}

#[test]
fn exif_orientations_put_the_box_on_its_pixels() {
    let dir = tempfile::tempdir().unwrap();
    let mut lines = String::new();
    let mut files = Vec::new();
    for orientation in 1..=8u16 {
        let (sw, sh) = if orientation >= 5 { (H, W) } else { (W, H) };
        let mut stored = vec![0u8; (sw * sh * 3) as usize];
        for i in 0..sw {
            for j in 0..sh {
                let (x, y) = displayed_at(orientation, i, j);
                if in_box(x, y) {
                    stored[((j * sw + i) * 3) as usize] = 255;
                }
            }
        }
        let path = dir.path().join(format!("o{orientation}.jpg"));
        let app1 = Some(exif_orientation(orientation));
        write_jpeg(&path, &stored, sw, sh, jpeg_encoder::ColorType::Rgb, app1);
        // The box as annotated on the displayed picture; for 5-8 it lies outside the stored
        // 32x48 pixels, so a reader that ignored the tag would refuse it.
        let _ = writeln!(lines, "{} 16,8,40,16,0", path.display());
        files.push(path);
    }
    let annotations = dir.path().join("train.txt");
    std::fs::write(&annotations, lines).unwrap();
    let dataset =
        read_train_txt_with_classes(&annotations, vec!["red".into()], &ReadOptions::default())
            .unwrap();
    assert!(dataset.unreadable.is_empty(), "{:?}", dataset.unreadable);
    assert_eq!(dataset.samples.len(), 8);
    for (sample, path) in dataset.samples.iter().zip(&files) {
        let size = image_size(path).unwrap();
        assert_eq!((size.width, size.height), (W, H), "{}", path.display());
        let image = load_rgb(path).unwrap();
        assert_eq!(image.dimensions(), (W, H), "{}", path.display());
        let b = sample.boxes[0].bbox;
        for (x, y, p) in image.enumerate_pixels() {
            let inside = (x as f32) >= b.x_min
                && (x as f32) < b.x_max
                && (y as f32) >= b.y_min
                && (y as f32) < b.y_max;
            assert_eq!(is_red(*p), inside, "{}: pixel ({x}, {y}) is {p:?}", path.display());
        }
    }
}

fn png(
    path: &Path,
    w: u32,
    h: u32,
    color: png::ColorType,
    depth: png::BitDepth,
    data: &[u8],
    palette: Option<Vec<u8>>,
) {
    let file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut encoder = png::Encoder::new(file, w, h);
    encoder.set_color(color);
    encoder.set_depth(depth);
    if let Some(p) = palette {
        encoder.set_palette(p);
    }
    encoder.write_header().unwrap().write_image_data(data).unwrap();
}

/// Each colour type as a 2x1 image and the two RGB pixels it must read as.
#[test]
fn every_colour_type_reads_as_rgb() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name);
    let mut cases: Vec<(PathBuf, [[u8; 3]; 2], u8)> = Vec::new();

    png(&p("grey.png"), 2, 1, png::ColorType::Grayscale, png::BitDepth::Eight, &[0, 200], None);
    cases.push((p("grey.png"), [[0; 3], [200; 3]], 0));
    let la = [10, 255, 250, 0];
    png(
        &p("grey-alpha.png"),
        2,
        1,
        png::ColorType::GrayscaleAlpha,
        png::BitDepth::Eight,
        &la,
        None,
    );
    cases.push((p("grey-alpha.png"), [[10; 3], [250; 3]], 0));
    // Alpha is dropped, not composited: a transparent pixel keeps its colour (OpenCV's imread).
    let rgba = [255, 0, 0, 255, 0, 0, 255, 0];
    png(&p("rgba.png"), 2, 1, png::ColorType::Rgba, png::BitDepth::Eight, &rgba, None);
    cases.push((p("rgba.png"), [[255, 0, 0], [0, 0, 255]], 0));
    let palette = vec![0, 128, 0, 250, 200, 10];
    png(
        &p("palette.png"),
        2,
        1,
        png::ColorType::Indexed,
        png::BitDepth::Eight,
        &[1, 0],
        Some(palette),
    );
    cases.push((p("palette.png"), [[250, 200, 10], [0, 128, 0]], 0));
    // 16-bit samples (big-endian): 0xFFFF, 0x8080 and 0x0101 are 255, 128 and 1 in 8 bits.
    let rgb16 = [0xFF, 0xFF, 0x80, 0x80, 0x01, 0x01, 0, 0, 0, 0, 0xFF, 0xFF];
    png(&p("rgb16.png"), 2, 1, png::ColorType::Rgb, png::BitDepth::Sixteen, &rgb16, None);
    cases.push((p("rgb16.png"), [[255, 128, 1], [0, 0, 255]], 0));
    png(
        &p("grey16.png"),
        2,
        1,
        png::ColorType::Grayscale,
        png::BitDepth::Sixteen,
        &[0x40, 0x40, 0, 0],
        None,
    );
    cases.push((p("grey16.png"), [[64; 3], [0; 3]], 0));

    // JPEGs are lossy: compared within a tolerance.
    write_jpeg(&p("grey.jpg"), &[30, 220], 2, 1, jpeg_encoder::ColorType::Luma, None);
    cases.push((p("grey.jpg"), [[30; 3], [220; 3]], 12));
    // CMYK (Adobe's inverted storage, as Photoshop writes it) and YCCK: cyan and 50% black.
    let cmyk = [255, 0, 0, 0, 0, 0, 0, 128];
    for (name, color) in [
        ("cmyk.jpg", jpeg_encoder::ColorType::Cmyk),
        ("ycck.jpg", jpeg_encoder::ColorType::CmykAsYcck),
    ] {
        write_jpeg(&p(name), &cmyk, 2, 1, color, None);
        cases.push((p(name), [[0, 255, 255], [127, 127, 127]], 24));
    }

    for (path, want, tolerance) in cases {
        let image = load_rgb(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(image.dimensions(), (2, 1), "{}", path.display());
        for (x, want) in want.iter().enumerate() {
            let got = image.get_pixel(x as u32, 0).0;
            let close = got.iter().zip(want).all(|(&g, &w)| g.abs_diff(w) <= tolerance);
            assert!(close, "{}: pixel {x} is {got:?}, want {want:?}", path.display());
        }
    }
}

#[test]
fn an_image_above_the_pixel_limit_is_refused_from_its_header() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.png");
    // A 1x1 PNG whose header says 20000 x 10000 (200 megapixels): nothing to decode.
    png(&path, 1, 1, png::ColorType::Rgb, png::BitDepth::Eight, &[0, 0, 0], None);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[16..20].copy_from_slice(&20_000u32.to_be_bytes());
    bytes[20..24].copy_from_slice(&10_000u32.to_be_bytes());
    let crc = crc32fast::hash(&bytes[12..29]);
    bytes[29..33].copy_from_slice(&crc.to_be_bytes());
    std::fs::write(&path, bytes).unwrap();
    for e in [load_rgb(&path).unwrap_err(), image_size(&path).unwrap_err()] {
        assert!(matches!(e, DataError::ImageTooLarge { width: 20_000, height: 10_000, .. }), "{e}");
        let text = e.to_string();
        assert!(text.contains("huge.png") && text.contains("20000x10000"), "{text}");
    }
    // In a dataset it is listed as unreadable with that reason, and the rest trains.
    let annotations = dir.path().join("train.txt");
    std::fs::write(&annotations, format!("{} 1,1,5,5,0\n", path.display())).unwrap();
    let dataset =
        read_train_txt_with_classes(&annotations, vec!["a".into()], &ReadOptions::default())
            .unwrap();
    assert_eq!(dataset.unreadable.len(), 1);
    assert!(dataset.unreadable[0].reason.contains("megapixels"), "{:?}", dataset.unreadable);
}

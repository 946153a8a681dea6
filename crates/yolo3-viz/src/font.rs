//! An embedded 5x8 bitmap font, so that pictures can carry text without a font file or a
//! font-rendering crate.
//!
//! Conventions:
//! * Each glyph is [`GLYPH_WIDTH`] x [`GLYPH_HEIGHT`] pixels: rows 0..7 hold capitals and digits
//!   (cap height 7), row 7 holds descenders (`g j p q y , _`). A row is a byte whose bit 4 is the
//!   leftmost pixel.
//! * Characters advance by [`ADVANCE`] pixels (one column of spacing); the spacing after the
//!   last character is not part of the measured width.
//! * Everything scales by an integer factor: a pixel of the glyph becomes a `scale x scale`
//!   square. A scale of 0 is treated as 1.
//! * Positions are the top-left corner of the text in image pixels (`x` right, `y` down) and may
//!   lie partly or wholly outside the image: pixels outside are clipped.
//! * Printable ASCII (32..=126) has glyphs; any other character draws as a hollow box.

use image::{Rgb, RgbImage};

/// Glyph width in font pixels.
pub const GLYPH_WIDTH: u32 = 5;
/// Glyph height in font pixels, including the descender row.
pub const GLYPH_HEIGHT: u32 = 8;
/// Horizontal distance between the starts of consecutive characters, in font pixels.
pub const ADVANCE: u32 = GLYPH_WIDTH + 1;

/// First character with a glyph (space).
const FIRST: u32 = 32;
/// Last character with a glyph (tilde).
const LAST: u32 = 126;

/// The glyph drawn for characters outside printable ASCII: a hollow box.
const UNKNOWN: [u8; 8] = [0b11111, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b11111, 0];

/// Glyphs for ASCII 32..=126 in code order.
#[rustfmt::skip]
const GLYPHS: [[u8; 8]; 95] = [
    [0, 0, 0, 0, 0, 0, 0, 0],                                                  // ' '
    [0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0, 0b00100, 0],              // '!'
    [0b01010, 0b01010, 0b01010, 0, 0, 0, 0, 0],                                // '"'
    [0b01010, 0b01010, 0b11111, 0b01010, 0b11111, 0b01010, 0b01010, 0],        // '#'
    [0b00100, 0b01111, 0b10100, 0b01110, 0b00101, 0b11110, 0b00100, 0],        // '$'
    [0b11000, 0b11001, 0b00010, 0b00100, 0b01000, 0b10011, 0b00011, 0],        // '%'
    [0b01100, 0b10010, 0b10100, 0b01000, 0b10101, 0b10010, 0b01101, 0],        // '&'
    [0b00100, 0b00100, 0b01000, 0, 0, 0, 0, 0],                                // '\''
    [0b00010, 0b00100, 0b01000, 0b01000, 0b01000, 0b00100, 0b00010, 0],        // '('
    [0b01000, 0b00100, 0b00010, 0b00010, 0b00010, 0b00100, 0b01000, 0],        // ')'
    [0, 0b00100, 0b10101, 0b01110, 0b10101, 0b00100, 0, 0],                    // '*'
    [0, 0b00100, 0b00100, 0b11111, 0b00100, 0b00100, 0, 0],                    // '+'
    [0, 0, 0, 0, 0, 0b01100, 0b00100, 0b01000],                                // ','
    [0, 0, 0, 0b11111, 0, 0, 0, 0],                                            // '-'
    [0, 0, 0, 0, 0, 0b01100, 0b01100, 0],                                      // '.'
    [0, 0b00001, 0b00010, 0b00100, 0b01000, 0b10000, 0, 0],                    // '/'
    [0b01110, 0b10001, 0b10011, 0b10101, 0b11001, 0b10001, 0b01110, 0],        // '0'
    [0b00100, 0b01100, 0b00100, 0b00100, 0b00100, 0b00100, 0b01110, 0],        // '1'
    [0b01110, 0b10001, 0b00001, 0b00010, 0b00100, 0b01000, 0b11111, 0],        // '2'
    [0b11111, 0b00010, 0b00100, 0b00010, 0b00001, 0b10001, 0b01110, 0],        // '3'
    [0b00010, 0b00110, 0b01010, 0b10010, 0b11111, 0b00010, 0b00010, 0],        // '4'
    [0b11111, 0b10000, 0b11110, 0b00001, 0b00001, 0b10001, 0b01110, 0],        // '5'
    [0b00110, 0b01000, 0b10000, 0b11110, 0b10001, 0b10001, 0b01110, 0],        // '6'
    [0b11111, 0b00001, 0b00010, 0b00100, 0b01000, 0b01000, 0b01000, 0],        // '7'
    [0b01110, 0b10001, 0b10001, 0b01110, 0b10001, 0b10001, 0b01110, 0],        // '8'
    [0b01110, 0b10001, 0b10001, 0b01111, 0b00001, 0b00010, 0b01100, 0],        // '9'
    [0, 0b01100, 0b01100, 0, 0b01100, 0b01100, 0, 0],                          // ':'
    [0, 0b01100, 0b01100, 0, 0b01100, 0b00100, 0b01000, 0],                    // ';'
    [0b00010, 0b00100, 0b01000, 0b10000, 0b01000, 0b00100, 0b00010, 0],        // '<'
    [0, 0, 0b11111, 0, 0b11111, 0, 0, 0],                                      // '='
    [0b01000, 0b00100, 0b00010, 0b00001, 0b00010, 0b00100, 0b01000, 0],        // '>'
    [0b01110, 0b10001, 0b00001, 0b00010, 0b00100, 0, 0b00100, 0],              // '?'
    [0b01110, 0b10001, 0b10111, 0b10101, 0b10111, 0b10000, 0b01110, 0],        // '@'
    [0b01110, 0b10001, 0b10001, 0b11111, 0b10001, 0b10001, 0b10001, 0],        // 'A'
    [0b11110, 0b10001, 0b10001, 0b11110, 0b10001, 0b10001, 0b11110, 0],        // 'B'
    [0b01110, 0b10001, 0b10000, 0b10000, 0b10000, 0b10001, 0b01110, 0],        // 'C'
    [0b11100, 0b10010, 0b10001, 0b10001, 0b10001, 0b10010, 0b11100, 0],        // 'D'
    [0b11111, 0b10000, 0b10000, 0b11110, 0b10000, 0b10000, 0b11111, 0],        // 'E'
    [0b11111, 0b10000, 0b10000, 0b11110, 0b10000, 0b10000, 0b10000, 0],        // 'F'
    [0b01110, 0b10001, 0b10000, 0b10111, 0b10001, 0b10001, 0b01111, 0],        // 'G'
    [0b10001, 0b10001, 0b10001, 0b11111, 0b10001, 0b10001, 0b10001, 0],        // 'H'
    [0b01110, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b01110, 0],        // 'I'
    [0b00111, 0b00010, 0b00010, 0b00010, 0b00010, 0b10010, 0b01100, 0],        // 'J'
    [0b10001, 0b10010, 0b10100, 0b11000, 0b10100, 0b10010, 0b10001, 0],        // 'K'
    [0b10000, 0b10000, 0b10000, 0b10000, 0b10000, 0b10000, 0b11111, 0],        // 'L'
    [0b10001, 0b11011, 0b10101, 0b10101, 0b10001, 0b10001, 0b10001, 0],        // 'M'
    [0b10001, 0b10001, 0b11001, 0b10101, 0b10011, 0b10001, 0b10001, 0],        // 'N'
    [0b01110, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01110, 0],        // 'O'
    [0b11110, 0b10001, 0b10001, 0b11110, 0b10000, 0b10000, 0b10000, 0],        // 'P'
    [0b01110, 0b10001, 0b10001, 0b10001, 0b10101, 0b10010, 0b01101, 0],        // 'Q'
    [0b11110, 0b10001, 0b10001, 0b11110, 0b10100, 0b10010, 0b10001, 0],        // 'R'
    [0b01111, 0b10000, 0b10000, 0b01110, 0b00001, 0b00001, 0b11110, 0],        // 'S'
    [0b11111, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0],        // 'T'
    [0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01110, 0],        // 'U'
    [0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01010, 0b00100, 0],        // 'V'
    [0b10001, 0b10001, 0b10001, 0b10101, 0b10101, 0b10101, 0b01010, 0],        // 'W'
    [0b10001, 0b10001, 0b01010, 0b00100, 0b01010, 0b10001, 0b10001, 0],        // 'X'
    [0b10001, 0b10001, 0b01010, 0b00100, 0b00100, 0b00100, 0b00100, 0],        // 'Y'
    [0b11111, 0b00001, 0b00010, 0b00100, 0b01000, 0b10000, 0b11111, 0],        // 'Z'
    [0b01110, 0b01000, 0b01000, 0b01000, 0b01000, 0b01000, 0b01110, 0],        // '['
    [0, 0b10000, 0b01000, 0b00100, 0b00010, 0b00001, 0, 0],                    // '\\'
    [0b01110, 0b00010, 0b00010, 0b00010, 0b00010, 0b00010, 0b01110, 0],        // ']'
    [0b00100, 0b01010, 0b10001, 0, 0, 0, 0, 0],                                // '^'
    [0, 0, 0, 0, 0, 0, 0, 0b11111],                                            // '_'
    [0b01000, 0b00100, 0b00010, 0, 0, 0, 0, 0],                                // '`'
    [0, 0, 0b01110, 0b00001, 0b01111, 0b10001, 0b01111, 0],                    // 'a'
    [0b10000, 0b10000, 0b10110, 0b11001, 0b10001, 0b10001, 0b11110, 0],        // 'b'
    [0, 0, 0b01110, 0b10000, 0b10000, 0b10001, 0b01110, 0],                    // 'c'
    [0b00001, 0b00001, 0b01101, 0b10011, 0b10001, 0b10001, 0b01111, 0],        // 'd'
    [0, 0, 0b01110, 0b10001, 0b11111, 0b10000, 0b01110, 0],                    // 'e'
    [0b00110, 0b01001, 0b01000, 0b11100, 0b01000, 0b01000, 0b01000, 0],        // 'f'
    [0, 0, 0b01111, 0b10001, 0b10001, 0b01111, 0b00001, 0b01110],              // 'g'
    [0b10000, 0b10000, 0b10110, 0b11001, 0b10001, 0b10001, 0b10001, 0],        // 'h'
    [0b00100, 0, 0b01100, 0b00100, 0b00100, 0b00100, 0b01110, 0],              // 'i'
    [0b00010, 0, 0b00110, 0b00010, 0b00010, 0b00010, 0b10010, 0b01100],        // 'j'
    [0b10000, 0b10000, 0b10010, 0b10100, 0b11000, 0b10100, 0b10010, 0],        // 'k'
    [0b01100, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b01110, 0],        // 'l'
    [0, 0, 0b11010, 0b10101, 0b10101, 0b10001, 0b10001, 0],                    // 'm'
    [0, 0, 0b10110, 0b11001, 0b10001, 0b10001, 0b10001, 0],                    // 'n'
    [0, 0, 0b01110, 0b10001, 0b10001, 0b10001, 0b01110, 0],                    // 'o'
    [0, 0, 0b11110, 0b10001, 0b10001, 0b11110, 0b10000, 0b10000],              // 'p'
    [0, 0, 0b01111, 0b10001, 0b10001, 0b01111, 0b00001, 0b00001],              // 'q'
    [0, 0, 0b10110, 0b11001, 0b10000, 0b10000, 0b10000, 0],                    // 'r'
    [0, 0, 0b01111, 0b10000, 0b01110, 0b00001, 0b11110, 0],                    // 's'
    [0b01000, 0b01000, 0b11100, 0b01000, 0b01000, 0b01001, 0b00110, 0],        // 't'
    [0, 0, 0b10001, 0b10001, 0b10001, 0b10011, 0b01101, 0],                    // 'u'
    [0, 0, 0b10001, 0b10001, 0b10001, 0b01010, 0b00100, 0],                    // 'v'
    [0, 0, 0b10001, 0b10001, 0b10101, 0b10101, 0b01010, 0],                    // 'w'
    [0, 0, 0b10001, 0b01010, 0b00100, 0b01010, 0b10001, 0],                    // 'x'
    [0, 0, 0b10001, 0b10001, 0b10001, 0b01111, 0b00001, 0b01110],              // 'y'
    [0, 0, 0b11111, 0b00010, 0b00100, 0b01000, 0b11111, 0],                    // 'z'
    [0b00010, 0b00100, 0b00100, 0b01000, 0b00100, 0b00100, 0b00010, 0],        // '{'
    [0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0],        // '|'
    [0b01000, 0b00100, 0b00100, 0b00010, 0b00100, 0b00100, 0b01000, 0],        // '}'
    [0, 0, 0b01000, 0b10101, 0b00010, 0, 0, 0],                                // '~'
];

/// The rows of the glyph drawn for `c` (bit 4 of a row is its leftmost pixel).
#[must_use]
pub fn glyph(c: char) -> [u8; 8] {
    let code = c as u32;
    if (FIRST..=LAST).contains(&code) {
        GLYPHS[(code - FIRST) as usize]
    } else {
        UNKNOWN
    }
}

/// Whether `c` has its own glyph (printable ASCII) rather than the unknown-character box.
#[must_use]
pub fn has_glyph(c: char) -> bool {
    (FIRST..=LAST).contains(&(c as u32))
}

/// Width in image pixels of `text` drawn at `scale`: `chars * ADVANCE - 1` font pixels, times
/// the scale; 0 for empty text.
#[must_use]
pub fn text_width(text: &str, scale: u32) -> u32 {
    let n = text.chars().count() as u32;
    if n == 0 {
        0
    } else {
        (n * ADVANCE - 1) * scale.max(1)
    }
}

/// Height in image pixels of a line of text at `scale`, descenders included.
#[must_use]
pub fn text_height(scale: u32) -> u32 {
    GLYPH_HEIGHT * scale.max(1)
}

/// Draws `text` with its top-left corner at `(x, y)`; returns the width drawn (see
/// [`text_width`]). Pixels outside the image are skipped.
pub fn draw_text(
    image: &mut RgbImage,
    x: i32,
    y: i32,
    text: &str,
    scale: u32,
    color: [u8; 3],
) -> u32 {
    let s = scale.max(1) as i32;
    for (i, c) in text.chars().enumerate() {
        let origin_x = x.saturating_add((i as i32).saturating_mul(ADVANCE as i32 * s));
        for (row, bits) in glyph(c).iter().enumerate() {
            for col in 0..GLYPH_WIDTH {
                if bits & (0b10000 >> col) != 0 {
                    let px = origin_x.saturating_add(col as i32 * s);
                    let py = y.saturating_add(row as i32 * s);
                    fill_square(image, px, py, s, color);
                }
            }
        }
    }
    text_width(text, scale)
}

/// Draws `text` rotated a quarter turn counter-clockwise (reading bottom to top), as for a
/// vertical axis label. `(x, y)` is the top-left corner of the rotated text's bounding box,
/// which is [`text_height`] wide and [`text_width`] tall.
pub fn draw_text_vertical(
    image: &mut RgbImage,
    x: i32,
    y: i32,
    text: &str,
    scale: u32,
    color: [u8; 3],
) {
    let s = scale.max(1) as i32;
    let height = text_width(text, scale) as i32;
    for (i, c) in text.chars().enumerate() {
        let along = (i as i32).saturating_mul(ADVANCE as i32 * s);
        for (row, bits) in glyph(c).iter().enumerate() {
            for col in 0..GLYPH_WIDTH {
                if bits & (0b10000 >> col) != 0 {
                    // Unrotated (u, v) = (along + col, row) maps to (v, height - 1 - u).
                    let u = along + col as i32 * s;
                    let px = x.saturating_add(row as i32 * s);
                    let py = y.saturating_add(height - u - s);
                    fill_square(image, px, py, s, color);
                }
            }
        }
    }
}

/// Fills the `size x size` square at `(x, y)`, clipped to the image.
fn fill_square(image: &mut RgbImage, x: i32, y: i32, size: i32, color: [u8; 3]) {
    let (w, h) = (image.width() as i64, image.height() as i64);
    let (x0, y0) = (i64::from(x).max(0), i64::from(y).max(0));
    let (x1, y1) =
        ((i64::from(x) + i64::from(size)).min(w), (i64::from(y) + i64::from(size)).min(h));
    for py in y0..y1 {
        for px in x0..x1 {
            image.put_pixel(px as u32, py as u32, Rgb(color));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const WHITE: [u8; 3] = [255, 255, 255];

    #[test]
    fn every_printable_character_has_a_distinct_glyph() {
        let mut seen: HashMap<[u8; 8], char> = HashMap::new();
        for code in FIRST..=LAST {
            let c = char::from_u32(code).unwrap();
            assert!(has_glyph(c));
            let g = glyph(c);
            assert!(g.iter().all(|row| *row < 32), "{c:?} uses more than 5 columns");
            if c == ' ' {
                assert_eq!(g, [0; 8]);
                continue;
            }
            assert_ne!(g, [0; 8], "{c:?} is blank");
            assert_ne!(g, UNKNOWN, "{c:?} looks like the unknown-character box");
            if let Some(other) = seen.insert(g, c) {
                panic!("{c:?} and {other:?} share a glyph");
            }
        }
        assert_eq!(seen.len(), 94);
    }

    #[test]
    fn unknown_characters_use_the_box() {
        assert!(!has_glyph('é'));
        assert_eq!(glyph('é'), UNKNOWN);
        assert_eq!(glyph('\n'), UNKNOWN);
    }

    #[test]
    fn text_width_arithmetic() {
        assert_eq!(text_width("", 3), 0);
        assert_eq!(text_width("a", 1), 5);
        assert_eq!(text_width("ab", 1), 11);
        assert_eq!(text_width("dog 0.87", 2), (8 * 6 - 1) * 2);
        // Scale 0 behaves as 1; non-ASCII counts one character per char.
        assert_eq!(text_width("abc", 0), text_width("abc", 1));
        assert_eq!(text_width("é", 1), 5);
        assert_eq!(text_height(3), 24);
    }

    #[test]
    fn drawn_text_stays_inside_its_measured_box() {
        let mut image = RgbImage::new(60, 30);
        let width = draw_text(&mut image, 3, 4, "Hg|~", 2, WHITE);
        let lit: Vec<(u32, u32)> = image
            .enumerate_pixels()
            .filter(|(_, _, p)| p.0 == WHITE)
            .map(|(x, y, _)| (x, y))
            .collect();
        assert!(!lit.is_empty());
        let max_x = lit.iter().map(|p| p.0).max().unwrap();
        let max_y = lit.iter().map(|p| p.1).max().unwrap();
        let min_x = lit.iter().map(|p| p.0).min().unwrap();
        assert_eq!(min_x, 3);
        assert!(max_x < 3 + width);
        assert!(max_y < 4 + text_height(2));
        // 'g' reaches into the descender row.
        assert_eq!(max_y, 4 + text_height(2) - 1);
    }

    #[test]
    fn scaled_glyph_pixels_are_squares() {
        let mut image = RgbImage::new(20, 20);
        draw_text(&mut image, 0, 0, "|", 3, WHITE);
        // '|' is column 2 on rows 0..7: x in 6..9, y in 0..21.
        for y in 0..20 {
            for x in 0..20 {
                let expected = (6..9).contains(&x) && y < 21;
                assert_eq!(image.get_pixel(x, y).0 == WHITE, expected, "({x}, {y})");
            }
        }
    }

    #[test]
    fn text_outside_the_image_is_clipped() {
        let mut image = RgbImage::new(10, 10);
        draw_text(&mut image, -20, -5, "WWWWWW", 2, WHITE);
        draw_text(&mut image, i32::MAX - 3, i32::MIN, "x", 4, WHITE);
        draw_text_vertical(&mut image, -3, 5, "vertical", 1, WHITE);
        assert!(image.pixels().any(|p| p.0 == WHITE));
    }

    #[test]
    fn vertical_text_is_the_rotated_horizontal_text() {
        let text = "Ab1";
        let (w, h) = (text_width(text, 1), text_height(1));
        let mut flat = RgbImage::new(w, h);
        draw_text(&mut flat, 0, 0, text, 1, WHITE);
        let mut tall = RgbImage::new(h, w);
        draw_text_vertical(&mut tall, 0, 0, text, 1, WHITE);
        for y in 0..h {
            for x in 0..w {
                assert_eq!(flat.get_pixel(x, y), tall.get_pixel(y, w - 1 - x), "({x}, {y})");
            }
        }
    }
}

//! Large images in tiles: a photo of 2300 x 2500 pixels letterboxed to a 416-pixel network input
//! shrinks 15-pixel objects to 3 pixels, below what the network's strides can resolve. Cut into
//! overlapping tiles at full resolution instead, each object is seen at its own size by at
//! least one tile; a pass over the whole image letterboxed adds the objects larger than a tile.
//!
//! [`grid`] places the tiles: along each axis as few as cover the image with at least the
//! requested overlap, spread evenly from edge to edge (so the actual overlap is at least the
//! requested one). [`place`] moves a tile's detections into image coordinates and marks those
//! that touch one of the tile's inner edges (an edge inside the image, not on its border): such
//! a box may be an object cut in two. [`merge`] then gives one box per object:
//! * class-wise (or across classes) greedy NMS in image coordinates, by descending score, at the
//!   decode's IoU threshold, as in one pass over one image;
//! * a cut box is also merged into a kept box of its class that holds most of it: intersection
//!   over the smaller area above [`CUT_CONTAINMENT`]. The half crown a tile's edge cut off and
//!   the whole crown the neighbouring tile saw have an IoU near 0.5, which NMS alone keeps as
//!   two boxes; the half lies almost entirely inside the whole. When the whole box comes second
//!   (the cut one scored higher), it replaces the cut one's corners; two cut parts of one object
//!   become their union. Boxes that no tile edge touches are never merged this way, so two
//!   distinct objects side by side in a dense scene both stay.
//!
//! The overlap should exceed the largest object's size for every object to be whole in some
//! tile; SAHI's slicing defaults to 0.2 of the tile, as `--tile-overlap` does.

use crate::geometry::BoxXyxy;
use crate::metrics::DetectedBox;

/// A cut box merges into a kept box when this fraction of the smaller of the two lies in
/// their intersection.
pub const CUT_CONTAINMENT: f32 = 0.5;

/// The overlap of neighbouring tiles when none is asked for, a fraction of the side (SAHI's
/// slicing default): `detect`/`eval --tile-overlap` and the grid of training's tiles.
pub const DEFAULT_OVERLAP: f64 = 0.2;

/// Pixels from an inner tile edge within which a box counts as cut by it.
pub const CUT_MARGIN: f32 = 2.0;

/// One tile: its top-left corner and size in image pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tile {
    /// Left.
    pub x: u32,
    /// Top.
    pub y: u32,
    /// Width (the tile side, or the image's width when that is smaller).
    pub width: u32,
    /// Height.
    pub height: u32,
}

/// Window starts along an axis of `length` for windows of `side` overlapping by at least
/// `overlap * side`: first at 0, last ending at `length`, evenly spread in between.
fn starts(length: u32, side: u32, overlap: f64) -> Vec<u32> {
    if length <= side {
        return vec![0];
    }
    let span = u64::from(length - side);
    let stride = (f64::from(side) * (1.0 - overlap.clamp(0.0, 0.95))).floor().max(1.0);
    let gaps = (span as f64 / stride).ceil().max(1.0) as u64;
    (0..=gaps).map(|k| ((k * span + gaps / 2) / gaps) as u32).collect()
}

/// The tiles of side `side` covering a `width` x `height` image, overlapping by at least
/// `overlap` (a fraction of `side`, in `[0, 0.95]`), row by row.
#[must_use]
pub fn grid(width: u32, height: u32, side: u32, overlap: f64) -> Vec<Tile> {
    let side = side.max(1);
    let xs = starts(width, side, overlap);
    starts(height, side, overlap)
        .into_iter()
        .flat_map(|y| {
            xs.iter().map(move |&x| Tile { x, y, width: side.min(width), height: side.min(height) })
        })
        .collect()
}

/// A detection in image coordinates and whether an inner tile edge cuts it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Placed {
    /// The detection.
    pub detection: DetectedBox,
    /// It touches an edge of its tile that lies inside the image.
    pub cut: bool,
}

impl Placed {
    /// A detection of the pass over the whole image: never cut.
    #[must_use]
    pub fn whole(detection: DetectedBox) -> Self {
        Self { detection, cut: false }
    }
}

/// The detections of `tile` (in tile pixels) in the pixels of the `image_width` x
/// `image_height` image, each marked as cut when it lies within [`CUT_MARGIN`] of an inner edge.
#[must_use]
pub fn place(
    tile: &Tile,
    image_width: u32,
    image_height: u32,
    detections: &[DetectedBox],
) -> Vec<Placed> {
    let (x0, y0) = (tile.x as f32, tile.y as f32);
    let (x1, y1) = ((tile.x + tile.width) as f32, (tile.y + tile.height) as f32);
    let inner = [
        tile.x > 0,
        tile.y > 0,
        tile.x + tile.width < image_width,
        tile.y + tile.height < image_height,
    ];
    detections
        .iter()
        .map(|d| {
            let b = BoxXyxy::new(
                d.bbox.x_min + x0,
                d.bbox.y_min + y0,
                d.bbox.x_max + x0,
                d.bbox.y_max + y0,
            );
            let touches = [
                b.x_min <= x0 + CUT_MARGIN,
                b.y_min <= y0 + CUT_MARGIN,
                b.x_max >= x1 - CUT_MARGIN,
                b.y_max >= y1 - CUT_MARGIN,
            ];
            let cut = inner.iter().zip(touches).any(|(&inner, touches)| inner && touches);
            Placed { detection: DetectedBox { bbox: b, ..*d }, cut }
        })
        .collect()
}

/// Intersection over the smaller area (0 when either box is empty).
fn containment(a: &BoxXyxy, b: &BoxXyxy) -> f32 {
    let w = (a.x_max.min(b.x_max) - a.x_min.max(b.x_min)).max(0.0);
    let h = (a.y_max.min(b.y_max) - a.y_min.max(b.y_min)).max(0.0);
    let smaller = a.area().min(b.area());
    if smaller > 0.0 {
        w * h / smaller
    } else {
        0.0
    }
}

/// One box per object from the detections of every tile and of the whole image (see the module
/// docs), at most `max_boxes` per class (or in all, with `agnostic`), by descending score.
#[must_use]
pub fn merge(
    mut detections: Vec<Placed>,
    iou_threshold: f32,
    max_boxes: usize,
    agnostic: bool,
) -> Vec<DetectedBox> {
    detections.sort_by(|a, b| {
        let key = |p: &Placed| if agnostic { 0 } else { p.detection.class };
        key(a).cmp(&key(b)).then(b.detection.score.total_cmp(&a.detection.score))
    });
    let mut out = Vec::new();
    let mut start = 0;
    while start < detections.len() {
        let class = detections[start].detection.class;
        let end = detections[start..]
            .iter()
            .position(|p| !agnostic && p.detection.class != class)
            .map_or(detections.len(), |n| start + n);
        let mut kept: Vec<Placed> = Vec::new();
        for c in &detections[start..end] {
            let b = &c.detection.bbox;
            if let Some(k) = kept.iter_mut().find(|k| k.detection.bbox.iou(b) > iou_threshold) {
                if k.cut && !c.cut {
                    k.detection.bbox = *b;
                    k.cut = false;
                }
                continue;
            }
            let holds = |k: &&mut Placed| {
                (k.cut || c.cut) && containment(&k.detection.bbox, b) > CUT_CONTAINMENT
            };
            if let Some(k) = kept.iter_mut().find(holds) {
                match (k.cut, c.cut) {
                    (true, false) => {
                        k.detection.bbox = *b;
                        k.cut = false;
                    }
                    (true, true) => {
                        let u = &mut k.detection.bbox;
                        *u = BoxXyxy::new(
                            u.x_min.min(b.x_min),
                            u.y_min.min(b.y_min),
                            u.x_max.max(b.x_max),
                            u.y_max.max(b.y_max),
                        );
                    }
                    _ => {}
                }
                continue;
            }
            kept.push(*c);
        }
        kept.truncate(max_boxes);
        out.extend(kept.into_iter().map(|p| p.detection));
        start = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(x0: f32, y0: f32, x1: f32, y1: f32, score: f32) -> DetectedBox {
        DetectedBox { bbox: BoxXyxy::new(x0, y0, x1, y1), score, class: 0 }
    }

    #[test]
    fn tiles_cover_the_image_with_at_least_the_overlap() {
        for (w, h, side, overlap) in
            [(2299, 2472, 416, 0.2), (1000, 417, 416, 0.0), (416, 416, 416, 0.2)]
        {
            let tiles = grid(w, h, side, overlap);
            let xs: Vec<u32> = tiles.iter().filter(|t| t.y == 0).map(|t| t.x).collect();
            assert_eq!(xs[0], 0);
            assert_eq!(xs.last().unwrap() + side.min(w), w);
            for pair in xs.windows(2) {
                let shared = f64::from(pair[0] + side - pair[1]);
                assert!(shared >= overlap * f64::from(side) - 1.0, "{pair:?} of {w}");
            }
            let ys: Vec<u32> = tiles.iter().filter(|t| t.x == 0).map(|t| t.y).collect();
            assert_eq!(tiles.len(), xs.len() * ys.len());
            assert_eq!(ys.last().unwrap() + side.min(h), h);
        }
        assert_eq!(grid(300, 200, 416, 0.2), [Tile { x: 0, y: 0, width: 300, height: 200 }]);
        // 2299 wide at 416 with 20% overlap: strides of at most 332 need 7 tiles.
        assert_eq!(grid(2299, 100, 416, 0.2).len(), 7);
    }

    #[test]
    fn placed_boxes_move_to_the_image_and_only_inner_edges_cut() {
        let tile = Tile { x: 100, y: 0, width: 50, height: 50 };
        let dets = [
            det(0.0, 10.0, 10.0, 20.0, 0.9),
            det(20.0, 0.0, 30.0, 10.0, 0.8),
            det(20.0, 20.0, 30.0, 30.0, 0.7),
        ];
        let placed = place(&tile, 150, 200, &dets);
        assert_eq!(placed[0].detection.bbox, BoxXyxy::new(100.0, 10.0, 110.0, 20.0));
        // The left edge is inside the image; the top edge is the image's; the right edge too.
        assert!(placed[0].cut);
        assert!(!placed[1].cut);
        assert!(!placed[2].cut);
    }

    #[test]
    fn an_object_cut_by_a_tile_edge_comes_out_once() {
        // A crown of 40 px at x 180..220; tile A ends at x 200 and holds its left half, tile B
        // (from x 150) holds all of it.
        let a = Tile { x: 0, y: 0, width: 200, height: 200 };
        let b = Tile { x: 150, y: 0, width: 200, height: 200 };
        let half = place(&a, 350, 200, &[det(180.0, 50.0, 200.0, 90.0, 0.9)]);
        let whole = place(&b, 350, 200, &[det(30.0, 50.0, 70.0, 90.0, 0.6)]);
        assert!(half[0].cut && !whole[0].cut);
        for order in [[half[0], whole[0]], [whole[0], half[0]]] {
            let merged = merge(order.to_vec(), 0.45, 100, false);
            assert_eq!(merged.len(), 1, "{merged:?}");
            assert_eq!(merged[0].bbox, BoxXyxy::new(180.0, 50.0, 220.0, 90.0));
            assert_eq!(merged[0].score, 0.9);
        }
    }

    #[test]
    fn two_cut_parts_become_their_union_and_uncut_neighbours_stay() {
        let left = Placed { detection: det(10.0, 10.0, 30.0, 40.0, 0.8), cut: true };
        let right = Placed { detection: det(28.0, 10.0, 50.0, 40.0, 0.7), cut: true };
        let merged = merge(vec![left, right], 0.45, 100, false);
        // Containment of the right part in the left is small: both parts stay.
        assert_eq!(merged.len(), 2);
        let inner = Placed { detection: det(12.0, 12.0, 29.0, 38.0, 0.7), cut: true };
        let merged = merge(vec![left, inner], 0.45, 100, false);
        assert_eq!(merged.len(), 1);
        // Two uncut crowns, one mostly inside the other's box but a distinct object: both stay.
        let big = Placed::whole(det(0.0, 0.0, 60.0, 60.0, 0.9));
        let small = Placed::whole(det(40.0, 40.0, 58.0, 58.0, 0.8));
        assert_eq!(merge(vec![big, small], 0.45, 100, false).len(), 2);
    }

    #[test]
    fn nms_is_class_wise_unless_agnostic_and_capped_per_class() {
        let a = det(0.0, 0.0, 10.0, 10.0, 0.9);
        let mut b = det(1.0, 0.0, 11.0, 10.0, 0.8);
        b.class = 1;
        let boxes = vec![Placed::whole(a), Placed::whole(b)];
        assert_eq!(merge(boxes.clone(), 0.45, 100, false).len(), 2);
        assert_eq!(merge(boxes, 0.45, 100, true).len(), 1);
        let many: Vec<Placed> = (0..5)
            .map(|i| Placed::whole(det(i as f32 * 20.0, 0.0, i as f32 * 20.0 + 10.0, 10.0, 0.5)))
            .collect();
        assert_eq!(merge(many, 0.45, 3, false).len(), 3);
    }
}

//! Anchor selection by k-means on box sizes with the `1 - IoU` distance.
//!
//! `YOLOv3`'s anchors are cluster centres of the training boxes' `(width, height)` pairs, where
//! the distance between a box and a centre is `1 - IoU` of the two boxes placed with the same
//! centre (so only the sizes matter and large boxes do not dominate, as they would with a
//! Euclidean distance). This reproduces keras-yolo3's `kmeans.py` and darknet's
//! `calc_anchors`:
//!
//! * `IoU` of sizes: `min(w1,w2) * min(h1,h2) / (w1*h1 + w2*h2 - min(w1,w2) * min(h1,h2))`.
//! * Each box goes to the centre with the largest `IoU` (the first one on ties, as `np.argmin`).
//! * Each centre becomes the per-coordinate **median** (keras-yolo3, the default; the mean of
//!   the two middle values for an even count, as `np.median`) or **mean** (darknet) of its boxes.
//!   A centre without boxes keeps its position.
//! * The loop stops when no assignment changes, or after [`KmeansOptions::max_iterations`].
//! * Initialisation picks `k` distinct boxes uniformly at random (keras-yolo3's
//!   `np.random.choice(n, k, replace=False)`), or by k-means++ seeding on the same distance.
//!
//! Randomness comes from a small internal splitmix64 generator, so a seed gives the same anchors
//! on every platform and thread count without a `rand` dependency.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// How a centre is recomputed from its boxes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CentroidUpdate {
    /// Per-coordinate median (keras-yolo3).
    #[default]
    Median,
    /// Per-coordinate mean (darknet).
    Mean,
}

/// How the first centres are chosen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KmeansInit {
    /// `k` distinct boxes (by index) drawn uniformly (keras-yolo3).
    #[default]
    RandomBoxes,
    /// k-means++: the first box uniformly, each next one with probability proportional to the
    /// squared `1 - IoU` distance to the nearest centre chosen so far.
    PlusPlus,
}

/// Options of [`cluster_anchors`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KmeansOptions {
    /// Seed of the internal generator.
    pub seed: u64,
    /// Upper bound on assignment/update rounds.
    pub max_iterations: usize,
    /// Centre update rule.
    pub update: CentroidUpdate,
    /// Initialisation.
    pub init: KmeansInit,
}

impl Default for KmeansOptions {
    fn default() -> Self {
        Self {
            seed: 0,
            max_iterations: 1000,
            update: CentroidUpdate::Median,
            init: KmeansInit::RandomBoxes,
        }
    }
}

/// The anchors found by [`cluster_anchors`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AnchorClusters {
    /// `(width, height)` of each anchor, by area ascending (width ascending on equal areas).
    pub anchors: Vec<[f64; 2]>,
    /// Mean over the boxes of the `IoU` with their best anchor, in `(0, 1]`.
    pub mean_iou: f64,
    /// Assignment rounds run.
    pub iterations: usize,
    /// Whether the assignments stopped changing before the iteration limit.
    pub converged: bool,
}

/// Why anchors could not be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum KmeansError {
    /// `k` was zero.
    #[error("the number of anchors must be at least 1")]
    ZeroClusters,
    /// Fewer boxes than anchors.
    #[error("{boxes} boxes cannot give {k} anchors")]
    TooFewBoxes {
        /// Number of boxes given.
        boxes: usize,
        /// Number of anchors asked for.
        k: usize,
    },
    /// A box with a non-finite or non-positive size.
    #[error("box {index} has size {width} x {height}; sizes must be finite and > 0")]
    InvalidBox {
        /// Index of the box.
        index: usize,
        /// Its width.
        width: f64,
        /// Its height.
        height: f64,
    },
}

/// `IoU` of two boxes of sizes `a` and `b` sharing a centre.
#[must_use]
pub fn size_iou(a: [f64; 2], b: [f64; 2]) -> f64 {
    let inter = a[0].min(b[0]) * a[1].min(b[1]);
    inter / (a[0] * a[1] + b[0] * b[1] - inter)
}

/// Clusters `(width, height)` pairs into `k` anchors; see the module docs.
pub fn cluster_anchors(
    sizes: &[[f64; 2]],
    k: usize,
    options: &KmeansOptions,
) -> Result<AnchorClusters, KmeansError> {
    if k == 0 {
        return Err(KmeansError::ZeroClusters);
    }
    if sizes.len() < k {
        return Err(KmeansError::TooFewBoxes { boxes: sizes.len(), k });
    }
    if let Some((index, s)) = sizes
        .iter()
        .enumerate()
        .find(|(_, s)| !(s[0].is_finite() && s[1].is_finite() && s[0] > 0.0 && s[1] > 0.0))
    {
        return Err(KmeansError::InvalidBox { index, width: s[0], height: s[1] });
    }

    let mut rng = SplitMix64::new(options.seed);
    let mut centres = match options.init {
        KmeansInit::RandomBoxes => {
            sample_distinct(&mut rng, sizes.len(), k).into_iter().map(|i| sizes[i]).collect()
        }
        KmeansInit::PlusPlus => plus_plus(&mut rng, sizes, k),
    };

    let mut assignment: Option<Vec<usize>> = None;
    let mut iterations = 0;
    let mut converged = false;
    while iterations < options.max_iterations {
        let nearest: Vec<usize> = sizes.par_iter().map(|&s| best_centre(s, &centres).0).collect();
        iterations += 1;
        if assignment.as_ref() == Some(&nearest) {
            converged = true;
            break;
        }
        for (c, centre) in centres.iter_mut().enumerate() {
            let members: Vec<[f64; 2]> =
                sizes.iter().zip(&nearest).filter(|(_, &n)| n == c).map(|(&s, _)| s).collect();
            if let Some(updated) = update_centre(&members, options.update) {
                *centre = updated;
            }
        }
        assignment = Some(nearest);
    }

    // Collected in order, then summed sequentially: a parallel sum's order (and so its
    // rounding) would depend on the thread count.
    let best_ious: Vec<f64> = sizes.par_iter().map(|&s| best_centre(s, &centres).1).collect();
    let mean_iou = best_ious.iter().sum::<f64>() / sizes.len() as f64;
    centres.sort_by(|a, b| (a[0] * a[1]).total_cmp(&(b[0] * b[1])).then(a[0].total_cmp(&b[0])));
    Ok(AnchorClusters { anchors: centres, mean_iou, iterations, converged })
}

/// Index of the centre with the largest `IoU` (first on ties) and that `IoU`.
fn best_centre(size: [f64; 2], centres: &[[f64; 2]]) -> (usize, f64) {
    let mut best = (0, f64::NEG_INFINITY);
    for (c, &centre) in centres.iter().enumerate() {
        let iou = size_iou(size, centre);
        if iou > best.1 {
            best = (c, iou);
        }
    }
    best
}

fn update_centre(members: &[[f64; 2]], update: CentroidUpdate) -> Option<[f64; 2]> {
    if members.is_empty() {
        return None;
    }
    let column = |i: usize| -> Vec<f64> { members.iter().map(|m| m[i]).collect() };
    Some(match update {
        CentroidUpdate::Mean => {
            let n = members.len() as f64;
            [column(0).iter().sum::<f64>() / n, column(1).iter().sum::<f64>() / n]
        }
        CentroidUpdate::Median => [median(column(0)), median(column(1))],
    })
}

/// `np.median` of a non-empty list.
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        f64::midpoint(values[n / 2 - 1], values[n / 2])
    }
}

/// `k` distinct indices below `n` (partial Fisher-Yates), in draw order.
fn sample_distinct(rng: &mut SplitMix64, n: usize, k: usize) -> Vec<usize> {
    let mut pool: Vec<usize> = (0..n).collect();
    for i in 0..k {
        let j = i + rng.below(n - i);
        pool.swap(i, j);
    }
    pool.truncate(k);
    pool
}

fn plus_plus(rng: &mut SplitMix64, sizes: &[[f64; 2]], k: usize) -> Vec<[f64; 2]> {
    let mut chosen = vec![false; sizes.len()];
    let first = rng.below(sizes.len());
    chosen[first] = true;
    let mut centres = vec![sizes[first]];
    let mut weight: Vec<f64> =
        sizes.iter().map(|&s| (1.0 - size_iou(s, sizes[first])).powi(2)).collect();
    while centres.len() < k {
        let total: f64 =
            sizes.iter().zip(&weight).zip(&chosen).filter(|(_, &c)| !c).map(|((_, &w), _)| w).sum();
        // With every remaining box equal to a centre, fall back to a uniform draw of an unused box.
        let pick = if total > 0.0 {
            let mut target = rng.unit() * total;
            let mut pick = None;
            for (i, (&w, &c)) in weight.iter().zip(&chosen).enumerate() {
                if c || w <= 0.0 {
                    continue;
                }
                pick = Some(i);
                if target < w {
                    break;
                }
                target -= w;
            }
            pick
        } else {
            None
        };
        let pick = pick.unwrap_or_else(|| {
            let unused: Vec<usize> = (0..sizes.len()).filter(|&i| !chosen[i]).collect();
            unused[rng.below(unused.len())]
        });
        chosen[pick] = true;
        centres.push(sizes[pick]);
        for (w, &s) in weight.iter_mut().zip(sizes) {
            *w = w.min((1.0 - size_iou(s, sizes[pick])).powi(2));
        }
    }
    centres
}

/// splitmix64 (Steele, Lea and Flood, 2014): tiny, seedable, good enough for sampling.
#[derive(Clone, Debug)]
struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`), without modulo bias.
    fn below(&mut self, n: usize) -> usize {
        let n = n as u64;
        let zone = u64::MAX - u64::MAX % n;
        loop {
            let x = self.next_u64();
            if x < zone {
                return (x % n) as usize;
            }
        }
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1_u64 << 53) as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Three tight groups of sizes around (10,10), (50,30) and (120,200).
    fn three_groups() -> Vec<[f64; 2]> {
        let mut sizes = Vec::new();
        for i in 0..30 {
            let d = f64::from(i % 5) - 2.0;
            sizes.push([10.0 + d * 0.2, 10.0 - d * 0.2]);
            sizes.push([50.0 + d, 30.0 - d * 0.5]);
            sizes.push([120.0 - d * 2.0, 200.0 + d * 2.0]);
        }
        sizes
    }

    #[test]
    fn recovers_well_separated_clusters() {
        let expected = [[10.0, 10.0], [50.0, 30.0], [120.0, 200.0]];
        let recovered = |result: &AnchorClusters| {
            result
                .anchors
                .iter()
                .zip(expected)
                .all(|(a, e)| (a[0] - e[0]).abs() < 1.0 && (a[1] - e[1]).abs() < 1.0)
        };
        // k-means++ starts with one centre per group for these seeds, so it must recover them.
        for seed in 0..10 {
            for update in [CentroidUpdate::Median, CentroidUpdate::Mean] {
                let options = KmeansOptions {
                    seed,
                    update,
                    init: KmeansInit::PlusPlus,
                    ..Default::default()
                };
                let result = cluster_anchors(&three_groups(), 3, &options).unwrap();
                assert!(result.converged && recovered(&result), "seed {seed}: {result:?}");
                assert!(result.mean_iou > 0.95);
            }
        }
        // A uniform start may put two centres in one group (a local optimum k-means cannot
        // leave), but most seeds recover the groups.
        let hits = (0..20)
            .filter(|&seed| {
                let options = KmeansOptions { seed, ..KmeansOptions::default() };
                recovered(&cluster_anchors(&three_groups(), 3, &options).unwrap())
            })
            .count();
        assert!(hits >= 5, "{hits} of 20 seeds recovered the groups");
    }

    #[test]
    fn same_seed_gives_same_anchors() {
        let sizes: Vec<[f64; 2]> =
            (0..200).map(|i| [f64::from(i % 37) + 3.0, f64::from((i * 7) % 53) + 2.0]).collect();
        let options = KmeansOptions { seed: 42, ..KmeansOptions::default() };
        let a = cluster_anchors(&sizes, 9, &options).unwrap();
        let b = cluster_anchors(&sizes, 9, &options).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn anchors_are_sorted_by_area() {
        let sizes: Vec<[f64; 2]> = (1..100).map(|i| [f64::from(i), f64::from(100 - i)]).collect();
        let result = cluster_anchors(&sizes, 6, &KmeansOptions::default()).unwrap();
        assert!(result.anchors.windows(2).all(|w| w[0][0] * w[0][1] <= w[1][0] * w[1][1]));
    }

    #[test]
    fn median_of_even_count_averages_the_middle_pair() {
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(vec![5.0, 1.0, 3.0]), 3.0);
    }

    #[test]
    fn bad_inputs_are_errors() {
        let o = KmeansOptions::default();
        assert_eq!(cluster_anchors(&[[1.0, 1.0]], 0, &o), Err(KmeansError::ZeroClusters));
        assert_eq!(
            cluster_anchors(&[[1.0, 1.0]], 2, &o),
            Err(KmeansError::TooFewBoxes { boxes: 1, k: 2 })
        );
        assert!(matches!(
            cluster_anchors(&[[1.0, 1.0], [0.0, 2.0]], 1, &o),
            Err(KmeansError::InvalidBox { index: 1, .. })
        ));
        assert!(matches!(
            cluster_anchors(&[[f64::NAN, 1.0]], 1, &o),
            Err(KmeansError::InvalidBox { index: 0, .. })
        ));
    }

    proptest! {
        #[test]
        fn mean_iou_lies_in_unit_interval(
            sizes in prop::collection::vec((0.5..500.0_f64, 0.5..500.0_f64).prop_map(|(w, h)| [w, h]), 9..80),
            seed in any::<u64>(),
            mean in any::<bool>(),
            plus_plus in any::<bool>(),
        ) {
            let options = KmeansOptions {
                seed,
                update: if mean { CentroidUpdate::Mean } else { CentroidUpdate::Median },
                init: if plus_plus { KmeansInit::PlusPlus } else { KmeansInit::RandomBoxes },
                ..KmeansOptions::default()
            };
            let result = cluster_anchors(&sizes, 9, &options).unwrap();
            prop_assert!(result.mean_iou > 0.0 && result.mean_iou <= 1.0);
            prop_assert_eq!(result.anchors.len(), 9);
        }

        #[test]
        fn k_equal_to_box_count_reproduces_the_boxes(
            sizes in prop::collection::vec((0.5..500.0_f64, 0.5..500.0_f64).prop_map(|(w, h)| [w, h]), 1..12),
        ) {
            let result = cluster_anchors(&sizes, sizes.len(), &KmeansOptions::default()).unwrap();
            prop_assert!((result.mean_iou - 1.0).abs() < 1e-12);
        }
    }
}

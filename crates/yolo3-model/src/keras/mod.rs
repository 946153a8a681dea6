//! keras-yolo3 weights (`yolo.h5`, `trained_weights_*.h5`) read into darknet's conventions, so
//! keras-yolo3 users bring their trained models as they are.
//!
//! keras-yolo3 builds YOLOv3 (`yolo_body`, 75 convolutions) and tiny-YOLOv3 (`tiny_yolo_body`,
//! 13) from `Conv2D` layers (no bias when a `BatchNormalization` follows; the heads have one)
//! with the same layers, routes and order as darknet's cfgs: its `convert.py` walks the cfg,
//! and `yolo_body`'s branches (`make_last_layers`, then the 1x1 conv and upsampling of the next
//! branch) create their convs in cfg order too. Conventions fixed here:
//!
//! * **Which layer is which**: Keras names a layer after its class and a per-class creation
//!   counter (`conv2d_1, conv2d_2, ...` in Keras 2, `conv2d, conv2d_1, ...` in tf.keras). The
//!   file's `layer_names` lists them in `model.layers` order, which Keras sorts by depth (the
//!   heads come last), not creation order. So the layers listed there are taken in the order
//!   of their numeric suffix: convolutions in darknet cfg order; batch norms likewise, the k-th
//!   going with the k-th convolution that has no bias.
//! * **Kernels** are HWIO, transposed here to darknet's `(out, in, kh, kw)`.
//! * **Batch norm**: Keras computes `(x - mean)/sqrt(var + 1e-3)`, darknet (and yolo3's
//!   inference) `(x - mean)/(sqrt(var) + 1e-6)`. The variance is converted so that both divide
//!   by the same number: `var' = (sqrt(var + 1e-3) - 1e-6)^2`, computed in f64 and rounded to
//!   f32 (half an ulp, about 3e-8 relative, on the divisor), so the network computes what
//!   Keras did. A file made from darknet weights by keras-yolo3's `convert.py` holds darknet's
//!   variance unchanged, which Keras then normalised with its own epsilon: the import
//!   reproduces that Keras model, not the original darknet one (they differ by about
//!   `5e-4/var` relative per normalisation).
//!
//! The result is darknet `.weights` content ([`DarknetWeights`]), so loading and training's
//! transfer by shape are darknet's own ([`Darknet::load_keras`], [`Darknet::transfer_keras`]).

mod cfg;
mod hdf5;

use hdf5::layer_err;

use std::path::{Path, PathBuf};

use crate::cfg::Config;
use crate::error::{ModelError, Result};
use crate::network::{Darknet, Transfer, BN_INFERENCE_EPS};
use crate::weights::{BatchNormParams, ConvLayout, ConvParams, DarknetWeights, WeightsHeader};

pub use cfg::{TINY_CONVS, YOLOV3_CONVS};

/// Keras' `BatchNormalization` epsilon, which keras-yolo3 keeps at its default.
pub const KERAS_BN_EPSILON: f64 = 1e-3;

/// One convolution of a Keras file, with its batch norm, in darknet's layout.
#[derive(Debug, Clone, PartialEq)]
pub struct KerasConv {
    /// The Keras name of the convolution (`conv2d_12`).
    pub name: String,
    /// The Keras name of its batch norm, if it has one.
    pub batch_norm: Option<String>,
    /// Kernel side.
    pub size: usize,
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub filters: usize,
    /// The parameters as darknet stores them (variance converted, kernel `(out, in, kh, kw)`).
    pub params: ConvParams,
}

impl KerasConv {
    fn layout(&self, layer: usize) -> ConvLayout {
        ConvLayout {
            layer,
            filters: self.filters,
            in_channels: self.in_channels,
            size: self.size,
            batch_normalize: self.batch_norm.is_some(),
        }
    }

    fn shape_text(&self) -> String {
        let bn = if self.batch_norm.is_some() { " with batch norm" } else { " with a bias" };
        format!("{0}x{0}x{1}x{2} (HWIO){bn}", self.size, self.in_channels, self.filters)
    }
}

/// The convolutions of a keras-yolo3 `.h5` file, in darknet cfg order.
#[derive(Debug, Clone, PartialEq)]
pub struct KerasWeights {
    path: PathBuf,
    convs: Vec<KerasConv>,
}

impl KerasWeights {
    /// Reads a Keras 2 / tf.keras weights file (`save_weights` or `save` layout).
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let layers = hdf5::read_layers(path)?;
        let convs = convs_of(path, &layers)?;
        Ok(Self { path: path.to_owned(), convs })
    }

    /// The file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The convolutions, in darknet cfg order.
    #[must_use]
    pub fn convs(&self) -> &[KerasConv] {
        &self.convs
    }

    /// The darknet cfg of keras-yolo3's network for this file: YOLOv3 for 75 convolutions,
    /// tiny-YOLOv3 for 13, with the file's widths, the given anchors (`w, h` in input pixels,
    /// as `anchors.txt` has them) under keras-yolo3's masks, the class count of the heads and
    /// a 416x416 input (keras-yolo3's default).
    pub fn config(&self, anchors: &[[f32; 2]]) -> Result<Config> {
        cfg::keras_config(self, anchors)
    }

    /// The file's content as darknet weights for `cfg`, with the layouts it was read with: the
    /// convolutions must be the cfg's, except that a head may have another width (another
    /// class or anchor count). Anything else is an error naming the Keras layer and both
    /// shapes.
    pub fn darknet_weights(&self, cfg: &Config) -> Result<(DarknetWeights, Vec<ConvLayout>)> {
        let layouts = ConvLayout::of_config(cfg);
        if layouts.len() != self.convs.len() {
            return Err(ModelError::KerasFile {
                path: self.path.clone(),
                message: format!(
                    "{} convolutions, the cfg {} has {}",
                    self.convs.len(),
                    cfg.name(),
                    layouts.len()
                ),
                source: None,
            });
        }
        let heads = cfg.head_conv_layers();
        let mut file_layouts = Vec::with_capacity(layouts.len());
        for (conv, layout) in self.convs.iter().zip(&layouts) {
            let file = conv.layout(layout.layer);
            let head_width_only = heads.contains(&layout.layer)
                && ConvLayout { filters: file.filters, ..*layout } == file;
            if file != *layout && !head_width_only {
                let bn = if layout.batch_normalize { " with batch norm" } else { " with a bias" };
                let (k, cin, n) = (layout.size, layout.in_channels, layout.filters);
                return Err(self.layer_err(
                    &conv.name,
                    format!(
                        "kernel {}, but {} needs {k}x{k}x{cin}x{n}{bn} at darknet layer {}",
                        conv.shape_text(),
                        cfg.name(),
                        layout.layer
                    ),
                ));
            }
            file_layouts.push(file);
        }
        let convs = self.convs.iter().map(|c| c.params.clone()).collect();
        Ok((DarknetWeights { header: WeightsHeader::default(), convs }, file_layouts))
    }

    fn layer_err(&self, layer: &str, message: String) -> ModelError {
        layer_err(&self.path, layer, message, None)
    }
}

impl Darknet {
    /// Loads every convolution of `keras`, which must match the network's shapes exactly.
    pub fn load_keras(&mut self, keras: &KerasWeights) -> Result<()> {
        let (weights, layouts) = keras.darknet_weights(self.config())?;
        let own = ConvLayout::of_config(self.config());
        if let Some((k, (file, _))) =
            layouts.iter().zip(&own).enumerate().find(|(_, (file, own))| file != own)
        {
            let head = self.config().heads().iter().find(|h| h.source_layer == file.layer);
            return Err(keras.layer_err(
                &keras.convs[k].name,
                format!(
                    "a head of {} filters, but the network's head (layer {}) has {}{}",
                    file.filters,
                    file.layer,
                    own[k].filters,
                    head.map(|h| format!(" ({} classes)", h.classes)).unwrap_or_default()
                ),
            ));
        }
        self.load_darknet_weights(&weights)?;
        Ok(())
    }

    /// Loads `keras` by shape, as initial weights for training: every convolution but heads
    /// of another width, which keep their initialisation.
    pub fn transfer_keras(&mut self, keras: &KerasWeights) -> Result<Transfer> {
        let (weights, layouts) = keras.darknet_weights(self.config())?;
        self.transfer_darknet_weights(&weights, &layouts)
    }
}

/// Darknet's variance for a Keras moving variance: the one whose `sqrt(var) + 1e-6` is
/// Keras' `sqrt(var + 1e-3)`; `None` when no variance gives it (Keras' divisor is below 1e-6).
fn darknet_variance(keras: f32) -> Option<f32> {
    let std = (f64::from(keras) + KERAS_BN_EPSILON).sqrt() - BN_INFERENCE_EPS;
    (std > 0.0).then_some((std * std) as f32)
}

/// The numeric suffix Keras appended to a layer name (`conv2d_12` -> 12, `conv2d` -> 0),
/// with the name before it.
fn creation_number(name: &str) -> (&str, u64) {
    match name.rsplit_once('_') {
        Some((prefix, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
            (prefix, n.parse().unwrap_or(u64::MAX))
        }
        _ => (name, 0),
    }
}

/// `layers` sorted by creation number; all must share one name prefix.
fn in_creation_order<'a>(
    path: &Path,
    layers: Vec<&'a hdf5::Layer>,
) -> Result<Vec<&'a hdf5::Layer>> {
    let mut keyed: Vec<(u64, &hdf5::Layer)> = Vec::with_capacity(layers.len());
    let prefix = layers.first().map(|l| creation_number(&l.name).0);
    for layer in layers {
        let (p, n) = creation_number(&layer.name);
        if Some(p) != prefix || keyed.iter().any(|(m, _)| *m == n) {
            let message = format!(
                "its name does not follow Keras' numbering `{}_N`, which gives the creation order \
                 keras-yolo3's layers map to darknet's by",
                prefix.unwrap_or_default()
            );
            return Err(layer_err(path, &layer.name, message, None));
        }
        keyed.push((n, layer));
    }
    keyed.sort_by_key(|(n, _)| *n);
    Ok(keyed.into_iter().map(|(_, l)| l).collect())
}

const BN_WEIGHTS: [&str; 4] = ["gamma", "beta", "moving_mean", "moving_variance"];

/// Pairs convolutions with their batch norms and converts them.
fn convs_of(path: &Path, layers: &[hdf5::Layer]) -> Result<Vec<KerasConv>> {
    let err = |layer: &str, message: String| layer_err(path, layer, message, None);
    let mut convs = Vec::new();
    let mut norms = Vec::new();
    for layer in layers {
        if layer.weight("kernel").is_some() {
            convs.push(layer);
        } else if BN_WEIGHTS.iter().any(|w| layer.weight(w).is_some()) {
            norms.push(layer);
        } else {
            let names: Vec<&str> = layer.weights.iter().map(|w| w.name.as_str()).collect();
            return Err(err(
                &layer.name,
                format!("weights {names:?} are neither a Conv2D's nor a BatchNormalization's"),
            ));
        }
    }
    let convs = in_creation_order(path, convs)?;
    let mut norms = in_creation_order(path, norms)?.into_iter();
    if convs.is_empty() {
        return Err(ModelError::KerasFile {
            path: path.to_owned(),
            message: "no Conv2D layer (no weight named `kernel`)".into(),
            source: None,
        });
    }
    let mut out = Vec::with_capacity(convs.len());
    for conv in convs {
        let kernel = conv.weight("kernel").expect("classified by its kernel");
        let &[kh, kw, cin, cout] = kernel.shape.as_slice() else {
            return Err(err(&conv.name, format!("kernel of shape {:?}, not HWIO", kernel.shape)));
        };
        if kh != kw {
            return Err(err(&conv.name, format!("a {kh}x{kw} kernel; darknet's are square")));
        }
        check_finite(path, &conv.name, "kernel", &kernel.values)?;
        let vector = |layer: &hdf5::Layer, name: &str| -> Result<Vec<f32>> {
            let w = layer
                .weight(name)
                .ok_or_else(|| err(&layer.name, format!("no `{name}` weight")))?;
            if w.shape != [cout] {
                return Err(err(
                    &layer.name,
                    format!(
                        "`{name}` of shape {:?}, the conv {} has {cout} filters",
                        w.shape, conv.name
                    ),
                ));
            }
            check_finite(path, &layer.name, name, &w.values)?;
            Ok(w.values.clone())
        };
        let (biases, batch_norm, bn_name) = if conv.weight("bias").is_some() {
            (vector(conv, "bias")?, None, None)
        } else {
            let Some(bn) = norms.next() else {
                return Err(err(
                    &conv.name,
                    "has no bias, so a BatchNormalization should follow it, but the file has \
                     no batch-norm layer left"
                        .into(),
                ));
            };
            let mut variance = vector(bn, "moving_variance")?;
            for (i, v) in variance.iter_mut().enumerate() {
                *v = darknet_variance(*v).ok_or_else(|| {
                    err(
                        &bn.name,
                        format!(
                            "moving_variance[{i}] = {v}: var + {KERAS_BN_EPSILON} must be above \
                             {BN_INFERENCE_EPS}^2"
                        ),
                    )
                })?;
            }
            let params = BatchNormParams {
                scales: vector(bn, "gamma")?,
                rolling_mean: vector(bn, "moving_mean")?,
                rolling_variance: variance,
            };
            (vector(bn, "beta")?, Some(params), Some(bn.name.clone()))
        };
        out.push(KerasConv {
            name: conv.name.clone(),
            batch_norm: bn_name,
            size: kh,
            in_channels: cin,
            filters: cout,
            params: ConvParams {
                biases,
                batch_norm,
                kernel: hwio_to_oihw(&kernel.values, kh, cin, cout),
            },
        });
    }
    if let Some(extra) = norms.next() {
        return Err(err(
            &extra.name,
            "a batch norm without a convolution: the file has more batch-norm layers than \
             convolutions without a bias"
                .into(),
        ));
    }
    Ok(out)
}

fn check_finite(path: &Path, layer: &str, weight: &str, values: &[f32]) -> Result<()> {
    match values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        None => Ok(()),
        Some((i, v)) => {
            Err(layer_err(path, layer, format!("{weight}[{i}] = {v} is not finite"), None))
        }
    }
}

/// `[k][k][cin][cout]` to `[cout][cin][k][k]`.
fn hwio_to_oihw(hwio: &[f32], k: usize, cin: usize, cout: usize) -> Vec<f32> {
    let mut out = vec![0f32; hwio.len()];
    for (n, &v) in hwio.iter().enumerate() {
        let (o, rest) = (n % cout, n / cout);
        let (i, rest) = (rest % cin, rest / cin);
        let (x, y) = (rest % k, rest / k);
        out[((o * cin + i) * k + y) * k + x] = v;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variance_conversion_gives_keras_divisor() {
        for keras in [0.5f32, 1.0, 1.7, 1e-4, 0.0] {
            let dark = f64::from(darknet_variance(keras).unwrap());
            let keras_div = (f64::from(keras) + KERAS_BN_EPSILON).sqrt();
            assert!(((dark.sqrt() + BN_INFERENCE_EPS) / keras_div - 1.0).abs() < 1e-7, "{keras}");
        }
        assert_eq!(darknet_variance(-1e-3), None);
    }

    #[test]
    fn creation_numbers_follow_both_keras_namings() {
        assert_eq!(creation_number("conv2d"), ("conv2d", 0));
        assert_eq!(creation_number("conv2d_12"), ("conv2d", 12));
        assert_eq!(creation_number("batch_normalization_3"), ("batch_normalization", 3));
        assert_eq!(creation_number("my_conv_x"), ("my_conv_x", 0));
    }

    #[test]
    fn kernel_transpose_moves_each_axis() {
        // k=2, cin=1, cout=2: HWIO value = 10*y + x + 100*o.
        let hwio: Vec<f32> = (0..2)
            .flat_map(|y| {
                (0..2).flat_map(move |x| (0..2).map(move |o| (10 * y + x + 100 * o) as f32))
            })
            .collect();
        assert_eq!(hwio_to_oihw(&hwio, 2, 1, 2), vec![0., 1., 10., 11., 100., 101., 110., 111.]);
    }
}

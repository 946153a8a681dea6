//! Darknet `.cfg` files as typed, validated data.
//!
//! [`Config::parse`] turns cfg text into [`NetParams`] and a list of [`Layer`]s indexed like
//! darknet (0-based, `[net]` not counted, `[yolo]` counted). Parsing also validates the graph
//! without an input size: references point backwards, channels agree at shortcuts, each
//! `[yolo]` reads `mask.len() * (5 + classes)` channels, and every head has an integral
//! stride. Spatial sizes depend on the input and are checked by [`Config::output_shapes`].

mod adapt;
mod head;
mod layer;
mod lexer;
mod net;
mod section;

use std::path::Path;

pub use adapt::anchor_list;
pub use head::HeadSpec;
pub use layer::{Activation, Convolutional, Layer, Maxpool, Route, Shortcut, Upsample, Yolo};
pub use net::{LrPolicy, NetParams};

use crate::error::{ModelError, Result};
use section::SectionReader;

/// Output shape of one layer for one image: channels, height, width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Channels.
    pub c: i64,
    /// Height.
    pub h: i64,
    /// Width.
    pub w: i64,
}

/// A parsed and validated darknet cfg.
#[derive(Debug, Clone)]
pub struct Config {
    name: String,
    text: String,
    net: NetParams,
    layers: Vec<Layer>,
    lines: Vec<usize>,
    channels: Vec<i64>,
    heads: Vec<HeadSpec>,
    parameters: i64,
}

impl Config {
    /// Parses cfg text; `name` identifies it in errors (usually the path).
    pub fn parse(text: &str, name: &str) -> Result<Self> {
        let sections = lexer::lex(text, name)?;
        let Some((first, rest)) = sections.split_first() else {
            return Err(ModelError::CfgSyntax {
                file: name.to_owned(),
                line: 1,
                message: "no [net] section".into(),
            });
        };
        if first.name != "net" && first.name != "network" {
            return Err(ModelError::CfgSyntax {
                file: name.to_owned(),
                line: first.line,
                message: format!("the first section must be [net], found [{}]", first.name),
            });
        }
        let reader = SectionReader::new(name, first, "net");
        let net = NetParams::read(&reader)?;
        reader.finish();

        let mut layers = Vec::with_capacity(rest.len());
        let mut lines = Vec::with_capacity(rest.len());
        for (index, section) in rest.iter().enumerate() {
            let unsupported = || ModelError::CfgUnsupportedSection {
                file: name.to_owned(),
                line: section.line,
                section: section.name.clone(),
            };
            let kind = Layer::kind_of(&section.name).ok_or_else(unsupported)?;
            let reader = SectionReader::new(name, section, kind);
            let layer = Layer::read(&reader, index)?.ok_or_else(unsupported)?;
            reader.finish();
            layers.push(layer);
            lines.push(section.line);
        }
        if layers.is_empty() {
            return Err(ModelError::CfgSyntax {
                file: name.to_owned(),
                line: first.line,
                message: "no layers after [net]".into(),
            });
        }
        let mut cfg = Self {
            name: name.to_owned(),
            text: text.to_owned(),
            net,
            layers,
            lines,
            channels: Vec::new(),
            heads: Vec::new(),
            parameters: 0,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads and parses a cfg file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = yolo3_io::fsio::read_text(path).map_err(|source| ModelError::Io {
            action: "reading",
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Learned values of the convolutions (kernels, biases, batch-norm vectors).
    #[must_use]
    pub fn parameter_count(&self) -> u64 {
        self.parameters as u64
    }

    /// The name used in errors (the path for files).
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The cfg text exactly as parsed (stored in checkpoints).
    #[must_use]
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The `[net]` section.
    #[must_use]
    pub fn net(&self) -> &NetParams {
        &self.net
    }

    /// The layers in darknet index order.
    #[must_use]
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// 1-based cfg line of layer `index`'s section header.
    #[must_use]
    pub fn layer_line(&self, index: usize) -> Option<usize> {
        self.lines.get(index).copied()
    }

    /// Output channels of every layer.
    #[must_use]
    pub fn channels(&self) -> &[i64] {
        &self.channels
    }

    /// Input channels of layer `index` (the previous layer's output, or the image's).
    #[must_use]
    pub fn input_channels(&self, index: usize) -> i64 {
        if index == 0 {
            self.net.channels
        } else {
            self.channels[index - 1]
        }
    }

    /// The detection heads in cfg order (the order of the network outputs).
    #[must_use]
    pub fn heads(&self) -> &[HeadSpec] {
        &self.heads
    }

    /// Darknet indices of the convs that feed the heads (the layers a class-count change
    /// reshapes).
    #[must_use]
    pub fn head_conv_layers(&self) -> Vec<usize> {
        self.heads.iter().map(|h| h.source_layer).collect()
    }

    /// Darknet indices of the convolutional layers, in order (the order of `.weights`).
    #[must_use]
    pub fn conv_layers(&self) -> Vec<usize> {
        self.layers
            .iter()
            .enumerate()
            .filter(|(_, l)| matches!(l, Layer::Convolutional(_)))
            .map(|(i, _)| i)
            .collect()
    }

    /// How many leading layers form the backbone (the feature extractor that pretrained
    /// classification weights cover), or `None` when the cfg has no recognisable one.
    ///
    /// The backbone ends before the first 1x1 convolution that is not inside a residual block
    /// (the layers a `[shortcut]` adds across): that is darknet53's 75 layers in YOLOv3 and
    /// YOLOv3-SPP (what `darknet53.conv.74` covers) and the first 13 layers of tiny-YOLOv3 (up
    /// to its 1024-filter conv), the split ultralytics' models use too. It must leave every
    /// head conv outside.
    #[must_use]
    pub fn backbone_layers(&self) -> Option<usize> {
        let mut in_residual = vec![false; self.layers.len()];
        for (i, layer) in self.layers.iter().enumerate() {
            if let Layer::Shortcut(s) = layer {
                in_residual[s.from + 1..i].iter_mut().for_each(|r| *r = true);
            }
        }
        let end = self.layers.iter().enumerate().position(
            |(i, l)| matches!(l, Layer::Convolutional(c) if c.size == 1 && !in_residual[i]),
        )?;
        let first_head = self.heads.iter().map(|h| h.source_layer).min()?;
        (end > 0 && end <= first_head).then_some(end)
    }

    /// The anchors as the core's decode and loss want them: every anchor of the first
    /// `[yolo]` section and each head's mask, in head order. The heads must come coarsest
    /// first with strides 32, 16, 8 (as in every YOLOv3 cfg) and agree on anchors and classes.
    pub fn anchors(&self) -> Result<yolo3_core::Anchors> {
        let heads_error = |message: String| ModelError::Heads { cfg: self.name.clone(), message };
        let yolos: Vec<_> = self
            .layers
            .iter()
            .filter_map(|l| if let Layer::Yolo(y) = l { Some(y) } else { None })
            .collect();
        let first = yolos.first().ok_or_else(|| heads_error("no [yolo] layer".into()))?;
        for (l, head) in self.heads.iter().enumerate() {
            if head.stride != (32 >> l) {
                return Err(heads_error(format!(
                    "head {l} has stride {}, expected {} (heads coarsest first)",
                    head.stride,
                    32 >> l
                )));
            }
        }
        if yolos.iter().any(|y| y.anchors != first.anchors || y.classes != first.classes) {
            return Err(heads_error("the [yolo] sections disagree on anchors or classes".into()));
        }
        yolo3_core::Anchors::new(
            first.anchors.clone(),
            yolos.iter().map(|y| y.mask.clone()).collect(),
        )
        .map_err(|source| ModelError::Core { context: self.name.clone(), source })
    }

    /// Classes of the heads (0 without heads).
    #[must_use]
    pub fn classes(&self) -> usize {
        self.heads.first().map_or(0, |h| h.classes.max(0) as usize)
    }

    fn structure_error(&self, layer: usize, message: impl Into<String>) -> ModelError {
        ModelError::CfgStructure {
            file: self.name.clone(),
            line: self.lines[layer],
            layer,
            section: self.layers[layer].section_name(),
            message: message.into(),
        }
    }

    /// Computes channels and downsampling factors, checks the references' targets and builds
    /// the head metadata.
    fn validate(&mut self) -> Result<()> {
        let mut channels: Vec<i64> = Vec::with_capacity(self.layers.len());
        // Input pixels per output sample, as a float: upsampling divides it.
        let mut strides: Vec<f64> = Vec::with_capacity(self.layers.len());
        let mut heads = Vec::new();
        // Floats of all conv parameters so far. Kept countable (also as bytes, in an i64) so
        // that `.weights` sizes and variable shapes derived from the cfg never overflow.
        let mut params: i64 = 0;
        for (i, layer) in self.layers.iter().enumerate() {
            let (in_c, in_s) =
                if i == 0 { (self.net.channels, 1.0) } else { (channels[i - 1], strides[i - 1]) };
            let refs: Vec<usize> = match layer {
                Layer::Route(r) => r.layers.clone(),
                Layer::Shortcut(s) => vec![s.from],
                _ => Vec::new(),
            };
            if let Some(&j) = refs.iter().find(|&&j| matches!(self.layers[j], Layer::Yolo(_))) {
                return Err(self.structure_error(i, format!("refers to layer {j}, a [yolo] layer")));
            }
            let reads_previous = !matches!(layer, Layer::Route(_));
            if reads_previous && i > 0 && matches!(self.layers[i - 1], Layer::Yolo(_)) {
                return Err(
                    self.structure_error(i, "reads the output of the [yolo] layer before it")
                );
            }
            let (c, s) = match layer {
                Layer::Convolutional(conv) => {
                    params = conv_floats(conv, in_c)
                        .and_then(|n| params.checked_add(n))
                        .filter(|n| n.checked_mul(4).is_some())
                        .ok_or_else(|| {
                            self.structure_error(
                                i,
                                format!(
                                    "{} filters of {in_c}x{}x{} weights: the parameter count of \
                                     the convolutions overflows 64 bits",
                                    conv.filters, conv.size, conv.size
                                ),
                            )
                        })?;
                    (conv.filters, in_s * conv.stride as f64)
                }
                Layer::Maxpool(m) => (in_c, in_s * m.stride as f64),
                Layer::Upsample(u) => (in_c, in_s / u.stride as f64),
                Layer::Route(r) => {
                    let s = strides[r.layers[0]];
                    if let Some(&j) = r.layers.iter().find(|&&j| strides[j] != s) {
                        return Err(self.structure_error(
                            i,
                            format!(
                                "layers {} and {j} have different resolutions (strides {s} and {})",
                                r.layers[0], strides[j]
                            ),
                        ));
                    }
                    let c = r
                        .layers
                        .iter()
                        .try_fold(0i64, |sum, &j| sum.checked_add(channels[j]))
                        .ok_or_else(|| {
                            self.structure_error(i, "the concatenated channel count overflows")
                        })?;
                    (c, s)
                }
                Layer::Shortcut(sc) => {
                    if i == 0 || channels[sc.from] != in_c || strides[sc.from] != in_s {
                        return Err(self.structure_error(
                            i,
                            format!(
                                "adds layer {} ({} channels, stride {}) to the previous layer ({in_c} channels, stride {in_s})",
                                sc.from, channels[sc.from], strides[sc.from]
                            ),
                        ));
                    }
                    (in_c, in_s)
                }
                Layer::Yolo(y) => {
                    let need = 5i64
                        .checked_add(y.classes)
                        .and_then(|k| k.checked_mul(y.mask.len() as i64));
                    if i == 0 || need != Some(in_c) {
                        let need =
                            need.map_or_else(|| "more than 2^63".to_owned(), |n| n.to_string());
                        return Err(self.structure_error(
                            i,
                            format!(
                                "reads {in_c} channels, but {} anchors x (5 + {} classes) need {need}",
                                y.mask.len(),
                                y.classes
                            ),
                        ));
                    }
                    if in_s < 1.0 || in_s.fract() != 0.0 {
                        return Err(self.structure_error(
                            i,
                            format!("input stride {in_s} is not a whole number of pixels"),
                        ));
                    }
                    heads.push(HeadSpec {
                        yolo_layer: i,
                        source_layer: i - 1,
                        mask: y.mask.clone(),
                        anchors: y.mask.iter().map(|&m| y.anchors[m]).collect(),
                        stride: in_s as i64,
                        classes: y.classes,
                        ignore_thresh: y.ignore_thresh,
                        truth_thresh: y.truth_thresh,
                    });
                    (in_c, in_s)
                }
            };
            channels.push(c);
            strides.push(s);
        }
        self.channels = channels;
        self.heads = heads;
        self.parameters = params;
        Ok(())
    }

    /// Output shape of every layer for one `height x width` input, with darknet's integer
    /// arithmetic. Fails where spatial sizes stop matching or a layer's output is empty.
    pub fn output_shapes(&self, height: i64, width: i64) -> Result<Vec<Shape>> {
        let mut shapes: Vec<Shape> = Vec::with_capacity(self.layers.len());
        for (i, layer) in self.layers.iter().enumerate() {
            let input = if i == 0 {
                Shape { c: self.net.channels, h: height, w: width }
            } else {
                shapes[i - 1]
            };
            let fail = |message: String| ModelError::InputSize {
                height,
                width,
                layer: i,
                section: layer.section_name(),
                message,
            };
            let shape = match layer {
                Layer::Convolutional(c) => {
                    let out = |x: i64| {
                        let padded = x.checked_add(c.padding.checked_mul(2)?)?;
                        padded.checked_sub(c.size)?.div_euclid(c.stride).checked_add(1)
                    };
                    let (Some(h), Some(w)) = (out(input.h), out(input.w)) else {
                        return Err(fail("the output size overflows".into()));
                    };
                    Shape { c: c.filters, h, w }
                }
                Layer::Maxpool(m) => {
                    let out = |x: i64| {
                        x.checked_add(m.padding)?
                            .checked_sub(m.size)?
                            .div_euclid(m.stride)
                            .checked_add(1)
                    };
                    let (Some(h), Some(w)) = (out(input.h), out(input.w)) else {
                        return Err(fail("the output size overflows".into()));
                    };
                    Shape { c: input.c, h, w }
                }
                Layer::Upsample(u) => {
                    let (Some(h), Some(w)) =
                        (input.h.checked_mul(u.stride), input.w.checked_mul(u.stride))
                    else {
                        return Err(fail("the output size overflows".into()));
                    };
                    Shape { c: input.c, h, w }
                }
                Layer::Route(r) => {
                    let first = shapes[r.layers[0]];
                    if let Some(&j) =
                        r.layers.iter().find(|&&j| (shapes[j].h, shapes[j].w) != (first.h, first.w))
                    {
                        return Err(fail(format!(
                            "cannot concatenate layer {} ({}x{}) with layer {j} ({}x{})",
                            r.layers[0], first.h, first.w, shapes[j].h, shapes[j].w
                        )));
                    }
                    Shape { c: r.layers.iter().map(|&j| shapes[j].c).sum(), h: first.h, w: first.w }
                }
                Layer::Shortcut(s) => {
                    let from = shapes[s.from];
                    if (from.h, from.w) != (input.h, input.w) {
                        return Err(fail(format!(
                            "cannot add layer {} ({}x{}) to the previous layer ({}x{})",
                            s.from, from.h, from.w, input.h, input.w
                        )));
                    }
                    input
                }
                Layer::Yolo(_) => input,
            };
            if shape.h < 1 || shape.w < 1 {
                return Err(fail(format!("output would be {}x{}", shape.h, shape.w)));
            }
            shapes.push(shape);
        }
        Ok(shapes)
    }
}

/// Floats of a conv's parameters in a `.weights` file or a checkpoint (kernel, then biases or
/// the four batch-norm vectors), or `None` when the count does not fit an `i64`.
fn conv_floats(conv: &Convolutional, in_channels: i64) -> Option<i64> {
    let kernel =
        conv.filters.checked_mul(in_channels)?.checked_mul(conv.size)?.checked_mul(conv.size)?;
    kernel.checked_add(conv.filters.checked_mul(if conv.batch_normalize { 4 } else { 1 })?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TINY: &str = "[net]\nwidth=64\nheight=64\nchannels=3\n\
        [convolutional]\nbatch_normalize=1\nfilters=4\nsize=3\nstride=1\npad=1\nactivation=leaky\n\
        [maxpool]\nsize=2\nstride=1\n\
        [convolutional]\nfilters=18\nsize=1\nstride=1\npad=1\nactivation=linear\n\
        [yolo]\nmask=0,1,2\nanchors=1,2,3,4,5,6\nclasses=1\nnum=3\n";

    #[test]
    fn parses_a_small_net() {
        let cfg = Config::parse(TINY, "t").unwrap();
        assert_eq!(cfg.layers().len(), 4);
        let Layer::Convolutional(c) = &cfg.layers()[2] else { panic!() };
        assert_eq!(c.padding, 0, "pad=1 on a 1x1 conv is no padding");
        assert_eq!(c.activation, Activation::Linear);
        let Layer::Maxpool(m) = &cfg.layers()[1] else { panic!() };
        assert_eq!((m.size, m.stride, m.padding), (2, 1, 1));
        let shapes = cfg.output_shapes(13, 13).unwrap();
        assert_eq!(shapes[1], Shape { c: 4, h: 13, w: 13 });
        assert_eq!(cfg.heads()[0].stride, 1);
        assert_eq!(cfg.heads()[0].anchors, vec![[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]);
    }

    #[test]
    fn conv_defaults_are_darknets() {
        let text = "[net]\nwidth=8\nheight=8\nchannels=3\n[convolutional]\nfilters=2\n";
        let cfg = Config::parse(text, "t").unwrap();
        let Layer::Convolutional(c) = &cfg.layers()[0] else { panic!() };
        assert_eq!((c.size, c.stride, c.padding, c.batch_normalize), (1, 1, 0, false));
        assert_eq!(c.activation, Activation::Logistic);
    }

    #[test]
    fn errors_name_file_and_line() {
        let bad = TINY.replace("activation=leaky", "activation=mish");
        let err = Config::parse(&bad, "x.cfg").unwrap_err();
        assert!(
            matches!(&err, ModelError::CfgValue { line: 11, key, .. } if *key == "activation"),
            "{err}"
        );
        assert!(err.to_string().starts_with("x.cfg:11:"), "{err}");

        let bad = TINY.replace("[maxpool]", "[local]");
        let err = Config::parse(&bad, "x.cfg").unwrap_err();
        assert!(
            matches!(&err, ModelError::CfgUnsupportedSection { line: 12, section, .. } if section == "local"),
            "{err}"
        );

        let bad = TINY.replace("classes=1", "classes=2");
        assert!(matches!(
            Config::parse(&bad, "x").unwrap_err(),
            ModelError::CfgStructure { layer: 3, .. }
        ));

        let bad = format!("{TINY}[route]\nlayers=-1,7\n");
        assert!(matches!(
            Config::parse(&bad, "x").unwrap_err(),
            ModelError::CfgValue { line: 27, .. }
        ));

        let bad = format!("{TINY}[route]\nlayers=-1\n");
        assert!(
            matches!(
                Config::parse(&bad, "x").unwrap_err(),
                ModelError::CfgStructure { layer: 4, .. }
            ),
            "route to a yolo layer"
        );

        let bad = TINY.replace("filters=4", "filters=four");
        assert!(matches!(
            Config::parse(&bad, "x").unwrap_err(),
            ModelError::CfgValue { line: 7, .. }
        ));

        let bad = TINY.replace("filters=4\n", "");
        assert!(matches!(
            Config::parse(&bad, "x").unwrap_err(),
            ModelError::CfgMissingKey { line: 5, .. }
        ));

        let bad = TINY.replace("anchors=1,2,3,4,5,6", "anchors=1,2,3,4,5");
        assert!(matches!(Config::parse(&bad, "x").unwrap_err(), ModelError::CfgValue { .. }));

        let bad = TINY.replace("[yolo]", "[yolo]\nscale_x_y=1.05");
        assert!(matches!(Config::parse(&bad, "x").unwrap_err(), ModelError::CfgValue { .. }));
    }

    #[test]
    fn unknown_keys_are_only_warnings() {
        let text = TINY.replace("[maxpool]", "[maxpool]\nfancy_new_key=3");
        assert!(Config::parse(&text, "t").is_ok());
    }

    #[test]
    fn mismatched_resolutions_are_errors() {
        let conv = "[convolutional]\nfilters=2\nsize=3\nstride=2\npad=1\nactivation=leaky\n";
        let text = format!("[net]\nwidth=8\nheight=8\nchannels=3\n{conv}[upsample]\nstride=2\n[route]\nlayers=-1,-2\n");
        assert!(matches!(
            Config::parse(&text, "t").unwrap_err(),
            ModelError::CfgStructure { layer: 2, .. }
        ));

        let same = conv.replace("stride=2", "stride=1");
        let text = format!("[net]\nwidth=8\nheight=8\nchannels=3\n{same}{conv}[upsample]\nstride=2\n[route]\nlayers=-1,0\n");
        let cfg = Config::parse(&text, "t").unwrap();
        assert_eq!(cfg.output_shapes(8, 8).unwrap()[3], Shape { c: 4, h: 8, w: 8 });
        assert!(matches!(
            cfg.output_shapes(7, 8).unwrap_err(),
            ModelError::InputSize { layer: 3, .. }
        ));
        assert!(matches!(
            cfg.output_shapes(0, 5).unwrap_err(),
            ModelError::InputSize { layer: 0, .. }
        ));
    }
}

//! ONNX export: the network as an ONNX graph that ONNX Runtime, OpenCV DNN, TensorRT and the
//! rest of the deployment world run.
//!
//! The graph is the inference network ([`InferenceNet`]'s folded weights: batch norm is in
//! each convolution's kernel and bias, so every conv is one `Conv` node), opset 17, float32,
//! with a **dynamic batch** dimension and a fixed input side (darknet's pooling padding
//! depends on the side). Input `images`: `batch x channels x height x width`, RGB in `[0, 1]`,
//! letterboxed as `detect` does; outputs `head0`, `head1`, ...: the **raw** head tensors in cfg
//! order (no sigmoid, no exp), exactly what [`Darknet::forward_t`] returns, so the decode of
//! keras-yolo3 (or any YOLOv3 decode) runs on them unchanged.
//!
//! Operators: `Conv`, `LeakyRelu` (0.1) / `Relu` / `Sigmoid`, `MaxPool` with darknet's padding
//! (ONNX's pads never win a max, as darknet's `-inf`), `Resize` nearest with
//! `asymmetric` coordinates and `floor` rounding (pixel `x` reads `x / stride`, darknet's
//! upsample), `Concat`, `Add` (and `Mul` for weighted shortcuts). The model's metadata carries
//! the anchors of each head and the class names, for a decoder on the other side.
//!
//! The protobuf messages come from the `onnx-protobuf` crate (generated from ONNX's own
//! `onnx.proto` by rust-protobuf).

use onnx_protobuf::tensor_proto::DataType;
use onnx_protobuf::tensor_shape_proto::{dimension::Value as DimValue, Dimension};
use onnx_protobuf::type_proto::Value as TypeValue;
use onnx_protobuf::{
    attribute_proto::AttributeType, AttributeProto, GraphProto, Message as _, ModelProto,
    NodeProto, OperatorSetIdProto, StringStringEntryProto, TensorProto, TensorShapeProto,
    TypeProto, ValueInfoProto,
};
use tch::Tensor;

use crate::cfg::{Activation, Layer, Shape};
use crate::error::{ModelError, Result, TorchContext};
use crate::network::{maxpool_padding, ConvEngine, Darknet, InferenceNet, LEAKY_SLOPE};

/// The ONNX operator set the graph is written for.
pub const ONNX_OPSET: i64 = 17;

/// The ONNX IR version of opset 17's release (ONNX 1.12).
const IR_VERSION: i64 = 8;

/// Name of the graph input.
pub const ONNX_INPUT: &str = "images";

/// The side and metadata of an export.
#[derive(Debug, Clone, PartialEq)]
pub struct OnnxOptions {
    /// Input height in pixels (a multiple of the network's coarsest stride).
    pub height: i64,
    /// Input width in pixels.
    pub width: i64,
    /// Class names written to the metadata (`yolo3.class_names`, a JSON list); empty: none.
    pub class_names: Vec<String>,
}

/// The ONNX model of `net` (see the module docs), serialised.
pub fn onnx_bytes(net: &Darknet, options: &OnnxOptions) -> Result<Vec<u8>> {
    let cfg = net.config();
    let shapes = cfg.output_shapes(options.height, options.width)?;
    let folded = InferenceNet::with_engine(net, ConvEngine::Plain)?;
    let mut g = GraphBuilder::default();
    let input_shape = Shape { c: cfg.net().channels, h: options.height, w: options.width };
    let mut names: Vec<String> = Vec::with_capacity(cfg.layers().len());
    for (i, layer) in cfg.layers().iter().enumerate() {
        let (input, in_shape) = if i == 0 {
            (ONNX_INPUT.to_owned(), input_shape)
        } else {
            (names[i - 1].clone(), shapes[i - 1])
        };
        let out = format!("layer{i}");
        let name = match layer {
            Layer::Convolutional(_) => {
                let conv = folded.folded_conv(i).expect("a folded conv for each conv layer");
                let w = g.weights(&format!("layer{i}.weight"), &conv.weight)?;
                let b = g.weights(&format!("layer{i}.bias"), &conv.bias)?;
                let k = conv.weight.size()[2];
                let attrs = vec![
                    ints("kernel_shape", &[k, k]),
                    ints("strides", &[conv.stride, conv.stride]),
                    ints("pads", &[conv.padding; 4]),
                    ints("dilations", &[1, 1]),
                    int("group", 1),
                ];
                let y = g.node("Conv", &[&input, &w, &b], &format!("{out}.conv"), attrs);
                g.activation(&y, conv.activation, &out)
            }
            Layer::Maxpool(m) => {
                let (before, after_h, after_w) = maxpool_padding(m, in_shape.h, in_shape.w);
                let attrs = vec![
                    ints("kernel_shape", &[m.size, m.size]),
                    ints("strides", &[m.stride, m.stride]),
                    ints("pads", &[before, before, after_h, after_w]),
                ];
                g.node("MaxPool", &[&input], &out, attrs)
            }
            Layer::Upsample(u) => {
                let s = u.stride as f32;
                let scales = g.constant(&format!("layer{i}.scales"), &[4], &[1.0, 1.0, s, s]);
                let attrs = vec![
                    string("mode", "nearest"),
                    string("coordinate_transformation_mode", "asymmetric"),
                    string("nearest_mode", "floor"),
                ];
                g.node("Resize", &[&input, "", &scales], &out, attrs)
            }
            Layer::Route(r) => {
                if let [j] = r.layers[..] {
                    names[j].clone()
                } else {
                    let parts: Vec<&str> = r.layers.iter().map(|&j| names[j].as_str()).collect();
                    g.node("Concat", &parts, &out, vec![int("axis", 1)])
                }
            }
            Layer::Shortcut(s) => {
                let mut prev = input.clone();
                let mut from = names[s.from].clone();
                if s.alpha != 1.0 || s.beta != 1.0 {
                    let a = g.constant(&format!("layer{i}.alpha"), &[], &[s.alpha as f32]);
                    let b = g.constant(&format!("layer{i}.beta"), &[], &[s.beta as f32]);
                    prev = g.node("Mul", &[&prev, &a], &format!("{out}.alpha"), Vec::new());
                    from = g.node("Mul", &[&from, &b], &format!("{out}.beta"), Vec::new());
                }
                let sum = g.node("Add", &[&prev, &from], &format!("{out}.add"), Vec::new());
                g.activation(&sum, s.activation, &out)
            }
            Layer::Yolo(_) => input,
        };
        names.push(name);
    }

    let batch =
        || Dimension { value: Some(DimValue::DimParam("batch".into())), ..Dimension::new() };
    let mut graph = GraphProto::new();
    cfg.name().clone_into(&mut graph.name);
    graph.input.push(value_info(ONNX_INPUT, batch(), input_shape));
    for (k, head) in cfg.heads().iter().enumerate() {
        let out = format!("head{k}");
        g.node("Identity", &[&names[head.source_layer]], &out, Vec::new());
        graph.output.push(value_info(&out, batch(), shapes[head.source_layer]));
    }
    graph.node = g.nodes;
    graph.initializer = g.initializers;

    let mut model = ModelProto::new();
    model.ir_version = IR_VERSION;
    model.producer_name = "yolo3".into();
    model.producer_version = env!("CARGO_PKG_VERSION").into();
    model.opset_import.push(OperatorSetIdProto {
        domain: String::new(),
        version: ONNX_OPSET,
        ..OperatorSetIdProto::new()
    });
    let anchors: Vec<&[[f32; 2]]> = cfg.heads().iter().map(|h| h.anchors.as_slice()).collect();
    let mut metadata = vec![
        ("yolo3.anchors", serde_json::to_string(&anchors).unwrap_or_default()),
        (
            "yolo3.strides",
            serde_json::to_string(&cfg.heads().iter().map(|h| h.stride).collect::<Vec<_>>())
                .unwrap_or_default(),
        ),
    ];
    if !options.class_names.is_empty() {
        metadata.push((
            "yolo3.class_names",
            serde_json::to_string(&options.class_names).unwrap_or_default(),
        ));
    }
    model.metadata_props = metadata
        .into_iter()
        .map(|(key, value)| StringStringEntryProto {
            key: key.into(),
            value,
            ..StringStringEntryProto::new()
        })
        .collect();
    model.graph = Some(graph).into();
    model.write_to_bytes().map_err(|source| ModelError::Onnx { source })
}

/// Nodes and initialisers under construction.
#[derive(Default)]
struct GraphBuilder {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
}

impl GraphBuilder {
    /// Adds a node with one output; returns the output's name.
    fn node(
        &mut self,
        op: &str,
        inputs: &[&str],
        output: &str,
        attribute: Vec<AttributeProto>,
    ) -> String {
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|&s| s.to_owned()).collect(),
            output: vec![output.to_owned()],
            name: output.to_owned(),
            op_type: op.to_owned(),
            attribute,
            ..NodeProto::new()
        });
        output.to_owned()
    }

    /// The activation node after `input` named `output` (or `input` itself when linear).
    fn activation(&mut self, input: &str, activation: Activation, output: &str) -> String {
        match activation {
            Activation::Linear => self.node("Identity", &[input], output, Vec::new()),
            Activation::Leaky => {
                self.node("LeakyRelu", &[input], output, vec![float("alpha", LEAKY_SLOPE as f32)])
            }
            Activation::Relu => self.node("Relu", &[input], output, Vec::new()),
            Activation::Logistic => self.node("Sigmoid", &[input], output, Vec::new()),
        }
    }

    /// A float32 initialiser of `dims` with `values`; returns its name.
    fn constant(&mut self, name: &str, dims: &[i64], values: &[f32]) -> String {
        self.initializers.push(TensorProto {
            dims: dims.to_vec(),
            data_type: DataType::FLOAT as i32,
            name: name.to_owned(),
            raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..TensorProto::new()
        });
        name.to_owned()
    }

    /// A float32 initialiser holding `t` (any device); returns its name.
    fn weights(&mut self, name: &str, t: &Tensor) -> Result<String> {
        let values = t
            .f_to_device(tch::Device::Cpu)
            .and_then(|t| t.f_contiguous())
            .and_then(|t| t.f_view([-1]))
            .and_then(|t| Vec::<f32>::try_from(&t))
            .torch(|| format!("reading {name} for the ONNX graph"))?;
        Ok(self.constant(name, &t.size(), &values))
    }
}

/// `name: float32 [batch, c, h, w]`.
fn value_info(name: &str, batch: Dimension, shape: Shape) -> ValueInfoProto {
    let fixed = |v: i64| Dimension { value: Some(DimValue::DimValue(v)), ..Dimension::new() };
    let tensor = onnx_protobuf::type_proto::Tensor {
        elem_type: DataType::FLOAT as i32,
        shape: Some(TensorShapeProto {
            dim: vec![batch, fixed(shape.c), fixed(shape.h), fixed(shape.w)],
            ..TensorShapeProto::new()
        })
        .into(),
        ..onnx_protobuf::type_proto::Tensor::new()
    };
    ValueInfoProto {
        name: name.to_owned(),
        type_: Some(TypeProto { value: Some(TypeValue::TensorType(tensor)), ..TypeProto::new() })
            .into(),
        ..ValueInfoProto::new()
    }
}

fn attribute(name: &str, kind: AttributeType) -> AttributeProto {
    AttributeProto { name: name.to_owned(), type_: kind.into(), ..AttributeProto::new() }
}

fn ints(name: &str, values: &[i64]) -> AttributeProto {
    AttributeProto { ints: values.to_vec(), ..attribute(name, AttributeType::INTS) }
}

fn int(name: &str, value: i64) -> AttributeProto {
    AttributeProto { i: value, ..attribute(name, AttributeType::INT) }
}

fn float(name: &str, value: f32) -> AttributeProto {
    AttributeProto { f: value, ..attribute(name, AttributeType::FLOAT) }
}

fn string(name: &str, value: &str) -> AttributeProto {
    AttributeProto { s: value.as_bytes().to_vec(), ..attribute(name, AttributeType::STRING) }
}

//! Darknet `YOLOv3` models on libtorch: cfg parsing, `.weights` I/O, the network and
//! checkpoints.
//!
//! * [`Config`] parses and validates a darknet `.cfg` (`YOLOv3`, tiny-`YOLOv3`, `YOLOv3`-SPP and
//!   their relatives) into typed [`Layer`]s and the [`HeadSpec`]s decode and the loss need.
//! * [`DarknetWeights`] reads and writes darknet `.weights` byte for byte, including partial
//!   files such as `darknet53.conv.74`.
//! * [`KerasWeights`] reads keras-yolo3's `.h5` weights into darknet's conventions.
//! * [`Detector`] is the inference layer: `Detector::load(&files, None, device)?.predict(..)`
//!   letterboxes, runs and decodes images. `yolo3 detect` predicts with it; `yolo3 eval` and
//!   `yolo3 convert` load through it, and [`evaluate`] (`yolo3 eval` and training's
//!   validation) runs its network and [`Decoder`] over a dataset, with the loss of [`YoloLoss`]
//!   (keras-yolo3's, exact, from `yolo3-core`, entered into libtorch's autograd for training).
//! * [`parse_device`] reads `--device` for every command.
//! * [`Darknet`] builds the network on a `tch` device, runs it with darknet's exact
//!   inference semantics (or batch statistics for training), loads and exports weights,
//!   splits its variables into body and heads, and saves self-contained safetensors
//!   checkpoints.
//!
//! Layer indices everywhere are darknet's: 0-based, `[net]` not counted, `[yolo]` counted.
//!
//! ```no_run
//! use yolo3_model::{Config, Darknet, DarknetWeights};
//! # fn main() -> yolo3_model::Result<()> {
//! let cfg = Config::from_file("yolov3-tiny.cfg")?;
//! let weights = DarknetWeights::read("yolov3-tiny.weights", &cfg)?;
//! let mut net = Darknet::new(cfg, tch::Device::Cpu)?;
//! net.load_darknet_weights(&weights)?;
//! let image = tch::Tensor::zeros([1, 3, 416, 416], (tch::Kind::Float, tch::Device::Cpu));
//! let heads = tch::no_grad(|| net.forward_t(&image, false))?;
//! assert_eq!(heads.len(), net.heads().len());
//! # Ok(()) }
//! ```

pub mod cfg;
pub mod checkpoint;
pub mod detector;
pub mod device;
pub mod error;
pub mod evaluate;
pub mod keras;
pub mod loss;
pub mod memory;
pub mod network;
pub mod onnx;
pub mod weights;

pub use cfg::{Activation, Config, HeadSpec, Layer, NetParams, Shape};
pub use checkpoint::{CheckpointInfo, CHECKPOINT_FORMAT};
pub use detector::{
    check_input_side, DecodeOptions, Decoder, DetectedBox, Detector, HostOutputs, InputBatch,
    KerasNetwork, ModelFiles, WeightsFormat, MAX_INPUT,
};
pub use device::{parse_device, DeviceError};
pub use error::{ModelError, Result, TorchContext};
pub use evaluate::{evaluate, EvalProgress, Evaluation};
pub use keras::KerasWeights;
pub use loss::{LossOutput, YoloLoss};
pub use network::{
    ConvEngine, Darknet, InferenceNet, ParamGroups, ReinitialisedHead, ReplicaSum, Transfer,
    Winograd, WINOGRAD_GROUPED_MAX, WINOGRAD_MIN_CHANNELS, WINOGRAD_MIN_PRODUCT,
};
pub use onnx::{onnx_bytes, OnnxOptions, ONNX_INPUT, ONNX_OPSET};
pub use weights::{ConvLayout, DarknetWeights, WeightsHeader};

//! The one error type of the crate.
//!
//! Every variant carries the context a user needs to fix the input without a debugger: the
//! file (cfg, weights or checkpoint), the line and key for cfg problems, the darknet layer
//! index for network problems, and expected versus actual counts for size mismatches.
//! Underlying errors (I/O, libtorch, safetensors) are kept as `#[source]`.

use std::path::PathBuf;

use thiserror::Error;

/// Everything that can go wrong while parsing cfgs, reading weights, building or running the
/// network and handling checkpoints.
#[derive(Debug, Error)]
pub enum ModelError {
    /// Reading or writing a file failed.
    #[error("{action} {}", path.display())]
    Io {
        /// What was being done ("reading", "writing", "renaming to").
        action: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The operating system error.
        #[source]
        source: std::io::Error,
    },

    /// A cfg line is not `[section]`, `key=value`, a comment or blank.
    #[error("{file}:{line}: {message}")]
    CfgSyntax {
        /// The cfg's name (its path, or a label for in-memory text).
        file: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },

    /// A `[section]` this crate does not implement.
    #[error("{file}:{line}: unsupported section [{section}]")]
    CfgUnsupportedSection {
        /// The cfg's name.
        file: String,
        /// 1-based line number of the section header.
        line: usize,
        /// The section name without brackets.
        section: String,
    },

    /// A key has a value that cannot be parsed or is not supported.
    #[error("{file}:{line}: [{section}] {key}={value}: {reason}")]
    CfgValue {
        /// The cfg's name.
        file: String,
        /// 1-based line number of the key.
        line: usize,
        /// The section name.
        section: &'static str,
        /// The key.
        key: &'static str,
        /// The value as written (whitespace stripped).
        value: String,
        /// Why it was rejected.
        reason: String,
    },

    /// A required key is missing from a section.
    #[error("{file}:{line}: [{section}] needs `{key}`")]
    CfgMissingKey {
        /// The cfg's name.
        file: String,
        /// 1-based line number of the section header.
        line: usize,
        /// The section name.
        section: &'static str,
        /// The missing key.
        key: &'static str,
    },

    /// The layers are individually valid but do not fit together (bad route or shortcut
    /// index, channel or spatial mismatch, a `[yolo]` with the wrong input channels...).
    #[error("{file}:{line}: layer {layer} [{section}]: {message}")]
    CfgStructure {
        /// The cfg's name.
        file: String,
        /// 1-based line number of the section header.
        line: usize,
        /// Darknet layer index (0-based, `[net]` not counted).
        layer: usize,
        /// The section name.
        section: &'static str,
        /// What is wrong.
        message: String,
    },

    /// The input size does not go through the network (spatial sizes stop matching at a
    /// route or shortcut, or a layer's output becomes empty).
    #[error("input {height}x{width}: layer {layer} [{section}]: {message}")]
    InputSize {
        /// Input height.
        height: i64,
        /// Input width.
        width: i64,
        /// Darknet layer index where it fails.
        layer: usize,
        /// The section name.
        section: &'static str,
        /// What is wrong.
        message: String,
    },

    /// A network's parameters would need more memory than the machine has available.
    #[error("{cfg}: {parameters} parameters need {needed_mb} MB; {available_mb} MB are available")]
    TooManyParameters {
        /// The cfg's name.
        cfg: String,
        /// Learned values of the convolutions.
        parameters: u64,
        /// Their float32 size, MB.
        needed_mb: u64,
        /// Available, MB.
        available_mb: u64,
    },

    /// A pass would need more memory than the machine has available.
    #[error(
        "{pass} at {side}x{side} with batch {batch} needs about {needed_mb} MB of activations; \
         {available_mb} MB are available (lower the input size or the batch)"
    )]
    OutOfMemory {
        /// Input side.
        side: u32,
        /// Images per pass.
        batch: usize,
        /// "inference" or "training".
        pass: &'static str,
        /// Estimated need, MB.
        needed_mb: u64,
        /// Available, MB.
        available_mb: u64,
    },

    /// The input tensor does not have the shape or kind the network expects.
    #[error("bad input tensor: expected {expected}, got {actual}")]
    InputTensor {
        /// What was expected.
        expected: String,
        /// What was passed.
        actual: String,
    },

    /// A `.weights` file is shorter than its header.
    #[error("{}: {actual_bytes} bytes is shorter than the {expected_bytes}-byte darknet header", path.display())]
    WeightsHeader {
        /// The weights file.
        path: PathBuf,
        /// Bytes the header needs.
        expected_bytes: u64,
        /// Bytes in the file.
        actual_bytes: u64,
    },

    /// A `.weights` file ends inside a convolutional layer.
    #[error(
        "{}: truncated inside conv #{conv} (layer {layer}): it needs the file to hold {expected_bytes} bytes \
         ({expected_floats} floats for this conv), the file has {actual_bytes}",
        path.display()
    )]
    WeightsTruncated {
        /// The weights file.
        path: PathBuf,
        /// 0-based ordinal of the conv among the cfg's convs.
        conv: usize,
        /// Its darknet layer index.
        layer: usize,
        /// Floats that conv needs.
        expected_floats: u64,
        /// File size needed to hold this conv completely.
        expected_bytes: u64,
        /// Actual file size.
        actual_bytes: u64,
    },

    /// A `.weights` file has bytes left after the cfg's last conv.
    #[error(
        "{}: {extra_bytes} trailing bytes: the cfg's {convs} convs need {expected_bytes} bytes, the file has {actual_bytes}",
        path.display()
    )]
    WeightsTrailing {
        /// The weights file.
        path: PathBuf,
        /// Number of convs in the cfg.
        convs: usize,
        /// File size the cfg needs.
        expected_bytes: u64,
        /// Actual file size.
        actual_bytes: u64,
        /// `actual_bytes - expected_bytes`.
        extra_bytes: u64,
    },

    /// A `.weights` file holds a value no network can use (NaN, infinity, negative variance).
    #[error("{}: conv #{conv} (layer {layer}): {message}", path.display())]
    WeightsValue {
        /// The weights file.
        path: PathBuf,
        /// 0-based ordinal of the conv among the cfg's convs.
        conv: usize,
        /// Its darknet layer index.
        layer: usize,
        /// Which value and what is wrong with it.
        message: String,
    },

    /// Weights given to a network do not match its convs.
    #[error("weights for conv #{conv} (layer {layer}): {message}")]
    WeightsMismatch {
        /// 0-based ordinal of the conv.
        conv: usize,
        /// Its darknet layer index.
        layer: usize,
        /// What is wrong.
        message: String,
    },

    /// The `[yolo]` heads of a cfg cannot be decoded or trained together.
    #[error("{cfg}: {message}")]
    Heads {
        /// The cfg.
        cfg: String,
        /// What is wrong.
        message: String,
    },
    /// A `yolo3-core` computation (decode, anchors) failed.
    #[error("{context}")]
    Core {
        /// What was being done.
        context: String,
        /// The core's error.
        #[source]
        source: yolo3_core::CoreError,
    },
    /// A class-name file or image could not be read.
    #[error(transparent)]
    Data(#[from] yolo3_data::DataError),
    /// The detections of an evaluation could not be scored.
    #[error("evaluation")]
    Metrics(#[from] yolo3_core::metrics::MetricsError),
    /// A device name that cannot be used.
    #[error(transparent)]
    Device(#[from] crate::device::DeviceError),
    /// Darknet weights that do not fill every conv, given for inference.
    #[error(
        "{}: holds {loaded} of the {total} convolutions of {cfg}; detection and evaluation need \
         them all (a partial file such as darknet53.conv.74 only initialises training)",
        path.display()
    )]
    PartialWeights {
        /// The weights file.
        path: PathBuf,
        /// Convs the file fills.
        loaded: usize,
        /// Convs of the network.
        total: usize,
        /// The cfg.
        cfg: String,
    },
    /// Class names that do not match the network's class count.
    #[error("{given} class names, but the network has {classes} classes")]
    ClassNames {
        /// Names given.
        given: usize,
        /// Classes of the heads.
        classes: usize,
    },
    /// A dataset whose classes are not the model's.
    #[error(
        "class {class} is {dataset:?} in the dataset and {model_name:?} in the model {model}: \
         the two do not name the same classes (give the model's class file with --classes, or \
         use a dataset with its classes)"
    )]
    ClassMismatch {
        /// The model file.
        model: String,
        /// The first class index that differs.
        class: usize,
        /// The dataset's name of it.
        dataset: String,
        /// The model's name of it.
        model_name: String,
    },
    /// A dataset with another number of classes than the model.
    #[error("the dataset has {dataset} classes, the model {model_classes} ({model})")]
    ClassCount {
        /// The model file.
        model: String,
        /// The dataset's classes.
        dataset: usize,
        /// The model's classes.
        model_classes: usize,
    },
    /// A network input side that is not a multiple of 32 in range.
    #[error(
        "{model}: the model's input side {side} (its checkpoint's training input, else its cfg's \
         width) is not a multiple of 32 in 32..={max}; give the input side explicitly"
    )]
    InputSide {
        /// The model or option the side came from.
        model: String,
        /// The side.
        side: u32,
        /// The largest side.
        max: u32,
    },
    /// A libtorch operation failed.
    #[error("libtorch: {context}")]
    Torch {
        /// What was being done.
        context: String,
        /// libtorch's error.
        #[source]
        source: tch::TchError,
    },

    /// The ONNX graph could not be serialised.
    #[error("serialising the ONNX model")]
    Onnx {
        /// The protobuf encoder's error.
        #[source]
        source: protobuf::Error,
    },

    /// A checkpoint file is not valid safetensors.
    #[error("{}: not a valid safetensors checkpoint", path.display())]
    CheckpointFormat {
        /// The checkpoint.
        path: PathBuf,
        /// The safetensors error.
        #[source]
        source: safetensors::SafeTensorError,
    },

    /// A checkpoint's metadata is missing or malformed.
    #[error("{}: checkpoint metadata `{key}`: {message}", path.display())]
    CheckpointMetadata {
        /// The checkpoint.
        path: PathBuf,
        /// The metadata key.
        key: String,
        /// What is wrong.
        message: String,
    },

    /// A checkpoint's tensors do not match the network built from its cfg.
    #[error("{}: tensor `{name}`: {message}", path.display())]
    CheckpointTensor {
        /// The checkpoint.
        path: PathBuf,
        /// The tensor name.
        name: String,
        /// What is wrong (missing, unexpected, shape or dtype).
        message: String,
    },

    /// A file given as Keras weights is not HDF5, or not laid out as Keras saves a model.
    #[error("{}: {message}", path.display())]
    KerasFile {
        /// The `.h5` file.
        path: PathBuf,
        /// What is wrong, or what was being read.
        message: String,
        /// The HDF5 reader's error, when there is one.
        #[source]
        source: Option<hdf5_reader::error::Error>,
    },

    /// A layer of a Keras weights file lacks a weight, holds an unusable value or does not
    /// have the shape the network needs.
    #[error("{}: layer `{layer}`: {message}", path.display())]
    KerasLayer {
        /// The `.h5` file.
        path: PathBuf,
        /// The Keras layer name (`conv2d_12`, `batch_normalization_3`).
        layer: String,
        /// What is wrong, with the shapes on a mismatch.
        message: String,
        /// The HDF5 reader's error, when there is one.
        #[source]
        source: Option<hdf5_reader::error::Error>,
    },
}

/// The crate's result type.
pub type Result<T, E = ModelError> = std::result::Result<T, E>;

/// Attaches a context string to a libtorch error.
pub trait TorchContext<T> {
    /// Maps a [`tch::TchError`] into [`ModelError::Torch`] with `context`.
    fn torch(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> TorchContext<T> for std::result::Result<T, tch::TchError> {
    fn torch(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| ModelError::Torch { context: context(), source })
    }
}

//! Self-contained checkpoints: every variable and batch-norm buffer of a [`Darknet`] as
//! safetensors, with the cfg text and the class names in the metadata.
//!
//! Conventions: tensor names are the `VarStore` names (see the network's conv module),
//! float32, on disk in little-endian row-major order. Metadata keys: `format`
//! ([`CHECKPOINT_FORMAT`]), `cfg` (the cfg text), `cfg_name`, `class_names` (a JSON array)
//! and `extra` (a JSON object of caller strings such as the epoch). A checkpoint is written
//! to a temporary file in the target folder and renamed over the target, so an existing
//! finished checkpoint is never lost. Loading validates every name, dtype and shape before
//! copying anything. The same network and metadata always give the same bytes
//! ([`serialize_reproducible`]).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use tch::{Device, Kind, Tensor};

use crate::cfg::Config;
use crate::error::{ModelError, Result, TorchContext};
use crate::network::Darknet;
use crate::weights::io_err;
use yolo3_io::fsio::Existing;

/// Value of the `format` metadata key.
pub const CHECKPOINT_FORMAT: &str = "yolo3-darknet-checkpoint/1";

/// What a checkpoint stores besides the tensors and the cfg.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckpointInfo {
    /// Class names, index = class id.
    pub class_names: Vec<String>,
    /// Free-form caller data (epoch, optimizer step, ...).
    pub extra: BTreeMap<String, String>,
}

fn io_read(path: &Path) -> Result<Vec<u8>> {
    yolo3_io::fsio::read_bytes(path).map_err(|source| ModelError::Io {
        action: "reading",
        path: path.to_owned(),
        source,
    })
}

fn meta_err(path: &Path, key: &str, message: impl Into<String>) -> ModelError {
    ModelError::CheckpointMetadata {
        path: path.to_owned(),
        key: key.to_owned(),
        message: message.into(),
    }
}

fn tensor_err(path: &Path, name: &str, message: impl Into<String>) -> ModelError {
    ModelError::CheckpointTensor {
        path: path.to_owned(),
        name: name.to_owned(),
        message: message.into(),
    }
}

/// The checkpoint's metadata, parsed.
struct Header {
    cfg_text: String,
    cfg_name: String,
    info: CheckpointInfo,
}

fn read_header(bytes: &[u8], path: &Path) -> Result<Header> {
    let (_, metadata) = SafeTensors::read_metadata(bytes)
        .map_err(|source| ModelError::CheckpointFormat { path: path.to_owned(), source })?;
    let empty = HashMap::new();
    let meta = metadata.metadata().as_ref().unwrap_or(&empty);
    let get = |key: &str| meta.get(key).ok_or_else(|| meta_err(path, key, "missing"));
    let format = get("format")?;
    if format != CHECKPOINT_FORMAT {
        return Err(meta_err(
            path,
            "format",
            format!("`{format}`, expected `{CHECKPOINT_FORMAT}`"),
        ));
    }
    let class_names = serde_json::from_str(get("class_names")?)
        .map_err(|e| meta_err(path, "class_names", format!("not a JSON array of strings: {e}")))?;
    let extra = match meta.get("extra") {
        Some(s) => serde_json::from_str(s)
            .map_err(|e| meta_err(path, "extra", format!("not a JSON object of strings: {e}")))?,
        None => BTreeMap::new(),
    };
    Ok(Header {
        cfg_text: get("cfg")?.clone(),
        cfg_name: meta.get("cfg_name").cloned().unwrap_or_default(),
        info: CheckpointInfo { class_names, extra },
    })
}

/// Refuses a checkpoint whose cfg describes more parameters than its tensors hold, before the
/// network is built: building allocates and initialises every variable the cfg names, so a
/// cfg edited to `size=2000` would otherwise take gigabytes and many seconds (or abort the
/// process) only to fail the shape comparison afterwards. A network no larger than the file
/// is built and compared tensor by tensor as usual, for the precise message.
fn check_cfg_fits_file(cfg: &Config, bytes: &[u8], path: &Path) -> Result<()> {
    let file = SafeTensors::deserialize(bytes)
        .map_err(|source| ModelError::CheckpointFormat { path: path.to_owned(), source })?;
    let held: u64 = file
        .tensors()
        .iter()
        .map(|(_, v)| v.shape().iter().product::<usize>() as u64)
        .fold(0, u64::saturating_add);
    let needed = cfg.parameter_count();
    if needed > held {
        return Err(meta_err(
            path,
            "cfg",
            format!(
                "its convolutions have {needed} parameters, but the file's tensors hold only \
                 {held} values"
            ),
        ));
    }
    Ok(())
}

/// safetensors' bytes of `tensors` and `metadata` with the header's keys in sorted order, so
/// that the same tensors and metadata always give the same file: safetensors writes its
/// metadata map in hash order, which changes from one process to the next, and a checkpoint
/// whose bytes change with nothing in it changed defeats checksums and reproducibility checks.
pub fn serialize_reproducible<'a, V: safetensors::View + 'a>(
    tensors: impl IntoIterator<Item = (&'a str, V)>,
    metadata: BTreeMap<String, String>,
) -> std::result::Result<Vec<u8>, safetensors::SafeTensorError> {
    #[derive(serde::Serialize, serde::Deserialize)]
    struct Info {
        dtype: String,
        shape: Vec<usize>,
        data_offsets: [usize; 2],
    }
    #[derive(serde::Serialize, serde::Deserialize)]
    struct Header {
        #[serde(rename = "__metadata__", default, skip_serializing_if = "Option::is_none")]
        metadata: Option<BTreeMap<String, String>>,
        #[serde(flatten)]
        tensors: BTreeMap<String, Info>,
    }
    let metadata = (!metadata.is_empty()).then(|| metadata.into_iter().collect());
    let bytes = safetensors::serialize(tensors, metadata)?;
    let length = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    let header: Header =
        serde_json::from_slice(&bytes[8..8 + length]).expect("safetensors writes a valid header");
    let mut text = serde_json::to_vec(&header).expect("plain data serialises");
    // The data starts 8-byte aligned, as safetensors pads it: with spaces.
    text.resize(text.len().next_multiple_of(8), b' ');
    let mut out = Vec::with_capacity(8 + text.len() + bytes.len() - 8 - length);
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(&text);
    out.extend_from_slice(&bytes[8 + length..]);
    Ok(out)
}

impl Darknet {
    /// Saves every variable and buffer with the cfg text and `info` to `path` (over an
    /// existing file only with [`Existing::Replace`]).
    pub fn save_checkpoint(
        &self,
        path: impl AsRef<Path>,
        info: &CheckpointInfo,
        existing: Existing,
    ) -> Result<()> {
        let path = path.as_ref();
        let mut names: Vec<(String, Tensor)> = self.var_store().variables().into_iter().collect();
        names.sort_by(|a, b| a.0.cmp(&b.0));
        let mut data: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::with_capacity(names.len());
        for (name, tensor) in names {
            let t = tensor
                .f_detach()
                .and_then(|t| t.f_to_device(Device::Cpu))
                .and_then(|t| t.f_to_kind(Kind::Float))
                .and_then(|t| t.f_contiguous())
                .torch(|| format!("reading `{name}` for the checkpoint"))?;
            let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
            let mut bytes = vec![0u8; t.numel() * 4];
            t.f_copy_data_u8(&mut bytes, t.numel()).torch(|| format!("copying `{name}`"))?;
            data.push((name, shape, bytes));
        }
        let views = data
            .iter()
            .map(|(name, shape, bytes)| {
                TensorView::new(Dtype::F32, shape.clone(), bytes)
                    .map(|v| (name.as_str(), v))
                    .map_err(|source| ModelError::CheckpointFormat {
                        path: path.to_owned(),
                        source,
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        // String lists and string maps always serialise.
        let class_names = serde_json::to_string(&info.class_names).expect("strings serialise");
        let extra = serde_json::to_string(&info.extra).expect("strings serialise");
        let metadata = BTreeMap::from([
            ("format".to_owned(), CHECKPOINT_FORMAT.to_owned()),
            ("cfg".to_owned(), self.config().text().to_owned()),
            ("cfg_name".to_owned(), self.config().name().to_owned()),
            ("class_names".to_owned(), class_names),
            ("extra".to_owned(), extra),
        ]);
        let bytes = serialize_reproducible(views, metadata)
            .map_err(|source| ModelError::CheckpointFormat { path: path.to_owned(), source })?;
        yolo3_io::fsio::write_atomic(path, &bytes, existing).map_err(io_err("writing", path))
    }

    /// Builds a network from a checkpoint's own cfg on `device` and loads its tensors.
    pub fn from_checkpoint(
        path: impl AsRef<Path>,
        device: Device,
    ) -> Result<(Self, CheckpointInfo)> {
        let path = path.as_ref();
        let bytes = io_read(path)?;
        let header = read_header(&bytes, path)?;
        let name = if header.cfg_name.is_empty() {
            format!("{}#cfg", path.display())
        } else {
            header.cfg_name.clone()
        };
        let cfg = Config::parse(&header.cfg_text, &name)?;
        check_cfg_fits_file(&cfg, &bytes, path)?;
        let mut net = Self::new(cfg, device)?;
        net.load_tensors(&bytes, path, &[])?;
        Ok((net, header.info))
    }

    /// Loads a checkpoint's tensors into this network, which must have the same variables.
    /// The checkpoint's cfg text is not compared, only names, dtypes and shapes.
    pub fn load_checkpoint(&mut self, path: impl AsRef<Path>) -> Result<CheckpointInfo> {
        let path = path.as_ref();
        let bytes = io_read(path)?;
        let header = read_header(&bytes, path)?;
        self.load_tensors(&bytes, path, &[])?;
        Ok(header.info)
    }

    /// Loads a checkpoint of the same network with other heads (another class or anchor
    /// count) by shape: every tensor whose shape is the network's is loaded, and the heads
    /// whose shapes differ keep their initialisation. Any other difference is an error.
    pub fn transfer_checkpoint(
        &mut self,
        path: impl AsRef<Path>,
    ) -> Result<(crate::network::Transfer, CheckpointInfo)> {
        let path = path.as_ref();
        let bytes = io_read(path)?;
        let header = read_header(&bytes, path)?;
        let heads = self.config().head_conv_layers();
        let reinitialised = self.load_tensors(&bytes, path, &heads)?;
        let mut transfer = self.empty_transfer();
        transfer.loaded = transfer.total - reinitialised.len();
        transfer.reinitialised = reinitialised;
        Ok((transfer, header.info))
    }

    /// Loads every variable from the checkpoint. The convs of `flexible_layers` may have
    /// another shape there; they are left as they are and returned.
    fn load_tensors(
        &mut self,
        bytes: &[u8],
        path: &Path,
        flexible_layers: &[usize],
    ) -> Result<Vec<crate::network::ReinitialisedHead>> {
        let file = SafeTensors::deserialize(bytes)
            .map_err(|source| ModelError::CheckpointFormat { path: path.to_owned(), source })?;
        let vars = self.var_store().variables();
        if let Some(extra) = file.names().into_iter().find(|n| !vars.contains_key(*n)) {
            return Err(tensor_err(path, extra, "not a variable of this network"));
        }
        let mut loads = Vec::with_capacity(vars.len());
        let mut skipped = Vec::new();
        for (name, var) in &vars {
            let view = file
                .tensor(name)
                .map_err(|_| tensor_err(path, name, "missing from the checkpoint"))?;
            if view.dtype() != Dtype::F32 {
                return Err(tensor_err(
                    path,
                    name,
                    format!("dtype {:?}, expected F32", view.dtype()),
                ));
            }
            let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
            let floats =
                view.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]));
            if let Some((i, v)) = floats.enumerate().find(|(_, v)| !v.is_finite()) {
                return Err(tensor_err(path, name, format!("element {i} is {v}, not finite")));
            }
            let layer =
                flexible_layers.iter().copied().find(|l| name.starts_with(&format!("layers.{l}.")));
            if let (Some(layer), true) = (layer, shape != var.size()) {
                if !skipped.iter().any(|h: &crate::network::ReinitialisedHead| h.layer == layer) {
                    skipped.push(crate::network::ReinitialisedHead {
                        layer,
                        file_filters: shape.first().copied().unwrap_or(0) as usize,
                        filters: var.size().first().copied().unwrap_or(0) as usize,
                    });
                }
                continue;
            }
            if shape != var.size() {
                return Err(tensor_err(
                    path,
                    name,
                    format!("shape {shape:?}, the network has {:?}", var.size()),
                ));
            }
            loads.push((name, var, view, shape));
        }
        for (name, var, view, shape) in loads {
            let context = || format!("loading `{name}`");
            let values =
                Tensor::f_from_data_size(view.data(), &shape, Kind::Float).torch(context)?;
            tch::no_grad(|| var.shallow_clone().f_copy_(&values)).torch(context)?;
        }
        skipped.sort_by_key(|h| h.layer);
        Ok(skipped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_tensors_and_metadata_give_the_same_bytes() {
        let data: Vec<u8> = (0..24).collect();
        let bytes: Vec<Vec<u8>> = (0..6)
            .map(|_| {
                let views = ["b", "a"]
                    .map(|n| (n, TensorView::new(Dtype::F32, vec![2, 3], &data).unwrap()));
                let metadata: BTreeMap<String, String> =
                    (0..8).map(|k| (format!("key{k}"), format!("value {k}"))).collect();
                serialize_reproducible(views, metadata).unwrap()
            })
            .collect();
        assert!(bytes.windows(2).all(|w| w[0] == w[1]), "the bytes differ between calls");
        let (_, meta) = SafeTensors::read_metadata(&bytes[0]).unwrap();
        assert_eq!(meta.metadata().as_ref().unwrap()["key7"], "value 7");
        let read = SafeTensors::deserialize(&bytes[0]).unwrap();
        assert_eq!(read.tensor("a").unwrap().data(), &data[..]);
        assert_eq!(read.tensor("b").unwrap().shape(), [2, 3]);
    }
}

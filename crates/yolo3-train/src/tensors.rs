//! Named tensors to and from safetensors files with string metadata, for the optimizer and
//! schedule state that rides along with each checkpoint.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use safetensors::{Dtype, SafeTensors, View};
use tch::{Device, Kind, Tensor};

use yolo3_io::fsio::FileError;
use yolo3_model::TorchContext as _;

use crate::error::{Result, TrainError};

struct Bytes {
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl View for &Bytes {
    fn dtype(&self) -> Dtype {
        Dtype::F32
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        std::borrow::Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

/// Writes `tensors` (converted to CPU `f32`) and `metadata` to `path`, atomically.
pub(crate) fn save(
    path: &Path,
    tensors: &[(String, Tensor)],
    metadata: BTreeMap<String, String>,
) -> Result<()> {
    let mut data = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        let t = t
            .f_detach()
            .and_then(|t| t.f_to_device(Device::Cpu))
            .and_then(|t| t.f_to_kind(Kind::Float))
            .and_then(|t| t.f_contiguous())
            .torch(|| format!("saving `{name}`"))?;
        let mut bytes = vec![0u8; t.numel() * 4];
        t.f_copy_data_u8(&mut bytes, t.numel()).torch(|| format!("saving `{name}`"))?;
        data.push((
            name.clone(),
            Bytes { shape: t.size().iter().map(|&d| d as usize).collect(), data: bytes },
        ));
    }
    let views: Vec<(&str, &Bytes)> = data.iter().map(|(n, b)| (n.as_str(), b)).collect();
    let bytes = yolo3_model::checkpoint::serialize_reproducible(views, metadata)
        .map_err(|e| TrainError::format(path, "encoding the tensors", e))?;
    yolo3_io::fsio::write_atomic(path, &bytes, yolo3_io::fsio::Existing::Replace)
        .map_err(FileError::on("writing", path))?;
    Ok(())
}

/// Named tensors and the metadata of a file.
pub(crate) type Loaded = (HashMap<String, Tensor>, HashMap<String, String>);

/// Parses the bytes of a file written by [`save`]; `path` names them in errors.
pub(crate) fn parse(bytes: &[u8], path: &Path) -> Result<Loaded> {
    let bad = |e| TrainError::format(path, "not a valid safetensors file", e);
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(bad)?;
    let metadata = meta.metadata().clone().unwrap_or_default();
    let st = SafeTensors::deserialize(bytes).map_err(bad)?;
    let mut tensors = HashMap::new();
    for (name, view) in st.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(TrainError::RunFile {
                path: path.to_owned(),
                message: format!("`{name}` is not F32"),
            });
        }
        let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        let t = Tensor::f_from_data_size(view.data(), &shape, Kind::Float)
            .torch(|| format!("loading `{name}`"))?;
        tensors.insert(name, t);
    }
    Ok((tensors, metadata))
}

//! The Keras 2 / tf.keras HDF5 weight layout, read into plain arrays.
//!
//! `model.save_weights` writes, at the file's root, the attribute `layer_names` (every layer
//! of `model.layers`, weightless ones included) and one group per layer whose attribute
//! `weight_names` lists its weights (`conv2d_3/kernel:0`, ...); each weight is the dataset at
//! that name inside the layer's group. `model.save` writes the same under the group
//! `model_weights`. Keras splits an attribute above 64 KB into `layer_names0`,
//! `layer_names1`, ...; both forms are read. A layer without weights has an empty (float)
//! `weight_names`. A weight belongs to the layer its name starts with (`conv2d_3/kernel:0`):
//! the group's own layer, or, when a model was saved with another model inside it as a layer,
//! each layer of that model (whose group holds them all). Values are read as float32, as
//! Keras writes them.

use std::path::Path;

use hdf5_reader::error::Error as HdfError;
use hdf5_reader::group::Group;
use hdf5_reader::{Hdf5File, OpenOptions};

use crate::error::{ModelError, Result};

/// One weight of a layer.
pub(super) struct Weight {
    /// The weight's own name: `kernel`, `bias`, `gamma`, `moving_variance`, ...
    pub name: String,
    /// Its shape as stored (`[kh, kw, in, out]` for a kernel).
    pub shape: Vec<usize>,
    /// Its values, row-major.
    pub values: Vec<f32>,
}

/// A layer that has weights, in `layer_names` order (then weight order within a group).
pub(super) struct Layer {
    /// The Keras layer name.
    pub name: String,
    /// Its weights in `weight_names` order.
    pub weights: Vec<Weight>,
}

impl Layer {
    /// The weight called `name`.
    pub(super) fn weight(&self, name: &str) -> Option<&Weight> {
        self.weights.iter().find(|w| w.name == name)
    }
}

/// The reader's error without its object-path wrappers: it prints the cause inside that
/// message too, and the layer and weight named here already say where.
fn cause(mut source: HdfError) -> HdfError {
    while let HdfError::Context { source: inner, .. } = source {
        source = *inner;
    }
    source
}

fn file_err(path: &Path, message: impl Into<String>, source: Option<HdfError>) -> ModelError {
    ModelError::KerasFile {
        path: path.to_owned(),
        message: message.into(),
        source: source.map(cause),
    }
}

pub(super) fn layer_err(
    path: &Path,
    layer: &str,
    message: impl Into<String>,
    source: Option<HdfError>,
) -> ModelError {
    ModelError::KerasLayer {
        path: path.to_owned(),
        layer: layer.to_owned(),
        message: message.into(),
        source: source.map(cause),
    }
}

/// The string-list attribute `name` of `group`, joined from Keras' chunks when it was split;
/// `None` when the group has neither form.
fn string_list(group: &Group, name: &str) -> Option<Result<Vec<String>, HdfError>> {
    let read = |attr: hdf5_reader::Attribute| match attr.num_elements() {
        Ok(0) => Ok(Vec::new()),
        _ => attr.read_strings(),
    };
    if let Ok(attr) = group.attribute(name) {
        return Some(read(attr));
    }
    let mut all = Vec::new();
    for chunk in 0.. {
        let Ok(attr) = group.attribute(&format!("{name}{chunk}")) else {
            return (chunk > 0).then_some(Ok(all));
        };
        match read(attr) {
            Ok(part) => all.extend(part),
            Err(e) => return Some(Err(e)),
        }
    }
    unreachable!("the loop returns")
}

/// Reads every layer that has weights from the Keras file at `path`. A file shorter than its
/// HDF5 superblock says is reported as truncated, naming the first layer it cuts off.
pub(super) fn read_layers(path: &Path) -> Result<Vec<Layer>> {
    let bytes = yolo3_io::fsio::read_bytes(path).map_err(|source| ModelError::Io {
        action: "reading",
        path: path.to_owned(),
        source,
    })?;
    // Keras stores weights uncompressed, so no weight holds more bytes than the file; the
    // bound (with room for a file someone compressed) keeps a corrupt shape from allocating.
    let budget = bytes.len().saturating_mul(16).max(1 << 20);
    let len = bytes.len() as u64;
    let options = OpenOptions::default().with_max_read_bytes(budget);
    let file = Hdf5File::from_vec_with_options(bytes, options)
        .map_err(|e| file_err(path, "not an HDF5 file", Some(e)))?;
    let end = file.superblock().base_address.saturating_add(file.superblock().eof_address);
    let read = read_file(&file, path, budget);
    if len >= end {
        return read;
    }
    let message = format!("truncated: its HDF5 superblock gives {end} bytes, the file has {len}");
    Err(match read {
        Err(ModelError::KerasLayer { layer, source, .. }) => {
            ModelError::KerasLayer { path: path.to_owned(), layer, message, source }
        }
        Err(ModelError::KerasFile { source, .. }) => {
            ModelError::KerasFile { path: path.to_owned(), message, source }
        }
        _ => file_err(path, message, None),
    })
}

fn read_file(file: &Hdf5File, path: &Path, budget: usize) -> Result<Vec<Layer>> {
    let root = file.root_group().map_err(|e| file_err(path, "reading the root group", Some(e)))?;
    let (base, names) = if let Some(names) = string_list(&root, "layer_names") {
        (String::new(), names)
    } else {
        let listed = root.group("model_weights").ok().and_then(|g| string_list(&g, "layer_names"));
        let Some(names) = listed else {
            return Err(file_err(
                path,
                "no `layer_names` attribute at the root or in `model_weights`: not weights saved \
                 by Keras 2 or tf.keras (`save_weights` or `save` to .h5)",
                None,
            ));
        };
        ("model_weights/".to_owned(), names)
    };
    let names = names.map_err(|e| file_err(path, "reading `layer_names`", Some(e)))?;
    let mut layers = Vec::new();
    for name in names {
        let err = |message: String, e: Option<HdfError>| layer_err(path, &name, message, e);
        let group = file
            .group(&format!("{base}{name}"))
            .map_err(|e| err("listed in `layer_names`, but not readable".into(), Some(e)))?;
        let weight_names = string_list(&group, "weight_names")
            .ok_or_else(|| err("no `weight_names` attribute".into(), None))?
            .map_err(|e| err("reading `weight_names`".into(), Some(e)))?;
        for full in weight_names {
            let dataset = file
                .dataset(&format!("{base}{name}/{full}"))
                .map_err(|e| err(format!("weight `{full}`"), Some(e)))?;
            let shape: Vec<usize> = dataset.shape().iter().map(|&d| d as usize).collect();
            let count = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
            let Some(count) = count.filter(|n| n.saturating_mul(4) <= budget) else {
                return Err(err(
                    format!("weight `{full}` has shape {shape:?}, more values than the file holds"),
                    None,
                ));
            };
            let mut values = vec![0f32; count];
            dataset
                .read_into(&mut values)
                .map_err(|e| err(format!("reading weight `{full}` as float32"), Some(e)))?;
            // `owner/kernel:0`: the owner is this group's layer, or a layer of a nested model.
            let (owner, short) = full.rsplit_once('/').unwrap_or((&name, &full));
            let owner = owner.rsplit('/').next().unwrap_or(owner);
            let short = short.split_once(':').map_or(short, |(n, _)| n);
            let weight = Weight { name: short.to_owned(), shape, values };
            match layers.iter_mut().rfind(|l: &&mut Layer| l.name == owner) {
                Some(layer) => layer.weights.push(weight),
                None => layers.push(Layer { name: owner.to_owned(), weights: vec![weight] }),
            }
        }
    }
    Ok(layers)
}

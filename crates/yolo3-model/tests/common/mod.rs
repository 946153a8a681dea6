//! Helpers shared by the integration tests: where the reference data lives and how to read
//! safetensors cases.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::SafeTensors;
use tch::{Kind, Tensor};

/// `shared/models`, beside the checkout.
pub(crate) fn models_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/models"))
}

/// The folders holding case files: `YOLO3_MODEL_CASES_DIRS` (colon-separated) or
/// `shared/models/cases`.
pub(crate) fn case_dirs() -> Vec<PathBuf> {
    match std::env::var("YOLO3_MODEL_CASES_DIRS") {
        Ok(dirs) if !dirs.trim().is_empty() => {
            dirs.split(':').filter(|d| !d.is_empty()).map(PathBuf::from).collect()
        }
        _ => vec![models_dir().join("cases")],
    }
}

/// One case file, fully read.
pub(crate) struct Case {
    pub path: PathBuf,
    pub metadata: HashMap<String, String>,
    pub tensors: HashMap<String, Tensor>,
}

impl Case {
    pub(crate) fn read(path: &Path) -> Case {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
        let metadata = meta.metadata().clone().unwrap_or_default();
        let file = SafeTensors::deserialize(&bytes).unwrap();
        let tensors = file
            .tensors()
            .into_iter()
            .filter(|(_, v)| v.dtype() == safetensors::Dtype::F32)
            .map(|(name, v)| {
                let shape: Vec<i64> = v.shape().iter().map(|&d| d as i64).collect();
                (name, Tensor::from_data_size(v.data(), &shape, Kind::Float))
            })
            .collect();
        Case { path: path.to_owned(), metadata, tensors }
    }

    /// A path from the metadata, relative to the parent of the case's folder.
    pub(crate) fn resolve(&self, key: &str) -> PathBuf {
        let rel = self
            .metadata
            .get(key)
            .unwrap_or_else(|| panic!("{}: no `{key}` in metadata", self.path.display()));
        self.path.parent().and_then(Path::parent).expect("case folder has a parent").join(rel)
    }
}

/// Every `*.safetensors` in the case folders, sorted.
pub(crate) fn case_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in case_dirs() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "safetensors") {
                files.push(p);
            }
        }
    }
    files.sort();
    files
}

/// The project's venv python (`scripts/setup.sh` makes it: torch, h5py, onnxruntime).
pub(crate) fn venv_python() -> PathBuf {
    let venv = std::env::var_os("YOLO3_VENV").map_or_else(
        || PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/yolo3/venv"),
        PathBuf::from,
    );
    venv.join("bin/python")
}

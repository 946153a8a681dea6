//! Robustness of the model-side readers: darknet cfg ([`Config::parse`] /
//! [`Config::from_file`]), darknet `.weights` ([`DarknetWeights::from_bytes`] /
//! [`DarknetWeights::read`]), safetensors checkpoints ([`Darknet::from_checkpoint`] /
//! [`Darknet::load_checkpoint`]) and keras `.h5` weights ([`KerasWeights::read`], seeded by
//! `scripts/gen-keras-h5.py` with the venv's python).
//!
//! Every reader is fed arbitrary bytes and valid files changed by a few edits: cfg text with
//! numbers replaced by huge, negative, NaN or empty ones, keys and sections dropped or
//! duplicated, lines cut, bytes spliced in; `.weights` files with rewritten header fields, cut
//! at or near conv boundaries, with bytes flipped or appended; checkpoints with flipped bytes,
//! a rewritten header or header length, edited metadata (the cfg text included), and tensors
//! dropped, renamed, re-typed or re-shaped. A reader must return a value or a typed
//! [`ModelError`], never panic and never hang (each case runs on its own thread under a time
//! bound, see `fuzz_support`). Accepted values are checked where it is cheap: a cfg's own
//! input size goes through `output_shapes` (or fails with an error) and its convs can be
//! measured for a `.weights` file; weights have the cfg's shapes, write back to the same bytes
//! and load into the network; a loaded checkpoint has the file's tensors.
//!
//! The network of the weights and checkpoint cases is tiny (a few channels) so each case
//! builds it in milliseconds.
//!
//! `cargo test -p yolo3-model --test fuzz` runs a bounded number of cases per reader;
//! `cargo test -p yolo3-model --test fuzz -- --ignored fuzz_<reader>_long` runs one reader for
//! `YOLO3_FUZZ_SECONDS` (default 600) and prints how many cases ran.

mod common;
#[path = "../../yolo3-core/tests/fuzz_support/mod.rs"]
mod fuzz_support;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use yolo3_io::fsio::Existing;

use proptest::prelude::*;
use proptest::sample::Index;
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use tch::Device;
use yolo3_model::{
    CheckpointInfo, Config, ConvLayout, Darknet, DarknetWeights, KerasWeights, Layer, ModelError,
    WeightsHeader, CHECKPOINT_FORMAT,
};

use fuzz_support::{arbitrary, edit, fuzz, fuzz_long, next_id, text_input, Bytes, Check, Edit};

/// A tiny two-head network with every layer kind: batch-normalised and plain convs, a
/// maxpool, a shortcut, routes and an upsample.
const TINY_CFG: &str = "[net]
batch=2
subdivisions=1
width=32
height=32
channels=3
momentum=0.9
decay=0.0005
learning_rate=0.001
burn_in=10
max_batches=200
policy=steps
steps=100,150
scales=.1,.1

[convolutional]
batch_normalize=1
filters=4
size=3
stride=2
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
filters=8
size=3
stride=1
pad=1
activation=leaky

[convolutional]
batch_normalize=1
filters=8
size=1
stride=1
pad=1
activation=relu

[shortcut]
from=-2
activation=linear

[convolutional]
size=1
stride=1
pad=1
filters=18
activation=linear

[yolo]
mask = 3,4,5
anchors = 4,5,  8,9,  12,14,  16,20,  24,22,  30,30
classes=1
num=6
jitter=.3
ignore_thresh = .7
truth_thresh = 1
random=0

[route]
layers = -4

[upsample]
stride=2

[route]
layers = -1, 0

[convolutional]
size=1
stride=1
pad=1
filters=18
activation=linear

[yolo]
mask = 0,1,2
anchors = 4,5,  8,9,  12,14,  16,20,  24,22,  30,30
classes=1
num=6
";

fn tiny_config() -> Config {
    Config::parse(TINY_CFG, "tiny.cfg").expect("the tiny cfg parses")
}

/// A folder for the case files of this test binary.
fn scratch() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().unwrap()).path()
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    std::fs::write(path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

// ------------------------------------------------------------------ cfg

/// The shared reference cfgs beside the checkout, when present.
fn shared_cfg(name: &str) -> Option<String> {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/models/cfg"));
    std::fs::read_to_string(dir.join(name)).ok()
}

fn cfg_seeds() -> Vec<&'static str> {
    static SEEDS: OnceLock<Vec<&'static str>> = OnceLock::new();
    SEEDS
        .get_or_init(|| {
            let mut seeds = vec![TINY_CFG];
            for name in ["yolov3-tiny.cfg", "yolov3-spp.cfg"] {
                if let Some(text) = shared_cfg(name) {
                    seeds.push(Box::leak(text.into_boxed_str()));
                }
            }
            seeds
        })
        .clone()
}

const CFG_TOKENS: &[&str] = &[
    "[net]",
    "[convolutional]",
    "[maxpool]",
    "[upsample]",
    "[route]",
    "[shortcut]",
    "[yolo]",
    "\n",
    "=",
    ",",
    " ",
    "#",
    "width=",
    "height=",
    "channels=",
    "filters=",
    "size=",
    "stride=",
    "pad=",
    "layers=",
    "from=",
    "mask=",
    "anchors=",
    "classes=",
    "num=",
    "batch_normalize=",
    "activation=leaky",
    "1",
    "2",
    "3",
    "18",
    "-1",
    "-4",
    "0",
    "9999999999",
];

/// Checks an accepted cfg and what its consumers compute from it.
fn check_config(cfg: &Config) -> Result<(), String> {
    let n = cfg.layers().len();
    if n == 0 || cfg.channels().len() != n {
        return Err(format!("{n} layers, {} channel counts", cfg.channels().len()));
    }
    for h in cfg.heads() {
        if h.anchors.len() != h.mask.len() || h.stride < 1 {
            return Err(format!("head {h:?} is inconsistent"));
        }
        if cfg.channels()[h.source_layer] != h.channels() {
            return Err(format!("head {h:?} reads {} channels", cfg.channels()[h.source_layer]));
        }
    }
    // The cfg's own input size either goes through or is refused with an error.
    let (height, width) = (cfg.net().height, cfg.net().width);
    if let Ok(shapes) = cfg.output_shapes(height, width) {
        if shapes.len() != n {
            return Err(format!("{} shapes for {n} layers", shapes.len()));
        }
        for (i, s) in shapes.iter().enumerate() {
            if s.c != cfg.channels()[i] || s.h < 1 || s.w < 1 {
                return Err(format!("layer {i}: shape {s:?}, channels {}", cfg.channels()[i]));
            }
        }
    }
    // A `.weights` file for this cfg can be measured (a short file is refused, not a panic).
    let layouts = ConvLayout::of_config(cfg);
    if layouts.len() != cfg.conv_layers().len() {
        return Err(format!("{} layouts for {} convs", layouts.len(), cfg.conv_layers().len()));
    }
    let header = DarknetWeights { header: WeightsHeader::default(), convs: Vec::new() };
    let mut short = header.to_bytes().map_err(|e| e.to_string())?;
    short.resize(short.len() + 64, 0);
    let _ = DarknetWeights::from_bytes(&short, &layouts, Path::new("short.weights"));
    Ok(())
}

fn cfg_check() -> Check<Bytes> {
    Arc::new(|input: Bytes| {
        let path = scratch().join(format!("case-{}.cfg", next_id()));
        write(&path, &input.0)?;
        let from_file = Config::from_file(&path);
        let _ = std::fs::remove_file(&path);
        let from_text = Config::parse(&String::from_utf8_lossy(&input.0), "fuzz.cfg");
        for cfg in [&from_file, &from_text].into_iter().flatten() {
            check_config(cfg)?;
        }
        Ok(from_file.is_ok())
    })
}

fn cfg_input() -> BoxedStrategy<Bytes> {
    text_input(&cfg_seeds(), CFG_TOKENS)
}

// ------------------------------------------------------------------ .weights

struct WeightsFixture {
    cfg: Config,
    layouts: Vec<ConvLayout>,
    seeds: Vec<Vec<u8>>,
}

fn weights_fixture() -> &'static WeightsFixture {
    static FIXTURE: OnceLock<WeightsFixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let cfg = tiny_config();
        let layouts = ConvLayout::of_config(&cfg);
        let net = Darknet::new(cfg.clone(), Device::Cpu).unwrap();
        let full = net
            .export_darknet_weights(WeightsHeader { seen: 12_800, ..Default::default() })
            .unwrap();
        let old = DarknetWeights {
            header: WeightsHeader { major: 0, minor: 1, revision: 0, seen: 64 },
            convs: full.convs.clone(),
        };
        let partial = DarknetWeights { header: full.header, convs: full.convs[..2].to_vec() };
        let empty = DarknetWeights { header: full.header, convs: Vec::new() };
        let seeds = [full, old, partial, empty].iter().map(|w| w.to_bytes().unwrap()).collect();
        WeightsFixture { cfg, layouts, seeds }
    })
}

/// One change to a `.weights` file.
#[derive(Clone, Debug)]
enum WeightsEdit {
    /// A byte-level edit.
    Bytes(Edit),
    /// Header field (0 major, 1 minor, 2 revision as i32; 3 `seen`, 8 bytes at offset 12).
    Header(u8, i64),
    /// Cut the file `delta` bytes after the start of conv `k` (possibly before it).
    CutAtConv(Index, i16),
    /// Append bytes.
    Append(Vec<u8>),
}

impl WeightsEdit {
    fn apply(&self, data: &mut Vec<u8>, layouts: &[ConvLayout]) {
        match self {
            Self::Bytes(e) => e.apply(data),
            Self::Header(field, value) => {
                let (at, bytes): (usize, Vec<u8>) = match field {
                    0..=2 => (usize::from(*field) * 4, (*value as i32).to_le_bytes().to_vec()),
                    _ => (12, value.to_le_bytes().to_vec()),
                };
                for (k, b) in bytes.into_iter().enumerate() {
                    if let Some(slot) = data.get_mut(at + k) {
                        *slot = b;
                    }
                }
            }
            Self::CutAtConv(k, delta) => {
                let wide = data.len() >= 8 && {
                    let h = WeightsHeader {
                        major: i32::from_le_bytes(data[0..4].try_into().unwrap()),
                        minor: i32::from_le_bytes(data[4..8].try_into().unwrap()),
                        revision: 0,
                        seen: 0,
                    };
                    h.has_wide_seen()
                };
                let header = if wide { 20 } else { 16 };
                let mut starts = vec![header];
                for l in layouts {
                    starts.push(starts.last().unwrap() + 4 * l.float_count());
                }
                let start = starts[k.index(starts.len())] as i64;
                let cut = (start + i64::from(*delta)).clamp(0, data.len() as i64) as usize;
                data.truncate(cut);
            }
            Self::Append(bytes) => data.extend_from_slice(bytes),
        }
    }
}

fn weights_edit() -> BoxedStrategy<WeightsEdit> {
    let header_value = prop_oneof![
        proptest::sample::select(vec![
            0i64,
            1,
            2,
            3,
            9,
            10,
            999,
            1000,
            -1,
            i64::from(i32::MIN),
            i64::from(i32::MAX),
            i64::MAX,
            -2
        ]),
        any::<i64>(),
    ];
    prop_oneof![
        5 => edit().prop_map(WeightsEdit::Bytes),
        3 => (0u8..4, header_value).prop_map(|(f, v)| WeightsEdit::Header(f, v)),
        3 => (any::<Index>(), prop_oneof![Just(0i16), -8i16..8, any::<i16>()])
            .prop_map(|(k, d)| WeightsEdit::CutAtConv(k, d)),
        1 => proptest::collection::vec(any::<u8>(), 1..64).prop_map(WeightsEdit::Append),
    ]
    .boxed()
}

fn weights_input() -> BoxedStrategy<Bytes> {
    let fx = weights_fixture();
    let mutated = (
        proptest::sample::select(fx.seeds.clone()),
        proptest::collection::vec(weights_edit(), 1..5),
    )
        .prop_map(|(mut data, edits)| {
            for e in &edits {
                e.apply(&mut data, &weights_fixture().layouts);
                data.truncate(fuzz_support::MAX_INPUT);
            }
            Bytes(data)
        });
    prop_oneof![1 => arbitrary(256), 9 => mutated].boxed()
}

fn check_weights(w: &DarknetWeights, input: &[u8], fx: &WeightsFixture) -> Result<(), String> {
    if w.convs.len() > fx.layouts.len() {
        return Err(format!("{} convs for a cfg with {}", w.convs.len(), fx.layouts.len()));
    }
    for (k, (c, l)) in w.convs.iter().zip(&fx.layouts).enumerate() {
        let bn_ok = c.batch_norm.as_ref().is_none_or(|b| {
            [&b.scales, &b.rolling_mean, &b.rolling_variance].iter().all(|v| v.len() == l.filters)
        });
        if c.biases.len() != l.filters
            || c.kernel.len() != l.kernel_len()
            || c.batch_norm.is_some() != l.batch_normalize
            || !bn_ok
        {
            return Err(format!("conv {k} does not have the cfg's shapes"));
        }
    }
    match w.to_bytes() {
        Ok(bytes) if bytes == input => {}
        Ok(bytes) => {
            return Err(format!(
                "written back as {} different bytes ({} read)",
                bytes.len(),
                input.len()
            ))
        }
        Err(e) => return Err(format!("cannot be written back: {e}")),
    }
    let mut net = Darknet::new(fx.cfg.clone(), Device::Cpu).map_err(|e| e.to_string())?;
    match net.load_darknet_weights(w) {
        Ok(n) if n == w.convs.len() => Ok(()),
        Ok(n) => Err(format!("{n} convs loaded of {}", w.convs.len())),
        Err(e) => Err(format!("accepted weights do not load into the network: {e}")),
    }
}

fn weights_check() -> Check<Bytes> {
    Arc::new(|input: Bytes| {
        let fx = weights_fixture();
        let path = scratch().join(format!("case-{}.weights", next_id()));
        write(&path, &input.0)?;
        let from_file = DarknetWeights::read(&path, &fx.cfg);
        let _ = std::fs::remove_file(&path);
        let from_bytes =
            DarknetWeights::from_bytes(&input.0, &fx.layouts, Path::new("fuzz.weights"));
        if from_file.is_ok() != from_bytes.is_ok() {
            return Err(format!("read and from_bytes disagree: {from_file:?} / {from_bytes:?}"));
        }
        if let Ok(w) = &from_bytes {
            check_weights(w, &input.0, fx)?;
        }
        Ok(from_bytes.is_ok())
    })
}

// ------------------------------------------------------------------ checkpoints

/// A checkpoint taken apart: metadata and `(name, dtype, shape, data)` tensors.
struct Parts {
    meta: HashMap<String, String>,
    tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)>,
}

impl Parts {
    fn read(bytes: &[u8]) -> Option<Self> {
        let file = SafeTensors::deserialize(bytes).ok()?;
        let (_, metadata) = SafeTensors::read_metadata(bytes).ok()?;
        let meta = metadata.metadata().clone().unwrap_or_default();
        let mut tensors: Vec<_> = file
            .tensors()
            .into_iter()
            .map(|(name, v)| (name, v.dtype(), v.shape().to_vec(), v.data().to_vec()))
            .collect();
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        Some(Self { meta, tensors })
    }

    fn write(&self) -> Option<Vec<u8>> {
        let views: Vec<(&str, TensorView<'_>)> = self
            .tensors
            .iter()
            .map(|(n, d, s, b)| TensorView::new(*d, s.clone(), b).ok().map(|v| (n.as_str(), v)))
            .collect::<Option<_>>()?;
        safetensors::serialize(views, Some(self.meta.clone())).ok()
    }
}

const META_KEYS: &[&str] = &["format", "cfg", "cfg_name", "class_names", "extra"];

const META_VALUES: &[&str] = &[
    "",
    CHECKPOINT_FORMAT,
    "yolo3-darknet-checkpoint/2",
    "[]",
    "[\"cat\",\"cat\"]",
    "[\"a\",1]",
    "[\"a\"",
    "{}",
    "{\"epoch\":\"3\"}",
    "{\"epoch\":3}",
    "null",
    "x.cfg",
    "[net]\nwidth=32\nheight=32\nchannels=3\n[convolutional]\nfilters=2\n",
    "\u{feff}[net]",
];

/// One change to a checkpoint file.
#[derive(Clone, Debug)]
enum CheckpointEdit {
    /// A byte-level edit of the whole file.
    Bytes(Edit),
    /// A text edit of the JSON header (the length prefix follows).
    HeaderText(Edit),
    /// A new header length prefix.
    HeaderLength(u64),
    /// A text edit of the cfg in the metadata.
    Cfg(Edit),
    /// A text edit of another metadata value.
    MetaText(Index, Edit),
    /// Set (or with `None` remove) a metadata value.
    Meta(Index, Option<&'static str>),
    /// Remove a tensor.
    DropTensor(Index),
    /// Rename a tensor.
    RenameTensor(Index, &'static str),
    /// Store a tensor with another dtype (its data resized to fit).
    Retype(Index, Dtype),
    /// Give a tensor another shape (its data resized to fit): 0 flattened, 1 a unit dim added,
    /// 2 the last dim dropped, 3 the first dim doubled, 4 the first dim set to 0.
    Reshape(Index, u8),
    /// Add a copy of a tensor under a new name.
    DuplicateTensor(Index),
}

fn dtype_bytes(d: Dtype) -> usize {
    d.bitsize().div_ceil(8)
}

impl CheckpointEdit {
    fn apply(&self, data: &mut Vec<u8>) {
        match self {
            Self::Bytes(e) => e.apply(data),
            Self::HeaderLength(n) => {
                if data.len() >= 8 {
                    data[..8].copy_from_slice(&n.to_le_bytes());
                }
            }
            Self::HeaderText(e) => {
                let Some(n) = data.get(..8).map(|b| u64::from_le_bytes(b.try_into().unwrap()))
                else {
                    return;
                };
                let Some(end) = usize::try_from(n)
                    .ok()
                    .and_then(|n| n.checked_add(8))
                    .filter(|&e| e <= data.len())
                else {
                    return;
                };
                let mut header = data[8..end].to_vec();
                e.apply(&mut header);
                let mut out = (header.len() as u64).to_le_bytes().to_vec();
                out.extend_from_slice(&header);
                out.extend_from_slice(&data[end..]);
                *data = out;
            }
            structural => {
                let Some(mut parts) = Parts::read(data) else { return };
                structural.apply_parts(&mut parts);
                if let Some(bytes) = parts.write() {
                    *data = bytes;
                }
            }
        }
    }

    fn apply_parts(&self, p: &mut Parts) {
        let n = p.tensors.len();
        match self {
            Self::Cfg(e) => {
                if let Some(cfg) = p.meta.get_mut("cfg") {
                    let mut bytes = std::mem::take(cfg).into_bytes();
                    e.apply(&mut bytes);
                    *cfg = String::from_utf8_lossy(&bytes).into_owned();
                }
            }
            Self::MetaText(k, e) => {
                let key = META_KEYS[k.index(META_KEYS.len())];
                if let Some(v) = p.meta.get_mut(key) {
                    let mut bytes = std::mem::take(v).into_bytes();
                    e.apply(&mut bytes);
                    *v = String::from_utf8_lossy(&bytes).into_owned();
                }
            }
            Self::Meta(k, value) => {
                let key = META_KEYS[k.index(META_KEYS.len())].to_string();
                match value {
                    Some(v) => p.meta.insert(key, (*v).to_string()),
                    None => p.meta.remove(&key),
                };
            }
            Self::DropTensor(k) if n > 0 => {
                p.tensors.remove(k.index(n));
            }
            Self::RenameTensor(k, name) if n > 0 => {
                p.tensors[k.index(n)].0 = (*name).to_string();
                p.tensors.sort_by(|a, b| a.0.cmp(&b.0));
                p.tensors.dedup_by(|a, b| a.0 == b.0);
            }
            Self::Retype(k, dtype) if n > 0 => {
                let t = &mut p.tensors[k.index(n)];
                let count: usize = t.2.iter().product();
                t.1 = *dtype;
                t.3.resize(count * dtype_bytes(*dtype), 0);
            }
            Self::Reshape(k, how) if n > 0 => {
                let t = &mut p.tensors[k.index(n)];
                let count: usize = t.2.iter().product();
                match how {
                    0 => t.2 = vec![count],
                    1 => t.2.insert(0, 1),
                    2 => {
                        t.2.pop();
                    }
                    3 => {
                        if let Some(d) = t.2.first_mut() {
                            *d *= 2;
                        }
                    }
                    _ => {
                        if let Some(d) = t.2.first_mut() {
                            *d = 0;
                        }
                    }
                }
                let count: usize = t.2.iter().product();
                t.3.resize(count * dtype_bytes(t.1), 0);
            }
            Self::DuplicateTensor(k) if n > 0 => {
                let mut t = p.tensors[k.index(n)].clone();
                t.0.push_str(".copy");
                p.tensors.push(t);
                p.tensors.sort_by(|a, b| a.0.cmp(&b.0));
                p.tensors.dedup_by(|a, b| a.0 == b.0);
            }
            _ => {}
        }
    }
}

fn checkpoint_edit() -> BoxedStrategy<CheckpointEdit> {
    let i = any::<Index>;
    let dtypes =
        vec![Dtype::F16, Dtype::BF16, Dtype::F64, Dtype::I32, Dtype::U8, Dtype::BOOL, Dtype::F32];
    let names = vec!["layers.0.conv.weight", "layers.1.conv.weight", "layers.99.bn.bias", "", "x"];
    prop_oneof![
        4 => edit().prop_map(CheckpointEdit::Bytes),
        2 => edit().prop_map(CheckpointEdit::HeaderText),
        1 => prop_oneof![Just(0u64), Just(u64::MAX), 0u64..100_000].prop_map(CheckpointEdit::HeaderLength),
        5 => edit().prop_map(CheckpointEdit::Cfg),
        2 => (i(), edit()).prop_map(|(k, e)| CheckpointEdit::MetaText(k, e)),
        2 => (i(), proptest::option::of(proptest::sample::select(META_VALUES)))
            .prop_map(|(k, v)| CheckpointEdit::Meta(k, v)),
        1 => i().prop_map(CheckpointEdit::DropTensor),
        1 => (i(), proptest::sample::select(names)).prop_map(|(k, s)| CheckpointEdit::RenameTensor(k, s)),
        1 => (i(), proptest::sample::select(dtypes)).prop_map(|(k, d)| CheckpointEdit::Retype(k, d)),
        1 => (i(), 0u8..5).prop_map(|(k, h)| CheckpointEdit::Reshape(k, h)),
        1 => i().prop_map(CheckpointEdit::DuplicateTensor),
    ]
    .boxed()
}

fn checkpoint_seeds() -> &'static [Vec<u8>] {
    static SEEDS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let net = Darknet::new(tiny_config(), Device::Cpu).unwrap();
        let info = CheckpointInfo {
            class_names: vec!["cat".into()],
            extra: BTreeMap::from([("epoch".to_owned(), "3".to_owned())]),
        };
        [info, CheckpointInfo::default()]
            .iter()
            .map(|info| {
                let path = scratch().join(format!("seed-{}.safetensors", next_id()));
                net.save_checkpoint(&path, info, Existing::Replace).unwrap();
                std::fs::read(&path).unwrap()
            })
            .collect()
    })
}

fn checkpoint_input() -> BoxedStrategy<Bytes> {
    let mutated = (
        proptest::sample::select(checkpoint_seeds().to_vec()),
        proptest::collection::vec(checkpoint_edit(), 1..4),
    )
        .prop_map(|(mut data, edits)| {
            for e in &edits {
                e.apply(&mut data);
                data.truncate(fuzz_support::MAX_INPUT);
            }
            Bytes(data)
        });
    prop_oneof![1 => arbitrary(256), 9 => mutated].boxed()
}

fn checkpoint_check() -> Check<Bytes> {
    Arc::new(|input: Bytes| {
        let path = scratch().join(format!("case-{}.safetensors", next_id()));
        write(&path, &input.0)?;
        let built = Darknet::from_checkpoint(&path, Device::Cpu);
        let mut fresh = Darknet::new(tiny_config(), Device::Cpu).map_err(|e| e.to_string())?;
        let loaded = fresh.load_checkpoint(&path);
        let _ = std::fs::remove_file(&path);
        if let Ok((net, _)) = &built {
            let file = SafeTensors::deserialize(&input.0)
                .map_err(|e| format!("accepted a file safetensors rejects: {e}"))?;
            let vars = net.var_store().variables();
            if vars.len() != file.len() {
                return Err(format!("{} variables from {} tensors", vars.len(), file.len()));
            }
            for (name, var) in &vars {
                let shape = file
                    .tensor(name)
                    .map_err(|_| format!("`{name}` is not in the file"))?
                    .shape()
                    .to_vec();
                let want: Vec<usize> = var.size().iter().map(|&d| d as usize).collect();
                if shape != want {
                    return Err(format!("`{name}`: file {shape:?}, network {want:?}"));
                }
            }
            if !net.config().layers().iter().any(|l| matches!(l, Layer::Convolutional(_))) {
                return Err("a network without convolutions".into());
            }
        }
        Ok(built.is_ok() || loaded.is_ok())
    })
}

// ------------------------------------------------------------------ keras .h5

/// The tiny network's fresh weights as keras `.h5` files: Keras 2 `save_weights` and tf.keras
/// `save` layouts.
fn keras_seeds() -> &'static [Vec<u8>] {
    static SEEDS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let net = Darknet::new(tiny_config(), Device::Cpu).unwrap();
        let (cfg, weights) =
            (scratch().join("keras-seed.cfg"), scratch().join("keras-seed.weights"));
        std::fs::write(&cfg, TINY_CFG).unwrap();
        net.export_darknet_weights(WeightsHeader::default())
            .unwrap()
            .write(&weights, Existing::Replace)
            .unwrap();
        [("keras2", "weights"), ("tf", "model")]
            .iter()
            .map(|(names, layout)| {
                let out = scratch().join(format!("keras-seed-{names}.h5"));
                let status = std::process::Command::new(common::venv_python())
                    .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/gen-keras-h5.py"))
                    .args([
                        "--cfg".as_ref(),
                        cfg.as_os_str(),
                        "--weights".as_ref(),
                        weights.as_os_str(),
                    ])
                    .args(["--out".as_ref(), out.as_os_str()])
                    .args(["--names", names, "--layout", layout])
                    .status()
                    .expect("python runs");
                assert!(status.success(), "gen-keras-h5.py failed");
                std::fs::read(&out).unwrap()
            })
            .collect()
    })
}

fn keras_input() -> BoxedStrategy<Bytes> {
    let mutated =
        (proptest::sample::select(keras_seeds().to_vec()), proptest::collection::vec(edit(), 1..4))
            .prop_map(|(mut data, edits)| {
                for e in &edits {
                    e.apply(&mut data);
                    data.truncate(fuzz_support::MAX_INPUT);
                }
                Bytes(data)
            });
    prop_oneof![1 => arbitrary(256), 9 => mutated].boxed()
}

/// An accepted file loads into the tiny network or is refused with an error.
fn keras_check() -> Check<Bytes> {
    Arc::new(|input: Bytes| {
        let path = scratch().join(format!("case-{}.h5", next_id()));
        write(&path, &input.0)?;
        let read = KerasWeights::read(&path);
        let _ = std::fs::remove_file(&path);
        let Ok(keras) = read else { return Ok(false) };
        let mut net = Darknet::new(tiny_config(), Device::Cpu).map_err(|e| e.to_string())?;
        match net.load_keras(&keras) {
            Ok(()) => Ok(true),
            Err(ModelError::KerasFile { .. } | ModelError::KerasLayer { .. }) => Ok(false),
            Err(e) => Err(format!("a read file failed to load with {e}")),
        }
    })
}

#[test]
fn keras_seeds_load() {
    for seed in keras_seeds() {
        let path = scratch().join("seed-check.h5");
        std::fs::write(&path, seed).unwrap();
        let keras = KerasWeights::read(&path).unwrap();
        Darknet::new(tiny_config(), Device::Cpu).unwrap().load_keras(&keras).unwrap();
    }
}

#[test]
fn fuzz_keras() {
    fuzz("keras", 256, &keras_input(), &keras_check());
}

#[test]
#[ignore = "long fuzzing run (YOLO3_FUZZ_SECONDS, default 600)"]
fn fuzz_keras_long() {
    fuzz_long("keras", 256, &keras_input(), &keras_check());
}

// ------------------------------------------------------------------ regressions
//
// Inputs the fuzzers found (or that share the root cause of one they found), as plain tests.

/// `[net]` of a 416x416 RGB input, followed by `layers`.
fn net_with(layers: &str) -> String {
    format!("[net]\nwidth=416\nheight=416\nchannels=3\n{layers}")
}

/// Found by `fuzz_cfg`: `size=2147483647` was accepted, and measuring the conv for a `.weights`
/// file (or building its network) overflowed (`attempt to multiply with overflow` in
/// `ConvLayout::kernel_len`).
#[test]
fn regression_cfg_conv_whose_parameters_cannot_be_counted() {
    let text = net_with(
        "[convolutional]\nbatch_normalize=1\nfilters=16\nsize=2147483647\nstride=1\npad=1\n\
         activation=leaky\n",
    );
    let err = Config::parse(&text, "x.cfg").unwrap_err();
    assert!(matches!(err, ModelError::CfgStructure { layer: 0, line: 5, .. }), "{err}");
}

/// Same cause in `[yolo]`: `5 + classes` overflowed for `classes=9223372036854775807`.
#[test]
fn regression_cfg_yolo_classes_overflow() {
    let text = net_with(
        "[convolutional]\nfilters=18\n[yolo]\nmask=0,1,2\nanchors=1,2,3,4,5,6\nnum=3\n\
         classes=9223372036854775807\n",
    );
    let err = Config::parse(&text, "x.cfg").unwrap_err();
    assert!(matches!(err, ModelError::CfgStructure { layer: 1, .. }), "{err}");
}

/// Same cause in `[route]`: the concatenated channel count overflowed.
#[test]
fn regression_cfg_route_channels_overflow() {
    let text = "[net]\nwidth=8\nheight=8\nchannels=9223372036854775807\n\
                [maxpool]\nsize=1\nstride=1\n[route]\nlayers=0,0\n";
    let err = Config::parse(text, "x.cfg").unwrap_err();
    assert!(matches!(err, ModelError::CfgStructure { layer: 1, .. }), "{err}");
}

/// `num=10000000000` without a `mask` built the default mask (every anchor) before the anchor
/// count was checked: an 80 GB allocation, which aborts the process.
#[test]
fn regression_cfg_default_mask_of_a_huge_num() {
    let text = net_with(
        "[convolutional]\nfilters=18\n[yolo]\nnum=10000000000\nanchors=1,2,3,4,5,6\nclasses=1\n",
    );
    let err = Config::parse(&text, "x.cfg").unwrap_err();
    assert!(matches!(&err, ModelError::CfgValue { key, .. } if *key == "anchors"), "{err}");
}

/// `output_shapes` overflowed on huge paddings and upsampling factors; it is an input-size
/// error now.
#[test]
fn regression_cfg_output_size_overflow() {
    for layers in [
        "[convolutional]\nfilters=2\nsize=1\npadding=4611686018427387904\n",
        "[maxpool]\nsize=2\nstride=1\npadding=9223372036854775807\n",
        "[upsample]\nstride=4611686018427387904\n",
    ] {
        let cfg = Config::parse(&net_with(layers), "x.cfg").unwrap();
        let err = cfg.output_shapes(416, 416).unwrap_err();
        assert!(matches!(err, ModelError::InputSize { layer: 0, .. }), "{layers}: {err}");
    }
}

/// Found by `fuzz_checkpoint` (a case that took 7 s; a larger number is a hang or an abort):
/// a checkpoint whose cfg text says `size=1791` for a 1x1 conv built a network with a
/// 1.8 GB kernel before noticing that the file holds an 18x8x1x1 tensor. The cfg is now
/// compared with the file's size first: the error is the cfg's (metadata), which building the
/// network first could not give.
#[test]
fn regression_checkpoint_cfg_larger_than_its_tensors() {
    let seed = &checkpoint_seeds()[0];
    let mut parts = Parts::read(seed).unwrap();
    let cfg = parts.meta.get_mut("cfg").unwrap();
    let at = cfg.rfind("size=1").unwrap();
    cfg.replace_range(at..at + "size=1".len(), "size=1791");
    let path = scratch().join("regression-large-cfg.safetensors");
    std::fs::write(&path, parts.write().unwrap()).unwrap();
    let err = Darknet::from_checkpoint(&path, Device::Cpu).unwrap_err();
    assert!(matches!(&err, ModelError::CheckpointMetadata { key, .. } if key == "cfg"), "{err}");
}

// ------------------------------------------------------------------ tests

#[test]
fn seeds_are_valid() {
    for seed in cfg_seeds() {
        check_config(&Config::parse(seed, "seed.cfg").unwrap()).unwrap();
    }
    let fx = weights_fixture();
    for seed in &fx.seeds {
        let w = DarknetWeights::from_bytes(seed, &fx.layouts, Path::new("seed")).unwrap();
        check_weights(&w, seed, fx).unwrap();
    }
    for seed in checkpoint_seeds() {
        let path = scratch().join("seed-check.safetensors");
        std::fs::write(&path, seed).unwrap();
        Darknet::from_checkpoint(&path, Device::Cpu).unwrap();
    }
}

#[test]
fn fuzz_cfg() {
    fuzz("cfg", 256, &cfg_input(), &cfg_check());
}

#[test]
#[ignore = "long fuzzing run (YOLO3_FUZZ_SECONDS, default 600)"]
fn fuzz_cfg_long() {
    fuzz_long("cfg", 256, &cfg_input(), &cfg_check());
}

#[test]
fn fuzz_weights() {
    fuzz("weights", 256, &weights_input(), &weights_check());
}

#[test]
#[ignore = "long fuzzing run (YOLO3_FUZZ_SECONDS, default 600)"]
fn fuzz_weights_long() {
    fuzz_long("weights", 256, &weights_input(), &weights_check());
}

#[test]
fn fuzz_checkpoint() {
    fuzz("checkpoint", 128, &checkpoint_input(), &checkpoint_check());
}

#[test]
#[ignore = "long fuzzing run (YOLO3_FUZZ_SECONDS, default 600)"]
fn fuzz_checkpoint_long() {
    fuzz_long("checkpoint", 128, &checkpoint_input(), &checkpoint_check());
}

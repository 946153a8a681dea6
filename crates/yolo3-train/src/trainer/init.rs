//! Where a new run's network starts: the cfg trained (the preset or a file, adapted to the
//! dataset's classes and anchors), head biases from the data's priors, and initial weights
//! transferred by shape from whatever file the user has.

use std::path::Path;

use tch::Tensor;
use yolo3_core::kmeans::{cluster_anchors, KmeansOptions};
use yolo3_core::{Anchors, TinyMask};
use yolo3_data::Dataset;
use yolo3_io::fsio::FileError;
use yolo3_model::{Config, Darknet, DarknetWeights, TorchContext as _, WeightsFormat};

use crate::cfg_text::tiny_cfg;
use crate::config::{AnchorSource, ModelSource, TrainConfig};
use crate::error::{Result, TrainError};
use crate::observer::Observer;

/// The cfg text to train: the preset or a file, adapted to the dataset's classes and anchors.
pub(super) fn model_cfg_text(config: &TrainConfig, train: &Dataset) -> Result<String> {
    let classes = train.class_names.len();
    let base = match &config.model {
        ModelSource::TinyPreset { width_divisor } => {
            let scale = config.input as f32 / 416.0;
            let default: Vec<[f32; 2]> = yolo3_core::anchors::TINY_ANCHORS
                .iter()
                .map(|[w, h]| [w * scale, h * scale])
                .collect();
            tiny_cfg(*width_divisor, config.input, classes, &default)
        }
        ModelSource::Cfg { path } => {
            yolo3_io::fsio::read_text(path).map_err(FileError::on("reading", path))?
        }
    };
    let cfg_name = match &config.model {
        ModelSource::Cfg { path } => path.display().to_string(),
        ModelSource::TinyPreset { .. } => "the built-in tiny-YOLOv3 cfg".to_owned(),
    };
    let base = Config::parse(&base, &cfg_name)?;
    let n_anchors = base
        .layers()
        .iter()
        .find_map(|l| match l {
            yolo3_model::Layer::Yolo(y) => Some(y.anchors.len()),
            _ => None,
        })
        .unwrap_or(9);
    let anchors: Option<Vec<[f32; 2]>> = match &config.anchors {
        AnchorSource::Cfg => None,
        AnchorSource::File { path } => {
            let sizes = Anchors::read(path, TinyMask::Darknet)
                .map_err(|source| TrainError::Core { context: "anchors file".into(), source })?
                .sizes()
                .to_vec();
            if sizes.len() != n_anchors {
                return Err(TrainError::Config(format!(
                    "{} holds {} anchors; the [yolo] layers of {cfg_name} use {n_anchors}",
                    path.display(),
                    sizes.len()
                )));
            }
            Some(sizes)
        }
        AnchorSource::Kmeans => {
            Some(kmeans_anchors(train, n_anchors, config.input, config.tile, config.seed)?)
        }
    };
    Ok(base.adapted(classes, anchors.as_deref())?.text().to_owned())
}

/// k-means anchors of the training boxes in a square `input` (in their tiles with `tile`:
/// [`Dataset::input_box_sizes`]).
pub fn kmeans_anchors(
    train: &Dataset,
    k: usize,
    input: u32,
    tile: Option<u32>,
    seed: u64,
) -> Result<Vec<[f32; 2]>> {
    let (sizes, _) = train.input_box_sizes(input, tile);
    let clusters = cluster_anchors(&sizes, k, &KmeansOptions { seed, ..KmeansOptions::default() })
        .map_err(TrainError::Anchors)?;
    Ok(clusters.anchors.iter().map(|[w, h]| [(*w as f32).max(1.0), (*h as f32).max(1.0)]).collect())
}

/// Sets the head biases of a network trained from scratch so that its first predictions match
/// the data's priors: objectness `ln(3 / slots)` (about three objects per image spread over the
/// layer's `H * W * A` slots) and class `ln(1 / C)`. With zero biases every slot starts at
/// objectness 0.5 and the first epochs are spent pushing hundreds of background slots down.
pub(super) fn init_head_biases(net: &Darknet, input: u32) -> Result<()> {
    let vars = net.var_store().variables();
    for head in net.heads() {
        let name = format!("layers.{}.conv.bias", head.source_layer);
        let Some(bias) = vars.get(&name) else { continue };
        let (gh, gw) = head.grid(i64::from(input), i64::from(input));
        let slots = (gh * gw) as f64 * head.anchors.len() as f64;
        let fields = 5 + head.classes;
        let mut values = vec![0.0f32; bias.numel()];
        for a in 0..head.anchors.len() as i64 {
            values[(a * fields + 4) as usize] = (3.0 / slots).ln() as f32;
            for c in 0..head.classes {
                values[(a * fields + 5 + c) as usize] = (1.0 / head.classes as f64).ln() as f32;
            }
        }
        let init = Tensor::f_from_slice(&values)
            .and_then(|t| t.f_to_device(bias.device()))
            .torch(|| name.clone())?;
        tch::no_grad(|| bias.shallow_clone().f_copy_(&init)).torch(|| name.clone())?;
    }
    Ok(())
}

/// Loads darknet `.weights` (full or partial), keras-yolo3 `.h5` weights or a checkpoint's
/// tensors as the starting point, by shape: every layer the file has in the network's shape,
/// so that official 80-class weights start a run on a dataset with other classes (the heads
/// keep the data-prior initialisation). Prints what was transferred; `-v` lists the
/// re-initialised heads.
pub(super) fn load_initial_weights(
    net: &mut Darknet,
    path: &Path,
    observer: &mut dyn Observer,
) -> Result<()> {
    let transfer = match WeightsFormat::of(path) {
        WeightsFormat::Checkpoint => net.transfer_checkpoint(path)?.0,
        // keras-yolo3 weights: darknet's content once read, so the same transfer by shape.
        WeightsFormat::Keras => net.transfer_keras(&yolo3_model::KerasWeights::read(path)?)?,
        WeightsFormat::Darknet => {
            let (weights, layouts) = DarknetWeights::read_transfer(path, net.config())?;
            if weights.convs.is_empty() {
                return Err(TrainError::Config(format!(
                    "{} holds no convolution weights (only a header); train without --weights \
                     to start from scratch",
                    path.display()
                )));
            }
            net.transfer_darknet_weights(&weights, &layouts)?
        }
    };
    for h in &transfer.reinitialised {
        tracing::debug!(
            "layer {}: {} filters in {}, {} in the network; re-initialised",
            h.layer,
            h.file_filters,
            path.display(),
            h.filters
        );
    }
    observer.message(&format!("weights: {}", transfer.describe(&path.display().to_string())));
    Ok(())
}

#[cfg(test)]
mod tests {
    use yolo3_model::WeightsHeader;

    use super::*;

    fn tiny(classes: usize) -> Darknet {
        let text = tiny_cfg(16, 64, classes, &yolo3_core::anchors::TINY_ANCHORS);
        Darknet::new(Config::parse(&text, "tiny").unwrap(), tch::Device::Cpu).unwrap()
    }

    #[test]
    fn head_biases_start_at_the_data_priors() {
        let net = tiny(4);
        init_head_biases(&net, 64).unwrap();
        let vars = net.var_store().variables();
        for head in net.heads() {
            let bias = &vars[&format!("layers.{}.conv.bias", head.source_layer)];
            let values = Vec::<f32>::try_from(bias).unwrap();
            let (gh, gw) = head.grid(64, 64);
            let slots = (gh * gw) as f64 * head.anchors.len() as f64;
            for a in 0..head.anchors.len() {
                let at = a * (5 + 4);
                assert_eq!(&values[at..at + 4], &[0.0; 4]);
                assert!((f64::from(values[at + 4]) - (3.0 / slots).ln()).abs() < 1e-6);
                for c in 0..4 {
                    assert!((f64::from(values[at + 5 + c]) - 0.25f64.ln()).abs() < 1e-6);
                }
            }
        }
    }

    #[test]
    fn a_weights_file_of_a_header_only_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("empty.weights");
        let mut net = tiny(2);
        let header =
            yolo3_model::DarknetWeights { header: WeightsHeader::default(), convs: vec![] };
        header.write(&path, yolo3_io::fsio::Existing::Keep).unwrap();
        let err = load_initial_weights(&mut net, &path, &mut crate::Silent).unwrap_err();
        assert!(err.to_string().contains("holds no convolution weights"), "{err}");
    }

    #[test]
    fn an_anchors_file_of_another_count_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let anchors = tmp.path().join("anchors.txt");
        std::fs::write(
            &anchors,
            "10,13, 16,30, 33,23, 30,61, 62,45, 59,119, 116,90, 156,198, 373,326\n",
        )
        .unwrap();
        let data = yolo3_data::synthetic::generate(
            &tmp.path().join("data"),
            &yolo3_data::SyntheticOptions {
                images_train: 12,
                images_val: 1,
                size: 64,
                ..yolo3_data::SyntheticOptions::default()
            },
        )
        .unwrap();
        let open = yolo3_data::OpenOptions { classes: Some(data.classes), ..Default::default() };
        let train = yolo3_data::read_dataset(&tmp.path().join("data/train.txt"), &open).unwrap();
        let config = TrainConfig {
            anchors: AnchorSource::File { path: anchors },
            input: 64,
            ..TrainConfig::default()
        };
        let err = model_cfg_text(&config, &train).unwrap_err();
        assert!(err.to_string().contains("holds 9 anchors"), "{err}");
        let config = TrainConfig { input: 64, ..TrainConfig::default() };
        let text = model_cfg_text(&config, &train).unwrap();
        let cfg = Config::parse(&text, "adapted").unwrap();
        assert_eq!(cfg.heads()[0].classes as usize, train.class_names.len());
    }
}

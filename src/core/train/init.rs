//! A new run's starting weights: fresh, with a pretrained ResNet encoder (`pretrained`), or an
//! earlier run's (`init_from`, whose architecture [`super::prepare`] has already adopted).

use std::path::Path;

use burn::store::ModuleSnapshot;
use burn::tensor::Device;

use super::config::{ConfigError, RunConfig};
use super::run_dir::{RunDir, RunDirError, load_for_training};
use super::trainer::TrainError;
use crate::core::model::pretrained::load_encoder_weights;
use crate::core::model::segmenter::Segmenter;

/// The model a new run starts from, on `device` (seeded by the caller).
pub(super) fn starting_model(
    run_config: &RunConfig,
    device: &Device,
    log: &mut dyn FnMut(String),
) -> Result<Segmenter, TrainError> {
    let mut model = run_config.segmenter().init(device);
    let train = &run_config.train;
    if let Some(file) = &train.pretrained {
        let encoder = model.resnet_encoder_mut().ok_or_else(|| {
            ConfigError::Invalid(format!(
                "pretrained weights need a ResNet encoder, not {}",
                train.encoder
            ))
        })?;
        let loaded = load_encoder_weights(encoder, train.encoder.as_str(), file)
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        log(format!(
            "loaded {loaded} tensors of pretrained weights from {} into the {} encoder",
            file.display(),
            train.encoder
        ));
    }
    if let Some(source) = &train.init_from {
        model = from_run(model, run_config, source, device, log)?;
    }
    Ok(model)
}

/// `model` with the weights of the run in `source` (best checkpoint, else last). The heads
/// keep their fresh weights where the source's do not fit: the first when the class tables
/// differ, the second when the source had no such head.
fn from_run(
    mut model: Segmenter,
    run_config: &RunConfig,
    source: &Path,
    device: &Device,
    log: &mut dyn FnMut(String),
) -> Result<Segmenter, TrainError> {
    let run = RunDir::new(source);
    let saved = run.read_config()?;
    let dir = run.best_or_last()?;
    let weights = load_for_training(saved.segmenter().init(device), &dir, log)?;
    let names = |classes: &[crate::core::dataset::ClassInfo]| -> Vec<String> {
        classes.iter().map(|c| c.name.to_lowercase()).collect()
    };
    let same_classes = names(&saved.classes) == names(&run_config.classes);
    let same_aux = saved.train.aux == run_config.train.aux;
    let mut tensors = weights.collect(None, None, false);
    let before = tensors.len();
    // Paths are `net.<variant>.<field>...` (the first head is the field `head`) and
    // `aux.<field>...`.
    tensors.retain(|t| {
        let aux = t.name.starts_with("aux.");
        let head = !aux && t.name.split('.').any(|s| s == "head");
        (!head || same_classes) && (!aux || same_aux)
    });
    let kept = tensors.len();
    let result = model.apply(tensors, None, None, false);
    if !result.errors.is_empty() || !result.unused.is_empty() {
        return Err(RunDirError::Corrupt {
            path: dir,
            reason: format!("its weights do not fit this run's model: {result}"),
        }
        .into());
    }
    let mut note = format!(
        "starting from {} ({} tensors of {before})",
        dir.display(),
        result.applied.len()
    );
    if !same_classes {
        let list = |c: Vec<String>| c.join(", ");
        note.push_str(&format!(
            "; its classes ({}) differ from this dataset's ({}), so the head is re-initialised",
            list(names(&saved.classes)),
            list(names(&run_config.classes))
        ));
    }
    if !same_aux && run_config.train.aux.is_some() {
        note.push_str("; the second head starts fresh");
    }
    debug_assert!(kept >= result.applied.len());
    log(note);
    Ok(model)
}

//! A run made from another one (quantized, pruned): an ordinary run folder (config.json,
//! checkpoints, summary.json) plus `derived.json`, which says where it came from and how.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::core::dataset::image_io::write_atomic;
use crate::core::model::segmenter::Segmenter;
use crate::core::train::config::RunConfig;
use crate::core::train::optim::build_optimizer;
use crate::core::train::run_dir::{CheckpointKind, RunDir, RunDirError, Summary, TrainState};

/// `derived.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Derivation {
    /// The run it was made from.
    pub from: PathBuf,
    /// The checkpoint of that run.
    pub checkpoint: PathBuf,
    /// What was done, e.g. `quantize int8-tensor` or `prune structured 0.5, fine-tuned 5 epochs`.
    pub method: String,
    pub roadseg_version: String,
}

/// Why a derived run could not be written.
#[derive(Debug, thiserror::Error)]
pub enum DeriveError {
    #[error(transparent)]
    RunDir(#[from] RunDirError),
    #[error("{0}: already holds a run; choose another --out")]
    Exists(PathBuf),
    #[error("{0}: exists and is not an empty folder; choose another --out")]
    NotEmpty(PathBuf),
    #[error("{0}: --out must differ from --model")]
    SameRun(PathBuf),
}

/// A derived run being written. Dropped before [`Pending::keep`] (an error half-way), it takes
/// what it wrote with it, so a failed command leaves no half run behind for a retry to trip
/// over ("already holds a run").
pub struct Pending {
    run: Option<RunDir>,
    /// The folder was there (empty) before: emptied again rather than removed.
    existed: bool,
}

impl Pending {
    pub fn run(&self) -> &RunDir {
        self.run.as_ref().expect("kept only once")
    }

    /// The run is complete: it stays.
    pub fn keep(mut self) -> RunDir {
        self.run.take().expect("kept only once")
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(run) = self.run.take() {
            // Best effort: the error that brought us here is the one to report.
            let _ = std::fs::remove_dir_all(run.root());
            if self.existed {
                let _ = std::fs::create_dir_all(run.root());
            }
        }
    }
}

/// Creates `out` as a run with `config` (the labels snapshot of `source` copied along, so a
/// snapshot run still trains and evaluates on the same labels), and writes `derived.json`.
/// `out` must be new or an empty folder.
pub fn create(
    source: &Path,
    out: &Path,
    config: &RunConfig,
    derivation: &Derivation,
) -> Result<Pending, DeriveError> {
    if same_folder(source, out) {
        return Err(DeriveError::SameRun(out.to_path_buf()));
    }
    let run = RunDir::new(out);
    if run.exists() {
        return Err(DeriveError::Exists(out.to_path_buf()));
    }
    let existed = out.exists();
    let empty = || std::fs::read_dir(out).is_ok_and(|mut d| d.next().is_none());
    if existed && !empty() {
        return Err(DeriveError::NotEmpty(out.to_path_buf()));
    }
    run.create()?;
    let pending = Pending {
        run: Some(run),
        existed,
    };
    let run = pending.run();
    if config.labels_snapshot {
        copy_tree(&source.join("labels"), &out.join("labels"))?;
    }
    run.write_config(config)?;
    // An empty history: `train --resume` (fine-tuning) requires the file, and the checkpoints
    // written here saw nothing of it (`metrics_bytes` 0).
    let metrics = run.metrics_path();
    write_atomic(&metrics, b"").map_err(|e| RunDirError::Corrupt {
        path: metrics,
        reason: e.to_string(),
    })?;
    let text = serde_json::to_string_pretty(derivation).unwrap_or_default() + "\n";
    let path = out.join("derived.json");
    write_atomic(&path, text.as_bytes()).map_err(|e| RunDirError::Corrupt {
        path,
        reason: e.to_string(),
    })?;
    Ok(pending)
}

/// Writes `model` as the run's `best` and `last` checkpoints with `state`; the `last` one gets
/// an empty optimiser state of the run's optimiser, so that `train --resume` (fine-tuning)
/// starts from these weights.
pub fn write_weights(
    run: &RunDir,
    config: &RunConfig,
    model: &Segmenter,
    state: &TrainState,
) -> Result<(), RunDirError> {
    let optimizer = build_optimizer(&config.train.optimizer).map_err(|e| RunDirError::Corrupt {
        path: run.config_path(),
        reason: format!("optimizer: {e}"),
    })?;
    run.save_checkpoint(CheckpointKind::Last, model, Some(&optimizer), state)?;
    run.save_checkpoint(CheckpointKind::Best, model, None, state)?;
    Ok(())
}

/// The state [`write_weights`] records: nothing trained yet in this run (a resume fine-tunes
/// from epoch 1), `best` the validation mIoU of the weights as they are.
pub fn state(best: Option<f64>) -> TrainState {
    TrainState {
        epoch: 0,
        batch: 0,
        step: 0,
        best_mean_iou: best,
        best_epoch: None,
        epochs_without_improvement: 0,
        metrics_bytes: 0,
        elapsed_secs: 0.0,
    }
}

/// A summary for a derived run that did not train.
pub fn summary(method: &str, best: Option<f64>) -> Summary {
    Summary {
        status: "completed".into(),
        epochs: 0,
        steps: 0,
        best_epoch: None,
        best_mean_iou: best,
        last_validation: None,
        elapsed_secs: 0.0,
        device: "cpu".into(),
        message: Some(method.to_string()),
    }
}

fn same_folder(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

fn copy_tree(from: &Path, to: &Path) -> Result<(), RunDirError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| RunDirError::Io { path, source }
    };
    std::fs::create_dir_all(to).map_err(io(to))?;
    let Ok(entries) = std::fs::read_dir(from) else {
        return Ok(());
    };
    for entry in entries {
        let entry = entry.map_err(io(from))?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if src.is_dir() {
            copy_tree(&src, &dst)?;
        } else {
            std::fs::copy(&src, &dst).map_err(io(&src))?;
        }
    }
    Ok(())
}

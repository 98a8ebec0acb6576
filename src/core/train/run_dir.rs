//! A run directory on disk:
//!
//! ```text
//! RUN/config.json            RunConfig: everything needed to reproduce the run
//! RUN/metrics.jsonl          one MetricRecord per logged step and per validation
//! RUN/checkpoints/last/      model.bpk, optimizer.bpk, state.json (where to continue);
//!                            aux.bpk when the network has a second head
//! RUN/checkpoints/best/      model.bpk (aux.bpk), state.json (best validation mIoU so far)
//! RUN/summary.json           written when the run ends
//! ```
//!
//! A checkpoint is written into a temporary folder, synced, then swapped in by renames, so a
//! killed process leaves either the old or the new checkpoint, never half of one.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::config::RunConfig;
use super::optim::SegOptimizer;
use crate::core::dataset::image_io::write_atomic;
use crate::core::model::segmenter::Segmenter;

/// Why a run directory could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum RunDirError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("{0}: not a roadseg run (no config.json)")]
    NotARun(PathBuf),
    #[error("{0}: the run has no checkpoint yet")]
    NoCheckpoint(PathBuf),
    /// The checkpoint asked for is not there, the other one is: saying so rather than using
    /// the other one, so that a figure never comes from weights nobody asked for.
    #[error(
        "{run}: the run has no {kind} checkpoint (checkpoints/{kind} is missing or incomplete); \
         pass --checkpoint {other} to use its {other} one",
        other = .kind.other()
    )]
    MissingCheckpoint { run: PathBuf, kind: CheckpointKind },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RunDirError + '_ {
    move |source| RunDirError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Which checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckpointKind {
    /// Where the run stopped: model, optimiser and loop state, to resume from.
    Last,
    /// The model with the best validation mIoU, for inference.
    Best,
}

impl CheckpointKind {
    fn dir_name(self) -> &'static str {
        match self {
            Self::Last => "last",
            Self::Best => "best",
        }
    }

    fn other(self) -> Self {
        match self {
            Self::Last => Self::Best,
            Self::Best => Self::Last,
        }
    }
}

impl std::fmt::Display for CheckpointKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.dir_name())
    }
}

/// Where the loop stands, saved with each checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// 0-based epoch in progress (equal to the epoch count when the run is complete).
    pub epoch: usize,
    /// Batches of `epoch` already trained on.
    pub batch: usize,
    /// Optimiser steps taken in the whole run.
    pub step: usize,
    /// Best validation mIoU so far and the (1-based) epoch that reached it.
    pub best_mean_iou: Option<f64>,
    pub best_epoch: Option<usize>,
    /// Epochs since the best one (for early stopping).
    pub epochs_without_improvement: usize,
    /// Length of metrics.jsonl when this checkpoint was written: a resumed run truncates the
    /// file here, so lines written after the checkpoint are neither lost nor duplicated.
    pub metrics_bytes: u64,
    /// Training wall time before this checkpoint, seconds.
    pub elapsed_secs: f64,
}

/// Per-class IoU in a validation record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassIou {
    pub id: usize,
    pub name: String,
    /// `None` when the class is absent from both ground truth and prediction.
    pub iou: Option<f64>,
}

/// One line of metrics.jsonl.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricRecord {
    /// `train` (one optimiser step) or `val` (one validation pass at the end of an epoch).
    pub split: String,
    /// 1-based epoch.
    pub epoch: usize,
    /// Optimiser steps done so far in the run (1-based for train lines).
    pub step: usize,
    pub loss: f64,
    pub lr: f64,
    /// Seconds of training since the run started (resumes included).
    pub elapsed_secs: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images_per_sec: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pixel_accuracy: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_iou: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_f1: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classes: Option<Vec<ClassIou>>,
    /// F1 of the road class's edges within 2 pixels ([`crate::core::boundary`]); `None` without
    /// a road class or road edges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boundary_f1: Option<f64>,
}

impl MetricRecord {
    /// A record with only the fields every line has (the scores of a validation are added by
    /// whoever has them).
    pub fn new(split: &str, epoch: usize, step: usize, loss: f64, lr: f64) -> Self {
        Self {
            split: split.into(),
            epoch,
            step,
            loss,
            lr,
            elapsed_secs: 0.0,
            images_per_sec: None,
            pixel_accuracy: None,
            mean_iou: None,
            mean_f1: None,
            classes: None,
            boundary_f1: None,
        }
    }
}

/// How a run ended, in summary.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// `completed`, `early_stopped`, `stopped` (by the user) or `diverged` (NaN/inf loss).
    pub status: String,
    pub epochs: usize,
    pub steps: usize,
    pub best_epoch: Option<usize>,
    pub best_mean_iou: Option<f64>,
    /// The last validation record, if any.
    pub last_validation: Option<MetricRecord>,
    pub elapsed_secs: f64,
    pub device: String,
    /// Why the run ended early, for `stopped` and `diverged`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// `folder/run-1`, `folder/run-2`, ...: the first that does not exist yet.
pub fn next_run_dir(folder: &Path) -> PathBuf {
    (1..)
        .map(|n| folder.join(format!("run-{n}")))
        .find(|p| !p.exists())
        .expect("an unused run number")
}

/// Paths and I/O of one run directory.
#[derive(Debug, Clone)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn config_path(&self) -> PathBuf {
        self.root.join("config.json")
    }

    pub fn metrics_path(&self) -> PathBuf {
        self.root.join("metrics.jsonl")
    }

    pub fn summary_path(&self) -> PathBuf {
        self.root.join("summary.json")
    }

    pub fn checkpoint_dir(&self, kind: CheckpointKind) -> PathBuf {
        self.root.join("checkpoints").join(kind.dir_name())
    }

    /// Whether the folder already holds a run.
    pub fn exists(&self) -> bool {
        self.config_path().is_file()
    }

    pub fn create(&self) -> Result<(), RunDirError> {
        let checkpoints = self.root.join("checkpoints");
        std::fs::create_dir_all(&checkpoints).map_err(io(&checkpoints))
    }

    pub fn write_config(&self, config: &RunConfig) -> Result<(), RunDirError> {
        write_json(&self.config_path(), config)
    }

    /// Reads and checks `config.json` (see [`RunConfig::validate`]).
    pub fn read_config(&self) -> Result<RunConfig, RunDirError> {
        if !self.exists() {
            return Err(RunDirError::NotARun(self.root.clone()));
        }
        let path = self.config_path();
        let config: RunConfig = read_json(&path)?;
        config.validate().map_err(|reason| RunDirError::Corrupt {
            path: path.clone(),
            reason: format!("not a usable run config: {reason}"),
        })?;
        Ok(config)
    }

    pub fn write_summary(&self, summary: &Summary) -> Result<(), RunDirError> {
        write_json(&self.summary_path(), summary)
    }

    pub fn read_summary(&self) -> Result<Summary, RunDirError> {
        read_json(&self.summary_path())
    }

    /// Writes a checkpoint: the model, the optimiser state (for `Last`) and the loop state.
    pub fn save_checkpoint(
        &self,
        kind: CheckpointKind,
        model: &Segmenter,
        optimizer: Option<&SegOptimizer>,
        state: &TrainState,
    ) -> Result<PathBuf, RunDirError> {
        // Batch norm's running statistics keep the last step's update pending until the next
        // update or a sync, and saving reads them without it: a checkpoint written mid-epoch
        // (a stop) would lose that update, and the resumed run's validation would differ from
        // an unstopped run's. `valid()` syncs them in place (the next step goes on exactly as
        // it would have).
        let _ = burn::module::Module::valid(model);
        let dir = self.checkpoint_dir(kind);
        let parent = dir.parent().unwrap_or(&self.root).to_path_buf();
        let tmp = parent.join(format!(".{}.tmp", kind.dir_name()));
        let old = parent.join(format!(".{}.old", kind.dir_name()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;

        let written = (|| {
            write_model_files(model, &tmp.join("model.bpk"), &tmp.join("aux.bpk"))?;
            if let Some(optimizer) = optimizer {
                let path = tmp.join("optimizer.bpk");
                // A disk that fills half-way through a checkpoint (after the model file).
                crate::core::fault::check_write(&path).map_err(io(&path))?;
                optimizer
                    .save_state(&path)
                    .map_err(|e| RunDirError::Corrupt {
                        path: path.clone(),
                        reason: format!("could not write the optimiser state: {e}"),
                    })?;
                sync_file(&path)?;
            }
            write_json(&tmp.join("state.json"), state)
        })();
        if let Err(e) = written {
            // The half-written copy goes (its space matters on a full disk); the checkpoint in
            // place is untouched.
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }

        // Swap: dir -> old, tmp -> dir, drop old. Between the two renames only `old` exists,
        // which `existing_checkpoint` falls back to.
        let _ = std::fs::remove_dir_all(&old);
        if dir.exists() {
            std::fs::rename(&dir, &old).map_err(io(&dir))?;
        }
        std::fs::rename(&tmp, &dir).map_err(io(&dir))?;
        sync_dir(&parent);
        let _ = std::fs::remove_dir_all(&old);
        Ok(dir)
    }

    /// The folder holding a complete checkpoint of `kind`, if any (see `save_checkpoint`).
    pub fn existing_checkpoint(&self, kind: CheckpointKind) -> Option<PathBuf> {
        let dir = self.checkpoint_dir(kind);
        let old = dir
            .parent()
            .map(|p| p.join(format!(".{}.old", kind.dir_name())));
        std::iter::once(dir)
            .chain(old)
            .find(|d| d.join("state.json").is_file() && d.join("model.bpk").is_file())
    }

    /// The `kind` checkpoint's folder, or why there is none: what a command that reads one
    /// checkpoint (`--checkpoint best|last`) uses, so that none silently reads the other.
    pub fn checkpoint(&self, kind: CheckpointKind) -> Result<PathBuf, RunDirError> {
        if let Some(dir) = self.existing_checkpoint(kind) {
            return Ok(dir);
        }
        Err(match self.existing_checkpoint(kind.other()) {
            Some(_) => RunDirError::MissingCheckpoint {
                run: self.root.clone(),
                kind,
            },
            None => RunDirError::NoCheckpoint(self.root.clone()),
        })
    }

    /// The best checkpoint's folder, else the last one's: for what starts from or shows a run
    /// without the user choosing (`--init-from`, the studio's Errors panel, a teacher).
    pub fn best_or_last(&self) -> Result<PathBuf, RunDirError> {
        self.existing_checkpoint(CheckpointKind::Best)
            .or_else(|| self.existing_checkpoint(CheckpointKind::Last))
            .ok_or_else(|| RunDirError::NoCheckpoint(self.root.clone()))
    }

    pub fn read_state(&self, checkpoint: &Path) -> Result<TrainState, RunDirError> {
        read_json(&checkpoint.join("state.json"))
    }

    /// Opens metrics.jsonl for appending, first cutting it to `keep_bytes` (a resumed run drops
    /// the lines written after its checkpoint).
    pub fn open_metrics(&self, keep_bytes: u64) -> Result<MetricsLog, RunDirError> {
        let path = self.metrics_path();
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io(&path))?;
        let len = file.metadata().map_err(io(&path))?.len();
        if len < keep_bytes {
            return Err(RunDirError::Corrupt {
                path,
                reason: format!(
                    "is {len} bytes but the checkpoint was written after {keep_bytes}: \
                     the file was shortened since"
                ),
            });
        }
        file.set_len(keep_bytes).map_err(io(&path))?;
        drop(file);
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        Ok(MetricsLog {
            path,
            file,
            bytes: keep_bytes,
            synced: std::time::Instant::now(),
        })
    }
}

/// How long an appended line may wait before it is flushed to disk. Each line is written to the
/// file at once (a local reader sees it), but a reader on another machine of shared storage
/// (NFS) sees only what the writer flushed; flushing every line would cost a disk sync per step.
pub const METRICS_SYNC_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// Append-only writer of metrics.jsonl that knows its length.
pub struct MetricsLog {
    path: PathBuf,
    file: File,
    bytes: u64,
    /// When the file was last flushed to disk (see [`METRICS_SYNC_EVERY`]).
    synced: std::time::Instant,
}

impl MetricsLog {
    pub fn append(&mut self, record: &MetricRecord) -> Result<(), RunDirError> {
        crate::core::fault::check_write(&self.path).map_err(io(&self.path))?;
        let mut line = serde_json::to_string(record).map_err(|e| RunDirError::Corrupt {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .map_err(io(&self.path))?;
        self.bytes += line.len() as u64;
        if self.synced.elapsed() >= METRICS_SYNC_EVERY {
            self.sync()?;
        }
        Ok(())
    }

    /// Flushes to disk (before a checkpoint records the length, and every
    /// [`METRICS_SYNC_EVERY`]).
    pub fn sync(&mut self) -> Result<(), RunDirError> {
        self.file.sync_data().map_err(io(&self.path))?;
        self.synced = std::time::Instant::now();
        Ok(())
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

/// Reads every record of a metrics.jsonl file (a torn last line from a killed process is
/// skipped).
pub fn read_metrics(path: &Path) -> Result<Vec<MetricRecord>, RunDirError> {
    let file = File::open(path).map_err(io(path))?;
    let lines: Vec<String> = BufReader::new(file)
        .lines()
        .collect::<Result<_, _>>()
        .map_err(io(path))?;
    let last = lines.len().saturating_sub(1);
    let mut records = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(line) {
            Ok(record) => records.push(record),
            Err(_) if i == last => {}
            Err(e) => {
                return Err(RunDirError::Corrupt {
                    path: path.to_path_buf(),
                    reason: format!("line {}: {e}", i + 1),
                });
            }
        }
    }
    Ok(records)
}

/// Loads the weights of the checkpoint folder `dir` into `model` (which fixes the architecture
/// and device).
pub fn load_model(model: Segmenter, dir: &Path) -> Result<Segmenter, RunDirError> {
    let path = dir.join("model.bpk");
    model
        .load_files(&path, &dir.join("aux.bpk"))
        .map_err(|e| RunDirError::Corrupt {
            path,
            reason: format!("could not load the model: {e}"),
        })
}

/// Writes `model`'s files (the network's and the second head's, if any) into the checkpoint
/// folder `dir` over the ones there, each atomically: a temporary file, synced, renamed over.
/// The loop state and optimiser state beside them are left as they are.
pub fn replace_model(dir: &Path, model: &Segmenter) -> Result<(), RunDirError> {
    let mut files = vec![(dir.join(".model.tmp.bpk"), dir.join("model.bpk"))];
    // No second head, no aux file.
    if model.aux_channels().is_some() {
        files.push((dir.join(".aux.tmp.bpk"), dir.join("aux.bpk")));
    }
    let aux_tmp = dir.join(".aux.tmp.bpk");
    if let Err(e) = write_model_files(model, &files[0].0, &aux_tmp) {
        for tmp in [&files[0].0, &aux_tmp] {
            let _ = std::fs::remove_file(tmp);
        }
        return Err(e);
    }
    for (tmp, path) in &files {
        std::fs::rename(tmp, path).map_err(io(path))?;
    }
    sync_dir(dir);
    Ok(())
}

/// Writes `model`'s files, the second head's only when there is one, and syncs them.
fn write_model_files(
    model: &Segmenter,
    model_path: &Path,
    aux_path: &Path,
) -> Result<(), RunDirError> {
    model
        .save_files(model_path, aux_path)
        .map_err(|e| RunDirError::Corrupt {
            path: model_path.to_path_buf(),
            reason: format!("could not write the model: {e}"),
        })?;
    sync_file(model_path)?;
    if model.aux_channels().is_some() {
        sync_file(aux_path)?;
    }
    Ok(())
}

/// [`load_model`] for training: weights stored quantized (a run made by `roadseg quantize`)
/// become f32 parameters that require gradients. Autodiff cannot track a quantized parameter
/// (burn dequantizes it into a fresh constant at every use), so without this only the
/// batch-norm parameters of such a run would train. Says so through `log` when it happens.
pub fn load_for_training(
    model: Segmenter,
    dir: &Path,
    log: &mut dyn FnMut(String),
) -> Result<Segmenter, RunDirError> {
    let (model, tensors) = crate::core::kernels::ops::dequantize_params(load_model(model, dir)?);
    if tensors > 0 {
        log(format!(
            "{}: {tensors} weight tensors are stored as int8 (a quantized run); training goes on \
             in f32 from their dequantized values, so this run's checkpoints will be f32",
            dir.display()
        ));
    }
    Ok(model)
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), RunDirError> {
    let mut text = serde_json::to_string_pretty(value).map_err(|e| RunDirError::Corrupt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    text.push('\n');
    write_atomic(path, text.as_bytes()).map_err(|e| RunDirError::Corrupt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, RunDirError> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    serde_json::from_str(&text).map_err(|e| RunDirError::Corrupt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

fn sync_file(path: &Path) -> Result<(), RunDirError> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(io(path))
}

/// Makes renames in `dir` durable; best effort (not every filesystem allows it).
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(step: usize) -> MetricRecord {
        MetricRecord {
            elapsed_secs: step as f64,
            images_per_sec: Some(10.0),
            ..MetricRecord::new("train", 1, step, 1.0 / step as f64, 1e-3)
        }
    }

    #[test]
    fn replaced_model_files_load_and_leave_no_temporary_file() {
        use crate::core::model::segmenter::{AuxTask, SegmenterConfig};
        use crate::core::model::unet::UNetConfig;
        let device = burn::tensor::Device::flex();
        let config = SegmenterConfig::new(UNetConfig::new(2).with_depth(1).with_base_width(2))
            .with_aux(Some(AuxTask::Boundary));
        let tmp = tempfile::tempdir().unwrap();
        let old = config.init(&device);
        old.save_files(&tmp.path().join("model.bpk"), &tmp.path().join("aux.bpk"))
            .unwrap();
        let new = config.init(&device);
        replace_model(tmp.path(), &new).unwrap();
        let loaded = load_model(config.init(&device), tmp.path()).unwrap();
        let x = burn::tensor::Tensor::<4>::ones([1, 3, 4, 4], &device);
        let (a, b) = (new.forward(x.clone()), loaded.forward(x));
        let diff = |a: burn::tensor::Tensor<4>, b: burn::tensor::Tensor<4>| {
            (a - b).abs().max().into_scalar::<f32>()
        };
        assert_eq!(diff(a.logits, b.logits), 0.0);
        assert_eq!(diff(a.aux.unwrap(), b.aux.unwrap()), 0.0);
        let mut names: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["aux.bpk", "model.bpk"]);
    }

    #[test]
    fn run_folders_are_numbered_from_one() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(next_run_dir(tmp.path()), tmp.path().join("run-1"));
        std::fs::create_dir(tmp.path().join("run-1")).unwrap();
        assert_eq!(next_run_dir(tmp.path()), tmp.path().join("run-2"));
    }

    #[test]
    fn metrics_resume_drops_lines_after_the_checkpoint() {
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir::new(tmp.path());
        run.create().unwrap();
        let mut log = run.open_metrics(0).unwrap();
        log.append(&record(1)).unwrap();
        log.append(&record(2)).unwrap();
        let checkpoint_bytes = log.bytes();
        log.append(&record(3)).unwrap();
        drop(log);
        assert_eq!(read_metrics(&run.metrics_path()).unwrap().len(), 3);

        let mut log = run.open_metrics(checkpoint_bytes).unwrap();
        log.append(&record(3)).unwrap();
        let steps: Vec<usize> = read_metrics(&run.metrics_path())
            .unwrap()
            .iter()
            .map(|r| r.step)
            .collect();
        assert_eq!(steps, [1, 2, 3]);
        // A file shorter than the checkpoint says it was tampered with.
        let err = run.open_metrics(checkpoint_bytes * 10).err().unwrap();
        assert!(err.to_string().contains("shortened"), "{err}");
    }

    #[test]
    fn a_torn_last_line_is_skipped_but_a_torn_middle_line_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("metrics.jsonl");
        let good = serde_json::to_string(&record(1)).unwrap();
        std::fs::write(&path, format!("{good}\n{{\"split\":\"tr")).unwrap();
        assert_eq!(read_metrics(&path).unwrap().len(), 1);
        std::fs::write(&path, format!("{{\"split\n{good}\n")).unwrap();
        let err = read_metrics(&path).unwrap_err().to_string();
        assert!(err.contains("line 1"), "{err}");
    }

    #[test]
    fn checkpoint_swap_keeps_a_complete_copy() {
        use crate::core::model::unet::UNetConfig;
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir::new(tmp.path());
        run.create().unwrap();
        let device = burn::tensor::Device::flex();
        let model: Segmenter = UNetConfig::new(2)
            .with_depth(1)
            .with_base_width(2)
            .init(&device)
            .into();
        let state = TrainState {
            epoch: 1,
            batch: 0,
            step: 5,
            best_mean_iou: None,
            best_epoch: None,
            epochs_without_improvement: 0,
            metrics_bytes: 0,
            elapsed_secs: 0.0,
        };
        assert!(run.existing_checkpoint(CheckpointKind::Last).is_none());
        run.save_checkpoint(CheckpointKind::Last, &model, None, &state)
            .unwrap();
        let second = TrainState { step: 9, ..state };
        run.save_checkpoint(CheckpointKind::Last, &model, None, &second)
            .unwrap();
        let dir = run.existing_checkpoint(CheckpointKind::Last).unwrap();
        assert_eq!(run.read_state(&dir).unwrap().step, 9);
        // A crash between the two renames leaves only the `.old` copy, which is found.
        let old = tmp.path().join("checkpoints/.last.old");
        std::fs::rename(&dir, &old).unwrap();
        let found = run.existing_checkpoint(CheckpointKind::Last).unwrap();
        assert_eq!(found, old);
        assert_eq!(run.read_state(&found).unwrap().step, 9);
    }
}

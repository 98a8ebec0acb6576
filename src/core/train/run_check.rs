//! Is a run folder usable? What the studio's Runs list shows, and what `eval`, `predict` and
//! `train --resume` check before they touch a run.
//!
//! A run folder may have been cut short by a full disk, copied half-way, edited by hand or
//! had files swapped. Everything in it is checked the way its users read it: `config.json`
//! must describe a buildable model ([`RunConfig::validate`]), each checkpoint must hold a
//! readable `state.json` and weights that load into that model, and `metrics.jsonl` must parse
//! and be at least as long as the last checkpoint says it was.

use std::path::Path;

use burn::tensor::Device;

use super::config::RunConfig;
use super::optim::build_optimizer;
use super::run_dir::{CheckpointKind, MetricRecord, RunDir, RunDirError, load_model, read_metrics};

/// Why a run folder cannot be used, split by what still works.
#[derive(Debug, thiserror::Error)]
pub enum Broken {
    /// The config or the checkpoints: nothing can use the run.
    #[error(transparent)]
    Unusable(RunDirError),
    /// The weights load, but the history (`metrics.jsonl`) or the optimiser state is damaged:
    /// the curves and a resume would be wrong.
    #[error(transparent)]
    NotResumable(RunDirError),
}

impl Broken {
    pub fn error(&self) -> &RunDirError {
        match self {
            Broken::Unusable(e) | Broken::NotResumable(e) => e,
        }
    }
}

/// A run that passed the checks.
#[derive(Debug, Clone)]
pub struct Healthy {
    pub config: RunConfig,
    /// The records of `metrics.jsonl` (a torn last line from a kill is not an error).
    pub metrics: Vec<MetricRecord>,
}

/// Checks the whole run folder (see the module comment). Loads each checkpoint's weights on the
/// CPU, so it costs about one model load per checkpoint.
pub fn check(run: &RunDir) -> Result<Healthy, Broken> {
    let config = run.read_config().map_err(Broken::Unusable)?;
    let metrics_path = run.metrics_path();
    let metrics = read_metrics(&metrics_path);
    let history = check_checkpoints(run, &config, metrics.as_ref().ok().map(Vec::as_slice))?;
    let metrics = metrics.map_err(|e| {
        Broken::NotResumable(match e {
            RunDirError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                RunDirError::Corrupt {
                    path: metrics_path.clone(),
                    reason: "missing".into(),
                }
            }
            e => e,
        })
    })?;
    if let Some(problem) = history {
        return Err(Broken::NotResumable(problem));
    }
    Ok(Healthy { config, metrics })
}

/// The checkpoints: an error when one is unusable, else a problem of the history (metrics.jsonl
/// shorter than the last checkpoint saw it), if any. `metrics` is `None` when metrics.jsonl
/// cannot be read.
fn check_checkpoints(
    run: &RunDir,
    config: &RunConfig,
    metrics: Option<&[MetricRecord]>,
) -> Result<Option<RunDirError>, Broken> {
    let device = Device::flex();
    let mut found = 0;
    let mut history = None;
    for kind in [CheckpointKind::Last, CheckpointKind::Best] {
        let wanted = run.checkpoint_dir(kind);
        let Some(dir) = run.existing_checkpoint(kind) else {
            if wanted.exists() {
                return Err(Broken::Unusable(RunDirError::Corrupt {
                    path: wanted,
                    reason: "incomplete checkpoint (state.json or model.bpk is missing)".into(),
                }));
            }
            continue;
        };
        found += 1;
        let state = run.read_state(&dir).map_err(Broken::Unusable)?;
        // The run's own network (a ResNet encoder, a second head), as every consumer builds it.
        load_model(config.segmenter().init(&device), &dir).map_err(Broken::Unusable)?;
        if kind == CheckpointKind::Last {
            history = optimizer_problem(config, &dir.join("optimizer.bpk"))
                .or_else(|| short_metrics(&run.metrics_path(), state.metrics_bytes, &dir));
        }
    }
    if found == 0 {
        // Fresh runs have no checkpoint until their first epoch ends; a run that validated or
        // ended must have one.
        let validated = metrics.map_or(0, |m| m.iter().filter(|r| r.split == "val").count());
        let ended = run.summary_path().is_file();
        if validated > 0 || ended {
            return Err(Broken::Unusable(RunDirError::Corrupt {
                path: run.root().join("checkpoints"),
                reason: if ended {
                    "no checkpoint although the run ended".to_string()
                } else {
                    format!("no checkpoint although the run validated {validated} epoch(s)")
                },
            }));
        }
        return Err(Broken::Unusable(RunDirError::NoCheckpoint(
            run.root().to_path_buf(),
        )));
    }
    Ok(history)
}

/// The optimiser state of `last` must load (resuming needs it).
fn optimizer_problem(config: &RunConfig, path: &Path) -> Option<RunDirError> {
    let reason = if path.is_file() {
        let optimizer = build_optimizer(&config.train.optimizer).ok()?;
        let error = optimizer.load_state_file(path).err()?;
        format!("could not read the optimiser state: {error}")
    } else {
        "missing (needed to resume the run)".to_string()
    };
    Some(RunDirError::Corrupt {
        path: path.to_path_buf(),
        reason,
    })
}

/// metrics.jsonl must hold at least what the checkpoint saw written.
fn short_metrics(metrics: &Path, expected: u64, checkpoint: &Path) -> Option<RunDirError> {
    let len = std::fs::metadata(metrics).map_or(0, |m| m.len());
    (len < expected).then(|| RunDirError::Corrupt {
        path: metrics.to_path_buf(),
        reason: format!(
            "is {len} bytes but {} was written after {expected}: the file was cut short",
            checkpoint.display()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::dataset::sample;
    use crate::core::model::unet::UNetConfig;
    use crate::core::train::config::TrainConfig;
    use crate::core::train::run_dir::{MetricRecord, TrainState};

    /// A run folder as training leaves it after one epoch: config, two metrics lines, `last` and
    /// `best` checkpoints.
    fn healthy_run(root: &Path) -> RunDir {
        let classes = sample::classes();
        let mut train = TrainConfig::default();
        train.model = train.model.with_depth(1).with_base_width(2);
        let model = UNetConfig {
            num_classes: classes.len(),
            ..train.model.clone()
        };
        let config = RunConfig {
            data: root.join("data"),
            format: "native".into(),
            classes: classes.0.clone(),
            model: model.clone(),
            train: train.clone(),
            device: "cpu".into(),
            roadseg_version: "test".into(),
            labels_snapshot: false,
        };
        let run = RunDir::new(root.join("run"));
        run.create().unwrap();
        run.write_config(&config).unwrap();
        let mut log = run.open_metrics(0).unwrap();
        for split in ["train", "val"] {
            log.append(&MetricRecord {
                split: split.into(),
                epoch: 1,
                step: 1,
                loss: 0.5,
                lr: 1e-3,
                elapsed_secs: 1.0,
                images_per_sec: None,
                pixel_accuracy: None,
                mean_iou: Some(0.3),
                mean_f1: None,
                classes: None,
                boundary_f1: None,
            })
            .unwrap();
        }
        log.sync().unwrap();
        let state = TrainState {
            epoch: 1,
            batch: 0,
            step: 1,
            best_mean_iou: Some(0.3),
            best_epoch: Some(1),
            epochs_without_improvement: 0,
            metrics_bytes: log.bytes(),
            elapsed_secs: 1.0,
        };
        let net: crate::core::model::segmenter::Segmenter = model.init(&Device::flex()).into();
        let optimizer = build_optimizer(&train.optimizer).unwrap();
        run.save_checkpoint(CheckpointKind::Last, &net, Some(&optimizer), &state)
            .unwrap();
        run.save_checkpoint(CheckpointKind::Best, &net, None, &state)
            .unwrap();
        run
    }

    fn unusable(run: &RunDir) -> String {
        match check(run) {
            Err(Broken::Unusable(e)) => e.to_string(),
            other => panic!("expected an unusable run, got {other:?}"),
        }
    }

    #[test]
    fn a_healthy_run_passes_with_its_history() {
        let tmp = tempfile::tempdir().unwrap();
        let run = healthy_run(tmp.path());
        let healthy = check(&run).unwrap();
        assert_eq!(healthy.metrics.len(), 2);
        // A torn last line (a kill while logging) is normal, not damage.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(run.metrics_path())
            .unwrap();
        std::io::Write::write_all(&mut f, b"{\"split\":\"tr").unwrap();
        assert_eq!(check(&run).unwrap().metrics.len(), 2);
    }

    #[test]
    fn garbage_config_and_damaged_checkpoints_make_a_run_unusable() {
        let tmp = tempfile::tempdir().unwrap();
        let run = healthy_run(tmp.path());
        let config = std::fs::read_to_string(run.config_path()).unwrap();

        std::fs::write(run.config_path(), "{\"data\": 3").unwrap();
        assert!(unusable(&run).contains("config.json"));
        // Valid JSON, absurd model: refused before anything is built.
        let huge = config.replacen("\"base_width\": 2", "\"base_width\": 9000", 2);
        assert_ne!(huge, config);
        std::fs::write(run.config_path(), huge).unwrap();
        let err = unusable(&run);
        assert!(
            err.contains("config.json") && err.contains("parameters"),
            "{err}"
        );
        std::fs::write(run.config_path(), &config).unwrap();

        let model = run.checkpoint_dir(CheckpointKind::Best).join("model.bpk");
        let weights = std::fs::read(&model).unwrap();
        std::fs::write(&model, &weights[..weights.len() / 2]).unwrap();
        let err = unusable(&run);
        assert!(err.contains("best/model.bpk"), "{err}");
        // The optimiser state in place of the weights.
        let optimizer = run
            .checkpoint_dir(CheckpointKind::Last)
            .join("optimizer.bpk");
        std::fs::copy(&optimizer, &model).unwrap();
        assert!(unusable(&run).contains("best/model.bpk"));
        // Weights of another architecture.
        let other = UNetConfig::new(sample::classes().len())
            .with_depth(2)
            .with_base_width(2)
            .init(&Device::flex());
        burn::module::Module::save_file(other, &model).unwrap();
        assert!(unusable(&run).contains("best/model.bpk"));
        std::fs::write(&model, &weights).unwrap();
        check(&run).unwrap();

        std::fs::write(&optimizer, b"junk").unwrap();
        assert!(
            matches!(check(&run), Err(Broken::NotResumable(e)) if e.to_string().contains("optimizer.bpk"))
        );
        std::fs::remove_file(&optimizer).unwrap();
        assert!(
            matches!(check(&run), Err(Broken::NotResumable(e)) if e.to_string().contains("optimizer.bpk"))
        );
        std::fs::remove_dir_all(run.root().join("checkpoints")).unwrap();
        let err = unusable(&run);
        assert!(
            err.contains("no checkpoint although the run validated 1"),
            "{err}"
        );
    }

    #[test]
    fn a_cut_history_is_told_apart_from_unusable_weights() {
        let tmp = tempfile::tempdir().unwrap();
        let run = healthy_run(tmp.path());
        let text = std::fs::read_to_string(run.metrics_path()).unwrap();
        std::fs::write(run.metrics_path(), &text[..text.len() / 3]).unwrap();
        match check(&run) {
            Err(Broken::NotResumable(e)) => {
                let e = e.to_string();
                assert!(
                    e.contains("metrics.jsonl") && e.contains("cut short"),
                    "{e}"
                );
            }
            other => panic!("{other:?}"),
        }
        std::fs::write(run.metrics_path(), format!("garbage\n{text}")).unwrap();
        assert!(matches!(check(&run), Err(Broken::NotResumable(_))));
        std::fs::remove_file(run.metrics_path()).unwrap();
        assert!(matches!(check(&run), Err(Broken::NotResumable(_))));
    }

    #[test]
    fn a_fresh_run_has_no_checkpoint_yet() {
        let tmp = tempfile::tempdir().unwrap();
        let run = healthy_run(tmp.path());
        std::fs::remove_dir_all(run.root().join("checkpoints")).unwrap();
        std::fs::write(run.metrics_path(), "").unwrap();
        assert!(matches!(
            check(&run),
            Err(Broken::Unusable(RunDirError::NoCheckpoint(_)))
        ));
    }
}

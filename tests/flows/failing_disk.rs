//! A disk that fills up while training: checkpoint saves fail through the fault-injection point
//! (`core::fault`; root ignores permissions, so a read-only folder cannot stand in). The run
//! goes on with the previous checkpoint in place, saves again once the disk has room, and a run
//! that ends without its last checkpoint saved says so and keeps the previous one intact.
//! (Mask saves on a failing disk are tested in the studio: `tests/studio/reliability.rs`.)

use std::cell::RefCell;
use std::path::Path;

use roadseg::core::dataset::sample::{SampleConfig, generate};
use roadseg::core::device::DeviceChoice;
use roadseg::core::fault::{FailingWrites, fail_writes_under};
use roadseg::core::train::config::TrainConfig;
use roadseg::core::train::control::Control;
use roadseg::core::train::run_check::check;
use roadseg::core::train::run_dir::{CheckpointKind, RunDir, Summary};
use roadseg::core::train::trainer::{
    DataSpec, TrainError, TrainEvent, TrainOptions, TrainStart, train,
};

fn tiny(dir: &Path, epochs: usize) -> TrainStart {
    let data = dir.join("data");
    let cfg = SampleConfig {
        count: 6,
        seed: 2,
        width: 48,
        height: 32,
        ..Default::default()
    };
    generate(&data, &cfg).unwrap();
    let mut config = TrainConfig {
        epochs,
        batch_size: 2,
        size: [32, 24],
        num_workers: 1,
        early_stopping: None,
        auto: None,
        ..TrainConfig::default()
    };
    config.model.depth = 1;
    config.model.base_width = 2;
    TrainStart::New {
        data: DataSpec {
            root: data,
            format: None,
        },
        config: Box::new(config),
        out: dir.join("run"),
    }
}

fn options() -> TrainOptions {
    TrainOptions {
        device: DeviceChoice::Cpu,
        ..Default::default()
    }
}

/// Trains, switching the checkpoints folder to failing after epoch `fail_from`'s last
/// checkpoint and back to working after `fail_for` failed saves (`None`: never). Returns the
/// outcome and the log lines.
fn train_with_failing_checkpoints(
    dir: &Path,
    epochs: usize,
    fail_from: usize,
    fail_for: Option<usize>,
) -> (Result<Summary, TrainError>, Vec<String>) {
    let checkpoints = dir.join("run/checkpoints");
    let full: RefCell<Option<FailingWrites>> = RefCell::new(None);
    let mut last_saves = 0;
    let mut failures = 0;
    let mut log = Vec::new();
    let result = train(
        tiny(dir, epochs),
        &options(),
        &mut |event| match event {
            TrainEvent::Checkpoint {
                kind: CheckpointKind::Last,
                ..
            } => {
                last_saves += 1;
                if last_saves == fail_from {
                    *full.borrow_mut() = Some(fail_writes_under(&checkpoints));
                }
            }
            TrainEvent::Log(line) => {
                if line.contains("could not write the last checkpoint") {
                    failures += 1;
                    if Some(failures) == fail_for {
                        full.borrow_mut().take();
                    }
                }
                log.push(line);
            }
            _ => {}
        },
        &Control::default(),
    );
    (result, log)
}

#[test]
fn a_failed_checkpoint_keeps_the_previous_one_and_the_run_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let (result, log) = train_with_failing_checkpoints(tmp.path(), 4, 1, Some(2));
    let summary = result.unwrap();
    assert_eq!(summary.status, "completed");
    let failed: Vec<&String> = log
        .iter()
        .filter(|l| l.contains("could not write the last checkpoint"))
        .collect();
    assert_eq!(failed.len(), 2, "{log:?}");
    assert!(
        failed[0].contains("No space left") && failed[0].contains("previous one in"),
        "{}",
        failed[0]
    );
    // Epoch 4's save went through: the checkpoint is the final one and the run is whole.
    let run = RunDir::new(tmp.path().join("run"));
    let last = run.existing_checkpoint(CheckpointKind::Last).unwrap();
    assert_eq!(run.read_state(&last).unwrap().epoch, 4);
    check(&run).unwrap();
    // No half-written checkpoint left behind, and best/ exists although every best save failed
    // while the disk was full: the first epoch after it came back beat what was on disk (nothing).
    let mut leftovers: Vec<String> = std::fs::read_dir(tmp.path().join("run/checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    leftovers.sort();
    assert_eq!(leftovers, ["best", "last"], "only last/ and best/");
}

#[test]
fn a_run_that_ends_unsaved_is_an_error_and_the_previous_checkpoint_survives() {
    let tmp = tempfile::tempdir().unwrap();
    let (result, _) = train_with_failing_checkpoints(tmp.path(), 3, 1, None);
    let err = result.unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(err, TrainError::NotSaved { kept: Some(_), .. }),
        "{message}"
    );
    assert!(
        message.contains("No space left") && message.contains("checkpoints/last"),
        "{message}"
    );
    let run = RunDir::new(tmp.path().join("run"));
    let last = run.existing_checkpoint(CheckpointKind::Last).unwrap();
    assert_eq!(run.read_state(&last).unwrap().epoch, 1);
    // The surviving checkpoint is whole: the run checks out and can be resumed.
    check(&run).unwrap();
    let resumed = train(
        TrainStart::Resume {
            run: run.root().to_path_buf(),
            epochs: None,
            config: None,
        },
        &options(),
        &mut |_| {},
        &Control::default(),
    )
    .unwrap();
    assert_eq!((resumed.status.as_str(), resumed.epochs), ("completed", 3));
}

//! The training worker protocol without any GUI: start a tiny run on a tiny sample, receive
//! events in order, pause, predict, stop (checkpoint), resume, and the error path.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use roadseg::core::dataset::image_io::read_rgb;
use roadseg::core::dataset::sample::{SampleConfig, generate};
use roadseg::core::device::DeviceChoice;
use roadseg::core::train::config::TrainConfig;
use roadseg::core::train::control::PredictRequest;
use roadseg::core::train::run_dir::Summary;
use roadseg::core::train::trainer::{DataSpec, TrainEvent, TrainOptions, TrainStart};
use roadseg::core::train::worker::{TrainWorker, WorkerCommand, WorkerEvent};

fn tiny_sample(dir: &Path) -> PathBuf {
    let data = dir.join("data");
    let cfg = SampleConfig {
        count: 12,
        seed: 5,
        width: 64,
        height: 48,
        ..Default::default()
    };
    generate(&data, &cfg).unwrap();
    data
}

fn tiny_config(epochs: usize) -> TrainConfig {
    let mut cfg = TrainConfig {
        epochs,
        batch_size: 4,
        size: [32, 24],
        num_workers: 1,
        auto: None,
        ..TrainConfig::default()
    };
    cfg.model.depth = 2;
    cfg.model.base_width = 4;
    cfg
}

fn options() -> TrainOptions {
    TrainOptions {
        device: DeviceChoice::Cpu,
        skip_bad: false,
        snapshot_labels: true,
        cpu_fallback: false,
    }
}

fn new_run(data: &Path, out: &Path, epochs: usize) -> WorkerCommand {
    WorkerCommand::Start(
        Box::new(TrainStart::New {
            data: DataSpec {
                root: data.to_path_buf(),
                format: None,
            },
            config: Box::new(tiny_config(epochs)),
            out: out.to_path_buf(),
        }),
        options(),
    )
}

/// Resumes `run` for `epochs` epochs in all.
fn resume(run: &Path, epochs: usize) -> WorkerCommand {
    WorkerCommand::Start(
        Box::new(TrainStart::Resume {
            run: run.to_path_buf(),
            epochs: Some(epochs),
            config: None,
        }),
        options(),
    )
}

/// Receives events until `until` matches one (returned with all before it), or panics.
fn until(worker: &TrainWorker, mut until: impl FnMut(&WorkerEvent) -> bool) -> Vec<WorkerEvent> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        if let Some(event) = worker.recv_timeout(Duration::from_millis(100)) {
            let done = until(&event);
            seen.push(event);
            if done {
                return seen;
            }
        }
    }
    panic!("timed out; events so far: {seen:#?}");
}

fn finished(events: &[WorkerEvent]) -> Result<Summary, String> {
    match events.last() {
        Some(WorkerEvent::Finished(result)) => result.clone(),
        other => panic!("expected Finished, got {other:?}"),
    }
}

fn steps(events: &[WorkerEvent]) -> Vec<usize> {
    events
        .iter()
        .filter_map(|e| match e {
            WorkerEvent::Train(TrainEvent::Step(r)) => Some(r.step),
            _ => None,
        })
        .collect()
}

#[test]
fn start_pause_predict_stop_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_sample(tmp.path());
    let run = tmp.path().join("run");
    let wakes = Arc::new(AtomicUsize::new(0));
    let counter = wakes.clone();
    let worker = TrainWorker::spawn(move || {
        counter.fetch_add(1, Ordering::Relaxed);
    })
    .unwrap();

    worker.send(new_run(&data, &run, 1000));
    let first = until(&worker, |e| {
        matches!(e, WorkerEvent::Train(TrainEvent::Validation(_)))
    });
    // Started comes before any step.
    assert!(matches!(
        first.iter().find(|e| matches!(
            e,
            WorkerEvent::Train(TrainEvent::Step(_)) | WorkerEvent::Train(TrainEvent::Started(_))
        )),
        Some(WorkerEvent::Train(TrainEvent::Started(_)))
    ));
    let s = steps(&first);
    assert!(
        !s.is_empty() && s.windows(2).all(|w| w[1] == w[0] + 1),
        "{s:?}"
    );
    assert!(worker.is_running());
    // Every event wakes the receiver (the wake follows the send, so allow it a moment).
    let deadline = Instant::now() + Duration::from_secs(5);
    while wakes.load(Ordering::Relaxed) < first.len() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(wakes.load(Ordering::Relaxed) >= first.len());

    // A prediction of an image at its own size, with the weights of the run in progress.
    let image = read_rgb(&data.join("images/road_0000.png")).unwrap();
    worker.send(WorkerCommand::Predict(PredictRequest { tag: 7, image }));
    let events = until(&worker, |e| {
        matches!(e, WorkerEvent::Train(TrainEvent::Prediction { .. }))
    });
    match events.last() {
        Some(WorkerEvent::Train(TrainEvent::Prediction {
            tag,
            mask,
            confidence,
            ..
        })) => {
            assert_eq!(*tag, 7);
            assert_eq!((mask.width, mask.height), (64, 48));
            assert!(mask.data.iter().all(|&v| v < 7));
            // One confidence per pixel, never below a uniform guess over the 7 classes.
            assert_eq!(confidence.len(), mask.data.len());
            assert!(confidence.iter().all(|&c| c as f32 >= 255.0 / 7.0 - 1.0));
        }
        other => panic!("{other:?}"),
    }

    // Paused: no steps until resumed.
    worker.send(WorkerCommand::Pause);
    until(&worker, |e| matches!(e, WorkerEvent::Paused));
    std::thread::sleep(Duration::from_millis(300)); // the step in flight ends
    let _ = worker.drain(Duration::from_millis(50));
    std::thread::sleep(Duration::from_millis(400));
    let during = worker.drain(Duration::from_millis(50));
    assert!(steps(&during).is_empty(), "steps while paused: {during:#?}");
    worker.send(WorkerCommand::Resume);
    let after = until(&worker, |e| {
        matches!(e, WorkerEvent::Train(TrainEvent::Step(_)))
    });
    assert!(after.iter().any(|e| matches!(e, WorkerEvent::Resumed)));

    // Stop: the current step ends, a checkpoint is written, the run says "stopped".
    worker.send(WorkerCommand::Stop);
    let end = until(&worker, |e| matches!(e, WorkerEvent::Finished(_)));
    assert!(
        end.iter()
            .any(|e| matches!(e, WorkerEvent::Train(TrainEvent::Checkpoint { .. })))
    );
    let summary = finished(&end).unwrap();
    assert_eq!(summary.status, "stopped");
    // The run trained on copies of the labels taken at start: painting later changes nothing.
    let copies = std::fs::read_dir(run.join("labels/train")).unwrap().count();
    assert!(copies > 0);
    for mask in std::fs::read_dir(data.join("masks")).unwrap() {
        std::fs::write(
            mask.unwrap().path(),
            b"painted over, then the file got mangled",
        )
        .unwrap();
    }
    assert!(run.join("checkpoints/last/model.bpk").is_file());
    assert!(!worker.is_running());

    // Resume the stopped run for one more epoch: it continues after the last step.
    worker.send(resume(&run, summary.epochs + 1));
    let resumed = until(&worker, |e| matches!(e, WorkerEvent::Finished(_)));
    let started = resumed.iter().find_map(|e| match e {
        WorkerEvent::Train(TrainEvent::Started(info)) => Some(info.clone()),
        _ => None,
    });
    let started = started.expect("a Started event");
    assert!(started.resumed);
    assert_eq!(started.start_step, summary.steps);
    assert_eq!(steps(&resumed).first(), Some(&(summary.steps + 1)));
    assert_eq!(finished(&resumed).unwrap().status, "completed");
}

#[test]
fn predictions_after_each_epoch_and_errors_are_events() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_sample(tmp.path());
    let worker = TrainWorker::spawn(|| {}).unwrap();

    // A folder that does not exist: the run ends with an error that names it.
    let missing = tmp.path().join("nowhere");
    worker.send(new_run(&missing, &tmp.path().join("bad-run"), 1));
    let events = until(&worker, |e| matches!(e, WorkerEvent::Finished(_)));
    let err = finished(&events).unwrap_err();
    assert!(err.contains("nowhere"), "{err}");

    // Asking for a GPU where there is none: with the fallback the CPU trains, and says so.
    let no_gpu = !roadseg::core::device::gpu_available();
    let start = match new_run(&data, &tmp.path().join("run"), 3) {
        WorkerCommand::Start(start, mut options) if no_gpu => {
            options.device = DeviceChoice::Gpu;
            options.cpu_fallback = true;
            WorkerCommand::Start(start, options)
        }
        other => other,
    };
    worker.send(start);
    let image = read_rgb(&data.join("images/road_0001.png")).unwrap();
    worker.send(WorkerCommand::PredictEachEpoch(Some(PredictRequest {
        tag: 1,
        image,
    })));
    let events = until(&worker, |e| matches!(e, WorkerEvent::Finished(_)));
    assert_eq!(finished(&events).unwrap().status, "completed");
    let predictions = events
        .iter()
        .filter(|e| matches!(e, WorkerEvent::Train(TrainEvent::Prediction { tag: 1, .. })))
        .count();
    assert!(
        predictions >= 2,
        "one per epoch after the request: {predictions}"
    );
}

/// COCO keeps every label in one json: the studio's run snapshots them as decoded masks
/// (one index PNG per image), trains on those, and a resume reads the same copies even after
/// the dataset's own label files are mangled.
#[test]
fn a_coco_run_snapshots_decoded_masks_and_resumes_from_them() {
    use roadseg::core::dataset::{DatasetIndex, Format, convert};
    let tmp = tempfile::tempdir().unwrap();
    let native = tiny_sample(tmp.path());
    let data = tmp.path().join("coco");
    let index = DatasetIndex::open(&native, None).unwrap();
    convert::convert(&index, Format::Coco, &data, false, &|_, _| {}).unwrap();
    let run = tmp.path().join("run");
    let worker = TrainWorker::spawn(|| {}).unwrap();
    worker.send(new_run(&data, &run, 1));
    let end = until(&worker, |e| matches!(e, WorkerEvent::Finished(_)));
    let summary = finished(&end).unwrap();
    let copies: Vec<PathBuf> = std::fs::read_dir(run.join("labels/train"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(!copies.is_empty());
    for copy in &copies {
        let name = copy.file_stem().unwrap().to_str().unwrap();
        assert_eq!(copy.extension().unwrap(), "png", "{copy:?}");
        let decoded = image::open(copy).unwrap().into_luma8();
        let source = image::open(native.join(format!("masks/{name}.png")))
            .unwrap()
            .into_luma8();
        assert_eq!(decoded, source, "{name}: the snapshot is the decoded mask");
    }
    for split in ["panoptic_train", "panoptic_val"] {
        for png in std::fs::read_dir(data.join("annotations").join(split)).unwrap() {
            std::fs::write(png.unwrap().path(), b"not a PNG any more").unwrap();
        }
    }
    worker.send(resume(&run, summary.epochs + 1));
    let resumed = until(&worker, |e| matches!(e, WorkerEvent::Finished(_)));
    assert_eq!(finished(&resumed).unwrap().status, "completed");
}

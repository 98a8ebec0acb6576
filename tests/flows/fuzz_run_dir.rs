//! Fuzzing everything in a run folder (see `tests/fuzz/mod.rs` for the properties and knobs):
//! `config.json` mutated field by field and byte by byte (also read as `train --config` reads
//! it), `metrics.jsonl` cut mid-line and
//! mixed with garbage, and checkpoint files truncated, damaged or swapped. Every case goes
//! through what the studio's Runs list, `eval`, `predict` and `--resume` use: the run check,
//! the predictor's loader, the optimiser state loader and the curves reader.

use crate::fuzz;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use burn::tensor::Device;
use fuzz::{Damage, apply, assert_names, damage, peak_of, text};
use proptest::prelude::*;
use roadseg::core::dataset::sample;
use roadseg::core::model::unet::UNetConfig;
use roadseg::core::predict::Predictor;
use roadseg::core::train::config::{RunConfig, TrainConfig};
use roadseg::core::train::optim::build_optimizer;
use roadseg::core::train::run_check::{Broken, check};
use roadseg::core::train::run_dir::{
    CheckpointKind, ClassIou, MetricRecord, RunDir, TrainState, read_metrics,
};
use serde_json::Value;

/// Cases per target in CI: each case loads a (tiny) model once or twice.
const CASES: u32 = 1_000;

/// What one check of a damaged run may hold at once: the file read whole, the model built from
/// the config, and what the loader keeps while it decodes (far below this for a tiny model).
const RUN_READ_BOUND: u64 = 256 << 20;

/// A healthy run after one epoch, written once and copied for each case.
fn template() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        write_run(&dir.path().join("run"));
        dir
    })
    .path()
}

fn write_run(root: &Path) {
    let classes = sample::classes();
    let mut train = TrainConfig::default();
    train.model = train.model.with_depth(1).with_base_width(2);
    train.size = [32, 24];
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
    let run = RunDir::new(root);
    run.create().unwrap();
    run.write_config(&config).unwrap();
    let mut log = run.open_metrics(0).unwrap();
    for record in [record("train", 1, &[]), record("val", 1, &[0.5, 0.25])] {
        log.append(&record).unwrap();
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
    let net: roadseg::core::model::segmenter::Segmenter = model.init(&Device::flex()).into();
    let optimizer = build_optimizer(&train.optimizer).unwrap();
    run.save_checkpoint(CheckpointKind::Last, &net, Some(&optimizer), &state)
        .unwrap();
    run.save_checkpoint(CheckpointKind::Best, &net, None, &state)
        .unwrap();
}

fn record(split: &str, step: usize, ious: &[f64]) -> MetricRecord {
    MetricRecord {
        split: split.into(),
        epoch: 1,
        step,
        loss: 0.5,
        lr: 1e-3,
        elapsed_secs: 1.0,
        images_per_sec: Some(3.0),
        pixel_accuracy: None,
        mean_iou: (!ious.is_empty()).then_some(0.4),
        mean_f1: None,
        classes: (!ious.is_empty()).then(|| {
            ious.iter()
                .enumerate()
                .map(|(id, &iou)| ClassIou {
                    id,
                    name: format!("c{id}"),
                    iou: Some(iou),
                })
                .collect()
        }),
        boundary_f1: None,
    }
}

/// A fresh copy of the template run.
fn copy_run(to: &Path) -> RunDir {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap().flatten() {
            let target = to.join(entry.file_name());
            if entry.path().is_dir() {
                copy(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), target).unwrap();
            }
        }
    }
    let root = to.join("run");
    copy(&template().join("run"), &root);
    RunDir::new(root)
}

/// Everything that reads a run folder, each with the three properties. Returns whether the run
/// passed the check.
fn read_everything(run: &RunDir, damaged: &[PathBuf]) -> bool {
    let (result, peak) = peak_of(|| check(run));
    assert!(peak <= RUN_READ_BOUND, "the check held {peak} bytes");
    let healthy = match result {
        Ok(_) => true,
        Err(broken) => {
            let message = broken.to_string();
            // The file it blames is one of those damaged, or a file that depends on one (the
            // checkpoints depend on the config that builds their model).
            assert!(
                damaged
                    .iter()
                    .any(|f| message.contains(&*f.file_name().unwrap().to_string_lossy()))
                    || message.contains("checkpoint")
                    || message.contains("model.bpk")
                    || message.contains("metrics.jsonl"),
                "{message} (damaged: {damaged:?})"
            );
            if let Broken::Unusable(_) = broken {
                // Unusable for the check means unusable for the predictor too.
                let loaded = Predictor::load_best_or_last(run.root(), Device::flex());
                let _ = loaded.map(|_| ());
            }
            false
        }
    };
    if healthy {
        let (loaded, peak) = peak_of(|| Predictor::load_best_or_last(run.root(), Device::flex()));
        assert!(peak <= RUN_READ_BOUND, "loading held {peak} bytes");
        let predictor = loaded.expect("a run that passes the check loads");
        let image = image::RgbImage::new(20, 10);
        let mask = predictor.predict(&image).unwrap();
        assert_eq!((mask.width, mask.height), (20, 10));
    }
    // The studio's curves reader, whatever the check said.
    #[cfg(feature = "gui")]
    {
        let (curves, peak) =
            peak_of(|| roadseg::studio::panels::training::Curves::load(run.root()));
        assert!(peak <= RUN_READ_BOUND, "the curves held {peak} bytes");
        if let Err(e) = curves {
            assert_names(&e, &run.metrics_path());
        }
    }
    healthy
}

proptest! {
    #![proptest_config(fuzz::config(CASES))]

    #[test]
    fn run_configs(mutations in proptest::collection::vec(mutation(), 1..4), bytes in damage()) {
        let dir = tempfile::tempdir().unwrap();
        let run = copy_run(dir.path());
        let path = run.config_path();
        let mut value: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for m in &mutations {
            m.apply(&mut value);
        }
        let text = serde_json::to_vec_pretty(&value).unwrap();
        std::fs::write(&path, apply(text, &bytes)).unwrap();
        if let Err(e) = run.read_config() {
            assert_names(&e.to_string(), &path);
        }
        // The same file as `train --config` reads it (a run's config.json reproduces the run).
        match TrainConfig::load(&path) {
            Ok(file) => {
                let _ = file.train.validate(sample::classes().len());
            }
            Err(e) => assert_names(&e.to_string(), &path),
        }
        read_everything(&run, &[path]);
    }

    #[test]
    fn metrics_histories(lines in proptest::collection::vec(metrics_line(), 0..12), cut in 0.0..1.2f64) {
        let dir = tempfile::tempdir().unwrap();
        let run = copy_run(dir.path());
        let path = run.metrics_path();
        let mut text = std::fs::read(&path).unwrap();
        for line in lines {
            text.extend(line);
            text.push(b'\n');
        }
        if cut < 1.0 {
            text.truncate((text.len() as f64 * cut) as usize);
        }
        std::fs::write(&path, &text).unwrap();
        if let Err(e) = read_metrics(&path) {
            assert_names(&e.to_string(), &path);
        }
        read_everything(&run, &[path]);
    }

    #[test]
    fn checkpoint_files(damages in proptest::collection::vec((0..6usize, damage()), 1..3), swap in 0..6usize) {
        let dir = tempfile::tempdir().unwrap();
        let run = copy_run(dir.path());
        let last = run.checkpoint_dir(CheckpointKind::Last);
        let best = run.checkpoint_dir(CheckpointKind::Best);
        let files = [
            last.join("model.bpk"),
            last.join("optimizer.bpk"),
            last.join("state.json"),
            best.join("model.bpk"),
            best.join("state.json"),
            run.config_path(),
        ];
        let mut damaged = Vec::new();
        for (which, d) in &damages {
            let file = &files[*which];
            let bytes = std::fs::read(file).unwrap();
            std::fs::write(file, apply(bytes, d)).unwrap();
            if !matches!(d, Damage::None) {
                damaged.push(file.clone());
            }
        }
        // Swaps: optimiser state for weights, weights for optimiser state, a state.json for
        // weights, best's folder gone, last's weights gone.
        match swap {
            0 => {}
            1 => { std::fs::copy(&files[1], &files[3]).unwrap(); damaged.push(files[3].clone()); }
            2 => { std::fs::copy(&files[0], &files[1]).unwrap(); damaged.push(files[1].clone()); }
            3 => { std::fs::copy(&files[2], &files[0]).unwrap(); damaged.push(files[0].clone()); }
            4 => { std::fs::remove_dir_all(&best).unwrap(); }
            _ => { std::fs::remove_file(&files[0]).unwrap(); damaged.push(last.clone()); }
        }
        read_everything(&run, &damaged);
        // What --resume loads last: the optimiser state, into a fresh optimiser.
        if let Ok(config) = run.read_config()
            && let Ok(optimizer) = build_optimizer(&config.train.optimizer)
            && let Err(e) = optimizer.load_state_file(&files[1])
        {
            prop_assert!(!e.to_string().is_empty());
        }
    }
}

/// One change to a JSON document: replace the n-th node (depth first, wrapping) with a value,
/// or remove it from its parent.
#[derive(Debug, Clone)]
pub(crate) enum Mutation {
    Replace(usize, Value),
    Remove(usize),
}

impl Mutation {
    pub(crate) fn apply(&self, root: &mut Value) {
        let count = count_nodes(root);
        let (Mutation::Replace(n, _) | Mutation::Remove(n)) = self;
        let mut target = n % count;
        visit(root, &mut target, self);
    }
}

fn count_nodes(v: &Value) -> usize {
    1 + match v {
        Value::Array(a) => a.iter().map(count_nodes).sum(),
        Value::Object(o) => o.values().map(count_nodes).sum(),
        _ => 0,
    }
}

/// Walks to node `target` (counting down) and applies `m` there; returns true when done.
fn visit(v: &mut Value, target: &mut usize, m: &Mutation) -> bool {
    if *target == 0 {
        match m {
            Mutation::Replace(_, new) => *v = new.clone(),
            Mutation::Remove(_) => *v = Value::Null,
        }
        return true;
    }
    *target -= 1;
    match v {
        Value::Array(items) => {
            for i in 0..items.len() {
                if *target == 0 && matches!(m, Mutation::Remove(_)) {
                    items.remove(i);
                    return true;
                }
                if visit(&mut items[i], target, m) {
                    return true;
                }
            }
        }
        Value::Object(fields) => {
            let keys: Vec<String> = fields.keys().cloned().collect();
            for key in keys {
                if *target == 0 && matches!(m, Mutation::Remove(_)) {
                    fields.remove(&key);
                    return true;
                }
                if visit(fields.get_mut(&key).unwrap(), target, m) {
                    return true;
                }
            }
        }
        _ => {}
    }
    false
}

fn json_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        prop::sample::select(vec![
            0i64,
            1,
            2,
            3,
            -1,
            7,
            64,
            255,
            256,
            4096,
            1 << 40,
            i64::MIN,
            i64::MAX
        ])
        .prop_map(Value::from),
        Just(Value::from(u64::MAX)),
        prop::sample::select(vec![0.0f64, 0.5, -0.5, 1e-300, 1e300, -1e300, 2.5])
            .prop_map(Value::from),
        text(12).prop_map(Value::from),
        Just(serde_json::json!([])),
        Just(serde_json::json!({})),
        Just(serde_json::json!([1, 2, 3])),
        Just(serde_json::json!({"type": "adam"})),
    ]
}

pub(crate) fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (any::<usize>(), json_value()).prop_map(|(n, v)| Mutation::Replace(n, v)),
        1 => any::<usize>().prop_map(Mutation::Remove),
    ]
}

/// A metrics line: a valid record with odd values, a mutated one, or garbage.
fn metrics_line() -> impl Strategy<Value = Vec<u8>> {
    let class_id = prop_oneof![4 => 0..8usize, 1 => any::<usize>(), 1 => Just(usize::MAX)];
    let valid = (
        prop::sample::select(vec!["train", "val", "test", ""]),
        any::<usize>(),
        proptest::collection::vec((class_id, prop::option::of(any::<f64>())), 0..6),
        any::<f64>(),
    )
        .prop_map(|(split, step, classes, loss)| {
            let mut r = record(split, step % 1000, &[]);
            r.loss = loss;
            r.classes = Some(
                classes
                    .into_iter()
                    .map(|(id, iou)| ClassIou {
                        id,
                        name: "x".into(),
                        iou,
                    })
                    .collect(),
            );
            serde_json::to_vec(&r).unwrap_or_else(|_| b"{}".to_vec())
        });
    let mutated = (proptest::collection::vec(mutation(), 1..3)).prop_map(|ms| {
        let mut v = serde_json::to_value(record("val", 3, &[0.5, 0.1])).unwrap();
        for m in &ms {
            m.apply(&mut v);
        }
        serde_json::to_vec(&v).unwrap()
    });
    prop_oneof![
        3 => valid,
        3 => mutated,
        1 => text(60).prop_map(String::into_bytes),
    ]
}

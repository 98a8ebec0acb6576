//! Transfer learning and multi-task training end to end: a ResNet-18 encoder from a
//! torchvision-layout weights file (frozen, then fine-tuned), `--init-from` with another class
//! table, the boundary head with its F1 in eval, and BDD100K's drivable head.

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::store::{BurnpackStore, ModuleStore};
use common::{bdd100k, fails, native, ok, resnet18_weights, roadseg, write_safetensors};
use roadseg::core::dataset::sample::{SampleConfig, generate};
use roadseg::core::device::DeviceChoice;
use roadseg::core::model::segmenter::Encoder;
use roadseg::core::train::config::TrainConfig;
use roadseg::core::train::control::Control;
use roadseg::core::train::run_dir::CheckpointKind;
use roadseg::core::train::trainer::{DataSpec, TrainEvent, TrainOptions, TrainStart, train};

/// Small enough for a ResNet-18 to train an epoch in seconds.
const TINY: &[&str] = &[
    "--size",
    "32x32",
    "--width",
    "4",
    "--depth",
    "2",
    "--batch-size",
    "4",
    "--workers",
    "1",
    "--device",
    "cpu",
];

fn sample(dir: &Path, seed: u64) -> PathBuf {
    let data = dir.join(format!("sample-{seed}"));
    let cfg = SampleConfig {
        count: 8,
        seed,
        width: 64,
        height: 48,
        ..Default::default()
    };
    generate(&data, &cfg).unwrap();
    data
}

/// The float tensors of a `model.bpk` by name.
fn checkpoint(path: &Path) -> BTreeMap<String, Vec<f32>> {
    let mut store = BurnpackStore::from_file(path);
    store
        .get_all_tensors()
        .unwrap()
        .iter()
        .map(|(name, t)| {
            let data = burn::store::bridge::to_data(t).unwrap();
            (
                name.clone(),
                data.convert::<f32>().try_to_vec::<f32>().unwrap(),
            )
        })
        .collect()
}

/// The checkpoint's tensor for torchvision key `key` of the encoder (burn calls a batch norm's
/// weight and bias gamma and beta).
fn encoder_tensor<'a>(tensors: &'a BTreeMap<String, Vec<f32>>, key: &str) -> &'a [f32] {
    let norm = key.split('.').any(|s| s.starts_with("bn")) || key.contains("downsample.1.");
    let name = match (norm, key.rsplit_once('.')) {
        (true, Some((owner, "weight"))) => format!("encoder.{owner}.gamma"),
        (true, Some((owner, "bias"))) => format!("encoder.{owner}.beta"),
        _ => format!("encoder.{key}"),
    };
    tensors
        .get(&name)
        .unwrap_or_else(|| panic!("{name} not in the checkpoint"))
}

#[test]
fn a_pretrained_encoder_stays_frozen_then_fine_tunes() {
    let tmp = tempfile::tempdir().unwrap();
    let data = sample(tmp.path(), 3);
    let weights_file = tmp.path().join("resnet18.safetensors");
    let weights = resnet18_weights(7);
    write_safetensors(&weights_file, &weights);

    let mut config = TrainConfig {
        epochs: 2,
        batch_size: 4,
        size: [32, 32],
        num_workers: 1,
        encoder: Encoder::Resnet18,
        pretrained: Some(weights_file.clone()),
        freeze_encoder_epochs: 1,
        encoder_lr_mult: 0.5,
        early_stopping: None,
        auto: None,
        ..TrainConfig::default()
    };
    config.model.base_width = 4;
    let run = tmp.path().join("run");
    let start = TrainStart::New {
        data: DataSpec {
            root: data,
            format: None,
        },
        config: Box::new(config),
        out: run.clone(),
    };
    let options = TrainOptions {
        device: DeviceChoice::Cpu,
        ..TrainOptions::default()
    };
    // The last checkpoint after each epoch, copied before the next one replaces it.
    let mut epochs: Vec<BTreeMap<String, Vec<f32>>> = Vec::new();
    let mut logs = Vec::new();
    let mut on_event = |event: TrainEvent| match event {
        TrainEvent::Checkpoint {
            kind: CheckpointKind::Last,
            path,
        } => epochs.push(checkpoint(&path.join("model.bpk"))),
        TrainEvent::Log(line) => logs.push(line),
        _ => {}
    };
    train(start, &options, &mut on_event, &Control::default()).unwrap();
    let logs = logs.join("\n");
    assert!(logs.contains("loaded 100 tensors"), "{logs}");
    assert!(logs.contains("frozen until epoch 1"), "{logs}");
    assert!(logs.contains("epoch 2: the encoder is unfrozen"), "{logs}");
    assert_eq!(epochs.len(), 2);

    // Every encoder tensor, running statistics included, is the file's after the frozen epoch;
    // after the second, weights and statistics have moved.
    let (mut moved_weights, mut moved_stats) = (0, 0);
    for (key, _, values) in &weights {
        assert_eq!(
            encoder_tensor(&epochs[0], key),
            values,
            "{key} after the frozen epoch"
        );
        if encoder_tensor(&epochs[1], key) != values {
            match key.contains("running") {
                true => moved_stats += 1,
                false => moved_weights += 1,
            }
        }
    }
    assert!(
        moved_weights > 50,
        "{moved_weights} encoder weights changed"
    );
    assert!(
        moved_stats > 30,
        "{moved_stats} batch-norm statistics changed"
    );
    // The decoder trained in both epochs.
    let decoder = |e: &BTreeMap<String, Vec<f32>>| e["head.weight"].clone();
    assert_ne!(decoder(&epochs[0]), decoder(&epochs[1]));

    // Weights for another encoder: every mismatch listed, nothing trained.
    let err = fails(&[
        "train",
        "--data",
        tmp.path().join("sample-3").to_str().unwrap(),
        "--out",
        tmp.path().join("r34").to_str().unwrap(),
        "--encoder",
        "resnet34",
        "--pretrained",
        weights_file.to_str().unwrap(),
        "--epochs",
        "1",
        "--size",
        "32x32",
    ]);
    assert!(
        err.contains("does not match the resnet34 encoder")
            && err.contains("layer1.2.conv1.weight"),
        "{err}"
    );
    // The run folder may exist, but no weights were written to it.
    for kind in ["last", "best"] {
        let model = tmp.path().join(format!("r34/checkpoints/{kind}/model.bpk"));
        assert!(!model.exists(), "{}", model.display());
    }
}

#[test]
fn init_from_a_run_with_other_classes_starts_a_fresh_head() {
    let tmp = tempfile::tempdir().unwrap();
    let data = sample(tmp.path(), 3);
    let first = tmp.path().join("first");
    let mut args = vec![
        "train",
        "--data",
        data.to_str().unwrap(),
        "--out",
        first.to_str().unwrap(),
        "--epochs",
        "1",
    ];
    args.extend_from_slice(TINY);
    ok(&args);

    // Three classes instead of the sample's seven; the architecture is the first run's.
    let other = native(&tmp.path().join("other")).root;
    let second = tmp.path().join("second");
    let out = roadseg(&[
        "train",
        "--data",
        other.to_str().unwrap(),
        "--out",
        second.to_str().unwrap(),
        "--init-from",
        first.to_str().unwrap(),
        "--epochs",
        "1",
        "--size",
        "32x32",
        "--batch-size",
        "2",
        "--workers",
        "1",
        "--device",
        "cpu",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("head is re-initialised"), "{stderr}");
    assert!(stderr.contains("road, sky, car"), "{stderr}");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(second.join("config.json")).unwrap())
            .unwrap();
    assert_eq!(
        config["model"]["base_width"], 4,
        "the first run's architecture"
    );
    assert_eq!(config["model"]["num_classes"], 3);

    // The encoder starts from the first run's weights; the head (7 -> 3 classes) cannot.
    let a = checkpoint(&first.join("checkpoints/best/model.bpk"));
    let b = checkpoint(&second.join("checkpoints/last/model.bpk"));
    assert_eq!(a["head.weight"].len(), 7 * 4);
    assert_eq!(b["head.weight"].len(), 3 * 4);
    ok(&[
        "eval",
        "--model",
        second.to_str().unwrap(),
        "--device",
        "cpu",
    ]);
}

#[test]
fn the_boundary_head_trains_and_eval_reports_boundary_f1() {
    let tmp = tempfile::tempdir().unwrap();
    let data = sample(tmp.path(), 4);
    let run = tmp.path().join("run");
    let mut args = vec![
        "train",
        "--data",
        data.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
        "--epochs",
        "2",
        "--aux",
        "boundary",
        "--aux-weight",
        "0.4",
    ];
    args.extend_from_slice(TINY);
    let out = roadseg(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("boundary F1"), "{stderr}");
    assert!(run.join("checkpoints/best/aux.bpk").is_file());
    let val: Vec<serde_json::Value> = std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|l| l["split"] == "val")
        .collect();
    assert_eq!(val.len(), 2);
    for v in &val {
        let f1 = v["boundary_f1"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&f1), "{v}");
    }

    let eval: serde_json::Value = serde_json::from_str(&ok(&[
        "eval",
        "--model",
        run.to_str().unwrap(),
        "--device",
        "cpu",
        "--json",
    ]))
    .unwrap();
    for key in ["boundary_f1", "boundary_head_f1"] {
        let f1 = eval[key].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&f1), "{key}: {eval}");
    }
    let text = ok(&["eval", "--model", run.to_str().unwrap(), "--device", "cpu"]);
    assert!(
        text.contains("boundary F1 (road edges within 2 px)"),
        "{text}"
    );
    assert!(text.contains("boundary head F1"), "{text}");

    // A dataset without a road class has no boundary to learn.
    let no_road = tmp.path().join("no-road");
    std::fs::create_dir_all(no_road.join("images")).unwrap();
    std::fs::copy(
        data.join("images/road_0000.png"),
        no_road.join("images/a.png"),
    )
    .unwrap();
    std::fs::create_dir_all(no_road.join("masks")).unwrap();
    std::fs::copy(
        data.join("masks/road_0000.png"),
        no_road.join("masks/a.png"),
    )
    .unwrap();
    let classes = std::fs::read_to_string(data.join("classes.json"))
        .unwrap()
        .replace("\"road\"", "\"street\"");
    std::fs::write(no_road.join("classes.json"), classes).unwrap();
    let err = fails(&[
        "train",
        "--data",
        no_road.to_str().unwrap(),
        "--out",
        tmp.path().join("x").to_str().unwrap(),
        "--aux",
        "boundary",
    ]);
    assert!(err.contains("class named \"road\""), "{err}");
}

#[test]
fn bdd100k_trains_with_the_drivable_head() {
    let tmp = tempfile::tempdir().unwrap();
    let data = bdd100k(&tmp.path().join("bdd")).root;
    let run = tmp.path().join("run");
    let mut args = vec![
        "train",
        "--data",
        data.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
    ];
    args.extend_from_slice(common::DRIVABLE_RUN);
    ok(&args);
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["format"], "bdd100k");
    assert_eq!(config["train"]["aux"], "drivable");
    assert_eq!(config["model"]["num_classes"], 19);
    assert!(run.join("checkpoints/last/aux.bpk").is_file());
    let out = tmp.path().join("pred");
    ok(&[
        "predict",
        "--model",
        run.to_str().unwrap(),
        "--input",
        data.join("images/10k/test").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--device",
        "cpu",
    ]);
    assert!(std::fs::read_dir(&out).unwrap().count() >= 1);

    // The sample has no drivable-area maps.
    let sample = sample(tmp.path(), 5);
    let err = fails(&[
        "train",
        "--data",
        sample.to_str().unwrap(),
        "--out",
        tmp.path().join("x").to_str().unwrap(),
        "--aux",
        "drivable",
    ]);
    assert!(err.contains("drivable-area maps"), "{err}");
}

/// Issue 23: a ResNet run was refused by eval, predict and --resume, whose run check loaded
/// every checkpoint as a plain UNet. Each is used here as a user would, with and without the
/// second head.
#[test]
fn a_resnet_run_is_evaluated_predicted_and_resumed() {
    let tmp = tempfile::tempdir().unwrap();
    let data = sample(tmp.path(), 4);
    let image = data
        .join("images")
        .read_dir()
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    for aux in [None, Some("boundary")] {
        let run = tmp.path().join(format!("run-{}", aux.unwrap_or("plain")));
        let r = run.to_str().unwrap();
        let mut args = vec!["train", "--data", data.to_str().unwrap(), "--out", r];
        args.extend(["--epochs", "1", "--encoder", "resnet18", "--size", "32x32"]);
        args.extend([
            "--width",
            "4",
            "--batch-size",
            "4",
            "--workers",
            "1",
            "--device",
            "cpu",
        ]);
        if let Some(aux) = aux {
            args.extend(["--aux", aux]);
        }
        ok(&args);

        let eval: serde_json::Value =
            serde_json::from_str(&ok(&["eval", "--model", r, "--device", "cpu", "--json"]))
                .unwrap();
        let miou = eval["mean_iou"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&miou), "{eval}");

        let out = tmp.path().join(format!("pred-{}", aux.unwrap_or("plain")));
        ok(&[
            "predict",
            "--model",
            r,
            "--input",
            image.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--device",
            "cpu",
        ]);
        let stem = image.file_stem().unwrap().to_str().unwrap();
        let mask = image::open(out.join(format!("{stem}.png"))).unwrap();
        assert_eq!((mask.width(), mask.height()), (64, 48), "full size");

        ok(&["train", "--resume", r, "--epochs", "2", "--device", "cpu"]);
        let summary: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap())
                .unwrap();
        assert_eq!(
            (&summary["status"], &summary["epochs"]),
            (
                &serde_json::Value::from("completed"),
                &serde_json::Value::from(2)
            ),
            "{summary}"
        );
    }
}

//! End-to-end training flows through the CLI: run directory contents, resume after a kill,
//! divergence, bad files, and metrics checked against an independent numpy reference.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{TINY, fails, ok, roadseg};
use serde_json::Value;

/// 12 procedural road scenes at 64x48.
fn tiny_sample(dir: &Path) -> PathBuf {
    common::tiny_sample(dir, 3)
}

fn train_args<'a>(data: &'a str, out: &'a str, epochs: &'a str) -> Vec<&'a str> {
    let mut args = vec!["train", "--data", data, "--out", out, "--epochs", epochs];
    args.extend_from_slice(TINY);
    args
}

fn metrics(run: &Path) -> Vec<Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn json_file(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn train_writes_a_complete_run_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_sample(tmp.path());
    let run = tmp.path().join("run");
    let out = roadseg(&train_args(
        data.to_str().unwrap(),
        run.to_str().unwrap(),
        "2",
    ));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("CPU (flex backend"),
        "device is printed: {stderr}"
    );
    assert!(stderr.contains("completed: 2 epochs"), "{stderr}");

    let config = json_file(&run.join("config.json"));
    assert_eq!(config["model"]["num_classes"], 7);
    assert_eq!(config["model"]["base_width"], 4);
    assert_eq!(config["train"]["size"], serde_json::json!([32, 24]));
    assert_eq!(config["classes"][0]["name"], "road");

    let lines = metrics(&run);
    let train: Vec<&Value> = lines.iter().filter(|l| l["split"] == "train").collect();
    let val: Vec<&Value> = lines.iter().filter(|l| l["split"] == "val").collect();
    assert_eq!(val.len(), 2, "one validation per epoch");
    let steps: Vec<u64> = train.iter().map(|l| l["step"].as_u64().unwrap()).collect();
    assert_eq!(steps, (1..=steps.len() as u64).collect::<Vec<_>>());
    assert!(
        train
            .iter()
            .all(|l| l["loss"].as_f64().unwrap().is_finite())
    );
    assert!(train.iter().all(|l| l["lr"].as_f64().unwrap() > 0.0));
    for v in &val {
        let miou = v["mean_iou"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&miou));
        assert!(v["pixel_accuracy"].as_f64().unwrap() > 0.0);
        assert_eq!(v["classes"].as_array().unwrap().len(), 7);
    }
    assert_eq!(val[1]["step"].as_u64(), steps.last().copied());

    for file in [
        "checkpoints/last/model.bpk",
        "checkpoints/last/optimizer.bpk",
        "checkpoints/last/state.json",
        "checkpoints/best/model.bpk",
    ] {
        assert!(run.join(file).is_file(), "{file} missing");
    }
    let summary = json_file(&run.join("summary.json"));
    assert_eq!(summary["status"], "completed");
    assert_eq!(summary["epochs"], 2);
    let best = val
        .iter()
        .map(|v| v["mean_iou"].as_f64().unwrap())
        .fold(f64::MIN, f64::max);
    assert_eq!(summary["best_mean_iou"].as_f64(), Some(best));

    // The same folder is not overwritten by a second run.
    let err = fails(&train_args(
        data.to_str().unwrap(),
        run.to_str().unwrap(),
        "1",
    ));
    assert!(err.contains("already holds a run"), "{err}");
}

#[test]
fn resume_after_a_kill_continues_the_same_curve() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_sample(tmp.path());
    let data = data.to_str().unwrap();

    let straight = tmp.path().join("straight");
    ok(&train_args(data, straight.to_str().unwrap(), "3"));
    let expected = metrics(&straight);
    let steps_per_epoch = expected
        .iter()
        .filter(|l| l["split"] == "train" && l["epoch"] == 1)
        .count();

    // Killed mid-epoch 2, after the epoch-1 checkpoint and one more step.
    let killed = tmp.path().join("killed");
    let status = Command::new(env!("CARGO_BIN_EXE_roadseg"))
        .args(train_args(data, killed.to_str().unwrap(), "3"))
        .env(
            "ROADSEG_TEST_ABORT_AT_STEP",
            (steps_per_epoch + 1).to_string(),
        )
        .output()
        .unwrap()
        .status;
    assert!(!status.success(), "the process was killed");
    let before = metrics(&killed);
    assert_eq!(
        before.len(),
        steps_per_epoch + 2,
        "epoch 1, its validation, one step"
    );

    ok(&[
        "train",
        "--resume",
        killed.to_str().unwrap(),
        "--device",
        "cpu",
    ]);
    common::assert_same_curve(&expected, &metrics(&killed));
    assert_eq!(
        json_file(&killed.join("summary.json"))["status"],
        "completed"
    );

    // Resuming a finished run with more epochs extends it.
    ok(&[
        "train",
        "--resume",
        killed.to_str().unwrap(),
        "--epochs",
        "4",
        "--device",
        "cpu",
    ]);
    let extended = metrics(&killed);
    assert_eq!(extended.len(), expected.len() + steps_per_epoch + 1);
    assert_eq!(extended.last().unwrap()["epoch"], 4);
}

#[test]
fn a_diverging_run_stops_with_a_clear_message() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_sample(tmp.path());
    let run = tmp.path().join("run");
    let config = tmp.path().join("diverge.json");
    // No batch norm and an absurd SGD step: the weights blow up to inf within a few steps.
    std::fs::write(
        &config,
        r#"{"model": {"batch_norm": false}, "lr": 1e30, "schedule": {"type": "constant"},
            "optimizer": {"kind": {"type": "sgd", "momentum": 0.0, "nesterov": false}}}"#,
    )
    .unwrap();
    let mut args = train_args(data.to_str().unwrap(), run.to_str().unwrap(), "3");
    args.extend(["--config", config.to_str().unwrap()]);
    let err = fails(&args);
    assert!(
        err.contains("training diverged") && err.contains("lower learning rate"),
        "{err}"
    );
    let summary = json_file(&run.join("summary.json"));
    assert_eq!(summary["status"], "diverged");
}

#[test]
fn bad_files_stop_training_unless_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_sample(tmp.path());
    let first_mask = std::fs::read_dir(data.join("masks"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .min()
        .unwrap();
    std::fs::write(&first_mask, b"not a png").unwrap();
    let run = tmp.path().join("run");
    let args = train_args(data.to_str().unwrap(), run.to_str().unwrap(), "1");
    let err = fails(&args);
    assert!(
        err.contains("1 bad file(s)") && err.contains("--skip-bad"),
        "{err}"
    );
    assert!(
        err.contains(first_mask.file_name().unwrap().to_str().unwrap()),
        "names the file: {err}"
    );
    let mut skip = args.clone();
    skip.push("--skip-bad");
    let out = roadseg(&skip);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("skipped 1 bad file(s)"), "{stderr}");
}

#[test]
fn asking_for_a_gpu_that_is_not_there_is_a_clear_error() {
    // lavapipe is a software rasteriser, not a GPU: `--device gpu` must refuse, not crawl.
    if roadseg::core::device::gpu_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_sample(tmp.path());
    let run = tmp.path().join("run");
    let mut args = train_args(data.to_str().unwrap(), run.to_str().unwrap(), "1");
    args.retain(|a| *a != "cpu");
    let pos = args.iter().position(|a| *a == "--device").unwrap();
    args.insert(pos + 1, "gpu");
    let err = fails(&args);
    assert!(err.contains("no GPU found"), "{err}");
}

#[test]
fn eval_and_predict_match_the_numpy_reference() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_sample(tmp.path());
    let run = tmp.path().join("run");
    ok(&train_args(
        data.to_str().unwrap(),
        run.to_str().unwrap(),
        "2",
    ));

    let report: Value = serde_json::from_str(&ok(&[
        "eval",
        "--model",
        run.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--split",
        "val",
        "--json",
        "--per-image",
        "--device",
        "cpu",
    ]))
    .unwrap();

    let preds = tmp.path().join("preds");
    ok(&[
        "predict",
        "--model",
        run.to_str().unwrap(),
        "--input",
        data.join("images").to_str().unwrap(),
        "--out",
        preds.to_str().unwrap(),
        "--device",
        "cpu",
    ]);
    // Index PNGs at each input's own resolution.
    for entry in std::fs::read_dir(data.join("images")).unwrap() {
        let input = entry.unwrap().path();
        let name = input.file_stem().unwrap().to_str().unwrap();
        let pred = image::open(preds.join(format!("{name}.png"))).unwrap();
        assert_eq!(pred.color(), image::ColorType::L8);
        assert_eq!((pred.width(), pred.height()), (64, 48));
        assert!(pred.to_luma8().pixels().all(|p| p.0[0] < 7));
    }

    let splits = json_file(&data.join("splits.json"));
    let val: Vec<String> = splits["val"]
        .as_array()
        .expect("splits.json lists the val images")
        .iter()
        .map(|n| {
            let name = n.as_str().unwrap();
            Path::new(name)
                .file_stem()
                .unwrap()
                .to_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(!val.is_empty());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/metrics_reference.py");
    let out = Command::new("python3")
        .arg(script)
        .arg("--per-image")
        .arg("7")
        .arg(&preds)
        .arg(data.join("masks"))
        .args(&val)
        .output()
        .expect("python3 with numpy and Pillow (see README)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reference: Value = serde_json::from_slice(&out.stdout).unwrap();

    assert_eq!(report["confusion"], reference["confusion"]);
    for key in ["pixel_accuracy", "mean_iou", "mean_f1"] {
        let (a, b) = (
            report[key].as_f64().unwrap(),
            reference[key].as_f64().unwrap(),
        );
        assert!((a - b).abs() < 1e-12, "{key}: {a} vs numpy {b}");
    }
    for (i, class) in report["classes"].as_array().unwrap().iter().enumerate() {
        for key in ["iou", "f1"] {
            match (class[key].as_f64(), reference[key][i].as_f64()) {
                (Some(a), Some(b)) => assert!((a - b).abs() < 1e-12, "{key}[{i}]: {a} vs {b}"),
                (a, b) => assert_eq!(a, b, "{key}[{i}] presence"),
            }
        }
    }

    // Per image: the same images, in the same order (worst mean IoU first), the same numbers;
    // "iou" is keyed by class name, the reference lists it by id.
    let ours = report["images"]
        .as_array()
        .expect("--per-image lists images");
    let theirs = reference["images"].as_array().unwrap();
    let order = |list: &[Value]| -> Vec<String> {
        list.iter()
            .map(|i| i["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(order(ours), order(theirs));
    assert_eq!(ours.len(), val.len());
    let class_names: Vec<&str> = report["classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    let close = |a: &Value, b: &Value, what: &str| match (a.as_f64(), b.as_f64()) {
        (Some(a), Some(b)) => assert!((a - b).abs() < 1e-12, "{what}: {a} vs numpy {b}"),
        _ => assert_eq!(a.is_null(), b.is_null(), "{what}: {a} vs numpy {b}"),
    };
    for (a, b) in ours.iter().zip(theirs) {
        let name = a["name"].as_str().unwrap();
        assert_eq!(a["split"], "val");
        assert_eq!(a["wrong_pixels"], b["wrong_pixels"], "{name}");
        close(&a["pixel_accuracy"], &b["pixel_accuracy"], name);
        close(&a["mean_iou"], &b["mean_iou"], name);
        for (id, class) in class_names.iter().enumerate() {
            close(&a["iou"][class], &b["iou"][id], &format!("{name} {class}"));
        }
    }
    // Without --json: a table of the worst images.
    let table = ok(&[
        "eval",
        "--model",
        run.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--per-image",
        "--device",
        "cpu",
    ]);
    let worst = theirs[0]["name"].as_str().unwrap();
    assert!(
        table.contains("worst") && table.contains(worst),
        "the table names the worst image {worst}:\n{table}"
    );

    // A mangled ground-truth mask: eval names it and refuses, or skips it when asked.
    let bad_mask = data.join("masks").join(format!("{}.png", val[0]));
    std::fs::write(&bad_mask, b"not a png").unwrap();
    let eval_args = [
        "eval",
        "--model",
        run.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--split",
        "val",
        "--device",
        "cpu",
    ];
    let err = fails(&eval_args);
    assert!(
        err.contains("1 bad file(s)")
            && err.contains(bad_mask.file_name().unwrap().to_str().unwrap()),
        "{err}"
    );
    let mut skip = eval_args.to_vec();
    skip.push("--skip-bad");
    let out = roadseg(&skip);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("skipped 1 bad file(s)"));

    // Colour and overlay outputs are RGB at the input size.
    for mode in ["color", "overlay"] {
        let out_dir = tmp.path().join(mode);
        let one = std::fs::read_dir(data.join("images"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        ok(&[
            "predict",
            "--model",
            run.to_str().unwrap(),
            "--input",
            one.to_str().unwrap(),
            "--out",
            out_dir.to_str().unwrap(),
            "--output",
            mode,
            "--device",
            "cpu",
        ]);
        let name = one.file_stem().unwrap().to_str().unwrap();
        let img = image::open(out_dir.join(format!("{name}.png"))).unwrap();
        assert_eq!(img.color(), image::ColorType::Rgb8);
        assert_eq!((img.width(), img.height()), (64, 48));
    }
}

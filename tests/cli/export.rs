//! Shipping a trained run: ONNX export checked by onnxruntime (tests/peers/onnx_check.py, with
//! onnx.checker), quantization, pruning and the latency/memory bench, through the CLI.

use crate::common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use burn::tensor::{Device, Distribution, Tensor};
use common::{TINY, fails, ok, train_tiny};
use roadseg::core::predict::Predictor;
use roadseg::core::train::run_dir::CheckpointKind;
use serde_json::Value;

/// Training size of the tiny runs: depth 2, so multiples of 4.
const SIZE: [usize; 2] = [24, 32]; // [height, width]

/// 12 procedural road scenes at the training size, and a run trained on them (shared by the
/// tests of this file).
fn trained() -> &'static (tempfile::TempDir, PathBuf, PathBuf) {
    static RUN: OnceLock<(tempfile::TempDir, PathBuf, PathBuf)> = OnceLock::new();
    RUN.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        ok(&[
            "sample",
            "--out",
            data.to_str().unwrap(),
            "--count",
            "12",
            "--size",
            "32x24",
            "--seed",
            "5",
        ]);
        let run = tmp.path().join("run");
        train_tiny(&data, &run, 2);
        (tmp, data, run)
    })
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs the onnxruntime peer; its JSON answer.
fn peer(args: &[&str]) -> Value {
    common::peer("onnx_check.py", args)
}

/// Writes random inputs of `shapes` and roadseg's logits for them (the CPU kernels, batch norm
/// folded, as `predict` runs) as raw f32 files, and the manifest the peer reads.
fn reference_cases(run: &Path, dir: &Path, shapes: &[[usize; 4]]) -> PathBuf {
    let device = Device::flex();
    let predictor = Predictor::load(run, CheckpointKind::Best, device.clone()).unwrap();
    std::fs::create_dir_all(dir).unwrap();
    let mut manifest = Vec::new();
    for (i, &shape) in shapes.iter().enumerate() {
        let x = Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &device);
        let out = predictor.model().forward(x.clone());
        let write = |name: String, t: Tensor<4>| {
            let bytes: Vec<u8> = t
                .try_into_vec_as::<f32>()
                .unwrap()
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect();
            std::fs::write(dir.join(&name), bytes).unwrap();
            name
        };
        let mut case = serde_json::json!({
            "input": write(format!("input{i}.f32"), x),
            "logits": write(format!("logits{i}.f32"), out.logits),
            "shape": shape,
        });
        if let Some(second) = out.aux {
            case["second"] = write(format!("second{i}.f32"), second).into();
        }
        manifest.push(case);
    }
    let path = dir.join("manifest.json");
    std::fs::write(&path, serde_json::to_string(&manifest).unwrap()).unwrap();
    path
}

/// Predicts `data`'s images with `roadseg predict` into `preds`, has the peer predict them from
/// `onnx` and its metadata alone, and asserts that no pixel differs; returns how many images.
fn masks_differ(onnx: &Path, run: &Path, data: &Path, preds: &Path) -> usize {
    let images = data.join("images");
    ok(&[
        "predict",
        "--model",
        s(run),
        "--input",
        s(&images),
        "--out",
        s(preds),
        "--device",
        "cpu",
    ]);
    let result = peer(&[s(onnx), "masks", s(&images), s(preds)]);
    let images = result["images"].as_array().unwrap();
    for image in images {
        assert_eq!(image["differing_pixels"], 0, "{image}");
    }
    images.len()
}

fn assert_cases_match(result: &Value, expected_cases: usize) {
    let cases = result["cases"].as_array().unwrap();
    assert_eq!(cases.len(), expected_cases);
    for case in cases {
        let diff = case["max_abs_diff"].as_f64().unwrap();
        assert!(diff <= 1e-4, "max |logit diff| {diff} for {case}");
        assert_eq!(case["argmax_equal"], true, "{case}");
        let (input, output) = (&case["shape"], &case["output_shape"]);
        for axis in [0, 2, 3] {
            assert_eq!(input[axis], output[axis], "{case}");
        }
    }
}

#[test]
fn export_runs_in_onnxruntime_with_the_same_logits_and_masks() {
    let (tmp, data, run) = trained();
    let onnx = tmp.path().join("model.onnx");
    let report: Value = serde_json::from_str(&ok(&[
        "export",
        "--model",
        s(run),
        "--onnx",
        s(&onnx),
        "--json",
    ]))
    .unwrap();
    assert_eq!(report["traced"], serde_json::json!(SIZE));
    assert!(
        report["operators"]["Resize"].as_u64().unwrap() == 2,
        "{report}"
    );
    assert!(report["operators"].get("BatchNormalization").is_none());

    // Fixed height and width, symbolic batch: batch 1 and 3.
    let manifest = reference_cases(
        run,
        &tmp.path().join("static"),
        &[[1, 3, SIZE[0], SIZE[1]], [3, 3, SIZE[0], SIZE[1]]],
    );
    let result = peer(&[s(&onnx), "logits", s(&manifest)]);
    assert_eq!(result["checker"], "passed");
    assert_cases_match(&result, 2);
    assert_eq!(result["inputs"][0][0], "image");
    assert_eq!(result["outputs"][0][0], "logits");
    let meta = &result["metadata"];
    assert_eq!(meta["input_size"], "24x32");
    assert_eq!(meta["size_multiple"], "4");
    assert_eq!(meta["mean"], "0.485,0.456,0.406");
    assert_eq!(meta["roadseg_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(meta["run"].as_str().unwrap().len(), 16);
    let classes: Value = serde_json::from_str(meta["classes"].as_str().unwrap()).unwrap();
    assert_eq!(classes[0]["name"], "road");

    // The same masks as `roadseg predict`, from the file and its metadata alone.
    assert_eq!(
        masks_differ(&onnx, run, data, &tmp.path().join("preds")),
        12
    );

    // --dynamic: any multiple of 4 in height and width, any batch.
    let dynamic = tmp.path().join("dynamic.onnx");
    ok(&[
        "export",
        "--model",
        s(run),
        "--onnx",
        s(&dynamic),
        "--dynamic",
    ]);
    let manifest = reference_cases(
        run,
        &tmp.path().join("dynamic"),
        &[[1, 3, 16, 16], [2, 3, 48, 40], [1, 3, SIZE[0], SIZE[1]]],
    );
    let result = peer(&[s(&dynamic), "logits", s(&manifest)]);
    assert_cases_match(&result, 3);
    assert_eq!(
        result["inputs"][0][1],
        serde_json::json!(["batch", 3, "height", "width"])
    );
}

#[test]
fn export_failures_are_clear_and_leave_no_file() {
    let (tmp, data, run) = trained();
    let dir = tmp.path().join("bad");
    std::fs::create_dir_all(&dir).unwrap();

    // A run folder without a checkpoint.
    let empty = dir.join("empty-run");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::copy(run.join("config.json"), empty.join("config.json")).unwrap();
    let out = dir.join("a.onnx");
    let err = fails(&["export", "--model", s(&empty), "--onnx", s(&out)]);
    assert!(err.contains("no checkpoint"), "{err}");
    assert!(!out.exists());

    // An output path that cannot be written: its parent is a file; then a folder in the way.
    let file = dir.join("file.txt");
    std::fs::write(&file, "x").unwrap();
    let err = fails(&[
        "export",
        "--model",
        s(run),
        "--onnx",
        s(&file.join("m.onnx")),
    ]);
    assert!(
        err.contains("could not write") && err.contains("file.txt"),
        "{err}"
    );
    let folder = dir.join("folder.onnx");
    std::fs::create_dir_all(&folder).unwrap();
    let err = fails(&["export", "--model", s(run), "--onnx", s(&folder)]);
    assert!(err.contains("could not write"), "{err}");

    // A model the exporter cannot lower: transposed-convolution up-sampling.
    let config = dir.join("transposed.json");
    std::fs::write(&config, r#"{"model": {"upsample": "Transposed"}}"#).unwrap();
    let transposed = dir.join("transposed-run");
    let mut args = vec![
        "train",
        "--data",
        s(data),
        "--out",
        s(&transposed),
        "--epochs",
        "1",
        "--config",
        s(&config),
    ];
    args.extend_from_slice(TINY);
    ok(&args);
    let out = dir.join("t.onnx");
    let err = fails(&["export", "--model", s(&transposed), "--onnx", s(&out)]);
    assert!(
        err.contains("cannot be exported") && err.contains("ConvTranspose2d"),
        "{err}"
    );
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".onnx") || n.ends_with(".tmp"))
        .collect();
    assert_eq!(left, ["folder.onnx"], "no partial or temporary file");
}

#[test]
fn quantized_and_pruned_runs_are_ordinary_runs() {
    let (tmp, data, run) = trained();
    let quantized = tmp.path().join("run-int8");
    let q: Value = serde_json::from_str(&ok(&[
        "quantize",
        "--model",
        s(run),
        "--out",
        s(&quantized),
        "--runs",
        "3",
        "--json",
    ]))
    .unwrap();
    let (before, after) = (&q["before"], &q["after"]);
    // int8 weights: 4x fewer weight bytes; the record's names and shapes weigh a lot in a model
    // this tiny, so the whole file only shrinks by about 45% (3.8x for the default UNet).
    assert!(
        after["file_bytes"].as_u64().unwrap() * 10 < before["file_bytes"].as_u64().unwrap() * 6,
        "{q}"
    );
    assert!(q["note"].as_str().unwrap().contains("not faster"));
    let miou = |v: &Value| v["val_miou"].as_f64().unwrap();
    assert!((miou(before) - miou(after)).abs() < 0.05, "{q}");

    let pruned = tmp.path().join("run-pruned");
    let p: Value = serde_json::from_str(&ok(&[
        "prune",
        "--model",
        s(run),
        "--out",
        s(&pruned),
        "--amount",
        "0.5",
        "--structured",
        "--finetune-epochs",
        "1",
        "--runs",
        "3",
        "--json",
    ]))
    .unwrap();
    // The default, measured allocation: at least half the filters go, no stage widens.
    assert_eq!(p["widths"]["before"], serde_json::json!([4, 8, 16]));
    let widths = |v: &Value| -> Vec<u64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|w| w.as_u64().unwrap())
            .collect()
    };
    let (before_w, after_w) = (
        widths(&p["widths"]["before"]),
        widths(&p["widths"]["after"]),
    );
    assert!(
        before_w
            .iter()
            .zip(&after_w)
            .all(|(b, a)| a <= b && *a >= 1),
        "{p}"
    );
    let filters = |k: &str| p["filters"][k].as_u64().unwrap();
    assert_eq!(filters("before"), 92, "{p}");
    assert!(filters("after") * 2 <= filters("before"), "{p}");
    assert!(p["method"].as_str().unwrap().contains("(measured)"), "{p}");
    let params = |v: &Value| v["params"].as_u64().unwrap();
    assert!(params(&p["after"]) * 2 < params(&p["before"]), "{p}");
    assert!(p["after"]["gflops"].as_f64().unwrap() < p["before"]["gflops"].as_f64().unwrap());
    // Fine-tuning wrote its curve into the new run.
    assert!(
        std::fs::read_to_string(pruned.join("metrics.jsonl"))
            .unwrap()
            .contains("\"val\"")
    );

    // Both open like any run: eval, export, and the bench side by side.
    for variant in [&quantized, &pruned] {
        ok(&[
            "eval",
            "--model",
            s(variant),
            "--data",
            s(data),
            "--device",
            "cpu",
        ]);
        let out = tmp.path().join(format!(
            "{}.onnx",
            variant.file_name().unwrap().to_str().unwrap()
        ));
        ok(&["export", "--model", s(variant), "--onnx", s(&out)]);
        assert!(out.is_file());
    }
    let bench: Value = serde_json::from_str(&ok(&[
        "bench",
        "--model",
        s(run),
        "--compare",
        s(&quantized),
        s(&pruned),
        "--size",
        "32x24",
        "--size",
        "64x48",
        "--runs",
        "3",
        "--json",
    ]))
    .unwrap();
    let runs = bench["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 3);
    for r in runs {
        assert_eq!(r["latency"].as_array().unwrap().len(), 2, "{r}");
        let l = &r["latency"][1];
        assert_eq!(l["size"], serde_json::json!([64, 48]));
        assert!(l["p50_ms"].as_f64().unwrap() > 0.0);
        assert!(l["p95_ms"].as_f64().unwrap() >= l["p50_ms"].as_f64().unwrap());
        assert!(r["peak_resident_bytes"].as_u64().unwrap() > 0);
    }
    assert!(runs[2]["params"].as_u64().unwrap() < runs[0]["params"].as_u64().unwrap());
}

#[test]
fn structured_pruning_takes_uniform_shares_or_given_widths() {
    let (tmp, _, run) = trained();
    let prune = |name: &str, how: &[&str]| -> Value {
        let out = tmp.path().join(name);
        let mut args = vec![
            "prune",
            "--model",
            s(run),
            "--out",
            s(&out),
            "--structured",
            "--runs",
            "2",
            "--json",
        ];
        args.extend_from_slice(how);
        serde_json::from_str(&ok(&args)).unwrap()
    };
    let uniform = prune(
        "run-uniform",
        &["--amount", "0.5", "--allocation", "uniform"],
    );
    assert_eq!(uniform["widths"]["after"], serde_json::json!([2, 4, 8]));
    assert_eq!(uniform["filters"]["after"], serde_json::json!(46));
    let given = prune(
        "run-given",
        &[
            "--widths",
            "4,6,6",
            "--finetune-epochs",
            "1",
            "--distill-weight",
            "1",
        ],
    );
    // Fine-tuned with the original as the teacher: the new run's config says so.
    let config: Value = serde_json::from_str(
        &std::fs::read_to_string(tmp.path().join("run-given/config.json")).unwrap(),
    )
    .unwrap();
    let distill = &config["train"]["distill"];
    assert_eq!(distill["weight"], serde_json::json!(1.0), "{config}");
    assert_eq!(
        Path::new(distill["teacher"].as_str().unwrap()),
        std::path::absolute(run).unwrap()
    );
    assert_eq!(given["widths"]["after"], serde_json::json!([4, 6, 6]));
    assert!(
        given["method"]
            .as_str()
            .unwrap()
            .contains("to widths [4, 6, 6]")
    );
    // Widths that do not fit the model are refused with the reason, and no run is written.
    let bad = tmp.path().join("run-bad");
    for (widths, reason) in [
        ("4,6", "--widths lists 2 stages; this model has 3"),
        ("4,9,6", "each stage keeps 1 to its [4, 8, 16]"),
        ("4,0,6", "each stage keeps 1 to its [4, 8, 16]"),
    ] {
        let err = fails(&[
            "prune",
            "--model",
            s(run),
            "--out",
            s(&bad),
            "--structured",
            "--widths",
            widths,
        ]);
        assert!(err.contains(reason), "{widths}: {err}");
    }
    assert!(!bad.exists());
}

/// A copy of the folder `from` at `to`.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Every convolution weight (4-D parameter) of `run`'s last checkpoint, as floats.
fn conv_weights(run: &Path) -> Vec<f32> {
    use burn::module::{Module, ModuleVisitor, Param};
    struct Convs(Vec<f32>);
    impl ModuleVisitor for Convs {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if D == 4 {
                let values = roadseg::core::kernels::ops::dequantized(param.val());
                self.0.extend(values.try_into_vec_as::<f32>().unwrap());
            }
        }
    }
    let config = roadseg::core::train::run_dir::RunDir::new(run)
        .read_config()
        .unwrap();
    let model = roadseg::core::train::trainer::load_model(
        config.model.init(&Device::flex()),
        &run.join("checkpoints/last/model.bpk"),
    )
    .unwrap();
    let mut convs = Convs(Vec::new());
    model.visit(&mut convs);
    convs.0
}

#[test]
fn training_from_a_quantized_run_trains_its_convolutions() {
    let (tmp, data, run) = trained();
    let quantized = tmp.path().join("run-int8-to-train");
    ok(&[
        "quantize",
        "--model",
        s(run),
        "--out",
        s(&quantized),
        "--runs",
        "1",
    ]);
    let from = tmp.path().join("run-from-int8");
    let mut args = vec![
        "train",
        "--data",
        s(data),
        "--out",
        s(&from),
        "--epochs",
        "1",
        "--init-from",
        s(&quantized),
    ];
    // TINY without its architecture flags: the model is the quantized run's.
    args.extend([
        "--size",
        "32x24",
        "--batch-size",
        "4",
        "--workers",
        "1",
        "--device",
        "cpu",
    ]);
    let out = common::roadseg(&args);
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("stored as int8") && said.contains("f32"),
        "{said}"
    );
    let resumed = tmp.path().join("run-int8-resumed");
    copy_dir(&quantized, &resumed);
    ok(&[
        "train",
        "--resume",
        s(&resumed),
        "--epochs",
        "1",
        "--device",
        "cpu",
    ]);

    // Every convolution weight had a gradient, so Adam moved nearly all of them (they stayed
    // exactly the int8 values when only batch norm trained).
    let start = conv_weights(&quantized);
    for trained in [&from, &resumed] {
        let now = conv_weights(trained);
        assert_eq!(now.len(), start.len());
        let moved = now.iter().zip(&start).filter(|(a, b)| a != b).count();
        assert!(
            moved * 10 > start.len() * 9,
            "{}: {moved} of {} convolution weights moved",
            trained.display(),
            start.len()
        );
    }
}

#[test]
fn derived_runs_measure_the_checkpoint_they_start_from() {
    let (tmp, _, run) = trained();
    let json = |args: &[&str]| -> Value { serde_json::from_str(&ok(args)).unwrap() };
    let from_last = |v: &Value| {
        Path::new(v["before"]["checkpoint"].as_str().unwrap()).ends_with("checkpoints/last")
    };
    // Pruning nothing from the last checkpoint changes nothing, "before" included.
    let pruned = tmp.path().join("run-pruned-nothing");
    let p = json(&[
        "prune",
        "--model",
        s(run),
        "--out",
        s(&pruned),
        "--amount",
        "0",
        "--checkpoint",
        "last",
        "--runs",
        "1",
        "--json",
    ]);
    assert!(from_last(&p), "{p}");
    let miou = |v: &Value| v["val_miou"].as_f64().unwrap();
    assert_eq!(miou(&p["before"]), miou(&p["after"]), "{p}");

    let quantized = tmp.path().join("run-int8-last");
    let q = json(&[
        "quantize",
        "--model",
        s(run),
        "--out",
        s(&quantized),
        "--checkpoint",
        "last",
        "--runs",
        "1",
        "--json",
    ]);
    assert!(from_last(&q), "{q}");
    // The quantized count is out of the table's parameters (the inference model's).
    assert_eq!(q["params"], q["after"]["params"], "{q}");
    assert_eq!(q["after"]["params"], q["before"]["params"], "{q}");
    assert!(q["quantized_params"].as_u64() < q["params"].as_u64(), "{q}");
}

#[test]
fn a_run_whose_dataset_moved_says_so_writes_nothing_and_takes_data() {
    let (tmp, data, run) = trained();
    let moved = tmp.path().join("run-data-moved");
    copy_dir(run, &moved);
    let config_path = moved.join("config.json");
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(&config_path).unwrap()).unwrap();
    let gone = tmp.path().join("data-gone");
    config["data"] = Value::String(s(&gone).into());
    std::fs::write(&config_path, config.to_string()).unwrap();

    let out = tmp.path().join("run-moved-int8");
    for args in [
        vec!["quantize", "--model", s(&moved), "--out", s(&out)],
        vec![
            "prune",
            "--model",
            s(&moved),
            "--out",
            s(&out),
            "--amount",
            "0.3",
        ],
        vec!["eval", "--model", s(&moved), "--device", "cpu"],
    ] {
        let err = fails(&args);
        assert!(
            err.contains(s(&gone)) && err.contains("is not there") && err.contains("--data"),
            "{args:?}: {err}"
        );
        assert!(!err.contains("device"), "{args:?} blames the device: {err}");
        assert!(!out.exists(), "{args:?} left {}", out.display());
    }
    ok(&[
        "quantize",
        "--model",
        s(&moved),
        "--out",
        s(&out),
        "--data",
        s(data),
        "--runs",
        "1",
    ]);
    let written: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        Path::new(written["data"].as_str().unwrap()),
        std::path::absolute(data).unwrap()
    );
    // The new run evaluates where its data now is.
    ok(&["eval", "--model", s(&out), "--device", "cpu"]);
}

#[test]
fn a_missing_checkpoint_is_refused_not_replaced_by_the_other() {
    let (tmp, _, run) = trained();
    let only_last = tmp.path().join("run-only-last");
    copy_dir(run, &only_last);
    std::fs::remove_dir_all(only_last.join("checkpoints/best")).unwrap();
    let onnx = tmp.path().join("only-last.onnx");
    let out = tmp.path().join("run-only-last-int8");
    for args in [
        vec!["eval", "--model", s(&only_last), "--device", "cpu"],
        vec!["export", "--model", s(&only_last), "--onnx", s(&onnx)],
        vec!["quantize", "--model", s(&only_last), "--out", s(&out)],
        vec!["bench", "--model", s(&only_last), "--runs", "1"],
    ] {
        let err = fails(&args);
        assert!(
            err.contains("no best checkpoint") && err.contains("--checkpoint last"),
            "{args:?}: {err}"
        );
        // One "error:", from main; none repeated inside the message.
        assert_eq!(err.matches("error:").count(), 1, "{args:?}: {err}");
    }
    assert!(!onnx.exists() && !out.exists());
    let said = ok(&[
        "eval",
        "--model",
        s(&only_last),
        "--checkpoint",
        "last",
        "--device",
        "cpu",
    ]);
    assert!(said.contains("last weights from"), "{said}");
}

#[test]
fn flags_that_would_be_ignored_or_cannot_work_are_refused() {
    let model = ["--model", "no-run", "--out", "no-out"];
    let with = |command: &str, rest: &[&'static str]| -> Vec<String> {
        let mut args = vec![command.to_string()];
        if command != "bench" {
            args.extend(model.iter().map(|a| a.to_string()));
        }
        args.extend(rest.iter().map(|a| a.to_string()));
        args
    };
    let mut cases = vec![
        (with("bench", &["--batch-size", "0"]), "at least 1"),
        (with("bench", &["--batches", "0"]), "at least 1"),
        (with("bench", &["--train", "--steps", "0"]), "at least 1"),
        (
            with("bench", &["--model", "r", "--runs", "0"]),
            "at least 1",
        ),
        (with("bench", &["--workers", "0"]), "at least 1"),
        (with("bench", &["--steps", "3"]), "--train"),
        (with("bench", &["--encoder", "resnet18"]), "--train"),
        (with("bench", &["--runs", "3"]), "--model"),
        (with("bench", &["--device", "cpu"]), "--train"),
        (
            with("bench", &["--model", "r", "--batch-size", "4"]),
            "cannot be used with",
        ),
        (
            with("bench", &["--model", "r", "--train"]),
            "cannot be used with",
        ),
        (
            with("bench", &["--paint", "--size", "64x48"]),
            "cannot be used with",
        ),
        (with("quantize", &["--runs", "0"]), "at least 1"),
        (
            with("prune", &["--amount", "0.3", "--runs", "0"]),
            "at least 1",
        ),
        (
            with(
                "prune",
                &["--structured", "--amount", "0.3", "--widths", "1,2,3"],
            ),
            "cannot be used with",
        ),
        (
            with(
                "prune",
                &[
                    "--structured",
                    "--widths",
                    "1,2,3",
                    "--allocation",
                    "uniform",
                ],
            ),
            "cannot be used with",
        ),
        (
            with("prune", &["--amount", "0.3", "--allocation", "uniform"]),
            "--structured",
        ),
        (
            with("prune", &["--amount", "0.3", "--distill-weight", "1"]),
            "--finetune-epochs",
        ),
        (
            with("prune", &["--amount", "0.3", "--lr", "0.01"]),
            "--finetune-epochs",
        ),
        (
            with("prune", &["--amount", "0.3", "--finetune-epochs", "0"]),
            "at least 1",
        ),
        (
            with(
                "prune",
                &["--amount", "0.3", "--finetune-epochs", "1", "--lr", "0"],
            ),
            "above 0",
        ),
        (
            with(
                "prune",
                &[
                    "--amount",
                    "0.3",
                    "--finetune-epochs",
                    "1",
                    "--distill-weight=-1",
                ],
            ),
            "0 or more",
        ),
        (
            with(
                "prune",
                &[
                    "--amount",
                    "0.3",
                    "--finetune-epochs",
                    "1",
                    "--distill-temperature",
                    "2",
                ],
            ),
            "--distill-weight",
        ),
    ];
    if cfg!(feature = "gui") {
        cases.extend([
            (with("bench", &["--minutes", "3"]), "--soak"),
            (with("bench", &["--soak", "--minutes", "0"]), "above 0"),
            (with("bench", &["--soak", "--train"]), "cannot be used with"),
            (
                with("bench", &["--studio", "--size", "64x48"]),
                "cannot be used with",
            ),
        ]);
    }
    for (args, reason) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let err = fails(&args);
        assert!(err.contains(reason), "{args:?}: {err}");
    }
}

/// Issue 23: export, quantize, prune and bench --model take a ResNet-18 run with a second
/// (boundary) head as they take the plain UNet: the ONNX file has both outputs and onnxruntime
/// gives the same logits for both; the variants are ordinary runs.
#[test]
fn a_resnet_run_with_a_second_head_ships_like_a_unet() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    ok(&[
        "sample",
        "--out",
        s(&data),
        "--count",
        "6",
        "--size",
        "32x32",
        "--seed",
        "3",
    ]);
    let run = tmp.path().join("run");
    ok(&[
        "train",
        "--data",
        s(&data),
        "--out",
        s(&run),
        "--epochs",
        "1",
        "--encoder",
        "resnet18",
        "--aux",
        "boundary",
        "--size",
        "32x32",
        "--width",
        "4",
        "--batch-size",
        "3",
        "--workers",
        "1",
        "--device",
        "cpu",
    ]);

    let onnx = tmp.path().join("resnet.onnx");
    let report: Value = serde_json::from_str(&ok(&[
        "export",
        "--model",
        s(&run),
        "--onnx",
        s(&onnx),
        "--json",
        "--dynamic",
    ]))
    .unwrap();
    assert_eq!(report["size_multiple"], 32, "{report}");
    for op in ["Add", "MaxPool", "Resize", "Concat"] {
        assert!(
            report["operators"][op].as_u64().unwrap() > 0,
            "{op}: {report}"
        );
    }
    assert!(report["operators"].get("BatchNormalization").is_none());
    let manifest = reference_cases(
        &run,
        &tmp.path().join("cases"),
        &[[1, 3, 32, 32], [2, 3, 64, 32]],
    );
    let result = peer(&[s(&onnx), "logits", s(&manifest)]);
    assert_eq!(result["checker"], "passed");
    assert_cases_match(&result, 2);
    assert_eq!(result["cases"][0]["outputs"], 2, "{result}");
    assert_eq!(result["outputs"][1][0], "boundary_logits");
    let meta = &result["metadata"];
    assert_eq!(meta["encoder"], "resnet18");
    assert_eq!(meta["size_multiple"], "32");
    assert_eq!(meta["second_head"], "boundary");
    // The masks `roadseg predict` writes, from the file and its metadata alone.
    assert_eq!(
        masks_differ(&onnx, &run, &data, &tmp.path().join("preds")),
        6
    );

    let quantized = tmp.path().join("run-int8");
    let q: Value = serde_json::from_str(&ok(&[
        "quantize",
        "--model",
        s(&run),
        "--out",
        s(&quantized),
        "--runs",
        "2",
        "--json",
    ]))
    .unwrap();
    // Nearly all of a ResNet's parameters are convolution weights.
    assert!(
        q["after"]["file_bytes"].as_u64().unwrap() * 3
            < q["before"]["file_bytes"].as_u64().unwrap(),
        "{q}"
    );
    assert!(
        q["quantized_params"].as_u64().unwrap() * 10 > q["params"].as_u64().unwrap() * 9,
        "{q}"
    );

    // Sparse, fine-tuned, and pruned again to the same sparsity after training moved the zeros
    // (both files of both checkpoints).
    let pruned = tmp.path().join("run-sparse");
    let p: Value = serde_json::from_str(&ok(&[
        "prune",
        "--model",
        s(&run),
        "--out",
        s(&pruned),
        "--amount",
        "0.5",
        "--finetune-epochs",
        "1",
        "--runs",
        "2",
        "--json",
    ]))
    .unwrap();
    let sparsity = p["sparsity"]["after"].as_f64().unwrap();
    assert!((0.45..=0.55).contains(&sparsity), "{p}");

    // Narrower: the decoder's five stages and the boundary head, the encoder whole.
    let narrow = tmp.path().join("run-narrow");
    let n: Value = serde_json::from_str(&ok(&[
        "prune",
        "--model",
        s(&run),
        "--out",
        s(&narrow),
        "--amount",
        "0.5",
        "--structured",
        "--runs",
        "2",
        "--json",
    ]))
    .unwrap();
    assert_eq!(n["widths"]["before"], serde_json::json!([4, 8, 16, 32, 64]));
    let after: Vec<u64> = n["widths"]["after"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_u64().unwrap())
        .collect();
    assert!(
        after.iter().all(|&w| w >= 1) && after.iter().sum::<u64>() < 124,
        "{n}"
    );
    // 3 per decoder stage and the boundary head's 3x3.
    assert_eq!(n["filters"]["before"], 3 * 124 + 4, "{n}");
    assert!(
        n["filters"]["after"].as_u64().unwrap() * 2 <= 3 * 124 + 4,
        "{n}"
    );
    let params = |v: &Value| v["params"].as_u64().unwrap();
    let encoder = 11_176_512; // ResNet-18 without its classifier, running statistics aside
    assert!(params(&n["after"]) > encoder, "{n}");
    assert!(params(&n["after"]) < params(&n["before"]), "{n}");
    let given = tmp.path().join("run-given");
    let g: Value = serde_json::from_str(&ok(&[
        "prune",
        "--model",
        s(&run),
        "--out",
        s(&given),
        "--structured",
        "--widths",
        "2,4,8,16,16",
        "--runs",
        "2",
        "--json",
    ]))
    .unwrap();
    assert_eq!(g["widths"]["after"], serde_json::json!([2, 4, 8, 16, 16]));
    let err = fails(&[
        "prune",
        "--model",
        s(&run),
        "--out",
        s(&tmp.path().join("bad")),
        "--structured",
        "--widths",
        "2,4,8",
    ]);
    assert!(
        err.contains("--widths lists 3 stages; this model has 5 decoder stages"),
        "{err}"
    );
    assert!(!tmp.path().join("bad").exists());

    // Each variant is a run like any other: evaluated, exported, benched beside the original.
    for variant in [&quantized, &pruned, &narrow] {
        ok(&["eval", "--model", s(variant), "--device", "cpu"]);
        let out = tmp.path().join(format!(
            "{}.onnx",
            variant.file_name().unwrap().to_str().unwrap()
        ));
        ok(&["export", "--model", s(variant), "--onnx", s(&out)]);
    }
    // The narrow run's ONNX file gives predict's masks, both heads, in onnxruntime.
    let narrow_onnx = tmp.path().join("run-narrow.onnx");
    let manifest = reference_cases(&narrow, &tmp.path().join("narrow-cases"), &[[1, 3, 32, 32]]);
    let result = peer(&[s(&narrow_onnx), "logits", s(&manifest)]);
    assert_cases_match(&result, 1);
    assert_eq!(result["cases"][0]["outputs"], 2, "{result}");
    assert_eq!(
        masks_differ(
            &narrow_onnx,
            &narrow,
            &data,
            &tmp.path().join("narrow-preds")
        ),
        6
    );
    let bench: Value = serde_json::from_str(&ok(&[
        "bench",
        "--model",
        s(&run),
        "--compare",
        s(&quantized),
        s(&pruned),
        s(&narrow),
        "--size",
        "64x64",
        "--runs",
        "2",
        "--json",
    ]))
    .unwrap();
    let runs = bench["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 4);
    // ResNet-18's encoder alone is 1.81 GMACs at 224x224: at 64x64, about 0.30 GFLOPs.
    let gflops = runs[0]["gflops"][0].as_f64().unwrap();
    assert!((0.28..0.40).contains(&gflops), "{gflops}");
    assert!(
        runs[0]["params"].as_u64().unwrap() > 11_000_000,
        "{}",
        runs[0]
    );
}

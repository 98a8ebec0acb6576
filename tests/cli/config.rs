//! `--config` and `--resume` do what they are asked or refuse: a run reproduced from its own
//! config.json, unknown keys and impossible values named, resumed runs that keep their
//! settings, early stopping that says its rule.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{fails, ok, refs, roadseg};
use serde_json::Value;

/// 12 procedural road scenes at 64x48.
fn tiny_sample(dir: &Path) -> PathBuf {
    common::tiny_sample(dir, 5)
}

/// `roadseg train` of a tiny model (see `common::TINY`), then `extra`.
fn train(data: &Path, out: &Path, epochs: &str, extra: &[&str]) -> Vec<String> {
    common::tiny_args(data, out, epochs.parse().unwrap(), extra)
}

fn json_file(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn resume(run: &Path, extra: &[&str]) -> Vec<String> {
    let mut args = vec![
        "train",
        "--resume",
        run.to_str().unwrap(),
        "--device",
        "cpu",
    ];
    args.extend_from_slice(extra);
    args.iter().map(|s| s.to_string()).collect()
}

#[test]
fn a_runs_config_json_reproduces_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_sample(tmp.path());
    let first = tmp.path().join("first");
    ok(&refs(&train(&data, &first, "2", &[])));

    // No --data: the run's own dataset; every hyper-parameter as that run had it.
    let again = tmp.path().join("again");
    let config = first.join("config.json");
    let out = roadseg(&[
        "train",
        "--config",
        config.to_str().unwrap(),
        "--out",
        again.to_str().unwrap(),
        "--device",
        "cpu",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (a, b) = (json_file(&config), json_file(&again.join("config.json")));
    assert_eq!(a["train"], b["train"]);
    assert_eq!((&a["data"], &a["model"]), (&b["data"], &b["model"]));
    assert_eq!(b["train"]["epochs"], 2);
    assert_eq!(b["train"]["size"], serde_json::json!([32, 24]));
    assert_eq!(json_file(&again.join("summary.json"))["epochs"], 2);
}

#[test]
fn config_files_name_unknown_keys_and_impossible_values() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_sample(tmp.path());
    let cases = [
        (r#"{"bogus_key": 1}"#, "unknown key bogus_key"),
        (
            r#"{"loss": {"ignore_indx": 3}}"#,
            "unknown key loss.ignore_indx",
        ),
        (
            r#"{"train": {"epochs": "two"}}"#,
            "train.epochs: invalid type",
        ),
        (
            r#"{"normalize": {"mean": [0.5, 0.5, 0.5], "std": [0, 1, 1]}}"#,
            "normalize.std must be > 0",
        ),
        (
            r#"{"augment": {"hflip": 2.0}}"#,
            "augment.hflip is a probability",
        ),
        (
            r#"{"early_stopping": {"patience": 0, "min_delta": 0}}"#,
            "early_stopping.patience must be at least 1",
        ),
        (
            r#"{"loss": {"ignore_index": 9}}"#,
            "ignore_index 9 is not a class id",
        ),
    ];
    for (i, (text, expected)) in cases.iter().enumerate() {
        let file = tmp.path().join(format!("c{i}.json"));
        std::fs::write(&file, text).unwrap();
        let out = tmp.path().join(format!("run{i}"));
        let args = train(&data, &out, "1", &["--config", file.to_str().unwrap()]);
        let err = fails(&refs(&args));
        assert!(err.contains(expected), "{text}: {err}");
        assert!(!out.join("config.json").exists(), "{text}: nothing written");
        // Reading errors name the file; the others name the key.
        if i < 3 {
            assert!(
                err.contains(file.to_str().unwrap()),
                "names the file: {err}"
            );
        }
    }

    // What a config sets is what the run records (ignore_index was dropped before).
    let file = tmp.path().join("ok.json");
    std::fs::write(
        &file,
        r#"{"train": {"loss": {"ignore_index": 1}, "seed": 9}}"#,
    )
    .unwrap();
    let run = tmp.path().join("ok");
    ok(&refs(&train(
        &data,
        &run,
        "1",
        &["--config", file.to_str().unwrap()],
    )));
    let saved = json_file(&run.join("config.json"));
    assert_eq!(saved["train"]["loss"]["ignore_index"], 1);
    assert_eq!(saved["train"]["seed"], 9);
}

#[test]
fn resume_keeps_the_runs_settings_and_only_trains_on() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_sample(tmp.path());
    let run = tmp.path().join("run");
    ok(&refs(&train(&data, &run, "2", &[])));
    let config_before = std::fs::read(run.join("config.json")).unwrap();

    for (flags, key) in [
        (&["--optimizer", "sgd"][..], "optimizer.kind"),
        (&["--lr", "0.01"], "lr"),
        (&["--size", "64x48"], "size"),
        (&["--width", "8"], "model.base_width"),
        (&["--loss", "dice"], "loss."),
        (&["--seed", "3"], "seed"),
        (&["--epochs", "5", "--batch-size", "2"], "batch_size"),
    ] {
        let err = fails(&refs(&resume(&run, flags)));
        assert!(
            err.contains("cannot resume with other settings") && err.contains(key),
            "{flags:?}: {err}"
        );
    }
    // Fewer epochs than done, or none left: refused, nothing rewritten.
    let err = fails(&refs(&resume(&run, &["--epochs", "1"])));
    assert!(
        err.contains("has trained 2 epoch(s) and asks for 1"),
        "{err}"
    );
    let err = fails(&refs(&resume(&run, &[])));
    assert!(err.contains("nothing to train"), "{err}");
    assert_eq!(
        std::fs::read(run.join("config.json")).unwrap(),
        config_before
    );
    assert_eq!(json_file(&run.join("summary.json"))["epochs"], 2);

    // The run's own values are no change; more epochs and other loader threads apply.
    let out = roadseg(&refs(&resume(
        &run,
        &[
            "--epochs",
            "3",
            "--size",
            "32x24",
            "--width",
            "4",
            "--workers",
            "2",
        ],
    )));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("epochs: 2 -> 3"), "{stderr}");
    let saved = json_file(&run.join("config.json"));
    assert_eq!(
        (&saved["train"]["epochs"], &saved["train"]["num_workers"]),
        (&Value::from(3), &Value::from(2))
    );
    assert_eq!(json_file(&run.join("summary.json"))["epochs"], 3);
}

#[test]
fn early_stopping_says_the_rule_it_applied() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_sample(tmp.path());
    let file = tmp.path().join("early.json");
    // No epoch gains 0.9 mIoU: epochs 2 and 3 do not count, and the run stops after 3.
    std::fs::write(
        &file,
        r#"{"early_stopping": {"patience": 2, "min_delta": 0.9}}"#,
    )
    .unwrap();
    let run = tmp.path().join("run");
    let out = roadseg(&refs(&train(
        &data,
        &run,
        "8",
        &["--config", file.to_str().unwrap()],
    )));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let summary = json_file(&run.join("summary.json"));
    assert_eq!(
        (&summary["status"], &summary["epochs"]),
        (&Value::from("early_stopped"), &Value::from(3))
    );
    let message = summary["message"].as_str().unwrap();
    assert!(
        message.contains("has not beaten its best by more than 0.9 for 2 epochs since epoch 1"),
        "{message}"
    );
}

#[test]
fn flags_that_would_do_nothing_are_refused_and_paths_are_kept_absolute() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_sample(tmp.path());
    let err = fails(&[
        "train",
        "--data",
        data.to_str().unwrap(),
        "--out",
        tmp.path().join("r").to_str().unwrap(),
        "--encoder",
        "resnet18",
        "--depth",
        "3",
    ]);
    assert!(err.contains("--depth") && err.contains("resnet18"), "{err}");
    let err = fails(&refs(&train(
        &data,
        &tmp.path().join("r"),
        "1",
        &["--aux-weight", "0.3"],
    )));
    assert!(
        err.contains("--aux-weight") && err.contains("--aux"),
        "{err}"
    );

    // --init-from given relative to the working directory is stored absolute, like --data.
    ok(&refs(&train(&data, &tmp.path().join("base"), "1", &[])));
    let err = fails(&refs(&train(
        &data,
        &tmp.path().join("r"),
        "1",
        &["--init-from", "base"],
    )));
    assert!(
        err.contains("--init-from") && err.contains("--depth"),
        "{err}"
    );
    let derived = tmp.path().join("derived");
    let out = Command::new(env!("CARGO_BIN_EXE_roadseg"))
        .args([
            "train",
            "--init-from",
            "base",
            "--epochs",
            "1",
            "--size",
            "32x24",
        ])
        .args([
            "--workers",
            "1",
            "--device",
            "cpu",
            "--data",
            data.to_str().unwrap(),
        ])
        .arg("--out")
        .arg(&derived)
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let saved = json_file(&derived.join("config.json"));
    let init_from = PathBuf::from(saved["train"]["init_from"].as_str().unwrap());
    assert!(
        init_from.is_absolute() && init_from.ends_with("base"),
        "{init_from:?}"
    );
}

//! The CLI where a new user or a damaged folder meets it:
//! - broken run folders: `eval`, `predict` and `train --resume` refuse a run whose config or
//!   checkpoints are damaged, naming the file; a run whose history alone is cut short still
//!   predicts (with a warning) but cannot be resumed; nothing crashes;
//! - `predict --input DIR` searches sub-folders (Cityscapes' city folders) and mirrors them
//!   under --out; `predict --data DIR --split S` predicts a dataset's split in any layout;
//! - `info --json` prints JSON even when the dataset cannot be read.

use crate::common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::{ok, roadseg};

/// One tiny trained run (2 epochs), shared by the tests, each of which damages a copy.
fn trained() -> &'static (tempfile::TempDir, PathBuf, PathBuf) {
    static RUN: OnceLock<(tempfile::TempDir, PathBuf, PathBuf)> = OnceLock::new();
    RUN.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let run = tmp.path().join("run");
        let (d, r) = (data.to_str().unwrap(), run.to_str().unwrap());
        ok(&[
            "sample", "--out", d, "--count", "6", "--size", "48x32", "--seed", "5",
        ]);
        ok(&[
            "train",
            "--data",
            d,
            "--out",
            r,
            "--epochs",
            "2",
            "--size",
            "32x24",
            "--depth",
            "1",
            "--width",
            "2",
            "--batch-size",
            "2",
            "--workers",
            "1",
            "--device",
            "cpu",
        ]);
        (tmp, data, run)
    })
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// What each command says about a run: (succeeded, stderr) for eval, predict and resume.
fn try_all(run: &Path, tmp: &Path) -> [(bool, String); 3] {
    let (_, data, _) = trained();
    let image = data.join("images/road_0000.png");
    let out = tmp.join("predictions");
    let r = run.to_str().unwrap();
    let runs = [
        roadseg(&["eval", "--model", r, "--device", "cpu"]),
        roadseg(&[
            "predict",
            "--model",
            r,
            "--input",
            image.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--device",
            "cpu",
        ]),
        roadseg(&[
            "train",
            "--resume",
            r,
            "--epochs",
            "3",
            "--device",
            "cpu",
            "--workers",
            "1",
        ]),
    ];
    runs.map(|o| {
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    })
}

fn damaged(name: &str, damage: impl FnOnce(&Path)) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join(name);
    copy_dir(&trained().2, &run);
    damage(&run);
    (tmp, run)
}

fn assert_refused(result: &(bool, String), file: &str) {
    let (success, stderr) = result;
    assert!(!success, "accepted a broken run: {stderr}");
    assert!(
        stderr.contains(file) && !stderr.contains("panicked"),
        "{stderr}"
    );
}

#[test]
fn garbage_config_is_refused_by_every_command() {
    let (tmp, run) = damaged("garbage-config", |run| {
        std::fs::write(run.join("config.json"), "{\"model\": [1, 2").unwrap();
    });
    for result in try_all(&run, tmp.path()) {
        assert_refused(&result, "config.json");
    }
}

#[test]
fn a_truncated_or_missing_checkpoint_is_refused_by_every_command() {
    let (tmp, run) = damaged("truncated-weights", |run| {
        for kind in ["best", "last"] {
            let model = run.join(format!("checkpoints/{kind}/model.bpk"));
            let bytes = std::fs::read(&model).unwrap();
            std::fs::write(&model, &bytes[..bytes.len() / 3]).unwrap();
        }
    });
    for result in try_all(&run, tmp.path()) {
        assert_refused(&result, "model.bpk");
    }
    let (tmp, run) = damaged("no-checkpoint", |run| {
        std::fs::remove_dir_all(run.join("checkpoints")).unwrap();
    });
    for result in try_all(&run, tmp.path()) {
        assert_refused(&result, "no checkpoint although the run ended");
    }
}

#[test]
fn a_cut_history_still_predicts_but_does_not_resume() {
    let (tmp, run) = damaged("cut-metrics", |run| {
        let path = run.join("metrics.jsonl");
        let text = std::fs::read(&path).unwrap();
        // Cut mid-line, well before what the last checkpoint saw written.
        std::fs::write(&path, &text[..text.len() / 2 + 7]).unwrap();
    });
    let [eval, predict, resume] = try_all(&run, tmp.path());
    for (success, stderr) in [&eval, &predict] {
        assert!(success, "{stderr}");
        assert!(
            stderr.contains("warning") && stderr.contains("metrics.jsonl"),
            "{stderr}"
        );
    }
    assert!(tmp.path().join("predictions/road_0000.png").is_file());
    assert_refused(&resume, "metrics.jsonl");
    assert!(resume.1.contains("cannot resume"), "{}", resume.1);
}

/// Every file below `dir`, relative to it, sorted.
fn files_below(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                let rel = e.path().strip_prefix(dir).unwrap().to_path_buf();
                out.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn predict_searches_sub_folders_and_mirrors_them() {
    let (_, data, run) = trained();
    let tmp = tempfile::tempdir().unwrap();
    // Cityscapes' layout: leftImg8bit/val/<city>/<name>_leftImg8bit.png.
    let val = tmp.path().join("cityscapes/leftImg8bit/val");
    for (city, i) in [("frankfurt", 0), ("lindau", 1), ("lindau", 2)] {
        let to = val
            .join(city)
            .join(format!("{city}_{i:06}_leftImg8bit.png"));
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(data.join(format!("images/road_000{i}.png")), to).unwrap();
    }
    // Beside them a same-stem JPEG (two outputs must not collide) and a non-image.
    let photo = image::open(data.join("images/road_0003.png")).unwrap();
    photo
        .save(val.join("lindau/lindau_000001_leftImg8bit.jpg"))
        .unwrap();
    std::fs::write(val.join("README.txt"), "not an image").unwrap();
    let out = val.join("predictions");
    let r = run.to_str().unwrap();
    let predict = |input: &Path, out: &Path| {
        roadseg(&[
            "predict",
            "--model",
            r,
            "--input",
            input.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--device",
            "cpu",
        ])
    };
    let fails = |input: &Path, out: &Path| {
        let done = predict(input, out);
        assert!(
            !done.status.success(),
            "predict into {} should fail",
            out.display()
        );
        String::from_utf8(done.stderr).unwrap()
    };
    for _ in 0..2 {
        // Twice: the second run must not predict the first run's output folder inside --input.
        let done = predict(&val, &out);
        let stderr = String::from_utf8_lossy(&done.stderr);
        assert!(done.status.success(), "{stderr}");
        assert!(
            stderr.contains("2 images would all write")
                && stderr.contains("lindau_000001_leftImg8bit.jpg.png"),
            "the renaming is said: {stderr}"
        );
    }
    assert_eq!(
        files_below(&out),
        [
            "frankfurt/frankfurt_000000_leftImg8bit.png",
            // Both images of one stem keep their extension; neither takes the plain name.
            "lindau/lindau_000001_leftImg8bit.jpg.png",
            "lindau/lindau_000001_leftImg8bit.png.png",
            "lindau/lindau_000002_leftImg8bit.png",
        ]
    );
    // A third image whose plain name is one of those: refused, naming both, nothing written.
    let clash = val.join("lindau/lindau_000001_leftImg8bit.png.png");
    std::fs::copy(data.join("images/road_0003.png"), &clash).unwrap();
    let elsewhere = tmp.path().join("elsewhere");
    let err = fails(&val, &elsewhere);
    assert!(
        err.contains("would both write") && err.contains("rename one"),
        "{err}"
    );
    assert!(!elsewhere.exists(), "nothing predicted when refusing");
    std::fs::remove_file(&clash).unwrap();
    // An --out that is a file is named once, not once per image.
    let file_out = tmp.path().join("out.txt");
    std::fs::write(&file_out, "").unwrap();
    let err = fails(&val, &file_out);
    assert!(err.contains("is a file"), "{err}");
    let mask = image::open(out.join("lindau/lindau_000002_leftImg8bit.png")).unwrap();
    assert_eq!((mask.width(), mask.height()), (48, 32));

    let empty = tmp.path().join("empty/sub");
    std::fs::create_dir_all(&empty).unwrap();
    let err = fails(&tmp.path().join("empty"), &out);
    assert!(err.contains("no images found"), "{err}");
}

#[test]
fn predict_a_dataset_split_in_any_layout() {
    let (_, _, run) = trained();
    let tmp = tempfile::tempdir().unwrap();
    let fixture = common::cityscapes(&tmp.path().join("cityscapes"));
    let out = tmp.path().join("out");
    let r = run.to_str().unwrap();
    let (root, out_s) = (fixture.root.to_str().unwrap(), out.to_str().unwrap());
    ok(&[
        "predict", "--model", r, "--data", root, "--split", "train", "--out", out_s, "--device",
        "cpu",
    ]);
    // The fixture's train split: one image in each of two cities, named by their stems.
    assert_eq!(
        files_below(&out),
        ["aachen_000000_000000.png", "bochum_000000_000001.png"]
    );
    let err = common::fails(&[
        "predict", "--model", r, "--data", root, "--split", "test", "--out", out_s, "--device",
        "cpu",
    ]);
    assert!(err.contains("no images in the test split"), "{err}");
    let err = common::fails(&["predict", "--model", r, "--out", out_s]);
    assert!(err.contains("--input") && err.contains("--data"), "{err}");
    // --split chooses among a dataset's images: with --input it would be ignored.
    let image = files_below(&out);
    let input = out.join(&image[0]);
    let err = common::fails(&[
        "predict",
        "--model",
        r,
        "--input",
        input.to_str().unwrap(),
        "--split",
        "train",
        "--out",
        out_s,
    ]);
    assert!(err.contains("--split") && err.contains("--data"), "{err}");
}

#[test]
fn info_json_is_json_even_when_the_class_table_is_unreadable() {
    let tmp = tempfile::tempdir().unwrap();
    let fixture = common::native(&tmp.path().join("data"));
    let classes = fixture.root.join("classes.json");
    std::fs::write(&classes, "[{\"id\": 0, \"name\": ").unwrap();
    let out = roadseg(&["info", fixture.root.to_str().unwrap(), "--json"]);
    assert!(!out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    assert_eq!(json["file"], classes.to_str().unwrap());
    assert!(
        json["error"].as_str().unwrap().contains("bad class table"),
        "{json}"
    );
    // A folder that is not there: JSON too.
    let missing = tmp.path().join("nope");
    let out = roadseg(&["info", missing.to_str().unwrap(), "--json"]);
    assert!(!out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["file"], missing.to_str().unwrap());
}

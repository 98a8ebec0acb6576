//! Broken run folders through the CLI: `eval`, `predict` and `train --resume` refuse a run
//! whose config or checkpoints are damaged, naming the file; a run whose history alone is cut
//! short still predicts (with a warning) but cannot be resumed. Nothing crashes.

mod common;

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

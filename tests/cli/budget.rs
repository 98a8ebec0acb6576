//! `roadseg train` with a time budget: what it picks (and only what no flag gave), what it says,
//! and that the run's config.json replays the run without picking again, as `--resume` does.

use crate::common;

use std::path::Path;

use common::{fails, refs, roadseg};
use serde_json::Value;

fn json_file(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The log (stderr) of a `roadseg` command that must succeed.
fn log_of(args: &[&str]) -> String {
    let out = roadseg(args);
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "roadseg {args:?} failed:\n{log}");
    log
}

/// `roadseg train` of a small model under a two-second budget, then `extra`.
fn budget_run(data: &Path, out: &Path, extra: &[&str]) -> Vec<String> {
    let head = [
        "train",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--budget",
        "2s",
        "--depth",
        "2",
        "--batch-size",
        "4",
        "--workers",
        "1",
        "--device",
        "cpu",
    ];
    head.iter().chain(extra).map(|s| s.to_string()).collect()
}

/// The number before `word` in `text` ("93 epochs" -> 93).
fn count_before(text: &str, word: &str) -> u64 {
    let at = text
        .find(word)
        .unwrap_or_else(|| panic!("no {word:?} in {text}"));
    let digits: String = text[..at]
        .trim_end()
        .chars()
        .rev()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.chars().rev().collect::<String>().parse().unwrap()
}

#[test]
fn a_budget_picks_what_no_flag_gave_and_the_run_replays_without_picking() {
    let tmp = tempfile::tempdir().unwrap();
    let data = common::tiny_sample(tmp.path(), 8);
    let run = tmp.path().join("picked");
    let log = log_of(&refs(&budget_run(&data, &run, &[])));
    // 64x48 images: the input is their own size (no larger input exists), then the widths are
    // timed; it says what it chose and why.
    let line = log
        .lines()
        .find(|l| l.starts_with("budget 2 s picked the epochs, input size, width: input 64x48"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(
        line.contains("(1.00 of the typical 64x48 image), whole images"),
        "{line}"
    );
    let epochs = count_before(line, " epochs (");
    let config = json_file(&run.join("config.json"));
    let train = &config["train"];
    assert_eq!(
        train["auto"],
        Value::Null,
        "recorded as picked, not as a budget"
    );
    assert_eq!(train["epochs"], epochs);
    assert_eq!(train["size"], serde_json::json!([64, 48]));
    assert_eq!(train["crop"], Value::Null);
    let width = train["model"]["base_width"].clone();
    assert_eq!(config["model"]["base_width"], width);
    // The picked epochs are the run's (early stopping may end it sooner).
    assert!(log.contains(&format!("epochs 1..{epochs}\n")), "{log}");

    // Its config.json trains the same thing again, picking nothing.
    let again = tmp.path().join("again");
    let log = log_of(&[
        "train",
        "--config",
        run.join("config.json").to_str().unwrap(),
        "--out",
        again.to_str().unwrap(),
        "--device",
        "cpu",
    ]);
    assert!(log.contains("training "), "{log}");
    assert!(!log.contains("budget"), "{log}");
    assert_eq!(json_file(&again.join("config.json"))["train"], *train);

    // Resumed for one more epoch: nothing picked either.
    let more = (epochs + 1).to_string();
    let run_arg = run.to_str().unwrap();
    let log = log_of(&[
        "train", "--resume", run_arg, "--epochs", &more, "--device", "cpu",
    ]);
    assert!(log.contains("training "), "{log}");
    assert!(!log.contains("budget"), "{log}");
    let resumed = json_file(&run.join("config.json"));
    assert_eq!(resumed["train"]["size"], train["size"]);
    assert_eq!(resumed["train"]["model"], train["model"]);
}

#[test]
fn flags_and_config_keys_are_never_picked() {
    let tmp = tempfile::tempdir().unwrap();
    let data = common::tiny_sample(tmp.path(), 9);
    // Epochs and width given: the budget picks the input size alone.
    let run = tmp.path().join("sized");
    let log = log_of(&refs(&budget_run(
        &data,
        &run,
        &["--epochs", "2", "--width", "4"],
    )));
    assert!(
        log.contains("budget 2 s picked the input size: input 64x48"),
        "{log}"
    );
    let train = json_file(&run.join("config.json"))["train"].clone();
    assert_eq!(
        (
            train["epochs"].as_u64(),
            train["model"]["base_width"].as_u64()
        ),
        (Some(2), Some(4))
    );

    // All three given: a budget would do nothing, and is refused.
    let err = fails(&refs(&budget_run(
        &data,
        &tmp.path().join("fixed"),
        &["--epochs", "1", "--width", "4", "--size", "32x24"],
    )));
    assert!(err.contains("--budget has nothing to pick"), "{err}");
    assert!(!tmp.path().join("fixed").exists());

    // A config file's keys count as given.
    let config = tmp.path().join("partial.json");
    std::fs::write(&config, r#"{"epochs": 1, "size": [32, 24]}"#).unwrap();
    let run = tmp.path().join("from-file");
    let log = log_of(&refs(&budget_run(
        &data,
        &run,
        &["--config", config.to_str().unwrap()],
    )));
    assert!(
        log.contains("budget 2 s picked the width: input 32x24"),
        "{log}"
    );
    let train = json_file(&run.join("config.json"))["train"].clone();
    assert_eq!(train["epochs"], 1);
}

//! `roadseg train --submit ssh:HOST[:DIR]` against a real OpenSSH server on 127.0.0.1 with a
//! key made for the tests ([`services::sshd`]), reached through the user's own ssh and scp:
//! a run copied to the host is followed (metrics and checkpoints come back as they appear),
//! cancelled mid-run (it checkpoints there), and resumed as a new job with its curve intact; a
//! run folder the host sees at the same path trains in place.

use crate::common;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::services::{self, follow_until, ok_with, roadseg_for_jobs};
use common::{TINY, assert_same_curve, last_train_step, metric_lines};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(180);

fn env(
    sshd: &'static services::Sshd,
    delay_ms: Option<&'static str>,
) -> Vec<(&'static str, &'static OsStr)> {
    let mut env = vec![("ROADSEG_SSH_CONFIG", sshd.config.as_os_str())];
    if let Some(ms) = delay_ms {
        env.push(("ROADSEG_TEST_STEP_DELAY_MS", OsStr::new(ms)));
    }
    env
}

fn submit_args(data: &Path, out: &Path, epochs: &str, target: &str) -> Vec<String> {
    let mut a: Vec<String> = [
        "train",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--epochs",
        epochs,
    ]
    .map(str::to_string)
    .to_vec();
    a.extend(TINY.iter().map(|s| s.to_string()));
    a.extend(
        [
            "--submit",
            target,
            "--roadseg-bin",
            roadseg_for_jobs().to_str().unwrap(),
            "--json",
        ]
        .map(str::to_string),
    );
    a
}

fn json_file(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn remote_run(run: &Path) -> PathBuf {
    PathBuf::from(
        json_file(&run.join("job.json"))["ssh"]["remote_run"]
            .as_str()
            .unwrap(),
    )
}

fn finished(a: &Value) -> bool {
    a["state"] == "completed" && a["progress"]["finished"] == "completed"
}

#[test]
fn a_copied_run_is_followed_and_its_files_come_back() {
    let Some(sshd) = services::sshd("ssh::a_copied_run_is_followed") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let data = common::tiny_sample(tmp.path(), 21);
    let run = tmp.path().join("here's a run");
    let host_dir = tmp.path().join("on the host");
    let env = env(sshd, Some("250"));
    let target = format!("ssh:{}:{}", sshd.alias, host_dir.display());
    let out: Value = serde_json::from_str(&ok_with(
        &common::refs(&submit_args(&data, &run, "2", &target)),
        &env,
    ))
    .unwrap();
    let job = json_file(&run.join("job.json"));
    assert_eq!(job["engine"], "ssh");
    assert_eq!(job["job_id"], out["job_id"]);
    assert_eq!(job["ssh"]["copied"], true);
    let there = remote_run(&run);
    assert!(
        there.starts_with(host_dir.join("runs")),
        "{}",
        there.display()
    );

    let (running, _) = follow_until(&run, &env, LIMIT, |a| {
        a["state"] == "running" && a["progress"]["step"].as_u64().unwrap_or(0) >= 1
    });
    assert!(running["progress"]["epoch"].as_u64().unwrap() >= 1);
    let (_, states) = follow_until(&run, &env, LIMIT, finished);
    assert_eq!(states.last().map(String::as_str), Some("completed"));

    // This side's copy is the host's run, byte for byte where it counts.
    let bytes = |p: &Path| std::fs::read(p).unwrap();
    assert_eq!(
        bytes(&run.join("metrics.jsonl")),
        bytes(&there.join("metrics.jsonl"))
    );
    for file in [
        "checkpoints/last/state.json",
        "checkpoints/best/state.json",
        "summary.json",
    ] {
        assert_eq!(bytes(&run.join(file)), bytes(&there.join(file)), "{file}");
    }
    assert!(run.join("checkpoints/best/model.bpk").is_file());
    // The host's config names the host's copy of the dataset; ours still names ours.
    let host_data = json_file(&there.join("config.json"))["data"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        Path::new(&host_data).starts_with(host_dir.join("data")),
        "{host_data}"
    );
    assert!(Path::new(&host_data).join("images").is_dir());
    assert_eq!(
        json_file(&run.join("config.json"))["data"],
        data.to_str().unwrap()
    );
}

#[test]
fn cancel_over_ssh_checkpoints_and_a_resubmission_continues_the_curve() {
    let Some(sshd) = services::sshd("ssh::cancel_over_ssh_checkpoints") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let data = common::tiny_sample(tmp.path(), 22);
    let straight = tmp.path().join("straight");
    common::train_tiny(&data, &straight, 4);
    let expected = metric_lines(&straight);
    let steps_per_epoch = expected
        .iter()
        .filter(|l| l["split"] == "train" && l["epoch"] == 1)
        .count() as u64;

    let run = tmp.path().join("run");
    let target = format!("ssh:{}:{}", sshd.alias, tmp.path().join("host").display());
    let slow = env(sshd, Some("600"));
    ok_with(
        &common::refs(&submit_args(&data, &run, "4", &target)),
        &slow,
    );
    follow_until(&run, &slow, LIMIT, |a| {
        a["progress"]["step"].as_u64().unwrap_or(0) > steps_per_epoch
    });
    ok_with(&["cancel", run.to_str().unwrap(), "--wait"], &slow);
    let (after, _) = follow_until(&run, &slow, LIMIT, |a| {
        a["progress"]["finished"] == "stopped"
    });
    assert_eq!(after["state"], "cancelled", "{after}");
    assert_eq!(after["detail"], "stopped by roadseg cancel");
    let at = last_train_step(&run);
    assert!(
        at > steps_per_epoch && at < 4 * steps_per_epoch,
        "stopped at {at}"
    );
    let state = json_file(&run.join("checkpoints/last/state.json"));
    assert_eq!(
        state["step"].as_u64(),
        Some(at),
        "the checkpoint came back at the stop"
    );

    let fast = env(sshd, None);
    let resume = [
        "train",
        "--resume",
        run.to_str().unwrap(),
        "--device",
        "cpu",
        "--submit",
        &target,
        "--roadseg-bin",
        roadseg_for_jobs().to_str().unwrap(),
    ];
    ok_with(&resume, &fast);
    follow_until(&run, &fast, LIMIT, finished);
    assert_same_curve(&expected, &metric_lines(&run));
}

#[test]
fn a_folder_the_host_sees_trains_in_place() {
    let Some(sshd) = services::sshd("ssh::a_folder_the_host_sees_trains_in_place") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let data = common::tiny_sample(tmp.path(), 23);
    let run = tmp.path().join("shared");
    let env = env(sshd, None);
    let target = format!("ssh:{}", sshd.alias);
    let out = services::roadseg_with(&common::refs(&submit_args(&data, &run, "1", &target)), &env);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("sees this run folder; it trains in place"),
        "{stderr}"
    );
    let job = json_file(&run.join("job.json"));
    assert_eq!(job["ssh"]["copied"], false);
    assert_eq!(remote_run(&run), run);
    follow_until(&run, &env, LIMIT, finished);
    assert!(run.join("train.log").is_file());
    assert!(!run.join(".roadseg-shared-check").exists());
}

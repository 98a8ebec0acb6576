//! `roadseg train --submit ssh:HOST[:DIR]` against a real OpenSSH server on 127.0.0.1 with a
//! key made for the tests ([`services::sshd`]), reached through the user's own ssh and scp:
//! a run copied to the host is followed (metrics and checkpoints come back as they appear),
//! cancelled mid-run (it checkpoints there), and resumed as a new job with its curve intact; a
//! run folder the host sees at the same path trains in place.

use crate::common;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::services::{self, follow_until, ok_with};

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

fn submit_args(data: &Path, out: &Path, epochs: u32, target: &str) -> Vec<String> {
    let mut flags = services::submit_flags(target);
    flags.push("--json".into());
    common::tiny_args(data, out, epochs, &common::refs(&flags))
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
        &common::refs(&submit_args(&data, &run, 2, &target)),
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
    let target = format!("ssh:{}:{}", sshd.alias, tmp.path().join("host").display());
    let (slow, fast) = (env(sshd, Some("600")), env(sshd, None));
    let cancelled = services::cancel_mid_run_then_resume(tmp.path(), &data, &target, &slow, &fast);
    assert_eq!(cancelled.status["detail"], "stopped by roadseg cancel");
    // The checkpoint came back from the host at the step it stopped (checked by the helper),
    // and the host's copy agrees.
    let there = remote_run(&tmp.path().join("cancelled"));
    assert!(there.join("checkpoints/last/state.json").is_file());
    assert!(cancelled.at_step > 0);
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
    let out = services::roadseg_with(&common::refs(&submit_args(&data, &run, 1, &target)), &env);
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

//! Graceful stop: a real `roadseg train` process gets real SIGTERM, SIGINT and SIGUSR1 mid-epoch
//! and within seconds finishes its step, writes the `last` checkpoint at that step and
//! summary.json (stopped), and exits with 128 + the signal's number; `--resume` then continues
//! the same curve as a run that was never stopped.

use crate::common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{ok, tiny_args};
use serde_json::Value;

/// Slows each step down so that a signal lands mid-epoch (the numbers do not change).
const STEP_DELAY_MS: &str = "150";

fn metrics(run: &Path) -> Vec<Value> {
    common::metric_lines(run)
}

fn json_file(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn spawn_train(args: &[String]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_roadseg"))
        .args(args)
        .env("ROADSEG_TEST_STEP_DELAY_MS", STEP_DELAY_MS)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until the run has logged a train step past `step`.
fn wait_for_step(run: &Path, step: u64, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let done = common::last_train_step(run);
        if done > step {
            return;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the run ended ({status}) before step {step}");
        }
        assert!(Instant::now() < deadline, "no step {step} within 2 minutes");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends `signal` and returns the exit code, the seconds it took to exit, and stderr.
fn signal_and_wait(child: Child, signal: i32) -> (Option<i32>, f64, String) {
    let sent = Instant::now();
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        sent.elapsed().as_secs_f64(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Checks what a graceful stop leaves: the last checkpoint at the last logged step, mid-epoch,
/// and a `stopped` summary.
fn assert_stopped_cleanly(run: &Path) -> u64 {
    let last_step = common::last_train_step(run);
    let state = json_file(&run.join("checkpoints/last/state.json"));
    assert_eq!(state["step"].as_u64(), Some(last_step), "{state}");
    let bytes = std::fs::metadata(run.join("metrics.jsonl")).unwrap().len();
    assert_eq!(state["metrics_bytes"].as_u64(), Some(bytes));
    let summary = json_file(&run.join("summary.json"));
    assert_eq!(summary["status"], "stopped", "{summary}");
    assert_eq!(summary["steps"].as_u64(), Some(last_step));
    last_step
}

#[test]
fn sigterm_mid_epoch_checkpoints_and_resume_continues_the_curve() {
    let tmp = tempfile::tempdir().unwrap();
    let data = common::tiny_sample(tmp.path(), 3);

    let straight = tmp.path().join("straight");
    common::train_tiny(&data, &straight, 3);
    let expected = metrics(&straight);
    let steps_per_epoch = expected
        .iter()
        .filter(|l| l["split"] == "train" && l["epoch"] == 1)
        .count() as u64;
    assert!(steps_per_epoch >= 2, "a step inside an epoch to stop at");

    let stopped = tmp.path().join("stopped");
    let mut child = spawn_train(&tiny_args(&data, &stopped, 3, &[]));
    // Past the first epoch's checkpoint, inside the second epoch.
    wait_for_step(&stopped, steps_per_epoch, &mut child);
    let (code, seconds, stderr) = signal_and_wait(child, libc::SIGTERM);
    assert_eq!(code, Some(128 + libc::SIGTERM), "{stderr}");
    assert!(seconds < 10.0, "took {seconds:.1} s to stop:\n{stderr}");
    assert!(stderr.contains("SIGTERM: finishing this step"), "{stderr}");
    assert!(stderr.contains("stopped:"), "{stderr}");
    let at = assert_stopped_cleanly(&stopped);
    let state = json_file(&stopped.join("checkpoints/last/state.json"));
    if at < 3 * steps_per_epoch {
        assert_eq!(state["batch"].as_u64(), Some(at % steps_per_epoch));
    }

    ok(&[
        "train",
        "--resume",
        stopped.to_str().unwrap(),
        "--device",
        "cpu",
    ]);
    common::assert_same_curve(&expected, &metrics(&stopped));
    assert_eq!(
        json_file(&stopped.join("summary.json"))["status"],
        "completed"
    );
}

#[test]
fn sigint_and_sigusr1_stop_gracefully_too() {
    let tmp = tempfile::tempdir().unwrap();
    let data = common::tiny_sample(tmp.path(), 4);
    for (signal, name) in [(libc::SIGINT, "SIGINT"), (libc::SIGUSR1, "SIGUSR1")] {
        let run = tmp.path().join(name);
        let mut child = spawn_train(&tiny_args(&data, &run, 50, &[]));
        wait_for_step(&run, 2, &mut child);
        let (code, seconds, stderr) = signal_and_wait(child, signal);
        assert_eq!(code, Some(128 + signal), "{name}: {stderr}");
        assert!(seconds < 10.0, "{name}: took {seconds:.1} s:\n{stderr}");
        assert!(stderr.contains(&format!("{name}: finishing")), "{stderr}");
        assert_stopped_cleanly(&run);
    }
}

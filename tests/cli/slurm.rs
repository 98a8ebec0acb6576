//! `roadseg train --submit slurm`, `roadseg status` and `roadseg cancel` against a real
//! single-node Slurm started for the tests ([`services::slurm`]): a run goes queued -> running
//! -> completed (held, then released, so the queue is seen); a run with a hostile folder name
//! trains and runs nothing its name says; `scancel` mid-run leaves a checkpoint at the step it
//! stopped and `--resume --submit slurm` continues the same curve; a sweep is a job array.

use crate::common;

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::metric_lines;
use common::services::{self, follow_until, ok_with, status};
use serde_json::Value;

/// How long a tiny job may take from submission to its end on a busy two-core machine.
const LIMIT: Duration = Duration::from_secs(180);

fn env(
    slurm: &'static services::Slurm,
    delay_ms: Option<&'static str>,
) -> Vec<(&'static str, &'static OsStr)> {
    let mut env = vec![("SLURM_CONF", slurm.conf.as_os_str())];
    if let Some(ms) = delay_ms {
        env.push(("ROADSEG_TEST_STEP_DELAY_MS", OsStr::new(ms)));
    }
    env
}

/// `roadseg train` of a TINY model on `data` into `out`, submitted to Slurm with `extra`.
fn submit_args(data: &Path, out: &Path, epochs: u32, extra: &[&str]) -> Vec<String> {
    let mut flags = services::submit_flags("slurm");
    flags.push("--json".into());
    flags.extend(extra.iter().map(|s| s.to_string()));
    common::tiny_args(data, out, epochs, &common::refs(&flags))
}

fn json_file(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn a_held_run_goes_queued_running_completed_and_its_hostile_name_runs_nothing() {
    let Some(slurm) = services::slurm("slurm::a_held_run_goes_queued_running_completed") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let data = common::tiny_sample(tmp.path(), 11);
    let run = tmp.path().join("run 'q' $(touch PWNED) `touch PWNED`");
    let env = env(slurm, Some("300"));
    let args = submit_args(&data, &run, 2, &["--sbatch-arg=--hold"]);
    let out: Value = serde_json::from_str(&ok_with(&common::refs(&args), &env)).unwrap();
    let job_id = out["job_id"].as_str().unwrap().to_string();
    assert_eq!(out["run"], run.to_str().unwrap());
    assert!(job_id.bytes().all(|b| b.is_ascii_digit()), "{job_id}");

    // Held: queued, with Slurm's reason.
    let held = status(&run, &env);
    assert_eq!(held["engine"], "slurm");
    assert_eq!(held["state"], "queued", "{held}");
    assert!(held["detail"].as_str().unwrap().contains("Held"), "{held}");
    assert_eq!(held["progress"]["step"], 0);
    let job = json_file(&run.join("job.json"));
    assert_eq!(job["job_id"], job_id.as_str());
    assert_eq!(job["command"][0], "sbatch");
    assert!(run.join("job.sh").is_file() && run.join("labels").is_dir());

    let released = Command::new("scontrol")
        .args(["release", &job_id])
        .env("SLURM_CONF", &slurm.conf)
        .status()
        .unwrap();
    assert!(released.success());
    let (done, states) = follow_until(&run, &env, LIMIT, |a| {
        a["state"] == "completed" && a["progress"]["finished"] == "completed"
    });
    assert_eq!(states, ["queued", "running", "completed"], "{done}");
    assert_eq!(done["progress"]["epoch"], 2);
    assert_eq!(done["progress"]["step"], done["progress"]["total_steps"]);
    assert!(done["progress"]["best_mean_iou"].as_f64().is_some());
    let steps: Vec<u64> = metric_lines(&run)
        .iter()
        .filter(|l| l["split"] == "train")
        .map(|l| l["step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, (1..=steps.len() as u64).collect::<Vec<_>>());
    assert!(run.join("checkpoints/best/model.bpk").is_file());
    assert!(
        std::fs::read_to_string(run.join("train.log"))
            .unwrap()
            .contains("completed: 2 epochs")
    );
    // Nothing the folder's name says ran: not here, not in the job's working folder.
    for dir in [tmp.path(), &run, Path::new(".")] {
        assert!(!dir.join("PWNED").exists(), "{}", dir.display());
    }
}

#[test]
fn scancel_mid_run_checkpoints_and_a_resubmission_continues_the_curve() {
    let Some(slurm) = services::slurm("slurm::scancel_mid_run_checkpoints") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let data = common::tiny_sample(tmp.path(), 12);
    let (slow, fast) = (env(slurm, Some("600")), env(slurm, None));
    let cancelled = services::cancel_mid_run_then_resume(tmp.path(), &data, "slurm", &slow, &fast);
    assert!(cancelled.status["job_id"].is_string());
    // SIGTERM came from scancel, through Slurm.
    let log = std::fs::read_to_string(tmp.path().join("cancelled/train.log")).unwrap();
    assert!(log.contains("SIGTERM: finishing this step"), "{log}");
}

#[test]
fn a_sweep_is_a_job_array_of_runs_with_suffixes() {
    let Some(slurm) = services::slurm("slurm::a_sweep_is_a_job_array") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let data = common::tiny_sample(tmp.path(), 13);
    let base = tmp.path().join("sweep");
    let env = env(slurm, None);
    let out = ok_with(
        &common::refs(&submit_args(
            &data,
            &base,
            1,
            &["--sweep", "lr=0.003,0.001"],
        )),
        &env,
    );
    let rows: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(rows.len(), 2);
    let array = rows[0]["job_id"]
        .as_str()
        .unwrap()
        .split('_')
        .next()
        .unwrap()
        .to_string();
    for (i, (row, lr)) in rows.iter().zip([0.003, 0.001]).enumerate() {
        let run = Path::new(row["run"].as_str().unwrap()).to_path_buf();
        assert_eq!(run, tmp.path().join(format!("sweep-lr{lr}")));
        assert_eq!(row["job_id"], format!("{array}_{i}"));
        assert_eq!(json_file(&run.join("config.json"))["train"]["lr"], lr);
        follow_until(&run, &env, LIMIT, |a| {
            a["state"] == "completed" && a["progress"]["finished"] == "completed"
        });
        // The job trained with its own rate (the schedule never exceeds it).
        let top = metric_lines(&run)
            .iter()
            .filter_map(|l| l["lr"].as_f64())
            .fold(0.0, f64::max);
        assert!(top <= lr * 1.000_001 && top > lr / 10.0, "{top} for {lr}");
    }
    // One script for the array, picking each task's run.
    let script = std::fs::read_to_string(tmp.path().join("sweep-lr0.003/job.sh")).unwrap();
    assert!(script.contains("SLURM_ARRAY_TASK_ID") && script.contains("sweep-lr0.001"));
}

#[test]
fn status_and_cancel_of_a_run_without_a_job_say_so() {
    let tmp = tempfile::tempdir().unwrap();
    let data = common::tiny_sample(tmp.path(), 14);
    let run = tmp.path().join("local");
    common::train_tiny(&data, &run, 1);
    let out = common::ok(&["status", run.to_str().unwrap()]);
    assert!(
        out.contains("no job engine") && out.contains("epoch 1/1"),
        "{out}"
    );
    let err = common::fails(&["cancel", run.to_str().unwrap()]);
    assert!(err.contains("no job.json"), "{err}");
    // A damaged job.json is named, and nothing is asked of any engine.
    std::fs::write(
        run.join("job.json"),
        "{\"version\": 1, \"engine\": \"slurm\"",
    )
    .unwrap();
    let err = common::fails(&["status", run.to_str().unwrap()]);
    assert!(err.contains("job.json"), "{err}");
}

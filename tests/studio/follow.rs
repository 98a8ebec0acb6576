#![cfg(feature = "gui")]
//! Runs the studio follows rather than trains: a run written by another process (File > Open
//! run…) fills the curves and the progress bar live and ends idle with its summary, its best
//! checkpoint in the compare views; and with "Run on: Slurm" against the test cluster, Train
//! submits, the run is followed, Stop cancels it through Slurm (it checkpoints), and Runs >
//! Resume continues it as a new job with its curve intact.

use std::path::Path;
use std::process::{Command as Process, Stdio};
use std::time::Duration;

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use roadseg::core::device::DeviceChoice;
use roadseg::studio::Studio;
use roadseg::studio::app::Command;
use roadseg::studio::panels::run_on::Engine;
use roadseg::studio::panels::training::RunState;
use roadseg::studio::state::PersistedState;

use crate::common;
use crate::support::wait_for;

const TIMEOUT: Duration = Duration::from_secs(180);

fn harness(studio: Studio) -> Harness<'static, Studio> {
    let mut harness = Harness::builder()
        .with_size(egui::vec2(1280.0, 800.0))
        .wgpu()
        .build_ui_state(|ui, studio: &mut Studio| studio.ui(ui), studio);
    harness.run_steps(2);
    harness.state_mut().wait_for_image();
    harness.run_steps(2);
    harness
}

/// The panel's settings for a TINY run (as `common::TINY` on the command line).
fn tiny(studio: &mut Studio, epochs: usize) {
    studio.training.device = DeviceChoice::Cpu;
    let c = &mut studio.training.config;
    // Fixed, as the straight run beside it: nothing picked from a time budget.
    c.auto = None;
    c.epochs = epochs;
    c.batch_size = 4;
    c.size = [32, 24];
    c.num_workers = 1;
    c.model.depth = 2;
    c.model.base_width = 4;
}

#[test]
fn the_studio_follows_a_run_written_by_another_process() {
    let tmp = tempfile::tempdir().unwrap();
    let data = common::tiny_sample(tmp.path(), 31);
    let run = tmp.path().join("elsewhere");
    let mut child = Process::new(env!("CARGO_BIN_EXE_roadseg"))
        .args(common::tiny_args(&data, &run, 3, &[]))
        .env("ROADSEG_TEST_STEP_DELAY_MS", "300")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The other process prepares its run folder first.
    let ready = std::time::Instant::now();
    while !run.join("config.json").is_file() {
        assert!(
            ready.elapsed() < TIMEOUT,
            "the other process never wrote its config"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut harness = harness(Studio::new(PersistedState::default(), Some(data.clone())));
    harness.state_mut().push(Command::FollowRun(run.clone()));
    harness.run_steps(2);
    assert_eq!(
        harness.state().training.following.as_deref(),
        Some(run.as_path())
    );
    // Watched, not controlled: the panel stays free to train here.
    assert_eq!(harness.state().training.state, RunState::Idle);

    // Live: curve points arrive while the other process still trains.
    wait_for(&mut harness, "two logged steps", TIMEOUT, |s| {
        s.training.curves.train_loss.len() >= 2
    });
    assert!(
        child.try_wait().unwrap().is_none(),
        "followed before it ended"
    );
    let (fraction, text) = harness.state().training.progress_text();
    assert!(fraction > 0.0 && text.starts_with("epoch "), "{text}");
    harness.get_by_label_contains("followed (no job engine)");

    wait_for(&mut harness, "the run's end", TIMEOUT, |s| {
        s.training.last_summary.is_some()
    });
    assert!(child.wait().unwrap().success());
    let panel = &harness.state().training;
    assert_eq!(panel.state, RunState::Idle);
    let lines = common::metric_lines(&run);
    let train = lines.iter().filter(|l| l["split"] == "train").count();
    assert_eq!(panel.curves.train_loss.len(), train, "every step, once");
    assert_eq!(panel.curves.mean_iou.len(), 3);
    assert_eq!(panel.progress_text().0, 1.0);
    // The compare views use its best checkpoint.
    wait_for(&mut harness, "the run's model", TIMEOUT, |s| {
        s.model.loaded.as_ref().is_some_and(|m| m.run == run)
    });
}

/// The Slurm test runs in a child process of this test binary that gets SLURM_CONF from the
/// start: the studio submits from its own process, whose environment a running test cannot
/// change safely.
const CHILD: &str = "ROADSEG_STUDIO_SLURM_CHILD";

#[test]
fn train_on_slurm_from_the_studio_stop_and_resume() {
    if std::env::var_os(CHILD).is_some() {
        return slurm_from_the_studio(Path::new(&std::env::var_os(CHILD).unwrap()));
    }
    let Some(slurm) = common::services::slurm("follow::train_on_slurm_from_the_studio") else {
        return;
    };
    let out = Process::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "follow::train_on_slurm_from_the_studio_stop_and_resume",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, common::services::roadseg_for_jobs())
        .env("SLURM_CONF", &slurm.conf)
        .env("ROADSEG_TEST_STEP_DELAY_MS", "600")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("1 passed"), "{text}");
}

fn slurm_from_the_studio(roadseg: &Path) {
    let tmp = tempfile::tempdir().unwrap();
    let data = common::tiny_sample(tmp.path(), 32);
    let straight = tmp.path().join("straight");
    common::train_tiny(&data, &straight, 4);
    let expected = common::metric_lines(&straight);
    let steps_per_epoch = expected
        .iter()
        .filter(|l| l["split"] == "train" && l["epoch"] == 1)
        .count();

    let mut studio = Studio::new(PersistedState::default(), Some(data.clone()));
    studio.training.runs_root = Some(tmp.path().join("runs"));
    tiny(&mut studio, 4);
    let mut harness = harness(studio);
    // The program the job runs (the dataset's remembered choice was loaded with it).
    harness.state_mut().training.run_on.roadseg_bin = roadseg.to_str().unwrap().into();

    // Run on: Slurm, through the picker; the choice is remembered for this dataset.
    harness.get_by_label("Run on").click();
    harness.run_steps(2);
    harness.get_by_label("Slurm").click();
    harness.run_steps(2);
    assert_eq!(harness.state().training.run_on.engine, Engine::Slurm);
    assert_eq!(
        harness.state().state.prefs(&data).run_on.engine,
        Engine::Slurm
    );
    harness.get_by_label("Train").click();
    wait_for(&mut harness, "the submission", TIMEOUT, |s| {
        s.training.following.is_some()
    });
    let run = harness.state().training.following.clone().unwrap();
    assert!(run.join("job.json").is_file());
    let deadline = std::time::Instant::now() + TIMEOUT;
    while !harness
        .state()
        .training
        .progress
        .start
        .as_ref()
        .is_some_and(|start| start.device.contains(": running"))
    {
        let t = &harness.state().training;
        assert!(
            std::time::Instant::now() < deadline,
            "Slurm never ran it: {:?}; log {:?}",
            t.progress.start.as_ref().map(|s| &s.device),
            t.log
        );
        harness.step();
        std::thread::sleep(Duration::from_millis(10));
    }
    wait_for(&mut harness, "the second epoch", TIMEOUT, |s| {
        s.training.progress.step > steps_per_epoch
    });
    harness.get_by_label("Stop").click();
    wait_for(&mut harness, "the cancelled job", TIMEOUT, |s| {
        s.training.state == RunState::Idle
            && s.training
                .last_summary
                .as_ref()
                .is_some_and(|r| r.as_ref().is_ok_and(|s| s.status == "stopped"))
    });
    let device = harness
        .state()
        .training
        .progress
        .start
        .clone()
        .unwrap()
        .device;
    assert!(device.contains("cancelled"), "{device}");
    let at = common::last_train_step(&run);
    assert!(at > steps_per_epoch as u64 && at < 4 * steps_per_epoch as u64);

    // Runs > Resume: a new Slurm job continues the run, followed again.
    harness.state_mut().push(Command::RefreshRuns);
    harness.run_steps(2);
    harness.state_mut().push(Command::ResumeRun(run.clone()));
    wait_for(&mut harness, "the resumed run's end", TIMEOUT, |s| {
        s.training
            .last_summary
            .as_ref()
            .is_some_and(|r| r.as_ref().is_ok_and(|s| s.status == "completed"))
            && s.training.state == RunState::Idle
    });
    common::assert_same_curve(&expected, &common::metric_lines(&run));
    // What the panel drew is the whole curve, the stop included, once.
    let train = expected.iter().filter(|l| l["split"] == "train").count();
    assert_eq!(harness.state().training.curves.train_loss.len(), train);
}

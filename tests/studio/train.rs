#![cfg(feature = "gui")]
//! Training from the studio: click Train with a tiny configuration, see the first epoch's curve
//! point, the progress, what the time budget picked and a live prediction arrive while the UI
//! keeps running; Stop leaves a checkpoint.

use std::path::Path;
use std::time::Duration;

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use roadseg::core::dataset::sample::{SampleConfig, generate};
use roadseg::core::device::DeviceChoice;
use roadseg::core::train::budget::Auto;
use roadseg::studio::Studio;
use roadseg::studio::panels::training::RunState;
use roadseg::studio::state::PersistedState;

use crate::support::wait_for;

/// Training a tiny run from the window: generous for a loaded CI machine.
const TIMEOUT: Duration = Duration::from_secs(120);

#[test]
fn train_from_the_window_then_stop() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let cfg = SampleConfig {
        count: 8,
        seed: 4,
        width: 64,
        height: 48,
        ..Default::default()
    };
    generate(&data, &cfg).unwrap();
    let mut studio = Studio::new(PersistedState::default(), Some(data.clone()));
    studio.training.runs_root = Some(tmp.path().join("runs"));
    studio.training.device = DeviceChoice::Cpu;
    let c = &mut studio.training.config;
    // A tiny model; its input size picked from a ten-second budget, the studio's least (64x48,
    // the images' own: none larger exists).
    c.auto = Some(Auto {
        budget_secs: Some(10.0),
        epochs: false,
        size: true,
        width: false,
    });
    c.epochs = 500;
    c.batch_size = 2;
    c.num_workers = 1;
    c.model.depth = 2;
    c.model.base_width = 4;
    let mut harness = Harness::builder()
        .with_size(egui::vec2(1200.0, 800.0))
        .wgpu()
        .build_ui_state(|ui, studio: &mut Studio| studio.ui(ui), studio);
    harness.run_steps(2);
    harness.state_mut().wait_for_image();
    harness.run_steps(2);

    // The hyper-parameters open (and pass kittest's accessibility check).
    harness.get_by_label("Hyper-parameters").click();
    harness.run_steps(2);
    harness.get_by_label("Train").click();
    harness.run_steps(1);
    wait_for(&mut harness, "the first epoch", TIMEOUT, |s| {
        !s.training.curves.mean_iou.is_empty()
    });
    let panel = &harness.state().training;
    assert_eq!(panel.state, RunState::Running);
    assert!(panel.progress.step > 0);
    assert!(!panel.curves.train_loss.is_empty());
    let (fraction, text) = panel.progress_text();
    assert!(fraction > 0.0 && text.contains("epoch"), "{text}");
    // The panel says what the budget picked, and why.
    harness.get_by_label_contains("budget 10 s picked the input size: input 64x48");
    // The status bar shows the process's memory while the run trains.
    let bytes = harness.state().memory.expect("memory while training").1;
    assert!(bytes > 1 << 20, "{bytes} bytes resident");
    harness.get_by_label_contains("memory ");
    wait_for(&mut harness, "a live prediction", TIMEOUT, |s| {
        s.canvas.has_prediction()
    });

    harness.get_by_label("Stop").click();
    wait_for(&mut harness, "the run to stop", TIMEOUT, |s| {
        s.training.state == RunState::Idle
    });
    harness.run_steps(2);
    assert!(
        harness.state().memory.is_none(),
        "memory only while training"
    );
    assert!(harness.query_by_label_contains("memory ").is_none());
    let run = harness.state().training.run_dir.clone().unwrap();
    assert!(run.starts_with(tmp.path().join("runs")));
    assert!(run.join("checkpoints/last/model.bpk").is_file());
    let summary = harness
        .state()
        .training
        .last_summary
        .clone()
        .unwrap()
        .unwrap();
    assert_eq!(summary.status, "stopped");
    // The line under the buttons was this run's from its start, and the Runs list marks it.
    let name = run.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        harness
            .state()
            .training
            .log
            .iter()
            .any(|l| *l == format!("training {name}"))
    );
    // The controls scroll inside the panel (Hyper-parameters is open): the user scrolls to
    // Runs, opens it and scrolls on to the run.
    harness.get_by_label("Runs").scroll_to_me();
    // Past the scroll's animation.
    harness.run_steps(30);
    harness.get_by_label("Runs").click();
    harness.run_steps(2);
    let over = harness.get_by_label("Runs").rect().center();
    crate::support::scroll_to_label(&mut harness, over, &format!("{name} (open)"));
    assert!(
        !Path::new(&data).join("runs").exists(),
        "the dataset folder gets no runs"
    );
}

#![cfg(feature = "gui")]
//! The studio when things go wrong around it:
//! - painting while the disk is full (the fault-injection point in the save path; root ignores
//!   permissions, so a read-only folder cannot stand in): the status line says so, the file on
//!   disk is untouched, the strokes stay in memory when the user moves on and come back with
//!   the image, and they are written once the disk takes them again;
//! - broken run folders in the Runs list: shown as broken, with the reason.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use egui::{Key, Modifiers};
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use roadseg::core::dataset::sample::{SampleConfig, generate};
use roadseg::core::fault::fail_writes_under;
use roadseg::core::mask::Mask;
use roadseg::core::paint::unsaved::RETRY_INTERVAL;
use roadseg::studio::Studio;
use roadseg::studio::canvas::Tool;
use roadseg::studio::state::PersistedState;

use crate::support::settle;

fn data(dir: &Path) -> PathBuf {
    let data = dir.join("data");
    let cfg = SampleConfig {
        count: 3,
        seed: 11,
        width: 96,
        height: 64,
        ..Default::default()
    };
    generate(&data, &cfg).unwrap();
    data
}

/// A horizontal brush stroke at row `y` (in image pixels).
fn stroke(harness: &mut Harness<'_, Studio>, y: f32) {
    let at = |h: &Harness<'_, Studio>, x: f32| h.state().canvas.image_to_screen([x, y]);
    harness.drag_at(at(harness, 10.0));
    harness.step();
    harness.hover_at(at(harness, 50.0));
    harness.step();
    harness.drop_at(at(harness, 80.0));
    harness.run_steps(2);
}

fn canvas_mask(harness: &Harness<'_, Studio>) -> Mask {
    harness
        .state()
        .canvas
        .document
        .as_ref()
        .unwrap()
        .mask()
        .clone()
}

fn disk_mask(path: &Path) -> Mask {
    Mask::from_gray_image(roadseg::core::dataset::image_io::read_index(path).unwrap())
}

fn message(harness: &Harness<'_, Studio>) -> (String, bool) {
    harness.state().message.clone().expect("a status message")
}

#[test]
fn a_full_disk_keeps_the_strokes_and_saves_them_later() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data(tmp.path());
    let mut harness = Harness::builder()
        .with_size(egui::vec2(1000.0, 700.0))
        .wgpu()
        .build_ui_state(
            |ui, studio: &mut Studio| studio.ui(ui),
            Studio::new(PersistedState::default(), Some(data.clone())),
        );
    settle(&mut harness);
    harness.state_mut().state.tool = Tool::Brush;
    harness.state_mut().state.brush_radius = 2.0;
    let first = data.join("masks/road_0000.png");
    let second = data.join("masks/road_0001.png");
    let before = [
        std::fs::read(&first).unwrap(),
        std::fs::read(&second).unwrap(),
    ];

    let full = fail_writes_under(data.join("masks"));
    stroke(&mut harness, 20.0);
    let painted_first = canvas_mask(&harness);
    harness.key_press_modifiers(Modifiers::COMMAND, Key::S);
    harness.run_steps(2);
    let (text, is_error) = message(&harness);
    assert!(
        is_error && text.contains("road_0000.png") && text.contains("No space left"),
        "{text}"
    );
    assert!(text.contains("kept"), "{text}");
    assert_eq!(
        std::fs::read(&first).unwrap(),
        before[0],
        "old mask untouched"
    );

    // Moving on: the save on the way fails too; the strokes are kept, not dropped.
    harness.key_press(Key::PageDown);
    settle(&mut harness);
    assert_eq!(harness.state().selected_name(), Some("road_0001"));
    assert_eq!(harness.state().unsaved.len(), 1);
    stroke(&mut harness, 40.0);
    let painted_second = canvas_mask(&harness);
    // And back: the kept strokes come back with the image, not the older file.
    harness.key_press(Key::PageUp);
    settle(&mut harness);
    assert_eq!(harness.state().selected_name(), Some("road_0000"));
    assert_eq!(canvas_mask(&harness), painted_first);
    assert_eq!(harness.state().unsaved.len(), 1, "road_0001's strokes");
    assert_eq!(std::fs::read(&second).unwrap(), before[1]);
    assert!(
        !std::fs::read_dir(data.join("masks")).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".tmp")),
        "no temp files left"
    );

    // The disk has room again: the timed retry writes the kept mask, autosave the open one.
    drop(full);
    let deadline = Instant::now() + RETRY_INTERVAL * 3 + Duration::from_secs(5);
    while !harness.state().unsaved.is_empty() {
        assert!(Instant::now() < deadline, "the kept mask was never retried");
        harness.step();
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(disk_mask(&second), painted_second);
    let (text, is_error) = message(&harness);
    assert!(!is_error && text.contains("saved"), "{text}");
    harness.key_press_modifiers(Modifiers::COMMAND, Key::S);
    harness.run_steps(2);
    assert_eq!(disk_mask(&first), painted_first);
}

/// A tiny trained run in `runs/data/run-1`, and two damaged copies beside it.
fn runs_with_broken_copies(tmp: &Path, data: &Path) -> PathBuf {
    use roadseg::core::device::DeviceChoice;
    use roadseg::core::train::config::TrainConfig;
    use roadseg::core::train::control::Control;
    use roadseg::core::train::trainer::{DataSpec, TrainOptions, TrainStart, train};
    let runs = tmp.join("runs");
    let folder = runs.join("data");
    let mut config = TrainConfig {
        epochs: 1,
        batch_size: 2,
        size: [32, 24],
        num_workers: 1,
        auto: None,
        ..TrainConfig::default()
    };
    config.model.depth = 1;
    config.model.base_width = 2;
    let start = TrainStart::New {
        data: DataSpec {
            root: data.to_path_buf(),
            format: None,
        },
        config: Box::new(config),
        out: folder.join("run-1"),
    };
    let options = TrainOptions {
        device: DeviceChoice::Cpu,
        ..Default::default()
    };
    train(start, &options, &mut |_| {}, &Control::default()).unwrap();
    for copy in ["run-2", "run-3"] {
        let status = std::process::Command::new("cp")
            .arg("-r")
            .arg(folder.join("run-1"))
            .arg(folder.join(copy))
            .status()
            .unwrap();
        assert!(status.success());
    }
    std::fs::write(folder.join("run-2/config.json"), "{\"model\": [1, 2").unwrap();
    let weights = folder.join("run-3/checkpoints/best/model.bpk");
    let bytes = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &bytes[..bytes.len() / 2]).unwrap();
    runs
}

#[test]
fn broken_runs_are_listed_as_broken_with_the_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data(tmp.path());
    let runs = runs_with_broken_copies(tmp.path(), &data);
    let mut studio = Studio::new(PersistedState::default(), Some(data.clone()));
    studio.training.runs_root = Some(runs);
    let mut harness = Harness::builder()
        .with_size(egui::vec2(1200.0, 900.0))
        .wgpu()
        .build_ui_state(|ui, studio: &mut Studio| studio.ui(ui), studio);
    settle(&mut harness);
    let rows = harness.state().training.runs.clone();
    let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["run-1", "run-2", "run-3"]);
    assert_eq!(rows[0].broken, None);
    let reason = rows[1].broken.clone().expect("garbage config.json");
    assert!(reason.contains("config.json"), "{reason}");
    let reason = rows[2].broken.clone().expect("truncated weights");
    assert!(reason.contains("best/model.bpk"), "{reason}");

    // The Runs section is below the training controls, which scroll.
    let over = harness.get_by_label("Quick").rect().center();
    // Above the status bar at the window's bottom (from y = 866 in a 900 px window).
    crate::support::scroll_until(&mut harness, over, "the whole Runs header", |h| {
        h.get_by_label("Runs").rect().max.y < 866.0
    });
    harness.get_by_label("Runs").click();
    harness.run_steps(2);
    let over = harness.get_by_label("Runs").rect().center();
    crate::support::scroll_until(&mut harness, over, "both broken rows", |h| {
        h.query_all_by_label_contains("broken: ").count() >= 2
    });
    let shown = harness.query_all_by_label_contains("broken: ").count();
    assert_eq!(shown, 2, "two rows say they are broken");
    assert_eq!(
        harness
            .query_all_by_label_contains("best/model.bpk: could not load")
            .count(),
        1,
        "the reason is on screen"
    );
}

/// CamVid's 31 train classes (class_dict.csv without Void).
const CAMVID: [&str; 31] = [
    "Animal",
    "Archway",
    "Bicyclist",
    "Bridge",
    "Building",
    "Car",
    "CartLuggagePram",
    "Child",
    "Column_Pole",
    "Fence",
    "LaneMkgsDriv",
    "LaneMkgsNonDriv",
    "Misc_Text",
    "MotorcycleScooter",
    "OtherMoving",
    "ParkingBlock",
    "Pedestrian",
    "Road",
    "RoadShoulder",
    "Sidewalk",
    "SignSymbol",
    "Sky",
    "SUVPickupTruck",
    "TrafficCone",
    "TrafficLight",
    "Train",
    "Tree",
    "Truck_Bus",
    "Tunnel",
    "VegetationMisc",
    "Wall",
];

#[test]
fn the_iou_legend_of_31_classes_shows_the_mean_and_the_worst_few() {
    use roadseg::core::train::run_dir::{ClassIou, MetricRecord};
    use roadseg::core::train::worker::WorkerEvent;
    let tmp = tempfile::tempdir().unwrap();
    let data = data(tmp.path());
    let mut studio = Studio::new(PersistedState::default(), Some(data));
    for step in 1..=3 {
        let record = MetricRecord {
            split: "val".into(),
            epoch: step,
            step: step * 10,
            loss: 1.0,
            lr: 1e-3,
            elapsed_secs: step as f64,
            images_per_sec: None,
            pixel_accuracy: Some(0.8),
            mean_iou: Some(0.5),
            mean_f1: Some(0.6),
            // Pedestrian, Child, Animal and Tunnel are the four worst at the last epoch.
            classes: Some(
                CAMVID
                    .iter()
                    .enumerate()
                    .map(|(id, name)| ClassIou {
                        id,
                        name: name.to_string(),
                        iou: Some(match *name {
                            "Pedestrian" => 0.01,
                            "Child" => 0.02,
                            "Animal" => 0.03,
                            "Tunnel" => 0.04,
                            _ => 0.3 + id as f64 / 100.0,
                        }),
                    })
                    .collect(),
            ),
            boundary_f1: None,
        };
        studio.training.on_event(&WorkerEvent::Train(
            roadseg::core::train::trainer::TrainEvent::Validation(record),
        ));
    }
    let mut harness = Harness::builder()
        .with_size(egui::vec2(1400.0, 900.0))
        .wgpu()
        .build_ui_state(|ui, studio: &mut Studio| studio.ui(ui), studio);
    settle(&mut harness);
    // ("Train" is also the button's label: any node with the name counts.)
    let legend_has =
        |h: &Harness<'_, Studio>, name: &str| h.query_all_by_label(name).next().is_some();
    for name in ["mIoU", "Pedestrian", "Child", "Animal", "Tunnel"] {
        assert!(legend_has(&harness, name), "{name} is in the legend");
    }
    for name in ["Road", "Sky", "Wall", "Car"] {
        assert!(!legend_has(&harness, name), "{name} is not in the legend");
    }
    assert!(
        harness
            .query_by_label_contains("mIoU + 4 worst of 31")
            .is_some()
    );
    // The filter brings any class back by name; "all" brings every one.
    harness.state_mut().training.iou_classes.filter = "road".into();
    harness.run_steps(2);
    assert!(legend_has(&harness, "Road") && legend_has(&harness, "RoadShoulder"));
    assert!(!legend_has(&harness, "Pedestrian"));
    harness.state_mut().training.iou_classes.filter.clear();
    harness.state_mut().training.iou_classes.show_all = true;
    harness.run_steps(2);
    assert!(CAMVID.iter().all(|name| legend_has(&harness, name)));
}

#![cfg(feature = "gui")]
//! Comparing predictions with ground truth in the studio, driven like a user would (egui_kittest,
//! the canvas drawn by our wgpu overlay shader on lavapipe): view modes by key and button,
//! blink, the split divider, the Errors table opening an image in the difference view, active
//! learning, accepting a prediction by component and undoing it; bad `--model`/`--image` in the
//! status line; no display; and the README's screenshots.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use egui::Key;
use egui_kittest::kittest::Queryable;
use egui_kittest::wgpu::{WgpuTestRenderer, create_render_state, default_wgpu_setup};
use egui_kittest::{Harness, SnapshotOptions};
use roadseg::core::analysis::worker::Scope;
use roadseg::core::dataset::IGNORE;
use roadseg::core::dataset::sample::{SampleConfig, generate};
use roadseg::core::device::DeviceChoice;
use roadseg::core::mask::Mask;
use roadseg::studio::app::Command as StudioCommand;
use roadseg::studio::canvas::Tool;
use roadseg::studio::compare::ViewMode;
use roadseg::studio::panels::dataset::Order;
use roadseg::studio::state::PersistedState;
use roadseg::studio::{StartOptions, Studio};

use crate::common::{roadseg, train_tiny};
use crate::support::mask;

/// 8 procedural scenes at 64x48 and a tiny model trained on them for 2 epochs; then the
/// masks of road_0006 and road_0007 are removed, leaving two unlabelled images.
fn sample_and_run(dir: &Path) -> (PathBuf, PathBuf) {
    let data = dir.join("data");
    generate(
        &data,
        &SampleConfig {
            count: 8,
            seed: 5,
            width: 64,
            height: 48,
            ..Default::default()
        },
    )
    .unwrap();
    let run = dir.join("run");
    train_tiny(&data, &run, 2);
    for name in ["road_0006", "road_0007"] {
        std::fs::remove_file(data.join(format!("masks/{name}.png"))).unwrap();
    }
    (data, run)
}

/// Issue 22, item 6: the Errors tab, its analysis shown, fits under the canvas at this size and
/// at the two common ones (its header, the side column's titles and button were cut off at
/// 1280x800, the split picker at 1366x768); the window is left at 1200x800.
fn errors_tab_fits(harness: &mut Harness<'_, Studio>) {
    for size in [(1200.0, 800.0), (1280.0, 800.0), (1366.0, 768.0)] {
        harness.set_size(egui::vec2(size.0, size.1));
        harness.run_steps(3);
        let right = harness.state().canvas.rect().max.x;
        for text in [
            "all labelled images",
            "Recompute",
            "IoU per class",
            "Confusion (rows: truth, columns: prediction)",
            "Most uncertain unlabelled images",
            "Label next most uncertain",
            "wrong px",
        ] {
            let rect = harness.get_by_label(text).rect();
            assert!(
                rect.max.x <= right + 1.0,
                "{size:?}: {text:?} ends at {} past the panel's edge at {right}",
                rect.max.x
            );
        }
        // The table's last column is seen whole, left of the class bars.
        let table_end = harness.get_by_label("wrong px").rect().max.x;
        let side = harness.get_by_label("IoU per class").rect().min.x;
        assert!(
            table_end < side,
            "{size:?}: the table is cut ({table_end} vs {side})"
        );
    }
    harness.set_size(egui::vec2(1200.0, 800.0));
    harness.run_steps(3);
}

/// A harness whose canvas is drawn by the overlay shader.
fn harness(mut studio: Studio, size: egui::Vec2) -> Harness<'static, Studio> {
    let render_state = create_render_state(
        default_wgpu_setup(),
        eframe::egui_wgpu::RendererOptions::PREDICTABLE,
    );
    studio.use_gpu_overlay(&render_state);
    studio.training.device = DeviceChoice::Cpu;
    let mut harness = Harness::builder()
        .with_size(size)
        .renderer(WgpuTestRenderer::from_render_state(render_state))
        .build_ui_state(|ui, studio: &mut Studio| studio.ui(ui), studio);
    harness.run_steps(2);
    harness.state_mut().wait_for_image();
    harness.run_steps(2);
    harness
}

fn wait_for(harness: &mut Harness<'_, Studio>, what: &str, done: impl Fn(&Studio) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !done(harness.state()) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        harness.step();
        harness.state_mut().wait_for_image();
        std::thread::sleep(Duration::from_millis(10));
    }
    harness.run_steps(1);
}

#[test]
fn compare_views_errors_table_and_model_assisted_labelling() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, run) = sample_and_run(tmp.path());
    let mut studio = Studio::with_options(
        PersistedState::default(),
        StartOptions {
            dir: Some(data.clone()),
            model: Some(run.clone()),
            image: Some("road_0002".into()),
            view: Some(ViewMode::Difference),
        },
    );
    studio.errors.scope = Scope::AllLabelled;
    let mut harness = harness(studio, egui::vec2(1200.0, 800.0));
    assert!(harness.state().canvas.uses_gpu());
    assert_eq!(harness.state().selected_name(), Some("road_0002"));
    // --model shows the run's curves, as Runs > Open does (issue 21).
    let training = &harness.state().training;
    assert_eq!(training.run_dir.as_deref(), Some(run.as_path()));
    assert!(!training.curves.train_loss.is_empty() && !training.curves.mean_iou.is_empty());
    wait_for(&mut harness, "the run's prediction", |s| {
        s.canvas.has_prediction()
    });
    assert_eq!(harness.state().state.view, ViewMode::Difference);
    harness.render().expect("the overlay renders");

    // The status bar times the model on this image.
    let (tag, seconds) = harness.state().inference.expect("a timed prediction");
    assert_eq!(Some(tag), harness.state().selected.map(|s| s as u64));
    assert!(seconds > 0.0);
    harness.get_by_label(&format!("inference {:.0} ms", seconds * 1000.0));

    // File > Export model... (the save dialog answered): an ONNX file, said in the status line.
    harness.get_by_label("File").click();
    harness.run_steps(2);
    harness.get_by_label("Export model...");
    harness.key_press(Key::Escape);
    harness.run_steps(1);
    let onnx = tmp.path().join("exported.onnx");
    harness
        .state_mut()
        .push(StudioCommand::ExportModel(onnx.clone()));
    wait_for(&mut harness, "the export", |s| {
        s.export.is_none()
            && s.message
                .as_ref()
                .is_some_and(|(t, _)| t.contains("export"))
    });
    let (text, is_error) = harness.state().message.clone().unwrap();
    assert!(!is_error && text.contains("exported"), "{text}");
    let bytes = std::fs::read(&onnx).unwrap();
    assert!(bytes.windows(6).any(|w| w == b"Resize"), "an ONNX graph");
    // A path that cannot be written: an error in the status line, no crash.
    harness
        .state_mut()
        .push(StudioCommand::ExportModel(onnx.join("inside-a-file.onnx")));
    wait_for(&mut harness, "the failed export", |s| {
        s.export.is_none() && s.message.as_ref().is_some_and(|(_, e)| *e)
    });
    let (text, _) = harness.state().message.clone().unwrap();
    assert!(text.contains("could not write"), "{text}");

    // Modes by key, blink while B is held, and by button.
    for (key, mode) in [
        (Key::G, ViewMode::Truth),
        (Key::P, ViewMode::Prediction),
        (Key::C, ViewMode::Confidence),
        (Key::I, ViewMode::Image),
        (Key::S, ViewMode::Split),
        (Key::D, ViewMode::Difference),
    ] {
        harness.key_press(key);
        harness.run_steps(1);
        assert_eq!(harness.state().state.view, mode, "key {key:?}");
    }
    harness.key_press(Key::G);
    harness.run_steps(1);
    harness.key_down(Key::B);
    harness.run_steps(1);
    assert_eq!(
        harness.state().shown_view(),
        ViewMode::Prediction,
        "blink shows the prediction"
    );
    harness.key_up(Key::B);
    harness.run_steps(1);
    assert_eq!(harness.state().shown_view(), ViewMode::Truth);
    harness.get_by_label("Confidence").click();
    harness.run_steps(2);
    assert_eq!(harness.state().state.view, ViewMode::Confidence);
    harness.render().expect("the confidence view renders");

    // Split view: drag the divider from the middle to a quarter; painting does not happen.
    harness.get_by_label("Split").click();
    harness.run_steps(2);
    let before = mask(&harness);
    let rect = harness.state().canvas.rect();
    let y = rect.center().y;
    let from = egui::pos2(harness.state().canvas.divider_screen_x(0.5), y);
    let to = egui::pos2(rect.min.x + rect.width() * 0.25, y);
    harness.hover_at(from);
    harness.step();
    harness.drag_at(from);
    harness.step();
    for t in [0.3, 0.6, 1.0] {
        harness.hover_at(from + (to - from) * t);
        harness.step();
    }
    harness.drop_at(to);
    harness.run_steps(2);
    let divider = harness.state().state.divider;
    assert!((divider - 0.25).abs() < 0.02, "divider at {divider}");
    assert_eq!(
        mask(&harness),
        before,
        "dragging the divider paints nothing"
    );
    harness.render().expect("the split view renders");

    // The Errors panel: the table arrives from the background worker, a row opens its image in
    // the difference view.
    harness.get_by_label("Errors").click();
    wait_for(&mut harness, "the error analysis", |s| {
        s.analysis_key().and_then(|k| s.errors.result(&k)).is_some()
    });
    let analysis = {
        let s = harness.state();
        s.errors.result(&s.analysis_key().unwrap()).unwrap()
    };
    assert_eq!(analysis.images.len(), 6, "the six labelled images");
    assert!(
        analysis
            .images
            .windows(2)
            .all(|w| w[0].mean_iou <= w[1].mean_iou),
        "worst first"
    );
    let total: u64 = analysis.images.iter().map(|i| i.labelled_pixels).sum();
    assert_eq!(analysis.confusion.total(), total);
    errors_tab_fits(&mut harness);
    let row = analysis
        .images
        .iter()
        .find(|i| i.name != "road_0002")
        .unwrap()
        .name
        .clone();
    harness.key_press(Key::G);
    harness.run_steps(1);
    harness.get_by_label(&row).click();
    harness.run_steps(2);
    wait_for(&mut harness, "the row's image", |s| {
        s.selected_name() == Some(row.as_str())
    });
    assert_eq!(harness.state().state.view, ViewMode::Difference);
    wait_for(&mut harness, "its prediction", |s| {
        s.canvas.has_prediction()
    });

    // Active learning: the two unlabelled images, most uncertain first; the dataset panel
    // sorts by it; "Label next most uncertain" opens the first.
    let ranked: Vec<String> = analysis.uncertain.iter().map(|u| u.name.clone()).collect();
    let mut unlabelled = ranked.clone();
    unlabelled.sort();
    assert_eq!(unlabelled, ["road_0006", "road_0007"]);
    assert!(analysis.uncertain[0].mean_entropy >= analysis.uncertain[1].mean_entropy);
    harness.state_mut().dataset_panel.order = Order::Uncertainty;
    let visible = {
        let s = harness.state();
        s.dataset_panel
            .visible(s.session.as_ref().unwrap(), None)
            .into_iter()
            .map(|i| s.session.as_ref().unwrap().entries[i].name.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(visible[..2], ranked[..]);
    harness.get_by_label("Label next most uncertain").click();
    harness.run_steps(2);
    wait_for(&mut harness, "the most uncertain image", |s| {
        s.selected_name() == Some(ranked[0].as_str())
    });
    wait_for(&mut harness, "its prediction", |s| {
        s.canvas.has_prediction()
    });

    // Accept the predicted region under a click (all confidences), then undo it.
    let blank = mask(&harness);
    assert!(
        blank.data.iter().all(|&v| v == IGNORE),
        "an unlabelled image"
    );
    {
        let state = &mut harness.state_mut().state;
        state.tool = Tool::AcceptRegion;
        state.accept_threshold = 0.0;
    }
    harness.key_press(Key::G);
    harness.run_steps(1);
    let (x, y) = (32u32, 40u32);
    let pos = harness
        .state()
        .canvas
        .image_to_screen([x as f32 + 0.5, y as f32 + 0.5]);
    harness.hover_at(pos);
    harness.step();
    harness.drag_at(pos);
    harness.step();
    harness.drop_at(pos);
    harness.run_steps(2);
    let accepted = mask(&harness);
    let prediction = harness.state().canvas.prediction().unwrap().ids.clone();
    let class = prediction.get(x, y);
    assert_eq!(
        accepted.get(x, y),
        class,
        "the clicked pixel takes its predicted class"
    );
    let changed: Vec<usize> = (0..accepted.data.len())
        .filter(|&i| accepted.data[i] != IGNORE)
        .collect();
    assert!(
        changed.iter().all(|&i| prediction.data[i] == class),
        "one class only"
    );
    assert!(changed.len() < accepted.data.len() || prediction.data.iter().all(|&v| v == class));
    // Connected: every accepted pixel reaches the clicked one through accepted pixels.
    let mut seen = vec![false; accepted.data.len()];
    let mut stack = vec![(y * 64 + x) as usize];
    while let Some(i) = stack.pop() {
        if seen[i] || accepted.data[i] == IGNORE {
            continue;
        }
        seen[i] = true;
        let (px, py) = (i % 64, i / 64);
        if px > 0 {
            stack.push(i - 1)
        }
        if px < 63 {
            stack.push(i + 1)
        }
        if py > 0 {
            stack.push(i - 64)
        }
        if py < 47 {
            stack.push(i + 64)
        }
    }
    assert!(changed.iter().all(|&i| seen[i]), "one connected component");
    // The whole component: no neighbour of it with the same predicted class was left out.
    for &i in &changed {
        let (px, py) = (i % 64, i / 64);
        for (nx, ny) in [
            (px.wrapping_sub(1), py),
            (px + 1, py),
            (px, py.wrapping_sub(1)),
            (px, py + 1),
        ] {
            if nx < 64 && ny < 48 && prediction.data[ny * 64 + nx] == class {
                assert_ne!(
                    accepted.data[ny * 64 + nx],
                    IGNORE,
                    "({nx}, {ny}) belongs to the component"
                );
            }
        }
    }
    let doc = harness.state().canvas.document.as_ref().unwrap();
    assert_eq!(doc.history().undo_steps(), 1, "one undo step");
    assert!(doc.is_modified(), "marked for autosave");
    harness.key_press_modifiers(egui::Modifiers::COMMAND, Key::Z);
    harness.run_steps(2);
    assert_eq!(mask(&harness), blank, "undone");
    harness.render().expect("the overlay renders after undo");
}

#[test]
fn a_bad_run_or_image_is_a_message_not_a_crash() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    generate(
        &data,
        &SampleConfig {
            count: 2,
            seed: 1,
            width: 32,
            height: 24,
            ..Default::default()
        },
    )
    .unwrap();
    let open = |model: Option<PathBuf>, image: Option<&str>| {
        let studio = Studio::with_options(
            PersistedState::default(),
            StartOptions {
                dir: Some(data.clone()),
                model,
                image: image.map(str::to_string),
                view: Some(ViewMode::Difference),
            },
        );
        harness(studio, egui::vec2(900.0, 600.0))
    };
    let message = |h: &Harness<'_, Studio>| h.state().message.clone().expect("a message");

    let h = open(None, Some("no_such_image"));
    let (text, is_error) = message(&h);
    assert!(
        is_error && text.contains("no image named \"no_such_image\""),
        "{text}"
    );

    let h = open(Some(tmp.path().join("not-a-run")), None);
    let (text, is_error) = message(&h);
    assert!(is_error && text.contains("not a roadseg run"), "{text}");

    // A run folder without weights: refused by the worker, said in the status line.
    let empty_run = tmp.path().join("empty-run");
    std::fs::create_dir_all(&empty_run).unwrap();
    let trained = roadseg(&[
        "train",
        "--data",
        data.to_str().unwrap(),
        "--out",
        empty_run.to_str().unwrap(),
        "--epochs",
        "1",
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
    assert!(
        trained.status.success(),
        "{}",
        String::from_utf8_lossy(&trained.stderr)
    );
    std::fs::remove_dir_all(empty_run.join("checkpoints")).unwrap();
    let mut h = open(Some(empty_run), None);
    wait_for(&mut h, "the load to fail", |s| {
        s.message
            .as_ref()
            .is_some_and(|(t, _)| t.contains("could not open the run"))
    });
    let (text, is_error) = message(&h);
    assert!(is_error && text.contains("no checkpoint"), "{text}");
    // Still usable.
    assert_eq!(h.state().selected_name(), Some("road_0000"));
}

#[test]
fn without_a_display_the_studio_says_so_and_points_to_the_headless_commands() {
    for args in [&[][..], &["studio"][..]] {
        let out = Command::new(env!("CARGO_BIN_EXE_roadseg"))
            .args(args)
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY")
            .env(
                "ROADSEG_DATA_DIR",
                std::env::temp_dir().join("roadseg-test-data"),
            )
            .output()
            .unwrap();
        assert!(
            !out.status.success(),
            "roadseg {args:?} must fail without a display"
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("no display found"), "{err}");
        assert!(
            err.contains("DISPLAY") && err.contains("WAYLAND_DISPLAY"),
            "{err}"
        );
        assert!(
            err.contains("roadseg train") && err.contains("predict"),
            "{err}"
        );
        assert!(!err.contains("EventLoop"), "no winit jargon: {err}");
    }
}

/// The README's screenshots, written to `assets/screenshots/` (UPDATE_SNAPSHOTS=1 rewrites
/// them): labelling, training curves of the default run on the bundled sample, and the
/// difference view of that run's prediction. Both fixtures under `tests/fixtures/` come from
/// a real `roadseg train` on the bundled sample: metrics.jsonl as written, and the best
/// checkpoint's prediction and confidence for road_0001 of this 160x120 sample (frozen, so the
/// pictures do not depend on the CPU's float rounding).
#[test]
fn readme_screenshots() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    generate(
        &data,
        &SampleConfig {
            count: 4,
            seed: 9,
            width: 160,
            height: 120,
            ..Default::default()
        },
    )
    .unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut studio = Studio::new(PersistedState::default(), Some(data.clone()));
    studio.training.curves =
        roadseg::studio::panels::training::Curves::load(&fixtures.join("run-sample")).unwrap();
    let mut harness = harness(studio, egui::vec2(1280.0, 800.0));
    harness
        .state_mut()
        .push(roadseg::studio::app::Command::SelectByName(
            "road_0001".into(),
        ));
    harness.run_steps(2);
    harness.state_mut().wait_for_image();
    harness.run_steps(2);
    harness.state_mut().wait_for_thumbnails();
    harness.state_mut().message = None;
    harness.remove_cursor();
    let options = SnapshotOptions::new()
        .output_path(Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/screenshots"))
        .max_failed_pixels(400);
    // Labelling: the canvas as large as it gets.
    harness.state_mut().state.show_training = false;
    harness.run_steps(2);
    harness.snapshot_options("labelling", &options);
    // Training curves: the panel under the canvas dragged taller, as a user would.
    harness.state_mut().state.show_training = true;
    harness.run_steps(2);
    let edge = harness.state().canvas.rect().max.y + 1.0;
    let x = harness.state().canvas.rect().center().x;
    harness.hover_at(egui::pos2(x, edge));
    harness.step();
    harness.drag_at(egui::pos2(x, edge));
    harness.step();
    harness.hover_at(egui::pos2(x, edge - 100.0));
    harness.step();
    harness.drop_at(egui::pos2(x, edge - 160.0));
    harness.remove_cursor();
    harness.run_steps(3);
    assert!(
        harness.state().canvas.rect().max.y < edge - 100.0,
        "the panel grew"
    );
    harness.snapshot_options("training_curves", &options);

    let read = |name: &str| {
        image::open(fixtures.join(format!("compare/{name}")))
            .unwrap()
            .into_luma8()
    };
    let ids = Mask::from_gray_image(read("road_0001.pred.png"));
    let confidence = read("road_0001.conf.png").into_raw();
    assert!(harness.state_mut().canvas.set_prediction(ids, confidence));
    {
        let state = &mut harness.state_mut().state;
        state.view = ViewMode::Difference;
        state.diff_class = 0;
        state.show_training = false;
    }
    harness.run_steps(3);
    harness.snapshot_options("difference_view", &options);
}

//! Issue 17's labelling tools, driven through the window: class locks and "paint only
//! unlabelled pixels" (remembered per dataset across restarts), the magic wand, and starting a
//! mask from the previous image's.

use std::path::{Path, PathBuf};

use egui::accesskit::{Role, Toggled};
use egui::{Key, Modifiers, Pos2};
use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};
use roadseg::core::dataset::IGNORE;
use roadseg::core::dataset::sample::{SampleConfig, generate};
use roadseg::studio::Studio;
use roadseg::studio::canvas::Tool;
use roadseg::studio::panels::tools::{FROM_PREVIOUS, LOCK};
use roadseg::studio::state::{DatasetPrefs, PersistedState};

use crate::support::{mask, settle};

/// Four unlabelled 160x120 road images.
fn sample(dir: &Path) -> PathBuf {
    let data = dir.join("data");
    generate(
        &data,
        &SampleConfig {
            count: 4,
            seed: 5,
            width: 160,
            height: 120,
            ..Default::default()
        },
    )
    .unwrap();
    std::fs::remove_dir_all(data.join("masks")).unwrap();
    std::fs::create_dir(data.join("masks")).unwrap();
    data
}

/// The studio on `data` with `state`, as it starts after a restart.
fn harness_with(data: &Path, state: PersistedState) -> Harness<'static, Studio> {
    let mut harness = Harness::builder()
        .with_size(egui::vec2(1100.0, 760.0))
        .wgpu()
        .build_ui_state(
            |ui, studio: &mut Studio| studio.ui(ui),
            Studio::new(state, Some(data.to_path_buf())),
        );
    settle(&mut harness);
    harness
}

fn screen(harness: &Harness<'_, Studio>, x: f32, y: f32) -> Pos2 {
    harness.state().canvas.image_to_screen([x, y])
}

/// A press-drag-release through image points, as a mouse paints.
fn drag(harness: &mut Harness<'_, Studio>, points: &[[f32; 2]]) {
    let [first, rest @ ..] = points else { return };
    harness.drag_at(screen(harness, first[0], first[1]));
    harness.step();
    for p in rest {
        harness.hover_at(screen(harness, p[0], p[1]));
        harness.step();
    }
    let last = points[points.len() - 1];
    harness.drop_at(screen(harness, last[0], last[1]));
    harness.run_steps(2);
}

fn click_image(harness: &mut Harness<'_, Studio>, x: f32, y: f32) {
    let pos = screen(harness, x, y);
    harness.hover_at(pos);
    harness.step();
    harness.drag_at(pos);
    harness.step();
    harness.drop_at(pos);
    harness.run_steps(2);
}

fn press(harness: &mut Harness<'_, Studio>, key: Key) {
    harness.key_press(key);
    harness.run_steps(1);
}

fn undo_steps(harness: &Harness<'_, Studio>) -> usize {
    let doc = harness.state().canvas.document.as_ref().unwrap();
    doc.history().undo_steps()
}

/// How many lock toggles of the class list are on.
fn locks_shown(harness: &Harness<'_, Studio>) -> usize {
    harness
        .get_all_by_label(LOCK)
        .filter(|n| n.accesskit_node().toggled() == Some(Toggled::True))
        .count()
}

fn message(harness: &Harness<'_, Studio>) -> (String, bool) {
    harness.state().message.clone().expect("a message")
}

#[test]
fn a_locked_class_keeps_its_pixels_and_the_lock_survives_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let data = sample(tmp.path());
    let mut harness = harness_with(&data, PersistedState::default());
    harness.state_mut().state.tool = Tool::Brush;
    harness.state_mut().state.brush_radius = 3.0;
    // A class-1 (sidewalk) band across row 60.
    press(&mut harness, Key::Num2);
    drag(&mut harness, &[[1.0, 60.0], [80.0, 60.0], [159.0, 60.0]]);
    assert!((0..160).all(|x| mask(&harness).get(x, 60) == 1), "the band");

    // Lock class 1 with its toggle in the class list (the second row).
    assert_eq!(locks_shown(&harness), 0);
    harness
        .get_all_by_label(LOCK)
        .nth(1)
        .expect("a lock toggle per class")
        .click();
    harness.run_steps(2);
    assert_eq!(locks_shown(&harness), 1);
    assert!(harness.state().current_locks().is_locked(1));

    // Class 0 (road) brushed down across the band: the band stays whole, the rest is road.
    press(&mut harness, Key::Num1);
    drag(&mut harness, &[[80.0, 2.0], [80.0, 60.0], [80.0, 118.0]]);
    let crossed = mask(&harness);
    assert!(
        (0..160).all(|x| crossed.get(x, 60) == 1),
        "locked pixels kept"
    );
    assert_eq!((crossed.get(80, 30), crossed.get(80, 90)), (0, 0));
    assert_eq!(
        undo_steps(&harness),
        2,
        "the partly refused stroke is one step"
    );

    // Paint only unlabelled pixels: a wider class-2 stroke only fills around the road.
    harness
        .get_by_role_and_label(Role::CheckBox, "Paint only unlabelled pixels")
        .click();
    harness.run_steps(2);
    harness.state_mut().state.brush_radius = 6.0;
    press(&mut harness, Key::Num3);
    drag(&mut harness, &[[80.0, 2.0], [80.0, 60.0], [80.0, 118.0]]);
    let around = mask(&harness);
    assert_eq!(
        (around.get(80, 30), around.get(80, 60)),
        (0, 1),
        "labels kept"
    );
    assert_eq!(
        (around.get(84, 30), around.get(76, 90)),
        (2, 2),
        "unlabelled painted"
    );
    harness.key_press_modifiers(Modifiers::COMMAND, Key::S);
    harness.run_steps(2);

    // Remembered for this dataset, through the state eframe stores at exit.
    let state = harness.state().state.clone();
    let prefs: Vec<&DatasetPrefs> = state.dataset_prefs.values().collect();
    let expected = DatasetPrefs {
        locked_classes: vec![1],
        unlabelled_only: true,
        ..DatasetPrefs::default()
    };
    assert_eq!(prefs, [&expected]);
    let stored: PersistedState =
        serde_json::from_str(&serde_json::to_string(&state).unwrap()).unwrap();
    drop(harness);
    let mut harness = harness_with(&data, stored);
    assert_eq!(mask(&harness), around, "the saved mask reopened");
    assert_eq!(locks_shown(&harness), 1, "shown locked");
    // Unlabelled-only off again; the lock alone holds: road everywhere but the band.
    harness
        .get_by_role_and_label(Role::CheckBox, "Paint only unlabelled pixels")
        .click();
    harness.run_steps(2);
    harness.state_mut().state.tool = Tool::Brush;
    harness.state_mut().state.brush_radius = 8.0;
    press(&mut harness, Key::Num1);
    drag(&mut harness, &[[84.0, 2.0], [84.0, 118.0]]);
    let after = mask(&harness);
    assert!(
        (0..160).all(|x| after.get(x, 60) == 1),
        "still locked after a restart"
    );
    assert_eq!(after.get(84, 30), 0, "unlocked class 2 painted over");
}

/// A 160x120 photo: grey with a little noise left of column 100, green right of it.
fn two_tone() -> image::RgbImage {
    image::RgbImage::from_fn(160, 120, |x, y| match x < 100 {
        true => {
            let v = 90 + ((x * 7 + y * 13) % 9) as u8;
            image::Rgb([v, v, v - 4])
        }
        false => image::Rgb([40, 160, 40]),
    })
}

#[test]
fn the_wand_paints_the_clicked_region_and_undo_restores() {
    let tmp = tempfile::tempdir().unwrap();
    let data = sample(tmp.path());
    two_tone().save(data.join("images/road_0000.png")).unwrap();
    let mut harness = harness_with(&data, PersistedState::default());
    let blank = mask(&harness);
    press(&mut harness, Key::M);
    assert_eq!(harness.state().state.tool, Tool::Wand, "M picks the wand");
    press(&mut harness, Key::Num3);

    click_image(&mut harness, 40.5, 60.5);
    let painted = mask(&harness);
    for y in 0..120 {
        for x in 0..160 {
            let want = if x < 100 { 2 } else { IGNORE };
            assert_eq!(painted.get(x, y), want, "({x}, {y})");
        }
    }
    assert_eq!(undo_steps(&harness), 1);

    // Tolerance 0 takes the connected pixels of exactly the clicked colour: all of the
    // uniform green side, none of the grey.
    harness.state_mut().state.wand_tolerance = 0;
    press(&mut harness, Key::Num2);
    click_image(&mut harness, 130.5, 60.5);
    let green = mask(&harness);
    assert!((100..160).all(|x| green.get(x, 7) == 1) && green.get(99, 7) == 2);

    harness.key_press_modifiers(Modifiers::COMMAND, Key::Z);
    harness.run_steps(2);
    assert_eq!(mask(&harness), painted);
    harness.key_press_modifiers(Modifiers::COMMAND, Key::Z);
    harness.run_steps(2);
    assert_eq!(mask(&harness), blank, "undo restores the mask");
}

#[test]
fn start_from_previous_copies_the_mask_and_undo_restores() {
    let tmp = tempfile::tempdir().unwrap();
    let data = sample(tmp.path());
    // road_0002 is smaller than the others.
    image::RgbImage::from_pixel(100, 80, image::Rgb([9, 9, 9]))
        .save(data.join("images/road_0002.png"))
        .unwrap();
    let mut harness = harness_with(&data, PersistedState::default());
    let blank = mask(&harness);
    let from_previous = |harness: &mut Harness<'_, Studio>| {
        harness
            .get_by_role_and_label(Role::Button, FROM_PREVIOUS)
            .click();
        harness.run_steps(2);
    };
    from_previous(&mut harness);
    let (text, is_error) = message(&harness);
    assert!(is_error && text.contains("first image"), "{text}");
    assert_eq!(mask(&harness), blank);

    // A stroke on road_0000; road_0001 starts from it.
    harness.state_mut().state.tool = Tool::Brush;
    harness.state_mut().state.brush_radius = 4.0;
    press(&mut harness, Key::Num2);
    drag(&mut harness, &[[10.0, 30.0], [150.0, 90.0]]);
    let first = mask(&harness);
    press(&mut harness, Key::PageDown);
    settle(&mut harness);
    assert_eq!(harness.state().selected_name(), Some("road_0001"));
    assert_eq!(mask(&harness), blank);
    from_previous(&mut harness);
    assert_eq!(mask(&harness), first, "the previous mask copied");
    assert_eq!(undo_steps(&harness), 1);
    let (text, is_error) = message(&harness);
    assert!(!is_error && text.contains("road_0000"), "{text}");
    harness.key_press_modifiers(Modifiers::COMMAND, Key::Z);
    harness.run_steps(2);
    assert_eq!(mask(&harness), blank, "undo restores");

    // The Edit menu does the same.
    harness.get_by_label("Edit").click();
    harness.run_steps(2);
    harness.get_by_label("Start from previous image").click();
    harness.run_steps(2);
    assert_eq!(mask(&harness), first);

    // road_0002 is another size: said, and nothing changes.
    press(&mut harness, Key::PageDown);
    settle(&mut harness);
    assert_eq!(harness.state().selected_name(), Some("road_0002"));
    from_previous(&mut harness);
    let (text, is_error) = message(&harness);
    assert!(
        is_error && text.contains("160x120, this image 100x80"),
        "{text}"
    );
    let doc = harness.state().canvas.document.as_ref().unwrap();
    assert!(!doc.is_modified() && doc.mask().data.iter().all(|&v| v == IGNORE));

    // road_0003's previous image has no mask.
    press(&mut harness, Key::PageDown);
    settle(&mut harness);
    from_previous(&mut harness);
    let (text, is_error) = message(&harness);
    assert!(is_error && text.contains("road_0002 has no mask"), "{text}");
    assert_eq!(undo_steps(&harness), 0);
}

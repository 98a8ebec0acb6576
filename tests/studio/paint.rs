#![cfg(feature = "gui")]
//! The studio driven like a user would (egui_kittest, rendered with wgpu on lavapipe in CI):
//! open a dataset, select an image, paint, save, undo/redo, move with the keyboard, fill.

use std::path::{Path, PathBuf};

use egui::{Key, Modifiers, Pos2};
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use roadseg::core::dataset::IGNORE;
use roadseg::core::dataset::sample::{SampleConfig, generate};
use roadseg::core::mask::Mask;
use roadseg::studio::Studio;
use roadseg::studio::canvas::Tool;

use crate::support::{mask, settle};

fn sample(dir: &Path) -> PathBuf {
    let data = dir.join("data");
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
    // Start from unlabelled images, like a user labelling new photos.
    std::fs::remove_dir_all(data.join("masks")).unwrap();
    std::fs::create_dir(data.join("masks")).unwrap();
    data
}

fn harness(data: &Path) -> Harness<'static, Studio> {
    crate::support::harness_sized(data, 1100.0, 700.0)
}

/// Lets the frame that starts a load run, waits for the loader thread, shows the result.
fn mask_on_disk(path: &Path) -> Mask {
    Mask::from_gray_image(image::open(path).unwrap().into_luma8())
}

fn screen(harness: &Harness<'_, Studio>, x: f32, y: f32) -> Pos2 {
    harness.state().canvas.image_to_screen([x, y])
}

/// A click on image pixel (x, y): hover, press, release, as a mouse does over several frames.
fn click_image(harness: &mut Harness<'_, Studio>, x: f32, y: f32) {
    let pos = screen(harness, x, y);
    harness.hover_at(pos);
    harness.step();
    harness.drag_at(pos);
    harness.step();
    harness.drop_at(pos);
    harness.run_steps(2);
}

#[test]
fn paint_save_undo_redo_navigate_and_fill() {
    let tmp = tempfile::tempdir().unwrap();
    let data = sample(tmp.path());
    let mut harness = harness(&data);
    assert_eq!(harness.state().selected_name(), Some("road_0000"));
    let blank = mask(&harness);
    assert!(blank.data.iter().all(|&v| v == IGNORE));

    // Select "road_0001" in the dataset panel by clicking its row.
    harness.get_by_label_contains("road_0001").click();
    settle(&mut harness);
    assert_eq!(harness.state().selected_name(), Some("road_0001"));

    // Class 1 (sidewalk) with the keyboard, then a brush stroke across the image.
    harness.key_press(Key::Num2);
    harness.state_mut().state.tool = Tool::Brush;
    harness.state_mut().state.brush_radius = 3.0;
    harness.run_steps(1);
    let uploaded_before = harness.state().canvas.uploaded_pixels;
    // Edge to edge, so that it cuts the image in two regions.
    harness.drag_at(screen(&harness, 2.0, 60.0));
    harness.step();
    for x in [40.0, 80.0, 120.0, 158.0] {
        harness.hover_at(screen(&harness, x, 60.0));
        harness.step();
    }
    harness.drop_at(screen(&harness, 158.0, 60.0));
    harness.run_steps(2);
    let painted = mask(&harness);
    for x in 0..160 {
        assert_eq!(painted.get(x, 60), 1, "pixel ({x}, 60) painted");
    }
    assert_eq!(painted.get(80, 20), IGNORE, "far from the stroke");
    let uploaded = harness.state().canvas.uploaded_pixels - uploaded_before;
    assert!(
        uploaded > 0 && uploaded < 160 * 120 / 2,
        "only dirty rectangles are uploaded ({uploaded} pixels)"
    );
    assert_eq!(
        harness
            .state()
            .canvas
            .document
            .as_ref()
            .unwrap()
            .history()
            .undo_steps(),
        1,
        "one stroke is one undo step"
    );

    // Ctrl+S writes the mask.
    let mask_path = data.join("masks/road_0001.png");
    harness.key_press_modifiers(Modifiers::COMMAND, Key::S);
    harness.run_steps(2);
    assert_eq!(mask_on_disk(&mask_path), painted);

    // Undo and redo.
    harness.key_press_modifiers(Modifiers::COMMAND, Key::Z);
    harness.run_steps(2);
    assert_eq!(mask(&harness), blank);
    harness.key_press_modifiers(Modifiers::COMMAND | Modifiers::SHIFT, Key::Z);
    harness.run_steps(2);
    assert_eq!(mask(&harness), painted);
    harness.key_press_modifiers(Modifiers::COMMAND, Key::Z);
    harness.run_steps(1);
    harness.key_press_modifiers(Modifiers::COMMAND, Key::Y);
    harness.run_steps(2);
    assert_eq!(mask(&harness), painted);

    // Flood fill the unlabelled region above the stroke with class 3 (vegetation).
    harness.key_press(Key::Num4);
    harness.state_mut().state.tool = Tool::Fill;
    harness.run_steps(1);
    click_image(&mut harness, 80.5, 10.5);
    let filled = mask(&harness);
    assert_eq!(filled.get(80, 10), 3);
    assert_eq!(filled.get(0, 0), 3);
    assert_eq!(filled.get(60, 60), 1, "the stroke bounds the fill");
    assert_eq!(
        filled.get(80, 110),
        IGNORE,
        "below the stroke is another region"
    );

    // The picker takes the class under the cursor and says which (issue 22, item 23).
    harness.state_mut().state.tool = Tool::Picker;
    harness.run_steps(1);
    click_image(&mut harness, 60.5, 60.5);
    assert_eq!(harness.state().tools.class, 1);
    let message = harness.state().message.clone().unwrap().0;
    assert_eq!(message, "picked sidewalk (key 2)");
    // ] and [ step through round brush sizes (item 18): 3 -> 4 -> 5 -> 4.
    for (key, radius) in [
        (Key::CloseBracket, 4.0),
        (Key::CloseBracket, 5.0),
        (Key::OpenBracket, 4.0),
    ] {
        harness.key_press(key);
        harness.run_steps(1);
        assert_eq!(harness.state().state.brush_radius, radius);
    }

    // PageDown moves to the next image and saves this one on the way.
    harness.key_press(Key::PageDown);
    settle(&mut harness);
    assert_eq!(harness.state().selected_name(), Some("road_0002"));
    assert_eq!(
        mask_on_disk(&mask_path),
        filled,
        "saved when leaving the image"
    );
    harness.key_press(Key::PageUp);
    settle(&mut harness);
    assert_eq!(harness.state().selected_name(), Some("road_0001"));
    assert_eq!(mask(&harness), filled, "reopened from disk");
}

#[test]
fn a_corrupt_image_shows_an_error_and_the_studio_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let data = sample(tmp.path());
    std::fs::write(data.join("images/road_0002.png"), b"not a png").unwrap();
    let mut harness = harness(&data);
    harness.key_press(Key::PageDown);
    settle(&mut harness);
    harness.key_press(Key::PageDown);
    settle(&mut harness);
    let (message, is_error) = harness.state().message.clone().expect("a message");
    assert!(is_error && message.contains("road_0002.png"), "{message}");
    // Still usable: the previous image stays on the canvas and the next one opens.
    assert_eq!(harness.state().selected_name(), Some("road_0001"));
    harness
        .state_mut()
        .push(roadseg::studio::app::Command::Select(3));
    settle(&mut harness);
    assert_eq!(harness.state().selected_name(), Some("road_0003"));
}

#[test]
fn main_window_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let data = sample(tmp.path());
    let mut harness = harness(&data);
    harness.state_mut().wait_for_thumbnails();
    // The status message names the temporary folder: not part of the picture.
    harness.state_mut().message = None;
    harness.remove_cursor();
    harness.run_steps(2);
    harness.snapshot("studio_main_window");
}

#[test]
fn thumbnails_and_classes() {
    let tmp = tempfile::tempdir().unwrap();
    let data = sample(tmp.path());
    let mut harness = harness(&data);
    harness.state_mut().wait_for_thumbnails();
    harness.run_steps(1);
    assert_eq!(harness.state().dataset_panel.thumbnails.cached(), 4);

    // Rename and recolour a class, add one: classes.json is rewritten, ids are kept.
    let mut classes = harness.state().session.as_ref().unwrap().classes.clone();
    classes.0[1].name = "pavement".into();
    classes.0[1].color = [1, 2, 3];
    classes.0.push(roadseg::core::dataset::ClassInfo {
        id: 7,
        name: "pothole".into(),
        color: [90, 40, 10],
    });
    harness
        .state_mut()
        .push(roadseg::studio::app::Command::SetClasses(classes.clone()));
    harness.run_steps(1);
    let on_disk =
        roadseg::core::dataset::ClassTable::read_json(&data.join("classes.json")).unwrap();
    assert_eq!(on_disk, classes);

    // Duplicate names are refused with a message; the file stays as it was.
    let mut bad = classes.clone();
    bad.0[2].name = "Pavement".into();
    harness
        .state_mut()
        .push(roadseg::studio::app::Command::SetClasses(bad));
    harness.run_steps(1);
    let (message, is_error) = harness.state().message.clone().unwrap();
    assert!(is_error && message.contains("unique"), "{message}");
    let on_disk =
        roadseg::core::dataset::ClassTable::read_json(&data.join("classes.json")).unwrap();
    assert_eq!(on_disk, classes);

    // Outline view: only class boundaries remain visible, and painting still works in it.
    harness.state_mut().state.outline = true;
    harness.state_mut().state.tool = Tool::Brush;
    harness.run_steps(1);
    click_image(&mut harness, 50.0, 50.0);
    assert_ne!(mask(&harness).get(50, 50), IGNORE);
}

/// Issue 22, item 1: strokes on a view-only dataset (KITTI road here) were dropped by Convert
/// to native, and a kept one was even saved over the dataset's own label file. They stay in
/// memory, the dataset's files are never written, and the native copy has them.
#[test]
fn strokes_on_a_view_only_dataset_are_carried_into_its_native_copy() {
    let tmp = tempfile::tempdir().unwrap();
    let fixture = crate::common::kitti(&tmp.path().join("kitti"));
    let before = crate::common::snapshot(&fixture.root);
    let mut harness = harness(&fixture.root);
    harness.state_mut().state.tool = Tool::Brush;
    harness.state_mut().state.brush_radius = 1.0;

    // Two labelled images, one row painted on each, the first left before converting.
    let mut painted = Vec::new();
    for _ in 0..6 {
        if painted.len() == 2 {
            break;
        }
        if harness.state().canvas.document.is_some() {
            let name = harness.state().selected_name().unwrap().to_string();
            let original = &fixture.masks.iter().find(|(n, _)| *n == name).unwrap().1;
            // A class the row does not have everywhere already, so the stroke shows.
            let value = if (0..crate::common::W).all(|x| original.get_pixel(x, 8).0[0] == 1) {
                0
            } else {
                1
            };
            harness.key_press(if value == 0 { Key::Num1 } else { Key::Num2 });
            harness.run_steps(1);
            harness.drag_at(screen(&harness, 0.5, 8.5));
            harness.step();
            for x in [6.0, 12.0, 18.0, 23.5] {
                harness.hover_at(screen(&harness, x, 8.5));
                harness.step();
            }
            harness.drop_at(screen(&harness, 23.5, 8.5));
            harness.run_steps(2);
            assert!(
                (0..24).all(|x| mask(&harness).get(x, 8) == value),
                "painted"
            );
            painted.push((name, value));
        }
        harness.key_press(Key::PageDown);
        settle(&mut harness);
    }
    assert_eq!(painted.len(), 2, "two labelled images were painted");
    // Saving writes nothing into the view-only dataset.
    harness.key_press_modifiers(Modifiers::COMMAND, Key::S);
    harness.run_steps(2);
    assert!(
        crate::common::snapshot(&fixture.root) == before,
        "the dataset's files are untouched"
    );

    harness
        .get_by_label("Convert to native to label...")
        .click();
    crate::support::accept_destination(&mut harness, "Convert");
    settle(&mut harness);
    let native = tmp.path().join("kitti-native");
    assert_eq!(harness.state().session.as_ref().unwrap().root, native);
    let message = harness.state().message.clone().unwrap().0;
    assert!(
        message.contains("strokes of 2 image(s) carried over"),
        "{message}"
    );
    for (name, value) in &painted {
        let converted = mask_on_disk(&native.join(format!("masks/{name}.png")));
        assert!(
            (0..24).all(|x| converted.get(x, 8) == *value),
            "{name}: the stroke is there"
        );
        let original = &fixture.masks.iter().find(|(n, _)| n == name).unwrap().1;
        assert_eq!(
            converted.get(3, 2),
            original.get_pixel(3, 2).0[0],
            "{name}: the rest is the dataset's label"
        );
    }
    assert!(
        crate::common::snapshot(&fixture.root) == before,
        "the dataset's files are untouched"
    );
}

/// Issue 22, items 2 and 3: undoing back to an empty mask leaves the image unlabelled (on disk
/// and in the list), and Space+drag pans without painting.
#[test]
fn an_emptied_mask_is_unlabelled_and_space_drag_only_pans() {
    let tmp = tempfile::tempdir().unwrap();
    let data = sample(tmp.path());
    let mut harness = harness(&data);
    let name = harness.state().selected_name().unwrap().to_string();
    let mask_path = data.join(format!("masks/{name}.png"));
    let labelled = |h: &Harness<'_, Studio>| {
        let studio = h.state();
        studio.session.as_ref().unwrap().entries[studio.selected.unwrap()].labelled
    };

    // Space held: the drag moves the image and paints nothing, not even where it started.
    let before = screen(&harness, 80.0, 60.0);
    harness.state_mut().state.tool = Tool::Brush;
    harness.state_mut().state.brush_radius = 4.0;
    harness.key_down(Key::Space);
    harness.step();
    harness.drag_at(before);
    harness.step();
    for dx in [10.0, 20.0, 40.0] {
        harness.hover_at(before + egui::vec2(dx, 5.0));
        harness.step();
    }
    harness.drop_at(before + egui::vec2(40.0, 5.0));
    harness.step();
    harness.key_up(Key::Space);
    harness.run_steps(2);
    let moved = screen(&harness, 80.0, 60.0) - before;
    assert!(moved.x > 20.0, "panned by {moved:?}");
    let doc = harness.state().canvas.document.as_ref().unwrap();
    assert!(!doc.is_modified() && doc.mask().data.iter().all(|&v| v == IGNORE));

    // A dab, saved: labelled. Undone and saved: no file, and unlabelled again.
    click_image(&mut harness, 40.0, 40.0);
    harness.key_press_modifiers(Modifiers::COMMAND, Key::S);
    harness.run_steps(2);
    assert!(mask_path.is_file() && labelled(&harness));
    harness.key_press_modifiers(Modifiers::COMMAND, Key::Z);
    harness.run_steps(1);
    harness.key_press_modifiers(Modifiers::COMMAND, Key::S);
    harness.run_steps(2);
    assert!(!mask_path.exists(), "an empty mask is no label file");
    assert!(!labelled(&harness), "the list follows the disk");
}

//! The studio's layout at the common window sizes (issue 22, items 5, 6, 13, 21, 22): the
//! panel under the canvas keeps the height the user gives it and its border drags; the Errors
//! tab and the image list fit their panels; Convert to native asks where the copy goes; every
//! text has its glyphs; the list's state text always has a percentage; and main-window
//! snapshots at 1280x800 and 1366x768.

use std::path::Path;

use egui::accesskit::Role;
use egui_kittest::Harness;
use egui_kittest::kittest::{By, NodeT, Queryable};
use roadseg::studio::Studio;
use roadseg::studio::app::{BottomTab, Command};

use crate::support::{harness_sized, mask, settle};

/// The two window sizes every layout check runs at: the default and a common laptop's.
const SIZES: [(f32, f32); 2] = [(1280.0, 800.0), (1366.0, 768.0)];

fn canvas_height(harness: &Harness<'_, Studio>) -> f32 {
    harness.state().canvas.rect().height()
}

fn drag(harness: &mut Harness<'_, Studio>, from: egui::Pos2, to: egui::Pos2) {
    harness.hover_at(from);
    harness.step();
    harness.drag_at(from);
    harness.step();
    harness.hover_at(egui::pos2(from.x, (from.y + to.y) / 2.0));
    harness.step();
    harness.drop_at(to);
    harness.remove_cursor();
    harness.run_steps(3);
}

/// Item 5: opening the training panel's sections, or the Errors tab, never takes the canvas's
/// height; the border drags both ways, from either side, and a drag there paints nothing.
#[test]
fn the_panel_under_the_canvas_keeps_its_height_and_its_border_drags() {
    for (width, height) in SIZES {
        let tmp = tempfile::tempdir().unwrap();
        let fixture = crate::common::native(&tmp.path().join("data"));
        let mut harness = harness_sized(&fixture.root, width, height);
        let before = canvas_height(&harness);
        let painted = mask(&harness);
        for section in ["Hyper-parameters", "Model and fine-tuning", "Runs"] {
            harness.get_by_label(section).click();
            harness.run_steps(3);
            assert_eq!(
                canvas_height(&harness),
                before,
                "{width}x{height}: opening {section} took the canvas's space"
            );
        }
        harness.state_mut().bottom = BottomTab::Errors;
        harness.run_steps(3);
        harness.state_mut().bottom = BottomTab::Training;
        harness.run_steps(3);
        assert_eq!(canvas_height(&harness), before, "{width}x{height}");

        // The border, grabbed on the canvas's side of it: up 120, then down 60.
        let rect = harness.state().canvas.rect();
        let x = rect.center().x;
        let edge = rect.max.y - 2.0;
        drag(
            &mut harness,
            egui::pos2(x, edge),
            egui::pos2(x, edge - 120.0),
        );
        let taller = canvas_height(&harness);
        assert!(
            (before - taller - 120.0).abs() < 4.0,
            "{width}x{height}: the panel grew by {} instead of 120",
            before - taller
        );
        let edge = harness.state().canvas.rect().max.y + 1.0;
        drag(
            &mut harness,
            egui::pos2(x, edge),
            egui::pos2(x, edge + 60.0),
        );
        assert!(
            (canvas_height(&harness) - taller - 60.0).abs() < 4.0,
            "{width}x{height}: the panel did not give back 60"
        );
        assert_eq!(
            mask(&harness).data,
            painted.data,
            "{width}x{height}: a drag on the border painted"
        );
        assert!(
            !harness
                .state()
                .canvas
                .document
                .as_ref()
                .unwrap()
                .is_modified(),
            "{width}x{height}"
        );
    }
}

/// Item 6 (the list): a long state text ("…, uncertainty 1.19") and a long name are cut in
/// their row, with the whole text on hover; the list keeps its width.
#[test]
fn the_image_list_keeps_its_width_whatever_its_text() {
    let tmp = tempfile::tempdir().unwrap();
    let fixture = crate::common::native(&tmp.path().join("data"));
    let long = "img0_a_very_long_image_name_from_a_sequence_000000_000019_leftImg8bit";
    for dir in ["images", "masks"] {
        std::fs::rename(
            fixture.root.join(format!("{dir}/img0.png")),
            fixture.root.join(format!("{dir}/{long}.png")),
        )
        .unwrap();
    }
    let mut harness = harness_sized(&fixture.root, 1280.0, 800.0);
    let names: Vec<String> = harness
        .state()
        .session
        .as_ref()
        .unwrap()
        .entries
        .iter()
        .map(|e| e.name.clone())
        .collect();
    for name in &names {
        harness
            .state_mut()
            .dataset_panel
            .uncertainty
            .insert(name.clone(), 1.1875);
    }
    harness.state_mut().wait_for_thumbnails();
    harness.run_steps(3);
    let canvas_left = harness.state().canvas.rect().min.x;
    let width = harness.state().state.left_panel_width;
    assert!(width <= 241.0, "the list widened to {width}");
    let row = harness.get(By::new().role(Role::Button).label_contains(long));
    assert!(
        row.rect().max.x <= canvas_left,
        "the row reaches under the canvas: {:?} vs {canvas_left}",
        row.rect()
    );
    assert!(
        row.accesskit_node()
            .label()
            .is_some_and(|l| l.contains("uncertainty 1.19")),
        "the row says everything to a screen reader"
    );
    row.hover();
    // Past the tooltip delay (a step is a 60th of a second).
    harness.run_steps(60);
    let tooltips = harness
        .query_all(By::new().label_contains("uncertainty 1.19"))
        .filter(|node| node.accesskit_node().role() != Role::Button)
        .count();
    assert!(tooltips >= 1, "hovering a cut row shows its whole text");
}

/// Item 13: Convert to native asks where the copy goes, proposing a free folder beside the
/// dataset; a folder that is not empty is refused in the window; the chosen one is used and
/// named in the status line.
#[test]
fn convert_to_native_asks_where_the_copy_goes() {
    let tmp = tempfile::tempdir().unwrap();
    let fixture = crate::common::kitti(&tmp.path().join("kitti"));
    let mut harness = harness_sized(&fixture.root, 1280.0, 800.0);
    harness
        .get_by_label("Convert to native to label...")
        .click();
    harness.run_steps(4);
    // A free folder beside the dataset is proposed, in the window's field.
    let proposed = tmp.path().join("kitti-native");
    harness.get(
        By::new()
            .role(Role::TextInput)
            .value(proposed.to_str().unwrap()),
    );
    // A folder with files in it: refused, said in the window, nothing opened.
    let taken = tmp.path().join("taken");
    std::fs::create_dir_all(&taken).unwrap();
    std::fs::write(taken.join("notes.txt"), "mine").unwrap();
    harness.state_mut().destination.typed = taken.display().to_string();
    harness.run_steps(1);
    harness
        .get_by_role_and_label(Role::Button, "Convert")
        .click();
    harness.run_steps(2);
    harness.get_by_label_contains("exists and is not empty");
    assert_eq!(harness.state().session.as_ref().unwrap().root, fixture.root);

    let chosen = tmp.path().join("elsewhere/kitti-labelled");
    harness.state_mut().destination.typed = chosen.display().to_string();
    harness.run_steps(1);
    harness
        .get_by_role_and_label(Role::Button, "Convert")
        .click();
    harness.run_steps(1);
    settle(&mut harness);
    let session = harness.state().session.as_ref().unwrap();
    assert_eq!(session.root, chosen);
    assert!(session.editable());
    assert!(!proposed.exists(), "only the chosen folder is written");
    let message = harness.state().message.clone().unwrap().0;
    assert!(
        message.contains(chosen.to_str().unwrap()),
        "the status line says where: {message}"
    );
    assert_eq!(
        std::fs::read_to_string(taken.join("notes.txt")).unwrap(),
        "mine"
    );
}

/// Item 21: every text on screen, the class colour picker open, has its glyphs in the
/// studio's fonts (the picker's copy button was a missing-glyph box).
#[test]
fn every_text_shown_has_its_glyphs() {
    let tmp = tempfile::tempdir().unwrap();
    let fixture = crate::common::native(&tmp.path().join("data"));
    let mut harness = harness_sized(&fixture.root, 1280.0, 800.0);
    harness.get_by_label("Edit classes").click();
    harness.run_steps(3);
    harness
        .get_all_by_role(Role::ColorWell)
        .next()
        .expect("a class colour button")
        .click();
    harness.run_steps(4);
    let texts: Vec<String> = harness
        .query_all(By::new().predicate(|node| node.label().is_some()))
        .filter_map(|node| node.accesskit_node().label())
        .collect();
    assert!(
        texts.iter().any(|t| t == "Hue"),
        "the colour picker is open: {texts:?}"
    );
    let ctx = harness.ctx.clone();
    let missing: Vec<&String> = texts
        .iter()
        .filter(|text| {
            ctx.fonts_mut(|fonts| {
                let shown: String = text.chars().filter(|c| !c.is_control()).collect();
                !fonts.has_glyphs(&egui::FontId::proportional(14.0), &shown)
            })
        })
        .collect();
    assert!(missing.is_empty(), "texts with missing glyphs: {missing:?}");
}

/// Item 22: a row's state always has its percentage, from the moment a mask is saved (it said
/// "train, labelled" until the thumbnail was decoded again).
#[test]
fn a_saved_image_says_how_much_is_labelled_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let fixture = crate::common::native(&tmp.path().join("data"));
    let mut harness = harness_sized(&fixture.root, 1280.0, 800.0);
    harness
        .state_mut()
        .push(Command::SelectByName("img3".into()));
    settle(&mut harness);
    harness.state_mut().wait_for_thumbnails();
    harness.run_steps(2);
    let row = |harness: &Harness<'_, Studio>| {
        harness
            .get_by_label_contains("img3\n")
            .accesskit_node()
            .label()
            .unwrap()
    };
    assert!(row(&harness).ends_with("unlabelled"), "{}", row(&harness));
    let rect = harness.state().canvas.rect();
    drag(
        &mut harness,
        rect.center() - egui::vec2(30.0, 0.0),
        rect.center() + egui::vec2(30.0, 0.0),
    );
    harness.state_mut().push(Command::Save);
    harness.run_steps(2);
    let text = row(&harness);
    let fraction = mask(&harness).labelled_fraction();
    assert!(fraction > 0.0);
    assert!(
        text.ends_with(&format!("{:.0}% labelled", fraction * 100.0)),
        "{text}"
    );
}

/// The main window at the default size and a common laptop's, labelling with the training
/// panel open (tests/snapshots/).
#[test]
fn main_window_snapshots_at_common_sizes() {
    let mut results = egui_kittest::SnapshotResults::new();
    for (width, height) in SIZES {
        let tmp = tempfile::tempdir().unwrap();
        let data = sample(tmp.path());
        let mut harness = harness_sized(&data, width, height);
        harness.state_mut().wait_for_thumbnails();
        harness.state_mut().message = None;
        harness.remove_cursor();
        harness.run_steps(2);
        harness.snapshot(format!("studio_{width}x{height}"));
        results.extend_harness(&mut harness);
    }
}

fn sample(dir: &Path) -> std::path::PathBuf {
    let data = dir.join("data");
    roadseg::core::dataset::sample::generate(
        &data,
        &roadseg::core::dataset::sample::SampleConfig {
            count: 6,
            seed: 3,
            width: 160,
            height: 120,
            ..Default::default()
        },
    )
    .unwrap();
    data
}

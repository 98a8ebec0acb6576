//! A day of labelling (issue 22): tool keys and tooltips, a radius slider only where a radius
//! applies, wheel zoom in round steps, and the image being labelled staying in the Unlabelled
//! list until the user moves on.

use egui::{Key, Modifiers, Pos2};
use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};
use roadseg::studio::Studio;
use roadseg::studio::canvas::{Tool, ZOOM_STEPS, step_zoom};
use roadseg::studio::panels::dataset::Filter;

use crate::support::{harness_sized, settle};

fn screen(harness: &Harness<'_, Studio>, x: f32, y: f32) -> Pos2 {
    harness.state().canvas.image_to_screen([x, y])
}

#[test]
fn tool_keys_pick_tools_and_only_brushes_have_a_radius() {
    let tmp = tempfile::tempdir().unwrap();
    let fixture = crate::common::native(&tmp.path().join("data"));
    let mut harness = harness_sized(&fixture.root, 1280.0, 800.0);
    for tool in Tool::ALL {
        harness.key_press(tool.key());
        harness.run_steps(1);
        assert_eq!(harness.state().state.tool, tool, "{:?}", tool.key());
        let slider = harness.get_by_role_and_label(egui::accesskit::Role::Slider, "Brush radius");
        assert_eq!(
            slider.accesskit_node().is_disabled(),
            !tool.is_brush(),
            "{tool:?}: the radius slider is enabled only for brush tools"
        );
    }
    // The tool keys leave the view keys alone: G shows ground truth, the last tool stays.
    harness.key_press(Key::G);
    harness.run_steps(1);
    assert_eq!(harness.state().state.tool, Tool::ALL[Tool::ALL.len() - 1]);
}

#[test]
fn wheel_notches_step_through_round_zooms() {
    let tmp = tempfile::tempdir().unwrap();
    let fixture = crate::common::native(&tmp.path().join("data"));
    let mut harness = harness_sized(&fixture.root, 1280.0, 800.0);
    let centre = screen(&harness, 12.0, 8.0);
    harness.hover_at(centre);
    harness.run_steps(1);
    let fitted = harness.state().canvas.zoom();
    let wheel = |harness: &mut Harness<'_, Studio>, unit, dy: f32| {
        harness.event(egui::Event::MouseWheel {
            unit,
            delta: egui::vec2(0.0, dy),
            phase: egui::TouchPhase::Move,
            source: egui::MouseWheelSource::Wheel,
            modifiers: Modifiers::NONE,
        });
        harness.run_steps(1);
    };
    wheel(&mut harness, egui::MouseWheelUnit::Line, 1.0);
    let one = harness.state().canvas.zoom();
    assert_eq!(one, step_zoom(fitted, true), "from {fitted}");
    for _ in 0..2 {
        wheel(&mut harness, egui::MouseWheelUnit::Line, 1.0);
    }
    let three = harness.state().canvas.zoom();
    assert!(ZOOM_STEPS.contains(&three), "{three} is a round zoom");
    assert_eq!(three, step_zoom(step_zoom(one, true), true));
    assert!(
        three / fitted < 2.5,
        "three notches from {fitted} went to {three}"
    );
    // A trackpad's small deltas make a notch only once they add up to one.
    wheel(&mut harness, egui::MouseWheelUnit::Point, -20.0);
    assert_eq!(harness.state().canvas.zoom(), three);
    wheel(&mut harness, egui::MouseWheelUnit::Point, -40.0);
    assert_eq!(harness.state().canvas.zoom(), step_zoom(three, false));
}

#[test]
fn the_image_being_labelled_stays_in_the_unlabelled_list_until_the_user_moves_on() {
    let tmp = tempfile::tempdir().unwrap();
    let fixture = crate::common::native(&tmp.path().join("data"));
    // Unlabelled: img1 and img3.
    std::fs::remove_file(fixture.root.join("masks/img1.png")).unwrap();
    let mut harness = harness_sized(&fixture.root, 1280.0, 800.0);
    harness.get_by_label("Unlabelled").click();
    harness.run_steps(1);
    assert_eq!(harness.state().dataset_panel.filter, Filter::Unlabelled);
    harness.key_press(Key::PageDown);
    settle(&mut harness);
    let name = |h: &Harness<'_, Studio>| h.state().selected_name().unwrap().to_string();
    // Home on the first unlabelled image, whatever was selected when the filter changed.
    while name(&harness) != "img1" {
        harness.key_press(Key::PageUp);
        settle(&mut harness);
    }
    harness.key_press(Tool::Brush.key());
    harness.run_steps(1);
    harness.drag_at(screen(&harness, 2.5, 2.5));
    harness.step();
    harness.hover_at(screen(&harness, 8.5, 2.5));
    harness.step();
    harness.drop_at(screen(&harness, 8.5, 2.5));
    harness.run_steps(2);
    harness.key_press_modifiers(Modifiers::COMMAND, Key::S);
    harness.run_steps(2);
    assert!(fixture.root.join("masks/img1.png").is_file(), "saved");
    let visible = |h: &Harness<'_, Studio>| {
        let s = h.state();
        let session = s.session.as_ref().unwrap();
        let list = s.dataset_panel.visible(session, s.selected);
        list.iter()
            .map(|&i| session.entries[i].name.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        visible(&harness),
        ["img1", "img3"],
        "labelled now, but still the current image"
    );
    harness.key_press(Key::PageDown);
    settle(&mut harness);
    assert_eq!(name(&harness), "img3");
    assert_eq!(
        visible(&harness),
        ["img3"],
        "moved on: the labelled image leaves the list"
    );
}

#[test]
fn holding_b_says_what_it_shows_and_the_confidence_view_has_a_legend() {
    let tmp = tempfile::tempdir().unwrap();
    let fixture = crate::common::native(&tmp.path().join("data"));
    let mut harness = harness_sized(&fixture.root, 1280.0, 800.0);
    assert!(harness.query_by_label_contains("B held").is_none());
    harness.key_down(Key::B);
    harness.run_steps(2);
    let shown = harness.state().shown_view().label();
    assert!(
        harness
            .query_by_label_contains(&format!("B held: showing {shown}"))
            .is_some(),
        "an on-canvas note while B is held"
    );
    harness.key_up(Key::B);
    harness.run_steps(2);
    assert!(harness.query_by_label_contains("B held").is_none());
    assert!(
        harness
            .query_by_label_contains("the model is sure")
            .is_none()
    );
    harness.key_press(Key::C);
    harness.run_steps(2);
    assert!(
        harness
            .query_by_label_contains("0%: the model is unsure")
            .is_some()
    );
    assert!(
        harness
            .query_by_label_contains("100%: the model is sure")
            .is_some()
    );
}

#[test]
fn every_message_is_kept_in_view_messages() {
    let tmp = tempfile::tempdir().unwrap();
    let fixture = crate::common::native(&tmp.path().join("data"));
    let mut harness = harness_sized(&fixture.root, 1280.0, 800.0);
    let long = format!(
        "no GPU found: wgpu reports no hardware adapter ({})",
        "x".repeat(300)
    );
    harness.state_mut().message = Some((long.clone(), true));
    harness.run_steps(1);
    harness.state_mut().message = Some(("a second message".into(), false));
    harness.run_steps(1);
    let texts: Vec<String> = harness
        .state()
        .messages
        .texts()
        .map(str::to_string)
        .collect();
    assert!(
        texts.ends_with(&[long.clone(), "a second message".into()]),
        "{texts:?}"
    );
    harness
        .get_by_role_and_label(egui::accesskit::Role::Button, "View")
        .click();
    harness.run_steps(2);
    harness
        .get_by_role_and_label(egui::accesskit::Role::CheckBox, "Messages")
        .click();
    harness.run_steps(2);
    assert!(harness.state().show_messages);
    assert!(
        harness
            .query_by_label_contains("wgpu reports no hardware adapter (xxxx")
            .is_some(),
        "the whole first message is readable in the log"
    );
}

/// File > Open dataset… works without a system file dialog: a typed path, completed from the
/// folders on disk, and the recent folders.
#[test]
fn a_dataset_opens_from_a_typed_path_and_the_recent_list() {
    let tmp = tempfile::tempdir().unwrap();
    let first = crate::common::native(&tmp.path().join("streets"));
    let second = crate::common::voc(&tmp.path().join("voc-export"));
    let mut harness = harness_sized(&first.root, 1280.0, 800.0);
    let open_window = |harness: &mut Harness<'_, Studio>| {
        harness
            .get_by_role_and_label(egui::accesskit::Role::Button, "File")
            .click();
        harness.run_steps(2);
        harness.get_by_label("Open dataset...").click();
        // A new window is laid out invisibly first.
        harness.run_steps(4);
        assert!(harness.state().open_folder.open);
    };
    open_window(&mut harness);
    // Typed: the folder above the open dataset, completed to its sub-folders.
    let typed = harness.state().open_folder.typed.clone();
    assert!(typed.starts_with(&*tmp.path().to_string_lossy()), "{typed}");
    assert!(
        roadseg::studio::app::open_folder_completions(&format!("{typed}voc"))
            == vec![second.root.clone()]
    );
    harness.get_by_label("voc-export/").click();
    harness.run_steps(1);
    harness.state_mut().open_folder.typed.push_str("missing");
    harness.run_steps(1);
    harness.get_by_label("Open").click();
    harness.run_steps(2);
    assert!(
        harness.query_by_label_contains("no such folder").is_some(),
        "a bad path is said in the window"
    );
    harness.state_mut().open_folder.typed = second.root.display().to_string();
    harness.run_steps(1);
    harness.get_by_label("Open").click();
    harness.run_steps(2);
    settle(&mut harness);
    assert_eq!(harness.state().session.as_ref().unwrap().root, second.root);
    assert!(!harness.state().open_folder.open);
    assert_eq!(
        harness.state().state.recent_folders[..2],
        [second.root.clone(), first.root.clone()]
    );
    // Back to the first from the recent list.
    open_window(&mut harness);
    harness
        .get_by_label(&first.root.display().to_string())
        .click();
    harness.run_steps(2);
    settle(&mut harness);
    assert_eq!(harness.state().session.as_ref().unwrap().root, first.root);
}

/// Keyboard navigation scrolls the list to the selected image (rows off screen are not even
/// laid out, so the test can see whether the row is shown).
#[test]
fn keyboard_navigation_scrolls_the_list_to_the_selected_image() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let config = roadseg::core::dataset::sample::SampleConfig {
        count: 40,
        seed: 2,
        width: 48,
        height: 32,
        ..Default::default()
    };
    roadseg::core::dataset::sample::generate(&data, &config).unwrap();
    let mut harness = harness_sized(&data, 1280.0, 800.0);
    assert!(
        harness.query_by_label_contains("road_0030").is_none(),
        "off screen at first"
    );
    // Pressed faster than images load: each press counts from the image asked for last.
    for _ in 0..30 {
        harness.key_press(Key::ArrowDown);
        harness.run_steps(1);
    }
    settle(&mut harness);
    let name = harness.state().selected_name().unwrap().to_string();
    assert_eq!(name, "road_0030");
    // The status bar names it too: the list's row is the second.
    let shown = harness.query_all_by_label_contains(&name).count();
    assert!(
        shown >= 2,
        "the selected row is on screen ({shown} node(s) name it)"
    );
}

//! Helpers the studio tests share: waiting on the UI, reading the open image's mask.

use std::time::{Duration, Instant};

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use roadseg::core::mask::Mask;
use roadseg::studio::Studio;
use roadseg::studio::state::PersistedState;

/// The studio on `data` in a `width` x `height` window, its first image shown.
pub fn harness_sized(data: &std::path::Path, width: f32, height: f32) -> Harness<'static, Studio> {
    let mut harness = Harness::builder()
        .with_size(egui::vec2(width, height))
        .wgpu()
        .build_ui_state(
            |ui, studio: &mut Studio| studio.ui(ui),
            Studio::new(PersistedState::default(), Some(data.to_path_buf())),
        );
    settle(&mut harness);
    harness
}

/// A few frames with the background image loader drained in between.
pub fn settle(harness: &mut Harness<'_, Studio>) {
    harness.run_steps(2);
    harness.state_mut().wait_for_image();
    harness.run_steps(2);
}

/// Steps the UI until `done` holds, failing after `timeout` with `what` was awaited.
pub fn wait_for(
    harness: &mut Harness<'_, Studio>,
    what: &str,
    timeout: Duration,
    done: impl Fn(&Studio) -> bool,
) {
    let deadline = Instant::now() + timeout;
    while !done(harness.state()) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        harness.step();
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The mask of the image open on the canvas.
pub fn mask(harness: &Harness<'_, Studio>) -> Mask {
    harness
        .state()
        .canvas
        .document
        .as_ref()
        .expect("an image is open")
        .mask()
        .clone()
}

/// Answers the window that asks where a copy goes (Convert to native…, Export labels as…) with
/// the folder it proposes: `action` is its button, "Convert" or "Export".
pub fn accept_destination(harness: &mut Harness<'_, Studio>, action: &str) {
    harness.run_steps(4);
    harness
        .get_by_role_and_label(egui::accesskit::Role::Button, action)
        .click();
    harness.run_steps(1);
}

/// Scrolls with the wheel over `over` until a widget labelled `label` is on screen (egui leaves
/// widgets scrolled out of sight out of the accessibility tree, as out of the picture).
pub fn scroll_to_label(harness: &mut Harness<'_, Studio>, over: egui::Pos2, label: &str) {
    scroll_until(harness, over, label, |h| h.query_by_label(label).is_some());
}

/// Scrolls with the wheel over `over` until `shown` holds (`what` names it in the failure).
pub fn scroll_until(
    harness: &mut Harness<'_, Studio>,
    over: egui::Pos2,
    what: &str,
    shown: impl Fn(&Harness<'_, Studio>) -> bool,
) {
    let label = what;
    harness.hover_at(over);
    for _ in 0..20 {
        if shown(harness) {
            return;
        }
        harness.event(egui::Event::MouseWheel {
            unit: egui::MouseWheelUnit::Line,
            delta: egui::vec2(0.0, -2.0),
            phase: egui::TouchPhase::Move,
            source: egui::MouseWheelSource::Wheel,
            modifiers: egui::Modifiers::NONE,
        });
        harness.run_steps(2);
    }
    panic!("{label:?} not found after scrolling");
}

//! Helpers the studio tests share: waiting on the UI, reading the open image's mask.

use std::time::{Duration, Instant};

use egui_kittest::Harness;
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

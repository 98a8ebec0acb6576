//! The studio window (egui). A thin layer over `core`: panels show state and turn clicks and
//! keys into [`app::Command`]s; all dataset, mask and training logic lives in the core.

pub mod app;
pub mod canvas;
pub mod panels;
pub mod session;
pub mod state;
pub mod thumbnails;

use std::path::PathBuf;

pub use app::Studio;

/// Opens the studio window on `dir` (or the last folder, or the bundled sample).
/// Training on the CPU must not starve the UI: burn's CPU backend and the loaders share
/// rayon's global pool, so it gets one core less than the machine has. Call before any
/// compute starts (the pool can be set up only once).
pub fn leave_a_core_for_the_ui() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(cores.saturating_sub(1).max(1))
        .thread_name(|i| format!("compute-{i}"))
        .build_global();
}

pub fn run(dir: Option<PathBuf>) -> anyhow::Result<()> {
    leave_a_core_for_the_ui();
    let options = |renderer| eframe::NativeOptions {
        renderer,
        viewport: egui::ViewportBuilder::default()
            .with_title("roadseg studio")
            .with_inner_size([1280.0, 800.0]),
        ..Default::default()
    };
    let creator = |dir: Option<PathBuf>| -> eframe::AppCreator<'static> {
        Box::new(move |cc| {
            let state = cc
                .storage
                .and_then(|s| eframe::get_value(s, eframe::APP_KEY))
                .unwrap_or_default();
            Ok(Box::new(Studio::new(state, dir)))
        })
    };
    match eframe::run_native(
        "roadseg",
        options(eframe::Renderer::Wgpu),
        creator(dir.clone()),
    ) {
        Ok(()) => Ok(()),
        Err(wgpu_error) => {
            // No usable wgpu adapter (old driver, remote desktop): OpenGL still draws the UI.
            eprintln!("roadseg: the wgpu renderer failed ({wgpu_error}); using OpenGL (glow)");
            eframe::run_native("roadseg", options(eframe::Renderer::Glow), creator(dir))
                .map_err(|e| anyhow::anyhow!("could not open the studio window: {e}"))
        }
    }
}

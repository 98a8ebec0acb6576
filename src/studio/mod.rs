//! The studio window (egui). A thin layer over `core`: panels show state and turn clicks and
//! keys into [`app::Command`]s; all dataset, mask and training logic lives in the core.

pub mod app;
pub mod canvas;
pub mod compare;
pub mod model;
pub mod panels;
pub mod session;
pub mod state;
pub mod thumbnails;

pub use app::{StartOptions, Studio};

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

/// Why the studio cannot open a window here, if it obviously cannot: on Linux and the BSDs a
/// window needs an X11 or Wayland display. Checked before winit, whose own error ("EventLoop
/// can't be recreated", after a wgpu failure) says nothing useful.
pub fn missing_display() -> Option<String> {
    let needs_display = cfg!(all(
        unix,
        not(target_os = "macos"),
        not(target_os = "android")
    ));
    let has = |var: &str| std::env::var_os(var).is_some_and(|v| !v.is_empty());
    (needs_display && !has("DISPLAY") && !has("WAYLAND_DISPLAY")).then(|| {
        "no display found (neither DISPLAY nor WAYLAND_DISPLAY is set), so the studio window \
         cannot open. Everything else works without one: `roadseg train`, `eval`, `predict`, \
         `info`, `sample`, `convert`, `bench` (see `roadseg --help`)."
            .to_string()
    })
}

/// The window icon (`assets/icon.png`).
fn icon() -> Option<egui::IconData> {
    let png = include_bytes!("../../assets/icon.png");
    let image = image::load_from_memory(png).ok()?.into_rgba8();
    Some(egui::IconData {
        width: image.width(),
        height: image.height(),
        rgba: image.into_raw(),
    })
}

pub fn run(options: StartOptions) -> anyhow::Result<()> {
    if let Some(why) = missing_display() {
        anyhow::bail!(why);
    }
    leave_a_core_for_the_ui();
    let native = |renderer| {
        let mut viewport = egui::ViewportBuilder::default()
            .with_title("roadseg studio")
            .with_inner_size([1280.0, 800.0]);
        if let Some(icon) = icon() {
            viewport = viewport.with_icon(icon);
        }
        eframe::NativeOptions {
            renderer,
            viewport,
            ..Default::default()
        }
    };
    let creator = |options: StartOptions| -> eframe::AppCreator<'static> {
        Box::new(move |cc| {
            let state = cc
                .storage
                .and_then(|s| eframe::get_value(s, eframe::APP_KEY))
                .unwrap_or_default();
            let mut studio = Studio::with_options(state, options);
            // wgpu: our overlay pipeline draws the canvas; OpenGL: the CPU composites it.
            if let Some(render_state) = &cc.wgpu_render_state {
                studio.use_gpu_overlay(render_state);
            }
            Ok(Box::new(studio))
        })
    };
    match eframe::run_native(
        "roadseg",
        native(eframe::Renderer::Wgpu),
        creator(options.clone()),
    ) {
        Ok(()) => Ok(()),
        Err(wgpu_error) => {
            // No usable wgpu adapter (old driver, remote desktop): OpenGL still draws the UI.
            eprintln!("roadseg: the wgpu renderer failed ({wgpu_error}); using OpenGL (glow)");
            eframe::run_native("roadseg", native(eframe::Renderer::Glow), creator(options))
                .map_err(|e| anyhow::anyhow!("could not open the studio window: {e}"))
        }
    }
}

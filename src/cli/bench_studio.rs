//! `roadseg bench --studio`: the studio's own costs without a screen: opening a 10,000-image
//! folder; the CPU time and GPU upload volume of each frame while painting on a 4K image; the
//! same in the difference view, composited on the CPU (the OpenGL fallback) and drawn by the
//! wgpu overlay shader off-screen (CPU and GPU time to a finished frame, on whatever adapter
//! wgpu opens: a software rasteriser on machines without a GPU); and, with `--model RUN`, how
//! long the Errors panel's analysis of the sample's validation split takes.

use std::path::Path;
use std::time::{Duration, Instant};

use eframe::egui_wgpu::{self, wgpu};
use image::{Rgb, RgbImage};
use roadseg::core::analysis::worker::{
    AnalysisRequest, ModelCommand, ModelEvent, ModelWorker, Scope,
};
use roadseg::core::dataset::ClassTable;
use roadseg::core::device::DeviceChoice;
use roadseg::core::mask::Mask;
use roadseg::studio::Studio;
use roadseg::studio::canvas::Tool;
use roadseg::studio::compare::ViewMode;
use roadseg::studio::session::Session;
use roadseg::studio::state::PersistedState;

fn native_dataset(dir: &Path, images: usize, size: [u32; 2]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir.join("images"))?;
    std::fs::create_dir_all(dir.join("masks"))?;
    ClassTable::from_pairs([("road", [128, 64, 128]), ("sky", [70, 130, 180])])
        .write_json(&dir.join("classes.json"))?;
    let [w, h] = size;
    let image = RgbImage::from_fn(w, h, |x, y| Rgb([(x % 251) as u8, (y % 241) as u8, 90]));
    let mut bytes = Vec::new();
    image.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )?;
    for i in 0..images {
        std::fs::write(dir.join(format!("images/img_{i:05}.png")), &bytes)?;
    }
    Ok(())
}

/// One frame as eframe runs it on the CPU: UI pass and tessellation. Returns the CPU time and
/// the bytes of texture data handed to the GPU.
fn frame(ctx: &egui::Context, studio: &mut Studio, events: Vec<egui::Event>) -> (Duration, u64) {
    let input = egui::RawInput {
        screen_rect: Some(egui::Rect::from_min_size(
            egui::Pos2::ZERO,
            egui::vec2(1600.0, 1000.0),
        )),
        events,
        ..Default::default()
    };
    let start = Instant::now();
    let output = ctx.run_ui(input, |ui| studio.ui(ui));
    let _ = ctx.tessellate(output.shapes, output.pixels_per_point);
    let elapsed = start.elapsed();
    let mut delta = output.textures_delta;
    let bytes = delta
        .set
        .values()
        .flatten()
        .map(|d| (d.image.width() * d.image.height() * 4) as u64)
        .sum();
    // No GPU here to apply them to.
    delta.clear();
    (elapsed, bytes)
}

/// An off-screen wgpu target the size of the bench's window, drawn the way eframe draws a frame.
struct Offscreen {
    state: egui_wgpu::RenderState,
    view: wgpu::TextureView,
    size: [u32; 2],
}

impl Offscreen {
    /// `None` when wgpu opens no adapter at all.
    fn new() -> Option<Self> {
        let setup = egui_wgpu::WgpuSetup::CreateNew(
            egui_wgpu::WgpuSetupCreateNew::without_display_handle(),
        );
        let instance = pollster::block_on(setup.new_instance());
        let config = egui_wgpu::WgpuConfiguration {
            wgpu_setup: setup,
            ..Default::default()
        };
        let state = pollster::block_on(egui_wgpu::RenderState::create(
            &config,
            &instance,
            None,
            egui_wgpu::RendererOptions::default(),
        ))
        .ok()?;
        let size = [1600, 1000];
        let target = state.device.create_texture(&wgpu::TextureDescriptor {
            label: Some("bench studio frame"),
            size: wgpu::Extent3d {
                width: size[0],
                height: size[1],
                depth_or_array_layers: 1,
            },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: state.target_format,
            usage: wgpu::TextureUsages::RENDER_ATTACHMENT,
            view_formats: &[],
        });
        let view = target.create_view(&wgpu::TextureViewDescriptor::default());
        Some(Self { state, view, size })
    }

    fn adapter(&self) -> String {
        let info = self.state.adapter.get_info();
        format!("{} ({:?})", info.name, info.device_type)
    }

    /// Uploads the frame's textures, runs the paint callbacks' `prepare`, draws, and waits for
    /// the GPU to finish.
    fn render(&self, ctx: &egui::Context, output: egui::FullOutput) -> anyhow::Result<()> {
        let mut renderer = self.state.renderer.write();
        let (device, queue) = (&self.state.device, &self.state.queue);
        for (id, deltas) in &output.textures_delta.set {
            for delta in deltas {
                renderer.update_texture(device, queue, *id, delta);
            }
        }
        let screen = egui_wgpu::ScreenDescriptor {
            size_in_pixels: self.size,
            pixels_per_point: output.pixels_per_point,
        };
        let primitives = ctx.tessellate(output.shapes, output.pixels_per_point);
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("bench studio encoder"),
        });
        let user = renderer.update_buffers(device, queue, &mut encoder, &primitives, &screen);
        {
            let mut pass = encoder
                .begin_render_pass(&wgpu::RenderPassDescriptor {
                    label: Some("bench studio pass"),
                    color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                        view: &self.view,
                        resolve_target: None,
                        depth_slice: None,
                        ops: wgpu::Operations {
                            load: wgpu::LoadOp::Clear(wgpu::Color::BLACK),
                            store: wgpu::StoreOp::Store,
                        },
                    })],
                    ..Default::default()
                })
                .forget_lifetime();
            renderer.render(&mut pass, &primitives, &screen);
        }
        let submission = queue.submit(user.into_iter().chain([encoder.finish()]));
        device.poll(wgpu::PollType::Wait {
            submission_index: Some(submission),
            timeout: Some(Duration::from_secs(30)),
        })?;
        for id in &output.textures_delta.free {
            renderer.free_texture(id);
        }
        Ok(())
    }
}

/// One frame drawn completely: UI pass, tessellation, uploads, the overlay shader, and the
/// GPU finishing it.
fn gpu_frame(
    ctx: &egui::Context,
    studio: &mut Studio,
    events: Vec<egui::Event>,
    gpu: &Offscreen,
) -> anyhow::Result<Duration> {
    let input = egui::RawInput {
        screen_rect: Some(egui::Rect::from_min_size(
            egui::Pos2::ZERO,
            egui::vec2(gpu.size[0] as f32, gpu.size[1] as f32),
        )),
        events,
        ..Default::default()
    };
    let start = Instant::now();
    let output = ctx.run_ui(input, |ui| studio.ui(ui));
    gpu.render(ctx, output)?;
    Ok(start.elapsed())
}

/// A prediction for a 4096x3072 image that disagrees with a road stroke in places: bands of
/// road and sky 512 pixels wide, confidence rising across the image.
fn banded_prediction() -> (Mask, Vec<u8>) {
    let (w, h) = (4096u32, 3072u32);
    let ids = Mask {
        width: w,
        height: h,
        data: (0..w * h).map(|i| ((i % w) / 512 % 2) as u8).collect(),
    };
    let confidence = (0..w * h).map(|i| ((i % w) / 16) as u8).collect();
    (ids, confidence)
}

/// Difference view while painting a stroke across the 4K image, `frames` frames; returns mean
/// and p95 frame time in ms. `gpu`: frames drawn by wgpu to the end, the canvas by the overlay
/// shader when `shader`, else composited on the CPU into egui textures; without `gpu`, the UI
/// thread's CPU time only.
fn paint_in_difference_view(
    four_k: &Path,
    frames: usize,
    gpu: Option<&Offscreen>,
    shader: bool,
) -> anyhow::Result<(f64, f64)> {
    let ctx = egui::Context::default();
    let state = PersistedState {
        view: ViewMode::Difference,
        diff_class: 0,
        tool: Tool::Brush,
        brush_radius: 24.0,
        ..Default::default()
    };
    let mut studio = Studio::new(state, Some(four_k.to_path_buf()));
    if let Some(gpu) = gpu.filter(|_| shader) {
        studio.use_gpu_overlay(&gpu.state);
    }
    let step = |studio: &mut Studio, events| -> anyhow::Result<f64> {
        let t = match gpu {
            Some(gpu) => gpu_frame(&ctx, studio, events, gpu)?,
            None => frame(&ctx, studio, events).0,
        };
        Ok(t.as_secs_f64() * 1000.0)
    };
    step(&mut studio, Vec::new())?;
    step(&mut studio, Vec::new())?;
    studio.wait_for_image();
    let (ids, confidence) = banded_prediction();
    anyhow::ensure!(
        studio.canvas.set_prediction(ids, confidence),
        "prediction size"
    );
    // The first frames upload the image and the prediction once.
    step(&mut studio, Vec::new())?;
    step(&mut studio, Vec::new())?;
    let at = |studio: &Studio, t: f32| studio.canvas.image_to_screen([200.0 + t * 3600.0, 1700.0]);
    let press = |pos, pressed| egui::Event::PointerButton {
        pos,
        button: egui::PointerButton::Primary,
        pressed,
        modifiers: egui::Modifiers::NONE,
    };
    let start_pos = at(&studio, 0.0);
    step(
        &mut studio,
        vec![egui::Event::PointerMoved(start_pos), press(start_pos, true)],
    )?;
    let mut times = Vec::with_capacity(frames);
    for i in 1..=frames {
        let pos = at(&studio, i as f32 / frames as f32);
        times.push(step(&mut studio, vec![egui::Event::PointerMoved(pos)])?);
    }
    let end = at(&studio, 1.0);
    step(&mut studio, vec![press(end, false)])?;
    let painted = studio
        .canvas
        .document
        .as_ref()
        .map_or(0, |d| d.mask().data.iter().filter(|&&v| v == 0).count());
    anyhow::ensure!(painted > 0, "the simulated stroke painted nothing");
    times.sort_by(f64::total_cmp);
    let mean = times.iter().sum::<f64>() / frames as f64;
    Ok((mean, times[frames * 95 / 100]))
}

/// The Errors panel's analysis of the validation split of the dataset `run` was trained on:
/// images scored and seconds taken (in the model worker, on the CPU).
fn error_table(run: &Path) -> anyhow::Result<(usize, f64)> {
    let config = roadseg::core::train::run_dir::RunDir::new(run).read_config()?;
    let worker = ModelWorker::spawn(|| {})?;
    worker.send(ModelCommand::Load {
        run: run.to_path_buf(),
        device: DeviceChoice::Cpu,
    });
    let wait = |what: &str| -> anyhow::Result<ModelEvent> {
        worker
            .recv_timeout(Duration::from_secs(600))
            .ok_or_else(|| anyhow::anyhow!("no answer from the model worker ({what})"))
    };
    match wait("loading")? {
        ModelEvent::Loaded { .. } => {}
        ModelEvent::LoadFailed { error, .. } => anyhow::bail!(error),
        other => anyhow::bail!("unexpected {other:?}"),
    }
    let start = Instant::now();
    worker.send(ModelCommand::Analyse(AnalysisRequest {
        tag: 1,
        data: config.data.clone(),
        format: None,
        scope: Scope::Validation,
    }));
    loop {
        match wait("analysing")? {
            ModelEvent::Progress { .. } => {}
            ModelEvent::Analysis(a) => return Ok((a.images.len(), start.elapsed().as_secs_f64())),
            ModelEvent::Failed { error, .. } => anyhow::bail!(error),
            other => anyhow::bail!("unexpected {other:?}"),
        }
    }
}

pub fn run(json: bool, model: Option<&Path>) -> anyhow::Result<()> {
    roadseg::studio::leave_a_core_for_the_ui();
    let tmp = tempfile_dir()?;

    // 1. A folder of 10,000 images: scan, then the first frame of the list.
    let big = tmp.join("ten-thousand");
    native_dataset(&big, 10_000, [32, 24])?;
    let start = Instant::now();
    let session = Session::open(&big).map_err(anyhow::Error::msg)?;
    let scan = start.elapsed();
    anyhow::ensure!(
        session.entries.len() == 10_000,
        "scan found {}",
        session.entries.len()
    );
    drop(session);
    let ctx = egui::Context::default();
    let mut studio = Studio::new(PersistedState::default(), Some(big.clone()));
    let start = Instant::now();
    frame(&ctx, &mut studio, Vec::new());
    let (first_frame, _) = frame(&ctx, &mut studio, Vec::new());
    let open = start.elapsed();

    // 2. Painting on a 4096x3072 image.
    let four_k = tmp.join("four-k");
    native_dataset(&four_k, 1, [4096, 3072])?;
    let ctx = egui::Context::default();
    let mut studio = Studio::new(PersistedState::default(), Some(four_k.clone()));
    frame(&ctx, &mut studio, Vec::new());
    frame(&ctx, &mut studio, Vec::new());
    studio.wait_for_image();
    frame(&ctx, &mut studio, Vec::new());
    frame(&ctx, &mut studio, Vec::new());
    studio.state.tool = Tool::Brush;
    studio.state.brush_radius = 24.0;
    let at = |studio: &Studio, t: f32| studio.canvas.image_to_screen([200.0 + t * 3600.0, 1500.0]);
    let press = |pos, pressed| egui::Event::PointerButton {
        pos,
        button: egui::PointerButton::Primary,
        pressed,
        modifiers: egui::Modifiers::NONE,
    };
    let start_pos = at(&studio, 0.0);
    frame(
        &ctx,
        &mut studio,
        vec![egui::Event::PointerMoved(start_pos), press(start_pos, true)],
    );
    let frames = 120;
    let mut times = Vec::with_capacity(frames);
    let mut uploaded = 0u64;
    for i in 1..=frames {
        let pos = at(&studio, i as f32 / frames as f32);
        let (t, bytes) = frame(&ctx, &mut studio, vec![egui::Event::PointerMoved(pos)]);
        times.push(t.as_secs_f64() * 1000.0);
        uploaded += bytes;
    }
    let end = at(&studio, 1.0);
    frame(&ctx, &mut studio, vec![press(end, false)]);
    let painted = studio
        .canvas
        .document
        .as_ref()
        .map_or(0, |d| d.mask().data.iter().filter(|&&v| v == 0).count());
    anyhow::ensure!(painted > 0, "the simulated stroke painted nothing");
    times.sort_by(f64::total_cmp);
    let mean = times.iter().sum::<f64>() / frames as f64;
    let p95 = times[frames * 95 / 100];
    let per_frame = uploaded / frames as u64;

    // 3. The same painting while the studio trains the Quick preset on the CPU, frames paced
    //    at 60 Hz: how much the worker slows the UI thread.
    let (busy_mean, busy_p95, busy_steps) = paint_while_training(&ctx, &mut studio)?;
    drop(studio);

    // 4. Painting in the difference view: composited on the CPU, and drawn by the shader.
    let (cpu_diff_mean, cpu_diff_p95) = paint_in_difference_view(&four_k, frames, None, false)?;
    let gpu = Offscreen::new();
    let gpu_diff = match &gpu {
        Some(gpu) => Some((
            gpu.adapter(),
            paint_in_difference_view(&four_k, 60, Some(gpu), true)?,
            paint_in_difference_view(&four_k, 60, Some(gpu), false)?,
        )),
        None => None,
    };
    let _ = std::fs::remove_dir_all(&tmp);

    // 5. The Errors table for the run's validation split.
    let errors = model.map(error_table).transpose()?;

    if json {
        println!(
            "{}",
            serde_json::json!({"studio": {
                "open_10000": {"scan_ms": scan.as_secs_f64() * 1e3, "first_frames_ms": open.as_secs_f64() * 1e3,
                    "list_frame_ms": first_frame.as_secs_f64() * 1e3},
                "paint_4096x3072": {"frames": frames, "mean_frame_ms": mean, "p95_frame_ms": p95,
                    "upload_bytes_per_frame": per_frame, "whole_mask_bytes": 4096u64 * 3072 * 4},
                "paint_while_training": {"mean_frame_ms": busy_mean, "p95_frame_ms": busy_p95,
                    "training_steps_meanwhile": busy_steps},
                "paint_difference_view_cpu": {"mean_frame_ms": cpu_diff_mean, "p95_frame_ms": cpu_diff_p95},
                "paint_difference_view_wgpu": gpu_diff.as_ref().map(|(adapter, (mean, p95), (tex_mean, tex_p95))| serde_json::json!({
                    "adapter": adapter, "mean_frame_ms": mean, "p95_frame_ms": p95,
                    "cpu_composited_mean_frame_ms": tex_mean, "cpu_composited_p95_frame_ms": tex_p95})),
                "error_table": errors.map(|(images, secs)| serde_json::json!({
                    "images": images, "seconds": secs}))}})
        );
    } else {
        println!(
            "open 10,000 images: scan {:.0} ms, first two frames {:.0} ms (list frame {:.1} ms)",
            scan.as_secs_f64() * 1e3,
            open.as_secs_f64() * 1e3,
            first_frame.as_secs_f64() * 1e3
        );
        println!(
            "paint on 4096x3072: {mean:.2} ms CPU per frame (p95 {p95:.2} ms) over {frames} frames of a stroke; {per_frame} bytes uploaded per frame (whole mask: {} bytes)",
            4096u64 * 3072 * 4
        );
        println!(
            "paint on 4096x3072 while training on the CPU: {busy_mean:.2} ms per UI frame (p95 {busy_p95:.2} ms: the UI thread alone could do {:.0} fps); {busy_steps} training steps meanwhile",
            1000.0 / busy_p95
        );
        println!(
            "paint on 4096x3072 in the difference view, composited on the CPU (OpenGL fallback): {cpu_diff_mean:.2} ms CPU per frame (p95 {cpu_diff_p95:.2} ms)"
        );
        match &gpu_diff {
            Some((adapter, (mean, p95), (tex_mean, tex_p95))) => println!(
                "paint on 4096x3072 in the difference view, whole frames drawn by wgpu on {adapter}: {mean:.2} ms per finished frame with the overlay shader (p95 {p95:.2} ms); {tex_mean:.2} ms with the canvas composited on the CPU into egui textures (p95 {tex_p95:.2} ms)"
            ),
            None => println!("difference view on wgpu: skipped (no wgpu adapter)"),
        }
        match errors {
            Some((images, secs)) => println!(
                "error table: {images} validation images analysed in {secs:.2} s (predict, score, rank; CPU)"
            ),
            None => println!(
                "error table: skipped (pass --model RUN, a run trained on the bundled sample)"
            ),
        }
    }
    Ok(())
}

/// Trains the bundled sample with the Quick preset in the studio's worker while painting
/// strokes on the canvas at 60 Hz; returns mean and p95 frame time and the steps trained.
fn paint_while_training(
    ctx: &egui::Context,
    studio: &mut Studio,
) -> anyhow::Result<(f64, f64, usize)> {
    use roadseg::core::dataset::workspace;
    let sample = workspace::default_sample()?;
    let worker = roadseg::core::train::worker::TrainWorker::spawn(|| {})?;
    let runs = std::env::temp_dir().join(format!("roadseg-bench-runs-{}", std::process::id()));
    // What the Quick preset trained before it became a time budget (96x64, depth 3), for as
    // long as the painting goes: the load this bench has always measured under.
    let mut config = roadseg::studio::panels::training::Preset::Quick.config();
    config.auto = None;
    config.epochs = 1000;
    config.size = [96, 64];
    config.model.depth = 3;
    worker.send(roadseg::core::train::worker::WorkerCommand::Start(
        Box::new(roadseg::core::train::trainer::TrainStart::New {
            data: roadseg::core::train::trainer::DataSpec {
                root: sample,
                format: None,
            },
            config: Box::new(config),
            out: runs.join("run"),
        }),
        roadseg::core::train::trainer::TrainOptions {
            device: roadseg::core::device::DeviceChoice::Cpu,
            ..Default::default()
        },
    ));
    // Let the run get going (dataset check, first steps).
    let mut steps = 0usize;
    let warm = Instant::now();
    while steps < 3 && warm.elapsed() < Duration::from_secs(120) {
        for event in worker.drain(Duration::from_millis(5)) {
            if let roadseg::core::train::worker::WorkerEvent::Train(
                roadseg::core::train::trainer::TrainEvent::Step(_),
            ) = event
            {
                steps += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let press = |pos, pressed| egui::Event::PointerButton {
        pos,
        button: egui::PointerButton::Primary,
        pressed,
        modifiers: egui::Modifiers::NONE,
    };
    let frames = 180;
    let mut times = Vec::with_capacity(frames);
    let start_pos = studio.canvas.image_to_screen([200.0, 800.0]);
    frame(
        ctx,
        studio,
        vec![egui::Event::PointerMoved(start_pos), press(start_pos, true)],
    );
    steps = 0;
    for i in 1..=frames {
        let tick = Instant::now();
        let pos = studio
            .canvas
            .image_to_screen([200.0 + i as f32 * 20.0, 800.0 + (i % 30) as f32 * 20.0]);
        let (t, _) = frame(ctx, studio, vec![egui::Event::PointerMoved(pos)]);
        times.push(t.as_secs_f64() * 1000.0);
        for event in worker.drain(Duration::from_millis(1)) {
            if let roadseg::core::train::worker::WorkerEvent::Train(
                roadseg::core::train::trainer::TrainEvent::Step(_),
            ) = event
            {
                steps += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(16).saturating_sub(tick.elapsed()));
    }
    drop(worker);
    let _ = std::fs::remove_dir_all(&runs);
    times.sort_by(f64::total_cmp);
    let mean = times.iter().sum::<f64>() / frames as f64;
    Ok((mean, times[frames * 95 / 100], steps))
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("roadseg-bench-studio-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

//! `roadseg bench --studio`: the studio's own costs without a screen: opening a 10,000-image
//! folder, and the CPU time and GPU upload volume of each frame while painting on a 4K image.
//! (The GPU's side of drawing is not in these figures; the upload volume is what it receives.)

use std::path::Path;
use std::time::{Duration, Instant};

use image::{Rgb, RgbImage};
use roadseg::core::dataset::ClassTable;
use roadseg::studio::Studio;
use roadseg::studio::canvas::Tool;
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

pub fn run(json: bool) -> anyhow::Result<()> {
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
    let _ = std::fs::remove_dir_all(&tmp);

    if json {
        println!(
            "{}",
            serde_json::json!({"studio": {
                "open_10000": {"scan_ms": scan.as_secs_f64() * 1e3, "first_frames_ms": open.as_secs_f64() * 1e3,
                    "list_frame_ms": first_frame.as_secs_f64() * 1e3},
                "paint_4096x3072": {"frames": frames, "mean_frame_ms": mean, "p95_frame_ms": p95,
                    "upload_bytes_per_frame": per_frame, "whole_mask_bytes": 4096u64 * 3072 * 4},
                "paint_while_training": {"mean_frame_ms": busy_mean, "p95_frame_ms": busy_p95,
                    "training_steps_meanwhile": busy_steps}}})
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
    let mut config = roadseg::studio::panels::training::Preset::Quick.config();
    config.epochs = 1000;
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

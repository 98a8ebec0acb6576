//! `roadseg bench`: data pipeline throughput, training images/s and inference ms/image. Speed
//! targets are checked here, never in timed unit tests.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use burn::module::Module;
use burn::tensor::{Device, Distribution, Int, Tensor};
use roadseg::core::dataset::loader::{LoaderConfig, SegDataset, SegLoader, default_workers};
use roadseg::core::dataset::{DatasetIndex, Sample, workspace};
use roadseg::core::device::{DeviceChoice, resolve};
use roadseg::core::kernels::{self, ops, simd};
use roadseg::core::model::segmenter::{Encoder, Segmenter, SegmenterConfig};
use roadseg::core::train::config::TrainConfig;
use roadseg::core::train::optim::build_optimizer;
use roadseg::core::train::step::train_step;
use serde::Serialize;

/// Which flags go with which measurement is told to clap (`requires`, `conflicts_with`), so a
/// flag that would be ignored is refused instead: `--paint`, `--studio`, `--soak`, `--assist`,
/// `--model` and the default data pipeline (+ `--train`) measure different things. One pair
/// clap cannot say: `--data` with `--model` only goes with `--assist` (checked in [`run`]).
#[derive(clap::Args)]
pub struct Args {
    /// Dataset for the data pipeline figure (default: the bundled sample); with --assist, the
    /// dataset to measure click-to-segment on (default: hard scenes drawn for the run).
    #[arg(long, conflicts_with = "paint")]
    data: Option<PathBuf>,
    /// Sizes to measure, WIDTHxHEIGHT (repeatable; default: the training default).
    #[arg(long, value_parser = super::parse_size, conflicts_with = "paint")]
    size: Vec<[u32; 2]>,
    /// Batch size (default: the training default).
    #[arg(long, value_parser = super::parse_count, conflicts_with_all = ["model", "paint"])]
    batch_size: Option<usize>,
    /// Loader worker threads (default: one per core).
    #[arg(long, value_parser = super::parse_count, conflicts_with_all = ["model", "paint"])]
    workers: Option<usize>,
    /// Batches to time for the data pipeline.
    #[arg(long, default_value_t = 20, value_parser = super::parse_count,
        conflicts_with_all = ["model", "paint"])]
    batches: usize,
    /// Also time training steps and inference of the default model.
    #[arg(long, group = "timed", conflicts_with_all = ["model", "paint"])]
    train: bool,
    /// Training steps to time (after two warm-up steps); the median is reported.
    #[arg(long, default_value_t = 5, value_parser = super::parse_count, requires = "train")]
    steps: usize,
    /// Also time the model on burn's own CPU operations instead of roadseg's kernels (the
    /// "before" of the kernels, measured in the same run).
    #[arg(long, requires = "train")]
    baseline: bool,
    /// Encoder for the training figures: unet (default), resnet18, resnet34, resnet50; repeat
    /// the flag to measure several.
    #[arg(long, requires = "train")]
    encoder: Vec<Encoder>,
    /// UNet base width for the training figures (default: the training default).
    #[arg(long, value_parser = super::parse_count, requires = "train")]
    width: Option<usize>,
    /// UNet depth for the training figures (default: the training default).
    #[arg(long, value_parser = super::parse_count, requires = "train")]
    depth: Option<usize>,
    /// Time brush dabs on a 4096x3072 mask instead (edit, undo tiles, RGBA of the dirty rect).
    #[arg(long, conflicts_with = "model")]
    paint: bool,
    /// Measure click-to-segment instead: RITM's protocol (a simulated user clicks the largest
    /// error until IoU 0.90, at most 20 clicks) on each road, sidewalk and vehicle; NoC@85,
    /// NoC@90, IoU after one click, failures and ms per click per class. Without --data, on 6
    /// hard scenes at 2048x1024 drawn for the run (--scene-seed picks others). With --model RUN, the
    /// run's prediction is the prior, as in the studio.
    #[arg(long, conflicts_with_all = ["paint", "train", "size", "batch_size", "workers",
        "batches", "compare", "runs", "isolated"])]
    assist: bool,
    /// With --assist: how many images to measure on (default 6).
    #[arg(long, value_parser = super::parse_count, requires = "assist")]
    images: Option<usize>,
    /// With --assist and no --data: the seed the scenes are drawn with (default 17). Named
    /// apart from the soak's --seed, which seeds its script.
    #[arg(long, requires = "assist", conflicts_with = "data")]
    scene_seed: Option<u64>,
    /// Time the studio without a screen instead: opening 10,000 images, painting on 4K.
    #[cfg(feature = "gui")]
    #[arg(long, conflicts_with_all = ["paint", "train", "data", "size", "batch_size",
        "workers", "batches", "compare", "runs", "device", "assist"])]
    studio: bool,
    /// The studio soak: a scripted hour of use (memory curve), or killed sessions.
    #[cfg(feature = "gui")]
    #[command(flatten)]
    soak: super::soak::Args,
    /// A run: time its inference (latency p50/p95, images/s at each --size, peak resident
    /// memory). With --studio: a run trained on the bundled sample, to time the Errors panel's
    /// analysis of the sample's validation split.
    #[arg(long, group = "timed")]
    model: Option<PathBuf>,
    /// With --model: more runs (quantized, pruned variants) measured the same way, side by side.
    #[arg(long, num_args = 1.., requires = "model")]
    compare: Vec<PathBuf>,
    /// With --model: timed inference runs per size.
    #[arg(long, default_value_t = 20, value_parser = super::parse_count, requires = "model")]
    runs: usize,
    /// With --model: measure that one run in this process (what each child of --compare does).
    #[arg(long, hide = true, requires = "model")]
    isolated: bool,
    /// Device of --train and --model (the data pipeline always decodes on the CPU).
    #[arg(long, default_value = "cpu", requires = "timed")]
    device: DeviceChoice,
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct DataBench {
    size: [u32; 2],
    batch_size: usize,
    workers: usize,
    images_per_sec: f64,
}

#[derive(Serialize)]
struct ModelBench {
    size: [u32; 2],
    batch_size: usize,
    encoder: String,
    base_width: usize,
    depth: usize,
    /// Which CPU operations ran: roadseg's kernels (with their instruction set) or burn's.
    ops: String,
    /// From the median step time.
    train_images_per_sec: f64,
    train_step_ms: f64,
    /// Median of batch-1 forward + arg-max + read-back.
    inference_ms_per_image: f64,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.paint {
        return paint_bench(args.json);
    }
    if args.assist {
        return super::bench_assist::run(super::bench_assist::Options {
            data: args.data.as_deref(),
            model: args.model.as_deref(),
            images: args.images,
            seed: args.scene_seed,
            device: args.device,
            json: args.json,
        });
    }
    if args.data.is_some() && args.model.is_some() {
        anyhow::bail!(
            "the argument '--data <DATA>' cannot be used with '--model <MODEL>' (the data \
             pipeline and a run's latency are separate measurements; --assist takes both)"
        );
    }
    #[cfg(feature = "gui")]
    if args.studio {
        return super::bench_studio::run(args.json, args.model.as_deref());
    }
    if let Some(model) = &args.model {
        if args.isolated {
            return super::bench_model::isolated(model, &args.size, args.device, args.runs);
        }
        let mut runs = vec![model.clone()];
        runs.extend(args.compare.iter().cloned());
        return super::bench_model::run(&runs, &args.size, args.device, args.runs, args.json);
    }
    #[cfg(feature = "gui")]
    if args.soak.wanted() {
        return super::soak::run(&args.soak, args.json);
    }
    let defaults = TrainConfig::default();
    let sizes = if args.size.is_empty() {
        vec![defaults.size]
    } else {
        args.size.clone()
    };
    let batch_size = args.batch_size.unwrap_or(defaults.batch_size);
    let mut data = Vec::new();
    for &size in &sizes {
        data.push(data_bench(&args, size, batch_size)?);
    }
    let mut models = Vec::new();
    let mut device_name = String::new();
    if args.train {
        let (device, name) = resolve(args.device)?;
        device_name = name;
        let encoders = match args.encoder.is_empty() {
            true => vec![Encoder::Unet],
            false => args.encoder.clone(),
        };
        for &encoder in &encoders {
            for &size in &sizes {
                models.push(model_bench(&args, encoder, &device, size, batch_size)?);
                if args.baseline {
                    models.push(ops::with_burn_ops(|| {
                        model_bench(&args, encoder, &device, size, batch_size)
                    })?);
                }
            }
        }
    }
    if args.json {
        let out = serde_json::json!({ "data": data, "model": models, "device": device_name });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    for d in &data {
        println!(
            "data pipeline   {:>4}x{:<4} {:>8.1} images/s  (batch {}, {} workers: decode + augment + batch)",
            d.size[0], d.size[1], d.images_per_sec, d.batch_size, d.workers
        );
    }
    for m in &models {
        println!(
            "training        {:>4}x{:<4} {:>8.1} images/s  (median step {:.0} ms; {} encoder, width {} depth {}, batch {}, {device_name}, {})",
            m.size[0],
            m.size[1],
            m.train_images_per_sec,
            m.train_step_ms,
            m.encoder,
            m.base_width,
            m.depth,
            m.batch_size,
            m.ops
        );
        println!(
            "inference       {:>4}x{:<4} {:>8.1} ms/image (batch 1, median; {})",
            m.size[0], m.size[1], m.inference_ms_per_image, m.ops
        );
    }
    let per_size = if args.baseline { 2 } else { 1 };
    for (d, m) in data.iter().zip(models.iter().step_by(per_size)) {
        println!(
            "data/training   {:>4}x{:<4} {:>8.1}x",
            d.size[0],
            d.size[1],
            d.images_per_sec / m.train_images_per_sec
        );
    }
    Ok(())
}

fn data_bench(args: &Args, size: [u32; 2], batch_size: usize) -> anyhow::Result<DataBench> {
    let root = match &args.data {
        Some(dir) => dir.clone(),
        None => workspace::default_sample()?,
    };
    let index = DatasetIndex::open(&root, None)?;
    let samples: Vec<&Sample> = index.labelled().collect();
    anyhow::ensure!(
        !samples.is_empty(),
        "{}: no labelled images",
        root.display()
    );
    let workers = args.workers.unwrap_or_else(default_workers);
    let cfg = LoaderConfig {
        size,
        batch_size,
        num_workers: workers,
        ..Default::default()
    };
    let loader = SegLoader::new(
        SegDataset::new(&index, &samples, &cfg),
        &cfg,
        Device::flex(),
    );
    // Warm-up: thread start, first allocations.
    loader
        .epoch(usize::MAX)
        .next()
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let mut images = 0usize;
    let mut epoch = 0;
    let start = Instant::now();
    'outer: loop {
        for batch in loader.epoch(epoch) {
            let batch = batch
                .map_err(anyhow::Error::msg)
                .context("loading a batch")?;
            images += batch.images.dims()[0];
            if images >= args.batches * batch_size {
                break 'outer;
            }
        }
        epoch += 1;
    }
    Ok(DataBench {
        size,
        batch_size,
        workers,
        images_per_sec: images as f64 / start.elapsed().as_secs_f64(),
    })
}

/// Times training steps on random batches (compute only: the loader is measured separately)
/// and batch-1 inference.
fn model_bench(
    args: &Args,
    encoder: Encoder,
    device: &Device,
    size: [u32; 2],
    batch_size: usize,
) -> anyhow::Result<ModelBench> {
    let defaults = TrainConfig::default();
    let mut model_cfg = defaults.model.clone();
    model_cfg.num_classes = 7;
    if let Some(w) = args.width {
        model_cfg.base_width = w;
    }
    if let Some(d) = args.depth {
        model_cfg.depth = d;
    }
    let [w, h] = [size[0] as usize, size[1] as usize];
    let autodiff = device.clone().autodiff();
    autodiff.seed(1);
    let mut model = SegmenterConfig::new(model_cfg.clone())
        .with_encoder(encoder)
        .init(&autodiff);
    let mut optimizer = build_optimizer(&defaults.optimizer)?;
    let images = Tensor::<4>::random(
        [batch_size, 3, h, w],
        Distribution::Normal(0.0, 1.0),
        &autodiff,
    );
    let masks = Tensor::<3, Int>::random(
        [batch_size, h, w],
        Distribution::Uniform(0.0, 7.0),
        &autodiff,
    );
    let mut step = |model: Segmenter| {
        let (model, loss) = train_step(
            model,
            &mut optimizer,
            &defaults.loss,
            1e-3,
            images.clone(),
            masks.clone(),
        );
        loss.map(|_| model).map_err(anyhow::Error::from)
    };
    for _ in 0..2 {
        model = step(model)?; // warm-up: allocation, autotuning
    }
    kernels::profile::take();
    let mut step_times = Vec::new();
    for _ in 0..args.steps.max(1) {
        let start = Instant::now();
        model = step(model)?;
        step_times.push(start.elapsed().as_secs_f64());
    }
    let step_seconds = median(step_times.clone());
    print_profile("training steps", &step_times);

    let inference = model.valid().fold_batch_norm();
    let one = Tensor::<4>::random([1, 3, h, w], Distribution::Normal(0.0, 1.0), device);
    let run = || -> anyhow::Result<()> {
        inference
            .forward_any_size(one.clone())
            .argmax(1)
            .try_into_vec_as::<i64>()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(())
    };
    run()?;
    run()?;
    kernels::profile::take();
    let mut inference_times = Vec::new();
    for _ in 0..args.steps.max(5) {
        let start = Instant::now();
        run()?;
        inference_times.push(start.elapsed().as_secs_f64());
    }
    print_profile("inference runs", &inference_times);
    Ok(ModelBench {
        size,
        batch_size,
        encoder: encoder.to_string(),
        base_width: model_cfg.base_width,
        depth: match encoder {
            Encoder::Unet => model_cfg.depth,
            _ => 5,
        },
        ops: if *device != Device::flex() {
            "burn (GPU)".into()
        } else if ops::enabled() {
            format!("roadseg CPU kernels, {}", simd::describe())
        } else {
            "burn CPU ops".into()
        },
        train_images_per_sec: batch_size as f64 / step_seconds,
        train_step_ms: step_seconds * 1000.0,
        inference_ms_per_image: median(inference_times) * 1000.0,
    })
}

/// With `ROADSEG_KERNEL_PROFILE` set: the time per kernel and shape over the timed runs, and
/// what the rest took.
fn print_profile(what: &str, times: &[f64]) {
    if !kernels::profile::enabled() {
        return;
    }
    let total: f64 = times.iter().sum();
    let ops = if ops::enabled() {
        "kernels"
    } else {
        "burn ops"
    };
    eprintln!(
        "where the {} timed {what}' {:.0} ms went ({ops}):",
        times.len(),
        total * 1000.0
    );
    let mut counted = 0.0;
    for (label, calls, seconds) in kernels::profile::take() {
        counted += seconds;
        eprintln!(
            "  {label:<44} {calls:>5} calls {:>9.1} ms",
            seconds * 1000.0
        );
    }
    eprintln!(
        "  {:<56} {:>9.1} ms",
        "everything else (burn, autodiff)",
        (total - counted) * 1000.0
    );
}

/// The median of some timings.
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

/// One brush dab as the studio does it: record undo tiles, paint, and turn the dirty rectangle
/// into the RGBA bytes a partial texture upload needs.
fn paint_bench(json: bool) -> anyhow::Result<()> {
    use roadseg::core::paint::MaskDocument;
    let (w, h) = (4096u32, 3072u32);
    let mut doc = MaskDocument::new(
        std::env::temp_dir().join("roadseg-bench-mask.png"),
        roadseg::core::mask::Mask::unlabelled(w, h),
    );
    let lut: Vec<[u8; 4]> = (0..=255u8).map(|v| [v, v / 2, 255 - v, 160]).collect();
    let radius = 24.0;
    let dabs = 2000;
    let mut upload = Vec::new();
    let mut uploaded = 0u64;
    doc.begin_edit();
    let start = Instant::now();
    for i in 0..dabs {
        // A zig-zag stroke of short segments across the image, like a fast hand.
        let t = i as f32 / dabs as f32;
        let x = t * (w as f32 - 100.0) + 50.0;
        let y = h as f32 / 2.0 + ((i % 40) as f32 - 20.0) * 30.0;
        let Some(rect) = doc.stroke([x, y], [x + 2.0, y + 3.0], radius, (i % 7) as u8) else {
            continue;
        };
        upload.clear();
        let mask = doc.mask();
        for row in rect.y..rect.bottom() {
            let start = (row * w + rect.x) as usize;
            for &v in &mask.data[start..start + rect.width as usize] {
                upload.extend_from_slice(&lut[v as usize]);
            }
        }
        uploaded += upload.len() as u64;
    }
    let per_dab_ms = start.elapsed().as_secs_f64() * 1000.0 / dabs as f64;
    doc.end_edit();
    let undo_bytes = doc.history().bytes();
    if json {
        println!(
            "{}",
            serde_json::json!({"paint": {"image": [w, h], "radius": radius, "dabs": dabs,
                "ms_per_dab": per_dab_ms, "upload_bytes_per_dab": uploaded / dabs as u64,
                "undo_bytes": undo_bytes}})
        );
    } else {
        println!(
            "brush dab on {w}x{h}: {per_dab_ms:.3} ms (radius {radius}, undo tiles + paint + RGBA of the dirty rect, {} bytes uploaded per dab; whole image would be {} bytes)",
            uploaded / dabs as u64,
            w as u64 * h as u64 * 4
        );
        println!(
            "undo step for the {dabs}-dab stroke: {:.1} MiB",
            undo_bytes as f64 / (1 << 20) as f64
        );
    }
    Ok(())
}

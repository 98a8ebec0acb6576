//! `roadseg bench`: data pipeline throughput (and, once trained models exist, training and
//! inference speed). Speed targets are checked here, never in timed unit tests.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use roadseg::core::dataset::loader::{LoaderConfig, SegDataset, SegLoader, default_workers};
use roadseg::core::dataset::{DatasetIndex, Sample, workspace};
use serde::Serialize;

#[derive(clap::Args)]
pub struct Args {
    /// Dataset (default: the bundled sample).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Training size, WIDTHxHEIGHT.
    #[arg(long, default_value = "256x192", value_parser = super::parse_size)]
    size: [u32; 2],
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    /// Loader worker threads (default: one per core).
    #[arg(long)]
    workers: Option<usize>,
    /// Batches to time.
    #[arg(long, default_value_t = 20)]
    batches: usize,
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct DataBench {
    size: [u32; 2],
    batch_size: usize,
    workers: usize,
    batches: usize,
    images_per_sec: f64,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let root = match args.data {
        Some(dir) => dir,
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
        size: args.size,
        batch_size: args.batch_size,
        num_workers: workers,
        ..Default::default()
    };
    let loader = SegLoader::new(
        SegDataset::new(&index, &samples, &cfg),
        &cfg,
        burn::tensor::Device::flex(),
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
            if images >= args.batches * args.batch_size {
                break 'outer;
            }
        }
        epoch += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    let data = DataBench {
        size: args.size,
        batch_size: args.batch_size,
        workers,
        batches: args.batches,
        images_per_sec: images as f64 / secs,
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "data": data }))?
        );
    } else {
        println!(
            "data pipeline: {:.1} images/s at {}x{} (batch {}, {} workers, decode + augment + batch)",
            data.images_per_sec, args.size[0], args.size[1], args.batch_size, workers
        );
    }
    Ok(())
}

//! `roadseg convert SRC --to native|voc|coco|labelme|cityscapes OUT [--format F] [--skip-bad]`

use std::path::PathBuf;

use anyhow::bail;
use roadseg::core::dataset::{DatasetIndex, Format, convert};

#[derive(clap::Args)]
pub struct Args {
    /// Dataset to read (never modified).
    src: PathBuf,
    /// Target layout: native, voc (also CVAT's "Segmentation mask 1.1"), coco (panoptic and
    /// RLE), labelme (traced polygons) or cityscapes (when the classes are Cityscapes' own).
    #[arg(long)]
    to: Format,
    /// New folder to write.
    out: PathBuf,
    /// Force the source layout instead of detecting it.
    #[arg(long)]
    format: Option<Format>,
    /// Convert the good files and list the bad ones, instead of stopping.
    #[arg(long)]
    skip_bad: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if !Format::WRITABLE.contains(&args.to) {
        let names: Vec<&str> = Format::WRITABLE.iter().map(|f| f.as_str()).collect();
        bail!(
            "cannot write {}: --to is one of {} ({} is read only)",
            args.to,
            names.join(", "),
            args.to
        );
    }
    let index = DatasetIndex::open(&args.src, args.format)?;
    let report = convert::convert(&index, args.to, &args.out, args.skip_bad, &|_, _| {})?;
    let drivable = match report.drivable {
        0 => String::new(),
        n => format!(", {n} drivable-area maps"),
    };
    println!(
        "converted {} ({}) to {} {}: {} images, {} masks{drivable}",
        args.src.display(),
        index.format,
        args.to,
        args.out.display(),
        report.images,
        report.masks
    );
    if !report.skipped.is_empty() {
        println!("skipped {} bad file(s):", report.skipped.len());
        for p in &report.skipped {
            println!("  {p}");
        }
    }
    if !report.unlabelled.is_empty() {
        println!(
            "converted {} image(s) without a label:",
            report.unlabelled.len()
        );
        for p in &report.unlabelled {
            println!("  {p}");
        }
    }
    Ok(())
}

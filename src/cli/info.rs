//! `roadseg info DIR [--format F] [--json]`

use std::path::PathBuf;

use roadseg::core::dataset::{DatasetIndex, Format, info, workspace};

#[derive(clap::Args)]
pub struct Args {
    /// Dataset folder (default: the bundled sample, generated on first use).
    dir: Option<PathBuf>,
    /// Force a layout instead of detecting it.
    #[arg(long)]
    format: Option<Format>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let dir = match args.dir {
        Some(dir) => dir,
        None => workspace::default_sample()?,
    };
    let index = match DatasetIndex::open(&dir, args.format) {
        Ok(index) => index,
        Err(e) => {
            if args.json {
                // Scripts always get JSON on stdout from --json, failures included.
                let failure = serde_json::json!({
                    "error": e.to_string(),
                    "file": e.path(),
                });
                println!("{}", serde_json::to_string_pretty(&failure)?);
            }
            return Err(e.into());
        }
    };
    let report = info::inspect(&index);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!("dataset:  {}", index.root.display());
    println!("format:   {}", report.format);
    println!("images:   {} ({} labelled)", report.images, report.labelled);
    let splits: Vec<String> = report
        .splits
        .iter()
        .map(|(s, n)| format!("{s} {n}"))
        .collect();
    println!("splits:   {}", splits.join(", "));
    if report.drivable_maps > 0 {
        println!("drivable: {} drivable-area maps", report.drivable_maps);
    }
    let total: u64 = report.classes.iter().map(|c| c.pixels).sum();
    println!("classes:");
    println!(
        "  {:>3}  {:<16} {:<13} {:>12} {:>7}",
        "id", "name", "colour", "pixels", "share"
    );
    for c in &report.classes {
        let share = if total > 0 {
            100.0 * c.pixels as f64 / total as f64
        } else {
            0.0
        };
        let colour = format!("{},{},{}", c.color[0], c.color[1], c.color[2]);
        println!(
            "  {:>3}  {:<16} {:<13} {:>12} {:>6.2}%",
            c.id, c.name, colour, c.pixels, share
        );
    }
    if report.problems.is_empty() {
        println!("problems: none");
    } else {
        println!("problems: {}", report.problems.len());
        for p in &report.problems {
            println!("  {p}");
        }
    }
    Ok(())
}

//! Any readable layout to any writable one ([`Format::WRITABLE`]), losslessly for the labels:
//! the checks and the parallel loop live here, each layout's module owns its writer
//! (`formats::<layout>::write`). Native keeps drivable-area maps (BDD100K's) in `drivable/`.
//! The source is only read.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use rayon::prelude::*;

use super::labels::Mask;
use super::{DatasetError, DatasetIndex, Format, Problem, Sample, formats, image_io, info};

#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error("{0}: output folder exists and is not empty; choose a new folder")]
    OutputNotEmpty(std::path::PathBuf),
    #[error("{0}: output is a file; choose a new folder")]
    OutputIsFile(std::path::PathBuf),
    #[error("{0}: output is inside the source dataset; choose a folder outside it")]
    OutputInsideSource(std::path::PathBuf),
    #[error("{} bad file(s); fix them or pass --skip-bad:\n{}", .0.len(), list(.0))]
    BadFiles(Vec<Problem>),
    #[error("cannot write {0}: the layouts written are {list}", list = writable())]
    NotWritable(Format),
    /// The labels do not fit the target layout (a class Cityscapes has not, say).
    #[error("cannot write {format}: {reason}")]
    Unsupported { format: Format, reason: String },
}

fn writable() -> String {
    let names: Vec<&str> = Format::WRITABLE.iter().map(|f| f.as_str()).collect();
    names.join(", ")
}

fn list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[derive(Debug)]
pub struct ConvertReport {
    pub images: usize,
    pub masks: usize,
    /// Drivable-area maps written to `drivable/`.
    pub drivable: usize,
    /// Problems of files left out (`--skip-bad`).
    pub skipped: Vec<Problem>,
    /// Problems of images written without a label (their label is missing).
    pub unlabelled: Vec<Problem>,
}

/// `path` made absolute with links resolved as far as it exists, so that a relative or
/// not-yet-created output is compared with the source by where it really is.
fn resolved(path: &Path) -> PathBuf {
    let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut existing = path.as_path();
    let mut rest = Vec::new();
    while !existing.exists() {
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = parent;
            }
            _ => return path,
        }
    }
    let mut out = existing
        .canonicalize()
        .unwrap_or_else(|_| existing.to_path_buf());
    out.extend(rest.iter().rev());
    out
}

/// Whether `out` can receive a copy of the dataset at `root`: a new or empty folder outside it.
pub fn check_output(root: &Path, out: &Path) -> Result<(), ConvertError> {
    if out.exists() && !out.is_dir() {
        return Err(ConvertError::OutputIsFile(out.to_path_buf()));
    }
    if out.exists()
        && std::fs::read_dir(out)
            .map_err(|e| DatasetError::io(out, e))?
            .next()
            .is_some()
    {
        return Err(ConvertError::OutputNotEmpty(out.to_path_buf()));
    }
    if resolved(out).starts_with(resolved(root)) {
        return Err(ConvertError::OutputInsideSource(out.to_path_buf()));
    }
    Ok(())
}

/// Writes `index` as native into `out` (see [`convert`]).
pub fn to_native(
    index: &DatasetIndex,
    out: &Path,
    skip_bad: bool,
) -> Result<ConvertReport, ConvertError> {
    convert(index, Format::Native, out, skip_bad, &|_, _| {})
}

/// Writes `index` in layout `to` into the new folder `out`; `progress(done, total)` is called
/// as images are written (from worker threads). Bad files stop it unless `skip_bad`.
pub fn convert(
    index: &DatasetIndex,
    to: Format,
    out: &Path,
    skip_bad: bool,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<ConvertReport, ConvertError> {
    if !Format::WRITABLE.contains(&to) {
        return Err(ConvertError::NotWritable(to));
    }
    check_output(&index.root, out)?;
    // Before anything is read or written: a class table the layout cannot hold.
    if to == Format::Cityscapes {
        formats::cityscapes::label_ids_of(&index.classes)?;
    }
    let all: Vec<_> = index.samples.iter().collect();
    let info::Validated {
        good, mut problems, ..
    } = info::validate(index, &all);
    let mut all_problems = index.problems.clone();
    all_problems.append(&mut problems);
    if !all_problems.is_empty() && !skip_bad {
        return Err(ConvertError::BadFiles(all_problems));
    }
    // A scan problem about an image that still converts (no label where one is required) is
    // reported apart: that image is written, unlabelled, not skipped.
    let converted: HashSet<&Path> = good.iter().map(|s| s.image.as_path()).collect();
    let (unlabelled, skipped): (Vec<Problem>, Vec<Problem>) = all_problems
        .into_iter()
        .partition(|p| converted.contains(p.file.as_path()));

    std::fs::create_dir_all(out).map_err(|e| DatasetError::io(out, e))?;
    let job = Job {
        index,
        samples: good,
        out,
        progress,
        done: AtomicUsize::new(0),
    };
    let written = match to {
        Format::Native => formats::native::write(&job)?,
        Format::Voc => formats::voc::write(&job)?,
        Format::Coco => formats::coco::write(&job)?,
        Format::Labelme => formats::labelme::write(&job)?,
        Format::Cityscapes => formats::cityscapes::write(&job)?,
        other => return Err(ConvertError::NotWritable(other)),
    };
    Ok(ConvertReport {
        images: job.samples.len(),
        masks: written.masks,
        drivable: written.drivable,
        skipped,
        unlabelled,
    })
}

/// What a writer wrote besides the images.
#[derive(Debug, Default)]
pub struct Written {
    pub masks: usize,
    /// Drivable-area maps (only native keeps them).
    pub drivable: usize,
}

impl Written {
    /// From what [`Job::each`] returned per sample: 1 where a mask was written.
    pub fn masks(per_sample: &[usize]) -> Self {
        Self {
            masks: per_sample.iter().sum(),
            drivable: 0,
        }
    }
}

/// One conversion under way: the validated samples and where they go.
pub struct Job<'a> {
    pub index: &'a DatasetIndex,
    pub samples: Vec<&'a Sample>,
    pub out: &'a Path,
    progress: &'a (dyn Fn(usize, usize) + Sync),
    done: AtomicUsize,
}

impl Job<'_> {
    /// Runs `write` on every sample with its decoded mask, in parallel, reporting progress;
    /// results in sample order.
    pub fn each<T: Send>(
        &self,
        write: impl Fn(&Sample, Option<Mask>) -> Result<T, DatasetError> + Sync,
    ) -> Result<Vec<T>, DatasetError> {
        let total = self.samples.len();
        self.samples
            .par_iter()
            .map(|sample| {
                let mask = self.index.load_mask(sample).map_err(bad_file)?;
                let result = write(sample, mask)?;
                let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
                (self.progress)(done, total);
                Ok(result)
            })
            .collect()
    }

    /// Copies `sample`'s image byte for byte (no re-encoding loss) to `dir/<name>.<ext>`;
    /// returns the file name written.
    pub fn copy_image(&self, sample: &Sample, dir: &Path) -> Result<String, DatasetError> {
        let ext = sample
            .image
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_else(|| "png".into());
        let bytes = std::fs::read(&sample.image).map_err(|e| DatasetError::io(&sample.image, e))?;
        let file = format!("{}.{ext}", sample.name);
        image_io::write_atomic(&dir.join(&file), &bytes)?;
        Ok(file)
    }
}

/// A per-file problem met while writing (validated before, so only a file changed meanwhile).
pub fn bad_file(p: Problem) -> DatasetError {
    DatasetError::BadFile {
        file: p.file,
        reason: p.error,
    }
}

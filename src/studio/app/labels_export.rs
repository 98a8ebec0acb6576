//! File > Export labels as…: the open dataset written in another layout (VOC, COCO, labelme,
//! Cityscapes, native) into a new folder beside it, by a named thread, with its progress in the
//! status line. No file dialog: the folder is `<dataset>-<layout>` (numbered when taken), so it
//! works where no native dialog can open, and the message says where it went.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};

use super::Studio;
use crate::core::dataset::convert::{self, ConvertReport};
use crate::core::dataset::{DatasetIndex, Format};

/// A labels export in progress.
pub struct LabelsExport {
    pub format: Format,
    pub out: PathBuf,
    /// Images written so far, and in all (0 until the source is validated).
    done: Arc<AtomicUsize>,
    total: Arc<AtomicUsize>,
    result: Receiver<Result<ConvertReport, String>>,
    /// Said with the result: what the export cannot hold.
    note: Option<String>,
}

impl LabelsExport {
    /// "12/30 images", for the status line.
    pub fn progress(&self) -> String {
        match self.total.load(Ordering::Relaxed) {
            0 => "checking the labels".into(),
            total => format!("{}/{total} images", self.done.load(Ordering::Relaxed)),
        }
    }
}

/// The first unused `<root>-<format>[-n]` beside `root` (also Convert to native's copy).
pub(super) fn free_folder(root: &std::path::Path, format: Format) -> PathBuf {
    let name = root
        .file_name()
        .map_or_else(|| "dataset".into(), |n| n.to_string_lossy().into_owned());
    let parent = root.parent().unwrap_or(root).to_path_buf();
    (1..)
        .map(|n| match n {
            1 => parent.join(format!("{name}-{format}")),
            n => parent.join(format!("{name}-{format}-{n}")),
        })
        .find(|p| !p.exists())
        .expect("an unused folder name")
}

impl Studio {
    /// Starts writing the open dataset's labels as `format`.
    pub(super) fn export_labels(&mut self, format: Format, out: PathBuf) {
        if self.labels_export.is_some() {
            self.report("a labels export is already running".into(), true);
            return;
        }
        // What is painted and not yet saved goes to disk first: the export reads the files.
        if !self.save_current() {
            return;
        }
        let Some(session) = &self.session else {
            self.report(
                "no dataset open: open one to export its labels".into(),
                true,
            );
            return;
        };
        let root = session.root.clone();
        let source = session.format;
        let note = (!self.view_only_edits.is_empty()).then(|| {
            "the strokes painted on this view-only dataset are not in it (Convert to native \
             keeps them)"
                .to_string()
        });
        let done = Arc::new(AtomicUsize::new(0));
        let total = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let wake = self.ctx.clone();
        let (target, done_in, total_in) = (out.clone(), done.clone(), total.clone());
        let spawned = std::thread::Builder::new()
            .name("labels-export".into())
            .spawn(move || {
                let progress = |n: usize, of: usize| {
                    done_in.store(n, Ordering::Relaxed);
                    total_in.store(of, Ordering::Relaxed);
                    if let Some(ctx) = &wake {
                        ctx.request_repaint();
                    }
                };
                let result = DatasetIndex::open(&root, Some(source))
                    .map_err(|e| e.to_string())
                    .and_then(|index| {
                        // Bad files are left out and listed, as Convert to native does.
                        convert::convert(&index, format, &target, true, &progress)
                            .map_err(|e| e.to_string())
                    });
                let _ = tx.send(result);
                if let Some(ctx) = &wake {
                    ctx.request_repaint();
                }
            });
        match spawned {
            Ok(_) => {
                self.message = Some((
                    format!("exporting labels as {format} to {}...", out.display()),
                    false,
                ));
                self.labels_export = Some(LabelsExport {
                    format,
                    out,
                    done,
                    total,
                    result: rx,
                    note,
                });
            }
            Err(e) => self.report(format!("could not start the labels export: {e}"), true),
        }
    }

    /// Shows progress, then the finished export.
    pub(super) fn poll_labels_export(&mut self) {
        let Some(job) = &self.labels_export else {
            return;
        };
        let result = match job.result.try_recv() {
            Ok(result) => result,
            Err(TryRecvError::Empty) => {
                self.message = Some((
                    format!(
                        "exporting labels as {} to {}: {}",
                        job.format,
                        job.out.display(),
                        job.progress()
                    ),
                    false,
                ));
                return;
            }
            Err(TryRecvError::Disconnected) => Err("the export thread stopped".into()),
        };
        let Some(job) = self.labels_export.take() else {
            return;
        };
        match result {
            Ok(report) => {
                let skipped = match report.skipped.len() {
                    0 => String::new(),
                    n => format!(", {n} bad file(s) left out: {}", report.skipped[0]),
                };
                let note = job.note.map(|n| format!("; {n}")).unwrap_or_default();
                self.message = Some((
                    format!(
                        "exported labels as {} to {} ({} images, {} masks{skipped}){note}",
                        job.format,
                        job.out.display(),
                        report.images,
                        report.masks
                    ),
                    !report.skipped.is_empty(),
                ));
            }
            Err(e) => self.report(format!("labels export as {} failed: {e}", job.format), true),
        }
    }

    /// Blocks until the labels export in flight finishes (tests).
    pub fn wait_for_labels_export(&mut self) {
        while self.labels_export.is_some() {
            self.poll_labels_export();
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

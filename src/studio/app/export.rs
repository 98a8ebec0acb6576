//! File > Export model…: the run the canvas compares with, as an ONNX file, written by a named
//! thread (the window keeps drawing) and reported in the status line.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, TryRecvError};

use super::Studio;
use crate::core::export::onnx::{ExportReport, export_run};
use crate::core::train::run_dir::CheckpointKind;

/// An export in progress: where to, and the thread's answer.
pub struct ExportJob {
    pub out: PathBuf,
    result: Receiver<Result<ExportReport, String>>,
}

impl Studio {
    /// Asks where to write the current run's ONNX file (native save dialog).
    pub(super) fn pick_export_path(&mut self) {
        let Some(loaded) = &self.model.loaded else {
            self.report(
                "no model to export: open a run (Runs > Open) or train one".into(),
                true,
            );
            return;
        };
        let name = loaded
            .run
            .file_name()
            .map_or_else(|| "model".into(), |n| n.to_string_lossy().into_owned());
        if let Some(out) = rfd::FileDialog::new()
            .add_filter("ONNX model", &["onnx"])
            .set_file_name(format!("{name}.onnx"))
            .save_file()
        {
            self.export_model(out);
        }
    }

    /// Exports the current run's best weights to `out` in the background.
    pub(super) fn export_model(&mut self, out: PathBuf) {
        if self.export.is_some() {
            self.report("an export is already running".into(), true);
            return;
        }
        let Some(run) = self.model.loaded.as_ref().map(|m| m.run.clone()) else {
            self.report(
                "no model to export: open a run (Runs > Open) or train one".into(),
                true,
            );
            return;
        };
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let ctx = self.ctx.clone();
        let target = out.clone();
        let spawned = std::thread::Builder::new()
            .name("onnx-export".into())
            .spawn(move || {
                let result = export_run(&run, CheckpointKind::Best, &target, false)
                    .map_err(|e| e.to_string());
                let _ = tx.send(result);
                if let Some(ctx) = ctx {
                    ctx.request_repaint();
                }
            });
        match spawned {
            Ok(_) => {
                self.message = Some((format!("exporting to {}...", out.display()), false));
                self.export = Some(ExportJob { out, result: rx });
            }
            Err(e) => self.report(format!("could not start the export: {e}"), true),
        }
    }

    /// Reports a finished export.
    pub(super) fn poll_export(&mut self) {
        let Some(job) = &self.export else { return };
        let result = match job.result.try_recv() {
            Ok(result) => result,
            Err(TryRecvError::Empty) => return,
            Err(TryRecvError::Disconnected) => Err("the export thread stopped".into()),
        };
        let out = job.out.clone();
        self.export = None;
        match result {
            Ok(report) => self.message = Some((describe(&out, &report), false)),
            Err(e) => self.report(format!("export to {} failed: {e}", out.display()), true),
        }
    }
}

fn describe(out: &Path, report: &ExportReport) -> String {
    let [h, w] = report.traced;
    format!(
        "exported {} ({:.0} KiB, ONNX, input [batch, 3, {h}, {w}])",
        out.display(),
        report.bytes as f64 / 1024.0
    )
}

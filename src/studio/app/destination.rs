//! Where a copy of the dataset goes: File > Convert to native… and Export labels as… ask first.
//! The folder is proposed beside the dataset (`<dataset>-<layout>`, the first free name), and
//! the user may type another or browse; the core's own check (a new or empty folder outside
//! the dataset) runs before the window closes, so a bad choice is said in it.

use std::path::PathBuf;

use super::labels_export::free_folder;
use super::open_folder::{browse_folder, folder_window, path_field};
use super::{Command, Studio};
use crate::core::dataset::Format;
use crate::core::dataset::convert::check_output;

/// What the chosen folder is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    ConvertToNative,
    ExportLabels(Format),
}

impl Purpose {
    fn format(self) -> Format {
        match self {
            Purpose::ConvertToNative => Format::Native,
            Purpose::ExportLabels(format) => format,
        }
    }

    fn title(self) -> String {
        match self {
            Purpose::ConvertToNative => "Convert to native".into(),
            Purpose::ExportLabels(format) => format!("Export labels as {format}"),
        }
    }

    fn action(self) -> &'static str {
        match self {
            Purpose::ConvertToNative => "Convert",
            Purpose::ExportLabels(_) => "Export",
        }
    }

    fn command(self, out: PathBuf) -> Command {
        match self {
            Purpose::ConvertToNative => Command::ConvertToNativeAt(out),
            Purpose::ExportLabels(format) => Command::ExportLabelsAt(format, out),
        }
    }
}

#[derive(Default)]
pub struct Destination {
    /// The window is open for this.
    pub purpose: Option<Purpose>,
    pub typed: String,
    /// Why the last choice was refused.
    pub problem: Option<String>,
}

impl Studio {
    /// Opens the window, the first free folder beside the dataset proposed.
    pub(super) fn ask_for_destination(&mut self, purpose: Purpose) {
        let Some(session) = &self.session else {
            self.report("no dataset open".into(), true);
            return;
        };
        let proposed = free_folder(&session.root, purpose.format());
        self.destination = Destination {
            purpose: Some(purpose),
            typed: proposed.display().to_string(),
            problem: None,
        };
    }

    pub(super) fn destination_window(&mut self, ctx: &egui::Context) {
        let Some(purpose) = self.destination.purpose else {
            return;
        };
        let Some(root) = self.session.as_ref().map(|s| s.root.clone()) else {
            self.destination.purpose = None;
            return;
        };
        let mut open = true;
        let mut chosen: Option<PathBuf> = None;
        let form = &mut self.destination;
        folder_window(purpose.title(), ctx, &mut open).show(ctx, |ui| {
            ui.label(format!(
                "A copy of {} is written to this new folder, then {}:",
                root.display(),
                match purpose {
                    Purpose::ConvertToNative => "opened for labelling",
                    Purpose::ExportLabels(_) => "left as it is",
                }
            ));
            if let Some(path) = path_field(ui, &mut form.typed, "new folder") {
                chosen = Some(path);
            }
            ui.horizontal(|ui| {
                if ui.button(purpose.action()).clicked() {
                    chosen = Some(PathBuf::from(form.typed.trim()));
                }
                if ui.button("Browse...").clicked() {
                    match browse_folder() {
                        Ok(dir) => form.typed = dir.display().to_string(),
                        Err(problem) => form.problem = Some(problem),
                    }
                }
            });
            if let Some(problem) = &form.problem {
                ui.colored_label(ui.visuals().error_fg_color, problem);
            }
        });
        if chosen
            .as_ref()
            .is_some_and(|out| out.as_os_str().is_empty())
        {
            self.destination.problem = Some("type a folder for the copy".into());
        } else if let Some(out) = chosen {
            let out = match out.is_absolute() {
                true => out,
                // A bare name goes beside the dataset, where the proposal was.
                false => root.parent().unwrap_or(&root).join(out),
            };
            match check_output(&root, &out) {
                Ok(()) => {
                    self.destination.purpose = None;
                    self.commands.push(purpose.command(out));
                    return;
                }
                Err(e) => self.destination.problem = Some(e.to_string()),
            }
        }
        if !open {
            self.destination.purpose = None;
        }
    }
}

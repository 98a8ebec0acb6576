//! File > Open dataset…: a small window of our own with a typed path (completed from the
//! folders on disk), the recent folders, and the system's folder dialog as one choice among
//! them. The native dialog alone did nothing where it cannot open (no portal or GTK, as under
//! Xvfb); a typed path works everywhere.

use std::path::{Path, PathBuf};

use super::{Command, Studio};

/// How many recent folders are remembered, and completions shown.
pub const RECENT: usize = 8;
const COMPLETIONS: usize = 8;

#[derive(Default)]
pub struct OpenFolder {
    pub open: bool,
    pub typed: String,
    /// Said under the field: why the last try did not open.
    pub problem: Option<String>,
    /// The completions of `typed` as last listed: the folder is read when `typed` changes,
    /// not every frame.
    listed: Option<(String, Vec<PathBuf>)>,
}

/// Sub-folders of `typed`'s folder whose names start with its last part (all of them when it
/// ends with a separator), sorted, at most [`COMPLETIONS`].
pub fn completions(typed: &str) -> Vec<PathBuf> {
    let path = Path::new(typed);
    let (dir, prefix) = match typed.ends_with(std::path::MAIN_SEPARATOR) || typed.is_empty() {
        true => (path, String::new()),
        false => (
            path.parent().unwrap_or(Path::new("")),
            path.file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().to_lowercase()),
        ),
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .filter(|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().to_lowercase());
            name.is_some_and(|n| n.starts_with(&prefix) && !n.starts_with('.'))
        })
        .collect();
    found.sort();
    found.truncate(COMPLETIONS);
    found
}

/// A window that asks for a folder, centred across and clear of the menu bar it was opened
/// from; pinned by its top so that text coming and going below never moves its field and buttons.
pub(super) fn folder_window<'a>(
    title: impl Into<egui::WidgetText>,
    ctx: &egui::Context,
    open: &'a mut bool,
) -> egui::Window<'a> {
    egui::Window::new(title)
        .pivot(egui::Align2::CENTER_TOP)
        .default_pos(ctx.content_rect().center_top() + egui::vec2(0.0, 120.0))
        .open(open)
        .collapsible(false)
        .default_width(460.0)
}

/// The typed path, the window's width; the trimmed path when Enter was pressed in it.
pub(super) fn path_field(ui: &mut egui::Ui, typed: &mut String, hint: &str) -> Option<PathBuf> {
    let field = ui.add(
        egui::TextEdit::singleline(typed)
            .hint_text(hint)
            .desired_width(f32::INFINITY),
    );
    (field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter)))
        .then(|| PathBuf::from(typed.trim()))
}

/// The system's folder dialog; when it gives nothing, why (it may not exist here).
pub(super) fn browse_folder() -> Result<PathBuf, String> {
    rfd::FileDialog::new().pick_folder().ok_or_else(|| {
        "no folder chosen; if no dialog appeared, this system has no file dialog (no portal or \
         GTK): type the path above"
            .into()
    })
}

impl Studio {
    /// Shows the window (File > Open dataset…).
    pub(super) fn ask_for_folder(&mut self) {
        let start = self
            .session
            .as_ref()
            .map(|s| s.root.clone())
            .or_else(|| self.state.last_folder.clone())
            .and_then(|p| p.parent().map(Path::to_path_buf));
        self.open_folder = OpenFolder {
            open: true,
            typed: start.map_or_else(String::new, |p| {
                format!("{}{}", p.display(), std::path::MAIN_SEPARATOR)
            }),
            problem: None,
            listed: None,
        };
    }

    /// Remembers `dir` first among the recent folders.
    pub(super) fn remember_folder(&mut self, dir: &Path) {
        let recent = &mut self.state.recent_folders;
        recent.retain(|p| p != dir);
        recent.insert(0, dir.to_path_buf());
        recent.truncate(RECENT);
    }

    pub(super) fn open_folder_window(&mut self, ctx: &egui::Context) {
        if !self.open_folder.open {
            return;
        }
        let mut open = true;
        let mut chosen: Option<PathBuf> = None;
        let recent = self.state.recent_folders.clone();
        let form = &mut self.open_folder;
        folder_window("Open dataset", ctx, &mut open).show(ctx, |ui| {
            if let Some(path) = path_field(ui, &mut form.typed, "folder path") {
                chosen = Some(path);
            }
            // The buttons first: completions below them come and go as one types.
            ui.horizontal(|ui| {
                if ui.button("Open").clicked() {
                    chosen = Some(PathBuf::from(form.typed.trim()));
                }
                if ui.button("Browse...").clicked() {
                    match browse_folder() {
                        Ok(dir) => chosen = Some(dir),
                        Err(problem) => form.problem = Some(problem),
                    }
                }
            });
            if let Some(problem) = &form.problem {
                ui.colored_label(ui.visuals().error_fg_color, problem);
            }
            if form
                .listed
                .as_ref()
                .is_none_or(|(typed, _)| *typed != form.typed)
            {
                form.listed = Some((form.typed.clone(), completions(&form.typed)));
            }
            let listed = form
                .listed
                .as_ref()
                .map(|(_, l)| l.clone())
                .unwrap_or_default();
            for folder in listed {
                let name = folder
                    .file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
                if ui
                    .small_button(format!("{name}{}", std::path::MAIN_SEPARATOR))
                    .clicked()
                {
                    form.typed = format!("{}{}", folder.display(), std::path::MAIN_SEPARATOR);
                }
            }
            if !recent.is_empty() {
                ui.separator();
                ui.label("Recent");
                for folder in &recent {
                    if ui
                        .selectable_label(false, folder.display().to_string())
                        .clicked()
                    {
                        chosen = Some(folder.clone());
                    }
                }
            }
        });
        if let Some(dir) = chosen {
            if dir.is_dir() {
                self.open_folder.open = false;
                self.commands.push(Command::OpenDataset(dir));
                return;
            }
            self.open_folder.problem = Some(format!("{}: no such folder", dir.display()));
        }
        self.open_folder.open &= open;
    }
}

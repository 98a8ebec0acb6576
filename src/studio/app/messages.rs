//! View > Messages: every status-line message of the session, with the time it was said, so
//! that a message cut short in the status bar or replaced by the next one can still be read.

use std::collections::VecDeque;

/// How many messages are kept (the oldest go first).
const KEPT: usize = 500;

#[derive(Default)]
pub struct MessageLog {
    /// (seconds since the studio started, text, is an error), oldest first.
    entries: VecDeque<(f64, String, bool)>,
    started: Option<std::time::Instant>,
}

impl MessageLog {
    /// Records `message` when it differs from the last one recorded.
    pub fn note(&mut self, message: Option<&(String, bool)>) {
        let started = *self.started.get_or_insert_with(std::time::Instant::now);
        let Some((text, error)) = message else { return };
        if self.entries.back().is_some_and(|(_, last, _)| last == text) {
            return;
        }
        if self.entries.len() == KEPT {
            self.entries.pop_front();
        }
        self.entries
            .push_back((started.elapsed().as_secs_f64(), text.clone(), *error));
    }

    /// The texts, oldest first.
    pub fn texts(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(_, text, _)| text.as_str())
    }

    pub(super) fn window(&self, ctx: &egui::Context, open: &mut bool) {
        egui::Window::new("Messages")
            // Above the status bar it extends, clear of the menu bar.
            .pivot(egui::Align2::RIGHT_BOTTOM)
            .default_pos(ctx.content_rect().right_bottom() - egui::vec2(16.0, 48.0))
            .open(open)
            .default_size([560.0, 280.0])
            .show(ctx, |ui| {
                egui::ScrollArea::vertical()
                    .stick_to_bottom(true)
                    .auto_shrink(false)
                    .show(ui, |ui| {
                        for (at, text, error) in &self.entries {
                            let line =
                                format!("{:>4}:{:02}  {text}", *at as u64 / 60, *at as u64 % 60);
                            let line = match error {
                                true => {
                                    egui::RichText::new(line).color(ui.visuals().error_fg_color)
                                }
                                false => egui::RichText::new(line),
                            };
                            ui.add(egui::Label::new(line.monospace()).wrap());
                        }
                    });
            });
    }
}

//! Keyboard shortcuts, and what the canvas shows while B (blink) is held.

use egui::{Key, KeyboardShortcut, Modifiers};

use super::{Command, Studio};
use crate::studio::canvas::Tool;
use crate::studio::compare::ViewMode;
use crate::studio::panels::tools::step_radius;

impl Studio {
    /// Keyboard shortcuts (not while a text field has focus).
    pub(super) fn shortcuts(&mut self, ctx: &egui::Context) {
        let ctrl = |key| KeyboardShortcut::new(Modifiers::COMMAND, key);
        let ctrl_shift = |key| KeyboardShortcut::new(Modifiers::COMMAND | Modifiers::SHIFT, key);
        ctx.input_mut(|i| {
            // Longest combination first: Ctrl+Shift+Z must not be read as Ctrl+Z.
            if i.consume_shortcut(&ctrl_shift(Key::Z)) || i.consume_shortcut(&ctrl(Key::Y)) {
                self.commands.push(Command::Redo);
            }
            if i.consume_shortcut(&ctrl(Key::Z)) {
                self.commands.push(Command::Undo);
            }
            if i.consume_shortcut(&ctrl(Key::S)) {
                self.commands.push(Command::Save);
            }
        });
        if ctx.egui_wants_keyboard_input() {
            return;
        }
        ctx.input(|i| {
            for (key, delta) in [
                (Key::PageDown, 1),
                (Key::ArrowDown, 1),
                (Key::PageUp, -1),
                (Key::ArrowUp, -1),
            ] {
                if i.key_pressed(key) {
                    self.commands.push(Command::Step(delta));
                }
            }
            if i.key_pressed(Key::OpenBracket) {
                self.state.brush_radius = step_radius(self.state.brush_radius, false);
            }
            if i.key_pressed(Key::CloseBracket) {
                self.state.brush_radius = step_radius(self.state.brush_radius, true);
            }
            let digits = [
                Key::Num1,
                Key::Num2,
                Key::Num3,
                Key::Num4,
                Key::Num5,
                Key::Num6,
                Key::Num7,
                Key::Num8,
                Key::Num9,
            ];
            let classes = self.session.as_ref().map_or(0, |s| s.classes.len());
            for (id, key) in digits.into_iter().enumerate() {
                if i.key_pressed(key) && id < classes {
                    self.tools.class = id as u8;
                }
            }
            for tool in Tool::ALL {
                if i.key_pressed(tool.key()) && i.modifiers.is_none() {
                    self.state.tool = tool;
                }
            }
            if i.key_pressed(Key::Escape) {
                self.canvas.polygon.clear();
                self.canvas.smart_discard();
            }
            if i.key_pressed(Key::Backspace) && self.state.tool == Tool::SmartRegion {
                self.canvas.smart_undo_click(self.smart_target());
            }
            for mode in ViewMode::ALL {
                if i.key_pressed(mode.key()) && i.modifiers.is_none() {
                    self.commands.push(Command::SetView(mode));
                }
            }
            // Blink: while B is held, ground truth and prediction swap places.
            self.blink = i.key_down(Key::B);
        });
        let (enter, shift) = ctx.input(|i| (i.key_pressed(Key::Enter), i.modifiers.shift));
        if enter && self.state.tool == Tool::SmartRegion {
            self.canvas.smart_commit(self.tools.class);
        }
        if enter && self.state.tool == Tool::Polygon {
            match shift {
                true => self.commands.push(Command::AcceptPolygon),
                false => {
                    let class = self.tools.class;
                    self.canvas.close_polygon(class);
                }
            }
        }
    }

    /// The view on the canvas this frame: blink swaps ground truth and prediction.
    pub fn shown_view(&self) -> ViewMode {
        match (self.blink, self.state.view) {
            (false, view) => view,
            (true, ViewMode::Prediction) => ViewMode::Truth,
            (true, _) => ViewMode::Prediction,
        }
    }
}

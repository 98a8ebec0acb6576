//! A headless user: drives the studio through egui input events (pointer presses on the
//! canvas, keys) frame by frame, without a screen, and keeps its own model of every edit so the
//! kill harness can tell afterwards which strokes reached the disk.
//!
//! Strokes are dabs at the centres of a grid of cells ([`CELL`] pixels apart, radius
//! [`RADIUS`]), so no two strokes touch and the centre pixel of a cell says which was last. The
//! journal gets one line per edit *before* the edit is made: `S <image> <cell> <value>` for a
//! stroke, `U <image> <cell> <value>` for an undo that puts a cell back to `value`, each followed
//! by the simulated second it was made at; a first line `T0 <unix nanoseconds>` says when the
//! simulated clock started.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use egui::{Event, Key, Modifiers, PointerButton, Pos2};
use roadseg::core::rng::Rng;
use roadseg::studio::Studio;
use roadseg::studio::canvas::Tool;

/// Pixels between stroke centres.
pub const CELL: u32 = 10;
/// Brush radius of a stroke: far enough from the next cell's dab.
pub const RADIUS: f32 = 3.0;

/// Cells of an image of `width` x `height`, row-major; cell `i`'s centre pixel.
pub fn cell_centre(width: u32, i: usize) -> (u32, u32) {
    let per_row = (width / CELL) as usize;
    let (cx, cy) = (i % per_row, i / per_row);
    (cx as u32 * CELL + CELL / 2, cy as u32 * CELL + CELL / 2)
}

pub fn cell_count(width: u32, height: u32) -> usize {
    ((width / CELL) * (height / CELL)) as usize
}

/// What the user has on screen: the image, its cells as last painted, and the strokes of this
/// visit that an undo would take back (cell, value before, value after).
struct Visit {
    name: String,
    width: u32,
    cells: Vec<u8>,
    undo: Vec<(usize, u8)>,
}

/// Counts of what the user did.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Activity {
    pub frames: u64,
    pub strokes: u64,
    pub undos: u64,
    pub page_changes: u64,
    pub class_switches: u64,
    pub dataset_switches: u64,
}

pub struct Driver {
    ctx: egui::Context,
    pub studio: Studio,
    pub rng: Rng,
    journal: Option<File>,
    visit: Option<Visit>,
    /// When simulated time started, and how much faster it runs.
    clock: (Instant, f64),
    pub activity: Activity,
}

impl Driver {
    pub fn new(studio: Studio, seed: u64, journal: Option<&Path>) -> anyhow::Result<Self> {
        let journal = match journal {
            Some(path) => Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            ),
            None => None,
        };
        let mut driver = Self {
            ctx: egui::Context::default(),
            studio,
            rng: Rng::new(seed),
            journal,
            visit: None,
            clock: (Instant::now(), 1.0),
            activity: Activity::default(),
        };
        driver.studio.state.tool = Tool::Brush;
        driver.studio.state.brush_radius = RADIUS;
        driver.settle();
        Ok(driver)
    }

    /// Starts the simulated clock at `speed` times real time (journaled).
    pub fn start_clock(&mut self, speed: f64) {
        self.clock = (Instant::now(), speed);
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        if let Some(journal) = self.journal.as_mut() {
            let _ = journal.write_all(format!("T0 {unix}\n").as_bytes());
        }
    }

    /// Simulated seconds since [`Driver::start_clock`].
    pub fn now(&self) -> f64 {
        self.clock.0.elapsed().as_secs_f64() * self.clock.1
    }

    /// One frame as eframe would run it; textures are dropped (no GPU).
    pub fn frame(&mut self, events: Vec<Event>) {
        self.frame_with(events, Modifiers::NONE);
    }

    /// A frame whose events happen with `modifiers` held (as egui_kittest sends them).
    fn frame_with(&mut self, mut events: Vec<Event>, modifiers: Modifiers) {
        if modifiers != Modifiers::NONE {
            events.insert(0, Event::ModifiersChanged(modifiers));
            events.push(Event::ModifiersChanged(Modifiers::NONE));
        }
        let input = egui::RawInput {
            screen_rect: Some(egui::Rect::from_min_size(
                Pos2::ZERO,
                egui::vec2(1600.0, 1000.0),
            )),
            events,
            ..Default::default()
        };
        let output = self.ctx.run_ui(input, |ui| self.studio.ui(ui));
        let _ = self.ctx.tessellate(output.shapes, output.pixels_per_point);
        self.activity.frames += 1;
    }

    /// Lets a requested image load and show, then starts a visit of it.
    pub fn settle(&mut self) {
        self.frame(Vec::new());
        self.studio.wait_for_image();
        self.frame(Vec::new());
        self.frame(Vec::new());
        self.visit = self.studio.canvas.document.as_ref().map(|doc| {
            let mask = doc.mask();
            let cells = (0..cell_count(mask.width, mask.height))
                .map(|i| {
                    let (x, y) = cell_centre(mask.width, i);
                    mask.get(x, y)
                })
                .collect();
            Visit {
                name: self.studio.selected_name().unwrap_or_default().to_string(),
                width: mask.width,
                cells,
                undo: Vec::new(),
            }
        });
    }

    fn log(&mut self, kind: char, cell: usize, value: u8) {
        let now = self.now();
        let (Some(journal), Some(visit)) = (self.journal.as_mut(), &self.visit) else {
            return;
        };
        // One write per line: a kill leaves whole lines (or a torn last one, ignored).
        let line = format!("{kind} {} {cell} {value} {now:.3}\n", visit.name);
        let _ = journal.write_all(line.as_bytes());
    }

    fn key(&mut self, key: Key, modifiers: Modifiers) {
        let event = |pressed| Event::Key {
            key,
            physical_key: None,
            pressed,
            repeat: false,
            modifiers,
        };
        self.frame_with(vec![event(true)], modifiers);
        self.frame_with(vec![event(false)], modifiers);
    }

    /// A dab of the current class on a random cell whose value it changes.
    pub fn stroke(&mut self) {
        let class = self.studio.tools.class;
        let Some(visit) = &self.visit else { return };
        if visit.cells.is_empty() {
            return;
        }
        let cell = self.rng.below(visit.cells.len());
        if visit.cells[cell] == class {
            // A dab that changes nothing is no undo step: the model would drift.
            return;
        }
        let (x, y) = cell_centre(visit.width, cell);
        self.log('S', cell, class);
        let pos = self
            .studio
            .canvas
            .image_to_screen([x as f32 + 0.5, y as f32 + 0.5]);
        let button = |pressed| Event::PointerButton {
            pos,
            button: PointerButton::Primary,
            pressed,
            modifiers: Modifiers::NONE,
        };
        self.frame(vec![Event::PointerMoved(pos), button(true)]);
        self.frame(vec![button(false)]);
        if let Some(visit) = self.visit.as_mut() {
            visit.undo.push((cell, visit.cells[cell]));
            visit.cells[cell] = class;
        }
        self.activity.strokes += 1;
    }

    /// Ctrl+Z `n` times (only as many as this visit has strokes).
    pub fn undo_burst(&mut self, n: usize) {
        for _ in 0..n {
            let Some(&(cell, before)) = self.visit.as_ref().and_then(|v| v.undo.last()) else {
                return;
            };
            self.log('U', cell, before);
            self.key(Key::Z, Modifiers::COMMAND);
            if let Some(visit) = self.visit.as_mut() {
                visit.undo.pop();
                visit.cells[cell] = before;
            }
            self.activity.undos += 1;
        }
    }

    /// PageDown or PageUp (saves the mask on the way), then waits for the next image.
    pub fn page(&mut self, forward: bool) {
        self.key(
            if forward { Key::PageDown } else { Key::PageUp },
            Modifiers::NONE,
        );
        self.settle();
        self.activity.page_changes += 1;
    }

    /// Keys 1..9: a class the dataset has.
    pub fn switch_class(&mut self) {
        let classes = self.studio.session.as_ref().map_or(1, |s| s.classes.len());
        let keys = [
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
        let pick = self.rng.below(classes.min(keys.len()));
        self.key(keys[pick], Modifiers::NONE);
        self.activity.class_switches += 1;
    }

    pub fn open_dataset(&mut self, dir: &Path) {
        self.studio.push(roadseg::studio::app::Command::OpenDataset(
            dir.to_path_buf(),
        ));
        self.settle();
        self.activity.dataset_switches += 1;
    }

    /// Runs idle frames at `fps` for `wall` (timers: autosave, loaders, the worker's events).
    pub fn idle(&mut self, wall: Duration, fps: f64) {
        let end = Instant::now() + wall;
        let period = Duration::from_secs_f64(1.0 / fps);
        while Instant::now() < end {
            let tick = Instant::now();
            self.frame(Vec::new());
            std::thread::sleep(period.saturating_sub(tick.elapsed()));
        }
    }
}

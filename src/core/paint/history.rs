//! Undo/redo for mask edits, storing only what changed.
//!
//! The mask is cut into 64x64 tiles. While an edit is in progress the first touch of a tile
//! saves its pixels; when the edit ends, tiles whose pixels did not change are dropped and the
//! rest become one undo step holding each tile's before and after pixels. A brush stroke across
//! a 4096x3072 mask therefore costs a few KiB, not 12 MiB. The history keeps at least
//! `min_steps` steps and otherwise evicts the oldest beyond `max_bytes`.

use std::collections::{BTreeMap, VecDeque};

use super::rect::DirtyRect;
use crate::core::mask::Mask;

/// Tile edge in pixels.
pub const TILE: u32 = 64;

#[derive(Clone, Debug)]
struct TileDelta {
    rect: DirtyRect,
    before: Vec<u8>,
    after: Vec<u8>,
}

/// One undoable edit (a stroke, a fill, a polygon).
#[derive(Clone, Debug)]
struct Step {
    tiles: Vec<TileDelta>,
}

impl Step {
    fn bytes(&self) -> usize {
        self.tiles
            .iter()
            .map(|t| t.before.len() + t.after.len())
            .sum()
    }

    fn bounds(&self) -> Option<DirtyRect> {
        self.tiles
            .iter()
            .fold(None, |acc, t| DirtyRect::merge(acc, Some(t.rect)))
    }
}

/// Undo/redo stacks with a memory bound.
#[derive(Debug)]
pub struct History {
    undo: VecDeque<Step>,
    redo: Vec<Step>,
    /// Tiles saved by the edit in progress, by (tile x, tile y).
    open: Option<BTreeMap<(u32, u32), TileDelta>>,
    bytes: usize,
    min_steps: usize,
    max_bytes: usize,
}

impl Default for History {
    /// At least 200 steps, and up to 256 MiB beyond that.
    fn default() -> Self {
        Self::new(200, 256 << 20)
    }
}

impl History {
    pub fn new(min_steps: usize, max_bytes: usize) -> Self {
        Self {
            undo: VecDeque::new(),
            redo: Vec::new(),
            open: None,
            bytes: 0,
            min_steps,
            max_bytes,
        }
    }

    /// Starts an edit; the next [`History::touch`] calls save tiles into it.
    pub fn begin(&mut self) {
        if self.open.is_none() {
            self.open = Some(BTreeMap::new());
        }
    }

    pub fn in_edit(&self) -> bool {
        self.open.is_some()
    }

    /// Saves the tiles under `rect` that the open edit has not saved yet. Call before changing
    /// the pixels of `rect`.
    pub fn touch(&mut self, mask: &Mask, rect: DirtyRect) {
        let Some(open) = &mut self.open else { return };
        for ty in rect.y / TILE..=(rect.bottom() - 1) / TILE {
            for tx in rect.x / TILE..=(rect.right() - 1) / TILE {
                open.entry((tx, ty)).or_insert_with(|| {
                    let tile = tile_rect(mask, tx, ty);
                    TileDelta {
                        rect: tile,
                        before: copy_rect(mask, tile),
                        after: Vec::new(),
                    }
                });
            }
        }
    }

    /// Ends the open edit; returns whether it changed anything (and so became an undo step).
    pub fn end(&mut self, mask: &Mask) -> bool {
        let Some(open) = self.open.take() else {
            return false;
        };
        let tiles: Vec<TileDelta> = open
            .into_values()
            .filter_map(|mut t| {
                t.after = copy_rect(mask, t.rect);
                (t.after != t.before).then_some(t)
            })
            .collect();
        if tiles.is_empty() {
            return false;
        }
        let step = Step { tiles };
        self.bytes += step.bytes();
        self.undo.push_back(step);
        self.redo.clear();
        while self.undo.len() > self.min_steps && self.bytes > self.max_bytes {
            if let Some(old) = self.undo.pop_front() {
                self.bytes -= old.bytes();
            }
        }
        true
    }

    /// Reverts the last step; returns the rectangle to redraw.
    pub fn undo(&mut self, mask: &mut Mask) -> Option<DirtyRect> {
        self.end(mask);
        let step = self.undo.pop_back()?;
        for t in &step.tiles {
            paste_rect(mask, t.rect, &t.before);
        }
        self.bytes -= step.bytes();
        let bounds = step.bounds();
        self.redo.push(step);
        bounds
    }

    /// Re-applies the last undone step; returns the rectangle to redraw.
    pub fn redo(&mut self, mask: &mut Mask) -> Option<DirtyRect> {
        self.end(mask);
        let step = self.redo.pop()?;
        for t in &step.tiles {
            paste_rect(mask, t.rect, &t.after);
        }
        self.bytes += step.bytes();
        let bounds = step.bounds();
        self.undo.push_back(step);
        bounds
    }

    pub fn can_undo(&self) -> bool {
        !self.undo.is_empty()
    }

    pub fn can_redo(&self) -> bool {
        !self.redo.is_empty()
    }

    pub fn undo_steps(&self) -> usize {
        self.undo.len()
    }

    /// Memory held by the undo stack, in bytes.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn clear(&mut self) {
        self.undo.clear();
        self.redo.clear();
        self.open = None;
        self.bytes = 0;
    }
}

fn tile_rect(mask: &Mask, tx: u32, ty: u32) -> DirtyRect {
    let (x, y) = (tx * TILE, ty * TILE);
    DirtyRect {
        x,
        y,
        width: TILE.min(mask.width - x),
        height: TILE.min(mask.height - y),
    }
}

/// The pixels of `rect`, row by row.
pub fn copy_rect(mask: &Mask, rect: DirtyRect) -> Vec<u8> {
    let w = mask.width as usize;
    let mut out = Vec::with_capacity(rect.area() as usize);
    for y in rect.y..rect.bottom() {
        let start = y as usize * w + rect.x as usize;
        out.extend_from_slice(&mask.data[start..start + rect.width as usize]);
    }
    out
}

fn paste_rect(mask: &mut Mask, rect: DirtyRect, pixels: &[u8]) {
    let w = mask.width as usize;
    for (row, y) in (rect.y..rect.bottom()).enumerate() {
        let start = y as usize * w + rect.x as usize;
        let n = rect.width as usize;
        mask.data[start..start + n].copy_from_slice(&pixels[row * n..(row + 1) * n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::paint::ops::{flood_fill, stroke, stroke_bounds};

    fn paint(history: &mut History, mask: &mut Mask, a: [f32; 2], b: [f32; 2], value: u8) {
        history.begin();
        if let Some(rect) = stroke_bounds(mask, a, b, 3.0) {
            history.touch(mask, rect);
        }
        stroke(mask, a, b, 3.0, value);
        history.end(mask);
    }

    #[test]
    fn undo_and_redo_restore_exact_pixels() {
        let mut mask = Mask::unlabelled(300, 200);
        let mut history = History::default();
        let blank = mask.clone();
        paint(&mut history, &mut mask, [10.0, 10.0], [250.0, 150.0], 1);
        let one = mask.clone();
        paint(&mut history, &mut mask, [10.0, 150.0], [250.0, 10.0], 2);
        let two = mask.clone();
        assert_eq!(history.undo_steps(), 2);

        assert!(history.undo(&mut mask).is_some());
        assert_eq!(mask, one);
        assert!(history.undo(&mut mask).is_some());
        assert_eq!(mask, blank);
        assert!(history.undo(&mut mask).is_none(), "nothing left to undo");
        history.redo(&mut mask);
        history.redo(&mut mask);
        assert_eq!(mask, two);
        assert!(!history.can_redo());
        // A new edit after an undo drops the redo branch.
        history.undo(&mut mask);
        paint(&mut history, &mut mask, [5.0, 5.0], [5.0, 5.0], 3);
        assert!(!history.can_redo());
    }

    #[test]
    fn a_stroke_stores_only_the_tiles_it_changed() {
        let mut mask = Mask::unlabelled(4096, 3072);
        let mut history = History::default();
        paint(&mut history, &mut mask, [100.0, 100.0], [110.0, 100.0], 1);
        // One 64x64 tile, before and after.
        assert_eq!(history.bytes(), 2 * 64 * 64);
        // An edit that changes nothing is not a step.
        paint(&mut history, &mut mask, [100.0, 100.0], [110.0, 100.0], 1);
        assert_eq!(history.undo_steps(), 1);
    }

    #[test]
    fn keeps_at_least_the_minimum_steps_then_bounds_memory() {
        let mut mask = Mask::unlabelled(640, 640);
        let mut history = History::new(200, 0);
        for i in 0..300 {
            let v = (i % 5) as u8;
            paint(
                &mut history,
                &mut mask,
                [(i % 600) as f32, 20.0],
                [(i % 600) as f32, 600.0],
                v,
            );
        }
        assert_eq!(
            history.undo_steps(),
            200,
            "memory cap 0 keeps just the minimum"
        );
        let mut undone = 0;
        while history.undo(&mut mask).is_some() {
            undone += 1;
        }
        assert_eq!(undone, 200);
        assert_eq!(history.bytes(), 0);
    }

    #[test]
    fn flood_fill_undo_via_whole_region_touch() {
        let mut mask = Mask::unlabelled(130, 70);
        let mut history = History::default();
        let before = mask.clone();
        history.begin();
        history.touch(
            &mask,
            DirtyRect {
                x: 0,
                y: 0,
                width: 130,
                height: 70,
            },
        );
        flood_fill(&mut mask, 3, 3, 6);
        history.end(&mask);
        history.undo(&mut mask);
        assert_eq!(mask, before);
    }
}

//! What no edit may overwrite: locked classes, and (with "paint only unlabelled pixels") every
//! labelled pixel.
//!
//! Locks are enforced in one place, [`MaskDocument::edit`](super::MaskDocument::edit), which
//! every tool edits through: the document saves the pixels an edit may change, lets the tool
//! write, then [`Locks::restore`] puts back every changed pixel whose *old* value was
//! protected, before the undo step is closed. So no tool (brush, eraser, fill, polygon, accept,
//! a region from an assist) can bypass them, and a tool needs to know nothing about them. A
//! locked class may still be painted onto free pixels: a lock guards the pixels a class has,
//! it does not forbid the class.

use super::rect::DirtyRect;
use crate::core::dataset::IGNORE;
use crate::core::mask::Mask;

/// The protected values. The default protects nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Locks {
    /// One bit per class id (256 of them; the unlabelled value 255 included, though the studio
    /// offers no lock for it).
    locked: [u64; 4],
    /// Only unlabelled pixels ([`IGNORE`]) may change.
    pub unlabelled_only: bool,
}

impl Locks {
    /// `classes` locked, and unlabelled pixels only when `unlabelled_only`.
    pub fn new(classes: impl IntoIterator<Item = u8>, unlabelled_only: bool) -> Self {
        let mut locks = Self {
            unlabelled_only,
            ..Self::default()
        };
        for class in classes {
            locks.set_locked(class, true);
        }
        locks
    }

    pub fn set_locked(&mut self, class: u8, locked: bool) {
        let (word, bit) = (class as usize / 64, class % 64);
        match locked {
            true => self.locked[word] |= 1 << bit,
            false => self.locked[word] &= !(1 << bit),
        }
    }

    pub fn is_locked(&self, class: u8) -> bool {
        self.locked[class as usize / 64] >> (class % 64) & 1 == 1
    }

    /// The locked class ids, ascending.
    pub fn locked_classes(&self) -> Vec<u8> {
        (0..=u8::MAX).filter(|&c| self.is_locked(c)).collect()
    }

    /// Whether a pixel holding `value` must keep it.
    pub fn protects(&self, value: u8) -> bool {
        (self.unlabelled_only && value != IGNORE) || self.is_locked(value)
    }

    /// Whether nothing is protected (edits then skip the restoring pass).
    pub fn is_empty(&self) -> bool {
        !self.unlabelled_only && self.locked == [0; 4]
    }

    /// After an edit: puts back every pixel of `changed` whose value differs from `before` and
    /// whose old value is protected. `before` holds the pixels of `saved` (row by row) as they
    /// were before the edit, and `saved` must contain `changed`. Returns the rectangle of the
    /// pixels that really changed (tight), `None` when the locks refused all of it.
    pub fn restore(
        &self,
        mask: &mut Mask,
        saved: DirtyRect,
        before: &[u8],
        changed: DirtyRect,
    ) -> Option<DirtyRect> {
        debug_assert_eq!(before.len() as u64, saved.area());
        debug_assert!(
            changed.x >= saved.x
                && changed.y >= saved.y
                && changed.right() <= saved.right()
                && changed.bottom() <= saved.bottom(),
            "an edit changed pixels outside the rectangle it declared"
        );
        let width = mask.width as usize;
        let mut kept: Option<DirtyRect> = None;
        for y in changed.y..changed.bottom() {
            let row = &mut mask.data[y as usize * width..][..width];
            let old_row = &before[(y - saved.y) as usize * saved.width as usize..];
            let (mut first, mut last) = (u32::MAX, 0u32);
            for x in changed.x..changed.right() {
                let old = old_row[(x - saved.x) as usize];
                let now = &mut row[x as usize];
                if *now == old {
                    continue;
                }
                if self.protects(old) {
                    *now = old;
                } else {
                    first = first.min(x);
                    last = last.max(x);
                }
            }
            kept = DirtyRect::with_row(kept, y, first, last);
        }
        kept
    }
}

#[cfg(test)]
mod tests {
    //! Every tool against the locks, through the document (where they are enforced).

    use super::*;
    use crate::core::paint::MaskDocument;
    use crate::core::paint::accept::{AcceptScope, Suggestion, accept, accept_bounds};

    /// A 12x8 mask: class 1 in columns 0..4, class 2 in columns 4..8, unlabelled in 8..12.
    fn striped() -> Mask {
        let mut mask = Mask::unlabelled(12, 8);
        for y in 0..8 {
            for x in 0..8 {
                mask.set(x, y, if x < 4 { 1 } else { 2 });
            }
        }
        mask
    }

    fn document(locks: Locks) -> MaskDocument {
        let mut doc = MaskDocument::new("unused.png".into(), striped());
        doc.set_locks(locks);
        doc
    }

    /// Pixels that held `class` before and hold something else now.
    fn lost(doc: &MaskDocument, class: u8) -> usize {
        let before = striped();
        before
            .data
            .iter()
            .zip(&doc.mask().data)
            .filter(|(b, a)| **b == class && *a != *b)
            .count()
    }

    fn count(doc: &MaskDocument, value: u8) -> usize {
        doc.mask().data.iter().filter(|&&v| v == value).count()
    }

    /// The whole mask as a square polygon.
    const ALL: [[f32; 2]; 4] = [[0.0, 0.0], [12.0, 0.0], [12.0, 8.0], [0.0, 8.0]];

    /// Class 3 over everything with `op`; the locked class 1 keeps its 32 pixels.
    fn paints_around_class_1(op: impl FnOnce(&mut MaskDocument) -> Option<DirtyRect>) {
        let mut doc = document(Locks::new([1], false));
        let changed = op(&mut doc).expect("the free pixels change");
        assert_eq!(lost(&doc, 1), 0, "locked pixels are untouched");
        assert_eq!(count(&doc, 1), 32);
        // The returned rectangle is what changed: columns 4..12 only.
        assert_eq!((changed.x, changed.right()), (4, 12));
    }

    #[test]
    fn a_locked_class_survives_brush_fill_and_polygon() {
        paints_around_class_1(|doc| doc.stroke([0.0, 4.0], [12.0, 4.0], 6.0, 3));
        paints_around_class_1(|doc| doc.polygon_fill(&ALL, 3));
        // A fill from inside the locked class changes nothing; from the unlocked one, it fills.
        let mut doc = document(Locks::new([1], false));
        assert_eq!(doc.flood_fill(1, 1, 3), None);
        assert_eq!(doc.history().undo_steps(), 0);
        assert!(doc.flood_fill(5, 1, 3).is_some());
        assert_eq!((count(&doc, 3), lost(&doc, 1)), (32, 0));
    }

    #[test]
    fn the_eraser_cannot_erase_a_locked_class() {
        let mut doc = document(Locks::new([2], false));
        let changed = doc.stroke([0.0, 4.0], [12.0, 4.0], 6.0, IGNORE).unwrap();
        assert_eq!((count(&doc, 1), count(&doc, 2)), (0, 32));
        assert_eq!((changed.x, changed.right()), (0, 4));
    }

    #[test]
    fn accept_of_every_scope_honours_locks() {
        // The model says class 0 everywhere, surely.
        let ids = Mask::filled(12, 8, 0);
        let confidence = vec![255; 96];
        let scopes = [
            AcceptScope::Whole,
            AcceptScope::Brush {
                a: [0.0, 4.0],
                b: [12.0, 4.0],
                radius: 6.0,
            },
            AcceptScope::Polygon(ALL.to_vec()),
            // The predicted component under (0, 0) is the whole image.
            AcceptScope::Component { x: 0, y: 0 },
        ];
        for scope in scopes {
            paints_around_class_1(|doc| {
                let suggestion = Suggestion {
                    ids: &ids,
                    confidence: &confidence,
                    threshold: 0,
                };
                let bounds = accept_bounds(doc.mask(), &scope);
                doc.edit(bounds, |mask| accept(mask, suggestion, &scope))
            });
        }
    }

    #[test]
    fn paint_region_honours_locks() {
        let mut region = Mask::filled(12, 8, 0);
        for y in 2..6 {
            for x in 2..10 {
                region.set(x, y, 1);
            }
        }
        let mut doc = document(Locks::new([1], false));
        let changed = doc.paint_region(&region, 3).unwrap();
        assert_eq!(count(&doc, 3), 24, "columns 4..10 of rows 2..6");
        assert_eq!(lost(&doc, 1), 0);
        assert_eq!(
            (changed.x, changed.y, changed.width, changed.height),
            (4, 2, 6, 4)
        );
    }

    #[test]
    fn unlabelled_only_leaves_every_label_alone() {
        let only = || Locks::new([], true);
        for op in [
            (|doc: &mut MaskDocument| doc.stroke([0.0, 4.0], [12.0, 4.0], 6.0, 3))
                as fn(&mut MaskDocument) -> Option<DirtyRect>,
            |doc| doc.polygon_fill(&ALL, 3),
            |doc| doc.flood_fill(10, 1, 3),
            |doc| doc.paint_region(&Mask::filled(12, 8, 1), 3),
        ] {
            let mut doc = document(only());
            let changed = op(&mut doc).unwrap();
            assert_eq!((lost(&doc, 1), lost(&doc, 2)), (0, 0));
            assert_eq!(count(&doc, 3), 32, "the unlabelled columns 8..12");
            assert_eq!((changed.x, changed.width, changed.height), (8, 4, 8));
        }
        // Erasing is refused wholly: every pixel it would change is labelled.
        let mut doc = document(only());
        assert_eq!(doc.stroke([0.0, 4.0], [12.0, 4.0], 6.0, IGNORE), None);
        // Accepting too.
        let ids = Mask::filled(12, 8, 0);
        let confidence = vec![255; 96];
        let suggestion = Suggestion {
            ids: &ids,
            confidence: &confidence,
            threshold: 0,
        };
        doc.edit(None, |mask| accept(mask, suggestion, &AcceptScope::Whole));
        assert_eq!((lost(&doc, 1), lost(&doc, 2), count(&doc, 0)), (0, 0, 32));
    }

    #[test]
    fn undo_after_a_partly_refused_edit_restores_exactly() {
        let mut doc = document(Locks::new([2], false));
        doc.stroke([0.0, 4.0], [12.0, 4.0], 2.0, 5).unwrap();
        doc.polygon_fill(&ALL, 6).unwrap();
        assert_eq!(doc.history().undo_steps(), 2);
        assert_eq!(count(&doc, 2), 32);
        doc.undo();
        doc.undo();
        assert_eq!(doc.mask(), &striped());
        doc.redo();
        assert_eq!(
            count(&doc, 5),
            2 * 4 * 4,
            "rows 2..6 of columns 0..4 and 8..12"
        );
    }

    #[test]
    fn a_wholly_refused_edit_is_no_step_and_no_change() {
        let mut doc = document(Locks::new([1, 2], false));
        // Inside one stroke of several segments, as the canvas paints.
        doc.begin_edit();
        assert_eq!(doc.stroke([0.0, 2.0], [7.0, 2.0], 1.0, 3), None);
        assert_eq!(doc.stroke([7.0, 2.0], [7.0, 6.0], 1.0, 3), None);
        doc.end_edit();
        assert_eq!(doc.flood_fill(0, 0, 3), None);
        assert_eq!(
            doc.polygon_fill(&[[0.0, 0.0], [8.0, 0.0], [8.0, 8.0]], 4),
            None
        );
        assert_eq!(doc.mask(), &striped());
        assert_eq!(doc.history().undo_steps(), 0);
        assert!(!doc.history().can_undo());
        assert!(!doc.is_modified(), "the image does not count as modified");
    }

    #[test]
    fn locks_set_and_list() {
        let mut locks = Locks::new([0, 64, 200], false);
        assert!(locks.is_locked(64) && !locks.is_locked(65));
        locks.set_locked(64, false);
        locks.set_locked(255, true);
        assert_eq!(locks.locked_classes(), [0, 200, 255]);
        assert!(locks.protects(200) && !locks.protects(3));
        assert!(!locks.is_empty() && Locks::default().is_empty());
        assert!(Locks::new([], true).protects(3) && !Locks::new([], true).protects(IGNORE));
    }
}

//! Axis-aligned pixel rectangles: what an edit touched, what the GPU must re-upload.

/// Pixels `x..x + width`, `y..y + height`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DirtyRect {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

impl DirtyRect {
    /// The rectangle spanning `[x0, x1) x [y0, y1)` clipped to a `w x h` image; `None` if empty.
    pub fn clipped(x0: i64, y0: i64, x1: i64, y1: i64, w: u32, h: u32) -> Option<Self> {
        let (x0, y0) = (x0.max(0), y0.max(0));
        let (x1, y1) = (x1.min(w as i64), y1.min(h as i64));
        (x1 > x0 && y1 > y0).then(|| Self {
            x: x0 as u32,
            y: y0 as u32,
            width: (x1 - x0) as u32,
            height: (y1 - y0) as u32,
        })
    }

    pub fn right(&self) -> u32 {
        self.x + self.width
    }

    pub fn bottom(&self) -> u32 {
        self.y + self.height
    }

    pub fn area(&self) -> u64 {
        self.width as u64 * self.height as u64
    }

    /// The smallest rectangle holding both.
    pub fn union(self, other: Self) -> Self {
        let x = self.x.min(other.x);
        let y = self.y.min(other.y);
        Self {
            x,
            y,
            width: self.right().max(other.right()) - x,
            height: self.bottom().max(other.bottom()) - y,
        }
    }

    /// Union of two optional rectangles.
    /// `changed` grown by the pixels `first..=last` of row `y`; unchanged when the row changed
    /// nothing (`first > last`, as a row scan that started at `u32::MAX, 0` leaves it).
    pub fn with_row(changed: Option<Self>, y: u32, first: u32, last: u32) -> Option<Self> {
        if first > last {
            return changed;
        }
        let line = Self {
            x: first,
            y,
            width: last - first + 1,
            height: 1,
        };
        Self::merge(changed, Some(line))
    }

    pub fn merge(a: Option<Self>, b: Option<Self>) -> Option<Self> {
        match (a, b) {
            (Some(a), Some(b)) => Some(a.union(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clipping_and_union() {
        assert_eq!(DirtyRect::clipped(-5, -5, 0, 3, 10, 10), None);
        let a = DirtyRect::clipped(-2, 1, 3, 4, 10, 10).unwrap();
        assert_eq!((a.x, a.y, a.width, a.height), (0, 1, 3, 3));
        let b = DirtyRect::clipped(8, 8, 20, 20, 10, 10).unwrap();
        assert_eq!((b.width, b.height), (2, 2));
        let u = a.union(b);
        assert_eq!((u.x, u.y, u.right(), u.bottom()), (0, 1, 10, 10));
        assert_eq!(DirtyRect::merge(None, Some(b)), Some(b));
        assert_eq!(u.area(), 90);
    }
}

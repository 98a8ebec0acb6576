//! COCO's run-length encoding of binary masks, as pycocotools' `common/maskApi.c` has it.
//!
//! Runs go down the columns (Fortran order: pixel (x, y) is number `x * height + y`),
//! alternating off and on, starting with off (a first run of 0 when the mask starts on). The
//! compressed string (`rleToString` / `rleFrString`) stores each run in 5-bit groups, least
//! significant first, as characters 48 + group, 0x20 marking "more groups follow" and 0x10 in
//! the last group the sign; from the fourth run on it stores the difference to the run two
//! before (runs of the same kind are alike).

/// A binary mask as COCO runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rle {
    pub height: u32,
    pub width: u32,
    pub counts: Vec<u32>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RleError {
    #[error("the runs sum to {sum}, not height x width = {pixels}")]
    WrongTotal { sum: u64, pixels: u64 },
    #[error("character {found:?} at position {at} is not RLE (expected '0'..'o')")]
    BadCharacter { at: usize, found: char },
    #[error("the string ends inside a run")]
    Truncated,
    #[error("run {index} is negative or too long ({value})")]
    BadRun { index: usize, value: i64 },
}

impl Rle {
    /// Encodes a row-major binary mask (`on[y * width + x]`).
    pub fn encode(on: &[bool], width: u32, height: u32) -> Rle {
        let (w, h) = (width as usize, height as usize);
        let mut counts = Vec::new();
        let (mut value, mut run) = (false, 0u32);
        for x in 0..w {
            for y in 0..h {
                let v = on.get(y * w + x).copied().unwrap_or(false);
                if v != value {
                    counts.push(run);
                    value = v;
                    run = 0;
                }
                run += 1;
            }
        }
        counts.push(run);
        Rle {
            height,
            width,
            counts,
        }
    }

    /// Runs as given; they must cover the mask exactly.
    pub fn from_counts(counts: Vec<u32>, height: u32, width: u32) -> Result<Rle, RleError> {
        let sum: u64 = counts.iter().map(|&c| c as u64).sum();
        let pixels = height as u64 * width as u64;
        if sum != pixels {
            return Err(RleError::WrongTotal { sum, pixels });
        }
        Ok(Rle {
            height,
            width,
            counts,
        })
    }

    /// pycocotools' compressed string (`rleFrString`).
    pub fn from_compressed(s: &str, height: u32, width: u32) -> Result<Rle, RleError> {
        let bytes = s.as_bytes();
        let pixels = height as u64 * width as u64;
        let mut counts: Vec<u32> = Vec::new();
        let mut p = 0;
        while p < bytes.len() {
            let (mut x, mut k) = (0i64, 0u32);
            loop {
                let Some(&b) = bytes.get(p) else {
                    return Err(RleError::Truncated);
                };
                if !(48..48 + 64).contains(&b) {
                    let found = s[p..].chars().next().unwrap_or('?');
                    return Err(RleError::BadCharacter { at: p, found });
                }
                let c = (b - 48) as i64;
                // Past 12 groups (60 bits) no real run is this long: refuse before overflow.
                if k >= 12 {
                    return Err(RleError::BadRun {
                        index: counts.len(),
                        value: i64::MAX,
                    });
                }
                x |= (c & 0x1f) << (5 * k);
                p += 1;
                k += 1;
                if c & 0x20 == 0 {
                    if c & 0x10 != 0 {
                        x |= -1i64 << (5 * k);
                    }
                    break;
                }
            }
            let m = counts.len();
            if m > 2 {
                x += counts[m - 2] as i64;
            }
            if x < 0 || x as u64 > pixels {
                return Err(RleError::BadRun { index: m, value: x });
            }
            counts.push(x as u32);
        }
        Rle::from_counts(counts, height, width)
    }

    /// pycocotools' compressed string (`rleToString`).
    pub fn to_compressed(&self) -> String {
        let mut s = String::new();
        for (i, &count) in self.counts.iter().enumerate() {
            let mut x = count as i64;
            if i > 2 {
                x -= self.counts[i - 2] as i64;
            }
            loop {
                let mut c = (x & 0x1f) as u8;
                x >>= 5;
                let more = if c & 0x10 != 0 { x != -1 } else { x != 0 };
                if more {
                    c |= 0x20;
                }
                s.push((c + 48) as char);
                if !more {
                    break;
                }
            }
        }
        s
    }

    /// Calls `set(x, y)` for each pixel that is on.
    pub fn for_each_on(&self, mut set: impl FnMut(u32, u32)) {
        let h = self.height as u64;
        if h == 0 {
            return;
        }
        let mut at = 0u64;
        for (i, &run) in self.counts.iter().enumerate() {
            if i % 2 == 1 {
                for n in at..at + run as u64 {
                    set((n / h) as u32, (n % h) as u32);
                }
            }
            at += run as u64;
        }
    }

    /// Pixels on.
    pub fn area(&self) -> u64 {
        self.counts
            .iter()
            .skip(1)
            .step_by(2)
            .map(|&c| c as u64)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: &mut u64) -> u64 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        *seed >> 33
    }

    fn decode(rle: &Rle) -> Vec<bool> {
        let mut on = vec![false; (rle.width * rle.height) as usize];
        rle.for_each_on(|x, y| on[(y * rle.width + x) as usize] = true);
        on
    }

    /// Row-major bools from rows of 0/1.
    fn rows(rows: &[&[u8]]) -> Vec<bool> {
        rows.iter()
            .flat_map(|r| r.iter().map(|&v| v == 1))
            .collect()
    }

    #[test]
    fn matches_pycocotools_vectors() {
        // From pycocotools 2.0.11: mask.encode(np.asfortranarray(m))["counts"].
        let on = rows(&[&[0, 1, 1, 0], &[0, 1, 0, 0], &[1, 1, 0, 1]]);
        let rle = Rle::encode(&on, 4, 3);
        assert_eq!(rle.counts, vec![2, 5, 4, 1]);
        assert_eq!(rle.to_compressed(), "254L");
        assert_eq!(rle.area(), 6);
        assert_eq!(Rle::from_compressed("254L", 3, 4).unwrap(), rle);
        assert_eq!(decode(&rle), on);
        // np.random.RandomState(1).rand(5, 7) < 0.4
        let on = rows(&[
            &[0, 0, 1, 1, 1, 1, 1],
            &[1, 1, 0, 0, 0, 1, 0],
            &[1, 0, 0, 0, 1, 1, 0],
            &[0, 1, 0, 0, 0, 1, 1],
            &[1, 0, 1, 0, 0, 0, 0],
        ]);
        let rle = Rle::encode(&on, 7, 5);
        assert_eq!(rle.to_compressed(), "121O000000211OM013OM10O");
        assert_eq!(
            decode(&Rle::from_compressed("121O000000211OM013OM10O", 5, 7).unwrap()),
            on
        );
        // All on, all off, and a run of 100 in two groups.
        assert_eq!(Rle::encode(&[true; 6], 3, 2).to_compressed(), "06");
        assert_eq!(Rle::from_compressed("06", 2, 3).unwrap().counts, vec![0, 6]);
        assert_eq!(Rle::from_compressed("6", 2, 3).unwrap().counts, vec![6]);
        assert_eq!(Rle::encode(&[false; 100], 10, 10).to_compressed(), "T3");
        // Long runs in several groups: one pixel on at (x 2500, y 1700) of 3000x3000.
        let one = Rle::from_compressed("TlmT71kUg]1", 3000, 3000).unwrap();
        assert_eq!(
            one.counts,
            vec![2500 * 3000 + 1700, 1, 9_000_000 - 2500 * 3000 - 1701]
        );
        let mut on = Vec::new();
        one.for_each_on(|x, y| on.push((x, y)));
        assert_eq!(on, [(2500, 1700)]);
        assert_eq!(one.to_compressed(), "TlmT71kUg]1");
    }

    #[test]
    fn random_masks_round_trip() {
        let mut seed = 7u64;
        for _ in 0..200 {
            let w = 1 + (lcg(&mut seed) % 40) as u32;
            let h = 1 + (lcg(&mut seed) % 40) as u32;
            let density = lcg(&mut seed) % 100;
            let on: Vec<bool> = (0..w * h).map(|_| lcg(&mut seed) % 100 < density).collect();
            let rle = Rle::encode(&on, w, h);
            assert_eq!(decode(&rle), on);
            let back = Rle::from_compressed(&rle.to_compressed(), h, w).unwrap();
            assert_eq!(back, rle);
            assert_eq!(rle.area(), on.iter().filter(|&&v| v).count() as u64);
        }
    }

    #[test]
    fn hostile_input_is_refused() {
        assert_eq!(
            Rle::from_counts(vec![3, 4], 2, 2),
            Err(RleError::WrongTotal { sum: 7, pixels: 4 })
        );
        assert!(matches!(
            Rle::from_compressed("0 6", 2, 3),
            Err(RleError::BadCharacter { at: 1, .. })
        ));
        assert!(matches!(
            Rle::from_compressed("é", 2, 3),
            Err(RleError::BadCharacter { at: 0, .. })
        ));
        // 'P' = 48 + 0x20: more groups announced, none follow.
        assert_eq!(Rle::from_compressed("P", 2, 3), Err(RleError::Truncated));
        // Endless continuation groups, and a run longer than the image.
        assert!(matches!(
            Rle::from_compressed(&"o".repeat(40), 2, 3),
            Err(RleError::BadRun { .. })
        ));
        assert!(matches!(
            Rle::from_compressed("T3", 2, 3),
            Err(RleError::BadRun { .. })
        ));
        // A negative run: '@' = 48 + 0x10, the sign alone (-16).
        assert!(matches!(
            Rle::from_compressed("@", 2, 3),
            Err(RleError::BadRun { .. })
        ));
        assert!(
            Rle::from_compressed("", 2, 3).is_err(),
            "no runs: sums to 0"
        );
    }
}

//! Train/val/test splits: from a layout's folders, from splits.json, or a seeded ratio.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{DatasetError, Sample, image_io};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Val,
    Test,
}

impl Split {
    pub const ALL: [Split; 3] = [Split::Train, Split::Val, Split::Test];

    pub fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
        }
    }
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Split {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "train" => Ok(Split::Train),
            "val" | "valid" | "validation" => Ok(Split::Val),
            "test" => Ok(Split::Test),
            other => Err(format!("unknown split {other:?} (train, val, test)")),
        }
    }
}

/// Seed and train fraction used where a layout has no split folders.
pub const DEFAULT_SPLIT_SEED: u64 = 0x5EED;
pub const DEFAULT_TRAIN_FRACTION: f64 = 0.8;

/// A 64-bit hash that never changes between versions (unlike `DefaultHasher`).
pub fn stable_hash(seed: u64, bytes: &[u8]) -> u64 {
    // FNV-1a then a splitmix finaliser for good low bits.
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    crate::core::rng::mix64(h)
}

/// Assigns train/val by name: each name's own hash decides, so adding images never moves
/// others between splits. With two or more samples, val is never left empty.
pub fn assign_by_ratio(samples: &mut [Sample], seed: u64, train_fraction: f64) {
    let threshold = (train_fraction.clamp(0.0, 1.0) * u64::MAX as f64) as u64;
    let mut best: Option<(u64, usize)> = None;
    for (i, sample) in samples.iter_mut().enumerate() {
        let h = stable_hash(seed, sample.name.as_bytes());
        sample.split = if h < threshold {
            crate::core::dataset::Split::Train
        } else {
            crate::core::dataset::Split::Val
        };
        if best.is_none_or(|(bh, _)| h > bh) {
            best = Some((h, i));
        }
    }
    let has_val = samples.iter().any(|s| s.split == Split::Val);
    if !has_val
        && samples.len() >= 2
        && train_fraction < 1.0
        && let Some((_, i)) = best
    {
        samples[i].split = Split::Val;
    }
}

/// Gives the samples that `listed` does not place the seeded ratio split, as a dataset without
/// lists would have (a layout whose split lists name only some of its images).
pub fn assign_rest_by_ratio(samples: &mut [Sample], listed: impl Fn(&Sample) -> bool) {
    let mut rest: Vec<Sample> = samples.iter().filter(|s| !listed(s)).cloned().collect();
    if rest.is_empty() {
        return;
    }
    assign_by_ratio(&mut rest, DEFAULT_SPLIT_SEED, DEFAULT_TRAIN_FRACTION);
    let by_name: HashMap<String, Split> = rest.into_iter().map(|s| (s.name, s.split)).collect();
    for sample in samples.iter_mut().filter(|s| !listed(s)) {
        if let Some(&split) = by_name.get(&sample.name) {
            sample.split = split;
        }
    }
}

/// Native `splits.json`: `{"train": [names], "val": [names], "test": [names]}`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SplitsFile {
    #[serde(default)]
    pub train: Vec<String>,
    #[serde(default)]
    pub val: Vec<String>,
    #[serde(default)]
    pub test: Vec<String>,
}

impl SplitsFile {
    pub fn read(file: &Path) -> Result<Self, DatasetError> {
        let text = std::fs::read_to_string(file).map_err(|e| DatasetError::io(file, e))?;
        serde_json::from_str(&text).map_err(|e| DatasetError::BadFile {
            file: file.to_path_buf(),
            reason: format!("bad splits.json: {e}"),
        })
    }

    pub fn write(&self, file: &Path) -> Result<(), DatasetError> {
        let json = serde_json::to_vec_pretty(self).expect("splits serialise");
        image_io::write_atomic(file, &json)
    }

    pub fn from_samples(samples: &[Sample]) -> Self {
        let mut out = Self::default();
        for s in samples {
            match s.split {
                Split::Train => out.train.push(s.name.clone()),
                Split::Val => out.val.push(s.name.clone()),
                Split::Test => out.test.push(s.name.clone()),
            }
        }
        out
    }

    /// Names listed in more than one split, with those splits in order (train, val, test).
    pub fn conflicts(&self) -> BTreeMap<&str, Vec<Split>> {
        let mut splits: BTreeMap<&str, Vec<Split>> = BTreeMap::new();
        for (split, names) in self.lists() {
            for name in names {
                let of_name = splits.entry(name.as_str()).or_default();
                if !of_name.contains(&split) {
                    of_name.push(split);
                }
            }
        }
        splits.retain(|_, s| s.len() > 1);
        splits
    }

    pub fn lists(&self) -> [(Split, &Vec<String>); 3] {
        [
            (Split::Train, &self.train),
            (Split::Val, &self.val),
            (Split::Test, &self.test),
        ]
    }

    /// Each listed name's split; a name listed in several splits (see
    /// [`SplitsFile::conflicts`]) gets the last.
    pub fn lookup(&self) -> HashMap<&str, Split> {
        let mut map = HashMap::new();
        for (split, names) in self.lists() {
            for name in names {
                map.insert(name.as_str(), split);
            }
        }
        map
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn samples(n: usize) -> Vec<Sample> {
        (0..n)
            .map(|i| Sample {
                name: format!("img{i:03}"),
                image: PathBuf::from(format!("img{i:03}.png")),
                label: None,
                split: Split::Test,
            })
            .collect()
    }

    #[test]
    fn ratio_split_is_stable_and_close_to_ratio() {
        let mut a = samples(500);
        assign_by_ratio(&mut a, 1, 0.8);
        let train = a.iter().filter(|s| s.split == Split::Train).count();
        assert!((370..=430).contains(&train), "{train} of 500 in train");
        // Adding images does not move existing ones.
        let mut b = samples(600);
        assign_by_ratio(&mut b, 1, 0.8);
        assert!(a.iter().zip(&b).all(|(x, y)| x.split == y.split));
        // A different seed gives a different split.
        let mut c = samples(500);
        assign_by_ratio(&mut c, 2, 0.8);
        assert!(a.iter().zip(&c).any(|(x, y)| x.split != y.split));
    }

    #[test]
    fn names_in_two_splits_are_conflicts() {
        let file: SplitsFile = serde_json::from_str(
            r#"{"train": ["a", "b", "b", "c"], "val": ["c", "d"], "test": ["a", "c"]}"#,
        )
        .unwrap();
        let conflicts = file.conflicts();
        assert_eq!(conflicts.len(), 2, "{conflicts:?}");
        assert_eq!(conflicts["a"], [Split::Train, Split::Test]);
        assert_eq!(conflicts["c"], [Split::Train, Split::Val, Split::Test]);
    }

    #[test]
    fn tiny_dataset_still_gets_a_val_image() {
        let mut a = samples(2);
        assign_by_ratio(&mut a, 3, 0.99);
        assert_eq!(a.iter().filter(|s| s.split == Split::Val).count(), 1);
    }
}

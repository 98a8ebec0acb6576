//! ImageNet weights for a ResNet encoder from a file the user has: a torchvision checkpoint
//! (`.pth`/`.pt`, read by burn-store's `PytorchStore`) or the same tensors as `.safetensors`
//! (`SafetensorsStore`). Nothing is downloaded.
//!
//! The encoder's module tree spells torchvision's keys, so the stores match by name; burn's
//! PyTorch adapter renames batch-norm `weight`/`bias` to `gamma`/`beta`, and a key remapping
//! drops the `module.` prefix that `nn.DataParallel` checkpoints carry. The classifier
//! (`fc.*`) and the `num_batches_tracked` counters have no counterpart and are ignored. The file
//! is checked first: when any key is missing, unexpected or of another shape, all of them are
//! listed and nothing is loaded.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::store::{
    ModuleSnapshot, ModuleStore, PyTorchToBurnAdapter, PytorchStore, SafetensorsStore,
};

use super::resnet::ResNetEncoder;

/// Keys listed per kind of mismatch before "... and N more".
const LISTED: usize = 12;

/// Why pretrained weights could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PretrainedError {
    #[error("{0}: pretrained weights are read from .pth, .pt or .safetensors files")]
    Extension(PathBuf),
    #[error("{file}: could not read the weights: {reason}")]
    Read { file: PathBuf, reason: String },
    #[error("{file}: does not match the {encoder} encoder, nothing was loaded:{}",
        describe(.missing, .unexpected, .shapes))]
    Mismatch {
        file: PathBuf,
        encoder: String,
        /// Keys the encoder needs that the file lacks.
        missing: Vec<String>,
        /// Keys in the file the encoder has no place for.
        unexpected: Vec<String>,
        /// `(key, shape in the file, shape in the encoder)`.
        shapes: Vec<(String, Vec<usize>, Vec<usize>)>,
    },
}

fn describe(
    missing: &[String],
    unexpected: &[String],
    shapes: &[(String, Vec<usize>, Vec<usize>)],
) -> String {
    fn list(out: &mut String, what: &str, items: Vec<String>) {
        if items.is_empty() {
            return;
        }
        out.push_str(&format!("\n  {} {what}:", items.len()));
        for item in items.iter().take(LISTED) {
            out.push_str(&format!("\n    {item}"));
        }
        if items.len() > LISTED {
            out.push_str(&format!("\n    ... and {} more", items.len() - LISTED));
        }
    }
    let mut out = String::new();
    list(&mut out, "missing key(s)", missing.to_vec());
    list(&mut out, "unexpected key(s)", unexpected.to_vec());
    list(
        &mut out,
        "key(s) of another shape",
        shapes
            .iter()
            .map(|(k, file, ours)| format!("{k}: {file:?} in the file, {ours:?} in the encoder"))
            .collect(),
    );
    out
}

/// Whether a file key has no counterpart by design: the classifier and BN's step counters.
fn ignored(key: &str) -> bool {
    key.starts_with("fc.") || key.ends_with("num_batches_tracked")
}

/// The encoder's tensors under torchvision's names, with their shapes.
pub fn torchvision_keys(encoder: &ResNetEncoder) -> BTreeMap<String, Vec<usize>> {
    encoder
        .collect(None, None, true)
        .into_iter()
        .map(|t| {
            // Every gamma/beta of the encoder is a batch norm's, which torch calls weight/bias.
            let name = match t.name.rsplit_once('.') {
                Some((owner, "gamma")) => format!("{owner}.weight"),
                Some((owner, "beta")) => format!("{owner}.bias"),
                _ => t.name.clone(),
            };
            (name, t.shape.to_vec())
        })
        .collect()
}

/// Loads `file` into `encoder` (named `encoder_name` in messages); returns how many tensors
/// were loaded. On any error the encoder is unchanged.
pub fn load_encoder_weights(
    encoder: &mut ResNetEncoder,
    encoder_name: &str,
    file: &Path,
) -> Result<usize, PretrainedError> {
    let extension = file
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    match extension.as_deref() {
        Some("pth" | "pt") => {
            let store = PytorchStore::from_file(file)
                .with_key_remapping(r"^module\.", "")
                .map_indices_contiguous(false);
            load(store, encoder, encoder_name, file)
        }
        Some("safetensors") => {
            let store = SafetensorsStore::from_file(file)
                .with_key_remapping(r"^module\.", "")
                .with_from_adapter(PyTorchToBurnAdapter)
                .skip_enum_variants(true);
            load(store, encoder, encoder_name, file)
        }
        _ => Err(PretrainedError::Extension(file.to_path_buf())),
    }
}

fn load<S: ModuleStore>(
    mut store: S,
    encoder: &mut ResNetEncoder,
    encoder_name: &str,
    file: &Path,
) -> Result<usize, PretrainedError> {
    let read = |reason: String| PretrainedError::Read {
        file: file.to_path_buf(),
        reason,
    };
    if !file.is_file() {
        return Err(read("no such file".into()));
    }
    let found: BTreeMap<String, Vec<usize>> = store
        .get_all_tensors()
        .map_err(|e| read(e.to_string()))?
        .iter()
        .filter(|(key, _)| !ignored(key))
        .map(|(key, t)| (key.clone(), t.shape.to_vec()))
        .collect();
    let wanted = torchvision_keys(encoder);
    let missing: Vec<String> = wanted
        .keys()
        .filter(|k| !found.contains_key(*k))
        .cloned()
        .collect();
    let unexpected: Vec<String> = found
        .keys()
        .filter(|k| !wanted.contains_key(*k))
        .cloned()
        .collect();
    let shapes: Vec<(String, Vec<usize>, Vec<usize>)> = wanted
        .iter()
        .filter_map(|(k, ours)| {
            let theirs = found.get(k)?;
            (theirs != ours).then(|| (k.clone(), theirs.clone(), ours.clone()))
        })
        .collect();
    if !(missing.is_empty() && unexpected.is_empty() && shapes.is_empty()) {
        return Err(PretrainedError::Mismatch {
            file: file.to_path_buf(),
            encoder: encoder_name.to_string(),
            missing,
            unexpected,
            shapes,
        });
    }
    // Applied to a copy, so that a failure half-way leaves the encoder as it was.
    let mut loaded = encoder.clone();
    let result = loaded
        .load_from(&mut store)
        .map_err(|e| read(e.to_string()))?;
    if !result.errors.is_empty() || !result.missing.is_empty() {
        return Err(read(result.to_string()));
    }
    *encoder = loaded;
    Ok(result.applied.len())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::core::model::resnet::ResNetKind;
    use burn::tensor::Device;

    /// A tensor to write: name, shape, little-endian `f32` values (or one `i64` for the
    /// counters).
    pub(crate) struct Entry {
        pub name: String,
        pub shape: Vec<usize>,
        pub values: Vec<f32>,
        pub counter: bool,
    }

    /// torchvision's `state_dict` for `encoder`'s architecture with deterministic values, plus
    /// the classifier and the BN counters (which the loader must ignore).
    pub(crate) fn torchvision_entries(encoder: &ResNetEncoder, seed: u32) -> Vec<Entry> {
        let mut state = seed.wrapping_mul(2_654_435_761).max(1);
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state % 20_000) as f32 / 10_000.0 - 1.0
        };
        let mut entries = Vec::new();
        for (name, shape) in torchvision_keys(encoder) {
            let n: usize = shape.iter().product();
            let values: Vec<f32> = if name.ends_with("running_var") {
                (0..n).map(|_| next().abs() + 0.5).collect()
            } else {
                (0..n).map(|_| next()).collect()
            };
            if name.ends_with("running_var") {
                let owner = name.trim_end_matches("running_var");
                entries.push(Entry {
                    name: format!("{owner}num_batches_tracked"),
                    shape: Vec::new(),
                    values: vec![0.0],
                    counter: true,
                });
            }
            entries.push(Entry {
                name,
                shape,
                values,
                counter: false,
            });
        }
        for (name, shape) in [("fc.weight", vec![1000, 512]), ("fc.bias", vec![1000])] {
            let n = shape.iter().product();
            entries.push(Entry {
                name: name.into(),
                shape,
                values: vec![0.5; n],
                counter: false,
            });
        }
        entries
    }

    fn bytes_of(entry: &Entry) -> Vec<u8> {
        if entry.counter {
            return 123i64.to_le_bytes().to_vec();
        }
        entry.values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    /// A `.safetensors` file: u64 header length, JSON header, raw data.
    pub(crate) fn write_safetensors(path: &Path, entries: &[Entry]) {
        let mut header = serde_json::Map::new();
        let mut data = Vec::new();
        for e in entries {
            let bytes = bytes_of(e);
            let dtype = if e.counter { "I64" } else { "F32" };
            header.insert(
                e.name.clone(),
                serde_json::json!({"dtype": dtype, "shape": e.shape,
                    "data_offsets": [data.len(), data.len() + bytes.len()]}),
            );
            data.extend(bytes);
        }
        let mut json = serde_json::to_vec(&header).unwrap();
        while !json.len().is_multiple_of(8) {
            json.push(b' ');
        }
        let mut out = (json.len() as u64).to_le_bytes().to_vec();
        out.extend(json);
        out.extend(data);
        std::fs::write(path, out).unwrap();
    }

    /// A `torch.save` zip checkpoint: `archive/data.pkl` (a pickled dict of
    /// `torch._utils._rebuild_tensor_v2` calls on persistent storages) and one stored
    /// `archive/data/<n>` entry per tensor, as PyTorch 1.6+ writes them.
    pub(crate) fn write_torch_zip(path: &Path, entries: &[Entry], prefix: &str) {
        let mut pickle = vec![0x80, 2, b'}', b'('];
        let unicode = |p: &mut Vec<u8>, s: &str| {
            p.push(b'X');
            p.extend((s.len() as u32).to_le_bytes());
            p.extend(s.as_bytes());
        };
        let int = |p: &mut Vec<u8>, v: usize| {
            p.push(b'J');
            p.extend((v as i32).to_le_bytes());
        };
        let mut files: Vec<(String, Vec<u8>)> = Vec::new();
        for (key, e) in entries.iter().enumerate() {
            unicode(&mut pickle, &format!("{prefix}{}", e.name));
            pickle.extend(b"ctorch._utils\n_rebuild_tensor_v2\n(");
            pickle.push(b'(');
            unicode(&mut pickle, "storage");
            let storage = if e.counter {
                "LongStorage"
            } else {
                "FloatStorage"
            };
            pickle.extend(format!("ctorch\n{storage}\n").as_bytes());
            unicode(&mut pickle, &key.to_string());
            unicode(&mut pickle, "cpu");
            int(&mut pickle, e.shape.iter().product::<usize>());
            pickle.extend(b"tQ");
            int(&mut pickle, 0);
            pickle.push(b'(');
            for &d in &e.shape {
                int(&mut pickle, d);
            }
            pickle.extend(b"t(");
            let mut stride = 1;
            let mut strides = Vec::new();
            for &d in e.shape.iter().rev() {
                strides.push(stride);
                stride *= d;
            }
            for s in strides.into_iter().rev() {
                int(&mut pickle, s);
            }
            pickle.extend(b"t\x89}tR");
            files.push((format!("archive/data/{key}"), bytes_of(e)));
        }
        pickle.extend(b"u.");
        files.insert(0, ("archive/data.pkl".into(), pickle));
        files.push(("archive/version".into(), b"3\n".to_vec()));
        files.push(("archive/byteorder".into(), b"little".to_vec()));
        std::fs::write(path, stored_zip(&files)).unwrap();
    }

    fn crc32(bytes: &[u8]) -> u32 {
        let table: Vec<u32> = (0..256u32)
            .map(|mut c| {
                for _ in 0..8 {
                    c = if c & 1 != 0 {
                        0xEDB8_8320 ^ (c >> 1)
                    } else {
                        c >> 1
                    };
                }
                c
            })
            .collect();
        !bytes.iter().fold(!0u32, |c, &b| {
            table[((c ^ b as u32) & 0xFF) as usize] ^ (c >> 8)
        })
    }

    /// A zip archive of uncompressed entries.
    fn stored_zip(files: &[(String, Vec<u8>)]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut central = Vec::new();
        for (name, data) in files {
            let offset = out.len() as u32;
            let crc = crc32(data);
            let mut common = Vec::new();
            common.extend(20u16.to_le_bytes()); // version needed
            common.extend(0u16.to_le_bytes()); // flags
            common.extend(0u16.to_le_bytes()); // stored
            common.extend(0u32.to_le_bytes()); // time, date
            common.extend(crc.to_le_bytes());
            common.extend((data.len() as u32).to_le_bytes());
            common.extend((data.len() as u32).to_le_bytes());
            common.extend((name.len() as u16).to_le_bytes());
            common.extend(0u16.to_le_bytes()); // extra length
            out.extend(0x0403_4b50u32.to_le_bytes());
            out.extend(&common);
            out.extend(name.as_bytes());
            out.extend(data);
            central.extend(0x0201_4b50u32.to_le_bytes());
            central.extend(20u16.to_le_bytes()); // version made by
            central.extend(&common);
            central.extend([0u8; 6]); // comment length, disk, internal attributes
            central.extend(0u32.to_le_bytes()); // external attributes
            central.extend(offset.to_le_bytes());
            central.extend(name.as_bytes());
        }
        let start = out.len() as u32;
        out.extend(&central);
        out.extend(0x0605_4b50u32.to_le_bytes());
        out.extend([0u8; 4]);
        out.extend((files.len() as u16).to_le_bytes());
        out.extend((files.len() as u16).to_le_bytes());
        out.extend((central.len() as u32).to_le_bytes());
        out.extend(start.to_le_bytes());
        out.extend(0u16.to_le_bytes());
        out
    }

    /// Every tensor of `encoder` under torchvision's names, as values.
    fn values(encoder: &ResNetEncoder) -> BTreeMap<String, Vec<f32>> {
        let names: Vec<String> = torchvision_keys(encoder).into_keys().collect();
        let mut tensors: Vec<_> = encoder.collect(None, None, true);
        tensors.sort_by(|a, b| a.name.cmp(&b.name));
        let mut out = BTreeMap::new();
        for t in tensors {
            let data = burn::store::bridge::to_data(&t)
                .unwrap()
                .convert::<f32>()
                .try_into_vec::<f32>()
                .unwrap();
            let name = match t.name.rsplit_once('.') {
                Some((owner, "gamma")) => format!("{owner}.weight"),
                Some((owner, "beta")) => format!("{owner}.bias"),
                _ => t.name.clone(),
            };
            assert!(names.contains(&name));
            out.insert(name, data);
        }
        out
    }

    #[test]
    fn keys_are_torchvisions() {
        let encoder = ResNetEncoder::new(ResNetKind::R18, 3, &Device::flex());
        let keys = torchvision_keys(&encoder);
        // torchvision's resnet18 state_dict: 122 entries, less 20 BN counters and fc's two.
        assert_eq!(keys.len(), 100);
        for (key, shape) in [
            ("conv1.weight", vec![64, 3, 7, 7]),
            ("bn1.running_mean", vec![64]),
            ("layer1.1.conv2.weight", vec![64, 64, 3, 3]),
            ("layer2.0.downsample.0.weight", vec![128, 64, 1, 1]),
            ("layer2.0.downsample.1.weight", vec![128]),
            ("layer4.1.bn2.running_var", vec![512]),
        ] {
            assert_eq!(keys.get(key), Some(&shape), "{key}");
        }
        let r50 = ResNetEncoder::new(ResNetKind::R50, 3, &Device::flex());
        let keys = torchvision_keys(&r50);
        assert_eq!(keys["layer1.0.conv3.weight"], vec![256, 64, 1, 1]);
        assert_eq!(keys["layer3.5.bn3.bias"], vec![1024]);
        assert_eq!(keys["layer4.0.downsample.0.weight"], vec![2048, 1024, 1, 1]);
    }

    #[test]
    fn safetensors_and_pth_load_every_key_with_equal_values() {
        let dir = tempfile::tempdir().unwrap();
        let device = Device::flex();
        for (file, seed) in [("r18.safetensors", 1), ("r18.pth", 2)] {
            let mut encoder = ResNetEncoder::new(ResNetKind::R18, 3, &device);
            let entries = torchvision_entries(&encoder, seed);
            let path = dir.path().join(file);
            if file.ends_with("pth") {
                // DataParallel's prefix is remapped away.
                write_torch_zip(&path, &entries, "module.");
            } else {
                write_safetensors(&path, &entries);
            }
            let loaded = load_encoder_weights(&mut encoder, "resnet18", &path).unwrap();
            assert_eq!(loaded, 100, "{file}");
            let got = values(&encoder);
            for e in entries.iter().filter(|e| !ignored(&e.name)) {
                assert_eq!(got[&e.name], e.values, "{file}: {}", e.name);
            }
        }
    }

    #[test]
    fn a_mismatching_file_lists_the_keys_and_loads_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let device = Device::flex();
        let r18 = ResNetEncoder::new(ResNetKind::R18, 3, &device);
        let mut entries = torchvision_entries(&r18, 3);
        entries.retain(|e| e.name != "layer3.1.conv1.weight");
        entries.push(Entry {
            name: "layer5.0.conv1.weight".into(),
            shape: vec![2],
            values: vec![1.0, 2.0],
            counter: false,
        });
        let path = dir.path().join("bad.safetensors");
        write_safetensors(&path, &entries);
        let mut encoder = ResNetEncoder::new(ResNetKind::R18, 3, &device);
        let before = values(&encoder);
        let err = load_encoder_weights(&mut encoder, "resnet18", &path).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("layer3.1.conv1.weight"), "{text}");
        assert!(text.contains("layer5.0.conv1.weight"), "{text}");
        assert!(text.contains("nothing was loaded"), "{text}");
        assert_eq!(values(&encoder), before);

        // ResNet-18 weights offered to a ResNet-34: 3 blocks more in layer1 alone.
        write_safetensors(&path, &torchvision_entries(&r18, 4));
        let mut r34 = ResNetEncoder::new(ResNetKind::R34, 3, &device);
        let text = load_encoder_weights(&mut r34, "resnet34", &path)
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("missing key(s)") && text.contains("layer1.2.conv1.weight"),
            "{text}"
        );
        // Same keys, other shapes: a one-channel stem.
        let mut grey = ResNetEncoder::new(ResNetKind::R18, 1, &device);
        let text = load_encoder_weights(&mut grey, "resnet18", &path)
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("conv1.weight: [64, 3, 7, 7] in the file, [64, 1, 7, 7]"),
            "{text}"
        );
        let err = load_encoder_weights(&mut grey, "resnet18", &dir.path().join("w.bin"));
        assert!(matches!(err, Err(PretrainedError::Extension(_))));
    }
}

//! Shipping a trained run: ONNX export ([`onnx`]), post-training weight quantization
//! ([`quantize`]), magnitude and channel pruning ([`crate::core::model::prune`]), and the figures that compare a run
//! with its variants ([`measure`]: parameters, FLOPs, size on disk, latency, validation mIoU).
//!
//! A quantized or pruned model is written as an ordinary run folder ([`derive`]), so eval,
//! predict, export, bench and the studio open it like any other.

pub mod derive;
pub mod measure;
pub mod onnx;
pub mod quantize;

use std::path::{Path, PathBuf};

use burn::tensor::Device;

use crate::core::model::segmenter::Segmenter;
use crate::core::train::config::RunConfig;
use crate::core::train::run_dir::{CheckpointKind, RunDir, RunDirError, load_model};

/// A run's weights as saved (batch norm not folded), with its config: the run's own network,
/// a plain UNet or a ResNet UNet, with its second head if it has one.
pub struct LoadedRun {
    pub config: RunConfig,
    pub model: Segmenter,
    /// The checkpoint folder the weights came from.
    pub checkpoint: PathBuf,
}

/// Loads the `kind` checkpoint of `run` on `device`; a run without one is an error, as in
/// `predict` and `eval` ([`RunDir::checkpoint`]).
pub fn load_run(
    run: &Path,
    kind: CheckpointKind,
    device: &Device,
) -> Result<LoadedRun, RunDirError> {
    let dir = RunDir::new(run);
    let config = dir.read_config()?;
    let checkpoint = dir.checkpoint(kind)?;
    let model = load_model(config.segmenter().init(device), &checkpoint)?;
    Ok(LoadedRun {
        config,
        model,
        checkpoint,
    })
}

/// FNV-1a (64 bit) of `bytes` as 16 hex digits: a stable fingerprint of a run's config.json
/// that needs no hashing crate.
pub fn fingerprint(bytes: &[u8]) -> String {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for &b in bytes {
        hash ^= b as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_is_fnv1a() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(fingerprint(b""), "cbf29ce484222325");
        assert_eq!(fingerprint(b"a"), "af63dc4c8601ec8c");
        assert_eq!(fingerprint(b"foobar"), "85944171f73967e8");
    }
}

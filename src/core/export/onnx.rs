//! `roadseg export`: a run as an ONNX file that onnxruntime (or any ONNX runtime) runs with
//! nothing else from roadseg.
//!
//! burn-onnx's exporter records one forward pass of the inference model (batch norm folded into
//! the convolutions, dropout inactive) on burn's capture device and lowers it to opset 18: `Conv`
//! (+ `Relu`), `MaxPool`, `Add` (a ResNet's residuals), `Resize` (bilinear x2 with half-pixel
//! centres, see [`crate::core::kernels::ops::upsample2x`]), `Concat`. We then name the boundary
//! `image` -> `logits` (and `<task>_logits` for a second head: `boundary_logits`,
//! `drivable_logits`), make the batch axis symbolic (the exporter traces batch 1 and 2), with
//! `--dynamic` also height and width, and add the metadata a user needs to prepare an image:
//!
//! | key | value |
//! | --- | --- |
//! | `mean`, `std` | per-channel normalisation, comma-separated: `(rgb / 255 - mean) / std` |
//! | `classes` | the class table as JSON (`[{"id", "name", "color"}]`) |
//! | `input_size` | training size, `HxW` |
//! | `size_multiple` | height and width must be multiples of it (2^depth; 32 for a ResNet) |
//! | `encoder` | `unet`, `resnet18`, `resnet34` or `resnet50` |
//! | `second_head`, `second_head_classes` | with a second head only: its task and class names |
//! | `roadseg_version` | the version that exported the file |
//! | `run` | FNV-1a 64 of the run's config.json |
//!
//! The file is written to a temporary name and renamed, so a failure leaves no partial file.

use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{Device, Tensor};
use burn_onnx::export::{AxisSpec, ExportError, InputSpec, OnnxExporter};
use onnx_ir::{Message, ModelProto, TensorProto};

use super::{LoadedRun, fingerprint, load_run};
use crate::core::dataset::image_io::write_atomic;
use crate::core::kernels::ops;
use crate::core::model::segmenter::Segmenter;
use crate::core::model::unet::Upsample;
use crate::core::train::config::RunConfig;
use crate::core::train::run_dir::{CheckpointKind, RunDir, RunDirError};

/// Why a run could not be exported.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    #[error(transparent)]
    RunDir(#[from] RunDirError),
    /// The forward pass uses an operation burn-onnx cannot lower.
    #[error(
        "this model cannot be exported to ONNX: burn-onnx has no lowering for {operation}{hint}"
    )]
    Unsupported { operation: String, hint: String },
    /// Any other exporter failure.
    #[error("ONNX export failed: {0}")]
    Export(String),
    /// `--dynamic` was asked for but the graph holds a shape that is fixed at export time.
    #[error(
        "--dynamic: the graph has a {0} node, whose shape is fixed at export time; export \
         without --dynamic (fixed height and width, symbolic batch)"
    )]
    NotDynamic(String),
    #[error("could not write {path}: {reason}")]
    Write { path: PathBuf, reason: String },
}

/// What `export` wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportReport {
    pub path: PathBuf,
    pub bytes: u64,
    /// The checkpoint exported.
    pub checkpoint: PathBuf,
    /// The traced input size `[height, width]` (the training size, rounded up to the multiple).
    pub traced: [usize; 2],
    pub size_multiple: usize,
    pub dynamic: bool,
    /// ONNX operator types in the graph with their counts, sorted by name.
    pub operators: Vec<(String, usize)>,
    pub metadata: Vec<(String, String)>,
}

/// Exports the `kind` checkpoint of `run` to `out`.
pub fn export_run(
    run: &Path,
    kind: CheckpointKind,
    out: &Path,
    dynamic: bool,
) -> Result<ExportReport, OnnxError> {
    let LoadedRun {
        config,
        model,
        checkpoint,
    } = load_run(run, kind, &Device::flex())?;
    let config_bytes =
        std::fs::read(RunDir::new(run).config_path()).map_err(|source| RunDirError::Io {
            path: RunDir::new(run).config_path(),
            source,
        })?;
    let metadata = metadata(&config, &fingerprint(&config_bytes));
    let (bytes, traced) = export_model(&model, &config, dynamic, &metadata)?;
    write_atomic(out, &bytes).map_err(|e| OnnxError::Write {
        path: out.to_path_buf(),
        reason: e.to_string(),
    })?;
    let proto =
        ModelProto::parse_from_bytes(&bytes).map_err(|e| OnnxError::Export(e.to_string()))?;
    Ok(ExportReport {
        path: out.to_path_buf(),
        bytes: bytes.len() as u64,
        checkpoint,
        traced,
        size_multiple: config.segmenter().multiple(),
        dynamic,
        operators: operators(&proto),
        metadata,
    })
}

/// The `metadata_props` for a run (see the module docs); `run` is the config fingerprint.
pub fn metadata(config: &RunConfig, run: &str) -> Vec<(String, String)> {
    let join = |v: &[f32; 3]| v.map(|x| x.to_string()).join(",");
    let normalize = &config.train.normalize;
    let [w, h] = config.train.size;
    let mut props: Vec<(String, String)> = vec![
        ("mean".into(), join(&normalize.mean)),
        ("std".into(), join(&normalize.std)),
        (
            "classes".into(),
            serde_json::to_string(&config.classes).unwrap_or_default(),
        ),
        ("input_size".into(), format!("{h}x{w}")),
        (
            "size_multiple".into(),
            config.segmenter().multiple().to_string(),
        ),
        ("encoder".into(), config.train.encoder.to_string()),
        (
            "roadseg_version".into(),
            env!("CARGO_PKG_VERSION").to_string(),
        ),
        ("run".into(), run.to_string()),
    ];
    if let Some(task) = config.train.aux {
        props.push(("second_head".into(), task.to_string()));
        props.push((
            "second_head_classes".into(),
            serde_json::to_string(task.class_names()).unwrap_or_default(),
        ));
    }
    props
}

/// The ONNX bytes of `model` (as saved: batch norm is folded here), traced at the training
/// size rounded up to the model's size multiple, which is returned as `[height, width]`.
pub fn export_model(
    model: &Segmenter,
    config: &RunConfig,
    dynamic: bool,
    metadata: &[(String, String)],
) -> Result<(Vec<u8>, [usize; 2]), OnnxError> {
    let model = model.clone().valid().map(&mut Dequantize).fold_batch_norm();
    let multiple = model.multiple();
    let [w, h] = config
        .train
        .size
        .map(|v| (v as usize).div_ceil(multiple).max(1) * multiple);
    let device = Device::flex();
    let sample = Tensor::<4>::zeros([1, config.model.in_channels, h, w], &device);
    let validation = Tensor::<4>::zeros([2, config.model.in_channels, h, w], &device);
    let spec = InputSpec::new([
        AxisSpec::dynamic("batch"),
        AxisSpec::Static,
        AxisSpec::Static,
        AxisSpec::Static,
    ]);
    // The traced size is a multiple: the forward pass pads and crops nothing.
    let exported = OnnxExporter::new()
        .export_dynamic(&model, sample, validation, &[spec], |m: &Segmenter, x| {
            let out = m.forward(x);
            std::iter::once(out.logits)
                .chain(out.aux)
                .collect::<Vec<_>>()
        })
        .map_err(|e| lowering_error(e, config))?;
    let bytes = finish(
        exported.as_bytes(),
        dynamic,
        &output_names(config),
        metadata,
    )?;
    Ok((bytes, [h, w]))
}

/// The graph's outputs: `logits`, then the second head's `<task>_logits`.
pub fn output_names(config: &RunConfig) -> Vec<String> {
    std::iter::once("logits".to_string())
        .chain(config.train.aux.map(|task| format!("{task}_logits")))
        .collect()
}

/// A friendly error for an exporter failure: the operation's name instead of its whole IR.
fn lowering_error(error: ExportError, config: &RunConfig) -> OnnxError {
    match error {
        ExportError::UnsupportedOperation { kind, .. } => {
            // `kind` is the operation's Debug form (`Module(ConvTranspose2d(ConvTranspose2dOpIr
            // { x: ... }))`): its outer names say what it is.
            let operation = kind
                .split(['{', ' '])
                .next()
                .unwrap_or(&kind)
                .trim_end_matches('(')
                .replace('(', " ")
                .trim()
                .to_string();
            let hint = match config.model.upsample {
                Upsample::Transposed => {
                    " (the model's transposed-convolution up-sampling; train with the bilinear \
                     up-sampling, the default, to export)"
                        .to_string()
                }
                Upsample::Bilinear => String::new(),
            };
            OnnxError::Unsupported { operation, hint }
        }
        other => OnnxError::Export(other.to_string()),
    }
}

/// Operators whose output shape follows their input's at run time: a graph of only these can
/// take any height and width.
const SHAPE_FOLLOWING: &[&str] = &[
    "Conv", "Relu", "MaxPool", "Concat", "Resize", "Identity", "Add", "Mul",
];

/// Renames the boundary, makes height and width symbolic when `dynamic`, adds the metadata.
fn finish(
    bytes: &[u8],
    dynamic: bool,
    outputs: &[String],
    metadata: &[(String, String)],
) -> Result<Vec<u8>, OnnxError> {
    let bad = |e: String| OnnxError::Export(format!("reading the exported graph: {e}"));
    let mut model = ModelProto::parse_from_bytes(bytes).map_err(|e| bad(e.to_string()))?;
    let graph = model.graph.mut_or_insert_default();
    let Some(input) = graph.input.first() else {
        return Err(bad("no input".into()));
    };
    if graph.output.len() != outputs.len() {
        return Err(bad(format!(
            "{} outputs where {} were traced",
            graph.output.len(),
            outputs.len()
        )));
    }
    let mut renames = vec![(input.name.clone(), "image".to_string())];
    for (output, name) in graph.output.iter_mut().zip(outputs) {
        renames.push((
            std::mem::replace(&mut output.name, name.clone()),
            name.clone(),
        ));
    }
    graph.input[0].name = "image".into();
    for node in &mut graph.node {
        for name in node.input.iter_mut().chain(node.output.iter_mut()) {
            if let Some((_, new)) = renames.iter().find(|(old, _)| old == name) {
                *name = new.clone();
            }
        }
    }
    // Intermediate shapes, if any were written, are those of the trace.
    graph.value_info.clear();

    if dynamic {
        if let Some(node) = graph
            .node
            .iter()
            .find(|n| !SHAPE_FOLLOWING.contains(&n.op_type.as_str()))
        {
            return Err(OnnxError::NotDynamic(node.op_type.clone()));
        }
        for value in std::iter::once(&mut graph.input[0]).chain(graph.output.iter_mut()) {
            let shape = value
                .type_
                .mut_or_insert_default()
                .mut_tensor_type()
                .shape
                .mut_or_insert_default();
            if shape.dim.len() != 4 {
                return Err(bad(format!("{} is not 4-D", value.name)));
            }
            shape.dim[2].set_dim_param("height".into());
            shape.dim[3].set_dim_param("width".into());
        }
        // Every Resize is the decoder's x2: give it scales instead of the traced sizes. With
        // half-pixel centres the two are the same computation (scale = output / input = 2).
        let mut sizes = Vec::new();
        for node in graph.node.iter_mut().filter(|n| n.op_type == "Resize") {
            if node.input.len() != 4 {
                return Err(bad(format!("Resize {} without sizes", node.name)));
            }
            sizes.push(node.input.pop().expect("4 inputs"));
            node.input[2] = "upsample_x2_scales".into();
        }
        if !sizes.is_empty() {
            graph.initializer.retain(|t| !sizes.contains(&t.name));
            let mut scales = TensorProto::new();
            scales.name = "upsample_x2_scales".into();
            scales.data_type = 1; // FLOAT
            scales.dims = vec![2];
            scales.float_data = vec![2.0, 2.0];
            graph.initializer.push(scales);
        }
    }

    model.producer_name = "roadseg".into();
    model.producer_version = env!("CARGO_PKG_VERSION").into();
    model.doc_string = "Road segmentation UNet (its encoder in `encoder`). Input `image`: \
        float32 [batch, 3, height, width], RGB / 255 normalised with the `mean` and `std` \
        metadata; height and width multiples of `size_multiple`. Output `logits`: float32 \
        [batch, classes, height, width]; the class of a pixel is the arg-max over axis 1, its \
        name and colour in `classes`. With a second head (`second_head`), a second output \
        `<task>_logits` of the same layout, its classes in `second_head_classes`."
        .into();
    for (key, value) in metadata {
        model.metadata_props.push(Default::default());
        let entry = model.metadata_props.last_mut().expect("just pushed");
        entry.key = key.clone();
        entry.value = value.clone();
    }
    model.write_to_bytes().map_err(|e| bad(e.to_string()))
}

/// Operator types and counts, sorted by name.
pub fn operators(model: &ModelProto) -> Vec<(String, usize)> {
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for node in &model.graph.node {
        *counts.entry(node.op_type.clone()).or_default() += 1;
    }
    counts.into_iter().collect()
}

/// Turns quantized (`QFloat`) parameters back into floats: the exporter writes float weights
/// (a quantized run exports at float size).
struct Dequantize;

impl ModuleMapper for Dequantize {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        param.map(ops::dequantized)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::unet::UNetConfig;
    use crate::core::train::config::TrainConfig;

    fn config(model: UNetConfig) -> RunConfig {
        RunConfig {
            data: "/nowhere".into(),
            format: "native".into(),
            classes: Vec::new(),
            model: model.clone(),
            train: TrainConfig {
                model,
                size: [24, 16],
                ..TrainConfig::default()
            },
            device: "cpu".into(),
            roadseg_version: "test".into(),
            labels_snapshot: false,
        }
    }

    #[test]
    fn the_graph_is_named_and_carries_the_metadata() {
        let cfg = UNetConfig::new(3).with_depth(2).with_base_width(2);
        let model = Segmenter::from(cfg.init(&Device::flex()));
        let config = config(cfg);
        let meta = metadata(&config, "abc");
        let (bytes, traced) = export_model(&model, &config, false, &meta).unwrap();
        assert_eq!(traced, [16, 24]);
        let proto = ModelProto::parse_from_bytes(&bytes).unwrap();
        let graph = &proto.graph;
        assert_eq!(graph.input[0].name, "image");
        assert_eq!(graph.output[0].name, "logits");
        let ops: Vec<String> = operators(&proto).into_iter().map(|(o, _)| o).collect();
        for op in ["Conv", "Relu", "MaxPool", "Resize", "Concat"] {
            assert!(ops.iter().any(|o| o == op), "{op} missing from {ops:?}");
        }
        assert!(!ops.iter().any(|o| o == "BatchNormalization"), "{ops:?}");
        let props: Vec<(String, String)> = proto
            .metadata_props
            .iter()
            .map(|p| (p.key.clone(), p.value.clone()))
            .collect();
        assert_eq!(props, meta);
        assert!(props.contains(&("input_size".into(), "16x24".into())));
        // The batch axis is symbolic, height and width are not.
        let dims = &graph.input[0].type_.tensor_type().shape.dim;
        assert!(dims[0].has_dim_param());
        assert_eq!(dims[2].dim_value(), 16);
    }

    #[test]
    fn dynamic_export_has_symbolic_height_and_width_and_resize_scales() {
        let cfg = UNetConfig::new(2).with_depth(1).with_base_width(2);
        let model = Segmenter::from(cfg.init(&Device::flex()));
        let config = config(cfg);
        let (bytes, _) = export_model(&model, &config, true, &[]).unwrap();
        let proto = ModelProto::parse_from_bytes(&bytes).unwrap();
        for value in [&proto.graph.input[0], &proto.graph.output[0]] {
            let dims = &value.type_.tensor_type().shape.dim;
            assert_eq!(dims[2].dim_param(), "height");
            assert_eq!(dims[3].dim_param(), "width");
        }
        let resize = proto
            .graph
            .node
            .iter()
            .find(|n| n.op_type == "Resize")
            .unwrap();
        assert_eq!(resize.input[2], "upsample_x2_scales");
        assert_eq!(resize.input.len(), 3);
    }

    #[test]
    fn transposed_upsampling_is_a_clear_unsupported_error() {
        let cfg = UNetConfig::new(2)
            .with_depth(1)
            .with_base_width(2)
            .with_upsample(Upsample::Transposed);
        let model = Segmenter::from(cfg.init(&Device::flex()));
        let err = export_model(&model, &config(cfg), false, &[]).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, OnnxError::Unsupported { .. }), "{text}");
        assert!(
            text.contains("ConvTranspose2d") && text.contains("bilinear"),
            "{text}"
        );
        assert!(
            text.len() < 400,
            "the message names the op, not its IR: {text}"
        );
    }
}

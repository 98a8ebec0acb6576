//! Fuzzing the readers of other tools' labels (see `tests/fuzz/mod.rs` for the properties):
//! COCO jsons with hostile RLE strings, run lists, polygons, sizes and category ids; labelme
//! jsons with hostile shapes and embedded masks; VOC / CVAT labelmaps; Vistas configs. Each is
//! opened and every label decoded (`info::inspect`): no panic, errors that name a file, and
//! memory bounded by the image limits.

use crate::fuzz;

use std::path::Path;

use base64::Engine;
use fuzz::{Damage, apply, damage, peak_of, text};
use proptest::prelude::*;
use roadseg::core::dataset::image_io::MAX_READ_BYTES;
use roadseg::core::dataset::{DatasetIndex, Format, info};
use serde_json::{Value, json};

/// Cases per target in CI: each case writes a small folder and decodes a few masks.
const CASES: u32 = 400;

fn coordinate() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => (-2.0..40.0f64).prop_map(Value::from),
        1 => any::<f64>().prop_map(|v| serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)),
        1 => Just(json!("7")),
        1 => Just(json!(1e308)),
    ]
}

fn side() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => (1..40u32).prop_map(Value::from),
        1 => Just(json!(0)),
        1 => Just(json!(100_000)),
        1 => Just(json!(-3)),
        1 => any::<u32>().prop_map(Value::from),
    ]
}

fn rle_string() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::collection::vec(48u8..112, 0..24).prop_map(|b| String::from_utf8(b).unwrap()),
        1 => text(24),
    ]
}

fn segmentation() -> impl Strategy<Value = Value> {
    prop_oneof![
        2 => (side(), side(), rle_string()).prop_map(|(h, w, s)| json!({"size": [h, w], "counts": s})),
        2 => (side(), side(), proptest::collection::vec(prop_oneof![0..30u64, any::<u64>()], 0..12))
            .prop_map(|(h, w, runs)| json!({"size": [h, w], "counts": runs})),
        2 => proptest::collection::vec(proptest::collection::vec(coordinate(), 0..12), 0..3).prop_map(Value::from),
        1 => Just(json!("polygon")),
    ]
}

fn coco_json() -> impl Strategy<Value = (Vec<u8>, Damage)> {
    let image = (0..4u64, side(), side()).prop_map(
        |(id, w, h)| json!({"id": id, "file_name": format!("{id}.png"), "width": w, "height": h}),
    );
    let annotation = (0..5u64, prop_oneof![1..4u64, any::<u64>()], segmentation()).prop_map(
        |(image_id, category_id, segmentation)| {
            json!({"image_id": image_id, "category_id": category_id, "segmentation": segmentation})
        },
    );
    (
        proptest::collection::vec(image, 0..4),
        proptest::collection::vec(annotation, 0..8),
        damage(),
    )
        .prop_map(|(images, annotations, damage)| {
            let categories = json!([{"id": 1, "name": "road"}, {"id": 2, "name": "car"}, {"id": 3, "name": "sky"}]);
            let file = json!({"images": images, "annotations": annotations, "categories": categories});
            (serde_json::to_vec(&file).unwrap(), damage)
        })
}

fn shape() -> impl Strategy<Value = Value> {
    let kind = prop::sample::select(vec![
        "polygon",
        "rectangle",
        "circle",
        "mask",
        "linestrip",
        "point",
        "spline",
    ]);
    let label = prop::sample::select(vec!["road", "car", "__ignore__", "", "unknown"]);
    let mask = prop_oneof![
        Just(Value::Null),
        text(16).prop_map(Value::from),
        (1..6u32, 1..6u32, any::<u8>()).prop_map(|(w, h, seed)| {
            Value::from(
                base64::engine::general_purpose::STANDARD.encode(fuzz::valid_png(0, w, h, seed)),
            )
        }),
    ];
    (kind, label, proptest::collection::vec([coordinate(), coordinate()], 0..8), mask).prop_map(
        |(kind, label, points, mask)| {
            json!({"label": label, "points": points, "shape_type": kind, "mask": mask, "flags": {}})
        },
    )
}

fn labelme_json() -> impl Strategy<Value = (Vec<u8>, Damage)> {
    (proptest::collection::vec(shape(), 0..6), side(), side(), damage()).prop_map(|(shapes, w, h, damage)| {
        let file = json!({"shapes": shapes, "imagePath": "a.png", "imageData": null, "imageWidth": w, "imageHeight": h});
        (serde_json::to_vec(&file).unwrap(), damage)
    })
}

/// Opens `root` as `format` and decodes everything: no panic, bounded memory, errors naming a
/// file under `root` (or `root` itself).
fn check_open(root: &Path, format: Format, file: &Path) {
    let (result, peak) = peak_of(|| {
        DatasetIndex::open(root, Some(format)).map(|index| {
            let report = info::inspect(&index);
            (index, report)
        })
    });
    assert!(
        peak <= MAX_READ_BYTES,
        "{format}: reading held {peak} bytes"
    );
    match result {
        Ok((_, report)) => {
            for problem in &report.problems {
                // COCO's label keys (`<json>#<image id>`) lie under the folder too.
                assert!(problem.file.starts_with(root), "{problem}");
            }
        }
        Err(e) => {
            let e = e.to_string();
            let named = e.contains(&*file.file_name().unwrap().to_string_lossy())
                || e.contains(&*root.to_string_lossy());
            assert!(
                named,
                "the error names neither {} nor the folder: {e}",
                file.display()
            );
        }
    }
}

proptest! {
    #![proptest_config(fuzz::config(CASES))]

    #[test]
    fn coco_annotations((json, damage) in coco_json()) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for id in 0..4 {
            let image = root.join(format!("images/{id}.png"));
            std::fs::create_dir_all(image.parent().unwrap()).unwrap();
            std::fs::write(&image, fuzz::valid_png(2, 6, 5, id)).unwrap();
        }
        let file = root.join("annotations/instances_train.json");
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, apply(json, &damage)).unwrap();
        check_open(root, Format::Coco, &file);
    }

    #[test]
    fn labelme_shapes((json, damage) in labelme_json()) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("a.png"), fuzz::valid_png(2, 6, 5, 1)).unwrap();
        let file = root.join("a.json");
        std::fs::write(&file, apply(json, &damage)).unwrap();
        check_open(root, Format::Labelme, &file);
    }

    #[test]
    fn voc_labelmaps(lines in proptest::collection::vec(text(30), 0..6), rgb in any::<bool>()) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let file = root.join("labelmap.txt");
        std::fs::write(&file, lines.join("\n")).unwrap();
        for (path, kind) in [("JPEGImages/a.png", 2), ("SegmentationClass/a.png", if rgb { 2 } else { 6 })] {
            let path = root.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, fuzz::valid_png(kind, 6, 5, 2)).unwrap();
        }
        check_open(root, Format::Voc, &file);
    }

    #[test]
    fn vistas_configs(json in text(200), labels in proptest::collection::vec((text(12), any::<[u8; 3]>()), 0..300)) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let file = root.join("config_v1.2.json");
        let config = match json.len() % 2 {
            0 => json.into_bytes(),
            _ => serde_json::to_vec(&json!({"labels": labels.iter().map(|(n, c)| json!({"name": n, "color": c})).collect::<Vec<_>>()})).unwrap(),
        };
        std::fs::write(&file, config).unwrap();
        for path in ["training/images/a.jpg", "training/labels/a.png"] {
            let path = root.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, fuzz::valid_png(7, 6, 5, 3)).unwrap();
        }
        check_open(root, Format::Vistas, &file);
    }
}

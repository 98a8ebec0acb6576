//! Fuzzing every dataset reader (see `tests/fuzz/mod.rs` for the properties and the knobs):
//! images and masks, `classes.json`, `splits.json`, CamVid's `class_dict.csv` and
//! `label_colors.txt`, the file names of every layout, and the native mask document under
//! arbitrary edits.

use crate::fuzz;

use std::path::{Path, PathBuf};

use fuzz::{Damage, apply, assert_names, damage, peak_of, text};
use proptest::prelude::*;
use roadseg::core::dataset::image_io::{
    MAX_PIXELS, MAX_READ_BYTES, MAX_SIDE, dimensions, read_index, read_rgb,
};
use roadseg::core::dataset::split::SplitsFile;
use roadseg::core::dataset::{ClassTable, DatasetIndex, Format, LabelEncoding, drivable, info};
use roadseg::core::paint::MaskDocument;

/// Cases per target in CI; every target here takes well under a millisecond per case.
const CASES: u32 = 2_000;

/// What a generated image file is, for the properties that depend on it.
#[derive(Debug, Clone)]
struct ImageFile {
    bytes: Vec<u8>,
    /// The size its header declares when the generator chose it (hostile headers).
    declared: Option<(u64, u64)>,
    extension: &'static str,
}

fn over_limits((w, h): (u64, u64)) -> bool {
    w > MAX_SIDE as u64 || h > MAX_SIDE as u64 || w * h > MAX_PIXELS
}

/// Sides that are small, at the limits, or absurd.
fn side() -> impl Strategy<Value = u32> {
    prop_oneof![
        3 => 1..64u32,
        1 => Just(0u32),
        1 => (MAX_SIDE - 2)..(MAX_SIDE + 2),
        1 => 5_000..40_000u32,
        1 => any::<u32>(),
    ]
}

fn image_file() -> impl Strategy<Value = ImageFile> {
    let valid_png = (
        0..fuzz::PNG_KINDS.len(),
        1..48u32,
        1..48u32,
        any::<u8>(),
        damage(),
    )
        .prop_map(|(kind, w, h, seed, damage)| ImageFile {
            bytes: apply(fuzz::valid_png(kind, w, h, seed), &damage),
            declared: None,
            extension: "png",
        });
    let valid_jpeg =
        (1..40u32, 1..40u32, any::<u8>(), damage()).prop_map(|(w, h, seed, d)| ImageFile {
            bytes: apply(fuzz::valid_jpeg(w, h, seed), &d),
            declared: None,
            extension: "jpg",
        });
    let hostile_png = (
        side(),
        side(),
        prop_oneof![Just(1u8), Just(8), Just(16), any::<u8>()],
        prop_oneof![Just(0u8), Just(2), Just(3), Just(4), Just(6), any::<u8>()],
        proptest::collection::vec(any::<u8>(), 0..256),
    )
        .prop_map(|(w, h, depth, color, data)| ImageFile {
            bytes: fuzz::png_with_header(w, h, depth, color, &data),
            declared: Some((w as u64, h as u64)),
            extension: "png",
        });
    let hostile_jpeg =
        (any::<u16>(), any::<u16>(), any::<u8>(), damage()).prop_map(|(w, h, seed, d)| {
            let bytes = fuzz::patch_jpeg_size(fuzz::valid_jpeg(8, 8, seed), w, h);
            // Damage may move the size too: only undamaged files keep their declared size.
            let declared = matches!(d, Damage::None).then_some((w as u64, h as u64));
            ImageFile {
                bytes: apply(bytes, &d),
                declared,
                extension: "jpg",
            }
        });
    let junk = (
        prop_oneof![
            Just(b"\x89PNG\r\n\x1a\n".to_vec()),
            Just(vec![0xFF, 0xD8, 0xFF]),
            Just(Vec::new())
        ],
        proptest::collection::vec(any::<u8>(), 0..512),
    )
        .prop_map(|(magic, rest)| ImageFile {
            bytes: [magic, rest].concat(),
            declared: None,
            extension: "png",
        });
    prop_oneof![
        3 => valid_png,
        2 => valid_jpeg,
        3 => hostile_png,
        2 => hostile_jpeg,
        1 => junk,
    ]
}

/// Runs one reader on `file`: no panic (proptest catches it), the peak allocation within the
/// stated bound (and near zero when the header declares a size over the limits), and an error
/// that names the file.
fn check_read<T>(
    file: &Path,
    declared: Option<(u64, u64)>,
    read: impl FnOnce() -> Result<T, String>,
) -> Option<T> {
    let (result, peak) = peak_of(read);
    assert!(
        peak <= MAX_READ_BYTES,
        "{}: reading held {peak} bytes, over the stated bound {MAX_READ_BYTES}",
        file.display()
    );
    if let Some(size) = declared.filter(|&s| over_limits(s)) {
        assert!(
            result.is_err(),
            "{}: a {size:?} header was accepted",
            file.display()
        );
        assert!(
            peak < 1 << 20,
            "{}: a {size:?} header made the reader allocate {peak} bytes before refusing",
            file.display()
        );
    }
    match result {
        Ok(value) => Some(value),
        Err(e) => {
            assert_names(&e, file);
            None
        }
    }
}

/// The sample's classes.json, serialised once (written without the fsync of an atomic save:
/// these files are fixtures, not what is tested).
fn classes_json() -> &'static [u8] {
    static JSON: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    JSON.get_or_init(|| serde_json::to_vec(&roadseg::core::dataset::sample::classes()).unwrap())
}

fn classes(n: usize) -> ClassTable {
    ClassTable::from_pairs((0..n).map(|i| {
        // Leaked once per call: a handful of short names for the life of the test.
        let name: &'static str = Box::leak(format!("class{i}").into_boxed_str());
        (name, [i as u8 * 40, 0, 0])
    }))
}

proptest! {
    #![proptest_config(fuzz::config(CASES))]

    #[test]
    fn images_and_masks(file in image_file()) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("input.{}", file.extension));
        std::fs::write(&path, &file.bytes).unwrap();
        let d = file.declared;
        let str_err = |p: roadseg::core::dataset::Problem| p.to_string();
        if let Some(rgb) = check_read(&path, d, || read_rgb(&path).map_err(str_err)) {
            let (w, h) = rgb.dimensions();
            prop_assert!(!over_limits((w as u64, h as u64)));
            prop_assert_eq!(check_read(&path, d, || dimensions(&path).map_err(str_err)), Some((w, h)));
        }
        check_read(&path, d, || read_index(&path).map_err(str_err));
        let table = classes(3);
        for encoding in [
            LabelEncoding::native(&table),
            LabelEncoding::colors(&table, &[[0, 0, 0]]),
        ] {
            if let Some(mask) = check_read(&path, d, || encoding.decode(&path).map_err(str_err)) {
                prop_assert_eq!(mask.data.len(), mask.width as usize * mask.height as usize);
            }
        }
        if let Some(doc) = check_read(&path, d, || MaskDocument::open(&path, 7, 5).map_err(str_err)) {
            prop_assert_eq!((doc.mask().width, doc.mask().height), (7, 5));
        }
        // A BDD100K (or native) drivable-area map: its values and its image's size are checked.
        if let Some(map) = check_read(&path, d, || drivable::load(&path, (7, 5)).map_err(str_err)) {
            prop_assert_eq!((map.width, map.height), (7, 5));
            prop_assert!(map.data.iter().all(|&v| v <= 2 || v == 255));
        }
    }

    #[test]
    fn class_tables(json in class_table_json()) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("classes.json");
        std::fs::write(&file, &json).unwrap();
        match ClassTable::read_json(&file) {
            Ok(table) => {
                table.validate(&file).unwrap();
                prop_assert!(table.len() < 255);
                LabelEncoding::native(&table);
            }
            Err(e) => assert_names(&e.to_string(), &file),
        }
    }

    #[test]
    fn camvid_class_dicts(rows in table_rows(), kaggle in any::<bool>()) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let (file, text) = if kaggle {
            let mut csv = String::from("name,r,g,b\n");
            for row in &rows {
                csv.push_str(&row.join(","));
                csv.push('\n');
            }
            (root.join("class_dict.csv"), csv)
        } else {
            let lines: Vec<String> = rows
                .iter()
                .map(|r| format!("{} {} {}\t{}", r[1], r[2], r[3], r[0]))
                .collect();
            (root.join("label_colors.txt"), lines.join("\n"))
        };
        std::fs::write(&file, text).unwrap();
        let image = if kaggle { root.join("train/a.png") } else { root.join("a.png") };
        let label = if kaggle { root.join("train_labels/a_L.png") } else { root.join("a_L.png") };
        for path in [&image, &label] {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, fuzz::valid_png(2, 4, 4, 1)).unwrap();
        }
        match DatasetIndex::open(root, Some(Format::Camvid)) {
            Ok(index) => {
                index.classes.validate(&file).unwrap();
                let report = info::inspect(&index);
                prop_assert_eq!(report.images, 1);
            }
            Err(e) => assert_names(&e.to_string(), &file),
        }
    }

    #[test]
    fn splits_files(json in splits_json()) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("classes.json"), classes_json()).unwrap();
        for name in ["a", "b", "c"] {
            let image = root.join(format!("images/{name}.png"));
            std::fs::create_dir_all(image.parent().unwrap()).unwrap();
            std::fs::write(&image, fuzz::valid_png(2, 4, 4, 3)).unwrap();
        }
        let file = root.join("splits.json");
        std::fs::write(&file, &json).unwrap();
        match DatasetIndex::open(root, None) {
            Ok(index) => {
                let listed = SplitsFile::read(&file).unwrap();
                // An image listed in two splits is left out (a problem), the others kept.
                let conflicts = listed.conflicts();
                let left_out = ["a", "b", "c"].iter().filter(|n| conflicts.contains_key(*n)).count();
                prop_assert_eq!(index.samples.len(), 3 - left_out);
                let lookup = listed.lookup();
                for sample in &index.samples {
                    if let Some(&split) = lookup.get(sample.name.as_str()) {
                        prop_assert_eq!(sample.split, split);
                    }
                }
            }
            Err(e) => assert_names(&e.to_string(), &file),
        }
    }

    #[test]
    fn layout_file_names(layout in 0..5usize, names in proptest::collection::vec(file_name(), 1..12)) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let files = lay_out(root, layout, &names);
        let png = fuzz::valid_png(2, 4, 3, 7);
        let mask = fuzz::valid_png(0, 4, 3, 0);
        for (path, is_label) in &files {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, if *is_label { &mask } else { &png }).unwrap();
        }
        let format = [Format::Native, Format::Camvid, Format::Camvid11, Format::KittiRoad, Format::Cityscapes][layout];
        if let Ok(index) = DatasetIndex::open(root, Some(format)) {
            let mut seen = std::collections::HashSet::new();
            for sample in &index.samples {
                prop_assert!(sample.image.is_file(), "{}", sample.image.display());
                prop_assert!(seen.insert(sample.name.clone()), "name {:?} used twice", sample.name);
            }
            for problem in &index.problems {
                prop_assert!(problem.file.starts_with(root), "{}", problem);
            }
            let report = info::inspect(&index);
            prop_assert_eq!(report.images, index.samples.len());
        }
    }

    #[test]
    fn mask_documents(file in image_file(), ops in proptest::collection::vec(edit(), 0..24)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("masks/m.png");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &file.bytes).unwrap();
        let (w, h) = (19, 13);
        let mut doc = match MaskDocument::open(&path, w, h) {
            Ok(doc) => doc,
            Err(e) => {
                assert_names(&e.to_string(), &path);
                // A missing mask is an empty one: the document the studio would paint on.
                std::fs::remove_file(&path).unwrap();
                MaskDocument::open(&path, w, h).unwrap()
            }
        };
        for op in ops {
            match op {
                Edit::Stroke(a, b, r, v) => { doc.stroke(a, b, r, v); }
                Edit::Fill(x, y, v) => { doc.flood_fill(x, y, v); }
                Edit::Polygon(points, v) => { doc.polygon_fill(&points, v); }
                Edit::Begin => doc.begin_edit(),
                Edit::End => doc.end_edit(),
                Edit::Undo => { doc.undo(); }
                Edit::Redo => { doc.redo(); }
            }
            prop_assert_eq!((doc.mask().width, doc.mask().height), (w, h));
            prop_assert_eq!(doc.mask().data.len(), (w * h) as usize);
        }
        doc.end_edit();
        doc.save().unwrap();
        if path.exists() {
            let again = MaskDocument::open(&path, w, h).unwrap();
            prop_assert_eq!(again.mask(), doc.mask());
        }
    }
}

fn class_table_json() -> impl Strategy<Value = Vec<u8>> {
    let number = prop_oneof![
        4 => (0..300i64).prop_map(|n| n.to_string()),
        1 => any::<i64>().prop_map(|n| n.to_string()),
        1 => any::<f64>().prop_map(|f| format!("{f:?}")),
        1 => Just("null".to_string()),
        1 => text(6).prop_map(|t| format!("{t:?}")),
    ];
    let color = prop_oneof![
        4 => proptest::collection::vec(0..256i64, 3).prop_map(|c| format!("{c:?}")),
        1 => proptest::collection::vec(any::<i32>(), 0..5).prop_map(|c| format!("{c:?}")),
        1 => text(8).prop_map(|t| format!("{t:?}")),
    ];
    let name = prop_oneof![
        4 => (0..40u32).prop_map(|i| format!("\"c{i}\"")),
        1 => text(12).prop_map(|t| format!("{t:?}")),
        1 => Just("\"\"".to_string()),
        1 => Just("7".to_string()),
    ];
    let entry = (number, name, color, any::<u8>()).prop_map(|(id, name, color, drop)| {
        let mut fields = vec![
            format!("\"id\":{id}"),
            format!("\"name\":{name}"),
            format!("\"color\":{color}"),
        ];
        if drop % 7 == 0 {
            fields.remove(drop as usize % 3);
        }
        if drop % 11 == 0 {
            fields.push("\"extra\":true".into());
        }
        format!("{{{}}}", fields.join(","))
    });
    let sequential = (1..300usize).prop_map(|n| {
        let rows: Vec<String> = (0..n)
            .map(|i| format!("{{\"id\":{i},\"name\":\"c{i}\",\"color\":[1,2,3]}}"))
            .collect();
        format!("[{}]", rows.join(","))
    });
    prop_oneof![
        3 => proptest::collection::vec(entry, 0..40).prop_map(|e| format!("[{}]", e.join(","))),
        1 => sequential,
        1 => text(80),
    ]
    .prop_flat_map(|json| (Just(json), damage()))
    .prop_map(|(json, d)| match d {
        // Cuts and flipped bytes matter; appended garbage is as good as cut.
        Damage::Append(_) => json.into_bytes(),
        d => apply(json.into_bytes(), &d),
    })
}

/// Rows of a CamVid colour table: name, r, g, b (fields may be anything).
fn table_rows() -> impl Strategy<Value = Vec<[String; 4]>> {
    let channel = prop_oneof![
        5 => (0..256u32).prop_map(|v| v.to_string()),
        1 => any::<i32>().prop_map(|v| v.to_string()),
        1 => text(4),
    ];
    let name = prop_oneof![
        4 => (0..30u32).prop_map(|i| format!("class{i}")),
        1 => Just("Void".to_string()),
        1 => Just(String::new()),
        1 => text(10),
    ];
    let row =
        (name, channel.clone(), channel.clone(), channel).prop_map(|(n, r, g, b)| [n, r, g, b]);
    let many = (250..300usize).prop_map(|n| {
        (0..n)
            .map(|i| {
                [
                    format!("c{i}"),
                    (i % 256).to_string(),
                    (i / 256).to_string(),
                    "0".into(),
                ]
            })
            .collect()
    });
    prop_oneof![
        4 => proptest::collection::vec(row, 0..40),
        1 => many,
    ]
}

fn splits_json() -> impl Strategy<Value = Vec<u8>> {
    let names = proptest::collection::vec(
        prop_oneof![
            3 => prop::sample::select(vec!["a", "b", "c", "d"]).prop_map(|s| format!("{s:?}")),
            1 => text(8).prop_map(|t| format!("{t:?}")),
            1 => any::<i64>().prop_map(|n| n.to_string()),
        ],
        0..6,
    )
    .prop_map(|n| format!("[{}]", n.join(",")));
    let key = prop::sample::select(vec!["train", "val", "test", "Train", "other"]);
    let object = proptest::collection::vec((key, names), 0..5).prop_map(|fields| {
        let body: Vec<String> = fields.iter().map(|(k, v)| format!("{k:?}:{v}")).collect();
        format!("{{{}}}", body.join(","))
    });
    prop_oneof![4 => object, 1 => text(40)]
        .prop_flat_map(|json| (Just(json), damage()))
        .prop_map(|(json, d)| apply(json.into_bytes(), &d))
}

/// A file name that the file system accepts, shaped like the layouts' names or not.
fn file_name() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        3 => prop::sample::select(vec![
            "um", "umm", "uu", "road", "_road_", "_lane_", "aachen", "000012", "_L", "_leftImg8bit",
            "_gtFine_labelIds", ".png", ".PNG", ".jpg", ".jpeg", "0001TP_", "annot", ".", "..", " ",
        ]).prop_map(String::from),
        1 => text(6),
    ];
    // Names from a small pool collide across folders, splits and extensions.
    let pooled = prop::sample::select(vec![
        "x.png",
        "x.jpg",
        "x.PNG",
        "x_L.png",
        "x_leftImg8bit.png",
        "x_gtFine_labelIds.png",
        "um_000001.png",
        "um_000001.jpg",
        "um_road_000001.png",
    ])
    .prop_map(String::from);
    let built =
        proptest::collection::vec(piece, 1..6).prop_map(|p| p.concat().replace(['/', '\0'], "_"));
    prop_oneof![2 => built, 1 => pooled].prop_filter("a usable file name", |n| {
        !n.is_empty() && n != "." && n != ".." && n.len() < 200
    })
}

/// Puts `names` where `layout` looks for images and labels; returns (path, is a label).
fn lay_out(root: &Path, layout: usize, names: &[String]) -> Vec<(PathBuf, bool)> {
    let mut files = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let both = |image: PathBuf, label: PathBuf| [(image, false), (label, true)];
        let pair = match layout {
            0 => {
                if i == 0 {
                    std::fs::write(root.join("classes.json"), classes_json()).unwrap();
                }
                both(
                    root.join("images").join(name),
                    root.join("masks").join(name),
                )
            }
            1 => {
                if i == 0 {
                    std::fs::write(
                        root.join("class_dict.csv"),
                        "name,r,g,b\nroad,1,2,3\nVoid,0,0,0\n",
                    )
                    .unwrap();
                }
                let split = ["train", "val", "test"][i % 3];
                both(
                    root.join(split).join(name),
                    root.join(format!("{split}_labels")).join(name),
                )
            }
            2 => {
                let split = ["train", "val", "test"][i % 3];
                both(
                    root.join(split).join(name),
                    root.join(format!("{split}annot")).join(name),
                )
            }
            3 => both(
                root.join(["training/image_2", "testing/image_2"][i % 2])
                    .join(name),
                root.join("training/gt_image_2").join(name),
            ),
            _ => {
                let split = ["train", "val", "test"][i % 3];
                let city = ["aachen", "bochum"][i % 2];
                both(
                    root.join("leftImg8bit").join(split).join(city).join(name),
                    root.join("gtFine").join(split).join(city).join(name),
                )
            }
        };
        files.extend(pair);
    }
    files
}

#[derive(Debug, Clone)]
enum Edit {
    Stroke([f32; 2], [f32; 2], f32, u8),
    Fill(u32, u32, u8),
    Polygon(Vec<[f32; 2]>, u8),
    Begin,
    End,
    Undo,
    Redo,
}

fn coordinate() -> impl Strategy<Value = f32> {
    prop_oneof![
        5 => -5.0..25.0f32,
        1 => Just(f32::NAN),
        1 => Just(f32::INFINITY),
        1 => Just(f32::NEG_INFINITY),
        1 => any::<f32>(),
    ]
}

fn edit() -> impl Strategy<Value = Edit> {
    let point = || (coordinate(), coordinate()).prop_map(|(x, y)| [x, y]);
    let value = prop_oneof![0..4u8, Just(255u8), any::<u8>()];
    prop_oneof![
        4 => (point(), point(), coordinate(), value.clone()).prop_map(|(a, b, r, v)| Edit::Stroke(a, b, r, v)),
        2 => (prop_oneof![0..20u32, any::<u32>()], prop_oneof![0..14u32, any::<u32>()], value.clone())
            .prop_map(|(x, y, v)| Edit::Fill(x, y, v)),
        2 => (proptest::collection::vec(point(), 0..8), value).prop_map(|(p, v)| Edit::Polygon(p, v)),
        1 => Just(Edit::Begin),
        1 => Just(Edit::End),
        2 => Just(Edit::Undo),
        1 => Just(Edit::Redo),
    ]
}

/// The meter the properties rely on sees a large allocation (else every bound would pass).
#[test]
fn the_meter_sees_allocations() {
    let (v, peak) = peak_of(|| vec![1u8; 8 << 20]);
    assert_eq!(v.len(), 8 << 20);
    assert!(peak >= 8 << 20, "{peak}");
    // And a reader given an allowed but large header does allocate for it: the near-zero
    // bound for refused headers is not trivially true.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.png");
    std::fs::write(&path, fuzz::png_with_header(4000, 2000, 8, 2, &[])).unwrap();
    let (result, peak) = peak_of(|| read_rgb(&path));
    assert!(result.is_err());
    assert!(peak > 4000 * 2000, "{peak}");
}

//! Shared by the CLI and studio tests: running the binary, a tiny training run, and fixture
//! builders that write the same train-id masks in every layout.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use image::{GrayImage, Luma, Rgb, RgbImage};

pub mod layouts;
pub mod services;
pub use layouts::*;

pub const IGNORE: u8 = 255;

pub fn roadseg(args: &[&str]) -> Output {
    services::roadseg_with(args, &[])
}

/// A tiny UNet at 32x24 on the CPU with one loader thread: a run trains in seconds.
pub const TINY: &[&str] = &[
    "--size",
    "32x24",
    "--depth",
    "2",
    "--width",
    "4",
    "--batch-size",
    "4",
    "--workers",
    "1",
    "--device",
    "cpu",
];

/// The arguments of `roadseg train` of a [`TINY`] model on `data` into `out` for `epochs`
/// epochs, then `extra`.
pub fn tiny_args(data: &Path, out: &Path, epochs: u32, extra: &[&str]) -> Vec<String> {
    let head = [
        "train",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--epochs",
        &epochs.to_string(),
    ]
    .map(str::to_string);
    let tail = TINY.iter().chain(extra).map(|s| s.to_string());
    head.into_iter().chain(tail).collect()
}

/// `&str`s of owned arguments, for [`roadseg`], [`ok`] and [`fails`].
pub fn refs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// `roadseg train` of a [`TINY`] model on `data` into `out` for `epochs` epochs.
pub fn train_tiny(data: &Path, out: &Path, epochs: u32) {
    ok(&refs(&tiny_args(data, out, epochs, &[])));
}

/// `roadseg sample` of 12 procedural road scenes at 64x48 into `dir/data`.
pub fn tiny_sample(dir: &Path, seed: u32) -> PathBuf {
    let data = dir.join("data");
    let seed = seed.to_string();
    let out = data.to_str().unwrap();
    ok(&[
        "sample", "--out", out, "--count", "12", "--size", "64x48", "--seed", &seed,
    ]);
    data
}

/// One epoch of a tiny model with BDD100K's drivable head.
pub const DRIVABLE_RUN: &[&str] = &[
    "--epochs",
    "1",
    "--aux",
    "drivable",
    "--size",
    "32x32",
    "--width",
    "2",
    "--depth",
    "2",
    "--batch-size",
    "2",
    "--workers",
    "1",
    "--device",
    "cpu",
];

/// The lines of a run's metrics.jsonl (complete ones; none when the file is missing).
pub fn metric_lines(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The highest train step a run has logged.
pub fn last_train_step(run: &Path) -> u64 {
    metric_lines(run)
        .iter()
        .filter(|l| l["split"] == "train")
        .filter_map(|l| l["step"].as_u64())
        .max()
        .unwrap_or(0)
}

/// Asserts that a stopped-and-resumed run logged the same curve as one that never stopped:
/// the same lines in the same order (no step repeated or lost), the same losses, rates and
/// mIoUs.
pub fn assert_same_curve(expected: &[serde_json::Value], got: &[serde_json::Value]) {
    assert_eq!(got.len(), expected.len(), "no step repeated or lost");
    for (a, b) in expected.iter().zip(got) {
        assert_eq!(
            (&a["split"], &a["epoch"], &a["step"]),
            (&b["split"], &b["epoch"], &b["step"])
        );
        for key in ["loss", "lr", "mean_iou"] {
            if let (Some(x), Some(y)) = (a[key].as_f64(), b[key].as_f64()) {
                assert!(
                    (x - y).abs() <= 1e-4 * x.abs().max(1.0),
                    "{key} differs at {} step {}: {x} vs {y}",
                    a["split"],
                    a["step"]
                );
            }
        }
    }
}

pub fn ok(args: &[&str]) -> String {
    services::ok_with(args, &[])
}

pub fn fails(args: &[&str]) -> String {
    let out = roadseg(args);
    assert!(!out.status.success(), "roadseg {args:?} should fail");
    String::from_utf8(out.stderr).unwrap()
}

/// Runs the Python peer `tests/peers/<script>` with `args`; its JSON answer on stdout.
pub fn peer(script: &str, args: &[&str]) -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/peers")
        .join(script);
    let out = Command::new("python3")
        .arg(path)
        .args(args)
        .output()
        .expect("python3 with the peers of the README's test command (numpy, Pillow, ...)");
    assert!(
        out.status.success(),
        "{script} {args:?}:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

pub fn info_json(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&ok(&["info", dir.to_str().unwrap(), "--json"])).unwrap()
}

/// A deterministic train-id mask with `classes` classes and some ignore pixels.
pub fn mask(seed: u32, classes: u8, w: u32, h: u32) -> GrayImage {
    GrayImage::from_fn(w, h, |x, y| {
        let v = (x / 3 + y / 2 + seed) % (classes as u32 + 1);
        Luma([if v == classes as u32 { IGNORE } else { v as u8 }])
    })
}

pub fn photo(seed: u32, w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        Rgb([(x * 7 + seed) as u8, (y * 5) as u8, (x * y) as u8])
    })
}

/// Encodes train ids with `f`.
pub fn recode_gray(mask: &GrayImage, f: impl Fn(u8) -> u8) -> GrayImage {
    GrayImage::from_fn(mask.width(), mask.height(), |x, y| {
        Luma([f(mask.get_pixel(x, y).0[0])])
    })
}

pub fn recode_rgb(mask: &GrayImage, f: impl Fn(u8) -> [u8; 3]) -> RgbImage {
    RgbImage::from_fn(mask.width(), mask.height(), |x, y| {
        Rgb(f(mask.get_pixel(x, y).0[0]))
    })
}

pub fn save_gray(path: &Path, img: &GrayImage) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    img.save(path).unwrap();
}

pub fn save_rgb(path: &Path, img: &RgbImage) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    img.save(path).unwrap();
}

/// Per-class pixel counts of train-id masks.
pub fn counts(masks: &[GrayImage], classes: usize) -> Vec<u64> {
    let mut out = vec![0u64; classes];
    for m in masks {
        for p in m.pixels() {
            if p.0[0] != IGNORE {
                out[p.0[0] as usize] += 1;
            }
        }
    }
    out
}

/// Every file below `dir` with its bytes, to prove reading writes nothing.
pub fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// A written fixture: where, and the train-id masks by sample name.
pub struct Fixture {
    pub root: PathBuf,
    pub masks: Vec<(String, GrayImage)>,
    pub classes: usize,
}

pub const W: u32 = 24;
pub const H: u32 = 16;

pub fn native(root: &Path) -> Fixture {
    let classes = 3;
    std::fs::create_dir_all(root).unwrap();
    std::fs::write(
        root.join("classes.json"),
        r#"[{"id":0,"name":"road","color":[128,64,128]},{"id":1,"name":"sky","color":[70,130,180]},{"id":2,"name":"car","color":[0,0,142]}]"#,
    )
    .unwrap();
    let mut masks = Vec::new();
    for i in 0..4 {
        let name = format!("img{i}");
        save_rgb(&root.join(format!("images/{name}.png")), &photo(i, W, H));
        if i < 3 {
            let m = mask(i, classes, W, H);
            save_gray(&root.join(format!("masks/{name}.png")), &m);
            masks.push((name, m));
        }
    }
    Fixture {
        root: root.to_path_buf(),
        masks,
        classes: classes as usize,
    }
}

pub const CAMVID_ROWS: [(&str, [u8; 3]); 4] = [
    ("Sky", [128, 128, 128]),
    ("Road", [128, 64, 128]),
    ("Void", [0, 0, 0]),
    ("Car", [64, 0, 128]),
];

/// Train id -> CamVid colour (Void row skipped in train ids).
pub fn camvid_colour(id: u8) -> [u8; 3] {
    match id {
        0 => CAMVID_ROWS[0].1,
        1 => CAMVID_ROWS[1].1,
        2 => CAMVID_ROWS[3].1,
        _ => CAMVID_ROWS[2].1,
    }
}

pub fn camvid_kaggle(root: &Path) -> Fixture {
    let mut csv = String::from("name,r,g,b\n");
    for (n, c) in CAMVID_ROWS {
        csv += &format!("{n},{},{},{}\n", c[0], c[1], c[2]);
    }
    std::fs::create_dir_all(root).unwrap();
    std::fs::write(root.join("class_dict.csv"), csv).unwrap();
    let mut masks = Vec::new();
    for (i, split) in ["train", "train", "val", "test"].iter().enumerate() {
        let name = format!("0001TP_{i:06}");
        save_rgb(
            &root.join(format!("{split}/{name}.png")),
            &photo(i as u32, W, H),
        );
        let m = mask(i as u32, 3, W, H);
        save_rgb(
            &root.join(format!("{split}_labels/{name}_L.png")),
            &recode_rgb(&m, camvid_colour),
        );
        masks.push((name, m));
    }
    Fixture {
        root: root.to_path_buf(),
        masks,
        classes: 3,
    }
}

pub fn camvid_original(root: &Path) -> Fixture {
    let mut txt = String::new();
    for (n, c) in CAMVID_ROWS {
        txt += &format!("{} {} {}\t{n}\n", c[0], c[1], c[2]);
    }
    std::fs::create_dir_all(root).unwrap();
    std::fs::write(root.join("label_colors.txt"), txt).unwrap();
    let mut masks = Vec::new();
    for i in 0..5u32 {
        let name = format!("0006R0_f{i:05}");
        save_rgb(
            &root.join(format!("701_StillsRaw_full/{name}.png")),
            &photo(i, W, H),
        );
        let m = mask(i, 3, W, H);
        save_rgb(
            &root.join(format!("LabeledApproved_full/{name}_L.png")),
            &recode_rgb(&m, camvid_colour),
        );
        masks.push((name, m));
    }
    Fixture {
        root: root.to_path_buf(),
        masks,
        classes: 3,
    }
}

pub fn camvid11(root: &Path) -> Fixture {
    let mut masks = Vec::new();
    for (i, split) in ["train", "val", "test"].iter().enumerate() {
        let name = format!("Seq05VD_f{i:05}");
        save_rgb(
            &root.join(format!("{split}/{name}.png")),
            &photo(i as u32, W, H),
        );
        let m = mask(i as u32, 11, W, H);
        save_gray(
            &root.join(format!("{split}annot/{name}.png")),
            &recode_gray(&m, |v| if v == IGNORE { 11 } else { v }),
        );
        masks.push((name, m));
    }
    Fixture {
        root: root.to_path_buf(),
        masks,
        classes: 11,
    }
}

pub fn kitti(root: &Path) -> Fixture {
    let colour = |v: u8| match v {
        0 => [255, 0, 0],
        1 => [255, 0, 255],
        _ => [0, 0, 0],
    };
    let mut masks = Vec::new();
    for (i, cat) in ["um", "umm", "uu"].iter().enumerate() {
        let name = format!("{cat}_{i:06}");
        save_rgb(
            &root.join(format!("training/image_2/{name}.png")),
            &photo(i as u32, W, H),
        );
        let m = mask(i as u32, 2, W, H);
        save_rgb(
            &root.join(format!("training/gt_image_2/{cat}_road_{i:06}.png")),
            &recode_rgb(&m, colour),
        );
        masks.push((name, m));
    }
    // A lane label (not a road label) in an unknown colour: must be skipped, not read.
    save_rgb(
        &root.join("training/gt_image_2/um_lane_000000.png"),
        &RgbImage::from_pixel(W, H, Rgb([9, 9, 9])),
    );
    save_rgb(&root.join("testing/image_2/um_000000.png"), &photo(9, W, H));
    Fixture {
        root: root.to_path_buf(),
        masks,
        classes: 2,
    }
}

/// trainId -> Cityscapes labelId (road 7, sidewalk 8, building 11, ...); ignore -> a mix of
/// void labelIds.
pub const CITYSCAPES_LABEL_IDS: [u8; 19] = [
    7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33,
];

pub fn cityscapes(root: &Path) -> Fixture {
    let mut masks = Vec::new();
    for (i, (split, city)) in [
        ("train", "aachen"),
        ("train", "bochum"),
        ("val", "frankfurt"),
    ]
    .iter()
    .enumerate()
    {
        let stem = format!("{city}_000000_{i:06}");
        save_rgb(
            &root.join(format!("leftImg8bit/{split}/{city}/{stem}_leftImg8bit.png")),
            &photo(i as u32, W, H),
        );
        let m = mask(i as u32, 19, W, H);
        let ids = recode_gray(&m, |v| {
            if v == IGNORE {
                [0u8, 4, 9, 30][i % 4]
            } else {
                CITYSCAPES_LABEL_IDS[v as usize]
            }
        });
        save_gray(
            &root.join(format!("gtFine/{split}/{city}/{stem}_gtFine_labelIds.png")),
            &ids,
        );
        masks.push((stem, m));
    }
    Fixture {
        root: root.to_path_buf(),
        masks,
        classes: 19,
    }
}

/// BDD100K's layout: `images/10k/{train,val,test}/*.jpg`, train-id masks in
/// `labels/sem_seg/masks/{train,val}` and drivable-area maps (0 direct, 1 alternative, 2
/// background) in `labels/drivable/masks/{train,val}`.
pub fn bdd100k(root: &Path) -> Fixture {
    let mut masks = Vec::new();
    for (i, split) in ["train", "train", "val", "test"].iter().enumerate() {
        let name = format!("7d2f7975-e0c1c5a{i}");
        let image = root.join(format!("images/10k/{split}/{name}.jpg"));
        std::fs::create_dir_all(image.parent().unwrap()).unwrap();
        photo(i as u32, W, H).save(&image).unwrap();
        if *split == "test" {
            continue;
        }
        let m = mask(i as u32, 19, W, H);
        save_gray(
            &root.join(format!("labels/sem_seg/masks/{split}/{name}.png")),
            &m,
        );
        let drivable = GrayImage::from_fn(W, H, |x, _| Luma([(x * 3 / W) as u8]));
        save_gray(
            &root.join(format!("labels/drivable/masks/{split}/{name}.png")),
            &drivable,
        );
        masks.push((name, m));
    }
    Fixture {
        root: root.to_path_buf(),
        masks,
        classes: 19,
    }
}

/// A `.safetensors` file of `f32` tensors: `(name, shape, values)`.
pub fn write_safetensors(path: &Path, tensors: &[(String, Vec<usize>, Vec<f32>)]) {
    let mut header = serde_json::Map::new();
    let mut data: Vec<u8> = Vec::new();
    for (name, shape, values) in tensors {
        let start = data.len();
        data.extend(values.iter().flat_map(|v| v.to_le_bytes()));
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [start, data.len()]}),
        );
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

/// torchvision's ResNet-18 `state_dict` (without the classifier) with deterministic values:
/// names and shapes as torchvision has them, running variances positive.
pub fn resnet18_weights(seed: u32) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    use roadseg::core::model::pretrained::torchvision_keys;
    use roadseg::core::model::resnet::{ResNetEncoder, ResNetKind};
    let encoder = ResNetEncoder::new(ResNetKind::R18, 3, &burn::tensor::Device::flex());
    let mut state = seed.wrapping_mul(2_654_435_761).max(1);
    torchvision_keys(&encoder)
        .into_iter()
        .map(|(name, shape)| {
            let n: usize = shape.iter().product();
            let values = (0..n)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 17;
                    state ^= state << 5;
                    let v = (state % 20_000) as f32 / 10_000.0 - 1.0;
                    if name.ends_with("running_var") {
                        v.abs() + 0.5
                    } else {
                        // Small weights keep the untrained network's activations tame.
                        v * 0.05
                    }
                })
                .collect();
            (name, shape, values)
        })
        .collect()
}

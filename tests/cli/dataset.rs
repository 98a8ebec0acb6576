//! `roadseg info`, `convert` and `sample` on small fixtures that the tests build in each layout.

use crate::common;

use std::path::Path;

use common::*;
use image::{GrayImage, Rgb, RgbImage};

pub(crate) fn check_layout(build: fn(&Path) -> Fixture, format: &str, images: u64) {
    let tmp = tempfile::tempdir().unwrap();
    let fixture = build(&tmp.path().join("src"));
    let before = snapshot(&fixture.root);

    let info = info_json(&fixture.root);
    assert_eq!(info["format"], format);
    assert_eq!(info["images"], images);
    assert_eq!(info["labelled"], fixture.masks.len() as u64);
    assert_eq!(info["problems"].as_array().unwrap().len(), 0, "{info:#}");
    let classes = info["classes"].as_array().unwrap();
    assert_eq!(classes.len(), fixture.classes);
    let masks: Vec<GrayImage> = fixture.masks.iter().map(|(_, m)| m.clone()).collect();
    let expected = counts(&masks, fixture.classes);
    let reported: Vec<u64> = classes
        .iter()
        .map(|c| c["pixels"].as_u64().unwrap())
        .collect();
    assert_eq!(reported, expected, "pixels per class for {format}");
    // --format forces the same reading.
    let forced: serde_json::Value = serde_json::from_str(&ok(&[
        "info",
        fixture.root.to_str().unwrap(),
        "--format",
        format,
        "--json",
    ]))
    .unwrap();
    assert_eq!(forced["classes"], info["classes"]);

    // Convert to native: every label comes back identical.
    let out = tmp.path().join("native");
    ok(&[
        "convert",
        fixture.root.to_str().unwrap(),
        "--to",
        "native",
        out.to_str().unwrap(),
    ]);
    for (name, expected) in &fixture.masks {
        let written = image::open(out.join(format!("masks/{name}.png")))
            .unwrap()
            .into_luma8();
        assert_eq!(&written, expected, "mask {name} after converting {format}");
        assert!(
            ["png", "jpg"]
                .iter()
                .any(|ext| out.join(format!("images/{name}.{ext}")).is_file()),
            "image {name} after converting {format}"
        );
    }
    let native = info_json(&out);
    assert_eq!(native["format"], "native");
    assert_eq!(native["labelled"], fixture.masks.len() as u64);
    for (a, b) in native["classes"].as_array().unwrap().iter().zip(classes) {
        assert_eq!(a["name"], b["name"]);
        assert_eq!(a["pixels"], b["pixels"]);
    }
    assert_eq!(
        native["splits"], info["splits"],
        "splits survive conversion"
    );

    assert_eq!(
        snapshot(&fixture.root),
        before,
        "reading must not modify the source"
    );
}

#[test]
fn native_layout() {
    check_layout(native, "native", 4);
}

#[test]
fn camvid_kaggle_layout() {
    check_layout(camvid_kaggle, "camvid", 4);
    let tmp = tempfile::tempdir().unwrap();
    let f = camvid_kaggle(tmp.path());
    let info = info_json(&f.root);
    assert_eq!(
        info["splits"],
        serde_json::json!({"train": 2, "val": 1, "test": 1})
    );
    let names: Vec<_> = info["classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].clone())
        .collect();
    assert_eq!(names, ["Sky", "Road", "Car"], "Void is ignore, not a class");
}

#[test]
fn camvid_original_layout() {
    check_layout(camvid_original, "camvid", 5);
}

#[test]
fn camvid11_layout() {
    check_layout(camvid11, "camvid11", 3);
}

#[test]
fn kitti_road_layout() {
    check_layout(kitti, "kitti-road", 4);
    let tmp = tempfile::tempdir().unwrap();
    let f = kitti(tmp.path());
    let info = info_json(&f.root);
    assert_eq!(
        info["splits"]["test"], 1,
        "testing/image_2 is unlabelled test data"
    );
    assert_eq!(info["classes"][1]["name"], "road");
}

#[test]
fn cityscapes_layout() {
    check_layout(cityscapes, "cityscapes", 3);
    let tmp = tempfile::tempdir().unwrap();
    let f = cityscapes(tmp.path());
    let info = info_json(&f.root);
    assert_eq!(info["splits"], serde_json::json!({"train": 2, "val": 1}));
    assert_eq!(info["classes"][18]["name"], "bicycle");
    // 250 is no labelId of labels.py: flagged like an unknown id in the other layouts, not
    // read as ignore.
    let label = f
        .root
        .join("gtFine/val/frankfurt/frankfurt_000000_000002_gtFine_labelIds.png");
    let mut ids = image::open(&label).unwrap().into_luma8();
    ids.put_pixel(0, 0, image::Luma([250]));
    ids.save(&label).unwrap();
    let listed = problems(&info_json(&f.root));
    assert!(
        listed.len() == 1 && listed[0].0.ends_with("labelIds.png") && listed[0].1.contains("250"),
        "{listed:?}"
    );
}

#[test]
fn bdd100k_layout() {
    check_layout(bdd100k, "bdd100k", 4);
    let tmp = tempfile::tempdir().unwrap();
    let f = bdd100k(tmp.path());
    let info = info_json(&f.root);
    assert_eq!(
        info["splits"],
        serde_json::json!({"train": 2, "val": 1, "test": 1}),
        "test images are unlabelled"
    );
    assert_eq!(info["classes"][0]["name"], "road");
    assert_eq!(
        info["classes"][0]["color"],
        serde_json::json!([128, 64, 128])
    );
    // A semantic mask without its image, and a value that is no train id.
    let orphan = f.root.join("labels/sem_seg/masks/val/gone.png");
    save_gray(&orphan, &mask(1, 19, W, H));
    let bad = f
        .root
        .join("labels/sem_seg/masks/train/7d2f7975-e0c1c5a0.png");
    save_gray(
        &bad,
        &recode_gray(&mask(0, 19, W, H), |v| if v == 3 { 40 } else { v }),
    );
    let listed = problems(&info_json(&f.root));
    assert!(
        listed
            .iter()
            .any(|(file, e)| file.ends_with("gone.png") && e.contains("no image")),
        "{listed:?}"
    );
    assert!(
        listed
            .iter()
            .any(|(file, e)| file.ends_with("e0c1c5a0.png") && e.contains("40")),
        "{listed:?}"
    );
}

#[test]
fn splits_json_names_without_an_image_are_problems() {
    let tmp = tempfile::tempdir().unwrap();
    let f = native(tmp.path());
    std::fs::write(
        f.root.join("splits.json"),
        r#"{"train": ["img0", "img1", "ghost"], "val": ["img2", "../img3", "sub/img3"]}"#,
    )
    .unwrap();
    let info = info_json(&f.root);
    let listed = problems(&info);
    assert_eq!(listed.len(), 3, "{listed:?}");
    assert!(listed.iter().all(|(file, _)| file.ends_with("splits.json")));
    let ghost: Vec<_> = listed
        .iter()
        .filter(|(_, e)| e.contains("\"ghost\""))
        .collect();
    assert!(
        ghost.len() == 1 && ghost[0].1.contains("no image"),
        "{listed:?}"
    );
    let paths = listed
        .iter()
        .filter(|(_, e)| e.contains("img3") && e.contains("without folders"))
        .count();
    assert_eq!(paths, 2, "{listed:?}");
    // The named images keep their splits; img3 (listed only as paths) gets the ratio split.
    let count = |split: &str| info["splits"][split].as_u64().unwrap_or(0);
    assert!(count("train") >= 2 && count("val") >= 1, "{info:#}");
}

pub(crate) fn problems(info: &serde_json::Value) -> Vec<(String, String)> {
    info["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["file"].as_str().unwrap().to_string(),
                p["error"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn info_lists_every_problem_with_its_file() {
    let tmp = tempfile::tempdir().unwrap();
    let f = camvid_kaggle(tmp.path());
    // 1. An unknown colour in a label (5 pixels).
    let label = f.root.join("train_labels/0001TP_000000_L.png");
    let mut img = image::open(&label).unwrap().into_rgb8();
    for x in 0..5 {
        img.put_pixel(x, 0, Rgb([1, 2, 3]));
    }
    img.save(&label).unwrap();
    // 2. A label whose size differs from its image.
    let label2 = f.root.join("train_labels/0001TP_000001_L.png");
    RgbImage::from_pixel(W + 1, H, Rgb(camvid_colour(0)))
        .save(&label2)
        .unwrap();
    // 3. A truncated image.
    let image3 = f.root.join("val/0001TP_000002.png");
    let bytes = std::fs::read(&image3).unwrap();
    std::fs::write(&image3, &bytes[..bytes.len() / 2]).unwrap();
    // 4. An image with no label.
    std::fs::remove_file(f.root.join("test_labels/0001TP_000003_L.png")).unwrap();

    let info = info_json(&f.root);
    let found = problems(&info);
    assert_eq!(found.len(), 4, "{found:#?}");
    let about = |file: &Path| {
        found
            .iter()
            .find(|(p, _)| Path::new(p) == file)
            .unwrap_or_else(|| panic!("no problem reported for {}: {found:#?}", file.display()))
            .1
            .clone()
    };
    let e = about(&label);
    assert!(
        e.contains("unknown colour") && e.contains("1, 2, 3 in 5 pixels"),
        "{e}"
    );
    assert!(about(&label2).contains("mask is 25x16 but its image"));
    assert!(about(&image3).contains("decode"));
    assert!(about(&f.root.join("test/0001TP_000003.png")).contains("no label"));
    assert_eq!(info["labelled"], 3);

    // Converting refuses by default and lists the problems; --skip-bad converts the rest.
    let dest = tempfile::tempdir().unwrap();
    let out = dest.path().join("out");
    let err = fails(&[
        "convert",
        f.root.to_str().unwrap(),
        "--to",
        "native",
        out.to_str().unwrap(),
    ]);
    assert!(
        err.contains("4 bad file(s)") && err.contains("--skip-bad"),
        "{err}"
    );
    assert!(!out.join("masks").exists(), "nothing written when refusing");
    let done = ok(&[
        "convert",
        f.root.to_str().unwrap(),
        "--to",
        "native",
        out.to_str().unwrap(),
        "--skip-bad",
    ]);
    // The image without a label is converted (unlabelled), and said to be, not "skipped".
    assert!(
        done.contains("skipped 3 bad file(s)")
            && done.contains("converted 1 image(s) without a label")
            && out.join("images/0001TP_000003.png").is_file(),
        "{done}"
    );
}

#[test]
fn fatal_errors_name_the_folder_or_file() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let err = fails(&["info", empty.to_str().unwrap()]);
    assert!(
        err.contains("empty") && err.contains("no known dataset layout"),
        "{err}"
    );

    // Every layout detect knows is named, BDD100K included.
    for layout in [
        "native",
        "camvid",
        "camvid11",
        "kitti-road",
        "cityscapes",
        "bdd100k",
    ] {
        assert!(err.contains(&format!("{layout} (")), "{layout}: {err}");
    }

    let missing = tmp.path().join("nope");
    assert!(fails(&["info", missing.to_str().unwrap()]).contains("no such folder"));
    // With a forced layout too (it used to blame a missing class table).
    let err = fails(&["info", missing.to_str().unwrap(), "--format", "native"]);
    assert!(err.contains("no such folder"), "{err}");
    // A file is a file, not a missing folder.
    let file = tmp.path().join("photo.png");
    std::fs::write(&file, "").unwrap();
    for forced in [&[][..], &["--format", "cityscapes"][..]] {
        let mut args = vec!["info", file.to_str().unwrap()];
        args.extend_from_slice(forced);
        let err = fails(&args);
        assert!(err.contains("is a file, not a folder"), "{forced:?}: {err}");
    }

    let f = camvid_kaggle(&tmp.path().join("cv"));
    std::fs::remove_file(f.root.join("class_dict.csv")).unwrap();
    let err = fails(&["info", f.root.to_str().unwrap()]);
    assert!(
        err.contains("class_dict.csv") && err.contains("missing"),
        "{err}"
    );

    let n = native(&tmp.path().join("nat"));
    std::fs::write(n.root.join("classes.json"), "{not json").unwrap();
    let err = fails(&["info", n.root.to_str().unwrap()]);
    assert!(
        err.contains("classes.json") && err.contains("bad class table"),
        "{err}"
    );

    let nothing = tmp.path().join("noimages");
    std::fs::create_dir_all(nothing.join("images")).unwrap();
    std::fs::copy(tmp.path().join("nat/classes.json"), nothing.join("x")).unwrap();
    std::fs::write(
        nothing.join("classes.json"),
        r#"[{"id":0,"name":"road","color":[1,1,1]}]"#,
    )
    .unwrap();
    let err = fails(&["info", nothing.to_str().unwrap()]);
    assert!(err.contains("no images found"), "{err}");
}

#[test]
fn native_reports_unknown_ids_and_orphan_masks() {
    let tmp = tempfile::tempdir().unwrap();
    let f = native(tmp.path());
    let m = f.root.join("masks/img0.png");
    let mut img = image::open(&m).unwrap().into_luma8();
    img.put_pixel(0, 0, image::Luma([42]));
    img.save(&m).unwrap();
    save_gray(&f.root.join("masks/ghost.png"), &GrayImage::new(W, H));
    let info = info_json(&f.root);
    let found = problems(&info);
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(
        found
            .iter()
            .any(|(p, e)| p.ends_with("img0.png") && e.contains("42 in 1 pixels"))
    );
    assert!(
        found
            .iter()
            .any(|(p, e)| p.ends_with("ghost.png") && e.contains("no image"))
    );
    assert_eq!(
        info["splits"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum::<u64>(),
        4
    );
}

#[test]
fn sample_is_deterministic_and_clean() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    for dir in [&a, &b] {
        ok(&[
            "sample",
            "--out",
            dir.to_str().unwrap(),
            "--count",
            "6",
            "--seed",
            "4",
            "--size",
            "96x64",
        ]);
    }
    let strip = |s: Vec<(std::path::PathBuf, Vec<u8>)>, root: &Path| -> Vec<_> {
        s.into_iter()
            .map(|(p, b)| (p.strip_prefix(root).unwrap().to_path_buf(), b))
            .collect()
    };
    assert_eq!(strip(snapshot(&a), &a), strip(snapshot(&b), &b));
    let info = info_json(&a);
    assert_eq!(info["format"], "native");
    assert_eq!(info["labelled"], 6);
    assert!(info["problems"].as_array().unwrap().is_empty());
    let names: Vec<_> = info["classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    for class in [
        "road",
        "sidewalk",
        "building",
        "vegetation",
        "sky",
        "vehicle",
        "lane marking",
    ] {
        assert!(names.iter().any(|n| n == class), "missing class {class}");
    }
    let err = fails(&["sample", "--out", a.to_str().unwrap()]);
    assert!(err.contains("not empty"), "{err}");
    assert!(fails(&["sample", "--out", "x", "--size", "12"]).contains("WIDTHxHEIGHT"));
}

#[test]
fn sample_refuses_what_roadseg_would_refuse_to_read() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("s");
    let o = out.to_str().unwrap();
    for (args, says) in [
        (&["--size", "20000x20"][..], "larger than roadseg reads"),
        (&["--size", "8000x8000"][..], "larger than roadseg reads"),
        (&["--count", "0"][..], "at least one image"),
        (&["--size", "12x12"][..], "too small"),
    ] {
        let mut all = vec!["sample", "--out", o];
        all.extend_from_slice(args);
        let err = fails(&all);
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(!out.exists(), "{args:?} wrote {o}");
    }
    let file = tmp.path().join("file");
    std::fs::write(&file, "").unwrap();
    let err = fails(&["sample", "--out", file.to_str().unwrap(), "--count", "1"]);
    assert!(err.contains("is a file"), "{err}");
}

#[test]
fn an_image_in_two_splits_is_a_problem_and_left_out() {
    let tmp = tempfile::tempdir().unwrap();
    let f = native(tmp.path());
    std::fs::write(
        f.root.join("splits.json"),
        r#"{"train": ["img0", "img1"], "val": ["img1", "img2"], "test": ["img3"]}"#,
    )
    .unwrap();
    let info = info_json(&f.root);
    let listed = problems(&info);
    assert_eq!(listed.len(), 1, "{listed:?}");
    let (file, error) = &listed[0];
    assert!(file.ends_with("splits.json"), "{file}");
    assert!(
        error.contains("\"img1\"") && error.contains("train and val") && error.contains("left out"),
        "{error}"
    );
    // In neither split: a leak cannot happen, and the counts say it is gone.
    assert_eq!(
        info["splits"],
        serde_json::json!({"train": 1, "val": 1, "test": 1})
    );
    assert_eq!(info["images"], 3);
    // Training refuses it like any other problem, naming it.
    let err = fails(&[
        "train",
        "--data",
        f.root.to_str().unwrap(),
        "--out",
        tmp.path().join("run").to_str().unwrap(),
        "--device",
        "cpu",
    ]);
    assert!(err.contains("img1") && err.contains("--skip-bad"), "{err}");
}

/// Replaces drivable-area map `i` of the BDD100K fixture with `map`.
fn damage_drivable(root: &Path, split: &str, i: usize, map: GrayImage) {
    save_gray(
        &root.join(format!(
            "labels/drivable/masks/{split}/7d2f7975-e0c1c5a{i}.png"
        )),
        &map,
    );
}

#[test]
fn bdd100k_drivable_maps_are_checked_like_masks() {
    let tmp = tempfile::tempdir().unwrap();
    let f = bdd100k(&tmp.path().join("bdd"));
    // A value that is no drivable class, and a map of the wrong size.
    let mut seven = GrayImage::from_pixel(W, H, image::Luma([1]));
    seven.put_pixel(2, 3, image::Luma([7]));
    damage_drivable(&f.root, "train", 0, seven);
    damage_drivable(&f.root, "val", 2, GrayImage::new(10, 10));
    let listed = problems(&info_json(&f.root));
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(
        listed
            .iter()
            .any(|(p, e)| p.ends_with("train/7d2f7975-e0c1c5a0.png")
                && e.contains("drivable-area values")
                && e.contains("7 in 1 pixels")),
        "{listed:?}"
    );
    assert!(
        listed
            .iter()
            .any(|(p, e)| p.ends_with("val/7d2f7975-e0c1c5a2.png")
                && e.contains("map is 10x10 but its image is 24x16")),
        "{listed:?}"
    );

    let d = f.root.to_str().unwrap();
    let run = |name: &str, skip: bool| {
        let out = tmp.path().join(name);
        let mut args = vec!["train", "--data", d, "--out", out.to_str().unwrap()];
        args.extend_from_slice(DRIVABLE_RUN);
        if skip {
            args.push("--skip-bad");
        }
        roadseg(&args)
    };
    // Refused before the first step, both named.
    let refused = run("refused", false);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        err.contains("2 bad file(s)")
            && err.contains("e0c1c5a0.png")
            && err.contains("e0c1c5a2.png"),
        "{err}"
    );
    // --skip-bad leaves out both samples and trains on the one good one.
    let skipped = run("skipped", true);
    let said = String::from_utf8_lossy(&skipped.stderr);
    assert!(skipped.status.success(), "{said}");
    assert!(said.contains("skipped 2 bad file(s)"), "{said}");
    assert!(
        tmp.path()
            .join("skipped/checkpoints/last/aux.bpk")
            .is_file()
    );
}

#[test]
fn bdd100k_drivable_maps_survive_conversion_to_native() {
    let tmp = tempfile::tempdir().unwrap();
    let f = bdd100k(&tmp.path().join("bdd"));
    let out = tmp.path().join("native");
    let said = ok(&[
        "convert",
        f.root.to_str().unwrap(),
        "--to",
        "native",
        out.to_str().unwrap(),
    ]);
    assert!(said.contains("3 drivable-area maps"), "{said}");
    let splits = ["train", "train", "val"];
    for (i, split) in splits.iter().enumerate() {
        let name = format!("7d2f7975-e0c1c5a{i}");
        let source = image::open(
            f.root
                .join(format!("labels/drivable/masks/{split}/{name}.png")),
        )
        .unwrap()
        .into_luma8();
        let written = image::open(out.join(format!("drivable/{name}.png")))
            .unwrap()
            .into_luma8();
        assert_eq!(written, source, "drivable map {name}");
    }
    // A map kept under another split than its image (the two releases split apart) is found.
    let moved = f
        .root
        .join("labels/drivable/masks/val/7d2f7975-e0c1c5a1.png");
    std::fs::rename(
        f.root
            .join("labels/drivable/masks/train/7d2f7975-e0c1c5a1.png"),
        &moved,
    )
    .unwrap();
    assert_eq!(info_json(&f.root)["drivable_maps"], 3);
    std::fs::rename(
        &moved,
        f.root
            .join("labels/drivable/masks/train/7d2f7975-e0c1c5a1.png"),
    )
    .unwrap();
    let converted = info_json(&out);
    assert!(problems(&converted).is_empty(), "{converted:#}");
    assert_eq!(converted["drivable_maps"], 3);
    assert_eq!(info_json(&f.root)["drivable_maps"], 3);
    // The converted dataset trains the drivable head, as the original does.
    let run = tmp.path().join("run");
    let mut args = vec![
        "train",
        "--data",
        out.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
    ];
    args.extend_from_slice(DRIVABLE_RUN);
    ok(&args);
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["format"], "native");
    assert_eq!(config["train"]["aux"], "drivable");
    // The native reader checks them as BDD100K's does: a map without an image is a problem.
    save_gray(&out.join("drivable/gone.png"), &GrayImage::new(W, H));
    let listed = problems(&info_json(&out));
    assert!(
        listed.len() == 1 && listed[0].0.ends_with("gone.png") && listed[0].1.contains("no image"),
        "{listed:?}"
    );
}

#[test]
fn convert_refuses_an_output_inside_the_source_given_relatively() {
    let tmp = tempfile::tempdir().unwrap();
    let f = native(&tmp.path().join("src"));
    let converted = std::process::Command::new(env!("CARGO_BIN_EXE_roadseg"))
        .args(["convert", ".", "--to", "native", "out"])
        .current_dir(&f.root)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&converted.stderr);
    assert!(!converted.status.success(), "{err}");
    assert!(err.contains("inside the source"), "{err}");
    assert!(
        !f.root.join("out").exists(),
        "nothing written into the source"
    );
    let file = tmp.path().join("file");
    std::fs::write(&file, "").unwrap();
    let err = fails(&[
        "convert",
        f.root.to_str().unwrap(),
        "--to",
        "native",
        file.to_str().unwrap(),
    ]);
    assert!(err.contains("is a file"), "{err}");
}

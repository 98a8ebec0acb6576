//! `roadseg info`, `convert` and `sample` on small fixtures that the tests build in each layout.

use crate::common;

use std::path::Path;

use common::*;
use image::{GrayImage, Rgb, RgbImage};

fn check_layout(build: fn(&Path) -> Fixture, format: &str, images: u64) {
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

fn problems(info: &serde_json::Value) -> Vec<(String, String)> {
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
    assert!(done.contains("skipped 4 bad file(s)"), "{done}");
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

    let missing = tmp.path().join("nope");
    assert!(fails(&["info", missing.to_str().unwrap()]).contains("no such folder"));

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

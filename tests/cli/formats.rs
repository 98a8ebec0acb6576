//! Labels in and out: VOC, CVAT's "Segmentation mask 1.1", COCO (panoptic, RLE, polygons),
//! Mapillary Vistas and labelme read as their tools write them (fixtures in
//! `tests/common/layouts.rs`), written by `convert --to` and read back, and COCO checked both
//! ways against pycocotools (`tests/peers/coco_check.py`).

use crate::common;
use crate::dataset::{check_layout, problems};

use std::path::Path;

use common::*;
use image::GrayImage;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn voc_layout() {
    check_layout(voc, "voc", 4);
    let tmp = tempfile::tempdir().unwrap();
    let f = voc(tmp.path());
    let info = info_json(&f.root);
    assert_eq!(info["classes"][15]["name"], "person");
    assert_eq!(
        info["classes"][15]["color"],
        serde_json::json!([192, 128, 128])
    );
    assert_eq!(
        info["splits"],
        serde_json::json!({"train": 2, "val": 1, "test": 1}),
        "the lists place every image; the detection-only image is not a sample"
    );
}

#[test]
fn cvat_segmentation_mask_layout() {
    check_layout(cvat, "voc", 4);
    let tmp = tempfile::tempdir().unwrap();
    let f = cvat(tmp.path());
    let names: Vec<_> = info_json(&f.root)["classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].clone())
        .collect();
    assert_eq!(names, ["background", "road", "lane marking"]);
    // A colour the labelmap does not list is a problem naming the file and the colour.
    let label = f.root.join("SegmentationClass/frame_000002.png");
    let mut rgb = image::open(&label).unwrap().into_rgb8();
    rgb.put_pixel(3, 3, image::Rgb([1, 2, 3]));
    rgb.save(&label).unwrap();
    let listed = problems(&info_json(&f.root));
    assert!(
        listed.len() == 1
            && listed[0].0.ends_with("frame_000002.png")
            && listed[0].1.contains("1, 2, 3"),
        "{listed:?}"
    );
}

#[test]
fn coco_panoptic_layout() {
    check_layout(coco_panoptic, "coco", 4);
    let tmp = tempfile::tempdir().unwrap();
    let f = coco_panoptic(tmp.path());
    let info = info_json(&f.root);
    assert_eq!(info["splits"], serde_json::json!({"train": 2, "val": 2}));
    assert_eq!(
        info["labelled"], 3,
        "an image without annotations is unlabelled"
    );
    assert_eq!(info["classes"][2]["name"], "car");
    assert_eq!(info["classes"][1]["color"], serde_json::json!([50, 0, 200]));
}

#[test]
fn coco_instances_layout() {
    check_layout(coco_instances, "coco", 4);
}

#[test]
fn vistas_layout() {
    check_layout(vistas, "vistas", 4);
    let tmp = tempfile::tempdir().unwrap();
    let f = vistas(tmp.path());
    let info = info_json(&f.root);
    assert_eq!(
        info["splits"],
        serde_json::json!({"train": 2, "val": 1, "test": 1})
    );
    assert_eq!(info["classes"][1]["name"], "marking--general");
}

#[test]
fn labelme_layout() {
    check_layout(labelme, "labelme", 4);
    let tmp = tempfile::tempdir().unwrap();
    let f = labelme(tmp.path());
    // labels.txt fixes the class order; a label it lacks is a problem naming json and label.
    std::fs::write(
        f.root.join("labels.txt"),
        "__ignore__\n_background_\nroad\nsidewalk\n",
    )
    .unwrap();
    let info = info_json(&f.root);
    assert_eq!(info["classes"][0]["name"], "_background_");
    let listed = problems(&info);
    assert!(
        listed.iter().all(|(file, e)| file.ends_with(".json")
            && e.contains("\"car\"")
            && e.contains("labels.txt")),
        "{listed:?}"
    );
    assert_eq!(listed.len(), 3, "{listed:?}");
}

/// The native masks of `dir` by name.
fn native_masks(dir: &Path) -> Vec<(String, GrayImage)> {
    let mut masks: Vec<(String, GrayImage)> = std::fs::read_dir(dir.join("masks"))
        .unwrap()
        .flatten()
        .map(|e| {
            let p = e.path();
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            (name, image::open(&p).unwrap().into_luma8())
        })
        .collect();
    masks.sort_by(|a, b| a.0.cmp(&b.0));
    masks
}

/// `convert --to native` of `dir` into `out`; its masks.
fn back_to_native(dir: &Path, out: &Path) -> Vec<(String, GrayImage)> {
    ok(&["convert", s(dir), "--to", "native", s(out)]);
    native_masks(out)
}

#[test]
fn every_written_layout_reads_back_to_the_same_masks() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_sample(tmp.path(), 7);
    let source = native_masks(&data);
    let source_info = info_json(&data);
    assert!(source.len() >= 10);
    for to in ["voc", "coco", "labelme"] {
        let out = tmp.path().join(to);
        let said = ok(&["convert", s(&data), "--to", to, s(&out)]);
        assert!(said.contains(&format!("to {to}")), "{said}");
        let info = info_json(&out);
        assert_eq!(info["format"], to);
        assert!(problems(&info).is_empty(), "{to}: {info:#}");
        // labelme keeps no colours: names and pixel counts.
        let strip = |v: &serde_json::Value| {
            let classes = v["classes"].as_array().unwrap().iter();
            classes
                .map(|c| (c["name"].clone(), c["pixels"].clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            strip(&info),
            strip(&source_info),
            "{to}: classes and pixels"
        );
        if to != "labelme" {
            assert_eq!(info["classes"], source_info["classes"], "{to}: colours");
        }
        assert_eq!(info["splits"], source_info["splits"], "{to}: splits");
        let back = back_to_native(&out, &tmp.path().join(format!("{to}-native")));
        assert_eq!(back.len(), source.len(), "{to}");
        for ((name, a), (back_name, b)) in source.iter().zip(&back) {
            assert_eq!(name, back_name);
            assert!(a == b, "{to}: mask {name} changed in the round trip");
        }
    }
    // The sample's lane markings are no Cityscapes class: refused before anything is written.
    let out = tmp.path().join("cityscapes");
    let err = fails(&["convert", s(&data), "--to", "cityscapes", s(&out)]);
    assert!(err.contains("not among Cityscapes' train classes"), "{err}");
    assert!(!out.exists());
    let err = fails(&["convert", s(&data), "--to", "vistas", s(&out)]);
    assert!(
        err.contains("cannot write vistas") && err.contains("labelme"),
        "{err}"
    );
}

#[test]
fn cityscapes_classes_round_trip_through_the_cityscapes_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let f = cityscapes(&tmp.path().join("src"));
    let native = tmp.path().join("native");
    ok(&["convert", s(&f.root), "--to", "native", s(&native)]);
    let out = tmp.path().join("cityscapes");
    ok(&["convert", s(&native), "--to", "cityscapes", s(&out)]);
    let info = info_json(&out);
    assert_eq!(info["format"], "cityscapes");
    assert_eq!(info["classes"], info_json(&native)["classes"]);
    let back = back_to_native(&out, &tmp.path().join("back"));
    let mut expected = f.masks.clone();
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(back, expected);
}

/// Runs the pycocotools peer; its JSON answer.
fn peer(args: &[&str]) -> serde_json::Value {
    common::peer("coco_check.py", args)
}

#[test]
fn pycocotools_reads_roadseg_coco_and_roadseg_reads_pycocotools_rle() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_sample(tmp.path(), 3);
    let labelled = native_masks(&data).len() as u64;
    // roadseg writes, pycocotools reads: both forms give the masks back.
    let coco = tmp.path().join("coco");
    ok(&["convert", s(&data), "--to", "coco", s(&coco)]);
    let judged = peer(&["read", s(&coco), s(&data)]);
    assert_eq!(judged["images"], labelled, "{judged}");
    assert_eq!(
        judged["instances_differing"],
        serde_json::json!([]),
        "{judged}"
    );
    assert_eq!(
        judged["panoptic_differing"],
        serde_json::json!([]),
        "{judged}"
    );
    // pycocotools writes (compressed strings and uncompressed counts), roadseg reads.
    let theirs = tmp.path().join("theirs");
    let written = peer(&["write", s(&data), s(&theirs)]);
    assert_eq!(written["images"], labelled);
    let back = back_to_native(&theirs, &tmp.path().join("theirs-native"));
    assert_eq!(back, native_masks(&data));
    // roadseg's traced labelme polygons, rasterised by pycocotools' own polygon code.
    let labelme = tmp.path().join("labelme");
    ok(&["convert", s(&data), "--to", "labelme", s(&labelme)]);
    let judged = peer(&["polygons", s(&labelme), s(&data)]);
    let (pixels, differing) = (
        judged["pixels"].as_u64().unwrap(),
        judged["differing"].as_u64().unwrap(),
    );
    eprintln!(
        "pycocotools rasterises roadseg's polygons with {differing} of {pixels} pixels differing"
    );
    assert!(differing * 50 < pixels, "{judged}");
}

#[test]
fn hostile_coco_annotations_are_problems_naming_the_json() {
    let tmp = tempfile::tempdir().unwrap();
    let f = coco_instances(tmp.path());
    let json_path = f.root.join("annotations/instances_train.json");
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    let anns = json["annotations"].as_array_mut().unwrap();
    // Runs that do not sum to h*w; an unknown category; a polygon far outside the image.
    anns[0]["segmentation"]["counts"] = serde_json::json!([3, 4]);
    anns[4]["category_id"] = serde_json::json!(99);
    anns[8]["segmentation"] = serde_json::json!([[0.0, 0.0, 500.0, 0.0, 500.0, 9.0]]);
    json["images"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"id": 7, "file_name": "gone.png", "width": 4, "height": 4}));
    std::fs::write(&json_path, json.to_string()).unwrap();
    std::fs::write(
        f.root.join("annotations/instances_val.json"),
        "{\"images\": [",
    )
    .unwrap();
    let listed = problems(&info_json(&f.root));
    let has = |needle: &str| {
        listed
            .iter()
            .any(|(file, e)| file.ends_with(".json") && e.contains(needle))
    };
    assert!(has("runs sum") || has("sum"), "{listed:?}");
    assert!(has("unknown category id 99"), "{listed:?}");
    assert!(has("outside the"), "{listed:?}");
    assert!(has("gone.png"), "{listed:?}");
    assert!(has("bad json"), "{listed:?}");
}

#[test]
fn a_coco_dataset_trains_evaluates_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_sample(tmp.path(), 5);
    let coco = tmp.path().join("coco");
    ok(&["convert", s(&data), "--to", "coco", s(&coco)]);
    let run = tmp.path().join("run");
    train_tiny(&coco, &run, 1);
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["format"], "coco");
    let said = ok(&["eval", "--model", s(&run), "--device", "cpu"]);
    assert!(said.contains("mean IoU"), "{said}");
    ok(&["train", "--resume", s(&run), "--epochs", "2"]);
}

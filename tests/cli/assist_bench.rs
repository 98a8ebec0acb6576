//! `roadseg bench --assist`: click-to-segment measured with RITM's protocol, on hard scenes from
//! `roadseg sample --look hard`. The figures depend on the segmenter; these tests check that the
//! report is whole and its numbers are what they claim to be (IoU in 0..=1, NoC in 1..=20).

use crate::common;

use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;

/// Two hard scenes at 256x128 whose first holds a road, sidewalks and vehicles.
fn hard_scenes(dir: &Path) -> PathBuf {
    let data = dir.join("hard");
    ok(&[
        "sample",
        "--out",
        data.to_str().unwrap(),
        "--look",
        "hard",
        "--size",
        "256x128",
        "--count",
        "2",
        "--seed",
        "2",
    ]);
    data
}

fn check_report(report: &Value, images: u64) {
    let assist = &report["assist"];
    assert_eq!(assist["images"], images, "{report:#}");
    assert_eq!(assist["max_clicks"], 20);
    assert_eq!(assist["stop_iou"], 0.9);
    assert!(assist["prepare_ms"]["mean"].as_f64().unwrap() >= 0.0);
    let classes = assist["classes"].as_array().unwrap();
    let names: Vec<&str> = classes
        .iter()
        .map(|c| c["class"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["road", "sidewalk", "vehicle"]);
    for c in classes {
        let objects = c["objects"].as_u64().unwrap();
        assert!(objects > 0, "{c:#}");
        for key in ["noc85", "noc90"] {
            let noc = c[key].as_f64().unwrap();
            assert!((1.0..=20.0).contains(&noc), "{key}: {c:#}");
        }
        assert!(c["noc85"].as_f64() <= c["noc90"].as_f64(), "{c:#}");
        let iou = c["iou_1"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&iou), "{c:#}");
        assert!(c["failures"].as_u64().unwrap() <= objects);
        let clicks = c["clicks"].as_u64().unwrap();
        assert!((objects..=20 * objects).contains(&clicks), "{c:#}");
        let ms = &c["click_ms"];
        assert!(ms["mean"].as_f64().unwrap() <= ms["max"].as_f64().unwrap());
    }
}

#[test]
fn the_assist_bench_reports_each_class_on_hard_scenes() {
    let tmp = tempfile::tempdir().unwrap();
    let data = hard_scenes(tmp.path());
    assert!(data.join("images/road_0000.jpg").is_file());
    let out = ok(&[
        "bench",
        "--assist",
        "--data",
        data.to_str().unwrap(),
        "--images",
        "1",
        "--json",
    ]);
    let report: Value = serde_json::from_str(&out).unwrap();
    check_report(&report, 1);
    assert_eq!(report["assist"]["prior_ms"], Value::Null);
    assert_eq!(report["assist"]["scenes"], Value::Null);
    // The table says the same.
    let table = ok(&[
        "bench",
        "--assist",
        "--data",
        data.to_str().unwrap(),
        "--images",
        "1",
    ]);
    for word in [
        "NoC@85", "NoC@90", "IoU@1", "road", "sidewalk", "vehicle", "prepare",
    ] {
        assert!(table.contains(word), "{word}: {table}");
    }
}

#[test]
fn a_run_gives_the_assist_bench_its_prior() {
    let tmp = tempfile::tempdir().unwrap();
    let data = hard_scenes(tmp.path());
    let run = tmp.path().join("run");
    train_tiny(&tiny_sample(tmp.path(), 1), &run, 1);
    let out = ok(&[
        "bench",
        "--assist",
        "--data",
        data.to_str().unwrap(),
        "--model",
        run.to_str().unwrap(),
        "--device",
        "cpu",
        "--images",
        "1",
        "--json",
    ]);
    let report: Value = serde_json::from_str(&out).unwrap();
    check_report(&report, 1);
    assert!(report["assist"]["prior_ms"]["mean"].as_f64().unwrap() > 0.0);
}

#[test]
fn flags_that_do_not_go_with_the_assist_bench_are_refused() {
    for (args, says) in [
        (&["bench", "--images", "2"][..], "--assist"),
        (&["bench", "--assist", "--images", "0"], "at least 1"),
        (&["bench", "--assist", "--paint"], "cannot be used with"),
        (&["bench", "--assist", "--train"], "cannot be used with"),
        (
            &["bench", "--assist", "--size", "64x48"],
            "cannot be used with",
        ),
        (&["bench", "--assist", "--device", "cpu"], "--model"),
        (
            &["bench", "--data", "d", "--model", "r"],
            "cannot be used with",
        ),
    ] {
        let err = fails(args);
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

/// `roadseg assist` on a hard scene: the region is written as a 0/1 PNG holding the clicked
/// pixel, and every bad input is refused with the file and the reason, writing nothing.
#[test]
fn assist_writes_the_region_and_refuses_bad_clicks() {
    let tmp = tempfile::tempdir().unwrap();
    let data = hard_scenes(tmp.path());
    let image = data.join("images/road_0000.jpg");
    let image = image.to_str().unwrap();
    let clicks = tmp.path().join("clicks.json");
    let out = tmp.path().join("region.png");
    let run = |text: &str| {
        std::fs::write(&clicks, text).unwrap();
        let args = [
            "assist",
            "--image",
            image,
            "--clicks",
            clicks.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ];
        args.map(String::from)
    };
    let args = run(r#"[{"x": 128, "y": 120, "positive": true}]"#);
    ok(&refs(&args));
    let region = image::open(&out).unwrap().into_luma8();
    assert_eq!(region.dimensions(), (256, 128));
    assert!(region.pixels().all(|p| p.0[0] <= 1), "only 0 and 1");
    assert_eq!(
        region.get_pixel(128, 120).0[0],
        1,
        "the clicked pixel is in it"
    );
    // --fill-holes only adds: the enclosed pixels the region left out.
    let mut filling = args.to_vec();
    filling.extend(["--fill-holes".to_string(), "--json".to_string()]);
    let report: serde_json::Value = serde_json::from_str(&ok(&refs(&filling))).unwrap();
    assert_eq!(report["fill_holes"], true, "{report}");
    let filled = image::open(&out).unwrap().into_luma8();
    assert!(
        region
            .pixels()
            .zip(filled.pixels())
            .all(|(a, b)| a.0[0] <= b.0[0]),
        "the filled region holds the open one"
    );
    std::fs::remove_file(&out).unwrap();

    for (text, says) in [
        (
            r#"[{"x": 256, "y": 5, "positive": true}]"#,
            "outside the 256x128 image",
        ),
        (
            r#"[{"x": 3, "y": 5, "positive": false}]"#,
            "no positive click",
        ),
        ("[]", "no clicks"),
        (r#"{"x": 3}"#, "expected a list of clicks"),
    ] {
        let args = run(text);
        let err = fails(&refs(&args));
        assert!(
            err.contains("clicks.json") && err.contains(says),
            "{text}: {err}"
        );
        assert!(!out.exists(), "{text}: nothing written");
    }
}

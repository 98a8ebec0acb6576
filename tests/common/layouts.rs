//! Fixture builders for the layouts other labelling tools write: VOC, CVAT's "Segmentation mask
//! 1.1", COCO (panoptic, RLE counts, polygons), Mapillary Vistas and labelme. Each writes the
//! files the way that tool does, from the same train-id masks as the other fixtures, with code
//! of its own (no roadseg writer), so that reading them back tests the readers alone.
#![allow(dead_code)]

use std::path::Path;

use image::GrayImage;

use super::*;

/// VOC's bit-interleaved colour map, written out independently of roadseg's.
pub fn voc_colormap(i: u8) -> [u8; 3] {
    let bit = |v: u8, b: u8| (v >> b) & 1;
    let (mut r, mut g, mut b) = (0u8, 0u8, 0u8);
    let mut c = i;
    for j in 0..8 {
        r |= bit(c, 0) << (7 - j);
        g |= bit(c, 1) << (7 - j);
        b |= bit(c, 2) << (7 - j);
        c >>= 3;
    }
    [r, g, b]
}

/// An 8-bit palette PNG holding `indices`.
pub fn save_palette(path: &Path, indices: &GrayImage, palette: &[[u8; 3]]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut encoder = png::Encoder::new(
        std::fs::File::create(path).unwrap(),
        indices.width(),
        indices.height(),
    );
    encoder.set_color(png::ColorType::Indexed);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_palette(palette.iter().flatten().copied().collect::<Vec<u8>>());
    let mut writer = encoder.write_header().unwrap();
    writer.write_image_data(indices.as_raw()).unwrap();
}

/// Pascal VOC: 21 classes, palette masks, train/val/test lists (the test image unlabelled),
/// and one detection-only image that no segmentation list names.
pub fn voc(root: &Path) -> Fixture {
    let palette: Vec<[u8; 3]> = (0..=255).map(voc_colormap).collect();
    let mut masks = Vec::new();
    let splits = ["train", "train", "val", "test"];
    for (i, split) in splits.iter().enumerate() {
        let name = format!("2007_00{i:04}");
        save_rgb(
            &root.join(format!("JPEGImages/{name}.jpg")),
            &photo(i as u32, W, H),
        );
        if *split != "test" {
            let m = mask(i as u32, 21, W, H);
            save_palette(
                &root.join(format!("SegmentationClass/{name}.png")),
                &m,
                &palette,
            );
            masks.push((name.clone(), m));
        }
        let list = root.join(format!("ImageSets/Segmentation/{split}.txt"));
        std::fs::create_dir_all(list.parent().unwrap()).unwrap();
        let mut text = std::fs::read_to_string(&list).unwrap_or_default();
        text.push_str(&format!("{name}\n"));
        std::fs::write(list, text).unwrap();
    }
    save_rgb(&root.join("JPEGImages/2008_000001.jpg"), &photo(9, W, H));
    Fixture {
        root: root.to_path_buf(),
        masks,
        classes: 21,
    }
}

/// CVAT's "Segmentation mask 1.1" export: labelmap.txt, RGB masks in its colours, one
/// `default.txt` list (no fixed split).
pub const CVAT_LABELS: [(&str, [u8; 3]); 3] = [
    ("background", [0, 0, 0]),
    ("road", [128, 64, 128]),
    ("lane marking", [250, 250, 250]),
];

pub fn cvat(root: &Path) -> Fixture {
    let mut text = "# label:color_rgb:parts:actions\n".to_string();
    for (name, [r, g, b]) in CVAT_LABELS {
        text.push_str(&format!("{name}:{r},{g},{b}::\n"));
    }
    std::fs::create_dir_all(root).unwrap();
    std::fs::write(root.join("labelmap.txt"), text).unwrap();
    let mut masks = Vec::new();
    let mut list = String::new();
    for i in 0..4 {
        let name = format!("frame_{i:06}");
        save_rgb(
            &root.join(format!("JPEGImages/{name}.jpg")),
            &photo(i, W, H),
        );
        let m = mask(i, 3, W, H);
        let rgb = recode_rgb(&m, |v| match v {
            IGNORE => [224, 224, 192],
            v => CVAT_LABELS[v as usize].1,
        });
        save_rgb(&root.join(format!("SegmentationClass/{name}.png")), &rgb);
        masks.push((name.clone(), m));
        list.push_str(&format!("{name}\n"));
    }
    std::fs::create_dir_all(root.join("ImageSets/Segmentation")).unwrap();
    std::fs::write(root.join("ImageSets/Segmentation/default.txt"), list).unwrap();
    Fixture {
        root: root.to_path_buf(),
        masks,
        classes: 3,
    }
}

pub const COCO_CATEGORIES: [(u64, &str); 3] = [(7, "road"), (12, "sidewalk"), (40, "car")];

fn coco_categories(colors: bool) -> serde_json::Value {
    serde_json::Value::Array(
        COCO_CATEGORIES
            .iter()
            .enumerate()
            .map(|(i, (id, name))| {
                let mut c = serde_json::json!({"id": id, "name": name, "supercategory": "x"});
                if colors {
                    c["color"] = serde_json::json!([40 * i + 10, 0, 200]);
                }
                c
            })
            .collect(),
    )
}

/// Column-major runs starting with background, as COCO's uncompressed RLE.
pub fn column_major_runs(m: &GrayImage, class: u8) -> Vec<u64> {
    let mut runs = Vec::new();
    let (mut value, mut count) = (false, 0u64);
    for x in 0..m.width() {
        for y in 0..m.height() {
            let on = m.get_pixel(x, y).0[0] == class;
            if on == value {
                count += 1;
            } else {
                runs.push(count);
                value = on;
                count = 1;
            }
        }
    }
    runs.push(count);
    runs
}

/// COCO panoptic: `annotations/panoptic_{train,val}.json` with PNGs of segment ids (two
/// segments per class, as instances would be), images in `{train,val}2017/`, plus one image
/// without annotations.
pub fn coco_panoptic(root: &Path) -> Fixture {
    let mut masks = Vec::new();
    for (split, range) in [("train", 0..2u32), ("val", 2..4)] {
        let mut images = Vec::new();
        let mut annotations = Vec::new();
        for i in range {
            let name = format!("{i:012}");
            save_rgb(
                &root.join(format!("{split}2017/{name}.jpg")),
                &photo(i, W, H),
            );
            images.push(serde_json::json!({"id": i, "file_name": format!("{name}.jpg"), "width": W, "height": H}));
            if i == 3 {
                continue;
            }
            let m = mask(i, 3, W, H);
            // Segment id: class * 1000 + 1 + (x < W/2): two segments per class.
            let segment = |x: u32, v: u8| v as u32 * 1000 + 1 + (x < W / 2) as u32;
            let png = image::RgbImage::from_fn(W, H, |x, y| {
                let v = m.get_pixel(x, y).0[0];
                let id = if v == IGNORE { 0 } else { segment(x, v) };
                image::Rgb([(id % 256) as u8, (id / 256 % 256) as u8, (id / 65536) as u8])
            });
            save_rgb(
                &root.join(format!("annotations/panoptic_{split}2017/{name}.png")),
                &png,
            );
            let mut segments = Vec::new();
            for v in 0..3u8 {
                for half in [0, W / 2] {
                    segments.push(serde_json::json!({"id": segment(half, v), "category_id": COCO_CATEGORIES[v as usize].0, "iscrowd": 0}));
                }
            }
            annotations.push(serde_json::json!({"image_id": i, "file_name": format!("{name}.png"), "segments_info": segments}));
            masks.push((name, m));
        }
        let json = serde_json::json!({"images": images, "annotations": annotations, "categories": coco_categories(true)});
        std::fs::write(
            root.join(format!("annotations/panoptic_{split}2017.json")),
            json.to_string(),
        )
        .unwrap();
    }
    Fixture {
        root: root.to_path_buf(),
        masks,
        classes: 3,
    }
}

/// COCO instances/stuff: uncompressed RLE counts for class 0 and 1, class 2 as polygons drawn
/// around each of its pixels (unit squares), all in `images/`, split by json name.
pub fn coco_instances(root: &Path) -> Fixture {
    let mut masks = Vec::new();
    for (split, range) in [("train", 0..3u32), ("val", 3..4)] {
        let mut images = Vec::new();
        let mut annotations = Vec::new();
        for i in range {
            let name = format!("street_{i}");
            save_rgb(&root.join(format!("images/{name}.png")), &photo(i, W, H));
            images.push(serde_json::json!({"id": i + 100, "file_name": format!("{name}.png"), "width": W, "height": H}));
            let m = mask(i, 3, W, H);
            for class in 0..2u8 {
                annotations.push(serde_json::json!({
                    "id": annotations.len() + 1, "image_id": i + 100,
                    "category_id": COCO_CATEGORIES[class as usize].0, "iscrowd": 1,
                    "segmentation": {"size": [H, W], "counts": column_major_runs(&m, class)},
                }));
            }
            let squares: Vec<Vec<f64>> = m
                .enumerate_pixels()
                .filter(|(_, _, p)| p.0[0] == 2)
                .map(|(x, y, _)| {
                    let (x, y) = (x as f64, y as f64);
                    vec![x, y, x + 1.0, y, x + 1.0, y + 1.0, x, y + 1.0]
                })
                .collect();
            annotations.push(serde_json::json!({
                "id": annotations.len() + 1, "image_id": i + 100,
                "category_id": COCO_CATEGORIES[2].0, "iscrowd": 0, "segmentation": squares,
            }));
            masks.push((name, m));
        }
        let json = serde_json::json!({"images": images, "annotations": annotations, "categories": coco_categories(false)});
        std::fs::create_dir_all(root.join("annotations")).unwrap();
        std::fs::write(
            root.join(format!("annotations/instances_{split}.json")),
            json.to_string(),
        )
        .unwrap();
    }
    Fixture {
        root: root.to_path_buf(),
        masks,
        classes: 3,
    }
}

/// Mapillary Vistas v1.2: config with an unlabeled label in the middle, palette labels.
pub fn vistas(root: &Path) -> Fixture {
    let labels = [
        ("construction--flat--road", [128, 64, 128]),
        ("void--unlabeled", [0, 0, 0]),
        ("marking--general", [255, 255, 255]),
        ("object--vehicle--car", [0, 0, 142]),
    ];
    let config = serde_json::json!({"labels": labels.iter().map(|(n, c)| serde_json::json!({"name": n, "readable": n, "color": c, "instances": false, "evaluate": true})).collect::<Vec<_>>()});
    std::fs::create_dir_all(root).unwrap();
    std::fs::write(root.join("config_v1.2.json"), config.to_string()).unwrap();
    let palette: Vec<[u8; 3]> = labels.iter().map(|l| l.1).collect();
    let mut masks = Vec::new();
    for (i, split) in ["training", "training", "validation"].iter().enumerate() {
        let name = format!("vistas{i}");
        save_rgb(
            &root.join(format!("{split}/images/{name}.jpg")),
            &photo(i as u32, W, H),
        );
        let m = mask(i as u32, 3, W, H);
        // Class ids 0, 1, 2 sit at config positions 0, 2, 3; ignore at 1.
        let positions = recode_gray(&m, |v| match v {
            0 => 0,
            IGNORE => 1,
            v => v + 1,
        });
        save_palette(
            &root.join(format!("{split}/labels/{name}.png")),
            &positions,
            &palette,
        );
        masks.push((name, m));
    }
    save_rgb(&root.join("testing/images/vistas9.jpg"), &photo(9, W, H));
    Fixture {
        root: root.to_path_buf(),
        masks,
        classes: 3,
    }
}

/// labelme: a json beside each image. Shapes: a rectangle for class 0 over the whole image,
/// class 1 as axis-aligned 4-point polygons around each of its pixels, class 2 as rectangle
/// shapes per pixel, ignore as `__ignore__` polygons; a line strip (no region) on top; one
/// image without a json.
pub fn labelme(root: &Path) -> Fixture {
    std::fs::create_dir_all(root).unwrap();
    let mut masks = Vec::new();
    let names = ["road", "sidewalk", "car"];
    for i in 0..4u32 {
        let name = format!("shot{i}");
        save_rgb(&root.join(format!("{name}.jpg")), &photo(i, W, H));
        if i == 3 {
            continue;
        }
        let m = mask(i, 3, W, H);
        let mut shapes = vec![
            serde_json::json!({"label": "road", "points": [[0.0, 0.0], [W as f64, H as f64]], "shape_type": "rectangle", "group_id": null, "flags": {}}),
        ];
        for (x, y, p) in m.enumerate_pixels() {
            let (fx, fy) = (x as f64, y as f64);
            let v = p.0[0];
            let label = if v == IGNORE {
                "__ignore__"
            } else {
                names[v as usize]
            };
            match v {
                0 => {}
                2 => shapes.push(serde_json::json!({"label": label, "points": [[fx, fy], [fx + 1.0, fy + 1.0]], "shape_type": "rectangle", "group_id": null, "flags": {}})),
                _ => shapes.push(serde_json::json!({"label": label, "points": [[fx, fy], [fx + 1.0, fy], [fx + 1.0, fy + 1.0], [fx, fy + 1.0]], "shape_type": "polygon", "group_id": null, "flags": {}})),
            }
        }
        shapes.push(serde_json::json!({"label": "car", "points": [[0.0, 0.0], [5.0, 5.0]], "shape_type": "linestrip", "group_id": null, "flags": {}}));
        let json = serde_json::json!({"version": "5.5.0", "flags": {}, "shapes": shapes, "imagePath": format!("{name}.jpg"), "imageData": null, "imageHeight": H, "imageWidth": W});
        std::fs::write(root.join(format!("{name}.json")), json.to_string()).unwrap();
        masks.push((name, m));
    }
    Fixture {
        root: root.to_path_buf(),
        masks,
        classes: 3,
    }
}

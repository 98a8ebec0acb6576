//! Which layout a folder holds, from its tell-tale files and folders.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::DatasetError;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Format {
    /// roadseg's own: images/, masks/ (index PNG), classes.json, optional splits.json.
    #[serde(rename = "native")]
    Native,
    /// CamVid with colour labels: the Kaggle copy (class_dict.csv) or the original release
    /// (label_colors.txt).
    #[serde(rename = "camvid")]
    Camvid,
    /// SegNet's 11-class CamVid with index annotations.
    #[serde(rename = "camvid11")]
    Camvid11,
    #[serde(rename = "kitti-road")]
    KittiRoad,
    #[serde(rename = "cityscapes")]
    Cityscapes,
    /// BDD100K's semantic segmentation (19 Cityscapes train ids), with its drivable-area maps
    /// where present.
    #[serde(rename = "bdd100k")]
    Bdd100k,
    /// Pascal VOC segmentation, and CVAT's / datumaro's "Segmentation mask 1.1" (VOC with a
    /// labelmap.txt).
    #[serde(rename = "voc")]
    Voc,
    /// COCO annotations: panoptic PNGs, or RLE and polygons in instances/stuff jsons.
    #[serde(rename = "coco")]
    Coco,
    /// Mapillary Vistas v1.2 and v2.0.
    #[serde(rename = "vistas")]
    Vistas,
    /// labelme: one json of shapes per image.
    #[serde(rename = "labelme")]
    Labelme,
}

impl Format {
    pub const ALL: [Format; 10] = [
        Format::Native,
        Format::Camvid,
        Format::Camvid11,
        Format::KittiRoad,
        Format::Cityscapes,
        Format::Bdd100k,
        Format::Voc,
        Format::Coco,
        Format::Vistas,
        Format::Labelme,
    ];

    /// Layouts `convert --to` writes.
    pub const WRITABLE: [Format; 5] = [
        Format::Native,
        Format::Voc,
        Format::Coco,
        Format::Labelme,
        Format::Cityscapes,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Native => "native",
            Format::Camvid => "camvid",
            Format::Camvid11 => "camvid11",
            Format::KittiRoad => "kitti-road",
            Format::Cityscapes => "cityscapes",
            Format::Bdd100k => "bdd100k",
            Format::Voc => "voc",
            Format::Coco => "coco",
            Format::Vistas => "vistas",
            Format::Labelme => "labelme",
        }
    }

    /// What [`detect`] looks for, as a user would check it.
    pub fn tell_tale(self) -> &'static str {
        match self {
            Format::Native => "images/ with masks/ and classes.json",
            Format::Camvid => "class_dict.csv or label_colors.txt with *_L.png labels",
            Format::Camvid11 => "trainannot/, valannot/ or testannot/",
            Format::KittiRoad => "training/image_2/ with training/gt_image_2/",
            Format::Cityscapes => "leftImg8bit/ with gtFine/",
            Format::Bdd100k => "images/10k/ or labels/sem_seg/masks/",
            Format::Voc => "SegmentationClass/ or labelmap.txt, with JPEGImages/",
            Format::Coco => "annotations/*.json",
            Format::Vistas => "config_v1.2.json or config_v2.0.json",
            Format::Labelme => "*.json files with shapes beside their images",
        }
    }

    /// Every layout with its tell-tale, for messages: "native (images/ ...), camvid (...)".
    pub fn layouts() -> String {
        Format::ALL
            .iter()
            .map(|f| format!("{f} ({})", f.tell_tale()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.to_ascii_lowercase().replace('_', "-");
        Format::ALL
            .into_iter()
            .find(|f| {
                f.as_str() == wanted
                    || (wanted == "kitti" && *f == Format::KittiRoad)
                    || (wanted == "cvat" && *f == Format::Voc)
                    || (wanted == "mapillary" && *f == Format::Vistas)
            })
            .ok_or_else(|| {
                let names: Vec<_> = Format::ALL.iter().map(|f| f.as_str()).collect();
                format!("unknown format {s:?} (one of: {})", names.join(", "))
            })
    }
}

/// Detects the layout of `root`.
pub fn detect(root: &Path) -> Result<Format, DatasetError> {
    check_folder(root)?;
    let has = |p: &str| root.join(p).exists();
    let format = if has("classes.json") || (has("images") && has("masks")) {
        Format::Native
    } else if super::formats::bdd100k::detect(root) {
        // Before the bare `images` fallback below: BDD100K keeps its images there too.
        Format::Bdd100k
    } else if has("leftImg8bit") {
        Format::Cityscapes
    } else if has("training/image_2") || has("training/gt_image_2") || has("testing/image_2") {
        Format::KittiRoad
    } else if has("trainannot") || has("valannot") || has("testannot") {
        Format::Camvid11
    } else if has("config_v1.2.json") || has("config_v2.0.json") {
        Format::Vistas
    } else if has("SegmentationClass") || has("labelmap.txt") {
        Format::Voc
    } else if super::formats::coco::detect(root) {
        Format::Coco
    } else if has("class_dict.csv")
        || has("train_labels")
        || has("label_colors.txt")
        || has_colour_labels(root)
    {
        Format::Camvid
    } else if super::formats::labelme::detect(root) {
        Format::Labelme
    } else if has("images") {
        // A folder of images with nothing painted yet is a native dataset in the making.
        Format::Native
    } else {
        return Err(DatasetError::UnknownLayout {
            dir: root.to_path_buf(),
        });
    };
    Ok(format)
}

/// `root` must be a folder: a file or a missing path is named as such, whatever the layout.
pub fn check_folder(root: &Path) -> Result<(), DatasetError> {
    if root.is_dir() {
        Ok(())
    } else if root.exists() {
        Err(DatasetError::NotAFolder(root.to_path_buf()))
    } else {
        Err(DatasetError::NotFound(root.to_path_buf()))
    }
}

/// Original CamVid: `*_L.png` colour labels somewhere in the top two levels.
fn has_colour_labels(root: &Path) -> bool {
    let is_label = |p: &Path| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with("_L.png"))
    };
    let Ok(entries) = std::fs::read_dir(root) else {
        return false;
    };
    entries.flatten().any(|e| {
        let p = e.path();
        is_label(&p)
            || (p.is_dir()
                && std::fs::read_dir(&p)
                    .map(|d| d.flatten().any(|e| is_label(&e.path())))
                    .unwrap_or(false))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names() {
        assert_eq!("KITTI".parse::<Format>(), Ok(Format::KittiRoad));
        assert_eq!("kitti_road".parse::<Format>(), Ok(Format::KittiRoad));
        assert_eq!("camvid11".parse::<Format>(), Ok(Format::Camvid11));
        assert_eq!("VOC".parse::<Format>(), Ok(Format::Voc));
        assert_eq!("cvat".parse::<Format>(), Ok(Format::Voc));
        assert!("yolo".parse::<Format>().unwrap_err().contains("labelme"));
    }

    #[test]
    fn detects_from_tell_tale_folders() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        assert!(matches!(
            detect(root),
            Err(DatasetError::UnknownLayout { .. })
        ));
        std::fs::create_dir_all(root.join("trainannot")).unwrap();
        assert_eq!(detect(root).unwrap(), Format::Camvid11);
        std::fs::create_dir_all(root.join("leftImg8bit")).unwrap();
        assert_eq!(detect(root).unwrap(), Format::Cityscapes);
        let bdd = root.join("bdd");
        std::fs::create_dir_all(bdd.join("images/10k/val")).unwrap();
        assert_eq!(detect(&bdd).unwrap(), Format::Bdd100k);
        assert_eq!("BDD100K".parse::<Format>(), Ok(Format::Bdd100k));
        assert!(matches!(
            detect(&root.join("missing")),
            Err(DatasetError::NotFound(_))
        ));
        let file = root.join("classes.json");
        std::fs::write(&file, "[]").unwrap();
        let err = detect(&file).unwrap_err();
        assert!(matches!(err, DatasetError::NotAFolder(_)), "{err}");
        assert!(err.to_string().contains("is a file, not a folder"), "{err}");
    }

    #[test]
    fn unknown_layout_lists_every_layout() {
        let err = DatasetError::UnknownLayout { dir: "d".into() }.to_string();
        for format in Format::ALL {
            assert!(
                err.contains(&format!("{format} (")),
                "{format} missing: {err}"
            );
        }
    }
}

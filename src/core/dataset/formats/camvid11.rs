//! SegNet's CamVid copy: `train/ trainannot/ val/ valannot/ test/ testannot/`, 8-bit index
//! annotations with the same file name as the image; 11 classes, index 11 = ignore.

use std::path::Path;
use std::sync::Arc;

use super::{file_name, list_images, stem};
use crate::core::dataset::{
    ClassTable, DatasetError, DatasetIndex, Format, IGNORE, LabelEncoding, Problem, Sample, Split,
};

/// The 11 SegNet classes with their usual display colours.
pub const CLASSES: [(&str, [u8; 3]); 11] = [
    ("Sky", [128, 128, 128]),
    ("Building", [128, 0, 0]),
    ("Pole", [192, 192, 128]),
    ("Road", [128, 64, 128]),
    ("Pavement", [60, 40, 222]),
    ("Tree", [128, 128, 0]),
    ("SignSymbol", [192, 128, 128]),
    ("Fence", [64, 64, 128]),
    ("Car", [64, 0, 128]),
    ("Pedestrian", [64, 64, 0]),
    ("Bicyclist", [0, 128, 192]),
];

/// Annotation value that SegNet uses for unlabelled pixels.
pub const VOID: u8 = 11;

pub fn scan(root: &Path) -> Result<DatasetIndex, DatasetError> {
    let classes = ClassTable::from_pairs(CLASSES);
    let mut lut = [None; 256];
    for (id, entry) in lut.iter_mut().enumerate().take(CLASSES.len()) {
        *entry = Some(id as u8);
    }
    lut[VOID as usize] = Some(IGNORE);

    let mut samples = Vec::new();
    let mut problems = Vec::new();
    for split in Split::ALL {
        let images_dir = root.join(split.as_str());
        let annot_dir = root.join(format!("{}annot", split.as_str()));
        let images = list_images(&images_dir)?;
        for image in &images {
            let label = annot_dir.join(file_name(image));
            let label = if label.is_file() {
                Some(label)
            } else {
                problems.push(Problem::new(
                    image,
                    format!("no annotation (expected {})", label.display()),
                ));
                None
            };
            samples.push(Sample {
                name: stem(image),
                image: image.clone(),
                label,
                split,
            });
        }
        for annot in list_images(&annot_dir)? {
            if !images_dir.join(file_name(&annot)).is_file() {
                problems.push(Problem::new(&annot, "annotation has no image"));
            }
        }
    }
    Ok(DatasetIndex {
        root: root.to_path_buf(),
        format: Format::Camvid11,
        classes,
        encoding: LabelEncoding::Index { lut: Arc::new(lut) },
        samples,
        problems,
    })
}

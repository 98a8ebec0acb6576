//! Labels made in other tools, in the studio: a Pascal VOC folder opens view only with its
//! classes and converts to native; File > Export labels as writes the open dataset in another
//! layout in the background and says where.

use std::path::Path;
use std::time::Duration;

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use roadseg::core::dataset::Format;
use roadseg::studio::Studio;

use crate::support::{harness_sized, settle, wait_for};

fn harness(data: &Path) -> Harness<'static, Studio> {
    // The default window size.
    harness_sized(data, 1280.0, 800.0)
}

#[test]
fn a_voc_folder_opens_view_only_with_its_classes_and_converts_to_native() {
    let tmp = tempfile::tempdir().unwrap();
    let fixture = crate::common::voc(&tmp.path().join("voc"));
    let before = crate::common::snapshot(&fixture.root);
    let mut harness = harness(&fixture.root);
    let session = harness
        .state()
        .session
        .as_ref()
        .expect("the VOC folder opened");
    assert_eq!(session.format, Format::Voc);
    assert!(!session.editable(), "published layouts are view only");
    assert_eq!(session.classes.len(), 21);
    assert_eq!(session.classes.0[15].name, "person");
    assert_eq!(session.entries.len(), 4);
    // The open image shows its VOC mask, decoded from the palette.
    let name = harness.state().selected_name().unwrap().to_string();
    if let Some((_, expected)) = fixture.masks.iter().find(|(n, _)| *n == name) {
        let shown = crate::support::mask(&harness);
        assert_eq!(shown.data, expected.as_raw().clone(), "{name}");
    }

    harness
        .get_by_label("Convert to native to label...")
        .click();
    crate::support::accept_destination(&mut harness, "Convert");
    settle(&mut harness);
    let native = tmp.path().join("voc-native");
    let session = harness.state().session.as_ref().unwrap();
    assert_eq!(session.root, native);
    assert!(session.editable());
    assert_eq!(session.classes.len(), 21);
    for (name, expected) in &fixture.masks {
        let converted = image::open(native.join(format!("masks/{name}.png")))
            .unwrap()
            .into_luma8();
        assert_eq!(&converted, expected, "{name}");
    }
    assert!(
        crate::common::snapshot(&fixture.root) == before,
        "the VOC folder is untouched"
    );
}

#[test]
fn export_labels_as_writes_the_dataset_in_another_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let fixture = crate::common::native(&tmp.path().join("streets"));
    let mut harness = harness(&fixture.root);
    harness.get_by_label("File").click();
    harness.run_steps(2);
    harness.get_by_label("Export labels as...").click();
    harness.run_steps(2);
    harness.get_by_label("coco").click();
    crate::support::accept_destination(&mut harness, "Export");
    wait_for(
        &mut harness,
        "the labels export",
        Duration::from_secs(30),
        |s| s.labels_export.is_none(),
    );
    harness.run_steps(1);
    let out = tmp.path().join("streets-coco");
    let (message, error) = harness.state().message.clone().unwrap();
    assert!(!error, "{message}");
    assert!(
        message.contains("exported labels as coco") && message.contains("3 masks"),
        "{message}"
    );
    assert!(
        out.join("annotations/panoptic_train.json").is_file()
            || out.join("annotations/panoptic_val.json").is_file()
    );
    // The export reads back with the same masks.
    let index = roadseg::core::dataset::DatasetIndex::open(&out, None).unwrap();
    assert_eq!(index.format, Format::Coco);
    for (name, expected) in &fixture.masks {
        let sample = index.samples.iter().find(|s| &s.name == name).unwrap();
        let mask = index.load_mask(sample).unwrap().unwrap();
        assert_eq!(mask.data, expected.as_raw().clone(), "{name}");
    }
}

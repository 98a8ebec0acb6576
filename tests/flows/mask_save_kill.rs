//! A process killed while saving a mask never leaves a torn mask: the file on disk is always
//! the old or the new version, complete. The test re-runs its own binary as the child that
//! saves in a loop, and kills it at varying moments.

use std::path::Path;
use std::process::Command;

use std::time::Duration;

use roadseg::core::mask::Mask;
use roadseg::core::paint::MaskDocument;

const SIZE: u32 = 1024;
const CHILD_ENV: &str = "ROADSEG_SAVE_LOOP_PATH";

/// The child: alternately fills the whole mask with 1 and 2 and saves, until killed.
#[test]
#[ignore = "run by killing_a_save_never_tears_the_mask as its child process"]
fn save_loop_child() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let mut doc = MaskDocument::open(Path::new(&path), SIZE, SIZE).unwrap();
    for i in 0u64.. {
        let value = 1 + (i % 2) as u8;
        doc.polygon_fill(
            &[
                [0.0, 0.0],
                [SIZE as f32, 0.0],
                [SIZE as f32, SIZE as f32],
                [0.0, SIZE as f32],
            ],
            value,
        );
        doc.save().unwrap();
    }
}

fn uniform_value(path: &Path) -> u8 {
    let mask = Mask::from_gray_image(
        image::open(path)
            .unwrap_or_else(|e| panic!("{} is torn: {e}", path.display()))
            .into_luma8(),
    );
    assert_eq!((mask.width, mask.height), (SIZE, SIZE));
    let first = mask.data[0];
    assert!(
        mask.data.iter().all(|&v| v == first),
        "mask mixes two versions"
    );
    first
}

#[test]
fn killing_a_save_never_tears_the_mask() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("masks/road.png");
    let mut doc = MaskDocument::open(&path, SIZE, SIZE).unwrap();
    doc.stroke([1.0, 1.0], [1.0, 1.0], 0.5, 0);
    doc.polygon_fill(
        &[
            [0.0, 0.0],
            [SIZE as f32, 0.0],
            [SIZE as f32, SIZE as f32],
            [0.0, SIZE as f32],
        ],
        0,
    );
    doc.save().unwrap();

    // The child's test name as the harness filters it: this module's path without the crate.
    let module = module_path!().split_once("::").map_or("", |(_, m)| m);
    let child_test = format!("{module}::save_loop_child");
    let mut seen = std::collections::BTreeSet::new();
    for round in 0..8u64 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([child_test.as_str(), "--exact", "--ignored", "--quiet"])
            .env(CHILD_ENV, &path)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Varying delays land the kill in different phases of a save.
        std::thread::sleep(Duration::from_millis(150 + round * 37));
        child.kill().unwrap();
        child.wait().unwrap();
        seen.insert(uniform_value(&path));
    }
    assert!(
        seen.iter().any(|&v| v != 0),
        "the child never completed a save: {seen:?}"
    );
}

//! Fuzzing the clicks file of `roadseg assist` (see `tests/fuzz/mod.rs` for the properties and
//! knobs): lists of clicks written as JSON, with values swapped for hostile ones (negative, huge,
//! fractional, strings, nulls, missing or extra fields) and bytes damaged, and arbitrary text.
//! Every case goes through what the command does: the reader, then click-to-segment on an image
//! the clicks may or may not fit.

use crate::fuzz;

use std::sync::OnceLock;

use fuzz::{apply, assert_names, damage, peak_of, text};
use image::{Rgb, RgbImage};
use proptest::prelude::*;
use roadseg::core::assist::clicks::{MAX_CLICKS_FILE, read_clicks};
use roadseg::core::assist::{AssistError, Click, Prepared, Session};
use serde_json::{Value, json};

/// Cases per target in CI: a case reads a small file and runs a few clicks on a tiny image.
const CASES: u32 = 1_000;

/// The image the clicks are applied to.
const SIZE: [u32; 2] = [40, 30];

/// What reading a clicks file may hold: the file (at most [`MAX_CLICKS_FILE`]) and the clicks
/// parsed from it.
const READ_BOUND: u64 = 8 * MAX_CLICKS_FILE;

fn prepared() -> &'static Prepared {
    static PREPARED: OnceLock<Prepared> = OnceLock::new();
    PREPARED.get_or_init(|| {
        // Two flat halves with a little texture, so the cut has an edge to find.
        let image = RgbImage::from_fn(SIZE[0], SIZE[1], |x, y| {
            let t = ((x * 7 + y * 13) % 5) as u8;
            match x < SIZE[0] / 2 {
                true => Rgb([90 + t, 90 + t, 95 + t]),
                false => Rgb([200 - t, 60 + t, 60]),
            }
        });
        Prepared::new(&image)
    })
}

/// A value a field could be given.
fn hostile() -> impl Strategy<Value = Value> {
    prop_oneof![
        (0..SIZE[0] as i64 + 3).prop_map(|v| json!(v)),
        any::<i64>().prop_map(|v| json!(v)),
        Just(json!(u64::MAX)),
        Just(json!(1e300)),
        (-5.0..50.0f64).prop_map(|v| json!(v)),
        any::<bool>().prop_map(|v| json!(v)),
        Just(Value::Null),
        text(12).prop_map(Value::String),
        Just(json!([1, 2])),
        Just(json!({"x": 1})),
    ]
}

/// One click as JSON: mostly well-formed, sometimes with a field changed, dropped or added.
fn click() -> impl Strategy<Value = Value> {
    (
        0..SIZE[0] + 2,
        0..SIZE[1] + 2,
        any::<bool>(),
        prop::option::weighted(0.3, (0..4usize, hostile())),
    )
        .prop_map(|(x, y, positive, change)| {
            let mut c = json!({"x": x, "y": y, "positive": positive});
            if let Some((field, value)) = change {
                let map = c.as_object_mut().unwrap();
                match field {
                    0 => map.insert("x".into(), value),
                    1 => map.insert("y".into(), value),
                    2 => map.insert("positive".into(), value),
                    _ => map.insert("note".into(), value),
                };
                if let Some(Value::Null) = map.get("positive") {
                    map.remove("positive");
                }
            }
            c
        })
}

/// The file's bytes: a list of clicks (or something else in its place), maybe damaged, or text.
fn clicks_file() -> impl Strategy<Value = Vec<u8>> {
    let list = (proptest::collection::vec(click(), 0..8), damage())
        .prop_map(|(clicks, d)| apply(serde_json::to_vec(&clicks).unwrap(), &d));
    let other = hostile().prop_map(|v| serde_json::to_vec(&v).unwrap());
    prop_oneof![
        6 => list,
        1 => other,
        1 => text(200).prop_map(String::into_bytes),
    ]
}

/// What click-to-segment must answer for `clicks` on the [`SIZE`] image.
fn expected_error(clicks: &[Click]) -> Option<AssistError> {
    let outside = clicks
        .iter()
        .enumerate()
        .find(|(_, c)| c.x >= SIZE[0] || c.y >= SIZE[1]);
    if let Some((index, c)) = outside {
        return Some(AssistError::ClickOutside {
            index,
            x: c.x,
            y: c.y,
            width: SIZE[0],
            height: SIZE[1],
        });
    }
    (!clicks.iter().any(|c| c.positive)).then_some(AssistError::NoPositiveClick)
}

proptest! {
    #![proptest_config(fuzz::config(CASES))]

    #[test]
    fn clicks_files(bytes in clicks_file()) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clicks.json");
        std::fs::write(&path, &bytes).unwrap();
        let (read, peak) = peak_of(|| read_clicks(&path));
        prop_assert!(peak <= READ_BOUND, "reading held {peak} bytes");
        let clicks = match read {
            Ok(clicks) => clicks,
            Err(e) => {
                assert_names(&e.to_string(), &path);
                return Ok(());
            }
        };
        prop_assert!(!clicks.is_empty());
        let mut session = Session::new();
        match (session.region(prepared(), &clicks, None, &Default::default()), expected_error(&clicks)) {
            (Ok(region), None) => {
                prop_assert_eq!([region.width, region.height], SIZE);
                prop_assert!(region.data.iter().all(|&v| v <= 1));
                // With no negative click after it, the last positive click's pixel is in.
                let last = clicks.iter().rposition(|c| c.positive).unwrap();
                if clicks[last..].iter().all(|c| c.positive) {
                    prop_assert_eq!(region.get(clicks[last].x, clicks[last].y), 1);
                }
            }
            (Err(got), Some(want)) => prop_assert_eq!(got, want),
            (got, want) => prop_assert!(false, "got {got:?}, expected {want:?}"),
        }
    }
}

#![cfg(feature = "gui")]
//! Click-to-segment and the superpixel brush as a user meets them: pick the tool, click on the
//! road, see the candidate, refine it, commit it with Enter, take it back with Ctrl+Z.

use std::path::{Path, PathBuf};
use std::time::Duration;

use egui::{Event, Key, Modifiers, PointerButton, Pos2};
use egui_kittest::Harness;
use roadseg::core::dataset::IGNORE;
use roadseg::core::dataset::sample::{ROAD, SampleConfig, generate};
use roadseg::core::mask::Mask;
use roadseg::studio::Studio;
use roadseg::studio::canvas::Tool;

use crate::support::{mask, settle, wait_for};

/// An unlabelled copy of the sample, and the first image's true mask.
fn sample(dir: &Path) -> (PathBuf, Mask) {
    let data = dir.join("data");
    generate(
        &data,
        &SampleConfig {
            count: 2,
            seed: 4,
            width: 240,
            height: 160,
            ..Default::default()
        },
    )
    .unwrap();
    let truth_path = data.join("masks/road_0000.png");
    let truth = Mask::from_gray_image(image::open(&truth_path).unwrap().into_luma8());
    std::fs::remove_dir_all(data.join("masks")).unwrap();
    std::fs::create_dir(data.join("masks")).unwrap();
    (data, truth)
}

/// The pixel of `class` with the most pixels of the class around it (a 15x15 window).
fn inside(truth: &Mask, class: u8) -> [u32; 2] {
    let mut best = ([0, 0], 0);
    for y in 7..truth.height - 7 {
        for x in 7..truth.width - 7 {
            if truth.get(x, y) != class {
                continue;
            }
            let n = (y - 7..=y + 7)
                .flat_map(|yy| (x - 7..=x + 7).map(move |xx| (xx, yy)))
                .filter(|&(xx, yy)| truth.get(xx, yy) == class)
                .count();
            if n > best.1 {
                best = ([x, y], n);
            }
        }
    }
    best.0
}

fn screen(harness: &Harness<'_, Studio>, p: [u32; 2]) -> Pos2 {
    harness
        .state()
        .canvas
        .image_to_screen([p[0] as f32 + 0.5, p[1] as f32 + 0.5])
}

fn click(harness: &mut Harness<'_, Studio>, p: [u32; 2], button: PointerButton) {
    let pos = screen(harness, p);
    harness.hover_at(pos);
    harness.step();
    for pressed in [true, false] {
        harness.event(Event::PointerButton {
            pos,
            button,
            pressed,
            modifiers: Modifiers::NONE,
        });
        harness.step();
    }
    harness.run_steps(2);
}

fn count(mask: &Mask, value: u8) -> usize {
    mask.data.iter().filter(|&&v| v == value).count()
}

#[test]
fn clicks_make_a_candidate_that_enter_commits_and_undo_takes_back() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, truth) = sample(tmp.path());
    let mut harness = crate::support::harness_sized(&data, 1100.0, 700.0);
    assert_eq!(harness.state().selected_name(), Some("road_0000"));
    harness.key_press(Key::Num1); // road
    harness.key_press(Key::Q);
    harness.run_steps(1);
    assert_eq!(harness.state().state.tool, Tool::SmartRegion);
    wait_for(
        &mut harness,
        "the image's superpixels",
        Duration::from_secs(20),
        |s| s.canvas.smart_ready(),
    );

    let road = inside(&truth, ROAD);
    click(&mut harness, road, PointerButton::Primary);
    let candidate = harness
        .state()
        .canvas
        .smart_candidate()
        .expect("a candidate after one click")
        .clone();
    assert_eq!(
        candidate.get(road[0], road[1]),
        1,
        "the clicked pixel is in it"
    );
    assert!(
        count(&mask(&harness), IGNORE) == truth.data.len(),
        "nothing is written before Enter"
    );
    // A right click outside adds a negative click; Backspace takes it away again.
    let sky = inside(&truth, roadseg::core::dataset::sample::SKY);
    click(&mut harness, sky, PointerButton::Secondary);
    let clicks = harness.state().canvas.smart_clicks().to_vec();
    assert_eq!(clicks.len(), 2);
    assert!(clicks[0].positive && !clicks[1].positive);
    harness.key_press(Key::Backspace);
    harness.run_steps(1);
    assert_eq!(harness.state().canvas.smart_clicks().len(), 1);
    assert_eq!(harness.state().canvas.smart_candidate(), Some(&candidate));

    harness.key_press(Key::Enter);
    harness.run_steps(2);
    let painted = mask(&harness);
    assert!(
        harness.state().canvas.smart_clicks().is_empty(),
        "committed"
    );
    assert_eq!(
        count(&painted, ROAD),
        count(&candidate, 1),
        "the candidate, as road"
    );
    let hits = painted
        .data
        .iter()
        .zip(&truth.data)
        .filter(|(p, t)| **p == ROAD && **t == ROAD)
        .count();
    assert!(
        hits as f64 > 0.8 * count(&painted, ROAD) as f64,
        "most of the region is really road: {hits} of {}",
        count(&painted, ROAD)
    );

    harness.key_press_modifiers(Modifiers::COMMAND, Key::Z);
    harness.run_steps(2);
    assert_eq!(
        count(&mask(&harness), IGNORE),
        truth.data.len(),
        "one undo step"
    );

    // Esc drops the clicks without writing.
    click(&mut harness, road, PointerButton::Primary);
    assert!(harness.state().canvas.smart_candidate().is_some());
    harness.key_press(Key::Escape);
    harness.run_steps(1);
    assert!(harness.state().canvas.smart_candidate().is_none());
    assert_eq!(count(&mask(&harness), IGNORE), truth.data.len());
}

#[test]
fn the_superpixel_brush_paints_whole_superpixels() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, truth) = sample(tmp.path());
    let mut harness = crate::support::harness_sized(&data, 1100.0, 700.0);
    harness.key_press(Key::Num1);
    harness.key_press(Key::U);
    harness.state_mut().state.brush_radius = 1.0;
    harness.state_mut().state.superpixel_size = 12;
    harness.run_steps(1);
    wait_for(
        &mut harness,
        "the brush's superpixels",
        Duration::from_secs(20),
        |s| s.canvas.superpixels_ready(12),
    );
    let road = inside(&truth, ROAD);
    let pos = screen(&harness, road);
    harness.hover_at(pos);
    harness.step();
    harness.drag_at(pos);
    harness.step();
    harness.drop_at(pos);
    harness.run_steps(2);
    settle(&mut harness);
    let painted = count(&mask(&harness), ROAD);
    // A dab of radius 1 covers about 4 pixels; a superpixel of size 12 about 144.
    assert!(painted > 40, "whole superpixels: {painted} pixels");
    harness.key_press_modifiers(Modifiers::COMMAND, Key::Z);
    harness.run_steps(2);
    assert_eq!(count(&mask(&harness), ROAD), 0);
}

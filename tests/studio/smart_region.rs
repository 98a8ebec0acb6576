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

/// The candidate shown after a click.
fn candidate(harness: &Harness<'_, Studio>) -> Mask {
    let canvas = &harness.state().canvas;
    canvas
        .smart_candidate()
        .expect("a candidate after a click")
        .clone()
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
    let candidate = candidate(&harness);
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

/// The pixels outside `region` that no path outside it joins to the image's border.
fn holes(region: &Mask) -> usize {
    let (w, h) = (region.width as usize, region.height as usize);
    let mut reached = vec![false; w * h];
    let border: Vec<usize> = (0..w * h)
        .filter(|&i| {
            let (x, y) = (i % w, i / w);
            (x == 0 || y == 0 || x + 1 == w || y + 1 == h) && region.data[i] == 0
        })
        .collect();
    border.iter().for_each(|&i| reached[i] = true);
    roadseg::core::flood::flood4(
        w,
        h,
        &border,
        |j| {
            let join = !reached[j] && region.data[j] == 0;
            reached[j] |= join;
            join
        },
        |_| {},
    );
    (0..w * h)
        .filter(|&i| region.data[i] == 0 && !reached[i])
        .count()
}

#[test]
fn a_vehicle_region_takes_its_windows_and_wheels() {
    use roadseg::core::assist::{Click, Params, Prepared, smart_region_with};
    use roadseg::core::dataset::sample::VEHICLE;

    let tmp = tempfile::tempdir().unwrap();
    let (data, truth) = sample(tmp.path());
    let mut harness = crate::support::harness_sized(&data, 1100.0, 700.0);
    harness.key_press(Key::Num6); // vehicle
    harness.key_press(Key::Q);
    harness.run_steps(1);
    wait_for(
        &mut harness,
        "the image's superpixels",
        Duration::from_secs(20),
        |s| s.canvas.smart_ready(),
    );
    // A click on the body (the vehicle's commonest colour), as a person would, so the windows
    // and lights it surrounds are the holes.
    let image = harness.state().canvas.image().unwrap().clone();
    let pixels: Vec<[u32; 2]> = (0..truth.height)
        .flat_map(|y| (0..truth.width).map(move |x| [x, y]))
        .filter(|&[x, y]| truth.get(x, y) == VEHICLE)
        .collect();
    let median = |c: usize| {
        let mut v: Vec<u8> = pixels
            .iter()
            .map(|&[x, y]| image.get_pixel(x, y)[c])
            .collect();
        v.sort_unstable();
        v[v.len() / 2] as i32
    };
    let body = [median(0), median(1), median(2)];
    let deep = inside(&truth, VEHICLE);
    let car = *pixels
        .iter()
        .min_by_key(|&&[x, y]| {
            let p = image.get_pixel(x, y);
            let colour: i32 = (0..3).map(|c| (p[c] as i32 - body[c]).abs()).sum();
            let distance = (x as i32 - deep[0] as i32).abs() + (y as i32 - deep[1] as i32).abs();
            colour * 4 + distance
        })
        .unwrap();
    click(&mut harness, car, PointerButton::Primary);
    let candidate = candidate(&harness);
    // The same click by the core function, holes open and filled: the studio fills them for
    // a vehicle, and on this car there is a hole to fill (its window or lights).
    let prepared = Prepared::new(&image);
    let clicks = [Click {
        x: car[0],
        y: car[1],
        positive: true,
    }];
    let open = smart_region_with(&prepared, &clicks, None, &Params::default()).unwrap();
    let filled =
        smart_region_with(&prepared, &clicks, None, &Params::for_class("vehicle")).unwrap();
    assert!(
        holes(&open) > 0,
        "the colours alone leave a hole in this car"
    );
    assert_eq!(holes(&filled), 0);
    assert_eq!(candidate, filled, "the studio fills a vehicle's holes");
}

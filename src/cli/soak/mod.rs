//! `roadseg bench --soak`: an hour of studio use, scripted and compressed in time, measuring
//! resident memory as it goes; `roadseg bench --soak-kills N`: N such sessions killed with
//! SIGKILL at random moments, each checked for lost strokes and unreadable masks.
//!
//! The simulated user ([`driver`]) paints a stroke every 1-3 s, changes page every 10-20 s,
//! switches class every 30-90 s, undoes 3-10 strokes every 3-7 min; the hour also holds a Full
//! training run paused for two minutes, resumed and stopped, a Quick run to the end, and two
//! dataset switches. Time runs `--speed` times faster than the wall clock, autosave included
//! (its 10 s become 10 s / speed), so strokes lost to a kill are counted in the same units as
//! for a person. Training runs at the machine's real speed.

mod driver;
mod verify;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use driver::{Activity, Driver};
use roadseg::core::dataset::sample::{SampleConfig, generate};
use roadseg::core::device::DeviceChoice;
use roadseg::core::memory::resident_bytes;
use roadseg::core::rng::Rng;
use roadseg::core::train::run_check::{Broken, check};
use roadseg::core::train::run_dir::{RunDir, RunDirError};
use roadseg::studio::Studio;
use roadseg::studio::app::{AUTOSAVE_INTERVAL, Command as StudioCommand};
use roadseg::studio::panels::training::{Preset, RunState};
use roadseg::studio::state::PersistedState;

/// The soak's flags; those of the other benchmarks are refused with them (see `bench::Args`).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Run the scripted studio session and report resident memory over it.
    #[arg(long, group = "soaking", conflicts_with_all = SOLO)]
    soak: bool,
    /// Kill this many scripted sessions at random moments and check what each left on disk.
    #[arg(long, value_name = "N", group = "soaking", value_parser = super::parse_count,
        conflicts_with_all = SOLO)]
    soak_kills: Option<usize>,
    /// Length of the soak session in simulated minutes.
    #[arg(long, default_value_t = 60.0, value_parser = super::parse_positive,
        requires = "soak")]
    minutes: f64,
    /// How much faster than real time the user acts (autosave scaled alike).
    #[arg(long, default_value_t = 10.0, value_parser = super::parse_positive,
        requires = "soaking")]
    speed: f64,
    /// Seed of the script.
    #[arg(long, default_value_t = 1, requires = "soaking")]
    seed: u64,
    /// Image size of the soak's two datasets (40 images each).
    #[arg(long, default_value = "480x360", value_parser = super::parse_size,
        requires = "soak")]
    soak_size: [u32; 2],
    /// Working folder (default: a fresh one under the system's temp folder).
    #[arg(long, requires = "soaking")]
    soak_dir: Option<PathBuf>,
    /// Internal: run one killable session in this folder (the child of --soak-kills).
    #[arg(long, hide = true, group = "soaking")]
    soak_child: Option<PathBuf>,
}

/// The other benchmarks' flags, which a soak would ignore.
const SOLO: [&str; 13] = [
    "paint",
    "studio",
    "train",
    "model",
    "data",
    "size",
    "batch_size",
    "workers",
    "batches",
    "compare",
    "runs",
    "device",
    "assist",
];

impl Args {
    pub fn wanted(&self) -> bool {
        self.soak || self.soak_kills.is_some() || self.soak_child.is_some()
    }
}

pub fn run(args: &Args, json: bool) -> anyhow::Result<()> {
    roadseg::studio::leave_a_core_for_the_ui();
    anyhow::ensure!(args.speed > 0.0, "--speed must be positive");
    if let Some(dir) = &args.soak_child {
        return child(dir, args);
    }
    let dir = match &args.soak_dir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!("roadseg-soak-{}", std::process::id())),
    };
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let result = match args.soak_kills {
        Some(kills) => kill_sessions(&dir, args, kills, json),
        None => memory_soak(&dir, args, json),
    };
    if args.soak_dir.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

/// When the simulated user does what next, in simulated seconds.
struct Script {
    rng: Rng,
    stroke: f64,
    page: f64,
    class: f64,
    undo: f64,
    /// Seconds between class switches and between undo bursts.
    class_every: (f32, f32),
    undo_every: (f32, f32),
}

impl Script {
    /// The hour's pace; `busy` packs class switches (every 10-30 s) and undo bursts (every
    /// 20-60 s) into the short sessions that get killed, so kills also land after those.
    fn new(seed: u64, busy: bool) -> Self {
        let mut rng = Rng::new(seed ^ 0x005C_2197);
        let (class_every, undo_every) = match busy {
            true => ((10.0, 30.0), (20.0, 60.0)),
            false => ((30.0, 90.0), (180.0, 420.0)),
        };
        let mut at = |(lo, hi): (f32, f32)| rng.range(lo, hi) as f64;
        let (stroke, page) = (at((1.0, 3.0)), at((10.0, 20.0)));
        let (class, undo) = (at(class_every), at(undo_every));
        Self {
            rng,
            stroke,
            page,
            class,
            undo,
            class_every,
            undo_every,
        }
    }

    /// Does every action due at simulated second `now`.
    fn step(&mut self, user: &mut Driver, now: f64) {
        let next = |rng: &mut Rng, lo: f32, hi: f32| now + rng.range(lo, hi) as f64;
        if now >= self.stroke {
            user.stroke();
            self.stroke = next(&mut self.rng, 1.0, 3.0);
        }
        if now >= self.page {
            let forward = self.rng.chance(0.7);
            user.page(forward);
            self.page = next(&mut self.rng, 10.0, 20.0);
        }
        if now >= self.class {
            user.switch_class();
            let (lo, hi) = self.class_every;
            self.class = next(&mut self.rng, lo, hi);
        }
        if now >= self.undo {
            let n = 3 + self.rng.below(8);
            user.undo_burst(n);
            let (lo, hi) = self.undo_every;
            self.undo = next(&mut self.rng, lo, hi);
        }
    }
}

fn dataset(dir: &Path, count: usize, seed: u64, size: [u32; 2]) -> anyhow::Result<PathBuf> {
    let cfg = SampleConfig {
        count,
        seed,
        width: size[0],
        height: size[1],
        ..Default::default()
    };
    generate(dir, &cfg)?;
    Ok(dir.to_path_buf())
}

fn studio(data: &Path, runs: &Path, speed: f64) -> Studio {
    let mut studio = Studio::new(PersistedState::default(), Some(data.to_path_buf()));
    studio.training.runs_root = Some(runs.to_path_buf());
    studio.training.device = DeviceChoice::Cpu;
    studio.set_autosave_interval(AUTOSAVE_INTERVAL.div_f64(speed));
    studio
}

/// One memory sample: simulated minute, resident MiB, training state.
#[derive(serde::Serialize)]
struct Sample {
    minute: f64,
    resident_mib: f64,
    training: String,
}

fn memory_soak(dir: &Path, args: &Args, json: bool) -> anyhow::Result<()> {
    let a = dataset(&dir.join("street-a"), 40, args.seed, args.soak_size)?;
    let b = dataset(&dir.join("street-b"), 40, args.seed + 1, args.soak_size)?;
    let mut user = Driver::new(studio(&a, &dir.join("runs"), args.speed), args.seed, None)?;
    let mut script = Script::new(args.seed, false);
    let total = args.minutes * 60.0;
    // Simulated seconds of the session's events.
    let at = |fraction: f64| fraction * total;
    let mut events: Vec<(f64, &str)> = vec![
        (at(0.03), "train full"),
        (at(0.15), "pause"),
        (at(0.183), "resume"),
        (at(0.25), "stop"),
        (at(0.33), "open b"),
        (at(0.50), "train quick"),
        (at(0.66), "open a"),
    ];
    events.sort_by(|x, y| x.0.total_cmp(&y.0));
    let mut samples = Vec::new();
    let mut next_sample = 0.0;
    let start = Instant::now();
    loop {
        let now = start.elapsed().as_secs_f64() * args.speed;
        if now >= total {
            break;
        }
        while let Some(&(when, what)) = events.first().filter(|e| e.0 <= now) {
            events.remove(0);
            let _ = when;
            match what {
                "train full" | "train quick" => {
                    let preset = if what == "train full" {
                        Preset::Full
                    } else {
                        Preset::Quick
                    };
                    if user.studio.training.state == RunState::Idle {
                        user.studio.training.preset = preset;
                        user.studio.training.config = preset.config();
                        user.studio.push(StudioCommand::StartTraining);
                    }
                }
                "pause" => user.studio.push(StudioCommand::PauseTraining),
                "resume" => user.studio.push(StudioCommand::ResumeTraining),
                "stop" => user.studio.push(StudioCommand::StopTraining),
                "open b" => user.open_dataset(&b),
                _ => user.open_dataset(&a),
            }
        }
        script.step(&mut user, now);
        user.idle(Duration::from_millis(30), 30.0);
        if now >= next_sample {
            let sample = Sample {
                minute: now / 60.0,
                resident_mib: resident_bytes().unwrap_or(0) as f64 / (1 << 20) as f64,
                training: format!("{:?}", user.studio.training.state).to_lowercase(),
            };
            if !json {
                eprintln!(
                    "  minute {:>5.1}: {:>7.1} MiB resident, training {}",
                    sample.minute, sample.resident_mib, sample.training
                );
            }
            samples.push(sample);
            next_sample += 60.0;
        }
    }
    user.studio.push(StudioCommand::StopTraining);
    user.idle(Duration::from_millis(200), 30.0);
    let runs = run_outcomes(&dir.join("runs"));
    report_memory(&samples, &user.activity, &runs, args, start.elapsed(), json)
}

/// How each run of the session ended (`run-N: status, epochs`), from its summary.json.
fn run_outcomes(runs: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for dataset in std::fs::read_dir(runs).into_iter().flatten().flatten() {
        for run in std::fs::read_dir(dataset.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let dir = RunDir::new(run.path());
            let what = match dir.read_summary() {
                Ok(s) => format!("{}, {} epochs", s.status, s.epochs),
                Err(_) => "no summary".into(),
            };
            out.push(format!(
                "{}/{}: {what}",
                dataset.file_name().to_string_lossy(),
                run.file_name().to_string_lossy()
            ));
        }
    }
    out.sort();
    out
}

/// Idle samples each side of the verdict needs: one sample is a minute of simulated use, and a
/// single one may be taken as a run's buffers are being freed.
const MIN_IDLE_SAMPLES: usize = 2;

/// What the memory curve says about a leak.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
enum Verdict {
    /// Idle resident memory in the last third is within 5% (or 16 MiB) of its peak before.
    Flat {
        before_mib: f64,
        last_mib: f64,
    },
    StillGrowing {
        before_mib: f64,
        last_mib: f64,
    },
    /// Not enough samples taken while no run was training on one side to say anything.
    TooFewIdleSamples {
        before: usize,
        last: usize,
    },
}

/// Compares the peak idle resident memory (no run training: a run's buffers come and go with
/// it) of the last third of the session with that before it. Training samples never count: a
/// session too short to have [`MIN_IDLE_SAMPLES`] idle samples on each side gets no verdict.
fn memory_verdict(samples: &[Sample]) -> Verdict {
    let third = samples.len() - samples.len() / 3;
    let idle = |s: &[Sample]| -> Vec<f64> {
        s.iter()
            .filter(|s| s.training == "idle")
            .map(|s| s.resident_mib)
            .collect()
    };
    let (early, late) = (idle(&samples[..third]), idle(&samples[third..]));
    if early.len() < MIN_IDLE_SAMPLES || late.len() < MIN_IDLE_SAMPLES {
        return Verdict::TooFewIdleSamples {
            before: early.len(),
            last: late.len(),
        };
    }
    let peak = |v: &[f64]| v.iter().copied().fold(f64::MIN, f64::max);
    let (before_mib, last_mib) = (peak(&early), peak(&late));
    if last_mib - before_mib <= (before_mib * 0.05).max(16.0) {
        Verdict::Flat {
            before_mib,
            last_mib,
        }
    } else {
        Verdict::StillGrowing {
            before_mib,
            last_mib,
        }
    }
}

fn report_memory(
    samples: &[Sample],
    activity: &Activity,
    runs: &[String],
    args: &Args,
    wall: Duration,
    json: bool,
) -> anyhow::Result<()> {
    let verdict = memory_verdict(samples);
    if json {
        let out = serde_json::json!({"soak": {
            "simulated_minutes": args.minutes, "speed": args.speed,
            "wall_secs": wall.as_secs_f64(), "activity": activity, "runs": runs,
            "memory": samples, "idle_memory": verdict}});
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "soak: {:.0} simulated minutes in {:.0} s: {} strokes, {} undos, {} page changes, {} class switches, {} dataset switches, {} frames",
            args.minutes,
            wall.as_secs_f64(),
            activity.strokes,
            activity.undos,
            activity.page_changes,
            activity.class_switches,
            activity.dataset_switches,
            activity.frames
        );
        let line = match verdict {
            Verdict::Flat {
                before_mib,
                last_mib,
            }
            | Verdict::StillGrowing {
                before_mib,
                last_mib,
            } => format!(
                "peak {before_mib:.1} MiB before the last third, {last_mib:.1} MiB in it ({:+.1} MiB): {}",
                last_mib - before_mib,
                if matches!(verdict, Verdict::Flat { .. }) {
                    "flat"
                } else {
                    "STILL GROWING"
                }
            ),
            Verdict::TooFewIdleSamples { before, last } => format!(
                "not judged: {before} sample(s) without training before the last third and \
                 {last} in it, {MIN_IDLE_SAMPLES} needed on each side (one is taken per \
                 simulated minute; run a longer session with --minutes)"
            ),
        };
        println!("resident memory while not training: {line}");
        println!("training runs: {}", runs.join("; "));
    }
    Ok(())
}

/// One killable session (the child): paints until killed, journaling every edit first; half
/// the sessions also train (so kills land in checkpoint writes too).
fn child(dir: &Path, args: &Args) -> anyhow::Result<()> {
    let mut studio = studio(&dir.join("data"), &dir.join("runs"), args.speed);
    let mut config = Preset::Quick.config();
    // A small model training until killed: nothing picked from a budget.
    config.auto = None;
    config.epochs = 1000;
    config.size = [64, 48];
    config.model.base_width = 4;
    config.num_workers = 1;
    studio.training.config = config;
    let journal = dir.join("journal.txt");
    let mut user = Driver::new(studio, args.seed, Some(&journal))?;
    if args.seed.is_multiple_of(2) {
        user.studio.push(StudioCommand::StartTraining);
    }
    let mut script = Script::new(args.seed, true);
    user.start_clock(args.speed);
    loop {
        let now = user.now();
        script.step(&mut user, now);
        user.idle(Duration::from_millis(20), 50.0);
    }
}

/// What the killed sessions left.
#[derive(Default, serde::Serialize)]
struct Kills {
    kills: usize,
    edits_journaled: usize,
    edits_lost: usize,
    most_lost_in_a_session: usize,
    /// How long before its kill the oldest lost edit was made, in simulated seconds: autosave
    /// bounds it by its interval (plus a frame and the save itself).
    oldest_lost_age_secs: f64,
    autosave_interval_secs: f64,
    masks_checked: usize,
    /// Masks that are no prefix of their edits (torn or mixed): must stay 0.
    inconsistent_masks: usize,
    /// Run folders the check refuses after a kill (a run killed before its first checkpoint is
    /// not one of them).
    broken_runs: Vec<String>,
}

fn kill_sessions(dir: &Path, args: &Args, kills: usize, json: bool) -> anyhow::Result<()> {
    let data = dataset(&dir.join("data"), 12, args.seed, [160, 120])?;
    let mut rng = Rng::new(args.seed);
    let exe = std::env::current_exe()?;
    let mut out = Kills {
        autosave_interval_secs: AUTOSAVE_INTERVAL.as_secs_f64(),
        ..Default::default()
    };
    let journal = dir.join("journal.txt");
    for kill in 0..kills {
        let before = verify::snapshot(&data)?;
        let _ = std::fs::remove_file(&journal);
        let mut child = Command::new(&exe)
            .args(["bench", "--soak-child"])
            .arg(dir)
            .args(["--seed", &(args.seed * 1000 + kill as u64).to_string()])
            .args(["--speed", &args.speed.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        std::thread::sleep(Duration::from_secs_f64(rng.range(0.5, 8.0) as f64));
        child.kill()?; // SIGKILL
        let killed_at = unix_nanos();
        child.wait()?;
        let after = verify::snapshot(&data)?;
        out.masks_checked += after.len();
        let journal = verify::read_journal(&journal)?;
        // The kill's moment on the session's simulated clock.
        let kill_sim = journal
            .started_unix_nanos
            .map(|t0| killed_at.saturating_sub(t0) as f64 * 1e-9 * args.speed);
        let mut lost = 0;
        for (name, list) in &journal.edits {
            out.edits_journaled += list.len();
            let (Some(b), Some(a)) = (before.get(name), after.get(name)) else {
                anyhow::bail!("journal names an unknown image {name}");
            };
            match verify::lost_edits(b, list, a) {
                Some(0) => {}
                Some(n) => {
                    lost += n;
                    if let Some(kill_sim) = kill_sim {
                        let age = kill_sim - list[list.len() - n].at;
                        out.oldest_lost_age_secs = out.oldest_lost_age_secs.max(age);
                    }
                }
                None => out.inconsistent_masks += 1,
            }
        }
        out.edits_lost += lost;
        out.most_lost_in_a_session = out.most_lost_in_a_session.max(lost);
        out.broken_runs.extend(broken_runs(&dir.join("runs/data")));
        out.kills += 1;
        if !json {
            eprintln!(
                "  kill {:>3}: {:>3} edits journaled, {} lost",
                kill + 1,
                journal.edits.values().map(Vec::len).sum::<usize>(),
                lost
            );
        }
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"kills": out}))?
        );
    } else {
        println!(
            "{} kills: {} edits journaled, {} lost (at most {} in one session; the oldest made {:.1} simulated s before its kill, autosave every {:.0} s), {} masks decoded, {} inconsistent, {} broken runs",
            out.kills,
            out.edits_journaled,
            out.edits_lost,
            out.most_lost_in_a_session,
            out.oldest_lost_age_secs,
            out.autosave_interval_secs,
            out.masks_checked,
            out.inconsistent_masks,
            out.broken_runs.len()
        );
        for run in &out.broken_runs {
            println!("  broken: {run}");
        }
    }
    anyhow::ensure!(
        out.inconsistent_masks == 0 && out.broken_runs.is_empty(),
        "a kill left a torn mask or a broken run"
    );
    Ok(())
}

fn unix_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// Runs the check refuses, other than those killed before their first checkpoint.
fn broken_runs(folder: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|e| RunDir::new(e.path()))
        .filter(RunDir::exists)
        .filter_map(|run| match check(&run) {
            Ok(_) | Err(Broken::Unusable(RunDirError::NoCheckpoint(_))) => None,
            Err(e) => Some(format!("{}: {e}", run.root().display())),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(list: &[(f64, &str)]) -> Vec<Sample> {
        list.iter()
            .enumerate()
            .map(|(i, &(resident_mib, training))| Sample {
                minute: i as f64,
                resident_mib,
                training: training.into(),
            })
            .collect()
    }

    #[test]
    fn the_memory_verdict_uses_idle_samples_only() {
        // A training sample's peak in the last third is no leak.
        let curve = samples(&[
            (100.0, "idle"),
            (101.0, "idle"),
            (300.0, "running"),
            (102.0, "idle"),
            (400.0, "running"),
            (103.0, "idle"),
            (104.0, "idle"),
            (500.0, "paused"),
            (105.0, "idle"),
        ]);
        assert_eq!(
            memory_verdict(&curve),
            Verdict::Flat {
                before_mib: 103.0,
                last_mib: 105.0
            }
        );
        let mut leaking = curve;
        leaking[8].resident_mib = 160.0;
        assert!(matches!(
            memory_verdict(&leaking),
            Verdict::StillGrowing { last_mib, .. } if last_mib == 160.0
        ));
    }

    #[test]
    fn a_short_session_gets_no_verdict() {
        // `--minutes 1`: one sample, nothing to compare it with (it was compared with 0 MiB).
        assert_eq!(
            memory_verdict(&samples(&[(100.0, "idle")])),
            Verdict::TooFewIdleSamples { before: 1, last: 0 }
        );
        assert_eq!(
            memory_verdict(&[]),
            Verdict::TooFewIdleSamples { before: 0, last: 0 }
        );
        // `--minutes 3`: the only sample of the last third trains (it said STILL GROWING).
        assert_eq!(
            memory_verdict(&samples(&[
                (100.0, "idle"),
                (100.0, "idle"),
                (400.0, "running")
            ])),
            Verdict::TooFewIdleSamples { before: 2, last: 0 }
        );
    }
}

//! Training progress on the terminal: a one-line bar redrawn in place on a TTY; on anything
//! else (CI logs, pipes) only the start, validation and end lines.

use std::io::{IsTerminal, Write};
use std::time::Instant;

use roadseg::core::train::run_dir::MetricRecord;
use roadseg::core::train::trainer::{StartInfo, TrainEvent};

pub struct Progress {
    tty: bool,
    start: Option<Box<StartInfo>>,
    began: Instant,
    /// Smoothed images/s for the ETA.
    speed: Option<f64>,
    bar_drawn: bool,
}

impl Progress {
    pub fn new() -> Self {
        Self {
            tty: std::io::stderr().is_terminal(),
            start: None,
            began: Instant::now(),
            speed: None,
            bar_drawn: false,
        }
    }

    pub fn on_event(&mut self, event: TrainEvent) {
        match event {
            TrainEvent::Started(info) => {
                self.line(&format!(
                    "{} {} on {}: {} training / {} validation images, {} steps per epoch, epochs {}..{}",
                    if info.resumed { "resuming" } else { "training" },
                    info.run_dir.display(),
                    info.device,
                    info.train_images,
                    info.val_images,
                    info.steps_per_epoch,
                    info.start_epoch + 1,
                    info.epochs
                ));
                self.began = Instant::now();
                self.start = Some(info);
            }
            TrainEvent::Step(record) => self.step(&record),
            TrainEvent::Validation(record) => {
                let per_class = record
                    .classes
                    .iter()
                    .flatten()
                    .map(|c| match c.iou {
                        Some(iou) => format!("{} {:.3}", c.name, iou),
                        None => format!("{} -", c.name),
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                self.line(&format!(
                    "epoch {:>3}  val loss {:.4}  pixel acc {:.4}  mIoU {:.4}  ({per_class})",
                    record.epoch,
                    record.loss,
                    record.pixel_accuracy.unwrap_or(0.0),
                    record.mean_iou.unwrap_or(0.0)
                ));
            }
            TrainEvent::Checkpoint { .. } | TrainEvent::Prediction { .. } => {}
            TrainEvent::Log(text) => self.line(&text),
        }
    }

    fn step(&mut self, record: &MetricRecord) {
        if let Some(ips) = record.images_per_sec {
            self.speed = Some(match self.speed {
                Some(s) => 0.9 * s + 0.1 * ips,
                None => ips,
            });
        }
        if !self.tty {
            return;
        }
        let Some(info) = &self.start else { return };
        let total = info.total_steps.max(1);
        let done = record.step.min(total);
        let width = 24;
        let filled = done * width / total;
        let eta = info
            .eta_secs(done, self.speed)
            .map_or_else(|| "?".to_string(), format_secs);
        eprint!(
            "\r\x1b[2Kepoch {}/{} [{}{}] step {}/{} loss {:.4} {:.1} img/s ETA {}",
            record.epoch,
            info.epochs,
            "#".repeat(filled),
            ".".repeat(width - filled),
            done,
            total,
            record.loss,
            self.speed.unwrap_or(0.0),
            eta
        );
        let _ = std::io::stderr().flush();
        self.bar_drawn = true;
    }

    /// A permanent line (clears the bar first).
    fn line(&mut self, text: &str) {
        if self.bar_drawn {
            eprint!("\r\x1b[2K");
            self.bar_drawn = false;
        }
        eprintln!("{text}");
    }

    pub fn finish(&mut self) {
        if self.bar_drawn {
            eprintln!();
            self.bar_drawn = false;
        }
    }
}

fn format_secs(secs: f64) -> String {
    let secs = secs.round() as u64;
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m", secs / 3600, secs / 60 % 60),
    }
}

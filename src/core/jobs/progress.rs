//! Where a run stands, read from its folder alone (whoever trains it, wherever): the epoch and
//! step of its last record, its best validation mIoU, how long ago it last wrote a record, and
//! how it ended when it did. `roadseg status` prints this beside the engine's state.

use std::path::Path;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::tailer::MetricsTailer;
use crate::core::train::run_dir::{MetricRecord, RunDir, RunDirError};

/// A run's progress.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunProgress {
    /// Epochs the run is configured for.
    pub epochs: usize,
    /// 1-based epoch of the last record (0: nothing logged yet).
    pub epoch: usize,
    /// Optimiser steps done.
    pub step: usize,
    /// Steps of the whole run, once the first validation says how many an epoch has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_steps: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_mean_iou: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_epoch: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_loss: Option<f64>,
    /// Seconds since metrics.jsonl was last written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_record_age_secs: Option<f64>,
    /// summary.json's status once the run ended (`completed`, `stopped`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<String>,
}

impl RunProgress {
    /// Reads `run`'s config, metrics and summary. Damaged metric lines are skipped.
    pub fn read(run: &Path) -> Result<Self, RunDirError> {
        let dir = RunDir::new(run);
        let config = dir.read_config()?;
        let mut progress = Self {
            epochs: config.train.epochs,
            ..Self::default()
        };
        let mut tailer = MetricsTailer::new(dir.metrics_path());
        loop {
            let update = tailer.poll()?;
            if update.records.is_empty() {
                break;
            }
            update.records.iter().for_each(|r| progress.add(r));
        }
        progress.last_record_age_secs = std::fs::metadata(dir.metrics_path())
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .map(|d| d.as_secs_f64());
        progress.finished = dir.read_summary().ok().map(|s| s.status);
        Ok(progress)
    }

    /// Takes one more record into account (records come in file order).
    pub fn add(&mut self, record: &MetricRecord) {
        self.epoch = record.epoch;
        self.step = record.step;
        match record.split.as_str() {
            "train" => self.last_loss = Some(record.loss),
            _ => {
                // The first validation closes epoch 1: its step is the steps per epoch.
                if record.epoch == 1 && self.total_steps.is_none() && record.step > 0 {
                    self.total_steps = Some(record.step * self.epochs);
                }
                if let Some(miou) = record.mean_iou
                    && self.best_mean_iou.is_none_or(|best| miou > best)
                {
                    self.best_mean_iou = Some(miou);
                    self.best_epoch = Some(record.epoch);
                }
            }
        }
    }

    /// One line for people: `epoch 3/10, step 120/400, best mIoU 0.512 (epoch 2), last record 4 s ago`.
    pub fn line(&self) -> String {
        let mut parts = vec![format!("epoch {}/{}", self.epoch, self.epochs)];
        parts.push(match self.total_steps {
            Some(total) => format!("step {}/{total}", self.step),
            None => format!("step {}", self.step),
        });
        if let (Some(miou), Some(epoch)) = (self.best_mean_iou, self.best_epoch) {
            parts.push(format!("best mIoU {miou:.4} (epoch {epoch})"));
        }
        if let Some(age) = self.last_record_age_secs {
            parts.push(format!("last record {} ago", human_secs(age)));
        }
        if let Some(status) = &self.finished {
            parts.push(format!("run {status}"));
        }
        parts.join(", ")
    }
}

/// `42 s`, `3 min`, `2.5 h`.
pub fn human_secs(secs: f64) -> String {
    match secs {
        s if s < 90.0 => format!("{s:.0} s"),
        s if s < 5400.0 => format!("{:.0} min", s / 60.0),
        s => format!("{:.1} h", s / 3600.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(split: &str, epoch: usize, step: usize, miou: Option<f64>) -> MetricRecord {
        MetricRecord {
            mean_iou: miou,
            ..MetricRecord::new(split, epoch, step, 0.5, 1e-3)
        }
    }

    #[test]
    fn progress_follows_the_records() {
        let mut p = RunProgress {
            epochs: 3,
            ..RunProgress::default()
        };
        for r in [
            record("train", 1, 1, None),
            record("train", 1, 2, None),
            record("val", 1, 2, Some(0.3)),
            record("train", 2, 3, None),
            record("val", 2, 4, Some(0.2)),
        ] {
            p.add(&r);
        }
        assert_eq!((p.epoch, p.step, p.total_steps), (2, 4, Some(6)));
        assert_eq!((p.best_mean_iou, p.best_epoch), (Some(0.3), Some(1)));
        assert_eq!(p.line(), "epoch 2/3, step 4/6, best mIoU 0.3000 (epoch 1)");
    }
}

//! Which per-class IoU curves the training panel draws. A line and a legend entry per class
//! buries the plot under CamVid's 31 classes, so past [`ALL_UP_TO`] classes the plot shows the
//! mean and the [`WORST`] classes with the lowest latest IoU (the ones worth watching), with a
//! name filter and an "all" switch for the rest.

/// Up to this many classes every curve is drawn (the bundled sample has 7).
pub const ALL_UP_TO: usize = 8;
/// Classes drawn by default past [`ALL_UP_TO`].
pub const WORST: usize = 4;

/// The choice the user made above the IoU plot.
#[derive(Clone, Debug, Default)]
pub struct IouClasses {
    /// Draw the classes whose name contains this (any case); empty: no filter.
    pub filter: String,
    pub show_all: bool,
}

impl IouClasses {
    /// Indices of `classes` (name, (step, IoU) points) to draw, in id order.
    pub fn shown(&self, classes: &[(String, Vec<[f64; 2]>)]) -> Vec<usize> {
        let filter = self.filter.trim().to_lowercase();
        if !filter.is_empty() {
            return (0..classes.len())
                .filter(|&i| classes[i].0.to_lowercase().contains(&filter))
                .collect();
        }
        if self.show_all || classes.len() <= ALL_UP_TO {
            return (0..classes.len()).collect();
        }
        let mut latest: Vec<(f64, usize)> = classes
            .iter()
            .enumerate()
            .filter_map(|(i, (_, points))| points.last().map(|p| (p[1], i)))
            .collect();
        latest.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let mut worst: Vec<usize> = latest.into_iter().take(WORST).map(|(_, i)| i).collect();
        worst.sort_unstable();
        worst
    }

    /// The filter row; drawn only when there are more classes than [`ALL_UP_TO`].
    pub fn ui(&mut self, ui: &mut egui::Ui, classes: usize, shown: usize) {
        ui.horizontal(|ui| {
            let what = match (self.filter.trim().is_empty(), self.show_all) {
                (true, false) => format!("mIoU + {shown} worst of {classes}"),
                _ => format!("mIoU + {shown} of {classes}"),
            };
            ui.label(egui::RichText::new(what).small());
            ui.add(
                egui::TextEdit::singleline(&mut self.filter)
                    .hint_text("class filter")
                    .desired_width(90.0),
            );
            ui.checkbox(&mut self.show_all, "all");
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 31 classes (CamVid) whose latest IoU is `id / 100`, except a few made worst.
    fn camvid_like() -> Vec<(String, Vec<[f64; 2]>)> {
        (0..31)
            .map(|i| {
                let latest = match i {
                    7 => 0.001,
                    19 => 0.002,
                    3 => 0.003,
                    25 => 0.0035,
                    _ => 0.1 + i as f64 / 100.0,
                };
                (format!("class{i}"), vec![[1.0, 0.5], [2.0, latest]])
            })
            .collect()
    }

    #[test]
    fn many_classes_show_the_worst_few_by_default() {
        let classes = camvid_like();
        let choice = IouClasses::default();
        assert_eq!(choice.shown(&classes), [3, 7, 19, 25]);
        let all = IouClasses {
            show_all: true,
            ..Default::default()
        };
        assert_eq!(all.shown(&classes).len(), 31);
        let filtered = IouClasses {
            filter: " CLASS1".into(),
            ..Default::default()
        };
        // class1 and class10..class19.
        assert_eq!(filtered.shown(&classes).len(), 11);
    }

    #[test]
    fn few_classes_are_all_shown_and_classes_without_points_are_skipped() {
        let mut classes = camvid_like();
        classes.truncate(ALL_UP_TO);
        assert_eq!(IouClasses::default().shown(&classes).len(), ALL_UP_TO);
        let mut many = camvid_like();
        for class in &mut many[..20] {
            class.1.clear();
        }
        assert_eq!(IouClasses::default().shown(&many), [20, 21, 22, 25]);
    }
}

//! `--tune`: selection by the validation monitor (paper Sec. 6.4, METHOD.md "Validation
//! monitor"). Within one model family, a lower validation cross-entropy goes with better
//! matching, so a small grid of settings is cross-fitted on the same folds and the setting with
//! the lowest mean calibrated validation cross-entropy scores. Only the validation rows of the
//! training folds are used to choose: the scored rows stay out of sample.
//!
//! Across families (an MLP against a CNN) the monitor does not rank matching quality
//! (benches/RESULTS.md), so the grid varies the learning rate, the width and the weight decay
//! of the chosen encoder, never the encoder's kind.

use serde::Serialize;

use crate::crossfit::FoldReport;
use crate::spec::{EncoderSpec, ModelSpec};

/// The settings tried: every combination of the three axes, applied to a base spec.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TuneGrid {
    /// Multipliers of the base learning rate.
    pub learning_rate_factors: Vec<f64>,
    /// Multipliers of every hidden layer's width (MLP) or channel count (CNN).
    pub width_factors: Vec<f64>,
    /// Weight decays (absolute).
    pub weight_decays: Vec<f64>,
}

impl Default for TuneGrid {
    /// 3 learning rates × 2 widths × 2 weight decays = 12 settings.
    fn default() -> Self {
        TuneGrid {
            learning_rate_factors: vec![1.0 / 3.0, 1.0, 3.0],
            width_factors: vec![1.0, 4.0],
            weight_decays: vec![0.0, 1e-3],
        }
    }
}

impl TuneGrid {
    /// Every setting of the grid around `base`, `base`'s own values where an axis is empty.
    pub fn settings(&self, base: &ModelSpec) -> Vec<ModelSpec> {
        let or_one = |v: &[f64]| if v.is_empty() { vec![1.0] } else { v.to_vec() };
        let decays = if self.weight_decays.is_empty() {
            vec![base.training.weight_decay]
        } else {
            self.weight_decays.clone()
        };
        let mut out = Vec::new();
        for &lr in &or_one(&self.learning_rate_factors) {
            for &width in &or_one(&self.width_factors) {
                for &decay in &decays {
                    let mut spec = base.clone();
                    spec.training.learning_rate *= lr;
                    spec.training.weight_decay = decay;
                    widen(&mut spec.encoder, width);
                    out.push(spec);
                }
            }
        }
        out
    }
}

fn widen(encoder: &mut EncoderSpec, factor: f64) {
    let scale = |sizes: &mut Vec<usize>| {
        for s in sizes.iter_mut() {
            *s = ((*s as f64 * factor).round() as usize).max(1);
        }
    };
    match encoder {
        EncoderSpec::Mlp { hidden, .. } => scale(hidden),
        EncoderSpec::Cnn { channels, .. } => scale(channels),
    }
}

/// One setting of the grid and how its folds did.
#[derive(Clone, Debug, Serialize)]
pub struct TrialReport {
    pub learning_rate: f64,
    pub weight_decay: f64,
    /// Hidden widths (MLP) or channels (CNN).
    pub widths: Vec<usize>,
    /// Mean over folds of the calibrated validation cross-entropy: what the choice minimises.
    pub mean_validation_cross_entropy: f64,
    /// Mean over folds of the kept epoch.
    pub mean_best_epoch: f64,
}

impl TrialReport {
    pub fn new(spec: &ModelSpec, folds: &[FoldReport]) -> TrialReport {
        let n = folds.len().max(1) as f64;
        TrialReport {
            learning_rate: spec.training.learning_rate,
            weight_decay: spec.training.weight_decay,
            widths: match &spec.encoder {
                EncoderSpec::Mlp { hidden, .. } => hidden.clone(),
                EncoderSpec::Cnn { channels, .. } => channels.clone(),
            },
            mean_validation_cross_entropy: folds
                .iter()
                .map(|f| f.calibrated_validation_cross_entropy)
                .sum::<f64>()
                / n,
            mean_best_epoch: folds.iter().map(|f| f.best_epoch as f64).sum::<f64>() / n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::InputShape;
    use crate::spec::Preset;

    #[test]
    fn the_grid_is_the_product_of_its_axes() {
        let base = Preset::Default.spec(InputShape::Flat { features: 10 });
        let settings = TuneGrid::default().settings(&base);
        assert_eq!(settings.len(), 12);
        let lrs: std::collections::BTreeSet<u64> = settings
            .iter()
            .map(|s| (s.training.learning_rate * 1e9).round() as u64)
            .collect();
        assert_eq!(lrs.len(), 3);
        let widths = |s: &ModelSpec| match &s.encoder {
            EncoderSpec::Mlp { hidden, .. } => hidden.clone(),
            EncoderSpec::Cnn { channels, .. } => channels.clone(),
        };
        let base_width = widths(&base)[0];
        assert!(settings.iter().any(|s| widths(s)[0] == 4 * base_width));
        // The base setting itself is one of the trials (weight decay 0 is on the axis).
        assert!(settings.contains(&base));
    }
}

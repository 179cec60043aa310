//! Yardsticks and calibration of a classifier's logits (METHOD.md step 1).
//!
//! * The **label-frequency baseline**: the cross-entropy of predicting, for every row, each
//!   label's frequency among the training rows. A classifier whose cross-entropy does not beat
//!   it has learned nothing about `x`, and matching on its scores is random.
//! * **Temperature scaling** (Guo et al., "On calibration of modern neural networks", 2017):
//!   one scalar `T` per model, fitted on the model's own validation rows, divides its logits.
//!   Cross-fitting trains `K` models that stop at different epochs with different confidence;
//!   their scores meet in one cost matrix, so each is brought to the scale on which its
//!   probabilities are calibrated. One parameter per model leaves the ranking of classes (and
//!   the accuracy) unchanged, and cannot overfit a few dozen validation rows.

use ndarray::ArrayView2;
use serde::Serialize;

/// Cross-entropy (nats) of one row of logits against its class, and whether the row's most
/// probable class is that class.
pub fn cross_entropy_and_hit(logits: &[f64], target: usize) -> (f64, bool) {
    let max = logits.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v));
    let lse = max + logits.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
    let argmax = (0..logits.len()).fold(0, |b, c| if logits[c] > logits[b] { c } else { b });
    (lse - logits[target], argmax == target)
}

/// Each class's share of `rows`, smoothed by half a row per class (so a class absent from
/// the training rows gets a finite cross-entropy).
pub fn label_frequencies(classes: &[usize], rows: &[usize], n_classes: usize) -> Vec<f64> {
    let mut counts = vec![0.5; n_classes];
    for &r in rows {
        counts[classes[r]] += 1.0;
    }
    let total: f64 = counts.iter().sum();
    counts.iter().map(|c| c / total).collect()
}

/// How well scores predict labels: mean cross-entropy, the label-frequency baseline's mean
/// cross-entropy on the same rows, and accuracy.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Quality {
    /// Mean cross-entropy of the scores (nats).
    pub cross_entropy: f64,
    /// Mean cross-entropy of predicting each label's training frequency (nats).
    pub baseline_cross_entropy: f64,
    /// Fraction of rows whose most probable label is their own.
    pub accuracy: f64,
    /// Rows measured.
    pub rows: usize,
    /// Standard error of the mean per-row difference `cross-entropy − baseline`.
    pub standard_error: f64,
}

impl Quality {
    /// Scores `logits` (one row per entry of `targets`) against `targets`, with the baseline
    /// `frequencies[r]` (the training frequencies of the model that scored row `r`).
    pub fn measure(logits: ArrayView2<'_, f64>, targets: &[usize], frequencies: &[&[f64]]) -> Self {
        let n = targets.len();
        let mut ce = 0.0;
        let mut base = 0.0;
        let mut correct = 0;
        let mut differences = Vec::with_capacity(n);
        for (k, &target) in targets.iter().enumerate() {
            let z: Vec<f64> = logits.row(k).to_vec();
            let (loss, hit) = cross_entropy_and_hit(&z, target);
            let baseline = -frequencies[k][target].ln();
            ce += loss;
            base += baseline;
            correct += usize::from(hit);
            differences.push(loss - baseline);
        }
        let rows = n.max(1) as f64;
        let mean_difference = (ce - base) / rows;
        let variance = differences
            .iter()
            .map(|d| (d - mean_difference).powi(2))
            .sum::<f64>()
            / (rows - 1.0).max(1.0);
        Quality {
            cross_entropy: ce / rows,
            baseline_cross_entropy: base / rows,
            accuracy: correct as f64 / rows,
            rows: n,
            standard_error: (variance / rows).sqrt(),
        }
    }

    /// The scores beat the baseline by more than two standard errors: on rows the model never
    /// saw, this is a one-sided test (≈ 2.3% false positives) that it learned something.
    pub fn beats_baseline(&self) -> bool {
        self.cross_entropy < self.baseline_cross_entropy - 2.0 * self.standard_error
    }
}

/// Bounds of the fitted temperature.
pub const TEMPERATURE_RANGE: (f64, f64) = (0.05, 20.0);

/// The temperature `T` that minimises the cross-entropy of `logits / T` on these rows, with a
/// standard normal prior on `ln T` (a validation set the model separates perfectly would
/// otherwise drive `T` to 0), searched in [`TEMPERATURE_RANGE`]. The cross-entropy is convex
/// in `1/T`, hence unimodal in `ln T`, and golden-section search finds its minimum.
pub fn fit_temperature(logits: ArrayView2<'_, f64>, targets: &[usize]) -> f64 {
    if targets.is_empty() {
        return 1.0;
    }
    let objective = |log_t: f64| {
        let inverse = (-log_t).exp();
        let nll: f64 = targets
            .iter()
            .enumerate()
            .map(|(k, &target)| {
                let z: Vec<f64> = logits.row(k).iter().map(|v| v * inverse).collect();
                cross_entropy_and_hit(&z, target).0
            })
            .sum();
        nll + 0.5 * log_t * log_t
    };
    let (mut low, mut high) = (TEMPERATURE_RANGE.0.ln(), TEMPERATURE_RANGE.1.ln());
    let ratio = (5f64.sqrt() - 1.0) / 2.0;
    let mut a = high - ratio * (high - low);
    let mut b = low + ratio * (high - low);
    let (mut fa, mut fb) = (objective(a), objective(b));
    for _ in 0..60 {
        if fa < fb {
            high = b;
            (b, fb) = (a, fa);
            a = high - ratio * (high - low);
            fa = objective(a);
        } else {
            low = a;
            (a, fa) = (b, fb);
            b = low + ratio * (high - low);
            fb = objective(b);
        }
    }
    ((low + high) / 2.0).exp()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    /// Logits drawn so that the calibrated temperature is known: rows whose true class has
    /// logit `s`, others 0, labelled correctly with probability `p`. For `T` the minimiser
    /// sets softmax(s / T)'s top probability to `p` (without the prior), a closed form.
    #[test]
    fn temperature_recovers_the_calibrating_scale() {
        let classes = 4;
        let s = 6.0;
        let p: f64 = 0.7; // target top probability
        let n = 2000;
        let mut logits = Array2::zeros((n, classes));
        let mut targets = Vec::new();
        for r in 0..n {
            let predicted = r % classes;
            logits[[r, predicted]] = s;
            // Exactly a share p of the rows are labelled with the predicted class.
            let right = (r / classes) % 10 < 7;
            targets.push(if right {
                predicted
            } else {
                (predicted + 1 + r % 3) % classes
            });
        }
        // softmax top probability e^{s/T} / (e^{s/T} + 3) = p  ⇒  s/T = ln(3p / (1 − p)).
        let expected = s / (3.0 * p / (1.0 - p)).ln();
        let fitted = fit_temperature(logits.view(), &targets);
        assert!(
            (fitted - expected).abs() / expected < 0.01,
            "{fitted} vs {expected}"
        );
    }

    #[test]
    fn a_separable_validation_set_keeps_a_finite_temperature() {
        let logits = ndarray::array![[5.0, 0.0], [0.0, 5.0], [4.0, 0.0]];
        let t = fit_temperature(logits.view(), &[0, 1, 0]);
        assert!(t > TEMPERATURE_RANGE.0 * 1.01 && t < 1.0, "{t}");
    }

    #[test]
    fn baseline_is_the_frequency_cross_entropy() {
        let classes = [0, 0, 0, 1];
        let f = label_frequencies(&classes, &[0, 1, 2, 3], 2);
        assert!((f[0] - 3.5 / 5.0).abs() < 1e-12 && (f[1] - 1.5 / 5.0).abs() < 1e-12);
        // Logits equal to the log-frequencies score exactly the baseline.
        let logits = Array2::from_shape_fn((4, 2), |(_, c)| f[c].ln());
        let rows: Vec<&[f64]> = vec![&f; 4];
        let q = Quality::measure(logits.view(), &classes, &rows);
        assert!((q.cross_entropy - q.baseline_cross_entropy).abs() < 1e-12);
        assert!(!q.beats_baseline());
        assert_eq!(q.accuracy, 0.75);
    }
}

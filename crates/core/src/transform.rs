//! Classifier outputs to matching coordinates: the centred log-ratio (METHOD.md step 2, Eq. 6).
//!
//! Raw logits are defined only up to a per-row additive constant (softmax ignores it), so two
//! classifiers' logits are not comparable until centred: `h(π)_k = log π_k − mean_k log π_k`,
//! which for logits is simply `l_k − mean_k l_k`. For probabilities we first clamp each entry to
//! [`PROBABILITY_CLAMP`] (1e-6), so a classifier that outputs an exact 0 gives a finite score;
//! the clamp bounds every clr coordinate by `|log 1e-6| ≈ 13.8`, which also bounds costs.

use ndarray::{Array2, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

use crate::CoreError;

/// Probabilities are clamped to `[PROBABILITY_CLAMP, 1]` before taking logs.
pub const PROBABILITY_CLAMP: f64 = 1e-6;

/// What the score matrices hold.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScoresKind {
    /// Unnormalised classifier logits (any per-row offset).
    #[default]
    Logits,
    /// Propensity scores: probabilities, rows summing to 1.
    Probs,
}

/// Centred log-ratio of each row of `scores` (n × T).
pub fn clr(scores: ArrayView2<'_, f64>, kind: ScoresKind) -> Array2<f64> {
    let mut out = match kind {
        ScoresKind::Logits => scores.to_owned(),
        ScoresKind::Probs => scores.mapv(|p| p.clamp(PROBABILITY_CLAMP, 1.0).ln()),
    };
    for mut row in out.axis_iter_mut(Axis(0)) {
        let mean = row.mean().unwrap_or(0.0);
        row.mapv_inplace(|v| v - mean);
    }
    out
}

/// First non-finite entry of a matrix, as an error naming `what`.
pub fn check_finite(what: &'static str, m: ArrayView2<'_, f64>) -> Result<(), CoreError> {
    for ((row, column), &value) in m.indexed_iter() {
        if !value.is_finite() {
            return Err(CoreError::NonFinite {
                what,
                row,
                column,
                value,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn logits_with_a_row_offset_give_the_same_clr() {
        let a = clr(array![[1.0, 2.0, 4.0]].view(), ScoresKind::Logits);
        let b = clr(array![[11.0, 12.0, 14.0]].view(), ScoresKind::Logits);
        assert!((&a - &b).iter().all(|d| d.abs() < 1e-12));
        assert!(a.sum().abs() < 1e-12);
    }

    #[test]
    fn probabilities_equal_the_softmax_logits() {
        let logits = array![[0.3, -1.0, 2.0]];
        let z: f64 = logits.iter().map(|v: &f64| v.exp()).sum();
        let probs = logits.mapv(|v| v.exp() / z);
        let a = clr(logits.view(), ScoresKind::Logits);
        let b = clr(probs.view(), ScoresKind::Probs);
        assert!((&a - &b).iter().all(|d| d.abs() < 1e-12));
    }

    #[test]
    fn zero_probability_is_clamped() {
        let c = clr(array![[0.0, 1.0]].view(), ScoresKind::Probs);
        assert!(c.iter().all(|v| v.is_finite()));
        assert!((c[[0, 1]] - c[[0, 0]] - (-PROBABILITY_CLAMP.ln())).abs() < 1e-12);
    }
}

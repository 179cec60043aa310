//! Classifier outputs to matching coordinates: the centred log-ratio (METHOD.md step 2, Eq. 6).
//!
//! Raw logits are defined only up to a per-row additive constant (softmax ignores it), so two
//! classifiers' logits are not comparable until centred: `h(π)_k = log π_k − mean_k log π_k`,
//! which for logits is simply `l_k − mean_k l_k`. For probabilities we first clamp each entry to
//! [`PROBABILITY_CLAMP`] (1e-6), so a classifier that outputs an exact 0 gives a finite score;
//! the clamp bounds every clr coordinate by `|log 1e-6| ≈ 13.8`, which also bounds costs.
//!
//! Logits are not bounded, and f64 cannot match on arbitrary ones: a score of 1e30 makes every
//! cost from its row about 1e30, whose last bit is worth 1e14, so the cost *differences* that
//! decide the coupling (order 1) are lost and the Sinkhorn updates cancel catastrophically; from
//! about 1e154 the squared distances overflow. So centred log-ratio scores must lie within
//! ±[`MAX_SCORE`] (1e4): far beyond what a classifier produces (a logit gap of 40 already gives
//! probabilities 1 : 4e-18), and small enough that every cost, potential and exponent of a solve
//! stays finite and resolved to better than 1e-9 at the paper's λ = 0.05 (cost ≤ 2e4·√T, whose
//! rounding over λ is below 1e-9 for T ≤ 10⁴). [`check_scores`] rejects anything else up front,
//! naming the input, row and column.

use ndarray::{Array2, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

use crate::CoreError;

/// Probabilities are clamped to `[PROBABILITY_CLAMP, 1]` before taking logs.
pub const PROBABILITY_CLAMP: f64 = 1e-6;

/// Largest magnitude of a centred log-ratio score that psa matches on (see the module docs).
pub const MAX_SCORE: f64 = 1e4;

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

/// Centred log-ratio of each row of `scores` (n × T). The row mean is taken as `Σ x_k / T`,
/// which cannot overflow for finite inputs; an entry far beyond [`MAX_SCORE`] may still come
/// out infinite, which [`check_scores`] then rejects.
pub fn clr(scores: ArrayView2<'_, f64>, kind: ScoresKind) -> Array2<f64> {
    let mut out = match kind {
        ScoresKind::Logits => scores.to_owned(),
        ScoresKind::Probs => scores.mapv(|p| p.clamp(PROBABILITY_CLAMP, 1.0).ln()),
    };
    let dim = out.ncols() as f64;
    for mut row in out.axis_iter_mut(Axis(0)) {
        let mean: f64 = row.iter().map(|v| v / dim).sum();
        row.mapv_inplace(|v| v - mean);
    }
    out
}

/// Checks centred log-ratio scores `h` against ±[`MAX_SCORE`]. A row out of range is reported
/// at its largest entry, with the value the user gave there (`given`: the raw input, of the
/// same shape as `h`).
pub fn check_scores(
    what: &'static str,
    h: ArrayView2<'_, f64>,
    given: ArrayView2<'_, f64>,
) -> Result<(), CoreError> {
    for (row, values) in h.axis_iter(Axis(0)).enumerate() {
        let (column, largest) = values
            .iter()
            .map(|v| if v.is_nan() { f64::INFINITY } else { v.abs() })
            .enumerate()
            .fold(
                (0, 0.0),
                |best, (k, v)| if v > best.1 { (k, v) } else { best },
            );
        if largest > MAX_SCORE {
            return Err(CoreError::OutOfRange {
                what,
                row,
                column,
                value: given[[row, column]],
                score: values[column],
                bound: MAX_SCORE,
            });
        }
    }
    Ok(())
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
    fn huge_logits_are_centred_without_overflow_and_rejected_at_their_column() {
        let raw = array![[1.0, 2.0, 3.0], [1.0, -f64::MAX, f64::MAX]];
        let h = clr(raw.view(), ScoresKind::Logits);
        assert!(h.row(0).iter().all(|v| v.is_finite()));
        let err = check_scores("scores1", h.view(), raw.view()).unwrap_err();
        match err {
            CoreError::OutOfRange { row, column, .. } => assert_eq!((row, column), (1, 1)),
            other => panic!("{other}"),
        }
        let big = array![[0.0, 1e30, 0.0, 0.0]];
        let err = check_scores(
            "scores2",
            clr(big.view(), ScoresKind::Logits).view(),
            big.view(),
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("scores2: row 0, column 1 is 1e30"), "{text}");
        let fine = array![[0.0, 0.9 * MAX_SCORE]];
        assert!(
            check_scores(
                "s",
                clr(fine.view(), ScoresKind::Logits).view(),
                fine.view()
            )
            .is_ok()
        );
    }

    #[test]
    fn zero_probability_is_clamped() {
        let c = clr(array![[0.0, 1.0]].view(), ScoresKind::Probs);
        assert!(c.iter().all(|v| v.is_finite()));
        assert!((c[[0, 1]] - c[[0, 0]] - (-PROBABILITY_CLAMP.ln())).abs() < 1e-12);
    }
}

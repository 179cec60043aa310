//! Per-group outputs back in input row order, and input matrices split into groups.
//!
//! A [`crate::Solved`] answers per group, in group row order; users read files whose row `r` is
//! row `r` of their input. These functions do that mapping once, for every caller (the CLI,
//! `psa export`, prediction). Rows of labels that were not matched get a marker: −1 for
//! indices, NaN for values.

use ndarray::{Array2, ArrayView2, Axis};

use crate::Problem;
use crate::coupling::TopK;

/// Top-k partners of every modality-1 input row: modality-2 *input* rows and weights.
#[derive(Clone, Debug, PartialEq)]
pub struct InputTopK {
    /// `n1_total × k`, −1 where a group has fewer than `k` rows, `--mass` cut the row, or the
    /// row's label was not matched.
    pub index: Array2<i64>,
    /// `n1_total × k`, the matching `P(j|i)` (0 where `index` is −1).
    pub weight: Array2<f32>,
}

/// Maps per-group top-k (group-local columns) to input rows.
pub fn top_k_rows(problem: &Problem, tops: &[TopK], k: usize) -> InputTopK {
    let mut index = Array2::from_elem((problem.n1_total, k), -1i64);
    let mut weight = Array2::<f32>::zeros((problem.n1_total, k));
    for (group, top) in problem.groups.iter().zip(tops) {
        for (i, &row) in group.rows1.iter().enumerate() {
            for slot in 0..k.min(top.index.ncols()) {
                let j = top.index[[i, slot]];
                if j >= 0 {
                    index[[row, slot]] = group.rows2[j as usize] as i64;
                    weight[[row, slot]] = top.weight[[i, slot]] as f32;
                }
            }
        }
    }
    InputTopK { index, weight }
}

/// Per-group modality-1 matrices (`n1 × d`, group order) as one `n1_total × d` matrix in input
/// order; NaN rows for unmatched labels.
pub fn rows1(problem: &Problem, per_group: &[Array2<f64>], d: usize) -> Array2<f64> {
    let mut all = Array2::from_elem((problem.n1_total, d), f64::NAN);
    for (group, rows) in problem.groups.iter().zip(per_group) {
        for (i, row) in rows.rows().into_iter().enumerate() {
            all.row_mut(group.rows1[i]).assign(&row);
        }
    }
    all
}

/// Per-group draws of group-local modality-2 columns (`n1 × draws`) as modality-2 input rows,
/// `n1_total × draws`; −1 for unmatched rows.
pub fn pairs1(problem: &Problem, per_group: &[Array2<i64>], draws: usize) -> Array2<i64> {
    let mut all = Array2::from_elem((problem.n1_total, draws), -1i64);
    for (group, local) in problem.groups.iter().zip(per_group) {
        for (i, row) in local.rows().into_iter().enumerate() {
            for (d, &j) in row.iter().enumerate() {
                all[[group.rows1[i], d]] = group.rows2[j as usize] as i64;
            }
        }
    }
    all
}

/// The modality-1 input rows of each group, `n1 × d` in group order.
pub fn split1(problem: &Problem, x: ArrayView2<'_, f64>) -> Vec<Array2<f64>> {
    problem
        .groups
        .iter()
        .map(|g| x.select(Axis(0), &g.rows1))
        .collect()
}

/// The modality-2 input rows of each group, `n2 × d` in group order.
pub fn split2(problem: &Problem, y: ArrayView2<'_, f64>) -> Vec<Array2<f64>> {
    problem
        .groups
        .iter()
        .map(|g| y.select(Axis(0), &g.rows2))
        .collect()
}

/// Views of owned matrices, as [`crate::Solved::project`] takes them.
pub fn views(matrices: &[Array2<f64>]) -> Vec<ArrayView2<'_, f64>> {
    matrices.iter().map(|m| m.view()).collect()
}

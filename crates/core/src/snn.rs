//! Shared nearest neighbours (METHOD.md step 3, App. B).
//!
//! `J_ij = |N₁(π_i) ∩ N₁(π_j)| + |N₂(π_i) ∩ N₂(π_j)|`, where `N_e(p)` is the set of the `k`
//! nearest modality-`e` points to `p` in propensity (clr) space, a point being its own nearest
//! neighbour; `M̃_ij = J_ij / (4k − J_ij)`, rows normalised. Since a modality-2 point `j` lies in
//! its own `N₂`, every `j ∈ N₂(π_i)` shares it, so every row has a non-zero (Lemma B.1).
//!
//! `J_ij ≠ 0` only when `i` and `j` share a neighbour, so rows are built sparsely through an
//! inverted index (point → the modality-2 points whose neighbourhood holds it). Neighbour search
//! is brute force, `O(n² T)` in parallel: exact, and fine for a reference at tens of thousands
//! of rows per group.

use std::collections::HashMap;

use ndarray::ArrayView2;
use rayon::prelude::*;

use crate::cost::squared_distance;
use crate::{CoreError, Group};

/// Normalised sparse rows of an SNN coupling (CSR).
#[derive(Clone, Debug)]
pub struct SnnCoupling {
    k: usize,
    row_start: Vec<usize>,
    columns: Vec<usize>,
    weights: Vec<f64>,
}

impl SnnCoupling {
    /// Neighbours per modality.
    pub fn k(&self) -> usize {
        self.k
    }

    /// `(column, P(j|i))` for the non-zeros of row `i`, by increasing column.
    pub fn row(&self, i: usize) -> impl Iterator<Item = (usize, f64)> + '_ {
        let range = self.row_start[i]..self.row_start[i + 1];
        self.columns[range.clone()]
            .iter()
            .copied()
            .zip(self.weights[range].iter().copied())
    }
}

/// Builds the SNN coupling of a group with `k ≥ 1` neighbours.
pub fn snn(group: &Group, k: usize) -> Result<SnnCoupling, CoreError> {
    if k == 0 {
        return Err(CoreError::option("snn_k", "k must be ≥ 1"));
    }
    let (x1, x2) = (group.x1.view(), group.x2.view());
    // Neighbourhoods of modality-1 points.
    let n1_of_1 = neighbours(x1, x1, k, true);
    let n2_of_1 = neighbours(x1, x2, k, false);
    // Neighbourhoods of modality-2 points.
    let n1_of_2 = neighbours(x2, x1, k, false);
    let n2_of_2 = neighbours(x2, x2, k, true);
    let holders1 = invert(&n1_of_2, x1.nrows());
    let holders2 = invert(&n2_of_2, x2.nrows());
    let denominator = 4.0 * k as f64;

    let rows: Vec<Vec<(usize, f64)>> = (0..x1.nrows())
        .into_par_iter()
        .map(|i| {
            let mut shared: HashMap<usize, u32> = HashMap::new();
            for &p in &n1_of_1[i] {
                for &j in &holders1[p] {
                    *shared.entry(j).or_default() += 1;
                }
            }
            for &q in &n2_of_1[i] {
                for &j in &holders2[q] {
                    *shared.entry(j).or_default() += 1;
                }
            }
            let mut row: Vec<(usize, f64)> = shared
                .into_iter()
                .map(|(j, count)| (j, count as f64 / (denominator - count as f64)))
                .collect();
            row.sort_by_key(|&(j, _)| j);
            let total: f64 = row.iter().map(|(_, w)| w).sum();
            row.iter_mut().for_each(|(_, w)| *w /= total);
            row
        })
        .collect();

    let mut coupling = SnnCoupling {
        k,
        row_start: vec![0],
        columns: Vec::new(),
        weights: Vec::new(),
    };
    for row in rows {
        for (j, w) in row {
            coupling.columns.push(j);
            coupling.weights.push(w);
        }
        coupling.row_start.push(coupling.columns.len());
    }
    Ok(coupling)
}

/// For each row of `from`, its `k` nearest rows of `to` (squared Euclidean; ties by index).
/// With `same_set`, each point is forced into its own neighbourhood first.
fn neighbours(
    from: ArrayView2<'_, f64>,
    to: ArrayView2<'_, f64>,
    k: usize,
    same_set: bool,
) -> Vec<Vec<usize>> {
    let k = k.min(to.nrows());
    (0..from.nrows())
        .into_par_iter()
        .map(|i| {
            let xi = from.row(i);
            let xi = xi.as_slice().expect("standard layout");
            let mut candidates: Vec<(f64, usize)> = to
                .rows()
                .into_iter()
                .enumerate()
                .filter(|&(j, _)| !(same_set && j == i))
                .map(|(j, y)| {
                    (
                        squared_distance(xi, y.as_slice().expect("standard layout")),
                        j,
                    )
                })
                .collect();
            let wanted = if same_set { k - 1 } else { k };
            let by_distance =
                |a: &(f64, usize), b: &(f64, usize)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1));
            if wanted > 0 && wanted < candidates.len() {
                candidates.select_nth_unstable_by(wanted - 1, by_distance);
            }
            candidates.truncate(wanted);
            let mut set: Vec<usize> = candidates.into_iter().map(|(_, j)| j).collect();
            if same_set {
                set.push(i);
            }
            set
        })
        .collect()
}

/// `holders[p]` = the points whose neighbourhood contains `p`.
fn invert(neighbourhoods: &[Vec<usize>], n_points: usize) -> Vec<Vec<usize>> {
    let mut holders = vec![Vec::new(); n_points];
    for (j, set) in neighbourhoods.iter().enumerate() {
        for &p in set {
            holders[p].push(j);
        }
    }
    holders
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn identical_sets_with_k1_pair_each_point_with_its_twin() {
        let s = array![[0.0, 0.0, 3.0], [0.0, 3.0, 0.0], [3.0, 0.0, 0.0]];
        let p = crate::problem::twin_problem(s.view());
        let c = snn(&p.groups[0], 1).unwrap();
        for i in 0..3 {
            let row: Vec<_> = c.row(i).collect();
            assert_eq!(row, vec![(i, 1.0)]);
        }
    }
}

//! The lazy coupling `P(j|i)` of one group (METHOD.md step 4 and "Outputs a user needs").
//!
//! For entropic OT, `P(j|i) = M_ij / Σ_j M_ij = softmax_j((g_j − C_ij)/λ)`: row `i` depends only
//! on `g`, λ and the scores, so any row is recomputed exactly in `O(n2 · T)` and nothing of size
//! `n1 × n2` is ever stored. SNN keeps its sparse rows; random is `1/n2`. Every export — top-k,
//! barycentric projection, dense matrix — goes row by row (in parallel, one row buffer per
//! thread), so memory is bounded by the output itself.

use ndarray::{Array2, ArrayView2, Axis};
use rayon::prelude::*;

use crate::snn::SnnCoupling;
use crate::{Group, Metric, fastexp};

/// How the rows of a coupling are produced.
#[derive(Clone, Copy, Debug)]
pub enum CouplingKind<'a> {
    /// Entropic OT: modality-2 potentials and the absolute λ.
    Ot { g: &'a [f64], epsilon: f64 },
    /// Shared nearest neighbours (App. B), normalised rows.
    Snn(&'a SnnCoupling),
    /// `P(j|i) = 1/n2`.
    Random,
}

impl CouplingKind<'_> {
    pub fn method(&self) -> &'static str {
        match self {
            CouplingKind::Ot { .. } => "ot",
            CouplingKind::Snn(_) => "snn",
            CouplingKind::Random => "random",
        }
    }
}

/// The row-conditional coupling of one group, rows on demand.
#[derive(Clone, Copy, Debug)]
pub struct Coupling<'a> {
    pub group: &'a Group,
    pub metric: Metric,
    pub kind: CouplingKind<'a>,
}

/// The `k` largest entries of each row: group-local column index (−1 where unused) and weight.
#[derive(Clone, Debug, PartialEq)]
pub struct TopK {
    pub index: Array2<i64>,
    pub weight: Array2<f64>,
}

impl<'a> Coupling<'a> {
    pub fn new(group: &'a Group, metric: Metric, kind: CouplingKind<'a>) -> Self {
        Coupling {
            group,
            metric,
            kind,
        }
    }

    pub fn n1(&self) -> usize {
        self.group.n1()
    }

    pub fn n2(&self) -> usize {
        self.group.n2()
    }

    /// Writes `P(·|i)` into `out` (length `n2`).
    pub fn row_into(&self, i: usize, out: &mut [f64]) {
        assert_eq!(out.len(), self.n2(), "row buffer must have n2 entries");
        match self.kind {
            CouplingKind::Ot { g, epsilon } => {
                let xi = self.group.x1.row(i);
                let xi = xi.as_slice().expect("standard layout");
                let inv_eps = 1.0 / epsilon;
                let mut max = f64::NEG_INFINITY;
                for ((o, yj), gj) in out.iter_mut().zip(self.group.x2.rows()).zip(g) {
                    let v = gj * inv_eps
                        - self
                            .metric
                            .cost(xi, yj.as_slice().expect("standard layout"))
                            * inv_eps;
                    *o = v;
                    max = max.max(v);
                }
                let mut sum = 0.0;
                for o in out.iter_mut() {
                    *o = fastexp::exp(*o - max);
                    sum += *o;
                }
                out.iter_mut().for_each(|o| *o /= sum);
            }
            CouplingKind::Snn(snn) => {
                out.fill(0.0);
                for (j, w) in snn.row(i) {
                    out[j] = w;
                }
            }
            CouplingKind::Random => out.fill(1.0 / self.n2() as f64),
        }
    }

    /// `P(·|i)` as a new vector.
    pub fn row(&self, i: usize) -> Vec<f64> {
        let mut out = vec![0.0; self.n2()];
        self.row_into(i, &mut out);
        out
    }

    /// `P(j|i)` for one pair.
    pub fn entry(&self, i: usize, j: usize) -> f64 {
        match self.kind {
            CouplingKind::Snn(snn) => snn.row(i).find(|&(c, _)| c == j).map_or(0.0, |(_, w)| w),
            CouplingKind::Random => 1.0 / self.n2() as f64,
            CouplingKind::Ot { .. } => self.row(i)[j],
        }
    }

    /// Runs `visit(i, row)` over every row in parallel, with one row buffer per thread.
    pub fn for_each_row<T: Send>(
        &self,
        visit: impl Fn(usize, &[f64]) -> T + Sync + Send,
    ) -> Vec<T> {
        (0..self.n1())
            .into_par_iter()
            .map_init(
                || vec![0.0; self.n2()],
                |buf, i| {
                    self.row_into(i, buf);
                    visit(i, buf)
                },
            )
            .collect()
    }

    /// The dense `n1 × n2` matrix of `P(j|i)`; only for groups small enough to hold.
    pub fn dense(&self) -> Array2<f64> {
        let rows = self.for_each_row(|_, row| row.to_vec());
        let mut dense = Array2::zeros((self.n1(), self.n2()));
        for (mut out, row) in dense.axis_iter_mut(Axis(0)).zip(rows) {
            out.assign(&ndarray::ArrayView1::from(&row[..]));
        }
        dense
    }

    /// Barycentric projection `Σ_j P(j|i) y_j` of a modality-2 matrix (`n2 × d`, group order).
    pub fn project(&self, y: ArrayView2<'_, f64>) -> Array2<f64> {
        assert_eq!(
            y.nrows(),
            self.n2(),
            "projection needs one row of y per modality-2 row"
        );
        let rows = self.for_each_row(|_, p| {
            let mut acc = vec![0.0; y.ncols()];
            for (pj, yj) in p.iter().zip(y.rows()) {
                if *pj != 0.0 {
                    acc.iter_mut().zip(yj).for_each(|(a, v)| *a += pj * v);
                }
            }
            acc
        });
        let mut out = Array2::zeros((self.n1(), y.ncols()));
        for (mut o, r) in out.axis_iter_mut(Axis(0)).zip(rows) {
            o.assign(&ndarray::ArrayView1::from(&r[..]));
        }
        out
    }

    /// Each row's `k` largest entries, largest first (ties by lower index). With `mass`, a row
    /// keeps only the fewest leading entries whose weights sum to at least `mass` (at most `k`).
    pub fn top_k(&self, k: usize, mass: Option<f64>) -> TopK {
        let rows = self.for_each_row(|_, p| select_top(p, k, mass));
        let mut index = Array2::from_elem((self.n1(), k), -1i64);
        let mut weight = Array2::zeros((self.n1(), k));
        for (i, row) in rows.into_iter().enumerate() {
            for (slot, (j, w)) in row.into_iter().enumerate() {
                index[[i, slot]] = j as i64;
                weight[[i, slot]] = w;
            }
        }
        TopK { index, weight }
    }
}

/// The top entries of one row, as `(column, weight)`, largest first.
pub fn select_top(row: &[f64], k: usize, mass: Option<f64>) -> Vec<(usize, f64)> {
    let mut order: Vec<usize> = (0..row.len()).collect();
    let by_weight = |a: &usize, b: &usize| row[*b].total_cmp(&row[*a]).then(a.cmp(b));
    let k = k.min(row.len());
    if k < order.len() && k > 0 {
        order.select_nth_unstable_by(k - 1, by_weight);
        order.truncate(k);
    }
    order.sort_by(by_weight);
    order.truncate(k);
    let mut kept = Vec::with_capacity(k);
    let mut held = 0.0;
    for j in order {
        if mass.is_some_and(|m| held >= m) {
            break;
        }
        held += row[j];
        kept.push((j, row[j]));
    }
    kept
}

/// Pseudo-pairs (METHOD.md "Outputs"): for each row `i`, `draws` indices `j ~ P(·|i)`, drawn
/// independently by inverting the row's cumulative distribution at [`pair_uniforms`], so the
/// result does not depend on thread count or scheduling, and another backend that inverts the
/// same uniforms draws the same pairs.
pub fn sample_pairs(coupling: &Coupling<'_>, draws: usize, seed: u64) -> Array2<i64> {
    let rows = coupling.for_each_row(|i, p| {
        let cumulative: Vec<f64> = p
            .iter()
            .scan(0.0, |acc, &w| {
                *acc += w;
                Some(*acc)
            })
            .collect();
        let total = cumulative.last().copied().unwrap_or(0.0);
        pair_uniforms(seed, i, draws)
            .into_iter()
            .map(|u| {
                let u = u * total;
                cumulative.partition_point(|&c| c <= u).min(p.len() - 1) as i64
            })
            .collect::<Vec<i64>>()
    });
    let mut out = Array2::from_elem((coupling.n1(), draws), -1);
    for (i, row) in rows.into_iter().enumerate() {
        for (d, j) in row.into_iter().enumerate() {
            out[[i, d]] = j;
        }
    }
    out
}

/// The `draws` uniforms in `[0, 1)` behind row `row`'s pseudo-pairs: a generator of its own,
/// seeded from `(seed, row)`.
pub fn pair_uniforms(seed: u64, row: usize, draws: usize) -> Vec<f64> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(
        seed ^ (row as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
    );
    (0..draws).map(|_| rng.random::<f64>()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_entries_are_sorted_and_stop_at_mass() {
        let row = [0.1, 0.5, 0.05, 0.3, 0.05];
        assert_eq!(
            select_top(&row, 3, None),
            vec![(1, 0.5), (3, 0.3), (0, 0.1)]
        );
        assert_eq!(select_top(&row, 4, Some(0.75)), vec![(1, 0.5), (3, 0.3)]);
        assert_eq!(select_top(&row, 10, None).len(), 5);
        // ties: lower index first
        assert_eq!(select_top(&row, 5, None)[3..], [(2, 0.05), (4, 0.05)]);
    }
}

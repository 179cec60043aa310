//! Matching quality against ground truth (METHOD.md "Metrics", App. D.1).
//!
//! Ground truth is a bijection `partner[i] = j` between a group's modality-1 and modality-2 rows
//! (rows of the same unit), built from unit ids by [`partners_from_ids`]; matchers never see it.
//! * trace `(1/n) Σ_i P(partner(i) | i)` — random gives `1/n`;
//! * FOSCTTM, ties counted one half, so the random coupling scores exactly 0.5;
//! * latent MSE `(1/n1) Σ_i ‖z_i − Σ_j P(j|i) z_j‖²`, which needs latents but no ids.

use std::collections::HashMap;

use ndarray::{Array2, ArrayView2, Axis};
use rayon::prelude::*;

use crate::cost::squared_distance;
use crate::matcher::MatcherError;
use crate::{Coupling, Problem, Solved};

/// `partner[i] = j` when the ids of a group's rows pair them one to one; `None` otherwise
/// (different sizes, a repeated id, or an id missing from the other modality).
pub fn partners_from_ids(ids1: &[&str], ids2: &[&str]) -> Option<Vec<usize>> {
    if ids1.len() != ids2.len() {
        return None;
    }
    let mut position: HashMap<&str, usize> = HashMap::with_capacity(ids2.len());
    for (j, id) in ids2.iter().enumerate() {
        if position.insert(id, j).is_some() {
            return None;
        }
    }
    let mut seen = vec![false; ids2.len()];
    ids1.iter()
        .map(|id| {
            let j = *position.get(id)?;
            if std::mem::replace(&mut seen[j], true) {
                None
            } else {
                Some(j)
            }
        })
        .collect()
}

/// Mean probability given to the true partner.
pub fn trace(coupling: &Coupling<'_>, partner: &[usize]) -> f64 {
    let hits = coupling.for_each_row(|i, row| row[partner[i]]);
    hits.iter().sum::<f64>() / hits.len() as f64
}

/// FOSCTTM of the coupling, using `features1` (group order, modality 1) for both ends:
/// `x̂_i = Σ_j P(j|i) x⁽¹⁾_{unit(j)}`. `None` for groups of fewer than 2 units.
pub fn foscttm(
    coupling: &Coupling<'_>,
    partner: &[usize],
    features1: ArrayView2<'_, f64>,
) -> Option<f64> {
    let n = partner.len();
    if n < 2 {
        return None;
    }
    let mut unit_of = vec![0; n];
    for (i, &j) in partner.iter().enumerate() {
        unit_of[j] = i;
    }
    let features_by_column = features1.select(Axis(0), &unit_of);
    let projected = coupling.project(features_by_column.view());
    Some(foscttm_of_projection(projected.view(), features1))
}

/// FOSCTTM between projections `x̂` and truths `x`, where row `i` of each is the same unit.
pub fn foscttm_of_projection(projected: ArrayView2<'_, f64>, truth: ArrayView2<'_, f64>) -> f64 {
    let n = truth.nrows();
    let owned_p = projected.as_standard_layout().into_owned();
    let owned_t = truth.as_standard_layout().into_owned();
    let p = |i: usize| owned_p.row(i).to_slice().expect("standard layout").to_vec();
    let x = |i: usize| owned_t.row(i).to_slice().expect("standard layout").to_vec();
    let fraction_closer =
        |anchor: &[f64], own: &[f64], others: &dyn Fn(usize) -> Vec<f64>, skip: usize| {
            let own_d = squared_distance(anchor, own);
            let mut closer = 0.0;
            for m in (0..n).filter(|&m| m != skip) {
                let d = squared_distance(anchor, &others(m));
                if d < own_d {
                    closer += 1.0;
                } else if d == own_d {
                    closer += 0.5;
                }
            }
            closer / (n - 1) as f64
        };
    let total: f64 = (0..n)
        .into_par_iter()
        .map(|i| {
            let (pi, xi) = (p(i), x(i));
            fraction_closer(&pi, &xi, &x, i) + fraction_closer(&xi, &pi, &p, i)
        })
        .sum();
    total / (2 * n) as f64
}

/// `(1/n1) Σ_i ‖z1_i − Σ_j P(j|i) z2_j‖²` (latents in group order).
pub fn latent_mse(
    coupling: &Coupling<'_>,
    z1: ArrayView2<'_, f64>,
    z2: ArrayView2<'_, f64>,
) -> f64 {
    let projected: Array2<f64> = coupling.project(z2);
    let total: f64 = (&projected - &z1).mapv(|d| d * d).sum();
    total / z1.nrows() as f64
}

/// Latent MSE of pseudo-pairs, `(1/n1) Σ_i Σ_j P(j|i) ‖z1_i − z2_j‖²`: the expected squared
/// latent error of a partner drawn from `P(·|i)` (latents in group order).
///
/// [`latent_mse`] scores the barycentric projection, so the random coupling's group mean is a
/// strong baseline there; this scores the pseudo-pairs a user samples. For the random coupling it
/// is twice the within-group variance: the "random" latent MSE of the paper's Table 1, which the
/// authors compute from a random permutation (and average over the 4 coordinates instead of
/// summing them).
pub fn latent_pair_mse(
    coupling: &Coupling<'_>,
    z1: ArrayView2<'_, f64>,
    z2: ArrayView2<'_, f64>,
) -> f64 {
    let mut row = vec![0.0; coupling.n2()];
    let total: f64 = (0..coupling.n1())
        .map(|i| {
            coupling.row_into(i, &mut row);
            let zi = z1.row(i);
            row.iter()
                .zip(z2.rows())
                .map(|(&p, zj)| {
                    p * zi
                        .iter()
                        .zip(zj)
                        .map(|(a, b)| (a - b) * (a - b))
                        .sum::<f64>()
                })
                .sum::<f64>()
        })
        .sum();
    total / z1.nrows() as f64
}

/// [`latent_pair_mse`] from two projections a backend streams anyway, `ẑ = P z2` and
/// `q̂ = P ‖z2‖²` (row `i` of `projected` is `[ẑ_i, q̂_i]`):
/// `Σ_j P(j|i) ‖z1_i − z2_j‖² = ‖z1_i‖² − 2 z1_i·ẑ_i + q̂_i`, clamped at 0 against rounding.
pub fn latent_pair_mse_from_projection(
    z1: ArrayView2<'_, f64>,
    projected: ArrayView2<'_, f64>,
) -> f64 {
    let d = z1.ncols();
    assert_eq!(projected.ncols(), d + 1, "projection of [z2, ‖z2‖²]");
    let total: f64 = z1
        .rows()
        .into_iter()
        .zip(projected.rows())
        .map(|(zi, pi)| {
            let norm: f64 = zi.iter().map(|a| a * a).sum();
            let cross: f64 = zi.iter().zip(pi.iter()).map(|(a, b)| a * b).sum();
            (norm - 2.0 * cross + pi[d]).max(0.0)
        })
        .sum();
    total / z1.nrows() as f64
}

/// `[z, ‖z‖²]` row by row: what to project for [`latent_pair_mse_from_projection`].
pub fn with_squared_norms(z: ArrayView2<'_, f64>) -> Array2<f64> {
    let (n, d) = z.dim();
    Array2::from_shape_fn((n, d + 1), |(i, k)| {
        if k < d {
            z[[i, k]]
        } else {
            z.row(i).iter().map(|a| a * a).sum()
        }
    })
}

/// The trace of the random coupling, `1/n2`.
pub fn random_trace(n2: usize) -> f64 {
    1.0 / n2 as f64
}

/// What is known about the truth, beyond the scores: used only to evaluate, never to match.
/// Matrices are in input row order of their modality.
#[derive(Clone, Debug, Default)]
pub struct GroundTruth {
    /// Unit ids (`ids1`, `ids2`): rows with equal ids are the same unit.
    pub ids: Option<(Vec<String>, Vec<String>)>,
    /// Modality-1 features for FOSCTTM (default: the transformed scores).
    pub features1: Option<Array2<f64>>,
    /// Latents of both modalities, for the latent MSEs.
    pub latents: Option<(Array2<f64>, Array2<f64>)>,
}

/// One group's metrics; `None` where not computable.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GroupMetrics {
    pub trace: Option<f64>,
    pub foscttm: Option<f64>,
    pub latent_mse: Option<f64>,
    pub latent_pair_mse: Option<f64>,
    pub random_trace: Option<f64>,
}

/// Every metric the ground truth allows, per group, through the solved matching's own outputs
/// (so a GPU result is evaluated on the GPU).
pub fn evaluate(
    solved: &dyn Solved,
    truth: &GroundTruth,
) -> Result<Vec<GroupMetrics>, MatcherError> {
    let problem = solved.problem();
    let mut metrics = vec![GroupMetrics::default(); problem.groups.len()];
    if let Some((ids1, ids2)) = &truth.ids {
        evaluate_pairs(solved, ids1, ids2, truth.features1.as_ref(), &mut metrics)?;
    }
    if let Some((z1, z2)) = &truth.latents {
        evaluate_latents(solved, z1, z2, &mut metrics)?;
    }
    Ok(metrics)
}

fn evaluate_pairs(
    solved: &dyn Solved,
    ids1: &[String],
    ids2: &[String],
    features1: Option<&Array2<f64>>,
    metrics: &mut [GroupMetrics],
) -> Result<(), MatcherError> {
    let problem = solved.problem();
    let partners = group_partners(problem, ids1, ids2);
    let diagonals = solved.diagonal(&partners)?;
    // FOSCTTM projects the modality-1 features of each column's unit:
    // x̂_i = Σ_j P(j|i) x_unit(j).
    let features: Vec<Array2<f64>> = problem
        .groups
        .iter()
        .map(|g| match features1 {
            Some(f) => f.select(Axis(0), &g.rows1),
            None => g.x1.clone(),
        })
        .collect();
    let by_column: Vec<Array2<f64>> = features
        .iter()
        .zip(&partners)
        .zip(&problem.groups)
        .map(|((f, p), g)| match p {
            Some(p) => f.select(Axis(0), &unit_of_column(p)),
            None => Array2::zeros((g.n2(), f.ncols())),
        })
        .collect();
    let projected = solved.project(&crate::scatter::views(&by_column))?;
    for (index, m) in metrics.iter_mut().enumerate() {
        if let (Some(diagonal), Some(_)) = (&diagonals[index], &partners[index]) {
            m.trace = Some(diagonal.iter().sum::<f64>() / diagonal.len() as f64);
            m.random_trace = Some(random_trace(problem.groups[index].n2()));
            if diagonal.len() >= 2 {
                m.foscttm = Some(foscttm_of_projection(
                    projected[index].view(),
                    features[index].view(),
                ));
            }
        }
    }
    Ok(())
}

fn evaluate_latents(
    solved: &dyn Solved,
    z1: &Array2<f64>,
    z2: &Array2<f64>,
    metrics: &mut [GroupMetrics],
) -> Result<(), MatcherError> {
    let problem = solved.problem();
    // Project [z2, ‖z2‖²] once: the first columns give the projection's MSE, the last the
    // pseudo-pairs' (`latent_pair_mse_from_projection`).
    let z2s: Vec<Array2<f64>> = problem
        .groups
        .iter()
        .map(|g| with_squared_norms(z2.select(Axis(0), &g.rows2).view()))
        .collect();
    let projected = solved.project(&crate::scatter::views(&z2s))?;
    for ((m, g), p) in metrics.iter_mut().zip(&problem.groups).zip(projected) {
        let z1g = z1.select(Axis(0), &g.rows1);
        let d = z1g.ncols();
        let barycentre = p.slice(ndarray::s![.., ..d]);
        m.latent_mse = Some((&barycentre - &z1g).mapv(|d| d * d).sum() / g.n1() as f64);
        m.latent_pair_mse = Some(latent_pair_mse_from_projection(z1g.view(), p.view()));
    }
    Ok(())
}

/// `partner[i]` per group when ids pair the group's rows one to one; warns otherwise.
pub fn group_partners(
    problem: &Problem,
    ids1: &[String],
    ids2: &[String],
) -> Vec<Option<Vec<usize>>> {
    problem
        .groups
        .iter()
        .map(|g| {
            let a: Vec<&str> = g.rows1.iter().map(|&r| ids1[r].as_str()).collect();
            let b: Vec<&str> = g.rows2.iter().map(|&r| ids2[r].as_str()).collect();
            let partners = partners_from_ids(&a, &b);
            if partners.is_none() {
                tracing::warn!(
                    label = %g.label,
                    "ids do not pair this group's rows one to one (n1 = {}, n2 = {}): trace and FOSCTTM left null",
                    g.n1(),
                    g.n2()
                );
            }
            partners
        })
        .collect()
}

/// `unit[j] = i` for `partner[i] = j`.
fn unit_of_column(partner: &[usize]) -> Vec<usize> {
    let mut unit = vec![0; partner.len()];
    for (i, &j) in partner.iter().enumerate() {
        unit[j] = i;
    }
    unit
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::random_coupling;
    use crate::{Matcher, Metric, Problem, ScoresKind};
    use ndarray::array;

    #[test]
    fn partners_need_a_bijection() {
        assert_eq!(
            partners_from_ids(&["a", "b"], &["b", "a"]),
            Some(vec![1, 0])
        );
        assert_eq!(partners_from_ids(&["a", "a"], &["b", "a"]), None);
        assert_eq!(partners_from_ids(&["a", "c"], &["b", "a"]), None);
        assert_eq!(partners_from_ids(&["a"], &["b", "a"]), None);
    }

    #[test]
    fn random_coupling_scores_the_closed_forms() {
        let s = array![[0.0, 1.0], [1.0, 0.0], [2.0, 0.5], [0.3, 0.2]];
        let p = crate::problem::twin_problem(s.view());
        let c = random_coupling(&p.groups[0], Metric::Euclidean);
        let partner = vec![0, 1, 2, 3];
        assert!((trace(&c, &partner) - 0.25).abs() < 1e-12);
        assert!((foscttm(&c, &partner, s.view()).unwrap() - 0.5).abs() < 1e-12);
        let mean = s.mean_axis(Axis(0)).unwrap();
        let expect = s
            .rows()
            .into_iter()
            .map(|r| squared_distance(r.as_slice().unwrap(), mean.as_slice().unwrap()))
            .sum::<f64>()
            / 4.0;
        assert!((latent_mse(&c, s.view(), s.view()) - expect).abs() < 1e-12);
        // Random pseudo-pairs: the mean squared distance over all ordered pairs, twice the
        // variance the projection scores.
        assert!((latent_pair_mse(&c, s.view(), s.view()) - 2.0 * expect).abs() < 1e-12);
    }

    #[test]
    fn pair_mse_from_projections_equals_the_direct_sum() {
        let s1 = array![[0.0, 1.0], [1.0, 0.0], [2.0, 0.5], [0.3, 0.2]];
        let s2 = array![[0.1, 0.9], [1.2, 0.1], [1.8, 0.4]];
        let z1 = array![
            [0.2, 0.3, 0.9],
            [0.5, 0.1, 0.4],
            [0.8, 0.8, 0.1],
            [0.1, 0.6, 0.6]
        ];
        let z2 = array![[0.3, 0.3, 0.8], [0.4, 0.2, 0.5], [0.9, 0.7, 0.2]];
        let (l1, l2) = (vec!["g".to_string(); 4], vec!["g".to_string(); 3]);
        let p = Problem::from_scores(
            s1.view(),
            &l1,
            s2.view(),
            &l2,
            ScoresKind::Logits,
            Metric::Euclidean,
        )
        .unwrap();
        let group = &p.groups[0];
        let solution = crate::CpuMatcher
            .solve(&p, &crate::SolveOptions::default(), &crate::NoProgress)
            .unwrap();
        let c = solution.coupling(&p, 0);
        let (z1g, z2g) = (
            z1.select(Axis(0), &group.rows1),
            z2.select(Axis(0), &group.rows2),
        );
        let direct = latent_pair_mse(&c, z1g.view(), z2g.view());
        let projected = c.project(with_squared_norms(z2g.view()).view());
        let streamed = latent_pair_mse_from_projection(z1g.view(), projected.view());
        assert!((direct - streamed).abs() < 1e-12, "{direct} vs {streamed}");
        // Pseudo-pairs never beat their own projection (Jensen), and here the coupling is not a
        // point mass, so strictly.
        assert!(direct > latent_mse(&c, z1g.view(), z2g.view()));
    }

    #[test]
    fn perfect_projection_has_foscttm_zero() {
        let x = array![[0.0, 1.0], [1.0, 0.0], [2.0, 0.5]];
        assert_eq!(foscttm_of_projection(x.view(), x.view()), 0.0);
    }
}

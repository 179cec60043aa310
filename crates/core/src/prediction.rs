//! How good is a cross-modal prediction `f : modality 2 → modality 1` (METHOD.md "Downstream
//! cross-modal prediction", paper Sec. 5 and 6.2–6.3)?
//!
//! * With true pairs (row `i` of the prediction and of the truth are the same unit):
//!   `R² = 1 − MSE(pred) / MSE(mean predictor)`, the mean predictor being the truth's own mean;
//!   a predictor no better than the mean scores 0, a perfect one 1.
//! * Without pairs, per label group, comparing the distribution of the predictions with that of
//!   the group's real modality-1 rows:
//!   - the L2 norm of the difference of the two means;
//!   - the sliced 1-Wasserstein distance: the mean over [`SLICES`] random unit directions
//!     (seeded, the same for every group) of the exact 1-D W1 between the projected samples
//!     (sorted samples, any sizes);
//!   - the empirical KL divergence `D(truth ‖ pred)` by the k-nearest-neighbour estimator of
//!     Wang, Kulkarni and Verdú (2009, IEEE Trans. Inf. Theory 55(5), Eq. 5) with
//!     `k =` [`KL_NEIGHBOURS`], computed in the span of the truth's leading [`KL_DIMENSIONS`]
//!     principal directions (randomised subspace iteration), since nearest-neighbour
//!     estimators are meaningless in thousands of raw dimensions;
//!
//!   and their averages over groups weighted by the group's number of truth rows. A group seen
//!   only in the truth or only in the prediction is reported with no values; groups never seen
//!   in training are evaluated like any other (out of distribution).

use std::collections::BTreeMap;

use ndarray::{Array1, Array2, ArrayView2, Axis};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::Serialize;

use crate::CoreError;

/// Random directions of the sliced 1-Wasserstein distance.
pub const SLICES: usize = 64;
/// Neighbours of the KL estimator.
pub const KL_NEIGHBOURS: usize = 5;
/// Principal directions the KL estimator works in (fewer when the data have fewer columns).
pub const KL_DIMENSIONS: usize = 8;
/// Seed of the random directions (slices, subspace iteration): metrics are deterministic.
const SEED: u64 = 0x5EED_0F5A;

/// `1 − Σ‖pred_i − truth_i‖² / Σ‖truth_i − mean(truth)‖²` over rows paired by position.
pub fn r2(pred: ArrayView2<'_, f64>, truth: ArrayView2<'_, f64>) -> Result<f64, CoreError> {
    same_columns(pred, truth)?;
    if pred.nrows() != truth.nrows() {
        return Err(shape(format!(
            "R² pairs row i of the prediction with row i of the truth, but they have {} and {} rows",
            pred.nrows(),
            truth.nrows()
        )));
    }
    let mean = column_mean(truth);
    let residual: f64 = (&pred - &truth).iter().map(|v| v * v).sum();
    let total: f64 = (&truth - &mean).iter().map(|v| v * v).sum();
    if total <= 0.0 {
        return Err(shape(
            "the truth has no variance: R² is undefined".to_string(),
        ));
    }
    Ok(1.0 - residual / total)
}

/// Distribution metrics of one label group.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GroupDistance {
    pub label: String,
    pub n_pred: usize,
    pub n_truth: usize,
    /// `‖mean(pred) − mean(truth)‖₂`.
    pub mean_l2: Option<f64>,
    /// Sliced 1-Wasserstein distance.
    pub sliced_w1: Option<f64>,
    /// `D(truth ‖ pred)`, kNN estimate in the truth's principal subspace (nats).
    pub kl: Option<f64>,
}

/// Group-size-weighted averages of [`GroupDistance`] over the groups with values.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Distances {
    pub groups: Vec<GroupDistance>,
    pub mean_l2: Option<f64>,
    pub sliced_w1: Option<f64>,
    pub kl: Option<f64>,
}

/// Per-group distances between predicted and real modality-1 rows (any row counts; groups by
/// label).
pub fn distances(
    pred: ArrayView2<'_, f64>,
    pred_labels: &[String],
    truth: ArrayView2<'_, f64>,
    truth_labels: &[String],
) -> Result<Distances, CoreError> {
    same_columns(pred, truth)?;
    for (what, x, labels) in [
        ("prediction labels", pred, pred_labels),
        ("truth labels", truth, truth_labels),
    ] {
        if x.nrows() != labels.len() {
            return Err(shape(format!(
                "{what}: {} labels for {} rows",
                labels.len(),
                x.nrows()
            )));
        }
    }
    let basis = principal_subspace(truth, KL_DIMENSIONS);
    let directions = random_directions(truth.ncols(), SLICES);
    let mut by_label: BTreeMap<&str, (Vec<usize>, Vec<usize>)> = BTreeMap::new();
    for (i, l) in pred_labels.iter().enumerate() {
        by_label.entry(l).or_default().0.push(i);
    }
    for (i, l) in truth_labels.iter().enumerate() {
        by_label.entry(l).or_default().1.push(i);
    }
    let groups: Vec<GroupDistance> = by_label
        .into_iter()
        .map(|(label, (rows_p, rows_t))| {
            let p = pred.select(Axis(0), &rows_p);
            let t = truth.select(Axis(0), &rows_t);
            let both = !rows_p.is_empty() && !rows_t.is_empty();
            GroupDistance {
                label: label.to_string(),
                n_pred: rows_p.len(),
                n_truth: rows_t.len(),
                mean_l2: both.then(|| {
                    let d = column_mean(p.view()) - column_mean(t.view());
                    d.dot(&d).sqrt()
                }),
                sliced_w1: both.then(|| sliced_w1(p.view(), t.view(), directions.view())),
                kl: knn_kl(t.dot(&basis).view(), p.dot(&basis).view(), KL_NEIGHBOURS),
            }
        })
        .collect();
    let weighted = |value: fn(&GroupDistance) -> Option<f64>| {
        let (sum, weight) = groups
            .iter()
            .filter_map(|g| value(g).map(|v| (v * g.n_truth as f64, g.n_truth as f64)))
            .fold((0.0, 0.0), |(s, w), (v, n)| (s + v, w + n));
        (weight > 0.0).then(|| sum / weight)
    };
    Ok(Distances {
        mean_l2: weighted(|g| g.mean_l2),
        sliced_w1: weighted(|g| g.sliced_w1),
        kl: weighted(|g| g.kl),
        groups,
    })
}

fn shape(message: String) -> CoreError {
    CoreError::Shape {
        what: "prediction",
        message,
    }
}

fn same_columns(pred: ArrayView2<'_, f64>, truth: ArrayView2<'_, f64>) -> Result<(), CoreError> {
    if pred.ncols() == truth.ncols() {
        Ok(())
    } else {
        Err(shape(format!(
            "the prediction has {} columns but the truth has {}",
            pred.ncols(),
            truth.ncols()
        )))
    }
}

fn column_mean(x: ArrayView2<'_, f64>) -> Array1<f64> {
    x.mean_axis(Axis(0))
        .unwrap_or_else(|| Array1::zeros(x.ncols()))
}

/// `d × count` unit vectors, uniform on the sphere.
fn random_directions(d: usize, count: usize) -> Array2<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    let mut dirs: Array2<f64> =
        Array2::from_shape_simple_fn((d, count), || StandardNormal.sample(&mut rng));
    for mut column in dirs.columns_mut() {
        let norm = column.dot(&column).sqrt().max(f64::MIN_POSITIVE);
        column /= norm;
    }
    dirs
}

/// Mean over the columns of `directions` of the 1-D W1 between the projected samples.
pub fn sliced_w1(
    a: ArrayView2<'_, f64>,
    b: ArrayView2<'_, f64>,
    directions: ArrayView2<'_, f64>,
) -> f64 {
    let (pa, pb) = (a.dot(&directions), b.dot(&directions));
    let total: f64 = (0..directions.ncols())
        .map(|k| w1_1d(pa.column(k).to_vec(), pb.column(k).to_vec()))
        .sum();
    total / directions.ncols().max(1) as f64
}

/// Exact 1-Wasserstein distance between two empirical distributions on the line (uniform
/// weights, any sizes): `∫ |F_a(x) − F_b(x)| dx`, summed between consecutive sample points.
pub fn w1_1d(mut a: Vec<f64>, mut b: Vec<f64>) -> f64 {
    if a.is_empty() || b.is_empty() {
        return f64::NAN;
    }
    a.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    let (na, nb) = (a.len() as f64, b.len() as f64);
    let (mut i, mut j) = (0, 0);
    let mut last = a[0].min(b[0]);
    let mut distance = 0.0;
    while i < a.len() || j < b.len() {
        let next = match (a.get(i), b.get(j)) {
            (Some(&x), Some(&y)) => x.min(y),
            (Some(&x), None) => x,
            (None, Some(&y)) => y,
            (None, None) => break,
        };
        distance += (i as f64 / na - j as f64 / nb).abs() * (next - last);
        last = next;
        while a.get(i) == Some(&next) {
            i += 1;
        }
        while b.get(j) == Some(&next) {
            j += 1;
        }
    }
    distance
}

/// An orthonormal `d × q` basis of (approximately) the leading principal subspace of `x`:
/// randomised subspace iteration (Halko, Martinsson and Tropp 2011) on the centred rows, four
/// power iterations. `q = min(dims, d, n − 1)`.
fn principal_subspace(x: ArrayView2<'_, f64>, dims: usize) -> Array2<f64> {
    let (n, d) = x.dim();
    let q = dims.min(d).min(n.saturating_sub(1)).max(1);
    if q >= d {
        return Array2::eye(d);
    }
    let centred = &x - &column_mean(x);
    let mut basis = random_directions(d, q);
    for _ in 0..4 {
        let scores = centred.dot(&basis); // n × q
        basis = centred.t().dot(&scores); // d × q
        orthonormalise(&mut basis);
    }
    basis
}

/// Modified Gram–Schmidt on the columns, in place; a column that vanishes becomes zero.
fn orthonormalise(m: &mut Array2<f64>) {
    for k in 0..m.ncols() {
        for prev in 0..k {
            let p = m.column(prev).to_owned();
            let along = m.column(k).dot(&p);
            m.column_mut(k).scaled_add(-along, &p);
        }
        let norm = m.column(k).dot(&m.column(k)).sqrt();
        if norm > 1e-300 {
            m.column_mut(k).mapv_inplace(|v| v / norm);
        } else {
            m.column_mut(k).fill(0.0);
        }
    }
}

/// `D(p ‖ q)` from samples `p` (n × d) and `q` (m × d): `d/n Σ_i ln(ν_k(i) / ρ_k(i)) +
/// ln(m / (n − 1))`, where `ρ_k(i)` is the distance from `p_i` to its k-th nearest other point
/// of `p` and `ν_k(i)` to its k-th nearest point of `q` (Wang, Kulkarni and Verdú 2009). `k` is
/// lowered to what both samples allow; `None` when a sample has fewer than 2 points. Distances
/// are floored at 1e-12 of the data's scale so that repeated points do not give ±∞.
pub fn knn_kl(p: ArrayView2<'_, f64>, q: ArrayView2<'_, f64>, k: usize) -> Option<f64> {
    let (n, m) = (p.nrows(), q.nrows());
    if n < 2 || m < 1 {
        return None;
    }
    let k = k.min(n - 1).min(m).max(1);
    let d = p.ncols() as f64;
    let scale = p.iter().chain(q.iter()).fold(0.0f64, |a, v| a.max(v.abs()));
    let floor = 1e-12 * scale.max(1e-300);
    let kth = |from: ArrayView2<'_, f64>, x: ndarray::ArrayView1<'_, f64>, skip: Option<usize>| {
        let mut dist: Vec<f64> = from
            .rows()
            .into_iter()
            .enumerate()
            .filter(|(j, _)| Some(*j) != skip)
            .map(|(_, y)| {
                let diff = &y - &x;
                diff.dot(&diff)
            })
            .collect();
        let (_, kth, _) = dist.select_nth_unstable_by(k - 1, f64::total_cmp);
        kth.sqrt().max(floor)
    };
    let sum: f64 = (0..n)
        .map(|i| {
            let x = p.row(i);
            (kth(q, x, None) / kth(p, x, Some(i))).ln()
        })
        .sum();
    Some(d * sum / n as f64 + (m as f64 / (n as f64 - 1.0)).ln())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{array, s};
    use rand_distr::Normal;

    #[test]
    fn r2_is_one_for_the_truth_and_zero_for_its_mean() {
        let truth = array![[1.0, 2.0], [3.0, 0.0], [5.0, 1.0]];
        assert_eq!(r2(truth.view(), truth.view()).unwrap(), 1.0);
        let mean = column_mean(truth.view());
        let constant = Array2::from_shape_fn((3, 2), |(_, j)| mean[j]);
        assert!(r2(constant.view(), truth.view()).unwrap().abs() < 1e-15);
        assert!(r2(truth.slice(s![..2, ..]), truth.view()).is_err());
    }

    #[test]
    fn w1_on_the_line_matches_closed_forms() {
        // A shift by c moves every quantile by c.
        assert!((w1_1d(vec![0.0, 1.0, 2.0], vec![0.5, 1.5, 2.5]) - 0.5).abs() < 1e-15);
        // Point mass at 0 against uniform {0, 1, 2, 3}: mean |x| = 1.5.
        assert!((w1_1d(vec![0.0], vec![0.0, 1.0, 2.0, 3.0]) - 1.5).abs() < 1e-15);
        // Different sizes, same distribution.
        assert!(w1_1d(vec![0.0, 1.0], vec![0.0, 0.0, 1.0, 1.0]).abs() < 1e-15);
    }

    #[test]
    fn knn_kl_recovers_the_gaussian_closed_form() {
        // D(N(0, I) ‖ N(μ, I)) = ‖μ‖² / 2 in 2 dimensions, μ = (1, 0): 0.5.
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let normal = Normal::new(0.0, 1.0).unwrap();
        let p = Array2::from_shape_simple_fn((2000, 2), || normal.sample(&mut rng));
        let mut q = Array2::from_shape_simple_fn((2000, 2), || normal.sample(&mut rng));
        q.column_mut(0).mapv_inplace(|v| v + 1.0);
        let kl = knn_kl(p.view(), q.view(), 5).unwrap();
        assert!((kl - 0.5).abs() < 0.1, "estimate {kl}");
        let other = Array2::from_shape_simple_fn((1000, 2), || normal.sample(&mut rng));
        let same = knn_kl(p.view(), other.view(), 5).unwrap();
        assert!(same.abs() < 0.1, "estimate {same}");
    }

    #[test]
    fn distances_are_zero_for_identical_groups_and_see_a_shift() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let normal = Normal::new(0.0, 1.0).unwrap();
        let truth = Array2::from_shape_simple_fn((300, 12), || normal.sample(&mut rng));
        let labels: Vec<String> = (0..300).map(|i| (i % 3).to_string()).collect();
        let same = distances(truth.view(), &labels, truth.view(), &labels).unwrap();
        assert_eq!(same.mean_l2, Some(0.0));
        assert_eq!(same.sliced_w1, Some(0.0));
        let shifted = &truth + 2.0;
        let d = distances(shifted.view(), &labels, truth.view(), &labels).unwrap();
        // Shift of 2 in 12 coordinates: ‖Δμ‖ = 2√12; sliced W1 = E|θ·Δ| = 2√12 · E|θ₁|.
        assert!((d.mean_l2.unwrap() - 2.0 * 12f64.sqrt()).abs() < 1e-9);
        assert!(d.sliced_w1.unwrap() > 1.0);
        assert!(d.kl.unwrap() > same.kl.unwrap() + 1.0);
        // A label only in the truth has no values and no weight.
        let mut other = labels.clone();
        other[0] = "x".into();
        let d = distances(truth.view(), &labels, truth.view(), &other).unwrap();
        let x = d.groups.iter().find(|g| g.label == "x").unwrap();
        assert_eq!((x.n_pred, x.n_truth, x.mean_l2), (0, 1, None));
    }
}

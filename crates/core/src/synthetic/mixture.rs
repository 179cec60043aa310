//! A built-in data set with known propensities: the latent Gaussian mixture behind `psa demo`.
//!
//! Each unit has a latent `z ∈ R^d` drawn, within label group `t`, from `N(μ_t, I)`. With equal
//! priors the propensity is `p(t | z) = softmax_t(−‖z − μ_t‖² / 2)`, so its logits are exact
//! ("oracle" scores). They see only the `T − 1` directions spanned by the group means: with
//! `d > T − 1` units with equal propensity stay indistinguishable, which is what makes matching
//! non-trivial, as in the paper. Each modality observes the unit through its own view
//! (`tanh(W₁ z)` and `W₂ z`, plus noise) and may add estimation noise to its scores, as trained
//! classifiers would. Rows are shuffled independently per modality; ids give the truth.

use ndarray::{Array1, Array2, Axis};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, StandardNormal};

use crate::{Metric, Problem, ScoresKind};

/// Size and difficulty of the synthetic data set.
#[derive(Clone, Debug, PartialEq)]
pub struct SyntheticConfig {
    pub groups: usize,
    pub n_per_group: usize,
    pub latent_dim: usize,
    pub feature_dim: usize,
    /// Distance of group means from the origin.
    pub separation: f64,
    /// Standard deviation of the noise added to each modality's logits.
    pub score_noise: f64,
    pub seed: u64,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        SyntheticConfig {
            groups: 6,
            n_per_group: 500,
            latent_dim: 8,
            feature_dim: 16,
            separation: 2.0,
            score_noise: 0.5,
            seed: 0,
        }
    }
}

/// One modality of the synthetic set, rows in that modality's (shuffled) order.
#[derive(Clone, Debug)]
pub struct SyntheticModality {
    pub labels: Vec<String>,
    pub ids: Vec<String>,
    /// Classifier logits, `n × T`.
    pub scores: Array2<f64>,
    /// Observed features, `n × feature_dim`.
    pub features: Array2<f64>,
    /// The unit's latent `z`, `n × latent_dim`.
    pub latents: Array2<f64>,
}

#[derive(Clone, Debug)]
pub struct SyntheticData {
    pub modality1: SyntheticModality,
    pub modality2: SyntheticModality,
}

/// Draws the data set described by `config` (deterministic in `config.seed`).
pub fn latent_mixture(config: &SyntheticConfig) -> SyntheticData {
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let means = random_matrix(&mut rng, config.groups, config.latent_dim);
    let means = normalise_rows(means) * config.separation;
    let n = config.groups * config.n_per_group;
    let mut z = Array2::zeros((n, config.latent_dim));
    let mut labels = Vec::with_capacity(n);
    for (unit, mut zi) in z.axis_iter_mut(Axis(0)).enumerate() {
        let t = unit / config.n_per_group;
        let noise: Array1<f64> = (0..config.latent_dim)
            .map(|_| StandardNormal.sample(&mut rng))
            .collect();
        zi.assign(&(&means.row(t) + &noise));
        labels.push(t);
    }
    let logits = oracle_logits(&z, &means);
    let w1 = random_matrix(&mut rng, config.latent_dim, config.feature_dim);
    let w2 = random_matrix(&mut rng, config.latent_dim, config.feature_dim);
    let x1 = z.dot(&w1).mapv(f64::tanh);
    let x2 = z.dot(&w2);
    let modality1 = observe(&mut rng, config, &labels, &logits, x1, &z);
    let modality2 = observe(&mut rng, config, &labels, &logits, x2, &z);
    SyntheticData {
        modality1,
        modality2,
    }
}

/// `log p(t | z)` up to a per-row constant: `−‖z − μ_t‖² / 2`.
pub fn oracle_logits(z: &Array2<f64>, means: &Array2<f64>) -> Array2<f64> {
    Array2::from_shape_fn((z.nrows(), means.nrows()), |(i, t)| {
        -0.5 * z
            .row(i)
            .iter()
            .zip(means.row(t))
            .map(|(a, b)| (a - b) * (a - b))
            .sum::<f64>()
    })
}

/// A benchmark problem: `groups` groups of `n` rows per modality, `T = dim` columns of
/// clustered logits (8 centres per group with coordinates `N(0, 1.5²)`, unit rows
/// `centre + N(0, 0.5²)`), as classifier output tends to look. Used by `psa bench` and the
/// criterion benches so they time the same inputs.
pub fn clustered_problem(
    n: usize,
    dim: usize,
    groups: usize,
    metric: Metric,
    seed: u64,
) -> Problem {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let draw = |centres: &Array2<f64>, rng: &mut ChaCha8Rng| {
        Array2::from_shape_fn((n, dim), |(i, k)| {
            let noise: f64 = StandardNormal.sample(&mut *rng);
            centres[[i % centres.nrows(), k]] + 0.5 * noise
        })
    };
    let mut s1 = Array2::zeros((0, dim));
    let mut s2 = Array2::zeros((0, dim));
    let mut labels = Vec::with_capacity(n * groups);
    for g in 0..groups {
        let centres = random_matrix(&mut rng, 8, dim) * 1.5;
        s1.append(Axis(0), draw(&centres, &mut rng).view())
            .expect("same width");
        s2.append(Axis(0), draw(&centres, &mut rng).view())
            .expect("same width");
        labels.extend(std::iter::repeat_n(g.to_string(), n));
    }
    Problem::from_scores(
        s1.view(),
        &labels,
        s2.view(),
        &labels,
        ScoresKind::Logits,
        metric,
    )
    .expect("generated scores are finite, aligned and have dim ≥ 2 columns")
}

fn observe(
    rng: &mut ChaCha8Rng,
    config: &SyntheticConfig,
    labels: &[usize],
    logits: &Array2<f64>,
    features: Array2<f64>,
    z: &Array2<f64>,
) -> SyntheticModality {
    let n = labels.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(rng);
    let score_noise = Normal::new(0.0, config.score_noise.max(0.0)).expect("finite noise sd");
    let feature_noise = Normal::new(0.0, 0.1).expect("finite noise sd");
    let scores = logits
        .select(Axis(0), &order)
        .mapv(|v| v + score_noise.sample(rng));
    let features = features
        .select(Axis(0), &order)
        .mapv(|v| v + feature_noise.sample(rng));
    SyntheticModality {
        labels: order.iter().map(|&u| labels[u].to_string()).collect(),
        ids: order.iter().map(|&u| format!("unit{u}")).collect(),
        scores,
        features,
        latents: z.select(Axis(0), &order),
    }
}

fn random_matrix(rng: &mut ChaCha8Rng, rows: usize, cols: usize) -> Array2<f64> {
    Array2::from_shape_simple_fn((rows, cols), || StandardNormal.sample(rng))
}

fn normalise_rows(mut m: Array2<f64>) -> Array2<f64> {
    for mut row in m.axis_iter_mut(Axis(0)) {
        let norm = row.dot(&row).sqrt().max(1e-12);
        row.mapv_inplace(|v| v / norm);
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modalities_share_units_but_not_order() {
        let config = SyntheticConfig {
            n_per_group: 20,
            ..SyntheticConfig::default()
        };
        let d = latent_mixture(&config);
        let (m1, m2) = (&d.modality1, &d.modality2);
        assert_eq!(m1.scores.dim(), (120, 6));
        assert_ne!(m1.ids, m2.ids);
        let mut a = m1.ids.clone();
        let mut b = m2.ids.clone();
        a.sort();
        b.sort();
        assert_eq!(a, b);
        let j = m2.ids.iter().position(|id| id == &m1.ids[0]).unwrap();
        assert_eq!(m1.latents.row(0), m2.latents.row(j));
        assert_eq!(m1.labels[0], m2.labels[j]);
    }

    #[test]
    fn same_seed_same_data() {
        let config = SyntheticConfig {
            n_per_group: 5,
            ..SyntheticConfig::default()
        };
        assert_eq!(
            latent_mixture(&config).modality1.scores,
            latent_mixture(&config).modality1.scores
        );
    }
}

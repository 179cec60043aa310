//! A fast tabular analogue of the synthetic images (Sec. 6.1, App. D.3): the same latents,
//! groups, unit ids and shuffles ([`interventions`](super::interventions)), with each modality a
//! fixed random non-linear map of `z` in place of a renderer — for experiments and tests that
//! need no image model.
//!
//! Modality `e` observes `x⁽ᵉ⁾ = tanh(u W₁⁽ᵉ⁾ + b⁽ᵉ⁾) W₂⁽ᵉ⁾ + ε⁽ᵉ⁾` with `u = 4 (z − ½)` (the
//! latents centred and scaled to about unit variance) and `ε⁽ᵉ⁾ ~ N(0, noise² I)`:
//!
//! * the map is a random two-layer tanh network ([`TanhMap`]), drawn once per modality from
//!   [`TabularConfig::map_seed`] — it does not change with `seed`, as the measurement process
//!   `f⁽ᵉ⁾` of Eq. 1 is fixed while `Z` and `U` are random. Weights `W₁ ~ N(0, 1.5²/4)` (the gain
//!   1.5 puts the hidden units in tanh's curved range), `b ~ N(0, 0.5²)`, `W₂ ~ N(0, 1/hidden)`,
//!   so features have a variance of about ½;
//! * the noise `ε⁽ᵉ⁾` plays the part of `U⁽ᵉ⁾`: independent across units and modalities.

use ndarray::{Array1, Array2, ArrayView2, Axis};
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::Serialize;

use super::interventions::{
    DO_VALUES, LATENT_DIM, Paired, Stream, Units, interventions, observe_both, stream_rng,
};

/// Gain of the first layer's weights.
const GAIN: f64 = 1.5;
/// Standard deviation of the hidden biases.
const BIAS_SD: f64 = 0.5;

/// Size and noise of the synthetic tabular data set.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TabularConfig {
    /// Units per group; every unit is observed once in each modality.
    pub n_per_group: usize,
    /// The do-values, each applied to each of the 4 coordinates: `4 × len` groups.
    pub do_values: Vec<f64>,
    /// Features of modality 1.
    pub d1: usize,
    /// Features of modality 2.
    pub d2: usize,
    /// Hidden units of each modality's map.
    pub hidden: usize,
    /// Standard deviation of the modality noise (negative values count as 0).
    pub noise: f64,
    /// Seed of the latents, shuffles and noise.
    pub seed: u64,
    /// Seed of the two fixed maps.
    pub map_seed: u64,
}

impl Default for TabularConfig {
    fn default() -> Self {
        TabularConfig {
            n_per_group: 200,
            do_values: DO_VALUES.to_vec(),
            d1: 50,
            d2: 30,
            hidden: 64,
            noise: 0.1,
            seed: 0,
            map_seed: 0,
        }
    }
}

/// Both tabular modalities: `x` is `n × d1` and `n × d2`.
pub type PairedTabular = Paired<Array2<f32>>;

/// Draws the data set described by `config` (deterministic in its seeds).
pub fn generate_tabular(config: &TabularConfig) -> PairedTabular {
    let groups = interventions(&config.do_values);
    let units = Units::draw(config.n_per_group, &groups, config.seed);
    observe_both(&units, groups, config.seed, |modality, order| {
        let latents = units.z.select(Axis(0), order);
        let mut x = tabular_map(config, modality).apply(latents.view());
        add_noise(&mut x, config, modality, order);
        x.mapv(|v| v as f32)
    })
}

/// Modality `modality`'s fixed map (1 or 2), for computing noiseless observations of any `z`.
pub fn tabular_map(config: &TabularConfig, modality: usize) -> TanhMap {
    let out = if modality == 1 { config.d1 } else { config.d2 };
    let mut rng = stream_rng(config.map_seed, Stream::Map { modality });
    TanhMap::random(out, config.hidden, &mut rng)
}

/// `z ↦ tanh(4 (z − ½) W₁ + b) W₂`, a random two-layer network.
#[derive(Clone, Debug, PartialEq)]
pub struct TanhMap {
    /// `4 × hidden`.
    pub w1: Array2<f64>,
    /// `hidden`.
    pub b: Array1<f64>,
    /// `hidden × out`.
    pub w2: Array2<f64>,
}

impl TanhMap {
    fn random(out: usize, hidden: usize, rng: &mut impl Rng) -> Self {
        let mut normal = |rows: usize, cols: usize, sd: f64| {
            Array2::from_shape_simple_fn((rows, cols), || {
                let e: f64 = StandardNormal.sample(&mut *rng);
                sd * e
            })
        };
        let w1 = normal(LATENT_DIM, hidden, GAIN / (LATENT_DIM as f64).sqrt());
        let b = normal(1, hidden, BIAS_SD).remove_axis(Axis(0));
        let w2 = normal(hidden, out, 1.0 / (hidden.max(1) as f64).sqrt());
        TanhMap { w1, b, w2 }
    }

    /// The noiseless observations of `n × 4` latents, `n × out`.
    pub fn apply(&self, z: ArrayView2<f64>) -> Array2<f64> {
        let u = z.mapv(|v| 4.0 * (v - 0.5));
        (u.dot(&self.w1) + &self.b).mapv(f64::tanh).dot(&self.w2)
    }
}

/// Adds each unit's own noise `ε`, drawn from its stream so it does not depend on the shuffle.
fn add_noise(x: &mut Array2<f64>, config: &TabularConfig, modality: usize, order: &[usize]) {
    let sd = config.noise.max(0.0);
    if sd == 0.0 {
        return;
    }
    for (mut row, &unit) in x.axis_iter_mut(Axis(0)).zip(order) {
        let mut rng = stream_rng(config.seed, Stream::Noise { modality, unit });
        row.mapv_inplace(|v| {
            let e: f64 = StandardNormal.sample(&mut rng);
            v + sd * e
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::interventions::checks;

    fn small() -> TabularConfig {
        TabularConfig {
            n_per_group: 20,
            ..TabularConfig::default()
        }
    }

    fn max_abs_diff(a: &Array2<f32>, b: &Array2<f64>) -> f64 {
        a.iter()
            .zip(b)
            .map(|(&a, &b)| (a as f64 - b).abs())
            .fold(0.0, f64::max)
    }

    #[test]
    fn the_design_holds_for_tables() {
        let config = small();
        let data = generate_tabular(&config);
        checks::design_holds(&data, config.n_per_group, |x| x.nrows());
        assert_eq!(data.modality1.x.dim(), (240, 50));
        assert_eq!(data.modality2.x.dim(), (240, 30));
    }

    #[test]
    fn same_seed_same_table_other_seed_other_table() {
        let config = small();
        let a = generate_tabular(&config);
        assert_eq!(a.modality1.x, generate_tabular(&config).modality1.x);
        let b = generate_tabular(&TabularConfig { seed: 9, ..config });
        assert_ne!(a.modality1.x, b.modality1.x);
        assert_ne!(a.modality2.ids, b.modality2.ids);
    }

    #[test]
    fn the_maps_are_fixed_and_differ_between_modalities() {
        let config = TabularConfig {
            noise: 0.0,
            d2: 50,
            ..small()
        };
        for seed in [0, 5] {
            let data = generate_tabular(&TabularConfig {
                seed,
                ..config.clone()
            });
            for (e, m) in [(1, &data.modality1), (2, &data.modality2)] {
                let clean = tabular_map(&config, e).apply(m.latents.view());
                assert!(
                    max_abs_diff(&m.x, &clean) < 1e-6,
                    "x = map(z) without noise"
                );
            }
        }
        assert_ne!(tabular_map(&config, 1), tabular_map(&config, 2));
        let other = TabularConfig {
            map_seed: 1,
            ..config.clone()
        };
        assert_ne!(tabular_map(&config, 1), tabular_map(&other, 1));
    }

    #[test]
    fn the_noise_has_the_configured_spread_and_is_per_modality() {
        let config = TabularConfig {
            noise: 0.3,
            d2: 50,
            ..small()
        };
        let data = generate_tabular(&config);
        let residual = |e: usize, m: &crate::synthetic::Modality<Array2<f32>>| {
            m.x.mapv(f64::from) - tabular_map(&config, e).apply(m.latents.view())
        };
        let r1 = residual(1, &data.modality1);
        let sd = (r1.mapv(|v| v * v).mean().unwrap()).sqrt();
        assert!((sd - 0.3).abs() < 0.01, "{sd}");
        let signal = tabular_map(&config, 1).apply(data.modality1.latents.view());
        let spread = signal.std_axis(Axis(0), 0.0).mean().unwrap();
        assert!(
            (0.2..2.0).contains(&spread),
            "features vary with z: {spread}"
        );
        // The same unit's noise differs between the modalities.
        let r2 = residual(2, &data.modality2);
        let j = data
            .modality2
            .ids
            .iter()
            .position(|id| *id == data.modality1.ids[0])
            .unwrap();
        assert_ne!(r1.row(0), r2.row(j));
    }
}

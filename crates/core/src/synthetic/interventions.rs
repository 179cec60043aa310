//! The latent design of the paper's synthetic experiment (Sec. 6.1, App. D.3), shared by the
//! image and tabular generators: latents, groups, unit ids and the per-modality shuffles.
//!
//! A unit's latent `z = (x₁, y₁, x₂, y₂)` holds the positions of two objects in the unit square
//! (`y` pointing up). The paper says only that `z` is perturbed by do-interventions, three per
//! coordinate, for 12 groups; the details follow the authors' public generator
//! (`generate_balls.py` in valence-labs/prop-score-pairing, with the setting their image data
//! used, a non-linear SCM):
//!
//! * **Base distribution**, a two-node SCM. Object 1 is uniform, `x₁, y₁ ~ U(0.1, 0.9)`. Object 2
//!   keeps clear of it: if `1.25 (x₁² + y₁²) ≥ 1` then `x₂ ~ U(0.1, 0.5)`, `y₂ ~ U(0.5, 0.9)`,
//!   else `x₂ ~ U(0.5, 0.9)`, `y₂ ~ U(0.1, 0.5)`.
//! * **Groups**: group `t = 3k + j` is `do(z_k = v_j)` with do-values `v = (0.25, 0.5, 0.75)`
//!   ([`DO_VALUES`]; the authors' grid, which the paper calls "randomly sampled"). Intervening on
//!   object 1 moves object 2 through its mechanism; intervening on a coordinate of object 2 sets
//!   it and leaves the other one to the mechanism. There is no unintervened group, as in the paper.
//!   The authors draw each unit's group at random; here every group has exactly `n_per_group`
//!   units, so groups are balanced and the same size in both modalities.
//!
//! Each modality then observes every unit once, `X⁽ᵉ⁾ = f⁽ᵉ⁾(Z, U⁽ᵉ⁾)` (Eq. 1), and its rows are
//! shuffled by its own permutation. Unit `u` (numbered group by group) has the id `u000123` in
//! both modalities; ids and latents are the ground truth for the metrics (App. D.1).
//!
//! Randomness comes from ChaCha8 streams of one seed, one stream per purpose and, for the
//! per-unit noise, per unit and modality, so results do not depend on the number of threads.

use ndarray::{Array2, Axis};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// The dimension of `z`: `(x, y)` of two objects.
pub const LATENT_DIM: usize = 4;

/// The do-values of the paper's design, for each of the four coordinates.
pub const DO_VALUES: [f64; 3] = [0.25, 0.5, 0.75];

/// The range of each coordinate under the base distribution.
const RANGE: (f64, f64) = (0.1, 0.9);

/// One experimental condition: `do(z[coordinate] = value)`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Intervention {
    /// Which coordinate of `z`: 0 = `x₁`, 1 = `y₁`, 2 = `x₂`, 3 = `y₂`.
    pub coordinate: usize,
    pub value: f64,
}

/// The groups of the design, coordinate-major: group `t` is `interventions(do_values)[t]`, so
/// with the paper's three do-values `t = 3k + j` intervenes on coordinate `k` with value `j`.
pub fn interventions(do_values: &[f64]) -> Vec<Intervention> {
    (0..LATENT_DIM)
        .flat_map(|coordinate| {
            do_values
                .iter()
                .map(move |&value| Intervention { coordinate, value })
        })
        .collect()
}

/// Draws one latent `z` from the base SCM under `intervention` (`None`: observational).
pub fn sample_latent(rng: &mut impl Rng, intervention: Option<Intervention>) -> [f64; LATENT_DIM] {
    let set = |z: &mut [f64; LATENT_DIM], coordinates: std::ops::Range<usize>| {
        if let Some(Intervention { coordinate, value }) = intervention
            && coordinates.contains(&coordinate)
        {
            z[coordinate] = value;
        }
    };
    let mut z = [0.0; LATENT_DIM];
    z[0] = rng.random_range(RANGE.0..RANGE.1);
    z[1] = rng.random_range(RANGE.0..RANGE.1);
    set(&mut z, 0..2);
    [z[2], z[3]] = sample_object2(rng, z[0], z[1]);
    set(&mut z, 2..4);
    z
}

/// Object 2's mechanism: the quadrant opposite to where object 1 is likely to be.
fn sample_object2(rng: &mut impl Rng, x1: f64, y1: f64) -> [f64; 2] {
    let middle = (RANGE.0 + RANGE.1) / 2.0;
    let low = RANGE.0..middle;
    let high = middle..RANGE.1;
    if 1.25 * (x1 * x1 + y1 * y1) >= 1.0 {
        [rng.random_range(low), rng.random_range(high)]
    } else {
        [rng.random_range(high), rng.random_range(low)]
    }
}

/// All units of a design in their natural order: group by group, `n_per_group` each.
#[derive(Clone, Debug)]
pub struct Units {
    /// `n × 4` latents.
    pub z: Array2<f64>,
    /// The group of each unit, an index into [`interventions`].
    pub labels: Vec<usize>,
}

impl Units {
    /// Draws `n_per_group` units for each intervention (deterministic in `seed`).
    pub fn draw(n_per_group: usize, interventions: &[Intervention], seed: u64) -> Self {
        let mut rng = stream_rng(seed, Stream::Latents);
        let labels: Vec<usize> = (0..interventions.len())
            .flat_map(|t| std::iter::repeat_n(t, n_per_group))
            .collect();
        let mut z = Array2::zeros((labels.len(), LATENT_DIM));
        for (mut row, &t) in z.axis_iter_mut(Axis(0)).zip(&labels) {
            let latent = sample_latent(&mut rng, Some(interventions[t]));
            row.iter_mut().zip(latent).for_each(|(a, b)| *a = b);
        }
        Units { z, labels }
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// The id of unit `u`, the same in both modalities.
pub fn unit_id(unit: usize) -> String {
    format!("u{unit:06}")
}

/// One modality's view of every unit, rows in that modality's own (shuffled) order.
#[derive(Clone, Debug)]
pub struct Modality<X> {
    /// The observations, one unit per row (first axis).
    pub x: X,
    /// The group `t` of each row, an index into [`Paired::interventions`].
    pub labels: Vec<i64>,
    /// The unit each row observes ([`unit_id`]): the same unit has the same id in both
    /// modalities, which is the ground-truth pairing.
    pub ids: Vec<String>,
    /// The unit's latent `z`, `n × 4`.
    pub latents: Array2<f64>,
}

impl<X> Modality<X> {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// Both modalities of a generated data set.
#[derive(Clone, Debug)]
pub struct Paired<X> {
    pub modality1: Modality<X>,
    pub modality2: Modality<X>,
    /// What each label means: label `t` is `interventions[t]`.
    pub interventions: Vec<Intervention>,
}

/// Observes `units` in both modalities: each modality's rows are put in their own random order
/// and `observe(e, order)` (`e` = 1 or 2) returns the observations of `order[0]`, `order[1]`, …
/// as rows.
pub(crate) fn observe_both<X>(
    units: &Units,
    interventions: Vec<Intervention>,
    seed: u64,
    observe: impl Fn(usize, &[usize]) -> X,
) -> Paired<X> {
    let view = |modality: usize| {
        let mut order: Vec<usize> = (0..units.len()).collect();
        order.shuffle(&mut stream_rng(seed, Stream::Shuffle { modality }));
        Modality {
            x: observe(modality, &order),
            labels: order.iter().map(|&u| units.labels[u] as i64).collect(),
            ids: order.iter().map(|&u| unit_id(u)).collect(),
            latents: units.z.select(Axis(0), &order),
        }
    };
    Paired {
        modality1: view(1),
        modality2: view(2),
        interventions,
    }
}

/// What a random stream is for; each purpose (and each unit's noise) gets its own stream.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Stream {
    Latents,
    Shuffle {
        modality: usize,
    },
    /// A modality's fixed map (tabular data), drawn from the map seed.
    Map {
        modality: usize,
    },
    /// The modality noise `U` of one unit.
    Noise {
        modality: usize,
        unit: usize,
    },
}

impl Stream {
    fn id(self) -> u64 {
        match self {
            Stream::Latents => 0,
            Stream::Shuffle { modality } => 1 + modality as u64,
            Stream::Map { modality } => 4 + modality as u64,
            Stream::Noise { modality, unit } => 16 + 2 * unit as u64 + (modality as u64 & 1),
        }
    }
}

/// The ChaCha8 stream `stream` of `seed`.
pub(crate) fn stream_rng(seed: u64, stream: Stream) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream.id());
    rng
}

/// Checks every generator must pass, whatever its observations.
#[cfg(test)]
pub(crate) mod checks {
    use super::*;
    use std::collections::HashMap;

    /// Shapes, balanced labels, shared ids and latents, and the do-values within groups.
    pub(crate) fn design_holds<X>(
        data: &Paired<X>,
        n_per_group: usize,
        rows: impl Fn(&X) -> usize,
    ) {
        let groups = data.interventions.len();
        let n = groups * n_per_group;
        let (m1, m2) = (&data.modality1, &data.modality2);
        for m in [m1, m2] {
            assert_eq!(rows(&m.x), n);
            assert_eq!(
                (m.labels.len(), m.ids.len(), m.latents.dim()),
                (n, n, (n, 4))
            );
            for t in 0..groups as i64 {
                assert_eq!(m.labels.iter().filter(|&&l| l == t).count(), n_per_group);
            }
            for (label, z) in m.labels.iter().zip(m.latents.rows()) {
                let Intervention { coordinate, value } = data.interventions[*label as usize];
                assert_eq!(z[coordinate], value, "the do-value within group {label}");
            }
        }
        let row_of: HashMap<&str, usize> = m2
            .ids
            .iter()
            .enumerate()
            .map(|(j, id)| (id.as_str(), j))
            .collect();
        assert_eq!(row_of.len(), n, "ids are unique");
        for (i, id) in m1.ids.iter().enumerate() {
            let j = row_of[id.as_str()];
            assert_eq!(
                m1.latents.row(i),
                m2.latents.row(j),
                "{id}: one latent per unit"
            );
            assert_eq!(m1.labels[i], m2.labels[j], "{id}: one group per unit");
        }
        if n > 10 {
            assert_ne!(m1.ids, m2.ids, "the modalities are shuffled independently");
            let sorted = m1.labels.windows(2).all(|w| w[0] <= w[1]);
            assert!(!sorted, "rows are shuffled, not in group order");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twelve_groups_coordinate_major() {
        let groups = interventions(&DO_VALUES);
        assert_eq!(groups.len(), 12);
        assert_eq!(
            groups[7],
            Intervention {
                coordinate: 2,
                value: 0.5
            }
        );
    }

    #[test]
    fn object2_follows_its_mechanism_unless_intervened_on() {
        let groups = interventions(&DO_VALUES);
        let units = Units::draw(300, &groups, 3);
        let mut seen = [false; 2];
        for (z, &t) in units.z.rows().into_iter().zip(&units.labels) {
            let far = 1.25 * (z[0] * z[0] + z[1] * z[1]) >= 1.0;
            seen[far as usize] = true;
            let (x2, y2) = if far {
                (0.1..0.5, 0.5..0.9)
            } else {
                (0.5..0.9, 0.1..0.5)
            };
            let coordinate = groups[t].coordinate;
            assert!(coordinate == 2 || x2.contains(&z[2]), "{z} in group {t}");
            assert!(coordinate == 3 || y2.contains(&z[3]), "{z} in group {t}");
            for k in 0..2 {
                assert!(k == coordinate || (0.1..0.9).contains(&z[k]));
            }
        }
        assert_eq!(seen, [true, true], "both branches of the mechanism occur");
    }

    #[test]
    fn units_are_reproducible_and_seeded() {
        let groups = interventions(&DO_VALUES);
        let a = Units::draw(10, &groups, 1);
        assert_eq!(a.z, Units::draw(10, &groups, 1).z);
        assert_ne!(a.z, Units::draw(10, &groups, 2).z);
        assert_eq!(a.labels[..11], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    }

    #[test]
    fn streams_are_distinct() {
        let ids = [
            Stream::Latents.id(),
            Stream::Shuffle { modality: 1 }.id(),
            Stream::Shuffle { modality: 2 }.id(),
            Stream::Map { modality: 1 }.id(),
            Stream::Map { modality: 2 }.id(),
            Stream::Noise {
                modality: 1,
                unit: 0,
            }
            .id(),
            Stream::Noise {
                modality: 2,
                unit: 0,
            }
            .id(),
            Stream::Noise {
                modality: 1,
                unit: 1,
            }
            .id(),
        ];
        let unique: std::collections::BTreeSet<u64> = ids.into_iter().collect();
        assert_eq!(unique.len(), ids.len());
    }

    #[test]
    fn ids_are_zero_padded() {
        assert_eq!(unit_id(123), "u000123");
        assert_eq!(unit_id(1_234_567), "u1234567");
    }
}

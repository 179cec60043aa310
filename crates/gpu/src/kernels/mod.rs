//! One host module per shader in `shaders/`: its typed `Params` (mirroring the WGSL uniform
//! field for field), its bind group layout (created once per matcher) and its pipelines
//! (created once per [`Specialisation`] and cached).
//!
//! The score dimension and the metric are WGSL `override` constants rather than uniforms, so
//! the driver sees constant loop bounds: the per-row scores then live in registers and the
//! distance loop unrolls, which a runtime bound would prevent.

pub mod coupling;
pub mod pairwise_cost;
pub mod sinkhorn_lse;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use psa_core::Metric;

/// Largest number of score coordinates `T` the kernels hold per row (16 vec4 registers).
pub const MAX_DIM: usize = 64;

/// The override constants a pipeline is compiled with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Specialisation {
    /// `ceil(T / 4)`: scores are padded with zeros to whole vec4s.
    pub dim4: u32,
    pub euclidean: bool,
}

impl Specialisation {
    pub fn new(dim: usize, metric: Metric) -> Specialisation {
        Specialisation {
            dim4: dim.div_ceil(4) as u32,
            euclidean: metric == Metric::Euclidean,
        }
    }

    fn constants(&self) -> Vec<(&'static str, f64)> {
        vec![
            ("DIM4", f64::from(self.dim4)),
            ("EUCLIDEAN", if self.euclidean { 1.0 } else { 0.0 }),
        ]
    }
}

/// Pipelines built on first use for each specialisation, then reused.
#[derive(Debug)]
pub(crate) struct Cache<V>(Mutex<HashMap<Specialisation, Arc<V>>>);

impl<V> Default for Cache<V> {
    fn default() -> Self {
        Cache(Mutex::new(HashMap::new()))
    }
}

impl<V> Cache<V> {
    pub fn get_or_build(&self, key: Specialisation, build: impl FnOnce() -> V) -> Arc<V> {
        // A poisoned lock only means another thread panicked while building; the map is intact.
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(key).or_insert_with(|| Arc::new(build())).clone()
    }
}

//! Data sets with known ground truth, for the demo, the benches, tests and experiments.
//!
//! * [`latent_mixture`] (module `mixture`): a latent Gaussian mixture whose propensities are
//!   known in closed form ("oracle" scores), behind `psa demo`; [`clustered_problem`] is the
//!   benchmark problem of `psa bench`.
//! * [`interventions`]: the latent design of the paper's synthetic experiment (Sec. 6.1,
//!   App. D.3) — `z ∈ R⁴`, the positions of two objects, and 12 groups of do-interventions —
//!   and the unit ids and independent per-modality shuffles both generators below share.
//! * [`images`]: that experiment's two image modalities — circles at `z`, squares at a fixed
//!   transformation of `z`, each over its own random background (`psa generate images`).
//! * [`tabular`]: a fast analogue with the same latents and groups, each modality a fixed random
//!   tanh network of `z` plus noise (`psa generate tabular`).
//!
//! Every generator is deterministic in its seed, and every modality's rows come in their own
//! random order: only the unit ids (and the latents) tell which rows are the same unit.

pub mod images;
pub mod interventions;
mod mixture;
pub mod tabular;

pub use images::{ImageConfig, PairedImages, generate_images};
pub use interventions::{Intervention, Modality, Paired};
pub use mixture::{
    SyntheticConfig, SyntheticData, SyntheticModality, clustered_problem, latent_mixture,
    oracle_logits,
};
pub use tabular::{PairedTabular, TabularConfig, generate_tabular};

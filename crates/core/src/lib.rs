//! # psa-core — the CPU reference of propensity score alignment
//!
//! Everything psa computes, in f64, with no I/O, no GPU and no burn, so that it builds in
//! seconds and every other backend can be checked against it (`docs/METHOD.md`):
//!
//! * [`transform`]: classifier outputs (logits or probabilities) to centred log-ratio scores
//!   (METHOD.md step 2);
//! * [`problem`]: rows grouped by label into a [`Problem`], the seam every matcher solves;
//! * [`sinkhorn`]: the log-domain Sinkhorn solver (balanced or KL-relaxed unbalanced, with
//!   ε-scaling), behind the [`Matcher`] trait as [`CpuMatcher`];
//! * [`snn`] and [`random`]: the shared-nearest-neighbour and random baselines (App. B);
//! * [`coupling`]: the lazy coupling `P(j|i)` — any row exactly, top-k, projections, dense
//!   on request — without an `n1 × n2` matrix;
//! * [`metrics`]: trace, FOSCTTM and latent MSE (App. D.1);
//! * [`prediction`]: R², mean distance, sliced W1 and kNN KL of a cross-modal prediction (Sec. 5);
//! * [`synthetic`]: data with known ground truth — a latent Gaussian mixture with known
//!   propensities (the demo), and the paper's synthetic interventional images (Sec. 6.1) with a
//!   fast tabular analogue (`psa generate`).
//!
//! Not here: reading files (`psa-io`), GPU kernels (`psa-gpu`), trained classifiers.
//!
//! ```
//! use psa_core::{CpuMatcher, Matcher, Metric, Problem, ScoresKind, SolveOptions, NoProgress};
//! use ndarray::array;
//! let s1 = array![[2.0, 0.0], [0.0, 2.0]];
//! let s2 = array![[0.0, 2.1], [1.9, 0.0]];
//! let labels = vec!["a".to_string(), "a".to_string()];
//! let problem = Problem::from_scores(s1.view(), &labels, s2.view(), &labels,
//!     ScoresKind::Logits, Metric::Euclidean).unwrap();
//! let solution = CpuMatcher::default().solve(&problem, &SolveOptions::default(), &NoProgress).unwrap();
//! let coupling = solution.coupling(&problem, 0);
//! let row = coupling.row(0);
//! assert!(row[1] > 0.99); // row 0 of modality 1 pairs with row 1 of modality 2
//! ```

pub mod cost;
pub mod coupling;
pub mod error;
pub mod fastexp;
pub mod matcher;
pub mod metrics;
pub mod prediction;
pub mod problem;
pub mod random;
pub mod scatter;
pub mod sinkhorn;
pub mod snn;
pub mod solved;
pub mod synthetic;
pub mod transform;

pub use cost::Metric;
pub use coupling::{Coupling, CouplingKind, TopK};
pub use error::CoreError;
pub use matcher::{
    EpsilonMode, GroupSolution, Matcher, MatcherError, NoProgress, Precision, Progress, Solution,
    SolveOptions, SolveReport, StopReason,
};
pub use problem::{Group, Problem, Unmatched};
pub use sinkhorn::CpuMatcher;
pub use solved::{CpuSolved, Method, Solved, match_problem};
pub use transform::{PROBABILITY_CLAMP, ScoresKind, clr};

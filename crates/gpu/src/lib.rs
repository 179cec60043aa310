//! # psa-gpu — the GPU matcher of psa
//!
//! Entropic optimal transport between propensity scores (METHOD.md step 3) on any GPU wgpu
//! reaches (Vulkan, Metal, DX12; lavapipe in CI), with the same [`psa_core::Problem`] in and
//! the same [`psa_core::Solution`] out as the CPU reference [`psa_core::CpuMatcher`]:
//!
//! * [`context`]: adapter choice (`--backend gpu` takes software adapters, `auto` does not)
//!   and a device that burn can share;
//! * [`kernels`]: one host module per shader in `shaders/` (`pairwise_cost`, `sinkhorn_lse`,
//!   `coupling`);
//! * [`GpuMatcher`]: log-domain Sinkhorn with ε-scaling and unbalanced marginals, all label
//!   groups in the same dispatches, costs streamed from the scores (memory `O((n1 + n2) · T)`)
//!   or materialised when small; see [`matcher`] for what f32 costs in precision;
//! * outputs of any solution on the GPU: [`GpuMatcher::top_k`], [`GpuMatcher::project`],
//!   [`GpuMatcher::diagonal`];
//! * [`bench_iteration`] for `psa bench`.
//!
//! Not here: reading files, classifiers, the CPU fallback (the binary picks the backend).
//!
//! ```no_run
//! use std::sync::Arc;
//! use psa_core::{Matcher, NoProgress, SolveOptions};
//! use psa_gpu::{AdapterChoice, GpuContext, GpuMatcher, GpuOptions};
//! # fn run(problem: &psa_core::Problem) -> Result<(), Box<dyn std::error::Error>> {
//! let ctx = Arc::new(GpuContext::new(AdapterChoice::HardwareOnly)?);
//! let matcher = GpuMatcher::new(ctx, GpuOptions::default())?;
//! let solution = matcher.solve(problem, &SolveOptions::default(), &NoProgress)?;
//! let top = matcher.top_k(problem, &solution, 10)?;
//! # Ok(()) }
//! ```

pub mod bench;
pub mod context;
pub mod error;
pub mod kernels;
pub mod matcher;
mod outputs;
mod util;
mod workspace;

pub use bench::{BenchFigures, bench_iteration};
pub use context::{AdapterChoice, GpuContext};
pub use error::GpuError;
pub use matcher::{CostMode, GpuMatcher, GpuOptions, f32_floor};

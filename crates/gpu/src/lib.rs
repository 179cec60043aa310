//! # psa-gpu — the GPU matcher of psa
//!
//! Entropic optimal transport between propensity scores (METHOD.md step 3) on any GPU wgpu
//! reaches (Vulkan, Metal, DX12; lavapipe in CI), with the same [`psa_core::Problem`] in and
//! the same [`psa_core::Solution`] out as the CPU reference [`psa_core::CpuMatcher`]:
//!
//! * [`context`]: adapter choice (`--backend gpu` takes software adapters, `auto` does not)
//!   and a device that burn can share;
//! * [`kernels`]: one host module per shader in `shaders/` (`sinkhorn_lse`, `coupling`, both
//!   prepended with `common.wgsl`), and [`plan`], where every row and block lives;
//! * [`GpuMatcher`]: log-domain Sinkhorn with ε-scaling and unbalanced marginals, all label
//!   groups in the same dispatches, costs streamed from the scores (memory `O((n1 + n2) · T)`);
//!   see [`matcher`] for how f32 reaches the f64 reference's couplings;
//! * [`GpuSolved`]: every output of a solution (rows, top-k, projection, diagonal, pseudo-pairs)
//!   through [`psa_core::Solved`], from device state uploaded once;
//! * [`bench_iteration`] for `psa bench`, and [`kernel_stats`], the counted instruction proxy
//!   of the hot loop for `psa bench --kernel-stats`.
//!
//! Not here: reading files, classifiers, the CPU fallback (the binary picks the backend).
//!
//! ```no_run
//! use std::sync::Arc;
//! use psa_core::{Matcher, NoProgress, SolveOptions, Solved};
//! use psa_gpu::{AdapterChoice, GpuContext, GpuMatcher, GpuOptions};
//! # fn run(problem: &psa_core::Problem) -> Result<(), Box<dyn std::error::Error>> {
//! let ctx = Arc::new(GpuContext::new(AdapterChoice::HardwareOnly)?);
//! let matcher = GpuMatcher::new(ctx, GpuOptions::default())?;
//! let solved = matcher.solve_into(problem.clone(), &SolveOptions::default(), &NoProgress)?;
//! let top = solved.top_k(10, None)?;
//! # Ok(()) }
//! ```

pub mod bench;
pub mod context;
pub mod error;
pub mod kernels;
pub mod matcher;
mod outputs;
pub mod plan;
pub mod solved;
pub mod stats;
mod util;
mod workspace;

pub use bench::{BenchFigures, bench_iteration};
pub use context::{AdapterChoice, GpuContext};
pub use error::GpuError;
pub use kernels::KernelVariant;
pub use matcher::{CostMode, GpuMatcher, GpuOptions, f32_floor};
pub use solved::GpuSolved;
pub use stats::{KernelStats, kernel_stats};

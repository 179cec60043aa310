//! The `Matcher` seam: one [`Problem`] in, one [`Solution`] out.
//!
//! A solution holds, per group, the Sinkhorn potentials `f, g` and a report like POT's
//! `log=True` (iterations, marginal error, converged). Everything users want — rows of `P(j|i)`,
//! top-k, projections, the trace diagonal — derives from the potentials and the scores
//! ([`crate::Coupling`]), so no backend ever needs an `n1 × n2` matrix.
//!
//! Potentials convention (shared by all backends): the plan is
//! `M_ij = a_i b_j exp((f_i + g_j − C_ij) / λ)` with uniform `a = 1/n1`, `b = 1/n2`; it differs
//! from POT's `log_u`, `log_v` only by constants (`f = λ (log_u − log a)`).

use serde::{Deserialize, Serialize};

use crate::coupling::{Coupling, CouplingKind};
use crate::solved::{CpuSolved, Solved};
use crate::{CoreError, Problem};

/// How `--epsilon` is read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EpsilonMode {
    /// λ on the raw cost, as in the paper.
    #[default]
    Absolute,
    /// λ = ε × the group's mean cost (as OTT-JAX does), so one value suits any score scale.
    Relative,
}

/// Arithmetic of the CPU matcher's LSE passes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// f64 throughout: the reference.
    F64,
    /// f32 passes (twice the SIMD lanes, half the memory) while the marginal error is far
    /// above what f32 resolves, then f64 passes to the tolerance: the same fixed point and the
    /// same reported error as [`Precision::F64`], sooner (`crate::sinkhorn` module docs).
    #[default]
    F32,
}

impl Precision {
    pub fn name(self) -> &'static str {
        match self {
            Precision::F64 => "f64",
            Precision::F32 => "f32",
        }
    }
}

/// Options of the entropic OT solve. Defaults are the paper's (λ = 0.05 on the raw cost).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SolveOptions {
    /// Entropic regularisation λ (> 0), in cost units, or a fraction of the mean cost.
    pub epsilon: f64,
    pub epsilon_mode: EpsilonMode,
    /// Stop when the marginal error of the current plan — the larger of `‖M 1 − a‖₁` and
    /// `‖Mᵀ 1 − b‖₁` — falls below this (unbalanced: when the fixed-point residual, the
    /// largest change an exact update would make to f or g, is below `tol · λ`).
    pub tol: f64,
    /// Stop after this many iterations (all ε-scaling stages counted), reporting non-convergence.
    pub max_iter: usize,
    /// Solve a decreasing sequence of λ first (same fixed point, far fewer iterations).
    pub eps_scaling: bool,
    /// KL-relaxed marginals with strength τ (METHOD.md, Unbalanced OT); `None` = balanced.
    pub unbalanced: Option<f64>,
    /// Accelerate the potential updates, automatically and safeguarded (same fixed point,
    /// several times fewer iterations): Anderson mixing on the CPU
    /// (`crate::sinkhorn::anderson`), over-relaxation with ω from the measured rate on the GPU
    /// (`relax` in `sinkhorn_lse.wgsl`). `--no-acceleration` turns it off.
    #[serde(default = "default_true")]
    pub acceleration: bool,
    /// CPU: the arithmetic of the LSE passes (`--precision`).
    #[serde(default)]
    pub precision: Precision,
    /// CPU: bytes the cost matrices of all groups may take when materialised (each group's
    /// `n1 × n2` costs, stored twice, in the precision of its passes); groups that do not fit
    /// recompute their costs at every pass. 0 never materialises.
    #[serde(default = "default_cost_budget")]
    pub cost_budget: u64,
}

/// Default [`SolveOptions::cost_budget`]: 1 GiB.
pub const DEFAULT_COST_BUDGET: u64 = 1 << 30;

fn default_cost_budget() -> u64 {
    DEFAULT_COST_BUDGET
}

fn default_true() -> bool {
    true
}

impl Default for SolveOptions {
    fn default() -> Self {
        SolveOptions {
            epsilon: 0.05,
            epsilon_mode: EpsilonMode::Absolute,
            tol: 1e-6,
            max_iter: 10_000,
            eps_scaling: true,
            unbalanced: None,
            acceleration: true,
            precision: Precision::default(),
            cost_budget: DEFAULT_COST_BUDGET,
        }
    }
}

impl SolveOptions {
    /// Rejects values no solve could use; the error names the field (the binary maps it to its flag).
    pub fn validate(&self) -> Result<(), CoreError> {
        if !(self.epsilon.is_finite() && self.epsilon >= 1e-10) {
            return Err(CoreError::option(
                "epsilon",
                format!("must be a finite number ≥ 1e-10, got {}", self.epsilon),
            ));
        }
        if !(self.tol.is_finite() && self.tol > 0.0) {
            return Err(CoreError::option(
                "tol",
                format!("must be > 0, got {}", self.tol),
            ));
        }
        if self.max_iter == 0 {
            return Err(CoreError::option("max_iter", "must be ≥ 1"));
        }
        if let Some(tau) = self.unbalanced
            && !(tau.is_finite() && tau > 0.0)
        {
            return Err(CoreError::option(
                "unbalanced",
                format!("τ must be > 0, got {tau}"),
            ));
        }
        Ok(())
    }
}

/// Why a group's Sinkhorn loop stopped. Only [`StopReason::Tolerance`] means converged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The marginal error of the returned coupling fell below `--tol`.
    #[default]
    Tolerance,
    /// `--max-iter` iterations ran without reaching `--tol`.
    MaxIter,
    /// The error stopped falling above `--tol`: the arithmetic's resolution (f32 on the GPU)
    /// cannot go lower. Not converged; a tighter solve needs the f64 CPU reference.
    PrecisionFloor,
}

impl StopReason {
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Tolerance => "tolerance",
            StopReason::MaxIter => "max_iter",
            StopReason::PrecisionFloor => "precision_floor",
        }
    }
}

/// How a group's solve ended, as POT's `log=True` reports it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SolveReport {
    /// Sinkhorn iterations (one f- and one g-update each), all ε stages counted.
    pub iterations: usize,
    /// Marginal error of the returned coupling (balanced: the larger of the row and column L1
    /// errors `‖M 1 − a‖₁`, `‖Mᵀ 1 − b‖₁`, measured on the final potentials; unbalanced: the
    /// fixed-point residual `max(|f − f̂|, |g − ĝ|) / λ` at the final potentials, f̂ and ĝ
    /// being the exact updates).
    pub marginal_error: f64,
    /// `stopped == StopReason::Tolerance`.
    pub converged: bool,
    pub stopped: StopReason,
    pub seconds: f64,
    /// Acceleration at the final λ (`None`: plain Sinkhorn): how far the last step went along
    /// the plain Sinkhorn step `r` (1: a plain step). CPU: the effective over-relaxation of
    /// the last Anderson step, `⟨Δu, r⟩ / ‖r‖²` (`crate::sinkhorn::anderson`); GPU: the ω of
    /// its over-relaxed updates.
    pub omega: Option<f64>,
}

/// Potentials and report of one group.
#[derive(Clone, Debug)]
pub struct GroupSolution {
    pub f: Vec<f64>,
    pub g: Vec<f64>,
    /// The absolute λ used (after `EpsilonMode::Relative` was resolved).
    pub epsilon: f64,
    pub report: SolveReport,
}

/// Per-group potentials, in `Problem::groups` order.
#[derive(Clone, Debug)]
pub struct Solution {
    pub groups: Vec<GroupSolution>,
}

impl Solution {
    /// The lazy coupling of group `index`.
    pub fn coupling<'a>(&'a self, problem: &'a Problem, index: usize) -> Coupling<'a> {
        let s = &self.groups[index];
        Coupling::new(
            &problem.groups[index],
            problem.metric,
            CouplingKind::Ot {
                g: &s.g,
                epsilon: s.epsilon,
            },
        )
    }
}

/// Told as each group finishes (drives progress bars); must be cheap and thread-safe.
pub trait Progress: Sync {
    fn group_done(&self, _group: usize, _report: &SolveReport) {}
}

/// A [`Progress`] that ignores everything.
pub struct NoProgress;
impl Progress for NoProgress {}

/// Solves every group of a problem by entropic OT. Implemented by the CPU reference
/// ([`crate::CpuMatcher`]) and by the GPU matcher in `psa-gpu`.
pub trait Matcher {
    /// Short name for logs and summaries ("cpu", "gpu").
    fn name(&self) -> &str;

    /// The potentials of every group.
    fn solve(
        &self,
        problem: &Problem,
        options: &SolveOptions,
        progress: &dyn Progress,
    ) -> Result<Solution, MatcherError>;

    /// The outputs of `solution` (from any backend, e.g. reloaded from a run directory) on this
    /// backend. The default computes them on the CPU from the lazy coupling.
    fn outputs<'m>(
        &'m self,
        problem: Problem,
        solution: Solution,
    ) -> Result<Box<dyn Solved + 'm>, MatcherError> {
        Ok(Box::new(CpuSolved::ot(problem, solution)?))
    }

    /// Solves and returns the outputs; a backend that keeps device state overrides this so the
    /// problem is uploaded once for the solve and every output.
    fn solve_into<'m>(
        &'m self,
        problem: Problem,
        options: &SolveOptions,
        progress: &dyn Progress,
    ) -> Result<Box<dyn Solved + 'm>, MatcherError> {
        let solution = self.solve(&problem, options, progress)?;
        self.outputs(problem, solution)
    }
}

/// Why a matcher could not produce a solution.
#[derive(Debug, thiserror::Error)]
pub enum MatcherError {
    #[error(transparent)]
    Core(#[from] CoreError),
    #[error("{backend} backend: {message}")]
    Backend {
        backend: &'static str,
        message: String,
    },
}

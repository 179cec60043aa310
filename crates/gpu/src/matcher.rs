//! [`GpuMatcher`]: log-domain Sinkhorn (METHOD.md step 3, Eq. 8) on the GPU, all label groups
//! in the same dispatches, producing the same [`Solution`] as [`psa_core::CpuMatcher`].
//!
//! Agreement with the CPU reference by construction: λ comes from
//! [`psa_core::sinkhorn::resolve_epsilon`], the ε-scaling schedule from
//! [`psa_core::sinkhorn::epsilon_schedule`] and [`psa_core::sinkhorn::cost_diameter`], and the
//! stopping test is the same (intermediate stages stop below `max(tol, STAGE_TOL)`, the last
//! below `tol`; balanced: the row-marginal error `‖M 1 − a‖₁` measured during the f-update,
//! unbalanced: `max |Δf|, |Δg|` over λ). The test runs on the device after *every* iteration
//! (`control` in `sinkhorn_lse.wgsl`): each group moves through its own stages, counts its own
//! iterations against `max_iter`, and stops on its own; stopped groups early-exit in every
//! kernel. The host only reads the small per-group state back every `check_every` iterations
//! (auto: about every 1e8 pair evaluations, at most 16 iterations apart) to learn when all
//! groups are done and to report progress, so iteration counts do not depend on the check
//! interval. No per-pair data crosses the bus inside the loop.
//!
//! # f32 precision
//! Scores, costs and potentials are f32 on the device (widened to f64 in the [`Solution`]).
//! Every exponent is a difference of numbers of size `|f|/λ ≈ C/λ` (potentials over λ and
//! costs over λ), each rounded to a relative 2⁻²⁴, so a plan entry — and each term of the
//! marginal error — carries a relative error of order `ε₃₂ · C/λ` (ε₃₂ = 1.19e-7). The
//! stopping error therefore stops falling at a plateau. Measured on lavapipe against the f64
//! CPU reference (clr scores, T = 5 and 12, groups of 100–300 rows, cost diameter D = 15–28
//! Euclidean, 222 squared):
//!
//! | λ     | plateau of ‖M1 − a‖₁ | max ΔP(j|i) / row max vs CPU |
//! |-------|----------------------|------------------------------|
//! | 0.5   | 1e-7 … 2.4e-7        | 1e-6 … 1e-5                  |
//! | 0.05  | 9e-7 … 3e-6          | 3e-5 … 1.5e-4                |
//! | 1e-3  | ≳ 2e-3               | 2e-3 (after 3000+ iterations)|
//! | 0.5, squared Euclidean, T = 64 (C̄ ≈ 500) | 2.6e-5 | 1.1e-3              |
//!
//! i.e. the plateau sits at 0.004–0.07 × `ε₃₂ · D / λ`, about 0.01–0.2 × `ε₃₂ · C̄ / λ` with
//! `C̄` the mean cost, and rows of P agree with the f64 reference to within `10 · ε₃₂ · C̄ / λ`
//! (the tests allow 20×): 1e-4 holds for `C̄/λ ≲ 80`, e.g. the paper's λ = 0.05 on clr
//! scores; at λ = 1e-3 expect ~1e-3. So `--tol` below the plateau cannot be met in f32. Rather than spin to
//! `max_iter`, the last stage also stops when the error has not improved for 50 iterations
//! while below [`f32_floor`] (`0.5 · ε₃₂ · C̄/λ`, a bound on the plateau; `C̄` from
//! [`psa_core::sinkhorn::mean_cost`]): the group is reported converged, with its actual error, and a
//! warning says the f32 floor stopped it (use `--backend cpu` for tighter solves). A solve
//! that is merely slow keeps improving and is not stopped by this rule.

use std::sync::Arc;
use std::time::Instant;

use psa_core::matcher::{MatcherError, Progress};
use psa_core::sinkhorn::{STAGE_TOL, cost_diameter, epsilon_schedule, mean_cost, resolve_epsilon};
use psa_core::{
    Group, GroupSolution, Matcher, Metric, Problem, Solution, SolveOptions, SolveReport, StopReason,
};

use crate::kernels::coupling::CouplingKernels;
use crate::kernels::pairwise_cost::{PairwiseCost, TILE};
use crate::kernels::sinkhorn_lse::{GroupState, SinkhornLse};
use crate::util::MAX_GRID_X;
use crate::workspace::{self, GroupSetup, Workspace};
use crate::{GpuContext, GpuError};

/// Multiple of `ε₃₂ · mean cost / λ` under which a stalled error counts as the f32 plateau
/// (measured plateaus: 0.01–0.2×; see the module docs).
pub const F32_FLOOR_FACTOR: f64 = 0.5;
/// Default budget for the materialised cost matrices of all groups (bytes).
pub const DEFAULT_MATERIALISE_BUDGET: u64 = 1 << 30;
/// The materialised mode is chosen automatically only from this many score coordinates on:
/// below, recomputing `T` differences per pair is cheaper than reading 4 bytes from memory
/// (an H100 streams ≈8e11 f32/s from HBM but evaluates ≈1e12 pairs/s at T ≈ 12).
pub const MATERIALISE_MIN_DIM: usize = 32;
/// Auto check interval: read the per-group state back about every this many pair evaluations.
pub const CHECK_PAIRS: u64 = 1 << 27;
/// Longest auto check interval, in iterations.
pub const MAX_CHECK_EVERY: usize = 16;

/// How the LSE gets its costs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CostMode {
    /// Materialised when every group's matrix fits the budget and `T ≥ MATERIALISE_MIN_DIM`
    /// (any `T` on a software adapter).
    #[default]
    Auto,
    /// Recompute each cost from the scores (memory `O((n1 + n2) · T)`).
    Streaming,
    /// Compute each group's `n1 × n2` cost matrix once and read it every half-iteration.
    Materialised,
}

/// Options of the GPU backend (the solve itself is configured by [`SolveOptions`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GpuOptions {
    pub cost_mode: CostMode,
    /// Iterations between read-backs of the per-group state; `None` = auto (see module docs).
    pub check_every: Option<usize>,
    /// Most bytes the materialised mode may allocate for cost matrices.
    pub materialise_budget: u64,
}

impl Default for GpuOptions {
    fn default() -> Self {
        GpuOptions {
            cost_mode: CostMode::Auto,
            check_every: None,
            materialise_budget: DEFAULT_MATERIALISE_BUDGET,
        }
    }
}

/// The GPU matcher: kernels compiled once, buffers allocated once per problem.
#[derive(Debug)]
pub struct GpuMatcher {
    pub ctx: Arc<GpuContext>,
    pub options: GpuOptions,
    pub(crate) sinkhorn: SinkhornLse,
    pub(crate) pairwise: PairwiseCost,
    pub(crate) coupling: CouplingKernels,
}

impl GpuMatcher {
    /// Compiles the shaders and creates the bind group layouts.
    pub fn new(ctx: Arc<GpuContext>, options: GpuOptions) -> Result<GpuMatcher, GpuError> {
        check_limits(&ctx)?;
        Ok(GpuMatcher {
            sinkhorn: SinkhornLse::new(&ctx),
            pairwise: PairwiseCost::new(&ctx),
            coupling: CouplingKernels::new(&ctx),
            ctx,
            options,
        })
    }

    /// Whether this problem's costs will be materialised.
    pub fn materialises(&self, problem: &Problem) -> bool {
        let elements: u64 = problem.groups.iter().map(Group::pairs).sum();
        let fits = elements * 4 <= self.materialise_budget()
            && elements <= u64::from(u32::MAX)
            && problem.groups.iter().all(|g| {
                let max = u64::from(MAX_GRID_X) * u64::from(TILE);
                g.n1() as u64 <= max && g.n2() as u64 <= max
            });
        match self.options.cost_mode {
            CostMode::Streaming => false,
            CostMode::Materialised => fits,
            // A software adapter computes at CPU speed but reads cached memory fast:
            // materialising won at every T on lavapipe (2.6× at T = 10, 13× at T = 64).
            CostMode::Auto => {
                fits && (self.ctx.is_software() || problem.dim() >= MATERIALISE_MIN_DIM)
            }
        }
    }

    fn materialise_budget(&self) -> u64 {
        let limits = self.ctx.device.limits();
        self.options
            .materialise_budget
            .min(limits.max_storage_buffer_binding_size)
            .min(limits.max_buffer_size)
    }

    /// Uploads a problem for solving (or, with `start`, for outputs of a solution).
    pub(crate) fn workspace(
        &self,
        problem: &Problem,
        setups: &[GroupSetup],
        start: Option<&Solution>,
    ) -> Result<Workspace, GpuError> {
        let materialised = start.is_none() && self.materialises(problem);
        if self.options.cost_mode == CostMode::Materialised && !materialised && start.is_none() {
            tracing::warn!("cost matrices exceed the materialise budget; streaming costs instead");
        }
        Workspace::new(
            &self.ctx,
            &self.sinkhorn,
            &self.pairwise,
            problem,
            setups,
            materialised,
            start,
        )
    }

    fn solve_gpu(
        &self,
        problem: &Problem,
        options: &SolveOptions,
        progress: &dyn Progress,
    ) -> Result<Solution, GpuError> {
        options.validate()?;
        if problem.groups.is_empty() {
            return Ok(Solution { groups: Vec::new() });
        }
        let start = Instant::now();
        let setups: Vec<GroupSetup> = problem
            .groups
            .iter()
            .map(|g| group_setup(g, problem.metric, options))
            .collect();
        let ws = self.workspace(problem, &setups, None)?;
        tracing::debug!(
            materialised = ws.materialised,
            device_bytes = ws.bytes.get(),
            "GPU Sinkhorn workspace ready"
        );
        let check_every = self.check_every(ws.pairs());
        let mut reports: Vec<Option<SolveReport>> = vec![None; setups.len()];
        let mut dispatched = 0;
        let mut states = ws.initial.clone();
        while reports.iter().any(Option::is_none) {
            ws.run_iterations(&self.ctx, check_every);
            dispatched += check_every;
            states = ws.read_states(&self.ctx)?;
            let out_of_time = dispatched >= options.max_iter + check_every;
            for (index, state) in states.iter().enumerate() {
                if reports[index].is_none() && (state.is_active == 0 || out_of_time) {
                    let report = report_of(state, start);
                    progress.group_done(index, &report);
                    reports[index] = Some(report);
                }
            }
        }
        let pots = ws.read_potentials(&self.ctx)?;
        let groups = assemble(problem, &setups, &states, &pots, reports, options);
        Ok(Solution { groups })
    }

    fn check_every(&self, pairs: u64) -> usize {
        self.options.check_every.unwrap_or_else(|| {
            (CHECK_PAIRS.div_ceil(pairs.max(1)) as usize).clamp(1, MAX_CHECK_EVERY)
        })
    }
}

impl Matcher for GpuMatcher {
    fn name(&self) -> &str {
        "gpu"
    }

    fn solve(
        &self,
        problem: &Problem,
        options: &SolveOptions,
        progress: &dyn Progress,
    ) -> Result<Solution, MatcherError> {
        Ok(self.solve_gpu(problem, options, progress)?)
    }
}

/// The error under which a GPU solve that stopped improving counts as converged: a bound on
/// the f32 plateau for a group of mean cost `mean_cost` at λ.
pub fn f32_floor(mean_cost: f64, lambda: f64) -> f64 {
    F32_FLOOR_FACTOR * f64::from(f32::EPSILON) * mean_cost / lambda
}

/// λ, schedule and tolerances of one group, as the CPU reference derives them.
fn group_setup(group: &Group, metric: Metric, options: &SolveOptions) -> GroupSetup {
    let lambda = resolve_epsilon(group, metric, options);
    let diameter = cost_diameter(group, metric);
    GroupSetup {
        stages: epsilon_schedule(diameter, lambda, options.eps_scaling),
        tol: options.tol,
        stage_tol: options.tol.max(STAGE_TOL),
        floor: f32_floor(mean_cost(group, metric), lambda),
        tau: options.unbalanced.unwrap_or(0.0),
        max_iter: options.max_iter.min(u32::MAX as usize) as u32,
    }
}

fn report_of(state: &GroupState, start: Instant) -> SolveReport {
    let stopped = if state.floored != 0 {
        StopReason::PrecisionFloor
    } else if state.converged != 0 {
        StopReason::Tolerance
    } else {
        StopReason::MaxIter
    };
    SolveReport {
        iterations: state.iterations as usize,
        marginal_error: f64::from(state.error),
        converged: stopped == StopReason::Tolerance,
        stopped,
        seconds: start.elapsed().as_secs_f64(),
        omega: None,
    }
}

/// Splits the potentials by group, widened to f64, and warns about groups that did not converge.
fn assemble(
    problem: &Problem,
    setups: &[GroupSetup],
    states: &[GroupState],
    pots: &[f32],
    reports: Vec<Option<SolveReport>>,
    options: &SolveOptions,
) -> Vec<GroupSolution> {
    let n1_total: usize = states.iter().map(|s| s.n1 as usize).sum();
    let widen = |from: usize, n: u32| {
        pots[from..from + n as usize]
            .iter()
            .map(|&v| f64::from(v))
            .collect()
    };
    problem
        .groups
        .iter()
        .zip(setups)
        .zip(states)
        .zip(reports)
        .map(|(((group, setup), state), report)| {
            let report = report.unwrap_or_default();
            if state.floored != 0 {
                tracing::warn!(
                    label = %group.label,
                    marginal_error = report.marginal_error,
                    "the f32 GPU solve stopped improving above --tol {}; use --backend cpu for \
                     tighter solves",
                    options.tol
                );
            }
            if !report.converged {
                tracing::warn!(
                    label = %group.label,
                    iterations = report.iterations,
                    marginal_error = report.marginal_error,
                    "Sinkhorn did not reach --tol {} within --max-iter {}; raise --max-iter or --epsilon",
                    options.tol,
                    options.max_iter
                );
            }
            GroupSolution {
                f: widen(state.off1 as usize, state.n1),
                g: widen(n1_total + state.off2 as usize, state.n2),
                epsilon: *setup.stages.last().expect("a schedule ends with the target λ"),
                report,
            }
        })
        .collect()
}

/// The kernels need more than WebGPU's minimum limits; say which one an adapter lacks.
fn check_limits(ctx: &GpuContext) -> Result<(), GpuError> {
    let limits = ctx.device.limits();
    let need = workspace::required_workgroup_bytes();
    if limits.max_compute_workgroup_storage_size < need {
        return Err(GpuError::Unsupported {
            adapter: ctx.info.name.clone(),
            message: format!(
                "{} bytes of workgroup memory, the kernels need {need}",
                limits.max_compute_workgroup_storage_size
            ),
        });
    }
    if limits.max_storage_buffers_per_shader_stage < 9 {
        return Err(GpuError::Unsupported {
            adapter: ctx.info.name.clone(),
            message: format!(
                "{} storage buffers per shader stage, the kernels need 9",
                limits.max_storage_buffers_per_shader_stage
            ),
        });
    }
    Ok(())
}

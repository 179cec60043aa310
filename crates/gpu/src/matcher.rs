//! [`GpuMatcher`]: log-domain Sinkhorn (METHOD.md step 3, Eq. 8) on the GPU, all label groups
//! in the same dispatches, producing the same [`Solution`] as [`psa_core::CpuMatcher`], and
//! keeping its device state for every output afterwards ([`crate::GpuSolved`]).
//!
//! Agreement with the CPU reference by construction: λ comes from
//! [`psa_core::sinkhorn::resolve_epsilon`], the ε-scaling schedule from
//! [`psa_core::sinkhorn::epsilon_schedule`] and [`psa_core::sinkhorn::cost_diameter`], and the
//! stopping test is the same (intermediate stages stop below `max(tol, STAGE_TOL)`, the last
//! below `tol`; balanced: the larger of the row-marginal error `‖M 1 − a‖₁` measured during
//! the f-update and the column error measured during the g-update, unbalanced: the largest
//! change of Sinkhorn's own step, `max |Δf|, |Δg|` over λ). Updates are over-relaxed by an
//! automatic, safeguarded ω (issue 16; `relax` in `sinkhorn_lse.wgsl`) unless
//! `SolveOptions::acceleration` is off. The test runs on the device after *every* iteration
//! (`control` in `sinkhorn_lse.wgsl`): each group moves through its own stages, counts its own
//! iterations against `max_iter`, and stops on its own; stopped groups early-exit in every
//! kernel. The host only reads the small per-group state back every `check_every` iterations
//! (auto: about every 1e8 pair evaluations, at most 16 iterations apart) to learn when all
//! groups are done, so iteration counts do not depend on the check interval. No per-pair data
//! crosses the bus inside the loop.
//!
//! # What the report says
//! The reported `marginal_error` is the one of the returned coupling: after the loop, one
//! check pass recomputes every term of the plan of the final potentials and reports the
//! larger of its row and column L1 errors (summed in f64 on the host); KL-relaxed, the larger
//! fixed-point residual `max |p − p̂| / λ` of f and g, formed in f64 from each row's exact
//! marginal and whole potential — the CPU's measures, not the f32 loop's (whose change of the
//! potentials reads 0 once f32 no longer resolves the update). A group that ran out of
//! iterations inside an earlier ε stage is first moved to the target λ, so the check and the
//! outputs see the returned plan. `converged` (stop reason [`StopReason::Tolerance`]) only
//! when the error is below `tol`; a solve that stalled above it is
//! [`StopReason::PrecisionFloor`], one that ran out of iterations [`StopReason::MaxIter`].
//!
//! # f32 precision
//! Scores and potentials are f32 on the device. A plan entry is `2^a` with an exponent
//! `a = (g_j + f_i − C_ij) · log2(e)/λ` that is small for the entries that matter but is the
//! sum of terms of size `s · C` (`s = log2(e)/λ`; thousands at λ = 0.01): summed in f32 it
//! carries an absolute error of `ε₃₂ · s · C`, the *same* error every iteration (a perturbed
//! cost), and Sinkhorn's slowest mode amplifies a perturbed cost by up to the inverse of its
//! spectral gap — the iterations a solve needs. What keeps `P(j|i)` within 1e-4 of the f64
//! reference for λ from 0.01 to 10 (benches/RESULTS.md, "GPU accuracy", says which part
//! bought what):
//! * potentials live in log2 units (`u = p · s`) as a frame and an offset (hi, lo); every
//!   exponent is `(V_j − s·C_ij) + U_i + v_j` with one rounding on the large part, and the
//!   row's LSE, update and marginal error are computed relative to its frame, on small
//!   numbers; the frame moves to the offset once it exceeds 1/16, so the offset resolves
//!   updates to ~1e-9;
//! * terms within `2^K` of their row's sum, `K = clamp(log2(s · C̄), 4, 20)`, are recomputed in
//!   double-f32 from the scores' hi and lo parts, the whole potentials and `s` as hi + lo
//!   (`exact_arg` in `common.wgsl`) when `s · C̄ ≥ 32`, as are squared distances that lost their
//!   digits to the expanded form: at most `2^K` terms per row, few in practice;
//! * the double-f32 arithmetic passes its intermediates through `opaque` (an integer xor with
//!   a run-time zero), since compilers simplify `(a + b) − a` to `b` (Mesa's NIR does) and
//!   fuse a rounded product into the sum after it (lavapipe's LLVM did, across a
//!   multiplication by a run-time 1.0: every "exact" cost came out with f32's 5e-8 relative
//!   error, `s·C` with ~1e-4 log2 units, and Sinkhorn at λ = 1e-3 stalled at a marginal error
//!   of 8e-6; `tests/common_wgsl.rs`);
//! * scores are centred per group before rounding to f32, and each row's sum is kept per tile
//!   and accumulated with Kahan compensation.
//!
//! The in-loop error is the f32 iteration's own; after the loop a check pass recomputes every
//! term in double-f32 — the exponent against the row's whole potential, `2^x` by its own
//! polynomial (`exp2_dd`; the built-in `exp2` errs by several ulp and lavapipe's is biased by
//! +6e-8), the row sums — so the reported error is that of the returned potentials to ~1e-10,
//! not f32's ~1e-7. A group that stopped on `tol` but is above it resumes with half the in-loop
//! tolerance (at most [`MAX_RESUMES`] times). A solve whose error stops improving for 200
//! iterations at the target λ while below [`f32_floor`] stops there, reported as
//! [`StopReason::PrecisionFloor`] unless the final check finds it below `tol`; a solve that is
//! merely slow keeps improving and is not stopped by this rule.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use psa_core::matcher::{MatcherError, Progress};
use psa_core::sinkhorn::{
    STAGE_TOL, cost_diameter, epsilon_schedule, mean_cost, resolve_epsilon, warn_out_of_iterations,
};
use psa_core::{
    Group, GroupSolution, Matcher, Metric, Problem, Solution, SolveOptions, SolveReport, Solved,
    StopReason,
};

use crate::kernels::coupling::CouplingKernels;
use crate::kernels::sinkhorn_lse::{SinkhornLse, workgroup_bytes};
use crate::kernels::{GroupState, KernelVariant, MAX_DIM, Specialisation};
use crate::plan::GroupSetup;
use crate::solved::GpuSolved;
use crate::workspace::Workspace;
use crate::{GpuContext, GpuError};

/// Multiple of `ε₃₂ · mean cost / λ` under which a stalled error counts as the f32 plateau.
pub const F32_FLOOR_FACTOR: f64 = 0.02;
/// The f32 plateau bound is never below this (measured plateaus: ~1e-7 to 3e-7).
pub const MIN_F32_FLOOR: f64 = 1e-6;
/// Auto check interval: read the per-group state back about every this many pair evaluations.
pub const CHECK_PAIRS: u64 = 1 << 27;
/// Longest auto check interval, in iterations.
pub const MAX_CHECK_EVERY: usize = 16;
/// How often a group that stopped on tol but failed the exact final check resumes.
pub const MAX_RESUMES: usize = 4;

/// How the LSE gets its costs. Only streaming remains: the expanded-distance kernel recomputes
/// a cost in `T + 1` FMAs, and keeping `n1 × n2` costs on the device was removed (it cost a
/// second code path for every arithmetic change and memory quadratic in the group size).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CostMode {
    /// The matcher's choice (streaming).
    #[default]
    Auto,
    /// Recompute each cost from the scores (memory `O((n1 + n2) · T)`).
    Streaming,
    /// Refused by [`GpuMatcher::new`]: the materialised mode was removed.
    Materialised,
}

/// Options of the GPU backend (the solve itself is configured by [`SolveOptions`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GpuOptions {
    pub cost_mode: CostMode,
    /// Iterations between read-backs of the per-group state; `None` = auto (see module docs).
    pub check_every: Option<usize>,
    /// The kernel variant (ablations); `None` = `PSA_GPU_KERNEL` if set, else the production
    /// kernel (see [`KernelVariant`]).
    pub variant: Option<KernelVariant>,
}

/// The GPU matcher: kernels compiled once, buffers allocated once per problem.
#[derive(Debug)]
pub struct GpuMatcher {
    pub ctx: Arc<GpuContext>,
    pub options: GpuOptions,
    pub(crate) variant: KernelVariant,
    pub(crate) sinkhorn: SinkhornLse,
    pub(crate) coupling: CouplingKernels,
    uploads: AtomicUsize,
}

impl GpuMatcher {
    /// Compiles the shaders and creates the bind group layouts.
    pub fn new(ctx: Arc<GpuContext>, options: GpuOptions) -> Result<GpuMatcher, GpuError> {
        if options.cost_mode == CostMode::Materialised {
            return Err(GpuError::Input {
                what: "--gpu-cost",
                message: "materialised costs were removed (the streaming kernel is faster and \
                          needs O((n1 + n2)·T) memory); use auto or streaming"
                    .into(),
            });
        }
        check_limits(&ctx)?;
        let variant = match &options.variant {
            Some(v) => v.clone(),
            None => KernelVariant::from_env()?,
        };
        if variant != KernelVariant::default() {
            tracing::warn!(
                ?variant,
                "GPU kernel variant from PSA_GPU_KERNEL (benchmarks only)"
            );
        }
        Ok(GpuMatcher {
            sinkhorn: SinkhornLse::new(&ctx),
            coupling: CouplingKernels::new(&ctx),
            ctx,
            options,
            variant,
            uploads: AtomicUsize::new(0),
        })
    }

    /// How many times a problem was uploaded to the device by this matcher (one per solve,
    /// and one per [`Matcher::outputs`] of a solution from elsewhere).
    pub fn problem_uploads(&self) -> usize {
        self.uploads.load(Ordering::Relaxed)
    }

    /// The kernel specialisation for a problem.
    pub fn specialisation(&self, problem: &Problem) -> Specialisation {
        Specialisation::new(problem.dim(), problem.metric).with(&self.variant)
    }

    /// Uploads a problem (scores, group layout, `start` potentials) once.
    pub(crate) fn upload(
        &self,
        problem: &Problem,
        setups: &[GroupSetup],
        start: Option<&Solution>,
    ) -> Result<Workspace, GpuError> {
        let spec = self.specialisation(problem);
        check_problem(&self.ctx, problem, spec)?;
        self.uploads.fetch_add(1, Ordering::Relaxed);
        Workspace::new(&self.ctx, &self.sinkhorn, spec, problem, setups, start)
    }

    /// Solves and keeps the workspace (final potentials on the device) for outputs.
    pub(crate) fn solve_on_device(
        &self,
        problem: &Problem,
        options: &SolveOptions,
        progress: &dyn Progress,
    ) -> Result<(Option<Workspace>, Solution), GpuError> {
        options.validate()?;
        if problem.groups.is_empty() {
            return Ok((None, Solution { groups: Vec::new() }));
        }
        let start = Instant::now();
        let setups: Vec<GroupSetup> = problem
            .groups
            .iter()
            .map(|g| group_setup(g, problem.metric, options))
            .collect();
        let ws = self.upload(problem, &setups, None)?;
        tracing::debug!(
            device_bytes = ws.bytes.get(),
            kernel = ?ws.spec,
            "GPU Sinkhorn workspace ready"
        );
        let check_every = self.check_every(ws.pairs());
        let mut states = self.iterate(&ws, options, check_every)?;
        ws.finish_schedules(&self.ctx, &mut states, &setups)?;
        let mut errors = ws.marginal_errors(&self.ctx, &setups)?;
        // The in-loop test reads the f32 iteration's own error, which can sit a few per cent
        // below the real one (the final check recomputes every term exactly): a group that
        // stopped on tol but is above it resumes with a tighter in-loop tolerance.
        for _ in 0..MAX_RESUMES {
            let resumed = resume_above_tol(&mut states, &errors, options);
            if resumed.is_empty() {
                break;
            }
            for &g in &resumed {
                ws.write_state(&self.ctx, g, &states[g]);
            }
            states = self.iterate(&ws, options, check_every)?;
            errors = ws.marginal_errors(&self.ctx, &setups)?;
        }
        let pots = ws.read_potentials(&self.ctx)?;
        let seconds = start.elapsed().as_secs_f64();
        let groups = problem
            .groups
            .iter()
            .enumerate()
            .map(|(index, group)| {
                let report = report_of(&states[index], errors[index], options, seconds);
                warn_if_not_converged(group, &report, options);
                progress.group_done(index, &report);
                let epsilon = *setups[index].stages.last().expect("a schedule ends with λ");
                let (f, g) = ws.plan.unpack_potentials(&pots, index, epsilon);
                GroupSolution {
                    f,
                    g,
                    epsilon,
                    report,
                }
            })
            .collect();
        Ok((Some(ws), Solution { groups }))
    }

    /// Runs iterations until every group has stopped (or the iteration budget is spent),
    /// reading the groups' state back every `check_every` iterations.
    fn iterate(
        &self,
        ws: &Workspace,
        options: &SolveOptions,
        check_every: usize,
    ) -> Result<Vec<GroupState>, GpuError> {
        let mut dispatched = 0;
        loop {
            ws.run_iterations(&self.ctx, check_every);
            dispatched += check_every;
            let states = ws.read_states(&self.ctx)?;
            // The device stops each group at max_iter; this only guards the host loop.
            let out_of_time = dispatched >= options.max_iter + check_every;
            if out_of_time || states.iter().all(|s| s.is_active == 0) {
                return Ok(states);
            }
        }
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
        Ok(self.solve_on_device(problem, options, progress)?.1)
    }

    /// Outputs on the GPU of a solution from anywhere: the problem and potentials are uploaded
    /// once, for every output of the result.
    fn outputs<'m>(
        &'m self,
        problem: Problem,
        solution: Solution,
    ) -> Result<Box<dyn Solved + 'm>, MatcherError> {
        Ok(Box::new(GpuSolved::upload(self, problem, solution)?))
    }

    /// Solves and answers every output from the device state of the solve (no re-upload).
    fn solve_into<'m>(
        &'m self,
        problem: Problem,
        options: &SolveOptions,
        progress: &dyn Progress,
    ) -> Result<Box<dyn Solved + 'm>, MatcherError> {
        let (ws, solution) = self.solve_on_device(&problem, options, progress)?;
        Ok(Box::new(GpuSolved::new(self, problem, solution, ws)?))
    }
}

/// The error under which a GPU solve that stopped improving counts as the f32 plateau: a
/// bound for a group of mean cost `mean_cost` at λ.
pub fn f32_floor(mean_cost: f64, lambda: f64) -> f64 {
    (F32_FLOOR_FACTOR * f64::from(f32::EPSILON) * mean_cost / lambda).max(MIN_F32_FLOOR)
}

/// λ, schedule and tolerances of one group, as the CPU reference derives them.
fn group_setup(group: &Group, metric: Metric, options: &SolveOptions) -> GroupSetup {
    let lambda = resolve_epsilon(group, metric, options);
    let diameter = cost_diameter(group, metric);
    let mean = mean_cost(group, metric);
    GroupSetup {
        stages: epsilon_schedule(diameter, lambda, options.eps_scaling),
        tol: options.tol,
        stage_tol: options.tol.max(STAGE_TOL),
        floor: f32_floor(mean, lambda),
        tau: options.unbalanced.unwrap_or(0.0),
        accelerate: options.acceleration,
        max_iter: options.max_iter.min(u32::MAX as usize) as u32,
        mean_cost: mean,
    }
}

/// Groups that stopped on the in-loop tolerance while their exact final error is not below
/// tol: reactivated with half the in-loop tolerance (and a fresh stall count).
fn resume_above_tol(
    states: &mut [GroupState],
    errors: &[(f64, f64)],
    options: &SolveOptions,
) -> Vec<usize> {
    let mut resumed = Vec::new();
    for (g, (state, &(row, column))) in states.iter_mut().zip(errors).enumerate() {
        let error = larger_error(row, column);
        let above = error.is_nan() || error >= options.tol;
        if state.converged != 0 && above && state.iterations < state.max_iter {
            state.is_active = 1;
            state.converged = 0;
            state.tol *= 0.5;
            state.stall = 0;
            state.best = f32::MAX;
            resumed.push(g);
        }
    }
    resumed
}

/// The larger of a plan's row and column errors; NaN if either is (`f64::max` would drop it: a
/// NaN is an error above any tolerance, never a "0").
fn larger_error(row: f64, column: f64) -> f64 {
    if row.is_nan() || column.is_nan() {
        f64::NAN
    } else {
        row.max(column)
    }
}

/// A group's report from its device state and the final check's `(row, column)` errors
/// (balanced: L1 marginal errors; KL-relaxed: fixed-point residuals; both of the returned
/// potentials, whatever the in-loop test read).
fn report_of(
    state: &GroupState,
    (row, column): (f64, f64),
    options: &SolveOptions,
    seconds: f64,
) -> SolveReport {
    let marginal_error = larger_error(row, column);
    let stopped = if marginal_error < options.tol {
        StopReason::Tolerance
    } else if state.floored != 0 || state.converged != 0 {
        // Stalled above tol, or the in-loop test passed but the returned coupling is above it:
        // either way f32 resolution is what stopped it.
        StopReason::PrecisionFloor
    } else {
        StopReason::MaxIter
    };
    SolveReport {
        iterations: state.iterations as usize,
        marginal_error,
        converged: stopped == StopReason::Tolerance,
        stopped,
        seconds,
        omega: options
            .acceleration
            .then(|| 1.0 + f64::from(state.overrelax)),
    }
}

fn warn_if_not_converged(group: &Group, report: &SolveReport, options: &SolveOptions) {
    match report.stopped {
        StopReason::Tolerance => {}
        StopReason::PrecisionFloor => tracing::warn!(
            label = %group.label,
            marginal_error = report.marginal_error,
            "the f32 GPU solve stopped improving above --tol {}; use --backend cpu for \
             tighter solves",
            options.tol
        ),
        StopReason::MaxIter => warn_out_of_iterations(&group.label, report, options),
    }
}

/// The kernels need more than WebGPU's minimum limits; say which one an adapter lacks.
fn check_limits(ctx: &GpuContext) -> Result<(), GpuError> {
    let limits = ctx.device.limits();
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

/// What a problem needs of the adapter: `T ≤ 64` and the column tile in workgroup memory.
fn check_problem(
    ctx: &GpuContext,
    problem: &Problem,
    spec: Specialisation,
) -> Result<(), GpuError> {
    let dim = problem.dim();
    if dim > MAX_DIM {
        return Err(GpuError::Input {
            what: "scores",
            message: format!(
                "{dim} columns; the GPU kernels handle T ≤ {MAX_DIM} (use --backend cpu)"
            ),
        });
    }
    let need = workgroup_bytes(spec.dim);
    let have = ctx.device.limits().max_compute_workgroup_storage_size;
    if have < need {
        return Err(GpuError::Unsupported {
            adapter: ctx.info.name.clone(),
            message: format!(
                "{have} bytes of workgroup memory, the kernels need {need} at T = {dim} \
                 (use --backend cpu)"
            ),
        });
    }
    Ok(())
}

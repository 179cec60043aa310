//! Log-domain Sinkhorn, the CPU reference (METHOD.md step 3, Eq. 8; POT's `sinkhorn_log`).
//!
//! With `M_ij = a_i b_j exp((f_i + g_j − C_ij)/λ)` and uniform marginals, one iteration is
//! ```text
//! f_i ← ρ · (−λ LSE_j(log b_j + (g_j − C_ij)/λ))
//! g_j ← ρ · (−λ LSE_i(log a_i + (f_i − C_ij)/λ))
//! ```
//! with `ρ = 1` (balanced) or `ρ = τ/(τ + λ)` (KL-relaxed marginals, POT's
//! `sinkhorn_unbalanced(reg_type='kl')`).
//!
//! **The stopping test measures what is returned.** The LSE over the rows that the f-update
//! needs also gives the row marginal of the current plan, `a_i exp(f_i/λ + LSE_i)`; the column
//! marginal is exact after the g-update that ended the previous iteration (its error is
//! measured all the same). Each iteration therefore starts by measuring the current plan, and
//! stops *before* updating when the larger of the two L1 errors is below `tol`: the reported
//! `marginal_error` is that of the returned potentials, not of the previous iterate
//! (unbalanced: the fixed-point residual `max |f − f̂|, |g − ĝ|` over λ, measured the same way).
//!
//! **Acceleration** (`SolveOptions::acceleration`, on by default): the f-update is replaced
//! by an Anderson-accelerated step over the last iterates ([`anderson`], which also says why
//! over-relaxation was measured and not kept). The fixed point, and so every coupling, is
//! unchanged; the iteration count falls 5–40× on clustered scores (`benches/RESULTS.md`).
//!
//! ε-scaling solves a geometric sequence of λ from the cost diameter down to the target, each
//! stage warm-started from the last; the fixed point at the target λ is unchanged. The
//! stopping test always applies at the target λ.
//!
//! **Per-iteration speed** (issue 16; figures in `benches/RESULTS.md`). Each half-iteration is
//! a log-sum-exp over `n1 · n2` pairs ([`kernel`]), in one of four forms:
//! * costs *streamed* (recomputed from the `T` scores of each pair: `O((n1 + n2) T)` memory) or
//!   *materialised* once per group (`n1 · n2` values per side, read at every pass: no distance
//!   and no square root per pair). Groups are materialised, in order, while they fit
//!   `SolveOptions::cost_budget` (1 GiB by default); on the 2-core dev machine that is 1.3×
//!   (f64) to 1.6× (f32) faster per pass at T = 12 and 2.3–3× at T = 45;
//! * in *f64* (the reference) or *f32* (`Precision::F32`, the default: twice the SIMD lanes).
//!   f32 rounds every exponent by about `ε₃₂ · C/λ`, so an f32 pass cannot see marginal errors
//!   below a floor of that order. A solve therefore runs its f32 passes only while the error is
//!   well above that floor ([`F32_SWITCH`]), then hands over to f64 passes for the rest: the
//!   returned potentials are the f64 fixed point to `tol`, and the reported error is an f64
//!   measurement. `tests/precision.rs` checks f32 solves against the f64 reference (and POT)
//!   for λ from 0.01 to 10.

pub mod anderson;
pub mod kernel;
mod state;

pub use kernel::{
    Columns, CostRows, LANES, ROWS, RowBlock, TILE, rows_lse, soft_min_rows, soft_min_stored,
};

use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::matcher::{MatcherError, Progress};
use crate::{
    EpsilonMode, Group, GroupSolution, Matcher, Metric, Precision, Problem, Solution, SolveOptions,
    SolveReport, StopReason,
};
use anderson::Anderson;
pub use state::CostStorage;
use state::SinkhornState;

/// λ shrinks by this factor between ε-scaling stages.
pub const EPS_SCALING_FACTOR: f64 = 0.5;
/// Most ε-scaling stages before the target λ (the first starts at most `2^64 λ`).
pub const MAX_STAGES: usize = 64;
/// An intermediate ε-scaling stage ends when its marginal error falls below this.
pub const STAGE_TOL: f64 = 1e-2;
/// Exact mean cost up to this many pairs; above, a seeded sample of this many pairs.
pub const MEAN_COST_PAIRS: u64 = 1 << 22;

/// The CPU reference matcher (f64, rayon over groups and rows).
#[derive(Clone, Debug, Default)]
pub struct CpuMatcher;

impl Matcher for CpuMatcher {
    fn name(&self) -> &str {
        "cpu"
    }

    fn solve(
        &self,
        problem: &Problem,
        options: &SolveOptions,
        progress: &dyn Progress,
    ) -> Result<Solution, MatcherError> {
        options.validate()?;
        problem.validate()?;
        let storage = cost_storage(problem, options);
        let groups = problem
            .groups
            .par_iter()
            .zip(storage)
            .enumerate()
            .map(|(index, (group, storage))| {
                let solution = solve_group(group, problem.metric, options, storage);
                progress.group_done(index, &solution.report);
                solution
            })
            .collect();
        Ok(Solution { groups })
    }
}

/// The warning every backend logs for a group that ran out of iterations above `--tol`.
pub fn warn_out_of_iterations(label: &str, report: &SolveReport, options: &SolveOptions) {
    tracing::warn!(
        label = %label,
        iterations = report.iterations,
        marginal_error = report.marginal_error,
        "Sinkhorn did not reach --tol {:e} within --max-iter {}; raise --max-iter or --epsilon",
        options.tol,
        options.max_iter
    );
}

/// The absolute λ of a group: `epsilon` itself, or `epsilon ×` the group's mean cost.
pub fn resolve_epsilon(group: &Group, metric: Metric, options: &SolveOptions) -> f64 {
    match options.epsilon_mode {
        EpsilonMode::Absolute => options.epsilon,
        EpsilonMode::Relative => {
            let mean = mean_cost(group, metric);
            if mean > 0.0 {
                options.epsilon * mean
            } else {
                tracing::warn!(
                    label = %group.label,
                    "every pair has cost 0; using --epsilon {} as an absolute λ",
                    options.epsilon
                );
                options.epsilon
            }
        }
    }
}

/// Mean cost over all pairs (exact up to [`MEAN_COST_PAIRS`], else a seeded sample of pairs,
/// accurate to well under 1%: every backend calls this same function, so they agree on λ).
pub fn mean_cost(group: &Group, metric: Metric) -> f64 {
    let (x1, x2) = (&group.x1, &group.x2);
    let cost = |i: usize, j: usize| {
        metric.cost(
            x1.row(i).as_slice().expect("standard layout"),
            x2.row(j).as_slice().expect("standard layout"),
        )
    };
    if group.pairs() <= MEAN_COST_PAIRS {
        let total: f64 = (0..group.n1())
            .into_par_iter()
            .map(|i| (0..group.n2()).map(|j| cost(i, j)).sum::<f64>())
            .sum();
        total / group.pairs() as f64
    } else {
        let mut rng = ChaCha8Rng::seed_from_u64(0x5eed);
        let total: f64 = (0..MEAN_COST_PAIRS)
            .map(|_| {
                cost(
                    rng.random_range(0..group.n1()),
                    rng.random_range(0..group.n2()),
                )
            })
            .sum();
        total / MEAN_COST_PAIRS as f64
    }
}

/// Largest possible cost between the two sets, bounded from their joint bounding box.
pub fn cost_diameter(group: &Group, metric: Metric) -> f64 {
    let dim = group.dim();
    let mut lo = vec![f64::INFINITY; dim];
    let mut hi = vec![f64::NEG_INFINITY; dim];
    for row in group.x1.rows().into_iter().chain(group.x2.rows()) {
        for (k, &v) in row.iter().enumerate() {
            lo[k] = lo[k].min(v);
            hi[k] = hi[k].max(v);
        }
    }
    let d2: f64 = lo.iter().zip(&hi).map(|(l, h)| (h - l) * (h - l)).sum();
    metric.from_squared(d2)
}

/// The λ of each stage: from the diameter down to `lambda` by [`EPS_SCALING_FACTOR`], ending
/// with `lambda` itself; just `[lambda]` without ε-scaling. At most [`MAX_STAGES`] + 1 stages
/// whatever the diameter (even an infinite or NaN one).
pub fn epsilon_schedule(diameter: f64, lambda: f64, eps_scaling: bool) -> Vec<f64> {
    let mut stages = Vec::new();
    if eps_scaling {
        let mut eps = diameter.min(lambda * EPS_SCALING_FACTOR.powi(-(MAX_STAGES as i32)));
        while eps > lambda {
            stages.push(eps);
            eps *= EPS_SCALING_FACTOR;
        }
    }
    stages.push(lambda);
    stages
}

/// Where each group's costs live, within `options.cost_budget`: first every group in order
/// whose costs fit what is left is materialised in the precision of its first passes; then, for
/// f32 solves, groups in order are upgraded to `hi + lo` (so that the f64 finish reads stored
/// costs too) while the budget lasts. The rest stream their costs.
pub fn cost_storage(problem: &Problem, options: &SolveOptions) -> Vec<CostStorage> {
    let padded = |n: usize| n.div_ceil(LANES) as u64 * LANES as u64;
    let costs: Vec<u64> = problem
        .groups
        .iter()
        .map(|g| g.n1() as u64 * padded(g.n2()) + g.n2() as u64 * padded(g.n1()))
        .collect();
    let bytes = |storage: CostStorage| storage.bytes_per_cost(options.precision);
    let mut left = options.cost_budget;
    let mut storage: Vec<CostStorage> = costs
        .iter()
        .map(|&c| {
            let need = c.saturating_mul(bytes(CostStorage::Stored));
            if need <= left {
                left -= need;
                CostStorage::Stored
            } else {
                CostStorage::Streamed
            }
        })
        .collect();
    if options.precision == Precision::F32 {
        let extra = bytes(CostStorage::Split) - bytes(CostStorage::Stored);
        for (s, &c) in storage.iter_mut().zip(&costs) {
            let need = c.saturating_mul(extra);
            if *s == CostStorage::Stored && need <= left {
                left -= need;
                *s = CostStorage::Split;
            }
        }
    }
    storage
}

/// Solves one group to tolerance (or `max_iter`), logging a warning when it does not converge.
///
/// Each iteration first measures the current plan: the LSE over every row (which the f-update
/// then reuses) gives the row error, and the exact g-update that ended the previous iteration
/// left the column marginal exact (its error is measured too). So the error reported, and
/// tested against `tol`, is that of exactly the potentials returned, and always an f64
/// measurement.
pub fn solve_group(
    group: &Group,
    metric: Metric,
    options: &SolveOptions,
    storage: CostStorage,
) -> GroupSolution {
    let start = Instant::now();
    let lambda = resolve_epsilon(group, metric, options);
    let diameter = cost_diameter(group, metric);
    let stages = epsilon_schedule(diameter, lambda, options.eps_scaling);
    let f32 = options.precision == Precision::F32;
    let mut state = SinkhornState::new(
        group,
        metric,
        options.unbalanced,
        options.precision,
        storage,
    );
    let mut anderson = options.acceleration.then(Anderson::new);
    let mut report = SolveReport {
        marginal_error: f64::INFINITY,
        stopped: StopReason::MaxIter,
        ..SolveReport::default()
    };
    'stages: for (stage, &eps) in stages.iter().enumerate() {
        let last = stage + 1 == stages.len();
        let stage_tol = if last {
            options.tol
        } else {
            options.tol.max(STAGE_TOL)
        };
        let mut f32_phase = F32Phase::new(f32, diameter, eps, stage_tol, last);
        state.begin_stage(eps);
        state.use_f32(f32_phase.active());
        if let Some(anderson) = &mut anderson {
            anderson.reset();
        }
        loop {
            let error = state.measure_rows();
            if state.in_f32() && f32_phase.done(error) {
                // The f32 passes have done their part: finish in f64, from an f64 measurement.
                tracing::debug!(
                    label = %group.label,
                    iterations = report.iterations,
                    error,
                    "f32 passes hand over to f64"
                );
                state.use_f32(false);
                if let Some(anderson) = &mut anderson {
                    anderson.reset();
                }
                continue;
            }
            report.marginal_error = error;
            if error < stage_tol {
                if last {
                    report.converged = true;
                    report.stopped = StopReason::Tolerance;
                }
                break;
            }
            if report.iterations >= options.max_iter {
                if !last || state.in_f32() {
                    // Measure the returned plan in f64 at the target λ.
                    state.use_f32(false);
                    state.begin_stage(lambda);
                    state.measure_columns();
                    report.marginal_error = state.measure_rows();
                    if report.marginal_error < options.tol {
                        report.converged = true;
                        report.stopped = StopReason::Tolerance;
                    }
                }
                break 'stages;
            }
            state.step(anderson.as_mut(), error);
            report.iterations += 1;
        }
    }
    report.omega = anderson.map(|anderson| anderson.omega());
    report.seconds = start.elapsed().as_secs_f64();
    if !report.converged {
        warn_out_of_iterations(&group.label, &report, options);
    }
    GroupSolution {
        f: state.f,
        g: state.g,
        epsilon: lambda,
        report,
    }
}

/// When a stage runs its passes in f32 (`Precision::F32`), and when it hands over to f64.
///
/// f32 rounds each exponent `h_c − C_rc/λ` by about `ε₃₂ · C/λ`, so the marginal error of an
/// f32 pass cannot be trusted below a floor of that order (`ε₃₂ = 1.2e-7`; we bound `C` by the
/// cost diameter D). A stage uses f32 while its error is above [`F32_SWITCH`] × `ε₃₂ · D/λ`
/// and above its tolerance, then f64; the last stage always ends in f64, so the reported error
/// is an f64 measurement. A stage whose handover point is above its tolerance anyway (tiny λ)
/// runs in f64 throughout. The f32 phase also ends when its error stalls (no halving in
/// [`F32_STALL`] iterations), in case the floor is higher than the bound says.
struct F32Phase {
    active: bool,
    /// Hand over below this error.
    until: f64,
    best: f64,
    stalled_for: usize,
}

/// The f32 phase ends below this multiple of `ε₃₂ · D/λ` (measured: the f32 error keeps
/// falling to about 0.1 × this on the peers' problems before it stalls; handing over at 1×
/// leaves the f64 finish 5–15 iterations there, and the iteration counts within ±20% of
/// handing over at 30×).
pub const F32_SWITCH: f64 = 1.0;
/// Iterations without halving the error after which the f32 phase ends.
pub const F32_STALL: usize = 20;

impl F32Phase {
    fn new(f32: bool, diameter: f64, eps: f64, stage_tol: f64, last: bool) -> Self {
        let floor = F32_SWITCH * f64::from(f32::EPSILON) * diameter / eps;
        let useful = f32 && floor.is_finite() && floor < STAGE_TOL;
        F32Phase {
            active: useful && (last || floor < stage_tol),
            until: if last { floor.max(stage_tol) } else { floor },
            best: f64::INFINITY,
            stalled_for: 0,
        }
    }

    fn active(&self) -> bool {
        self.active
    }

    /// Whether the f32 phase should end, given the error just measured in f32.
    fn done(&mut self, error: f64) -> bool {
        if error < 0.5 * self.best {
            self.best = error;
            self.stalled_for = 0;
        } else {
            self.stalled_for += 1;
        }
        let done = error < self.until || self.stalled_for >= F32_STALL;
        if done {
            self.active = false;
        }
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::clustered_problem;

    #[test]
    fn cost_storage_fills_the_budget_group_by_group() {
        let p = clustered_problem(100, 4, 2, Metric::Euclidean, 1);
        // 100 × 104 padded costs per orientation, two orientations, per group.
        let costs = 2 * 100 * 104;
        let storage = |precision, cost_budget| {
            cost_storage(
                &p,
                &SolveOptions {
                    precision,
                    cost_budget,
                    ..SolveOptions::default()
                },
            )
        };
        use CostStorage::*;
        assert_eq!(storage(Precision::F32, 0), vec![Streamed, Streamed]);
        assert_eq!(storage(Precision::F32, 16 * costs), vec![Split, Split]);
        assert_eq!(storage(Precision::F32, 12 * costs), vec![Split, Stored]);
        assert_eq!(storage(Precision::F32, 8 * costs), vec![Stored, Stored]);
        assert_eq!(storage(Precision::F32, 6 * costs), vec![Stored, Streamed]);
        assert_eq!(storage(Precision::F64, 12 * costs), vec![Stored, Streamed]);
    }

    #[test]
    fn f32_phase_is_skipped_where_f32_cannot_reach_the_stage() {
        // ε₃₂ · D/λ = 1.2e-7 · 20 / 1e-5 = 0.24 > STAGE_TOL: f64 throughout.
        assert!(!F32Phase::new(true, 20.0, 1e-5, 1e-6, true).active());
        assert!(F32Phase::new(true, 20.0, 0.05, 1e-6, true).active());
        assert!(!F32Phase::new(false, 20.0, 0.05, 1e-6, true).active());
        let mut phase = F32Phase::new(true, 20.0, 0.05, 1e-6, true);
        assert!(!phase.done(1e-2));
        assert!(phase.done(1e-5));
    }
}

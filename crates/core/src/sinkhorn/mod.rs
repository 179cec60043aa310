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

pub mod anderson;
mod kernel;

pub use kernel::{Columns, LANES, ROWS, RowBlock, TILE, rows_lse, soft_min_rows};

use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::matcher::{MatcherError, Progress};
use crate::{
    EpsilonMode, Group, GroupSolution, Matcher, Metric, Problem, Solution, SolveOptions,
    SolveReport, StopReason,
};
use anderson::Anderson;

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
        let groups = problem
            .groups
            .par_iter()
            .enumerate()
            .map(|(index, group)| {
                let solution = solve_group(group, problem.metric, options);
                progress.group_done(index, &solution.report);
                solution
            })
            .collect();
        Ok(Solution { groups })
    }
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

/// Solves one group to tolerance (or `max_iter`), logging a warning when it does not converge.
///
/// Each iteration first measures the current plan: the LSE over every row (which the f-update
/// then reuses) gives the row error, and the exact g-update that ended the previous iteration
/// left the column marginal exact (its error is measured too). So the error reported, and
/// tested against `tol`, is that of exactly the potentials returned.
pub fn solve_group(group: &Group, metric: Metric, options: &SolveOptions) -> GroupSolution {
    let start = Instant::now();
    let lambda = resolve_epsilon(group, metric, options);
    let stages = epsilon_schedule(cost_diameter(group, metric), lambda, options.eps_scaling);
    let mut state = SinkhornState::new(group, metric, options.unbalanced);
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
        state.begin_stage(eps);
        if let Some(anderson) = &mut anderson {
            anderson.reset();
        }
        loop {
            let error = state.measure_rows();
            report.marginal_error = error;
            if error < stage_tol {
                if last {
                    report.converged = true;
                    report.stopped = StopReason::Tolerance;
                }
                break;
            }
            if report.iterations >= options.max_iter {
                if !last {
                    // Stopped at an intermediate λ: measure the plan at the target λ.
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
        tracing::warn!(
            label = %group.label,
            iterations = report.iterations,
            marginal_error = report.marginal_error,
            "Sinkhorn did not reach --tol {:e} within --max-iter {}; raise --max-iter or --epsilon",
            options.tol,
            options.max_iter
        );
    }
    GroupSolution {
        f: state.f,
        g: state.g,
        epsilon: lambda,
        report,
    }
}

/// Potentials and the buffers one iteration needs, allocated once per group.
struct SinkhornState<'a> {
    x1: &'a [f64],
    x2: &'a [f64],
    cols1: Columns,
    cols2: Columns,
    metric: Metric,
    tau: Option<f64>,
    /// The λ of the current stage.
    eps: f64,
    f: Vec<f64>,
    g: Vec<f64>,
    h1: Vec<f64>,
    h2: Vec<f64>,
    lse1: Vec<f64>,
    lse2: Vec<f64>,
    /// Plain image of f (the f-update's block maximiser), for the accelerator.
    f_hat: Vec<f64>,
    /// Error of the current plan's columns (∞ until a g-update at this λ measured it).
    column_error: f64,
}

impl<'a> SinkhornState<'a> {
    fn new(group: &'a Group, metric: Metric, tau: Option<f64>) -> Self {
        let (n1, n2, dim) = (group.n1(), group.n2(), group.dim());
        let x1 = group
            .x1
            .as_slice()
            .expect("Group::x1 is in standard layout");
        let x2 = group
            .x2
            .as_slice()
            .expect("Group::x2 is in standard layout");
        let cols1 = Columns::new(x1, n1, dim);
        let cols2 = Columns::new(x2, n2, dim);
        SinkhornState {
            h1: vec![f64::NEG_INFINITY; cols1.n_padded],
            h2: vec![f64::NEG_INFINITY; cols2.n_padded],
            x1,
            x2,
            cols1,
            cols2,
            metric,
            tau,
            eps: 1.0,
            f: vec![0.0; n1],
            g: vec![0.0; n2],
            lse1: vec![0.0; n1],
            lse2: vec![0.0; n2],
            f_hat: vec![0.0; n1],
            column_error: f64::INFINITY,
        }
    }

    fn begin_stage(&mut self, eps: f64) {
        self.eps = eps;
        self.column_error = f64::INFINITY;
    }

    /// The LSE over every row at the current g, and the error of the current plan: the
    /// larger of its row and column errors (see [`SolveOptions::tol`]).
    fn measure_rows(&mut self) -> f64 {
        fill_log_weights(&mut self.h2, &self.g, self.eps, self.g.len());
        soft_min_rows(
            self.x1,
            &self.cols2,
            &self.h2,
            1.0 / self.eps,
            self.metric,
            &mut self.lse1,
        );
        block_error(&self.f, &self.lse1, self.eps, self.tau).max(self.column_error)
    }

    /// The LSE over every column at the current f, and the current plan's column error.
    fn measure_columns(&mut self) {
        fill_log_weights(&mut self.h1, &self.f, self.eps, self.f.len());
        soft_min_rows(
            self.x2,
            &self.cols1,
            &self.h1,
            1.0 / self.eps,
            self.metric,
            &mut self.lse2,
        );
        self.column_error = block_error(&self.g, &self.lse2, self.eps, self.tau);
    }

    /// One iteration after [`Self::measure_rows`] found the current plan's error `error`:
    /// the f-update (plain, or Anderson-accelerated), then the exact g-update.
    fn step(&mut self, anderson: Option<&mut Anderson>, error: f64) {
        let rho = damping(self.eps, self.tau);
        for (target, l) in self.f_hat.iter_mut().zip(&self.lse1) {
            *target = -rho * self.eps * l;
        }
        match anderson {
            Some(anderson) => anderson.step(&mut self.f, &self.f_hat, error, self.eps),
            None => self.f.copy_from_slice(&self.f_hat),
        }
        self.measure_columns();
        for (g, l) in self.g.iter_mut().zip(&self.lse2) {
            *g = -rho * self.eps * l;
        }
        self.column_error = block_error(&self.g, &self.lse2, self.eps, self.tau);
    }
}

/// `h_c = potential_c / λ + log(1/n)`, leaving padding at −∞.
fn fill_log_weights(h: &mut [f64], potential: &[f64], eps: f64, n: usize) {
    let log_weight = -(n as f64).ln();
    for (hc, p) in h.iter_mut().zip(potential) {
        *hc = p / eps + log_weight;
    }
}

/// `ρ = τ/(τ + λ)`, the damping of KL-relaxed marginals (1 when balanced).
fn damping(eps: f64, tau: Option<f64>) -> f64 {
    tau.map_or(1.0, |tau| tau / (tau + eps))
}

/// The error of one side of the plan whose potential is `p`, given the LSE over the other
/// side. Balanced: that marginal's L1 error `Σ_i a_i |e^{p_i/λ + lse_i} − 1|` (the plan's
/// marginal is `a_i e^{p_i/λ + lse_i}`); unbalanced: the fixed-point residual
/// `max_i |p_i − p̂_i| / λ` with `p̂ = −ρ λ lse` the exact update.
fn block_error(p: &[f64], lse: &[f64], eps: f64, tau: Option<f64>) -> f64 {
    match tau {
        None => {
            p.iter()
                .zip(lse)
                .map(|(p, l)| (p / eps + l).exp_m1().abs())
                .sum::<f64>()
                / p.len() as f64
        }
        Some(_) => {
            let rho = damping(eps, tau);
            p.iter()
                .zip(lse)
                .map(|(p, l)| (p / eps + rho * l).abs())
                .fold(0.0, f64::max)
        }
    }
}

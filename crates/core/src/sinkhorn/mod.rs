//! Log-domain Sinkhorn, the CPU reference (METHOD.md step 3, Eq. 8; POT's `sinkhorn_log`).
//!
//! With `M_ij = a_i b_j exp((f_i + g_j − C_ij)/λ)` and uniform marginals, one iteration is
//! ```text
//! f_i ← ρ · (−λ LSE_j(log b_j + (g_j − C_ij)/λ))
//! g_j ← ρ · (−λ LSE_i(log a_i + (f_i − C_ij)/λ))
//! ```
//! with `ρ = 1` (balanced) or `ρ = τ/(τ + λ)` (KL-relaxed marginals, POT's
//! `sinkhorn_unbalanced(reg_type='kl')`). The f-update yields the row marginal error of the
//! current plan for free: row sums are `a_i exp((f_i − f_i^new)/λ)`.
//!
//! ε-scaling solves a geometric sequence of λ from the cost diameter down to the target, each
//! stage warm-started from the last; the fixed point at the target λ is unchanged, and far fewer
//! iterations reach it. The stopping test always applies at the target λ.

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

/// λ shrinks by this factor between ε-scaling stages.
pub const EPS_SCALING_FACTOR: f64 = 0.5;
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
/// with `lambda` itself; just `[lambda]` without ε-scaling.
pub fn epsilon_schedule(diameter: f64, lambda: f64, eps_scaling: bool) -> Vec<f64> {
    let mut stages = Vec::new();
    if eps_scaling {
        let mut eps = diameter;
        while eps > lambda {
            stages.push(eps);
            eps *= EPS_SCALING_FACTOR;
        }
    }
    stages.push(lambda);
    stages
}

/// Solves one group to tolerance (or `max_iter`), logging a warning when it does not converge.
pub fn solve_group(group: &Group, metric: Metric, options: &SolveOptions) -> GroupSolution {
    let start = Instant::now();
    let lambda = resolve_epsilon(group, metric, options);
    let mut state = SinkhornState::new(group, metric, options.unbalanced);
    let stages = epsilon_schedule(cost_diameter(group, metric), lambda, options.eps_scaling);
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
        loop {
            if report.iterations >= options.max_iter {
                break 'stages;
            }
            let error = state.iterate(eps);
            report.iterations += 1;
            report.marginal_error = error;
            if error < stage_tol {
                if last {
                    report.converged = true;
                    report.stopped = StopReason::Tolerance;
                }
                break;
            }
        }
    }
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
    f: Vec<f64>,
    g: Vec<f64>,
    h1: Vec<f64>,
    h2: Vec<f64>,
    lse1: Vec<f64>,
    lse2: Vec<f64>,
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
            f: vec![0.0; n1],
            g: vec![0.0; n2],
            lse1: vec![0.0; n1],
            lse2: vec![0.0; n2],
        }
    }

    /// One f- and one g-update at `eps`; returns the stopping error (see [`SolveOptions::tol`]).
    fn iterate(&mut self, eps: f64) -> f64 {
        let rho = self.tau.map_or(1.0, |tau| tau / (tau + eps));
        let (n1, n2) = (self.f.len(), self.g.len());

        fill_log_weights(&mut self.h2, &self.g, eps, n2);
        soft_min_rows(
            self.x1,
            &self.cols2,
            &self.h2,
            1.0 / eps,
            self.metric,
            &mut self.lse1,
        );
        // Row sums of the current plan are a_i exp(f_i/λ + lse_i).
        let row_error: f64 = self
            .f
            .iter()
            .zip(&self.lse1)
            .map(|(f, l)| (f / eps + l).exp_m1().abs())
            .sum::<f64>()
            / n1 as f64;
        let f_change = update_potentials(&mut self.f, &self.lse1, eps, rho);

        fill_log_weights(&mut self.h1, &self.f, eps, n1);
        soft_min_rows(
            self.x2,
            &self.cols1,
            &self.h1,
            1.0 / eps,
            self.metric,
            &mut self.lse2,
        );
        let g_change = update_potentials(&mut self.g, &self.lse2, eps, rho);

        match self.tau {
            None => row_error,
            Some(_) => f_change.max(g_change) / eps,
        }
    }
}

/// `h_c = potential_c / λ + log(1/n)`, leaving padding at −∞.
fn fill_log_weights(h: &mut [f64], potential: &[f64], eps: f64, n: usize) {
    let log_weight = -(n as f64).ln();
    for (hc, p) in h.iter_mut().zip(potential) {
        *hc = p / eps + log_weight;
    }
}

/// `p ← ρ · (−λ lse)`; returns the largest change.
fn update_potentials(potential: &mut [f64], lse: &[f64], eps: f64, rho: f64) -> f64 {
    let mut change: f64 = 0.0;
    for (p, l) in potential.iter_mut().zip(lse) {
        let new = -rho * eps * l;
        change = change.max((new - *p).abs());
        *p = new;
    }
    change
}

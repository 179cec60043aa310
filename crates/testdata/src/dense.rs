//! The error of a returned coupling recomputed densely in f64 from its potentials — the
//! independent measure every backend's report is checked against (issue 11, "`converged`
//! means converged"). Small problems only: it forms the whole `n1 × n2` plan.

use ndarray::{Array1, Array2, Axis};
use psa_core::{GroupSolution, Problem, SolveOptions};

/// The cost matrix of group `group`.
pub fn costs(p: &Problem, group: usize) -> Array2<f64> {
    let g = &p.groups[group];
    Array2::from_shape_fn((g.n1(), g.n2()), |(i, j)| {
        p.metric.cost(
            g.x1.row(i).as_slice().unwrap(),
            g.x2.row(j).as_slice().unwrap(),
        )
    })
}

/// The error a report must give for `s`: balanced, the larger of the plan's row and column
/// L1 marginal errors; KL-relaxed with strength τ, the fixed-point residual
/// `max(|f − f̂|, |g − ĝ|) / λ` at the returned potentials.
pub fn returned_error(p: &Problem, s: &GroupSolution, group: usize, tau: Option<f64>) -> f64 {
    match tau {
        None => marginal_error(p, s, group),
        Some(tau) => residual(p, s, group, tau),
    }
}

/// Balanced: the larger of the dense plan's row and column L1 errors.
pub fn marginal_error(p: &Problem, s: &GroupSolution, group: usize) -> f64 {
    let c = costs(p, group);
    let (n1, n2) = c.dim();
    let plan = Array2::from_shape_fn((n1, n2), |(i, j)| {
        ((s.f[i] + s.g[j] - c[[i, j]]) / s.epsilon).exp() / (n1 * n2) as f64
    });
    let l1 = |sums: Array1<f64>, n: usize| -> f64 {
        sums.iter().map(|m| (m - 1.0 / n as f64).abs()).sum()
    };
    l1(plan.sum_axis(Axis(1)), n1).max(l1(plan.sum_axis(Axis(0)), n2))
}

/// `LSE_k(−log n + (p_k − C_ik)/λ)` for each `i`, along rows (`along_rows`) or columns.
fn lse(c: &Array2<f64>, p: &[f64], eps: f64, along_rows: bool) -> Vec<f64> {
    let (n1, n2) = c.dim();
    let (outer, inner) = if along_rows { (n1, n2) } else { (n2, n1) };
    (0..outer)
        .map(|o| {
            let v: Vec<f64> = (0..inner)
                .map(|k| {
                    let cost = if along_rows { c[[o, k]] } else { c[[k, o]] };
                    (p[k] - cost) / eps - (inner as f64).ln()
                })
                .collect();
            let m = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            m + v.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
        })
        .collect()
}

/// KL-relaxed: the fixed-point residual `max(|f − f̂|, |g − ĝ|) / λ` at the returned
/// potentials (`f̂ = −ρ λ LSE`, ρ = τ/(τ + λ)).
pub fn residual(p: &Problem, s: &GroupSolution, group: usize, tau: f64) -> f64 {
    let c = costs(p, group);
    let eps = s.epsilon;
    let rho = tau / (tau + eps);
    let lse_rows = lse(&c, &s.g, eps, true);
    let lse_cols = lse(&c, &s.f, eps, false);
    let worst = |pot: &[f64], lse: &[f64]| -> f64 {
        pot.iter()
            .zip(lse)
            .map(|(v, l)| (v + rho * eps * l).abs() / eps)
            .fold(0.0, f64::max)
    };
    worst(&s.f, &lse_rows).max(worst(&s.g, &lse_cols))
}

/// Solve options that stop a solve in every way it can (issue 11): with and without
/// acceleration and ε-scaling, `max_iter` 3 (inside an ε-scaling stage), 40 (at the target λ,
/// short of tol) and 3000, at tol 1e-7.
pub fn option_grid(tau: Option<f64>, epsilon: f64) -> Vec<SolveOptions> {
    let mut grid = Vec::new();
    for acceleration in [true, false] {
        for eps_scaling in [true, false] {
            for max_iter in [3, 40, 3_000] {
                grid.push(SolveOptions {
                    epsilon,
                    tol: 1e-7,
                    max_iter,
                    eps_scaling,
                    acceleration,
                    unbalanced: tau,
                    ..SolveOptions::default()
                });
            }
        }
    }
    grid
}

//! Issue 11, "`converged` means converged": the reported marginal error is that of the returned
//! coupling — both marginals, measured on the final potentials — whatever stopped the solve
//! (tolerance, `max_iter` at the target λ or inside an ε-scaling stage), with or without
//! acceleration. Checked against the dense plan recomputed from the potentials.

use ndarray::{Array2, Axis};
use psa_core::synthetic::clustered_problem;
use psa_core::{
    CpuMatcher, GroupSolution, Matcher, Metric, NoProgress, Problem, SolveOptions, StopReason,
};
use psa_testdata::PotCase;

fn costs(p: &Problem, group: usize) -> Array2<f64> {
    let g = &p.groups[group];
    Array2::from_shape_fn((g.n1(), g.n2()), |(i, j)| {
        p.metric.cost(
            g.x1.row(i).as_slice().unwrap(),
            g.x2.row(j).as_slice().unwrap(),
        )
    })
}

/// Balanced: the larger of the dense plan's row and column L1 errors.
fn dense_marginal_error(p: &Problem, s: &GroupSolution, group: usize) -> f64 {
    let c = costs(p, group);
    let (n1, n2) = c.dim();
    let plan = Array2::from_shape_fn((n1, n2), |(i, j)| {
        ((s.f[i] + s.g[j] - c[[i, j]]) / s.epsilon).exp() / (n1 * n2) as f64
    });
    let l1 = |sums: ndarray::Array1<f64>, n: usize| -> f64 {
        sums.iter().map(|m| (m - 1.0 / n as f64).abs()).sum()
    };
    l1(plan.sum_axis(Axis(1)), n1).max(l1(plan.sum_axis(Axis(0)), n2))
}

/// `LSE_k(−log n + (p_k − C_ik)/λ)` for each `i`, along rows (`axis` 1) or columns (`axis` 0).
fn dense_lse(c: &Array2<f64>, p: &[f64], eps: f64, along_rows: bool) -> Vec<f64> {
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

/// Unbalanced: the fixed-point residual `max(|f − f̂|, |g − ĝ|) / λ` at the returned potentials.
fn dense_residual(p: &Problem, s: &GroupSolution, group: usize, tau: f64) -> f64 {
    let c = costs(p, group);
    let eps = s.epsilon;
    let rho = tau / (tau + eps);
    let lse_rows = dense_lse(&c, &s.g, eps, true);
    let lse_cols = dense_lse(&c, &s.f, eps, false);
    let worst = |pot: &[f64], lse: &[f64]| -> f64 {
        pot.iter()
            .zip(lse)
            .map(|(v, l)| (v + rho * eps * l).abs() / eps)
            .fold(0.0, f64::max)
    };
    worst(&s.f, &lse_rows).max(worst(&s.g, &lse_cols))
}

fn check(name: &str, p: &Problem, options: &SolveOptions) {
    let solution = CpuMatcher.solve(p, options, &NoProgress).unwrap();
    for (index, s) in solution.groups.iter().enumerate() {
        let r = &s.report;
        let measured = match options.unbalanced {
            None => dense_marginal_error(p, s, index),
            Some(tau) => dense_residual(p, s, index, tau),
        };
        assert!(
            (measured - r.marginal_error).abs() <= 1e-10 + 1e-6 * measured,
            "{name}, group {index}, {options:?}: reported {:e}, dense {measured:e}",
            r.marginal_error
        );
        assert_eq!(
            r.converged,
            measured < options.tol,
            "{name}, group {index}: {r:?}, dense {measured:e}"
        );
        assert_eq!(r.converged, r.stopped == StopReason::Tolerance);
        if !r.converged {
            assert_eq!(r.stopped, StopReason::MaxIter);
            assert_eq!(r.iterations, options.max_iter);
        }
        assert!(r.iterations <= options.max_iter);
    }
}

fn option_grid(tau: Option<f64>, epsilon: f64) -> Vec<SolveOptions> {
    let mut grid = Vec::new();
    for acceleration in [true, false] {
        for eps_scaling in [true, false] {
            // 3 iterations stop inside an ε-scaling stage; 40 at the target λ, short of tol.
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

#[test]
fn reported_error_is_the_returned_couplings_on_clustered_scores() {
    let p = clustered_problem(120, 12, 2, Metric::Euclidean, 3);
    for options in option_grid(None, 0.05) {
        check("clustered", &p, &options);
    }
}

#[test]
fn reported_error_is_the_returned_couplings_on_pot_fixtures() {
    for name in [
        "euclid_reg005_T12",
        "sqeuclid_reg05_T5",
        "unbalanced_euclid_reg05_tau1_T6",
    ] {
        let case = PotCase::load(name);
        let p = case.problem();
        for options in option_grid(case.tau, case.reg) {
            check(name, &p, &options);
        }
    }
}

//! The CPU reference against POT: `tests/fixtures/pot/` (via `psa-testdata`) holds couplings computed by POT's
//! `sinkhorn_log` and `sinkhorn_unbalanced` to 1e-12; we must agree to 1e-6 on `P(j|i)`.

use ndarray::Array2;
use psa_core::{CpuMatcher, Matcher, NoProgress, Precision, Problem, Solution, SolveOptions};
use psa_testdata::{PotCase, max_abs_diff};

struct Case {
    pot: PotCase,
    problem: Problem,
    reg: f64,
    tau: Option<f64>,
}

fn load(name: &str) -> Case {
    let pot = PotCase::load(name);
    Case {
        problem: pot.problem(),
        reg: pot.reg,
        tau: pot.tau,
        pot,
    }
}

fn solve(case: &Case, eps_scaling: bool, tol: f64) -> Solution {
    let options = SolveOptions {
        epsilon: case.reg,
        tol,
        max_iter: 100_000,
        eps_scaling,
        unbalanced: case.tau,
        ..SolveOptions::default()
    };
    CpuMatcher
        .solve(&case.problem, &options, &NoProgress)
        .unwrap()
}

fn assert_matches_pot(name: &str, eps_scaling: bool) {
    let case = load(name);
    let solution = solve(&case, eps_scaling, 1e-11);
    for (index, group) in case.problem.groups.iter().enumerate() {
        let report = &solution.groups[index].report;
        assert!(report.converged, "{name} group {}: {report:?}", group.label);
        let pot = case.pot.conditional(&group.label);
        let ours = solution.coupling(&case.problem, index).dense();
        let diff = max_abs_diff(&ours, &pot);
        assert!(
            diff < 1e-6,
            "{name} group {}: max |ΔP| = {diff:e}",
            group.label
        );
    }
}

#[test]
fn paper_setting_matches_pot_with_and_without_eps_scaling() {
    assert_matches_pot("euclid_reg005_T12", true);
    assert_matches_pot("euclid_reg005_T12", false);
}

#[test]
fn squared_euclidean_matches_pot() {
    assert_matches_pot("sqeuclid_reg05_T5", true);
    assert_matches_pot("sqeuclid_reg05_T5", false);
}

#[test]
fn large_epsilon_many_labels_matches_pot() {
    assert_matches_pot("euclid_reg1_T45", true);
    assert_matches_pot("euclid_reg1_T45", false);
}

#[test]
fn unbalanced_matches_pot_plan_and_conditionals() {
    for eps_scaling in [true, false] {
        assert_matches_pot("unbalanced_euclid_reg05_tau1_T6", eps_scaling);
        let case = load("unbalanced_euclid_reg05_tau1_T6");
        let solution = solve(&case, eps_scaling, 1e-12);
        for (index, group) in case.problem.groups.iter().enumerate() {
            let pot = case.pot.plan(&group.label);
            let s = &solution.groups[index];
            let (n1, n2) = (group.n1() as f64, group.n2() as f64);
            let plan = Array2::from_shape_fn((group.n1(), group.n2()), |(i, j)| {
                let c = case.problem.metric.cost(
                    group.x1.row(i).as_slice().unwrap(),
                    group.x2.row(j).as_slice().unwrap(),
                );
                ((s.f[i] + s.g[j] - c) / s.epsilon).exp() / (n1 * n2)
            });
            let diff = max_abs_diff(&plan, &pot);
            assert!(
                diff < 1e-6 / (n1 * n2).sqrt(),
                "unbalanced group {}: max |ΔM| = {diff:e}",
                group.label
            );
        }
    }
}

/// Both marginals hold to `tol`; in f64 the column marginal is exact (each solve ends with an
/// exact g-update), while an f32 solve may stop right after its handover to f64, with a column
/// error that is measured, reported, and below `tol`.
#[test]
fn balanced_marginals_hold_to_tol() {
    for (tol, precision) in [
        (1e-4, Precision::F64),
        (1e-8, Precision::F64),
        (1e-4, Precision::F32),
        (1e-8, Precision::F32),
    ] {
        let case = load("euclid_reg005_T12");
        let options = SolveOptions {
            epsilon: case.reg,
            tol,
            max_iter: 100_000,
            precision,
            ..SolveOptions::default()
        };
        let solution = CpuMatcher
            .solve(&case.problem, &options, &NoProgress)
            .unwrap();
        for (index, group) in case.problem.groups.iter().enumerate() {
            let s = &solution.groups[index];
            let (n1, n2) = (group.n1(), group.n2());
            let plan = Array2::from_shape_fn((n1, n2), |(i, j)| {
                let c = case.problem.metric.cost(
                    group.x1.row(i).as_slice().unwrap(),
                    group.x2.row(j).as_slice().unwrap(),
                );
                ((s.f[i] + s.g[j] - c) / s.epsilon).exp() / (n1 * n2) as f64
            });
            let rows = plan.sum_axis(ndarray::Axis(1));
            let cols = plan.sum_axis(ndarray::Axis(0));
            let row_error: f64 = rows.iter().map(|r| (r - 1.0 / n1 as f64).abs()).sum();
            let col_error: f64 = cols.iter().map(|c| (c - 1.0 / n2 as f64).abs()).sum();
            assert!(
                row_error < tol,
                "group {}: row error {row_error:e} ≥ tol {tol:e}",
                group.label
            );
            let col_tol = match precision {
                Precision::F64 => 1e-12,
                Precision::F32 => tol,
            };
            assert!(
                col_error < col_tol,
                "group {} ({precision:?}): column error {col_error:e}",
                group.label
            );
        }
    }
}

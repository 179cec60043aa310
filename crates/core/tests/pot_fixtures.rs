//! The CPU reference against POT: `../shared/fixtures/` holds couplings computed by POT's
//! `sinkhorn_log` and `sinkhorn_unbalanced` to 1e-12; we must agree to 1e-6 on `P(j|i)`.

use std::path::{Path, PathBuf};

use ndarray::{Array1, Array2};
use ndarray_npy::read_npy;
use psa_core::{
    CpuMatcher, Matcher, Metric, NoProgress, Problem, ScoresKind, Solution, SolveOptions,
};

fn fixtures() -> PathBuf {
    let dir = std::env::var_os("PSA_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures"));
    assert!(
        dir.is_dir(),
        "POT fixtures not found at {} (set PSA_FIXTURES)",
        dir.display()
    );
    dir
}

struct Case {
    dir: PathBuf,
    problem: Problem,
    reg: f64,
    tau: Option<f64>,
}

fn load(name: &str) -> Case {
    let dir = fixtures().join(name);
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("case.json")).unwrap()).unwrap();
    let metric = match meta["metric"].as_str().unwrap() {
        "euclidean" => Metric::Euclidean,
        "sqeuclidean" => Metric::SqEuclidean,
        other => panic!("unknown metric {other}"),
    };
    let labels = |f: &str| -> Vec<String> {
        let l: Array1<i64> = read_npy(dir.join(f)).unwrap();
        l.iter().map(|v| v.to_string()).collect()
    };
    let s1: Array2<f64> = read_npy(dir.join("logits1.npy")).unwrap();
    let s2: Array2<f64> = read_npy(dir.join("logits2.npy")).unwrap();
    let problem = Problem::from_scores(
        s1.view(),
        &labels("labels1.npy"),
        s2.view(),
        &labels("labels2.npy"),
        ScoresKind::Logits,
        metric,
    )
    .unwrap();
    Case {
        reg: meta["reg"].as_f64().unwrap(),
        tau: meta["tau"].as_f64(),
        dir,
        problem,
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

fn max_abs_diff(a: &Array2<f64>, b: &Array2<f64>) -> f64 {
    assert_eq!(a.dim(), b.dim());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

fn assert_matches_pot(name: &str, eps_scaling: bool) {
    let case = load(name);
    let solution = solve(&case, eps_scaling, 1e-11);
    for (index, group) in case.problem.groups.iter().enumerate() {
        let report = &solution.groups[index].report;
        assert!(report.converged, "{name} group {}: {report:?}", group.label);
        let pot: Array2<f64> = read_npy(case.dir.join(format!("P_{}.npy", group.label))).unwrap();
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
            let pot: Array2<f64> =
                read_npy(case.dir.join(format!("M_{}.npy", group.label))).unwrap();
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

#[test]
fn balanced_marginals_hold_to_tol() {
    for tol in [1e-4, 1e-8] {
        let case = load("euclid_reg005_T12");
        let solution = solve(&case, true, tol);
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
            assert!(
                col_error < 1e-12,
                "group {}: column error {col_error:e}",
                group.label
            );
        }
    }
}

//! Properties every correct matcher has, on random inputs (proptest).

use ndarray::{Array2, Axis};
use proptest::prelude::*;
use psa_core::Solved;
use psa_core::{CpuMatcher, Matcher, Metric, NoProgress, Problem, ScoresKind, SolveOptions};

fn one_group(s1: &Array2<f64>, s2: &Array2<f64>, metric: Metric) -> Problem {
    let l1 = vec!["g".to_string(); s1.nrows()];
    let l2 = vec!["g".to_string(); s2.nrows()];
    Problem::from_scores(s1.view(), &l1, s2.view(), &l2, ScoresKind::Logits, metric).unwrap()
}

fn matrix(rows: std::ops::Range<usize>, cols: usize) -> impl Strategy<Value = Array2<f64>> {
    rows.prop_flat_map(move |n| {
        proptest::collection::vec(-3.0f64..3.0, n * cols)
            .prop_map(move |v| Array2::from_shape_vec((n, cols), v).unwrap())
    })
}

fn options(epsilon: f64, tol: f64) -> SolveOptions {
    SolveOptions {
        epsilon,
        tol,
        max_iter: 50_000,
        ..SolveOptions::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn marginals_hold(s1 in matrix(1..30, 4), s2 in matrix(1..30, 4), eps in 0.05f64..2.0) {
        let p = one_group(&s1, &s2, Metric::Euclidean);
        let sol = CpuMatcher.solve(&p, &options(eps, 1e-9), &NoProgress).unwrap();
        let report = &sol.groups[0].report;
        prop_assert!(report.converged, "{report:?}");
        let dense = sol.coupling(&p, 0).dense();
        // rows of P sum to 1; the column marginal of M = P/n1 is uniform
        for r in dense.sum_axis(Axis(1)) { prop_assert!((r - 1.0).abs() < 1e-9); }
        let n1 = s1.nrows() as f64; let n2 = s2.nrows() as f64;
        let col_error: f64 = dense.sum_axis(Axis(0)).iter().map(|c| (c / n1 - 1.0 / n2).abs()).sum();
        prop_assert!(col_error < 1e-8, "column error {col_error:e}");
    }

    #[test]
    fn permuting_inputs_permutes_the_coupling(
        s1 in matrix(2..20, 3), s2 in matrix(2..20, 3), seed in 0u64..1000,
    ) {
        let perm = |n: usize, salt: u64| {
            let mut idx: Vec<usize> = (0..n).collect();
            idx.sort_by_key(|&i| (i as u64 * 2654435761 + seed * 97 + salt) % 1009);
            idx
        };
        let (p1, p2) = (perm(s1.nrows(), 1), perm(s2.nrows(), 2));
        let base = one_group(&s1, &s2, Metric::SqEuclidean);
        let moved = one_group(&s1.select(Axis(0), &p1), &s2.select(Axis(0), &p2), Metric::SqEuclidean);
        let opts = options(0.3, 1e-10);
        let a = CpuMatcher.solve(&base, &opts, &NoProgress).unwrap().coupling(&base, 0).dense();
        let b_sol = CpuMatcher.solve(&moved, &opts, &NoProgress).unwrap();
        let b = b_sol.coupling(&moved, 0).dense();
        for (i, &pi) in p1.iter().enumerate() {
            for (j, &pj) in p2.iter().enumerate() {
                prop_assert!((b[[i, j]] - a[[pi, pj]]).abs() < 1e-8);
            }
        }
    }

    #[test]
    fn well_separated_points_are_matched_to_themselves(n in 2usize..25, shift in 0.0f64..0.05) {
        // points on a spaced grid in clr space; modality 2 is a small perturbation of modality 1
        let s1 = Array2::from_shape_fn((n, 3), |(i, k)| if k == 0 { 2.0 * i as f64 } else { (i % 3) as f64 * 0.5 * k as f64 });
        let s2 = s1.mapv(|v| v + shift);
        let p = one_group(&s1, &s2, Metric::Euclidean);
        let sol = CpuMatcher.solve(&p, &options(0.01, 1e-9), &NoProgress).unwrap();
        let coupling = sol.coupling(&p, 0);
        for i in 0..n {
            prop_assert!(coupling.row(i)[i] > 0.999, "row {i}: {:?}", coupling.row(i));
        }
    }

    #[test]
    fn snn_rows_sum_to_one_and_are_never_empty(s1 in matrix(1..40, 4), s2 in matrix(1..40, 4), k in 1usize..5) {
        let p = one_group(&s1, &s2, Metric::Euclidean);
        let solved = psa_core::CpuSolved::snn(p, k, &NoProgress).unwrap();
        let dense = solved.dense(0).unwrap();
        for row in dense.rows() {
            prop_assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-12);
            prop_assert!(row.iter().any(|&w| w > 0.0));
        }
    }

    #[test]
    fn no_epsilon_yields_nan(s1 in matrix(1..15, 5), s2 in matrix(1..15, 5), log_eps in -3.0f64..1.0) {
        let p = one_group(&s1, &s2, Metric::Euclidean);
        let opts = SolveOptions { epsilon: 10f64.powf(log_eps), max_iter: 300, ..SolveOptions::default() };
        let sol = CpuMatcher.solve(&p, &opts, &NoProgress).unwrap();
        let g = &sol.groups[0];
        prop_assert!(g.f.iter().chain(&g.g).all(|v| v.is_finite()));
        prop_assert!(sol.coupling(&p, 0).dense().iter().all(|v| v.is_finite()));
    }
}

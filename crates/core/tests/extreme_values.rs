//! Issue 11, "extreme but finite values": one huge score in a 90 × 4 input used to make
//! ε-scaling loop forever allocating (1e308), return all-NaN couplings (1e308 without
//! ε-scaling or with a relative ε), abort (1e308, unbalanced τ = 1), or report "converged" with a
//! column error of 0.13 (1e30) or a uniform group (1e50). Now such scores are refused up front,
//! by `Problem::from_scores` and by the matcher for a problem built by hand, naming the input, row
//! and column; scores up to the documented bound solve to finite couplings with an honest report.

use ndarray::Array2;
use psa_core::transform::MAX_SCORE;
use psa_core::{
    CoreError, CpuMatcher, EpsilonMode, Matcher, MatcherError, Metric, NoProgress, Problem,
    ScoresKind, SolveOptions,
};

/// 90 × 4 logits in three label groups (rows interleaved), with a per-row offset.
fn logits(seed: u64) -> (Array2<f64>, Vec<String>) {
    let scores = Array2::from_shape_fn((90, 4), |(i, k)| {
        let h = (i as u64 * 2654435761 + k as u64 * 40503 + seed * 977) % 1000;
        (h as f64 / 1000.0 - 0.5) * 3.0 + (i % 3) as f64 * (k as f64 - 1.5) + i as f64 * 0.01
    });
    let labels = (0..90).map(|i| format!("t{}", i % 3)).collect();
    (scores, labels)
}

/// The option sets of the report: defaults, no ε-scaling, relative ε, unbalanced τ = 1, and
/// plain (unaccelerated) Sinkhorn.
fn option_sets() -> Vec<(&'static str, SolveOptions)> {
    let base = SolveOptions {
        max_iter: 20_000,
        ..SolveOptions::default()
    };
    vec![
        ("defaults", base.clone()),
        (
            "no ε-scaling",
            SolveOptions {
                eps_scaling: false,
                ..base.clone()
            },
        ),
        (
            "relative ε",
            SolveOptions {
                epsilon_mode: EpsilonMode::Relative,
                ..base.clone()
            },
        ),
        (
            "unbalanced τ = 1",
            SolveOptions {
                unbalanced: Some(1.0),
                ..base.clone()
            },
        ),
        (
            "no acceleration",
            SolveOptions {
                acceleration: false,
                ..base
            },
        ),
    ]
}

fn problem(s1: &Array2<f64>, l1: &[String], s2: &Array2<f64>, l2: &[String]) -> Problem {
    Problem::from_scores(
        s1.view(),
        l1,
        s2.view(),
        l2,
        ScoresKind::Logits,
        Metric::Euclidean,
    )
    .expect("valid scores")
}

const EXTREMES: [f64; 5] = [1e308, -1e308, 1e50, 1e30, 1e5];

#[test]
fn extreme_scores_are_refused_with_input_row_and_column() {
    let (s1, l1) = logits(1);
    let (s2, l2) = logits(2);
    for value in EXTREMES {
        let mut bad1 = s1.clone();
        bad1[[17, 2]] = value;
        let err = Problem::from_scores(
            bad1.view(),
            &l1,
            s2.view(),
            &l2,
            ScoresKind::Logits,
            Metric::Euclidean,
        )
        .expect_err("an extreme score must be refused");
        assert!(
            matches!(err, CoreError::OutOfRange { .. }),
            "{value}: {err}"
        );
        assert!(
            err.to_string()
                .starts_with(&format!("scores1: row 17, column 2 is {value:e}")),
            "{value}: {err}"
        );
        let mut bad2 = s2.clone();
        bad2[[89, 0]] = value;
        let err = Problem::from_scores(
            s1.view(),
            &l1,
            bad2.view(),
            &l2,
            ScoresKind::Logits,
            Metric::SqEuclidean,
        )
        .expect_err("an extreme score must be refused");
        assert!(
            err.to_string().starts_with("scores2: row 89, column 0"),
            "{value}: {err}"
        );
    }
}

#[test]
fn the_matcher_refuses_extreme_scores_in_a_problem_built_by_hand() {
    let (s1, l1) = logits(3);
    let (s2, l2) = logits(4);
    for value in EXTREMES {
        let mut p = problem(&s1, &l1, &s2, &l2);
        // Group "t2" holds input rows 2, 5, 8, …: its row 5 is input row 17.
        p.groups[2].x1[[5, 2]] = value;
        for (name, options) in option_sets() {
            match CpuMatcher.solve(&p, &options, &NoProgress) {
                Err(MatcherError::Core(e @ CoreError::OutOfRange { .. })) => {
                    assert!(
                        e.to_string().starts_with("scores1: row 17, column 2"),
                        "{name}: {e}"
                    );
                }
                other => panic!("{value:e} with {name}: expected a refusal, got {other:?}"),
            }
        }
    }
}

#[test]
fn epsilon_schedules_stay_short_for_any_diameter() {
    use psa_core::sinkhorn::{MAX_STAGES, epsilon_schedule};
    for diameter in [f64::INFINITY, f64::NAN, 1e308, 1e30, 20.0] {
        let stages = epsilon_schedule(diameter, 1e-10, true);
        assert!(
            stages.len() <= MAX_STAGES + 1,
            "{diameter}: {}",
            stages.len()
        );
        assert_eq!(*stages.last().unwrap(), 1e-10);
        assert!(stages.iter().all(|s| s.is_finite() && *s >= 1e-10));
    }
}

/// Largest L1 error of the dense plan's row and column marginals, recomputed from the
/// potentials with libm's `exp`.
fn dense_marginal_error(p: &Problem, f: &[f64], g: &[f64], eps: f64, group: usize) -> f64 {
    let grp = &p.groups[group];
    let (n1, n2) = (grp.n1(), grp.n2());
    let plan = Array2::from_shape_fn((n1, n2), |(i, j)| {
        let c = p.metric.cost(
            grp.x1.row(i).as_slice().unwrap(),
            grp.x2.row(j).as_slice().unwrap(),
        );
        ((f[i] + g[j] - c) / eps).exp() / (n1 * n2) as f64
    });
    let rows: f64 = plan
        .sum_axis(ndarray::Axis(1))
        .iter()
        .map(|r| (r - 1.0 / n1 as f64).abs())
        .sum();
    let cols: f64 = plan
        .sum_axis(ndarray::Axis(0))
        .iter()
        .map(|c| (c - 1.0 / n2 as f64).abs())
        .sum();
    rows.max(cols)
}

#[test]
fn scores_at_the_bound_solve_to_finite_couplings_with_honest_reports() {
    let (mut s1, l1) = logits(5);
    let (s2, l2) = logits(6);
    // A logit of 0.9 · MAX_SCORE: its centred score is 0.675 · MAX_SCORE, within the bound.
    s1[[17, 2]] = 0.9 * MAX_SCORE;
    let p = problem(&s1, &l1, &s2, &l2);
    for (name, options) in option_sets() {
        let solution = CpuMatcher
            .solve(&p, &options, &NoProgress)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        for (index, s) in solution.groups.iter().enumerate() {
            assert!(
                s.f.iter().chain(&s.g).all(|v| v.is_finite()),
                "{name}, group {index}: non-finite potentials"
            );
            let dense = solution.coupling(&p, index).dense();
            assert!(dense.iter().all(|v| v.is_finite() && *v >= 0.0), "{name}");
            for row in dense.rows() {
                assert!(
                    (row.sum() - 1.0).abs() < 1e-9,
                    "{name}: a row of P sums to {}",
                    row.sum()
                );
            }
            let r = &s.report;
            if options.unbalanced.is_none() {
                let measured = dense_marginal_error(&p, &s.f, &s.g, s.epsilon, index);
                assert!(
                    (measured - r.marginal_error).abs() <= 1e-9 + 1e-6 * measured,
                    "{name}, group {index}: reported {:e}, dense {measured:e}",
                    r.marginal_error
                );
            }
            assert_eq!(r.converged, r.marginal_error < options.tol, "{name}: {r:?}");
            // Plain Sinkhorn moves the outlier's mass slowly (2.5e-5 after 20 000 iterations);
            // accelerated solves must get there.
            assert!(
                r.converged || !options.acceleration,
                "{name}, group {index}: {r:?}"
            );
        }
    }
}

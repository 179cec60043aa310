//! Issue 16: acceleration never takes more iterations than plain Sinkhorn, on every benchmark
//! problem (`psa_core::synthetic::clustered_problem`, the generator of `psa bench` and of the
//! criterion benches) and every POT fixture, with and without ε-scaling; and on the issue's
//! problem (n = 1000, T = 12, λ = 0.05, seed 0 as `psa bench` draws it) it takes at least 4×
//! fewer iterations to 1e-6.
//! (`psa_testdata::acceleration`, shared with the GPU's test, says how plain Sinkhorn is capped
//! to keep this short.) `benches/RESULTS.md` records the full counts.

use psa_core::synthetic::clustered_problem;
use psa_core::{CpuMatcher, Metric, Problem, SolveOptions};
use psa_testdata::{PotCase, acceleration, pot_case_names};

fn assert_accelerated(name: &str, problem: &Problem, options: &SolveOptions, factor: usize) {
    acceleration::assert_accelerated(&CpuMatcher, name, problem, options, factor, 0);
}

#[test]
fn issue_problem_takes_at_least_four_times_fewer_iterations() {
    let problem = clustered_problem(1000, 12, 1, Metric::Euclidean, 0);
    for eps_scaling in [false, true] {
        let options = SolveOptions {
            epsilon: 0.05,
            tol: 1e-6,
            max_iter: 100_000,
            eps_scaling,
            ..SolveOptions::default()
        };
        assert_accelerated("n=1000 T=12 seed 0", &problem, &options, 4);
    }
}

#[test]
fn never_more_iterations_than_plain_on_benchmark_problems() {
    for (n, t, seed) in [
        (250, 12, 0),
        (250, 45, 0),
        (250, 12, 7),
        (250, 45, 7),
        (1000, 12, 7),
        (1000, 45, 7),
        (1000, 45, 0),
    ] {
        let problem = clustered_problem(n, t, 1, Metric::Euclidean, seed);
        for eps_scaling in [false, true] {
            let options = SolveOptions {
                tol: 1e-6,
                max_iter: 100_000,
                eps_scaling,
                ..SolveOptions::default()
            };
            assert_accelerated(&format!("n={n} T={t} seed {seed}"), &problem, &options, 1);
        }
    }
}

#[test]
fn never_more_iterations_than_plain_on_pot_fixtures() {
    for name in pot_case_names() {
        let case = PotCase::load(&name);
        let problem = case.problem();
        for tol in [1e-6, 1e-11] {
            for eps_scaling in [false, true] {
                let options = SolveOptions {
                    epsilon: case.reg,
                    tol,
                    max_iter: 100_000,
                    eps_scaling,
                    unbalanced: case.tau,
                    ..SolveOptions::default()
                };
                assert_accelerated(&format!("{name} tol {tol:e}"), &problem, &options, 1);
            }
        }
    }
}

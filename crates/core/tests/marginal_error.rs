//! Issue 11, "`converged` means converged": the reported marginal error is that of the returned
//! coupling — both marginals, measured on the final potentials — whatever stopped the solve
//! (tolerance, `max_iter` at the target λ or inside an ε-scaling stage), with or without
//! acceleration. Checked against the dense plan recomputed from the potentials.

use psa_core::synthetic::clustered_problem;
use psa_core::{CpuMatcher, Matcher, Metric, NoProgress, Problem, SolveOptions, StopReason};
use psa_testdata::{PotCase, dense};

fn check(name: &str, p: &Problem, options: &SolveOptions) {
    let solution = CpuMatcher.solve(p, options, &NoProgress).unwrap();
    for (index, s) in solution.groups.iter().enumerate() {
        let r = &s.report;
        let measured = dense::returned_error(p, s, index, options.unbalanced);
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

#[test]
fn reported_error_is_the_returned_couplings_on_clustered_scores() {
    let p = clustered_problem(120, 12, 2, Metric::Euclidean, 3);
    for options in dense::option_grid(None, 0.05) {
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
        for options in dense::option_grid(case.tau, case.reg) {
            check(name, &p, &options);
        }
    }
}

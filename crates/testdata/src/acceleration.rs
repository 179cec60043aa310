//! The iteration-count claims of issue 16, for any backend: accelerated Sinkhorn converges,
//! and plain Sinkhorn needs at least `factor` times its iterations.

use psa_core::{Matcher, NoProgress, Problem, SolveOptions, StopReason};

/// Asserts that `matcher` with acceleration converges (to tol) in every group, and that plain
/// Sinkhorn needs at least `factor` times its iterations, less `slack`, in every group. (Stops on the GPU's
/// f32 floor are no iteration counts to compare: choose a tol the device resolves.)
///
/// Iteration counts are deterministic. Plain Sinkhorn is run only as far as the claim needs:
/// to show that it needs at least `factor × k` iterations it is capped at `factor × k − 1` and
/// must not converge (or converge no sooner), so the test stays short even where plain
/// Sinkhorn needs tens of thousands of iterations. Returns the accelerated counts.
pub fn assert_accelerated(
    matcher: &dyn Matcher,
    name: &str,
    problem: &Problem,
    options: &SolveOptions,
    factor: usize,
    slack: usize,
) -> Vec<usize> {
    let done = |stopped: StopReason| stopped == StopReason::Tolerance;
    let accelerated = matcher
        .solve(
            problem,
            &SolveOptions {
                acceleration: true,
                ..options.clone()
            },
            &NoProgress,
        )
        .unwrap();
    let counts: Vec<usize> = accelerated
        .groups
        .iter()
        .map(|g| {
            assert!(done(g.report.stopped), "{name}: accelerated {:?}", g.report);
            g.report.iterations
        })
        .collect();
    let cap = (factor * counts.iter().max().copied().unwrap_or(1)).saturating_sub(slack + 1);
    let plain = matcher
        .solve(
            problem,
            &SolveOptions {
                acceleration: false,
                max_iter: cap.max(1),
                ..options.clone()
            },
            &NoProgress,
        )
        .unwrap();
    for (index, (g, k)) in plain.groups.iter().zip(&counts).enumerate() {
        let r = &g.report;
        eprintln!(
            "{name} group {index} (ε-scaling {}): accelerated {k}, plain {} ({:?})",
            options.eps_scaling, r.iterations, r.stopped
        );
        assert!(
            !done(r.stopped) || r.iterations + slack >= factor * k,
            "{name} group {index} (ε-scaling {}): plain {} iterations, accelerated {k} (need ≥ {factor}× − {slack})",
            options.eps_scaling,
            r.iterations
        );
    }
    counts
}

//! `sinkhorn_lse.wgsl` through `GpuMatcher::solve`, against the f64 CPU reference
//! (`psa_core::CpuMatcher`): rows of P (invariant to potential shifts), marginal errors,
//! convergence, on awkward sizes, dimensions, λ and unbalanced marginals.

mod common;

use common::{assert_finite, cpu_solve, matcher, max_row_error, precision_bound, random_problem};
use psa_core::{Matcher, Metric, NoProgress, SolveOptions};
use psa_gpu::{CostMode, GpuOptions};

/// The streaming kernel (the path large problems take); on lavapipe `Auto` would materialise.
fn streaming() -> GpuOptions {
    GpuOptions {
        cost_mode: CostMode::Streaming,
        ..GpuOptions::default()
    }
}

fn options(epsilon: f64) -> SolveOptions {
    SolveOptions {
        epsilon,
        tol: 1e-6,
        ..SolveOptions::default()
    }
}

/// Solves on both backends and checks the worst P-row discrepancy against `tolerance` or the
/// f32 bound for this λ and cost scale, whichever is looser.
fn compare(problem: &psa_core::Problem, opts: &SolveOptions, gpu: &GpuOptions, tolerance: f64) {
    let tolerance = precision_bound(problem, opts.epsilon, tolerance);
    let Some(matcher) = matcher(gpu.clone()) else {
        return;
    };
    let cpu = cpu_solve(problem, opts);
    let gpu = matcher
        .solve(problem, opts, &NoProgress)
        .expect("GPU solve");
    assert_finite(&gpu);
    let err = max_row_error(problem, &gpu, &cpu, 64);
    for (g, (a, b)) in gpu.groups.iter().zip(&cpu.groups).enumerate() {
        eprintln!(
            "group {g} ({}x{}): gpu it={} err={:.2e} conv={} | cpu it={} err={:.2e} conv={}",
            problem.groups[g].n1(),
            problem.groups[g].n2(),
            a.report.iterations,
            a.report.marginal_error,
            a.report.converged,
            b.report.iterations,
            b.report.marginal_error,
            b.report.converged
        );
        assert_eq!(a.epsilon, b.epsilon, "both backends resolve the same λ");
        common::assert_honest_stop(&format!("group {g}"), &a.report, opts.tol);
    }
    eprintln!("λ={} max |ΔP|/max P = {err:.2e}", opts.epsilon);
    assert!(
        err < tolerance,
        "P rows differ by {err:.2e} (tolerance {tolerance:.0e})"
    );
}

#[test]
fn matches_cpu_on_sizes_that_are_not_tile_multiples() {
    let problem = random_problem(
        1,
        &[(300, 517), (1, 2), (2, 1), (37, 29)],
        5,
        Metric::Euclidean,
    );
    compare(&problem, &options(0.05), &streaming(), 1e-4);
}

#[test]
fn matches_cpu_for_squared_euclidean_and_wide_scores() {
    for (seed, dim) in [(2, 2), (3, 17), (4, 64)] {
        let problem = random_problem(seed, &[(40, 33), (9, 70)], dim, Metric::SqEuclidean);
        compare(&problem, &options(0.5), &streaming(), 1e-4);
    }
}

#[test]
fn many_small_groups_and_one_large_one_split_columns() {
    let mut sizes = vec![(1200, 1500)];
    sizes.extend((0..30).map(|i| (3 + i % 5, 4 + i % 7)));
    let problem = random_problem(5, &sizes, 4, Metric::Euclidean);
    compare(&problem, &options(0.1), &streaming(), 1e-4);
}

#[test]
fn lambda_from_one_thousandth_to_ten_stays_finite() {
    let problem = random_problem(6, &[(20, 25), (6, 4)], 3, Metric::Euclidean);
    // λ = 1e-3 is below f32's reach at 1e-4 (matcher module docs): rows agree to ~1e-3.
    for (epsilon, tolerance) in [
        (1e-3, 5e-3),
        (1e-2, 1e-3),
        (0.1, 1e-4),
        (1.0, 1e-4),
        (10.0, 1e-4),
    ] {
        let opts = SolveOptions {
            max_iter: 20_000,
            ..options(epsilon)
        };
        compare(&problem, &opts, &streaming(), tolerance);
    }
}

#[test]
fn unbalanced_matches_cpu() {
    let problem = random_problem(7, &[(50, 80), (13, 5)], 6, Metric::Euclidean);
    let opts = SolveOptions {
        unbalanced: Some(1.0),
        ..options(0.1)
    };
    compare(&problem, &opts, &streaming(), 1e-4);
}

#[test]
fn materialised_costs_give_the_same_solution() {
    let problem = random_problem(8, &[(70, 90), (3, 260)], 7, Metric::Euclidean);
    let forced = GpuOptions {
        cost_mode: CostMode::Materialised,
        ..GpuOptions::default()
    };
    compare(&problem, &options(0.05), &forced, 1e-4);
    let unbalanced = SolveOptions {
        unbalanced: Some(0.5),
        ..options(0.2)
    };
    compare(&problem, &unbalanced, &forced, 1e-4);
}

#[test]
fn max_iter_is_respected_and_reported() {
    let Some(matcher) = matcher(GpuOptions {
        check_every: Some(4),
        ..GpuOptions::default()
    }) else {
        return;
    };
    let problem = random_problem(9, &[(30, 30)], 4, Metric::Euclidean);
    let opts = SolveOptions {
        max_iter: 7,
        tol: 1e-9,
        epsilon: 1e-3,
        ..SolveOptions::default()
    };
    let solution = matcher
        .solve(&problem, &opts, &NoProgress)
        .expect("GPU solve");
    let report = &solution.groups[0].report;
    assert_eq!(report.iterations, 7);
    assert!(!report.converged);
}

#[test]
fn iteration_counts_do_not_depend_on_the_check_interval() {
    let problem = random_problem(10, &[(40, 50), (5, 8)], 4, Metric::Euclidean);
    let run = |every| {
        let m = matcher(GpuOptions {
            check_every: Some(every),
            ..GpuOptions::default()
        })?;
        Some(
            m.solve(&problem, &options(0.05), &NoProgress)
                .expect("GPU solve"),
        )
    };
    let (Some(a), Some(b)) = (run(1), run(13)) else {
        return;
    };
    for (x, y) in a.groups.iter().zip(&b.groups) {
        assert_eq!(x.report.iterations, y.report.iterations);
        assert_eq!(x.f, y.f);
    }
}

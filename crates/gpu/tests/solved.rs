//! The seam after the solve (issue 12): one `Problem` solved on both backends, every output
//! through the same `psa_core::Solved` interface, compared; the GPU uploads the problem once
//! per run whatever it is asked.

mod common;

use common::{Rng, matcher, random_problem};
use ndarray::Array2;
use psa_core::{CpuMatcher, Matcher, Metric, NoProgress, Problem, SolveOptions, Solved};
use psa_gpu::GpuOptions;

fn options() -> SolveOptions {
    SolveOptions {
        epsilon: 0.1,
        tol: 1e-7,
        ..SolveOptions::default()
    }
}

fn problem(metric: Metric) -> Problem {
    random_problem(41, &[(70, 45), (1, 3), (130, 64), (5, 5)], 7, metric)
}

fn max_abs(a: &Array2<f64>, b: &Array2<f64>) -> f64 {
    assert_eq!(a.dim(), b.dim());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// Every output of `gpu` against the same output of `cpu`: dense rows, top-k with a mass cut,
/// projection, diagonal, pseudo-pairs.
fn assert_outputs_agree(gpu: &dyn Solved, cpu: &dyn Solved, tolerance: f64) {
    let problem = cpu.problem();
    assert_eq!(gpu.backend(), "gpu");
    for (g, group) in problem.groups.iter().enumerate() {
        let (dg, dc) = (
            gpu.dense(g).expect("GPU rows"),
            cpu.dense(g).expect("CPU rows"),
        );
        let diff = max_abs(&dg, &dc);
        eprintln!("group {g}: dense |ΔP| = {diff:.2e}");
        assert!(diff < tolerance, "group {g}: |ΔP| = {diff:e}");
        // A block in the middle is the same as those rows of the whole.
        if group.n1() > 2 {
            let block = gpu.rows(g, 1..group.n1() - 1).expect("a block");
            assert_eq!(
                block,
                dg.slice(ndarray::s![1..group.n1() - 1, ..]).to_owned()
            );
        }
    }
    let k = 6;
    let (tg, tc) = (
        gpu.top_k(k, Some(0.9)).unwrap(),
        cpu.top_k(k, Some(0.9)).unwrap(),
    );
    for (g, (a, b)) in tg.iter().zip(&tc).enumerate() {
        let dense = cpu.dense(g).unwrap();
        for i in 0..a.index.nrows() {
            for slot in 0..k {
                let j = a.index[[i, slot]];
                if j >= 0 {
                    assert!((a.weight[[i, slot]] - dense[[i, j as usize]]).abs() < tolerance);
                }
            }
            // The mass cut keeps about as many entries (near-ties may differ by one).
            let kept = |t: &psa_core::TopK| t.index.row(i).iter().filter(|&&j| j >= 0).count();
            assert!(kept(a).abs_diff(kept(b)) <= 1, "group {g} row {i}");
            // The top entry is the row's largest (the same index as the CPU's but where
            // entries tie: a group of one row has P(j|0) = b_j = 1/n2 for every j).
            let row_max = dense.row(i).iter().cloned().fold(0.0, f64::max);
            let top = |t: &psa_core::TopK| dense[[i, t.index[[i, 0]] as usize]];
            assert!(
                top(a) > row_max - tolerance,
                "group {g} row {i}: top entry {} (P = {}) is not the row max {row_max}",
                a.index[[i, 0]],
                top(a)
            );
            let j_top = b.index[[i, 0]] as usize;
            let runner_up = dense
                .row(i)
                .iter()
                .enumerate()
                .filter(|&(j, _)| j != j_top)
                .fold(0.0, |m: f64, (_, &p)| m.max(p));
            if top(b) - runner_up > tolerance {
                assert_eq!(
                    a.index[[i, 0]],
                    b.index[[i, 0]],
                    "group {g} row {i}: top entry"
                );
            }
        }
    }
    let mut rng = Rng::new(5);
    let ys: Vec<Array2<f64>> = problem
        .groups
        .iter()
        .map(|g| Array2::from_shape_fn((g.n2(), 3), |_| rng.normal()))
        .collect();
    let views: Vec<_> = ys.iter().map(|y| y.view()).collect();
    for (a, b) in gpu
        .project(&views)
        .unwrap()
        .iter()
        .zip(&cpu.project(&views).unwrap())
    {
        assert!(max_abs(a, b) < 10.0 * tolerance, "projection");
    }
    let partners: Vec<Option<Vec<usize>>> = problem
        .groups
        .iter()
        .enumerate()
        .map(|(g, group)| (g != 1).then(|| (0..group.n1()).map(|i| i % group.n2()).collect()))
        .collect();
    let (da, db) = (
        gpu.diagonal(&partners).unwrap(),
        cpu.diagonal(&partners).unwrap(),
    );
    for (a, b) in da.iter().zip(&db) {
        assert_eq!(a.is_some(), b.is_some());
        if let (Some(a), Some(b)) = (a, b) {
            for (x, y) in a.iter().zip(b) {
                assert!((x - y).abs() < tolerance, "diagonal {x} vs {y}");
            }
        }
    }
    // Pseudo-pairs: the same uniforms inverted, so the same draws but where a uniform sits
    // within rounding of a cumulative boundary.
    let draws = 40;
    let (sa, sb) = (
        gpu.sample_pairs(draws, 9).unwrap(),
        cpu.sample_pairs(draws, 9).unwrap(),
    );
    let (mut same, mut all) = (0, 0);
    for (g, (a, b)) in sa.iter().zip(&sb).enumerate() {
        assert_eq!(a.dim(), (problem.groups[g].n1(), draws));
        assert!(
            a.iter()
                .all(|&j| j >= 0 && (j as usize) < problem.groups[g].n2())
        );
        same += a.iter().zip(b).filter(|(x, y)| x == y).count();
        all += a.len();
    }
    eprintln!("pseudo-pairs: {same} of {all} draws identical");
    assert!(same as f64 >= 0.99 * all as f64, "{same} of {all}");
    assert_eq!(sa, gpu.sample_pairs(draws, 9).unwrap(), "seeded");
}

#[test]
fn both_backends_answer_every_output_through_the_same_interface() {
    let Some(matcher) = matcher(GpuOptions::default()) else {
        return;
    };
    for metric in [Metric::Euclidean, Metric::SqEuclidean] {
        let problem = problem(metric);
        let opts = options();
        let cpu = CpuMatcher
            .solve_into(problem.clone(), &opts, &NoProgress)
            .expect("CPU");
        let before = matcher.problem_uploads();
        let gpu = matcher
            .solve_into(problem, &opts, &NoProgress)
            .expect("GPU");
        assert_outputs_agree(gpu.as_ref(), cpu.as_ref(), 1e-4);
        assert_eq!(
            matcher.problem_uploads() - before,
            1,
            "one upload for the solve and every output"
        );
        // Converged below tol, else stopped on the f32 floor or out of iterations (plain
        // Sinkhorn on a 5 × 5 group can need 10⁴); the outputs above agree with the CPU's
        // either way.
        for (g, group) in gpu.solution().expect("OT").groups.iter().enumerate() {
            common::assert_honest_stop(&format!("group {g}"), &group.report, &opts);
        }
    }
}

#[test]
fn outputs_of_a_solution_from_elsewhere_upload_it_once() {
    let Some(matcher) = matcher(GpuOptions::default()) else {
        return;
    };
    let problem = problem(Metric::Euclidean);
    let solution = CpuMatcher
        .solve(&problem, &options(), &NoProgress)
        .expect("CPU");
    let cpu = CpuMatcher
        .outputs(problem.clone(), solution.clone())
        .expect("CPU outputs");
    let before = matcher.problem_uploads();
    let gpu = matcher.outputs(problem, solution).expect("GPU outputs");
    // The same potentials: only f32 evaluation separates the two.
    assert_outputs_agree(gpu.as_ref(), cpu.as_ref(), 2e-6);
    assert_eq!(matcher.problem_uploads() - before, 1);
}

#[test]
fn bad_requests_name_what_is_wrong() {
    let Some(matcher) = matcher(GpuOptions::default()) else {
        return;
    };
    let problem = problem(Metric::Euclidean);
    let gpu = matcher
        .solve_into(problem, &options(), &NoProgress)
        .expect("GPU");
    let err = gpu
        .rows(0, 3..1000)
        .expect_err("past the group")
        .to_string();
    assert!(err.contains("rows"), "{err}");
    let err = gpu.project(&[]).expect_err("no matrices").to_string();
    assert!(err.contains("projection matrices"), "{err}");
}

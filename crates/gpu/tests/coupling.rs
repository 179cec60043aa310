//! `coupling.wgsl` (top-k, projection, diagonal) against the CPU coupling view
//! (`psa_core::Coupling`) of the same solution, and `pairwise_cost`-free row LSEs.

mod common;

use common::{Rng, cpu_solve, matcher, random_problem};
use ndarray::Array2;
use psa_core::{Metric, SolveOptions};
use psa_gpu::GpuOptions;

fn setup(
    seed: u64,
    sizes: &[(usize, usize)],
    dim: usize,
) -> (psa_core::Problem, psa_core::Solution) {
    let problem = random_problem(seed, sizes, dim, Metric::Euclidean);
    let solution = cpu_solve(
        &problem,
        &SolveOptions {
            epsilon: 0.1,
            ..SolveOptions::default()
        },
    );
    (problem, solution)
}

#[test]
fn top_k_matches_the_cpu_sets_and_weights() {
    let Some(matcher) = matcher(GpuOptions::default()) else {
        return;
    };
    let (problem, solution) = setup(21, &[(70, 300), (1, 2), (5, 3)], 6);
    for k in [1, 5, 64] {
        let gpu = matcher.top_k(&problem, &solution, k).expect("GPU top-k");
        for (g, top) in gpu.iter().enumerate() {
            let coupling = solution.coupling(&problem, g);
            let cpu = coupling.top_k(k, None);
            assert_eq!(top.index.dim(), cpu.index.dim());
            for i in 0..coupling.n1() {
                let row = coupling.row(i);
                for slot in 0..k {
                    let (jg, jc) = (top.index[[i, slot]], cpu.index[[i, slot]]);
                    assert_eq!(
                        jg < 0,
                        jc < 0,
                        "group {g} row {i} slot {slot}: padding differs"
                    );
                    if jg < 0 {
                        continue;
                    }
                    // Near-ties may swap in f32; the weight the GPU gives must be that entry's.
                    let (wg, wc) = (top.weight[[i, slot]], cpu.weight[[i, slot]]);
                    assert!(
                        (wg - row[jg as usize]).abs() < 1e-5,
                        "group {g} row {i}: weight"
                    );
                    assert!(
                        jg == jc || (wg - wc).abs() < 1e-6,
                        "group {g} row {i}: {jg} vs {jc}"
                    );
                }
            }
        }
    }
    let cut = matcher
        .top_k_mass(&problem, &solution, 10, Some(0.5))
        .expect("mass cut");
    let cpu = solution.coupling(&problem, 0).top_k(10, Some(0.5));
    let kept = |a: &Array2<i64>| a.iter().filter(|&&j| j >= 0).count();
    assert!((kept(&cut[0].index) as i64 - kept(&cpu.index) as i64).abs() <= 2);
}

#[test]
fn projection_matches_the_cpu() {
    let Some(matcher) = matcher(GpuOptions::default()) else {
        return;
    };
    let (problem, solution) = setup(22, &[(90, 130), (2, 1)], 9);
    let mut rng = Rng::new(3);
    for d in [1, 3, 21] {
        let ys: Vec<Array2<f64>> = problem
            .groups
            .iter()
            .map(|g| Array2::from_shape_fn((g.n2(), d), |_| rng.normal()))
            .collect();
        let views: Vec<_> = ys.iter().map(|y| y.view()).collect();
        let gpu = matcher
            .project(&problem, &solution, &views)
            .expect("GPU projection");
        for (g, (ours, y)) in gpu.iter().zip(&ys).enumerate() {
            let cpu = solution.coupling(&problem, g).project(y.view());
            let diff = ours
                .iter()
                .zip(&cpu)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            assert!(diff < 1e-4, "d={d} group {g}: max diff {diff:e}");
        }
    }
}

#[test]
fn diagonal_matches_the_cpu_and_skips_groups_without_partners() {
    let Some(matcher) = matcher(GpuOptions::default()) else {
        return;
    };
    let (problem, solution) = setup(23, &[(60, 60), (4, 4), (3, 5)], 5);
    let partners = vec![Some((0..60).collect()), Some(vec![3, 2, 1, 0]), None];
    let gpu = matcher
        .diagonal(&problem, &solution, &partners)
        .expect("GPU diagonal");
    assert!(gpu[2].is_none());
    for g in 0..2 {
        let coupling = solution.coupling(&problem, g);
        let p = partners[g].as_ref().expect("partners");
        for (i, v) in gpu[g].as_ref().expect("computed").iter().enumerate() {
            let expect = coupling.entry(i, p[i]);
            assert!(
                (v - expect).abs() < 1e-5,
                "group {g} row {i}: {v} vs {expect}"
            );
        }
    }
}

#[test]
fn bad_inputs_name_what_is_wrong() {
    let Some(matcher) = matcher(GpuOptions::default()) else {
        return;
    };
    let (problem, solution) = setup(24, &[(5, 6)], 3);
    let err = matcher
        .top_k(&problem, &solution, 65)
        .expect_err("k too large");
    assert!(err.to_string().contains("--top-k"), "{err}");
    let err = matcher
        .diagonal(&problem, &solution, &[Some(vec![0; 4])])
        .expect_err("short");
    assert!(err.to_string().contains("partners"), "{err}");
}

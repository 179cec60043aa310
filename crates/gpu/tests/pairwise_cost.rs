//! `pairwise_cost.wgsl` against `psa_core::Metric::cost`, on tiles cut at odd sizes.

mod common;

use common::{matcher, random_problem};
use psa_core::Metric;
use psa_gpu::GpuOptions;

#[test]
fn cost_matrices_match_metric_cost() {
    let Some(matcher) = matcher(GpuOptions::default()) else {
        return;
    };
    for (dim, metric) in [
        (2, Metric::Euclidean),
        (13, Metric::SqEuclidean),
        (64, Metric::Euclidean),
    ] {
        let problem = random_problem(31, &[(33, 17), (1, 1), (16, 40)], dim, metric);
        let costs = matcher.cost_matrices(&problem).expect("GPU costs");
        for (group, cost) in problem.groups.iter().zip(&costs) {
            assert_eq!(cost.dim(), (group.n1(), group.n2()));
            for ((i, j), &c) in cost.indexed_iter() {
                let x = group.x1.row(i);
                let y = group.x2.row(j);
                let expect = metric.cost(x.as_slice().expect("row"), y.as_slice().expect("row"));
                let scale = expect.abs().max(1.0);
                assert!(
                    (c - expect).abs() < 1e-5 * scale,
                    "T={dim} ({i},{j}): {c} vs {expect}"
                );
            }
        }
    }
}

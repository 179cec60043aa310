//! Criterion benchmark of the CPU reference: one log-domain Sinkhorn iteration (an f- and a
//! g-update, `2 · n²` cost evaluations and exponentials) at n ∈ {1000, 2000, 4000, 8000} and
//! T ∈ {12, 45}, λ = 0.05 on the Euclidean cost, as in the paper. `benches/peers.py` times POT
//! and OTT-JAX on the same kind of inputs; results and ratios are in `benches/RESULTS.md`.
//!
//! Run: `cargo bench --bench sinkhorn_cpu` (add `-- 8000` to filter sizes).

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use psa_core::synthetic::clustered_problem;
use psa_core::{CpuMatcher, Matcher, Metric, NoProgress, Precision, SolveOptions};

fn one_iteration(c: &mut Criterion) {
    let options = SolveOptions {
        epsilon: 0.05,
        tol: f64::MIN_POSITIVE,
        max_iter: 1,
        eps_scaling: false,
        // The f64 reference kernel with streamed costs (the modes that issue 16 added are
        // timed by benches/peers.py through crates/core/examples/peer_solve.rs).
        acceleration: false,
        precision: Precision::F64,
        cost_budget: 0,
        ..SolveOptions::default()
    };
    let mut group = c.benchmark_group("sinkhorn_iteration");
    group.sample_size(10);
    for t in [12, 45] {
        for n in [1000, 2000, 4000, 8000] {
            let p = clustered_problem(n, t, 1, Metric::Euclidean, 7);
            group.throughput(Throughput::Elements(2 * (n * n) as u64));
            group.bench_with_input(BenchmarkId::new(format!("T{t}"), n), &p, |b, p| {
                b.iter(|| {
                    CpuMatcher
                        .solve(p, &options, &NoProgress)
                        .expect("valid options")
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, one_iteration);
criterion_main!(benches);

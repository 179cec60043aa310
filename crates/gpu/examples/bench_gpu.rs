//! Times the GPU Sinkhorn iteration on a synthetic problem:
//! `bench_gpu N [T] [ITERATIONS] [streaming|materialised|auto]` (one group of N × N rows).

use std::sync::Arc;

use ndarray::Array2;
use psa_core::{Metric, Problem, ScoresKind, SolveOptions};
use psa_gpu::{AdapterChoice, CostMode, GpuContext, GpuMatcher, GpuOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let arg =
        |i: usize, default: usize| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let (n, dim, iterations) = (arg(1, 100_000), arg(2, 10), arg(3, 3));
    let cost_mode = match args.get(4).map(String::as_str) {
        Some("materialised") => CostMode::Materialised,
        Some("streaming") => CostMode::Streaming,
        _ => CostMode::Auto,
    };
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64 * 4.0 - 2.0
    };
    let s1 = Array2::from_shape_fn((n, dim), |_| next());
    let s2 = Array2::from_shape_fn((n, dim), |_| next());
    let labels = vec!["0".to_string(); n];
    let problem = Problem::from_scores(
        s1.view(),
        &labels,
        s2.view(),
        &labels,
        ScoresKind::Logits,
        Metric::Euclidean,
    )?;
    let ctx = Arc::new(GpuContext::new(AdapterChoice::AnyIncludingSoftware)?);
    let matcher = GpuMatcher::new(
        ctx,
        GpuOptions {
            cost_mode,
            ..GpuOptions::default()
        },
    )?;
    let figures = matcher.bench_iteration(&problem, &SolveOptions::default(), iterations)?;
    println!("n={n} T={dim} {figures:?}");
    Ok(())
}

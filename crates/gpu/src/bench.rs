//! Timing of the Sinkhorn iteration for `psa bench`: a fixed number of iterations at the
//! target λ (no ε-scaling, no stopping), setup and upload excluded, synchronised by waiting
//! for the device before and after.

use std::sync::Arc;
use std::time::Instant;

use psa_core::sinkhorn::resolve_epsilon;
use psa_core::{Problem, SolveOptions};

use crate::plan::GroupSetup;
use crate::{GpuContext, GpuError, GpuMatcher, GpuOptions};

/// What one benchmark run measured.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchFigures {
    pub adapter: String,
    pub iterations: usize,
    pub seconds_per_iteration: f64,
    /// `Σ_groups n1 · n2` per iteration over the time of one iteration.
    pub pairs_per_second: f64,
    /// Two exponentials per pair and iteration (one per half-iteration).
    pub exps_per_second: f64,
    /// Bytes of every buffer the solve allocates, by our own accounting.
    pub peak_device_bytes: u64,
    /// The kernel variant timed (rows per invocation, distance form, shift, stubs).
    pub kernel: String,
}

/// Times `iterations` Sinkhorn iterations of `problem` with the default GPU options.
pub fn bench_iteration(
    ctx: Arc<GpuContext>,
    problem: &Problem,
    options: &SolveOptions,
    iterations: usize,
) -> Result<BenchFigures, GpuError> {
    GpuMatcher::new(ctx, GpuOptions::default())?.bench_iteration(problem, options, iterations)
}

impl GpuMatcher {
    /// Times `iterations` Sinkhorn iterations at each group's target λ, after one warm-up
    /// iteration that compiles pipelines and touches every buffer.
    pub fn bench_iteration(
        &self,
        problem: &Problem,
        options: &SolveOptions,
        iterations: usize,
    ) -> Result<BenchFigures, GpuError> {
        options.validate()?;
        let setups: Vec<GroupSetup> = problem
            .groups
            .iter()
            .map(|g| GroupSetup {
                stages: vec![resolve_epsilon(g, problem.metric, options)],
                tol: 0.0,
                stage_tol: 0.0,
                floor: 0.0,
                tau: options.unbalanced.unwrap_or(0.0),
                // Per-iteration timing: plain steps (ω changes nothing of the arithmetic).
                accelerate: false,
                max_iter: u32::MAX,
                mean_cost: psa_core::sinkhorn::mean_cost(g, problem.metric),
            })
            .collect();
        let ws = self.upload(problem, &setups, None)?;
        ws.run_iterations(&self.ctx, 1);
        self.ctx.wait()?;
        let iterations = iterations.max(1);
        let start = Instant::now();
        ws.run_iterations(&self.ctx, iterations);
        self.ctx.wait()?;
        let seconds = start.elapsed().as_secs_f64() / iterations as f64;
        let pairs = ws.pairs() as f64;
        Ok(BenchFigures {
            adapter: self.ctx.describe(),
            iterations,
            seconds_per_iteration: seconds,
            pairs_per_second: pairs / seconds,
            exps_per_second: 2.0 * pairs / seconds,
            peak_device_bytes: ws.bytes.get(),
            kernel: ws.spec.describe(),
        })
    }
}

//! Helpers shared by the GPU tests: the adapter (or a loud skip), seeded random problems, and
//! comparisons of couplings.
#![allow(dead_code)]

use std::sync::Arc;

use ndarray::Array2;
use psa_core::{
    CpuMatcher, Matcher, Metric, NoProgress, Problem, ScoresKind, Solution, SolveOptions,
};
use psa_gpu::{AdapterChoice, GpuContext, GpuError, GpuMatcher, GpuOptions};

/// The GPU, or `None` with a loud skip; with `PSA_REQUIRE_GPU=1` a missing adapter fails.
pub fn gpu() -> Option<GpuContext> {
    // SAFETY-free env tweak: silences a harmless lavapipe warning when unset.
    match GpuContext::new(AdapterChoice::AnyIncludingSoftware) {
        Ok(ctx) => Some(ctx),
        Err(GpuError::NoAdapter) => {
            if std::env::var("PSA_REQUIRE_GPU").is_ok_and(|v| v == "1") {
                panic!("PSA_REQUIRE_GPU=1 but no GPU adapter was found");
            }
            eprintln!("SKIPPED: no GPU adapter");
            None
        }
        Err(other) => panic!("GPU adapter present but unusable: {other}"),
    }
}

pub fn matcher(options: GpuOptions) -> Option<GpuMatcher> {
    gpu().map(|ctx| GpuMatcher::new(Arc::new(ctx), options).expect("kernels compile"))
}

/// A small seeded generator (xorshift64*), so tests need no extra dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn normal(&mut self) -> f64 {
        let u = self.uniform().max(1e-300);
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * self.uniform()).cos()
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.uniform() * n as f64) as usize % n
    }
}

/// Logits of `n` rows drawn around a few prototypes (so couplings have structure).
fn logits(rng: &mut Rng, protos: &Array2<f64>, n: usize, noise: f64) -> Array2<f64> {
    let dim = protos.ncols();
    let mut out = Array2::zeros((n, dim));
    for i in 0..n {
        let p = rng.below(protos.nrows());
        for k in 0..dim {
            out[[i, k]] =
                protos[[p, k]] + noise * rng.normal() + 3.0 * rng.uniform() * (k == 0) as u8 as f64;
        }
    }
    out
}

/// A problem with one group per `(n1, n2)`, `dim` logit columns, centred log-ratio scores.
pub fn random_problem(seed: u64, sizes: &[(usize, usize)], dim: usize, metric: Metric) -> Problem {
    let mut rng = Rng::new(seed);
    let protos = Array2::from_shape_fn((4, dim), |_| 0.0)
        + Array2::from_shape_fn((4, dim), |_| 2.0 * rng.normal());
    let (mut rows1, mut rows2, mut labels1, mut labels2) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (g, &(n1, n2)) in sizes.iter().enumerate() {
        rows1.push(logits(&mut rng, &protos, n1, 0.7));
        rows2.push(logits(&mut rng, &protos, n2, 0.7));
        labels1.extend(std::iter::repeat_n(g.to_string(), n1));
        labels2.extend(std::iter::repeat_n(g.to_string(), n2));
    }
    let stack = |m: &[Array2<f64>]| {
        let views: Vec<_> = m.iter().map(|a| a.view()).collect();
        ndarray::concatenate(ndarray::Axis(0), &views).expect("same width")
    };
    Problem::from_scores(
        stack(&rows1).view(),
        &labels1,
        stack(&rows2).view(),
        &labels2,
        ScoresKind::Logits,
        metric,
    )
    .expect("valid problem")
}

pub fn cpu_solve(problem: &Problem, options: &SolveOptions) -> Solution {
    CpuMatcher
        .solve(problem, options, &NoProgress)
        .expect("CPU solve")
}

/// Largest `|P_a(j|i) − P_b(j|i)| / max_j P_b(j|i)` over the first `rows` rows of every group.
pub fn max_row_error(problem: &Problem, a: &Solution, b: &Solution, rows: usize) -> f64 {
    let mut worst: f64 = 0.0;
    for g in 0..problem.groups.len() {
        let (ca, cb) = (a.coupling(problem, g), b.coupling(problem, g));
        for i in 0..ca.n1().min(rows) {
            let (ra, rb) = (ca.row(i), cb.row(i));
            let top = rb.iter().cloned().fold(0.0, f64::max);
            for (x, y) in ra.iter().zip(&rb) {
                assert!(x.is_finite(), "group {g} row {i}: non-finite P");
                worst = worst.max((x - y).abs() / top);
            }
        }
    }
    worst
}

pub fn assert_finite(solution: &Solution) {
    for (g, s) in solution.groups.iter().enumerate() {
        assert!(
            s.f.iter().chain(&s.g).all(|v| v.is_finite()),
            "group {g}: non-finite potentials"
        );
        assert!(
            s.report.marginal_error.is_finite(),
            "group {g}: non-finite error"
        );
    }
}

/// The P-row agreement the f32 precision analysis justifies (matcher.rs, "f32 precision"):
/// `20 · ε₃₂ · C̄ / λ` for the group with the largest mean cost `C̄` (measured: up to ~10×),
/// and never tighter than `floor`.
pub fn precision_bound(problem: &Problem, epsilon: f64, floor: f64) -> f64 {
    let worst = problem
        .groups
        .iter()
        .map(|g| psa_core::sinkhorn::mean_cost(g, problem.metric))
        .fold(0.0, f64::max);
    floor.max(20.0 * f64::from(f32::EPSILON) * worst / epsilon)
}

/// A GPU solve stops honestly: below the tolerance (then, and only then, `converged`), on
/// the f32 precision floor, or with its iteration budget spent (plain Sinkhorn, which the GPU
/// runs, can need 10⁴ iterations where the CPU's Anderson-accelerated one needs 30); never as
/// converged above tol (issue 11). Where it stopped above the tolerance, how close the coupling
/// is comes from the comparisons that follow.
pub fn assert_honest_stop(what: &str, report: &psa_core::SolveReport, opts: &SolveOptions) {
    use psa_core::StopReason;
    let tol = opts.tol;
    let spent = report.stopped == StopReason::MaxIter && report.iterations == opts.max_iter;
    assert!(
        report.converged || report.stopped == StopReason::PrecisionFloor || spent,
        "{what}: neither converged, nor on the f32 floor, nor out of iterations: {report:?}"
    );
    assert_eq!(
        report.converged,
        report.stopped == StopReason::Tolerance,
        "{what}: {report:?}"
    );
    if report.converged {
        assert!(report.marginal_error <= tol, "{what}: {report:?}");
    }
}

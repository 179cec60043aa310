//! `psa bench`: time the Sinkhorn kernels on a generated problem, every backend in one process.
//!
//! Per backend: seconds per iteration (fixed λ, no ε-scaling, from zero potentials), pairs/s
//! and exp/s (each iteration evaluates `2 · n1 · n2` costs and exponentials), optionally the
//! iterations and seconds to `--tol` with and without ε-scaling, and peak memory; then the
//! largest |ΔP| between the backends' couplings on sampled rows. Speed is measured here, never
//! in tests.

use std::time::Instant;

use anyhow::{Result, bail};
use clap::{Args, ValueEnum};
use psa_core::{Matcher, Metric, NoProgress, Problem, Solution, SolveOptions};

use crate::commands::matching::DEFAULT_TOL;
use crate::flags::{HARDWARE, SeedArg, SinkhornArgs};
use crate::hardware::GpuCost;
use crate::logging;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BenchBackend {
    Cpu,
    Gpu,
    /// GPU and CPU reference in the same run, with their ratio and |ΔP|.
    Both,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[arg(long, value_enum, default_value_t = BenchBackend::Both)]
    pub backend: BenchBackend,
    /// Rows per modality per group (n1 = n2 = n).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub n: u64,
    /// Score dimension T (number of labels the classifiers predict).
    #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u64).range(2..))]
    pub t: u64,
    /// Label groups, solved together.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub groups: u64,
    /// Timed iterations per backend.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub iters: u64,
    /// Also solve to --tol, with and without ε-scaling (capped at --max-iter).
    #[arg(long)]
    pub to_tol: bool,
    /// Rows of group 0 compared between backends.
    #[arg(long, default_value_t = 64)]
    pub compare_rows: u64,
    #[command(flatten)]
    pub sinkhorn: SinkhornArgs,
    #[command(flatten)]
    pub seed: SeedArg,
    /// GPU only: how the kernels get their costs.
    #[arg(long, value_enum, default_value_t = GpuCost::Auto, help_heading = HARDWARE)]
    pub gpu_cost: GpuCost,
    /// Print the counted instruction proxy of the GPU Sinkhorn hot loop per pair, for each
    /// step of the kernel at --t (compiled to SPIR-V with naga; needs no GPU), and exit.
    #[arg(long, help_heading = HARDWARE)]
    pub kernel_stats: bool,
}

/// Figures of one backend.
struct Figures {
    backend: String,
    seconds_per_iteration: f64,
    pairs_per_second: f64,
    to_tol: Option<[(usize, f64, bool); 2]>,
    peak_bytes: Option<u64>,
    memory_note: &'static str,
    solution: Solution,
}

pub fn run(args: BenchArgs) -> Result<()> {
    if args.kernel_stats {
        return print_kernel_stats(&args);
    }
    let problem = psa_core::synthetic::clustered_problem(
        args.n as usize,
        args.t as usize,
        args.groups as usize,
        Metric::from(args.sinkhorn.metric),
        args.seed.seed,
    );
    let pairs: u64 = problem.groups.iter().map(|g| g.pairs()).sum();
    tracing::info!(
        "problem: {} group(s) × {} × {} rows, T = {}, {:.3e} pairs",
        args.groups,
        args.n,
        args.n,
        args.t,
        pairs as f64
    );
    let mut figures = Vec::new();
    if matches!(args.backend, BenchBackend::Gpu | BenchBackend::Both) {
        figures.push(gpu_figures(&problem, &args)?);
    }
    if matches!(args.backend, BenchBackend::Cpu | BenchBackend::Both) {
        let mut cpu = measure(&psa_core::CpuMatcher, &problem, &args)?;
        cpu.peak_bytes = peak_rss_bytes();
        figures.push(cpu);
    }
    logging::suspend(|| print_table(&args, &figures, &problem));
    Ok(())
}

/// Wall-clock figures of one backend (the GPU's are then replaced by device timings).
fn measure(matcher: &dyn Matcher, problem: &Problem, args: &BenchArgs) -> Result<Figures> {
    let fixed = fixed_iterations(args);
    tracing::info!(backend = matcher.name(), "timing {} iterations", args.iters);
    let start = Instant::now();
    let solution = matcher.solve(problem, &fixed, &NoProgress)?;
    let wall = start.elapsed().as_secs_f64();
    let iterations = solution
        .groups
        .iter()
        .map(|g| g.report.iterations)
        .max()
        .unwrap_or(0);
    if iterations == 0 {
        bail!("{} backend ran no iteration", matcher.name());
    }
    let pairs: u64 = problem.groups.iter().map(|g| g.pairs()).sum();
    let seconds_per_iteration = wall / iterations as f64;
    let to_tol = if args.to_tol {
        Some(to_tolerance(matcher, problem, args)?)
    } else {
        None
    };
    Ok(Figures {
        backend: matcher.name().to_string(),
        seconds_per_iteration,
        pairs_per_second: 2.0 * pairs as f64 / seconds_per_iteration,
        to_tol,
        peak_bytes: None,
        memory_note: "peak RSS of this process",
        solution,
    })
}

/// `--iters` iterations at the target λ from zero potentials, never stopping early.
fn fixed_iterations(args: &BenchArgs) -> SolveOptions {
    SolveOptions {
        tol: f64::MIN_POSITIVE,
        max_iter: args.iters as usize,
        eps_scaling: false,
        ..args.sinkhorn.solve_options(DEFAULT_TOL)
    }
}

/// The GPU's figures, with device-timed iterations (excluding buffer setup and pipeline
/// compilation) and the device memory it allocated.
#[cfg(feature = "gpu")]
fn gpu_figures(problem: &Problem, args: &BenchArgs) -> Result<Figures> {
    let hardware = crate::hardware::Hardware::select(crate::hardware::Backend::Gpu)?;
    let gpu = hardware
        .gpu_matcher(args.gpu_cost)?
        .ok_or_else(|| anyhow::anyhow!("--backend gpu found no GPU"))?;
    let mut figures = measure(&gpu, problem, args)?;
    let device = gpu.bench_iteration(problem, &fixed_iterations(args), args.iters as usize)?;
    tracing::info!("GPU: {}, kernel {}", device.adapter, device.kernel);
    let pairs: u64 = problem.groups.iter().map(|g| g.pairs()).sum();
    figures.seconds_per_iteration = device.seconds_per_iteration;
    figures.pairs_per_second = 2.0 * pairs as f64 / device.seconds_per_iteration;
    figures.peak_bytes = Some(device.peak_device_bytes);
    figures.memory_note = "device buffers allocated";
    Ok(figures)
}

#[cfg(not(feature = "gpu"))]
fn gpu_figures(_: &Problem, _: &BenchArgs) -> Result<Figures> {
    bail!(
        "--backend gpu: this psa was built without GPU support; rebuild with the default `gpu` feature"
    )
}

/// `--kernel-stats`: the counted proxy of each kernel step (issue 15; benches/RESULTS.md).
#[cfg(feature = "gpu")]
fn print_kernel_stats(args: &BenchArgs) -> Result<()> {
    let stats = psa_gpu::kernel_stats(args.t as usize, Metric::from(args.sinkhorn.metric))?;
    println!(
        "Sinkhorn hot loop per pair, T = {}, {:?} (SPIR-V from naga, as wgpu's Vulkan backend)",
        args.t, args.sinkhorn.metric
    );
    println!(
        "{:<58} {:>7} {:>8} {:>8} {:>7} {:>7}",
        "kernel", "ALU", "special", "wg load", "clamp", "total"
    );
    for s in &stats {
        println!(
            "{:<58} {:>7.2} {:>8.2} {:>8.2} {:>7.2} {:>7.2}",
            s.name,
            s.arithmetic,
            s.special,
            s.workgroup_loads,
            s.clamps,
            s.total()
        );
    }
    Ok(())
}

#[cfg(not(feature = "gpu"))]
fn print_kernel_stats(_: &BenchArgs) -> Result<()> {
    bail!(
        "--kernel-stats: this psa was built without GPU support; rebuild with the default `gpu` feature"
    )
}

fn to_tolerance(
    matcher: &dyn Matcher,
    problem: &Problem,
    args: &BenchArgs,
) -> Result<[(usize, f64, bool); 2]> {
    let mut out = [(0, 0.0, false); 2];
    for (slot, eps_scaling) in [true, false].into_iter().enumerate() {
        let options = SolveOptions {
            eps_scaling,
            ..args.sinkhorn.solve_options(DEFAULT_TOL)
        };
        let start = Instant::now();
        let solution = matcher.solve(problem, &options, &NoProgress)?;
        let iterations = solution
            .groups
            .iter()
            .map(|g| g.report.iterations)
            .max()
            .unwrap_or(0);
        let converged = solution.groups.iter().all(|g| g.report.converged);
        out[slot] = (iterations, start.elapsed().as_secs_f64(), converged);
    }
    Ok(out)
}

/// The process's peak resident set (VmHWM), where /proc exists.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Largest |P_a(j|i) − P_b(j|i)| relative to each row's max, over sampled rows of group 0.
fn max_delta_p(problem: &Problem, a: &Solution, b: &Solution, rows: usize) -> f64 {
    let (ca, cb) = (a.coupling(problem, 0), b.coupling(problem, 0));
    let n1 = problem.groups[0].n1();
    let step = (n1 / rows.max(1)).max(1);
    (0..n1)
        .step_by(step)
        .map(|i| {
            let (ra, rb) = (ca.row(i), cb.row(i));
            let max = ra.iter().cloned().fold(0.0, f64::max);
            ra.iter()
                .zip(&rb)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f64::max)
                / max
        })
        .fold(0.0, f64::max)
}

fn print_table(args: &BenchArgs, figures: &[Figures], problem: &Problem) {
    println!(
        "psa bench: {} group(s) × n1 = n2 = {}, T = {}, λ = {}, {:?}; {} timed iterations",
        args.groups, args.n, args.t, args.sinkhorn.epsilon, args.sinkhorn.metric, args.iters
    );
    println!(
        "{:<6} {:>12} {:>12} {:>12} {:>14} {:>14} {:>12}",
        "backend", "s/iter", "pairs/s", "exp/s", "iters→tol(ε↓)", "iters→tol(no)", "memory MB"
    );
    for f in figures {
        let tol = |slot: usize| {
            f.to_tol.map_or("-".to_string(), |t| {
                let (iters, secs, ok) = t[slot];
                format!("{iters}{} {secs:.2}s", if ok { "" } else { "!" })
            })
        };
        println!(
            "{:<6} {:>12.4e} {:>12.3e} {:>12.3e} {:>14} {:>14} {:>12}",
            f.backend,
            f.seconds_per_iteration,
            f.pairs_per_second,
            f.pairs_per_second,
            tol(0),
            tol(1),
            f.peak_bytes
                .map_or("-".into(), |b| format!("{:.1}", b as f64 / 1e6)),
        );
    }
    for f in figures {
        println!("  {}: memory = {}", f.backend, f.memory_note);
    }
    if let [gpu, cpu] = figures {
        println!(
            "GPU vs CPU reference per iteration: {:.1}×",
            cpu.seconds_per_iteration / gpu.seconds_per_iteration
        );
        println!(
            "max |ΔP| / row max over {} rows: {:.2e}",
            args.compare_rows,
            max_delta_p(
                problem,
                &cpu.solution,
                &gpu.solution,
                args.compare_rows as usize
            )
        );
    }
}

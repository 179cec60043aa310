//! psa's side of `benches/peers.py`: one balanced entropic OT solve of two score files with
//! the CPU reference, timed, as one JSON line. Only psa-core is built (no burn, no wgpu):
//!
//! ```text
//! cargo build --release -p psa-core --example peer_solve
//! peer_solve SCORES1.npy SCORES2.npy --epsilon 0.05 (--fixed K | --tol X --max-iter N)
//!            [--precision f32|f64] [--no-acceleration] [--no-eps-scaling] [--cost-budget BYTES]
//! ```
//!
//! The scores are raw logits (n × T, f64), one label group; psa centres them itself. `--fixed K`
//! runs exactly K iterations at λ (no ε-scaling, no early stop) twice more, K and 1, and reports
//! the marginal time per iteration `(t_K − t_1)/(K − 1)` beside the whole solve's time: setup
//! (materialised costs) and the final f64 measurement are paid once per solve, not per
//! iteration. `--tol X` solves to the tolerance with the given options and reports the whole
//! solve's time, iterations and marginal error.

use std::time::Instant;

use ndarray::Array2;
use ndarray_npy::read_npy;
use psa_core::{
    CpuMatcher, Matcher, Metric, NoProgress, Precision, Problem, ScoresKind, SolveOptions,
    SolveReport,
};

struct Args {
    scores1: String,
    scores2: String,
    options: SolveOptions,
    fixed: Option<usize>,
}

fn parse() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let scores1 = it.next().ok_or("missing SCORES1.npy")?;
    let scores2 = it.next().ok_or("missing SCORES2.npy")?;
    let mut options = SolveOptions::default();
    let mut fixed = None;
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        let number = |v: String| v.parse::<f64>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--epsilon" => options.epsilon = number(value()?)?,
            "--tol" => options.tol = number(value()?)?,
            "--max-iter" => options.max_iter = number(value()?)? as usize,
            "--fixed" => fixed = Some(number(value()?)? as usize),
            "--cost-budget" => options.cost_budget = number(value()?)? as u64,
            "--precision" => {
                options.precision = match value()?.as_str() {
                    "f32" => Precision::F32,
                    "f64" => Precision::F64,
                    other => return Err(format!("--precision: f32 or f64, not {other}")),
                }
            }
            "--no-acceleration" => options.acceleration = false,
            "--no-eps-scaling" => options.eps_scaling = false,
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(Args {
        scores1,
        scores2,
        options,
        fixed,
    })
}

fn solve(problem: &Problem, options: &SolveOptions) -> Result<(SolveReport, f64), String> {
    let start = Instant::now();
    let solution = CpuMatcher
        .solve(problem, options, &NoProgress)
        .map_err(|e| e.to_string())?;
    let seconds = start.elapsed().as_secs_f64();
    Ok((solution.groups[0].report.clone(), seconds))
}

fn run() -> Result<String, String> {
    let args = parse()?;
    let s1: Array2<f64> = read_npy(&args.scores1).map_err(|e| format!("{}: {e}", args.scores1))?;
    let s2: Array2<f64> = read_npy(&args.scores2).map_err(|e| format!("{}: {e}", args.scores2))?;
    let l1 = vec!["0".to_string(); s1.nrows()];
    let l2 = vec!["0".to_string(); s2.nrows()];
    let problem = Problem::from_scores(
        s1.view(),
        &l1,
        s2.view(),
        &l2,
        ScoresKind::Logits,
        Metric::Euclidean,
    )
    .map_err(|e| e.to_string())?;
    let o = &args.options;
    let common = format!(
        "\"precision\": \"{}\", \"acceleration\": {}",
        o.precision.name(),
        o.acceleration
    );
    match args.fixed {
        Some(k) => {
            let fixed = |iterations: usize| SolveOptions {
                tol: f64::MIN_POSITIVE,
                max_iter: iterations,
                eps_scaling: false,
                ..o.clone()
            };
            let (one, t1) = solve(&problem, &fixed(1))?;
            let (report, tk) = solve(&problem, &fixed(k.max(2)))?;
            debug_assert_eq!(one.iterations, 1);
            Ok(format!(
                "{{\"iters\": {}, \"seconds\": {tk}, \"s_per_iter\": {}, \"error\": {}, {common}}}",
                report.iterations,
                (tk - t1) / (report.iterations - 1) as f64,
                report.marginal_error
            ))
        }
        None => {
            let (report, seconds) = solve(&problem, o)?;
            Ok(format!(
                "{{\"iters\": {}, \"seconds\": {seconds}, \"error\": {}, \"converged\": {}, \
                 \"omega\": {}, {common}}}",
                report.iterations,
                report.marginal_error,
                report.converged,
                report.omega.unwrap_or(1.0)
            ))
        }
    }
}

fn main() {
    match run() {
        Ok(json) => println!("PEERS-RESULT {json}"),
        Err(message) => {
            eprintln!("peer_solve: {message}");
            std::process::exit(2);
        }
    }
}

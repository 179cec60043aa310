//! `psa demo`: the whole method on a built-in synthetic data set, in seconds, with no files.
//!
//! The data are psa-core's latent Gaussian mixture (`psa_core::synthetic`): known propensities
//! (oracle logits plus a little estimation noise), two views of each unit, ground-truth ids and
//! latents. It matches with OT, SNN and random and prints trace (also as a multiple of random),
//! FOSCTTM and latent MSE, so a new user sees what psa does and what good looks like.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use clap::Args;
use ndarray::Array2;
use psa_core::synthetic::{SyntheticConfig, SyntheticModality, latent_mixture};
use psa_core::{Metric, Problem, ScoresKind, SolveOptions};
use psa_io::{GroupSummary, MeanMetrics};

use crate::engine::{Backend, Engine, GpuCost};
use crate::logging;
use crate::match_cmd::positive_f64;
use crate::pipeline::{self, Extras, Method, RunConfig};

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Label groups (experimental conditions).
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u64).range(2..))]
    pub groups: u64,
    /// Units per group (each measured once in each modality).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..))]
    pub n_per_group: u64,
    /// Standard deviation of the noise added to each modality's oracle logits.
    #[arg(long, default_value_t = 0.5, value_parser = non_negative_f64, allow_negative_numbers = true)]
    pub score_noise: f64,
    /// Entropic regularisation λ for OT.
    #[arg(long, default_value_t = 0.05, value_parser = positive_f64, allow_negative_numbers = true)]
    pub epsilon: f64,
    /// Sinkhorn tolerance on the L1 marginal error. Looser than `psa match`'s 1e-6 so the demo
    /// takes seconds: at λ = 0.05 these near-duplicate scores need thousands of iterations to
    /// reach 1e-6, and the metrics do not change in their reported digits.
    #[arg(long, default_value_t = 1e-4, value_parser = positive_f64, allow_negative_numbers = true)]
    pub tol: f64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Where OT runs.
    #[arg(long, value_enum, default_value_t = Backend::Auto)]
    pub backend: Backend,
    /// Also write the generated data set here (scores, labels, ids, features, latents as .npy),
    /// ready for `psa match`.
    #[arg(long, value_name = "DIR")]
    pub write_data: Option<PathBuf>,
}

pub fn run(args: DemoArgs) -> Result<()> {
    let config = SyntheticConfig {
        groups: args.groups as usize,
        n_per_group: args.n_per_group as usize,
        score_noise: args.score_noise,
        seed: args.seed,
        ..SyntheticConfig::default()
    };
    tracing::info!(
        "synthetic data: {} groups × {} units, latent dim {}, oracle logits + N(0, {}²) noise",
        config.groups,
        config.n_per_group,
        config.latent_dim,
        config.score_noise
    );
    let data = latent_mixture(&config);
    let (m1, m2) = (&data.modality1, &data.modality2);
    if let Some(dir) = &args.write_data {
        write_data(dir, m1, m2)?;
    }
    let problem = Problem::from_scores(
        m1.scores.view(),
        &m1.labels,
        m2.scores.view(),
        &m2.labels,
        ScoresKind::Logits,
        Metric::Euclidean,
    )?;
    let extras = Extras {
        ids: Some((m1.ids.clone(), m2.ids.clone())),
        eval_features1: Some(m1.features.clone()),
        latents: Some((m1.latents.clone(), m2.latents.clone())),
        project2: None,
    };
    let engine = Engine::select(args.backend, GpuCost::Auto)?;
    let mut rows = Vec::new();
    for method in [Method::Ot, Method::Snn, Method::Random] {
        let run_config = RunConfig {
            method,
            solve: SolveOptions {
                epsilon: args.epsilon,
                tol: args.tol,
                ..SolveOptions::default()
            },
            snn_k: 1,
            topk: 1,
            mass: None,
            dense_max: 0,
            pseudo_pairs: 0,
            seed: args.seed,
        };
        let start = Instant::now();
        let groups = pipeline::run(&problem, &extras, &run_config, &engine, None)?;
        rows.push((method, groups, start.elapsed().as_secs_f64()));
    }
    logging::suspend(|| print_table(&config, (args.epsilon, args.tol), engine.name(), &rows));
    Ok(())
}

fn print_table(
    config: &SyntheticConfig,
    (epsilon, tol): (f64, f64),
    backend: &str,
    rows: &[(Method, Vec<GroupSummary>, f64)],
) {
    println!(
        "psa demo: {} groups × {} units; OT (λ = {}, tol {:e}) on the {} backend",
        config.groups, config.n_per_group, epsilon, tol, backend
    );
    println!(
        "{:<8} {:>10} {:>10} {:>9} {:>11} {:>9}",
        "method", "trace", "× random", "FOSCTTM", "latent MSE", "seconds"
    );
    for (method, groups, seconds) in rows {
        let mean = MeanMetrics::over(groups);
        let trace = mean.trace.unwrap_or(f64::NAN);
        let random = mean.random_trace.unwrap_or(f64::NAN);
        println!(
            "{:<8} {:>10.5} {:>10.2} {:>9.4} {:>11.4} {:>9.2}",
            format!("{method:?}").to_lowercase(),
            trace,
            trace / random,
            mean.foscttm.unwrap_or(f64::NAN),
            mean.latent_mse.unwrap_or(f64::NAN),
            seconds
        );
    }
    println!(
        "trace: mean P(true partner | i), higher is better; FOSCTTM: 0 perfect, 0.5 random; latent MSE: lower is better"
    );
}

fn write_data(dir: &std::path::Path, m1: &SyntheticModality, m2: &SyntheticModality) -> Result<()> {
    let out = psa_io::OutputDir::create(dir)?;
    for (suffix, m) in [("1", m1), ("2", m2)] {
        let column = |values: &[String], prefix: &str| -> Array2<i64> {
            let v: Vec<i64> = values
                .iter()
                .map(|s| {
                    s.trim_start_matches(prefix)
                        .parse()
                        .expect("generated ids are numeric")
                })
                .collect();
            Array2::from_shape_vec((v.len(), 1), v).expect("one column per row")
        };
        psa_io::write_npy_f64(&out.path(format!("scores{suffix}.npy")), m.scores.view())?;
        psa_io::write_npy_i64(
            &out.path(format!("labels{suffix}.npy")),
            column(&m.labels, "").view(),
        )?;
        psa_io::write_npy_i64(
            &out.path(format!("ids{suffix}.npy")),
            column(&m.ids, "unit").view(),
        )?;
        psa_io::write_npy_f64(
            &out.path(format!("features{suffix}.npy")),
            m.features.view(),
        )?;
        psa_io::write_npy_f64(&out.path(format!("latents{suffix}.npy")), m.latents.view())?;
    }
    out.commit()?;
    tracing::info!("wrote the synthetic data set to {}", dir.display());
    Ok(())
}

fn non_negative_f64(text: &str) -> Result<f64, String> {
    let v: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(format!("must be a finite number ≥ 0, got {text}"))
    }
}

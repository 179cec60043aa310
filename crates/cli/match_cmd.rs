//! `psa match`: match two modalities given their classifiers' scores.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use ndarray::Array2;
use psa_core::{EpsilonMode, Metric, Problem, ScoresKind, SolveOptions};
use psa_io::{LabelSource, MeanMetrics, OutputDir, Summary, UnmatchedSummary};
use serde::Serialize;

use crate::engine::{Backend, Engine, GpuCost};
use crate::pipeline::{self, Extras, Method, RunConfig};

/// Inputs are `.npy` (float32/float64, C or Fortran order) or `.csv`/`.tsv` (numeric, optional
/// header); labels and ids are `.npy` integers/strings or a text/CSV column (`FILE:COLUMN`).
/// Results go to DIR: summary.json, topk_index.npy, topk_weight.npy, coupling/<label>.npy,
/// projection.npy (see the README for their schema).
#[derive(Debug, Args, Serialize)]
#[command(next_line_help = false)]
pub struct MatchArgs {
    /// Modality-1 classifier scores, n1 × T (logits or probabilities, see --scores-kind).
    #[arg(long, value_name = "S1")]
    pub scores1: PathBuf,
    /// Modality-1 labels t, one per row of S1.
    #[arg(long, value_name = "L1")]
    pub labels1: String,
    /// Modality-2 classifier scores, n2 × T.
    #[arg(long, value_name = "S2")]
    pub scores2: PathBuf,
    /// Modality-2 labels t, one per row of S2.
    #[arg(long, value_name = "L2")]
    pub labels2: String,
    /// Output directory (created; files are replaced only when the run succeeds).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,

    /// Matching method.
    #[arg(long, value_enum, default_value_t = Method::Ot)]
    pub method: Method,
    /// Entropic regularisation λ on the raw cost (the paper uses 0.05); with
    /// --epsilon-relative, a fraction of each group's mean cost.
    #[arg(long, default_value_t = 0.05, value_parser = positive_f64, allow_negative_numbers = true)]
    pub epsilon: f64,
    /// Read --epsilon as a fraction of each group's mean cost (as OTT-JAX does).
    #[arg(long)]
    pub epsilon_relative: bool,
    /// Stop when the L1 marginal error ‖M1 − a‖₁ falls below this.
    #[arg(long, default_value_t = 1e-6, value_parser = positive_f64, allow_negative_numbers = true)]
    pub tol: f64,
    /// Give up after this many Sinkhorn iterations (ε-scaling stages included).
    #[arg(long, value_name = "N", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..), allow_negative_numbers = true)]
    pub max_iter: u64,
    /// Turn off ε-scaling (same result, usually many more iterations).
    #[arg(long)]
    pub no_eps_scaling: bool,
    /// Unbalanced OT: relax the marginals with KL strength τ (for groups whose composition
    /// differs between modalities).
    #[arg(long, value_name = "TAU", value_parser = positive_f64, allow_negative_numbers = true)]
    pub unbalanced: Option<f64>,
    /// What the score files hold.
    #[arg(long, value_enum, default_value_t = ScoresKindArg::Logits)]
    pub scores_kind: ScoresKindArg,
    /// Cost between transformed scores.
    #[arg(long, value_enum, default_value_t = MetricArg::Euclidean)]
    pub metric: MetricArg,
    /// Neighbours per modality for --method snn (the paper uses 1).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..), allow_negative_numbers = true)]
    pub snn_k: u64,

    /// Unit ids of modality 1 (rows with equal ids in both modalities are the same unit); used
    /// only to compute trace and FOSCTTM, never by the matcher.
    #[arg(long, value_name = "U1", requires = "ids2")]
    pub ids1: Option<String>,
    /// Unit ids of modality 2.
    #[arg(long, value_name = "U2", requires = "ids1")]
    pub ids2: Option<String>,
    /// Modality-1 features for FOSCTTM (default: the transformed scores), n1 × d.
    #[arg(long, value_name = "X1")]
    pub eval_features1: Option<PathBuf>,
    /// Modality-1 latents, for the latent MSE (synthetic data).
    #[arg(long, value_name = "Z1", requires = "latents2")]
    pub latents1: Option<PathBuf>,
    /// Modality-2 latents.
    #[arg(long, value_name = "Z2", requires = "latents1")]
    pub latents2: Option<PathBuf>,

    /// Partners kept per row in topk_index.npy / topk_weight.npy.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..), allow_negative_numbers = true)]
    pub topk: u64,
    /// Keep only the fewest partners holding this share of each row's mass (at most --topk).
    #[arg(long, value_name = "SHARE", value_parser = unit_interval, allow_negative_numbers = true)]
    pub mass: Option<f64>,
    /// Write coupling/<label>.npy (dense P(j|i), float64) for groups with n1·n2 ≤ this.
    #[arg(long, value_name = "PAIRS", default_value_t = 4_000_000)]
    pub dense_max: u64,
    /// Modality-2 matrix Y (n2 × d) to project: writes projection.npy = Σ_j P(j|i) Y_j.
    #[arg(long, value_name = "Y")]
    pub project2: Option<PathBuf>,
    /// Draw this many pseudo-partners j ~ P(·|i) per row into pseudo_pairs.npy.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub pseudo_pairs: u64,
    /// Seed for pseudo-pair sampling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,

    /// Where to solve: the CPU reference, a GPU, or a hardware GPU when present.
    #[arg(long, value_enum, default_value_t = Backend::Auto)]
    pub backend: Backend,
    /// GPU only: stream costs from the scores, keep cost matrices on the device, or choose.
    #[arg(long, value_enum, default_value_t = GpuCost::Auto)]
    pub gpu_cost: GpuCost,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ScoresKindArg {
    /// Unnormalised logits (any per-row offset).
    Logits,
    /// Probabilities (clamped to [1e-6, 1] before the log).
    Probs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricArg {
    /// ‖h_i − h_j‖₂, as in the paper.
    Euclidean,
    /// ‖h_i − h_j‖₂².
    Sqeuclidean,
}

impl From<ScoresKindArg> for ScoresKind {
    fn from(k: ScoresKindArg) -> Self {
        match k {
            ScoresKindArg::Logits => ScoresKind::Logits,
            ScoresKindArg::Probs => ScoresKind::Probs,
        }
    }
}

impl From<MetricArg> for Metric {
    fn from(m: MetricArg) -> Self {
        match m {
            MetricArg::Euclidean => Metric::Euclidean,
            MetricArg::Sqeuclidean => Metric::SqEuclidean,
        }
    }
}

pub fn positive_f64(text: &str) -> Result<f64, String> {
    let v: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(format!("must be a finite number > 0, got {text}"))
    }
}

fn unit_interval(text: &str) -> Result<f64, String> {
    let v = positive_f64(text)?;
    if v <= 1.0 {
        Ok(v)
    } else {
        Err(format!("must be in (0, 1], got {text}"))
    }
}

impl MatchArgs {
    fn solve_options(&self) -> SolveOptions {
        SolveOptions {
            epsilon: self.epsilon,
            epsilon_mode: if self.epsilon_relative {
                EpsilonMode::Relative
            } else {
                EpsilonMode::Absolute
            },
            tol: self.tol,
            max_iter: self.max_iter as usize,
            eps_scaling: !self.no_eps_scaling,
            unbalanced: self.unbalanced,
        }
    }

    pub fn run_config(&self) -> RunConfig {
        RunConfig {
            method: self.method,
            solve: self.solve_options(),
            snn_k: self.snn_k as usize,
            topk: self.topk as usize,
            mass: self.mass,
            dense_max: self.dense_max,
            pseudo_pairs: self.pseudo_pairs as usize,
            seed: self.seed,
        }
    }
}

pub fn run(args: MatchArgs) -> Result<()> {
    let config = args.run_config();
    config.solve.validate()?;
    let out = OutputDir::create(&args.out)?;
    let (problem, extras) = read_inputs(&args)?;
    let engine = Engine::select(args.backend, args.gpu_cost)?;
    let groups = pipeline::run(&problem, &extras, &config, &engine, Some(&out))?;
    let mut options = serde_json::to_value(&args)?
        .as_object()
        .cloned()
        .expect("MatchArgs serialises to an object");
    options.insert("backend_used".into(), engine.name().into());
    let summary = Summary {
        psa_version: env!("CARGO_PKG_VERSION").to_string(),
        options,
        mean: MeanMetrics::over(&groups),
        groups,
        unmatched: problem
            .unmatched
            .iter()
            .map(|u| UnmatchedSummary {
                label: u.label.clone(),
                modality: u.modality,
                rows: u.rows,
            })
            .collect(),
    };
    psa_io::write_json(&out.path("summary.json"), &summary)?;
    out.commit()?;
    report(&summary, &args.out);
    Ok(())
}

fn read_inputs(args: &MatchArgs) -> Result<(Problem, Extras)> {
    let scores1 = psa_io::read_matrix(&args.scores1)?;
    let scores2 = psa_io::read_matrix(&args.scores2)?;
    let labels1 = LabelSource::parse(&args.labels1).read_labels()?;
    let labels2 = LabelSource::parse(&args.labels2).read_labels()?;
    psa_io::check_rows(
        Path::new(&args.labels1),
        labels1.len(),
        &args.scores1,
        scores1.nrows(),
    )?;
    psa_io::check_rows(
        Path::new(&args.labels2),
        labels2.len(),
        &args.scores2,
        scores2.nrows(),
    )?;
    if scores1.ncols() != scores2.ncols() {
        bail!(
            "{} has {} columns but {} has {}: both classifiers must score the same T labels",
            args.scores2.display(),
            scores2.ncols(),
            args.scores1.display(),
            scores1.ncols()
        );
    }
    let problem = Problem::from_scores(
        scores1.view(),
        &labels1,
        scores2.view(),
        &labels2,
        args.scores_kind.into(),
        args.metric.into(),
    )
    .with_context(|| format!("{} / {}", args.scores1.display(), args.scores2.display()))?;
    warn_unmatched(&problem);
    let extras = Extras {
        ids: match (&args.ids1, &args.ids2) {
            (Some(a), Some(b)) => Some((
                read_ids(a, &args.scores1, scores1.nrows())?,
                read_ids(b, &args.scores2, scores2.nrows())?,
            )),
            _ => None,
        },
        eval_features1: optional_matrix(
            args.eval_features1.as_deref(),
            &args.scores1,
            scores1.nrows(),
        )?,
        latents: match (&args.latents1, &args.latents2) {
            (Some(a), Some(b)) => {
                let z1 = matrix_with_rows(a, &args.scores1, scores1.nrows())?;
                let z2 = matrix_with_rows(b, &args.scores2, scores2.nrows())?;
                if z1.ncols() != z2.ncols() {
                    bail!(
                        "{} has {} columns but {} has {}",
                        b.display(),
                        z2.ncols(),
                        a.display(),
                        z1.ncols()
                    );
                }
                Some((z1, z2))
            }
            _ => None,
        },
        project2: optional_matrix(args.project2.as_deref(), &args.scores2, scores2.nrows())?,
    };
    Ok((problem, extras))
}

fn warn_unmatched(problem: &Problem) {
    for u in &problem.unmatched {
        tracing::warn!(
            "label {:?} appears only in modality {} ({} rows): left unmatched",
            u.label,
            u.modality,
            u.rows
        );
    }
    if problem.groups.is_empty() {
        tracing::warn!("no label appears in both modalities: nothing to match");
    }
}

fn read_ids(spec: &str, scores: &Path, rows: usize) -> Result<Vec<String>> {
    let ids = LabelSource::parse(spec).read_ids()?;
    psa_io::check_rows(Path::new(spec), ids.len(), scores, rows)?;
    Ok(ids)
}

fn matrix_with_rows(path: &Path, scores: &Path, rows: usize) -> Result<Array2<f64>> {
    let m = psa_io::read_matrix(path)?;
    psa_io::check_rows(path, m.nrows(), scores, rows)?;
    Ok(m)
}

fn optional_matrix(path: Option<&Path>, scores: &Path, rows: usize) -> Result<Option<Array2<f64>>> {
    path.map(|p| matrix_with_rows(p, scores, rows)).transpose()
}

fn report(summary: &Summary, dir: &Path) {
    let not_converged = summary
        .groups
        .iter()
        .filter(|g| g.converged == Some(false))
        .count();
    if not_converged > 0 {
        tracing::warn!("{not_converged} group(s) did not converge; see summary.json");
    }
    let fmt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.4}"));
    tracing::info!(
        "wrote {} ({} groups; mean trace {}, FOSCTTM {}, latent MSE {})",
        dir.display(),
        summary.groups.len(),
        fmt(summary.mean.trace),
        fmt(summary.mean.foscttm),
        fmt(summary.mean.latent_mse)
    );
}

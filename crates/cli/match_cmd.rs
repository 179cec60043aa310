//! `psa match`: match two modalities given their classifiers' scores.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use ndarray::Array2;
use psa_core::{EpsilonMode, Metric, Problem, ScoresKind, SolveOptions};
use psa_io::{MeanMetrics, OutputDir, Summary, UnmatchedSummary};
use serde::Serialize;

use crate::classify::{self, CrossFitArgs, Modality, ModelArgs};
use crate::engine::{Backend, GpuCost, Hardware};
use crate::inputs::{self, H5adChoice};
use crate::pipeline::{self, Extras, Method, RunConfig};

/// Two ways in. Scores: `--scores1/--scores2` are classifier outputs you made (`.npy`
/// float32/float64, or `.csv`/`.tsv`). Features: `--x1/--x2` are raw features (`.npy`, `.csv`,
/// AnnData `.h5ad`) or image stacks (`.npy`, n × C × H × W), and psa trains one propensity
/// classifier per modality with K-fold cross-fitting first (saving scores1.npy, scores2.npy,
/// training.csv, training.png). Labels and ids are `.npy` integers/strings, a text/CSV column
/// (`FILE:COLUMN`), or `obs:COLUMN` / `obs_names` of the `.h5ad`. Results go to DIR:
/// summary.json, topk_index.npy, topk_weight.npy, coupling/<label>.npy, projection.npy (see the
/// README for their schema).
#[derive(Debug, Args, Serialize)]
#[command(next_line_help = false)]
pub struct MatchArgs {
    /// Modality-1 classifier scores, n1 × T (logits or probabilities, see --scores-kind).
    #[arg(
        long,
        value_name = "S1",
        required_unless_present = "x1",
        conflicts_with = "x1",
        requires = "scores2"
    )]
    pub scores1: Option<PathBuf>,
    /// Modality-2 classifier scores, n2 × T.
    #[arg(
        long,
        value_name = "S2",
        required_unless_present = "x2",
        conflicts_with = "x2",
        requires = "scores1"
    )]
    pub scores2: Option<PathBuf>,
    /// Modality-1 features or images: train a classifier on them (cross-fitted) and match its
    /// out-of-sample scores.
    #[arg(long, value_name = "X1", requires = "x2")]
    pub x1: Option<PathBuf>,
    /// Modality-2 features or images.
    #[arg(long, value_name = "X2", requires = "x1")]
    pub x2: Option<PathBuf>,
    /// Modality-1 labels t, one per row (FILE, FILE:COLUMN, or obs:COLUMN of X1.h5ad).
    #[arg(long, value_name = "L1")]
    pub labels1: String,
    /// Modality-2 labels t, one per row.
    #[arg(long, value_name = "L2")]
    pub labels2: String,
    /// Output directory (created; files are replaced only when the run succeeds).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,

    /// .h5ad inputs: read this layer instead of X (both modalities; see --layer1/--layer2).
    #[arg(long, value_name = "NAME", help_heading = "AnnData inputs")]
    pub layer: Option<String>,
    /// .h5ad inputs: read this obsm embedding (e.g. X_pca) instead of X.
    #[arg(long, value_name = "NAME", help_heading = "AnnData inputs")]
    pub obsm: Option<String>,
    /// Layer of X1.h5ad only.
    #[arg(long, value_name = "NAME", help_heading = "AnnData inputs")]
    pub layer1: Option<String>,
    /// Layer of X2.h5ad only.
    #[arg(long, value_name = "NAME", help_heading = "AnnData inputs")]
    pub layer2: Option<String>,
    /// obsm embedding of X1.h5ad only.
    #[arg(long, value_name = "NAME", help_heading = "AnnData inputs")]
    pub obsm1: Option<String>,
    /// obsm embedding of X2.h5ad only.
    #[arg(long, value_name = "NAME", help_heading = "AnnData inputs")]
    pub obsm2: Option<String>,
    /// Image stacks are n × H × W × C (default n × C × H × W).
    #[arg(long)]
    pub channels_last: bool,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub cross_fit: CrossFitArgs,

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
    /// Seed for pseudo-pair sampling and for the classifiers (initialisation, folds, batches).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,

    /// Where to train and solve: the CPU (burn-ndarray, the f64 reference matcher), a GPU
    /// (burn-wgpu and the WGSL kernels, on one device), or a hardware GPU when present.
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
            ..SolveOptions::default()
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
    let hardware = Hardware::select(args.backend)?;
    let inputs = read_inputs(&args, &hardware, &out)?;
    let engine = hardware.engine(args.gpu_cost)?;
    let groups = pipeline::run(
        &inputs.problem,
        &inputs.extras,
        &config,
        &engine,
        Some(&out),
    )?;
    let mut options = serde_json::to_value(&args)?
        .as_object()
        .cloned()
        .expect("MatchArgs serialises to an object");
    options.insert("backend_used".into(), engine.name().into());
    if let Some(classifiers) = inputs.classifiers {
        options.insert("classifiers".into(), classifiers);
    }
    let problem = &inputs.problem;
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

/// What the matcher gets, plus how the scores were made when psa made them.
struct Inputs {
    problem: Problem,
    extras: Extras,
    classifiers: Option<serde_json::Value>,
}

/// The file each modality's rows come from (scores or features) and its row count.
struct Side<'a> {
    path: &'a Path,
    rows: usize,
}

fn read_inputs(args: &MatchArgs, hardware: &Hardware, out: &OutputDir) -> Result<Inputs> {
    let (problem, side1, side2, classifiers) = match (&args.x1, &args.x2) {
        (Some(x1), Some(x2)) => {
            let scored = classify_inputs(args, (x1, x2), hardware, out)?;
            let sides = (
                Side {
                    path: x1,
                    rows: scored.n1,
                },
                Side {
                    path: x2,
                    rows: scored.n2,
                },
            );
            (scored.problem, sides.0, sides.1, Some(scored.summary))
        }
        _ => {
            let (s1, s2) = (
                args.scores1.as_deref().expect("clap: --scores1 or --x1"),
                args.scores2.as_deref().expect("clap: --scores2 or --x2"),
            );
            let (problem, n1, n2) = problem_from_score_files(args, s1, s2)?;
            (
                problem,
                Side { path: s1, rows: n1 },
                Side { path: s2, rows: n2 },
                None,
            )
        }
    };
    warn_unmatched(&problem);
    let extras = read_extras(args, &side1, &side2)?;
    Ok(Inputs {
        problem,
        extras,
        classifiers,
    })
}

fn problem_from_score_files(
    args: &MatchArgs,
    s1: &Path,
    s2: &Path,
) -> Result<(Problem, usize, usize)> {
    let scores1 = psa_io::read_matrix(s1)?;
    let scores2 = psa_io::read_matrix(s2)?;
    let labels1 = inputs::read_labels(&args.labels1, s1)?;
    let labels2 = inputs::read_labels(&args.labels2, s2)?;
    psa_io::check_rows(Path::new(&args.labels1), labels1.len(), s1, scores1.nrows())?;
    psa_io::check_rows(Path::new(&args.labels2), labels2.len(), s2, scores2.nrows())?;
    if scores1.ncols() != scores2.ncols() {
        bail!(
            "{} has {} columns but {} has {}: both classifiers must score the same T labels",
            s2.display(),
            scores2.ncols(),
            s1.display(),
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
    .with_context(|| format!("{} / {}", s1.display(), s2.display()))?;
    Ok((problem, scores1.nrows(), scores2.nrows()))
}

/// Scores made by cross-fitted classifiers, as a problem over the scored rows.
struct Classified {
    problem: Problem,
    n1: usize,
    n2: usize,
    summary: serde_json::Value,
}

fn classify_inputs(
    args: &MatchArgs,
    (x1, x2): (&PathBuf, &PathBuf),
    hardware: &Hardware,
    out: &OutputDir,
) -> Result<Classified> {
    let read = |name: &str,
                x: &PathBuf,
                labels_spec: &str,
                layer: &Option<String>,
                obsm: &Option<String>|
     -> Result<Modality> {
        let h5ad = H5adChoice {
            layer: layer.clone().or_else(|| args.layer.clone()),
            obsm: obsm.clone().or_else(|| args.obsm.clone()),
        };
        let features = inputs::read_features(x, &h5ad, args.channels_last)?;
        let labels = inputs::read_labels(labels_spec, x)?;
        psa_io::check_rows(Path::new(labels_spec), labels.len(), x, features.rows())?;
        Ok(Modality {
            name: name.to_string(),
            source: x.clone(),
            features,
            labels,
        })
    };
    let m1 = read("1", x1, &args.labels1, &args.layer1, &args.obsm1)?;
    let m2 = read("2", x2, &args.labels2, &args.layer2, &args.obsm2)?;
    let classes = classify::classes_of(&m1, &m2, args.cross_fit.allow_missing_labels)?;
    let device = hardware.learn_device()?;
    tracing::info!(
        "training propensity classifiers ({} labels, {}-fold cross-fitting) with {}",
        classes.len(),
        args.cross_fit.folds,
        hardware.learn_name()
    );
    let mut fitted = Vec::new();
    let mut specs = Vec::new();
    for m in [&m1, &m2] {
        let spec = args.model.spec(m.features.shape(), args.seed)?;
        fitted.push(classify::cross_fit_modality(
            m,
            &classes,
            &spec,
            args.cross_fit.config(),
            &device,
        )?);
        specs.push(spec);
    }
    let records: Vec<_> = fitted.iter().flat_map(|f| f.records.clone()).collect();
    classify::write_monitor(out, &records, classes.len())?;
    psa_io::write_npy_f64(&out.path("scores1.npy"), fitted[0].logits.view())?;
    psa_io::write_npy_f64(&out.path("scores2.npy"), fitted[1].logits.view())?;
    let subset = |f: &psa_learn::CrossFitted, labels: &[String]| {
        let scores = f.logits.select(ndarray::Axis(0), &f.scored_rows);
        let labels: Vec<String> = f.scored_rows.iter().map(|&r| labels[r].clone()).collect();
        (scores, labels)
    };
    let (s1, l1) = subset(&fitted[0], &m1.labels);
    let (s2, l2) = subset(&fitted[1], &m2.labels);
    let mut problem = Problem::from_scores(
        s1.view(),
        &l1,
        s2.view(),
        &l2,
        ScoresKind::Logits,
        args.metric.into(),
    )?;
    problem.map_rows(
        &fitted[0].scored_rows,
        &fitted[1].scored_rows,
        m1.features.rows(),
        m2.features.rows(),
    );
    let summary = serde_json::json!({
        "backend": hardware.learn_name(),
        "classes": classes.labels,
        "modalities": [classifier_summary(&specs[0], &fitted[0]), classifier_summary(&specs[1], &fitted[1])],
    });
    Ok(Classified {
        problem,
        n1: m1.features.rows(),
        n2: m2.features.rows(),
        summary,
    })
}

fn classifier_summary(
    spec: &psa_learn::ModelSpec,
    f: &psa_learn::CrossFitted,
) -> serde_json::Value {
    serde_json::json!({
        "spec": spec,
        "scored_rows": f.scored_rows.len(),
        "folds": f.folds.iter().map(|fold| serde_json::json!({
            "train_rows": fold.train_rows.len(),
            "validation_rows": fold.validation_rows.len(),
            "scored_rows": fold.scored_rows.len(),
            "best_epoch": fold.best_epoch,
            "epochs_run": fold.epochs_run,
            "best_validation_cross_entropy": fold.best_validation_cross_entropy,
        })).collect::<Vec<_>>(),
    })
}

fn read_extras(args: &MatchArgs, side1: &Side<'_>, side2: &Side<'_>) -> Result<Extras> {
    Ok(Extras {
        ids: match (&args.ids1, &args.ids2) {
            (Some(a), Some(b)) => Some((read_ids(a, side1)?, read_ids(b, side2)?)),
            _ => None,
        },
        eval_features1: optional_matrix(args.eval_features1.as_deref(), side1)?,
        latents: match (&args.latents1, &args.latents2) {
            (Some(a), Some(b)) => {
                let z1 = matrix_with_rows(a, side1)?;
                let z2 = matrix_with_rows(b, side2)?;
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
        project2: optional_matrix(args.project2.as_deref(), side2)?,
    })
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

fn read_ids(spec: &str, side: &Side<'_>) -> Result<Vec<String>> {
    let ids = inputs::read_ids(spec, side.path)?;
    psa_io::check_rows(Path::new(spec), ids.len(), side.path, side.rows)?;
    Ok(ids)
}

fn matrix_with_rows(path: &Path, side: &Side<'_>) -> Result<Array2<f64>> {
    let m = psa_io::read_matrix(path)?;
    psa_io::check_rows(path, m.nrows(), side.path, side.rows)?;
    Ok(m)
}

fn optional_matrix(path: Option<&Path>, side: &Side<'_>) -> Result<Option<Array2<f64>>> {
    path.map(|p| matrix_with_rows(p, side)).transpose()
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
        "wrote {} ({} groups; mean trace {}, FOSCTTM {}, latent MSE {}, pair MSE {})",
        dir.display(),
        summary.groups.len(),
        fmt(summary.mean.trace),
        fmt(summary.mean.foscttm),
        fmt(summary.mean.latent_mse),
        fmt(summary.mean.latent_pair_mse)
    );
}

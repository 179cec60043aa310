//! `psa match`: match two modalities within label groups, from classifier scores or training
//! the propensity classifiers first, and write a complete, reloadable run directory.
//!
//! The command only gathers inputs and flags; the work is the libraries': a
//! [`psa_core::Problem`] goes to [`psa_core::match_problem`] on the chosen backend, metrics come
//! from [`psa_core::metrics::evaluate`], and every file from [`psa_io::write_results`] and
//! [`psa_io::write_run`].

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use ndarray::Array2;
use psa_core::metrics::{GroundTruth, evaluate};
use psa_core::{Problem, Progress, ScoresKind, SolveOptions, SolveReport, Solved};
use psa_io::{InputFile, Metrics, OutputDir, Summary, UnmatchedSummary};
use serde::Serialize;

use crate::classify::{self, CrossFitArgs, Modality, ModelArgs};
use crate::flags::{
    AnnDataArgs, EvaluationArgs, HardwareArgs, INPUTS, OutputArgs, ScoresKindArg, SeedArg,
    TransportArgs,
};
use crate::hardware::Hardware;
use crate::{inputs, logging};

/// Two ways in. Scores: `--scores1/--scores2` are classifier outputs you made (`.npy`
/// float32/float64, or `.csv`/`.tsv`). Features: `--x1/--x2` are raw features (`.npy`, `.csv`,
/// AnnData `.h5ad`) or image stacks (`.npy`, n × C × H × W), and psa trains one propensity
/// classifier per modality with K-fold cross-fitting first (saving scores1.npy, scores2.npy,
/// training.csv, training.png). Labels and ids are `.npy` integers/strings, a text/CSV column
/// (`FILE:COLUMN`), or `obs:COLUMN` / `obs_names` of the `.h5ad`. Results go to DIR:
/// summary.json, topk_index.npy, topk_weight.npy, coupling/<label>.npy, projection.npy,
/// pseudo_pairs.npy, and run/ (what `psa export` reloads); see the README for their schema.
#[derive(Debug, Args, Serialize)]
pub struct MatchArgs {
    /// Modality-1 classifier scores, n1 × T (logits or probabilities, see --scores-kind).
    #[arg(
        long,
        value_name = "S1",
        required_unless_present = "x1",
        conflicts_with = "x1",
        requires = "scores2",
        help_heading = INPUTS
    )]
    pub scores1: Option<PathBuf>,
    /// Modality-2 classifier scores, n2 × T.
    #[arg(
        long,
        value_name = "S2",
        required_unless_present = "x2",
        conflicts_with = "x2",
        requires = "scores1",
        help_heading = INPUTS
    )]
    pub scores2: Option<PathBuf>,
    /// Modality-1 features or images: train a classifier on them (cross-fitted) and match its
    /// out-of-sample scores.
    #[arg(long, value_name = "X1", requires = "x2", help_heading = INPUTS)]
    pub x1: Option<PathBuf>,
    /// Modality-2 features or images.
    #[arg(long, value_name = "X2", requires = "x1", help_heading = INPUTS)]
    pub x2: Option<PathBuf>,
    /// Modality-1 labels t, one per row (FILE, FILE:COLUMN, or obs:COLUMN of X1.h5ad).
    #[arg(long, value_name = "L1", help_heading = INPUTS)]
    pub labels1: String,
    /// Modality-2 labels t, one per row.
    #[arg(long, value_name = "L2", help_heading = INPUTS)]
    pub labels2: String,
    /// Output directory, replaced as a whole when the run succeeds (left as it was otherwise).
    #[arg(long, value_name = "DIR", help_heading = INPUTS)]
    pub out: PathBuf,
    /// Replace DIR even if it holds files psa did not write (they are deleted).
    #[arg(long, help_heading = INPUTS)]
    pub force: bool,
    /// What the score files hold.
    #[arg(long, value_enum, default_value_t = ScoresKindArg::Logits, help_heading = INPUTS, hide_short_help = true)]
    pub scores_kind: ScoresKindArg,
    /// Image stacks are n × H × W × C (default n × C × H × W).
    #[arg(long, help_heading = INPUTS, hide_short_help = true)]
    pub channels_last: bool,

    #[command(flatten)]
    #[serde(flatten)]
    pub anndata: AnnDataArgs,
    #[command(flatten)]
    #[serde(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    #[serde(flatten)]
    pub cross_fit: CrossFitArgs,
    #[command(flatten)]
    #[serde(flatten)]
    pub transport: TransportArgs,
    #[command(flatten)]
    #[serde(flatten)]
    pub evaluation: EvaluationArgs,
    #[command(flatten)]
    #[serde(flatten)]
    pub outputs: OutputArgs,
    #[command(flatten)]
    #[serde(flatten)]
    pub seed: SeedArg,
    #[command(flatten)]
    #[serde(flatten)]
    pub hardware: HardwareArgs,
}

/// `psa match`'s default tolerance on the L1 marginal error.
pub const DEFAULT_TOL: f64 = 1e-6;

pub fn run(args: MatchArgs) -> Result<()> {
    let solve = args.transport.sinkhorn.solve_options(DEFAULT_TOL);
    solve.validate()?;
    let out = OutputDir::create(&args.out, args.force)?;
    let hardware = Hardware::select(args.hardware.backend)?;
    let inputs = read_inputs(&args, &hardware, &out)?;
    let matcher = hardware.matcher(args.hardware.gpu_cost)?;
    let mut options = serde_json::to_value(&args)?
        .as_object()
        .cloned()
        .expect("MatchArgs serialises to an object");
    options.insert("backend_used".into(), matcher.name().into());
    let solved = solve_groups(
        matcher.as_ref(),
        inputs.problem,
        args.transport.method(),
        &solve,
    )?;
    let metrics = evaluate(solved.as_ref(), &inputs.truth)?;
    let mut request = args.outputs.request(inputs.project2, args.seed.seed);
    request.names = inputs.names;
    request.options = options.clone().into();
    let files = psa_io::write_results(solved.as_ref(), &request, &out)?;
    psa_io::write_run(
        solved.as_ref(),
        options.clone(),
        inputs.files,
        request.names.as_ref(),
        &out,
    )?;
    let mut summary = summary_of(solved.as_ref(), &metrics, &files, options);
    summary.classifiers = inputs.classifiers;
    psa_io::write_json(&out.path("summary.json"), &summary)?;
    out.commit()?;
    report(&summary, &args.out);
    Ok(())
}

/// Matches every group by the chosen method, with a progress bar over groups.
pub fn solve_groups<'m>(
    matcher: &'m dyn psa_core::Matcher,
    problem: Problem,
    method: psa_core::Method,
    solve: &SolveOptions,
) -> Result<Box<dyn Solved + 'm>> {
    let n_groups = problem.groups.len();
    tracing::info!(
        backend = matcher.name(),
        "matching {n_groups} group(s) by {}",
        method.name()
    );
    let bar = logging::progress_bar(n_groups as u64, "matching groups");
    let start = std::time::Instant::now();
    let solved =
        psa_core::match_problem(matcher, problem, method, solve, &BarProgress(bar.clone()))?;
    bar.finish_and_clear();
    tracing::info!("matched in {:.2} s", start.elapsed().as_secs_f64());
    Ok(solved)
}

struct BarProgress(indicatif::ProgressBar);

impl Progress for BarProgress {
    fn group_done(&self, _group: usize, _report: &SolveReport) {
        self.0.inc(1);
    }
}

/// `summary.json` of a solved, evaluated matching.
pub fn summary_of(
    solved: &dyn Solved,
    metrics: &[psa_core::metrics::GroupMetrics],
    files: &psa_io::CouplingFiles,
    options: serde_json::Map<String, serde_json::Value>,
) -> Summary {
    let groups = psa_io::group_summaries(solved, metrics, files);
    Summary {
        psa_version: env!("CARGO_PKG_VERSION").to_string(),
        options,
        mean: Metrics::mean_over(&groups),
        groups,
        unmatched: solved
            .problem()
            .unmatched
            .iter()
            .map(UnmatchedSummary::from)
            .collect(),
        classifiers: None,
    }
}

/// What the matcher and the evaluation get, plus how the scores were made when psa made them.
struct Inputs {
    problem: Problem,
    truth: GroundTruth,
    project2: Option<Array2<f64>>,
    /// Every file the run read, hashed for the manifest.
    files: Vec<InputFile>,
    /// Row names for `matches.h5ad`, when modality 1 has them.
    names: Option<psa_io::RowNames>,
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
    let e = &args.evaluation;
    let truth = GroundTruth {
        ids: match (&e.ids1, &e.ids2) {
            (Some(a), Some(b)) => Some((read_ids(a, &side1)?, read_ids(b, &side2)?)),
            _ => None,
        },
        features1: optional_matrix(e.eval_features1.as_deref(), &side1)?,
        latents: read_latents(e, &side1, &side2)?,
    };
    let project2 = optional_matrix(args.outputs.project2.as_deref(), &side2)?;
    let names = row_names(args, &truth, &side1, &side2)?;
    Ok(Inputs {
        problem,
        truth,
        project2,
        files: input_files(args)?,
        names,
        classifiers,
    })
}

/// The rows' names for `matches.h5ad`: modality 1's `obs_names` when it is an `.h5ad`, else
/// its `--ids1`; without either, no `matches.h5ad` (None). Modality 2's rows are named the
/// same way, or by their row numbers.
fn row_names(
    args: &MatchArgs,
    truth: &GroundTruth,
    side1: &Side<'_>,
    side2: &Side<'_>,
) -> Result<Option<psa_io::RowNames>> {
    let ids = truth.ids.as_ref();
    let name = |side: &Side<'_>, given: Option<&Vec<String>>| -> Result<Option<Vec<String>>> {
        if psa_io::is_h5ad(side.path) {
            return Ok(Some(read_ids("obs_names", side)?));
        }
        Ok(given.cloned())
    };
    let Some(obs_names) = name(side1, ids.map(|(a, _)| a))? else {
        return Ok(None);
    };
    let partner_names = match name(side2, ids.map(|(_, b)| b))? {
        Some(names) => names,
        None => (0..side2.rows).map(|r| r.to_string()).collect(),
    };
    let labels = inputs::read_labels(&args.labels1, side1.path)?;
    Ok(Some(psa_io::RowNames {
        obs_names,
        labels,
        partner_names,
    }))
}

/// Size and SHA-256 of every input file, for the run manifest.
fn input_files(args: &MatchArgs) -> Result<Vec<InputFile>> {
    let e = &args.evaluation;
    let mut files: Vec<(&str, PathBuf)> = Vec::new();
    let mut push = |role: &'static str, path: Option<&Path>| {
        if let Some(path) = path {
            files.push((role, path.to_path_buf()));
        }
    };
    push("scores1", args.scores1.as_deref());
    push("scores2", args.scores2.as_deref());
    push("x1", args.x1.as_deref());
    push("x2", args.x2.as_deref());
    push("eval_features1", e.eval_features1.as_deref());
    push("latents1", e.latents1.as_deref());
    push("latents2", e.latents2.as_deref());
    push("project2", args.outputs.project2.as_deref());
    for (role, spec) in [
        ("labels1", Some(&args.labels1)),
        ("labels2", Some(&args.labels2)),
        ("ids1", e.ids1.as_ref()),
        ("ids2", e.ids2.as_ref()),
    ] {
        if let Some(spec) = spec
            && let Some(path) = inputs::file_of_spec(spec)
        {
            files.push((role, path));
        }
    }
    files
        .iter()
        .map(|(role, path)| Ok(InputFile::hash(role, path)?))
        .collect()
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
        args.transport.sinkhorn.metric.into(),
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
    let read = |name: &str, x: &PathBuf, labels_spec: &str, modality: u8| -> Result<Modality> {
        let h5ad = args.anndata.modality(modality);
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
    let m1 = read("1", x1, &args.labels1, 1)?;
    let m2 = read("2", x2, &args.labels2, 2)?;
    let classes = classify::classes_of(&m1, &m2, args.cross_fit.allow_missing_labels)?;
    let device = hardware.learn_device()?;
    tracing::info!(
        "training propensity classifiers ({} labels, {}-fold cross-fitting) with {}",
        classes.len(),
        args.cross_fit.folds,
        hardware.learn_name()
    );
    let mut fitted = Vec::new();
    for m in [&m1, &m2] {
        let spec = args.model.spec(m.features.shape(), args.seed.seed)?;
        fitted.push(classify::cross_fit_modality(
            m,
            &classes,
            &spec,
            args.cross_fit.config(),
            &device,
        )?);
    }
    let records: Vec<_> = fitted.iter().flat_map(|f| f.records.clone()).collect();
    let baselines: Vec<(&str, f64)> = fitted
        .iter()
        .map(|f| (f.modality.as_str(), f.out_of_sample.baseline_cross_entropy))
        .collect();
    classify::write_monitor(out, &records, &baselines)?;
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
        args.transport.sinkhorn.metric.into(),
    )?;
    problem.map_rows(
        &fitted[0].scored_rows,
        &fitted[1].scored_rows,
        m1.features.rows(),
        m2.features.rows(),
    );
    let warnings: Vec<&String> = fitted.iter().flat_map(|f| &f.warnings).collect();
    let summary = serde_json::json!({
        "backend": hardware.learn_name(),
        "classes": classes.labels,
        "modalities": fitted,
        "warnings": warnings,
    });
    Ok(Classified {
        problem,
        n1: m1.features.rows(),
        n2: m2.features.rows(),
        summary,
    })
}

fn read_latents(
    e: &EvaluationArgs,
    side1: &Side<'_>,
    side2: &Side<'_>,
) -> Result<Option<(Array2<f64>, Array2<f64>)>> {
    let (Some(a), Some(b)) = (&e.latents1, &e.latents2) else {
        return Ok(None);
    };
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
    Ok(Some((z1, z2)))
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

/// The closing log line (and a warning per kind of unconverged group).
pub fn report(summary: &Summary, dir: &Path) {
    let stopped = |reason: &str| {
        summary
            .groups
            .iter()
            .filter(|g| g.stopped.as_deref() == Some(reason))
            .count()
    };
    let (max_iter, floor) = (stopped("max_iter"), stopped("precision_floor"));
    if max_iter > 0 {
        tracing::warn!(
            "{max_iter} group(s) stopped at --max-iter above --tol; see summary.json (raise --max-iter or --epsilon)"
        );
    }
    if floor > 0 {
        tracing::warn!(
            "{floor} group(s) stopped at the precision floor above --tol; see summary.json (--backend cpu solves in f64)"
        );
    }
    let untrained = summary
        .classifiers
        .as_ref()
        .and_then(|c| c["warnings"].as_array())
        .map_or(0, Vec::len);
    if untrained > 0 {
        tracing::warn!(
            "{untrained} classifier fold(s) learned nothing: matching on their scores is random \
             (see summary.json, training.png)"
        );
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

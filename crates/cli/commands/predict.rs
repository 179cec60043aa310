//! Cross-modal prediction (METHOD.md "Downstream cross-modal prediction", paper Sec. 5):
//!
//! * `psa predict` trains `f : modality 2 → modality 1` on partners drawn from a finished run's
//!   coupling ([`psa_learn::CouplingPartners`], reloaded from `DIR/run/` without solving), or on
//!   the true pairs (`--true-pairs`, the upper reference). With `--epsilon-grid` it trains one
//!   predictor per candidate coupling (multiples of the run's λ, re-solved on the run's own
//!   scores, and `random`, the uniform coupling) and keeps the one whose predictions of
//!   held-out modality-1 rows from their drawn partners are best (the validation pseudo-pair
//!   MSE, `E_{j~P(·|i)} ‖x_i − f(x_j)‖²`), so λ is chosen without ground truth. Not Eq. 9
//!   itself: under a blurred coupling a predictor can lower Eq. 9 by inflating its outputs so
//!   that their average lands on `x_i`, while each single prediction gets worse (measured in
//!   benches/RESULTS.md);
//! * `psa apply` writes a saved predictor's predictions for new modality-2 rows;
//! * `psa evaluate-prediction` scores predictions against real modality-1 rows
//!   ([`psa_core::prediction`]): R² with true pairs, and per group the distance of means, sliced
//!   W1 and kNN KL.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use ndarray::Array2;
use psa_core::{EpsilonMode, Method, NoProgress, SolveOptions, Solved};
use psa_io::OutputDir;
use psa_learn::{
    CouplingPartners, Features, PartnerDraws, PredictObserver, PredictionLoss, PredictorEpoch,
    PredictorRun, PredictorSpec, TrainedPredictor, TruePartners,
};
use serde::Serialize;

use crate::flags::{ANNDATA, AnnDataArgs, H5adChoice, HardwareArgs, INPUTS};
use crate::hardware::Hardware;
use crate::inputs::{read_features, read_ids, read_labels};
use crate::logging;

/// Heading of the predictor's training flags.
const TRAINING: &str = "Training";
/// Heading of the coupling-selection flags.
const COUPLING: &str = "Coupling";

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LossArg {
    /// ⟨x_i − f(x_j′), x_i − f(x_j″)⟩ with two independent partners: unbiased for Eq. 9.
    #[default]
    Unbiased,
    /// ‖x_i − f(x_j)‖² with one partner (an upper bound of Eq. 9).
    Mse,
}

/// Train `f : modality 2 → modality 1` on a run's coupling. X1 and X2 are any features whose
/// rows are the run's input rows (they may differ from what was matched: match on embeddings,
/// predict expression). Writes MODEL_DIR: predictor.bpk, predictor.json (spec, standardisers,
/// the coupling chosen and the validation loss of every candidate), training.csv.
#[derive(Debug, Args, Serialize)]
pub struct PredictArgs {
    /// A run directory written by `psa match` (or `psa export`): partners are drawn from its
    /// coupling.
    #[arg(long, value_name = "DIR", required_unless_present = "true_pairs", help_heading = INPUTS)]
    pub run: Option<PathBuf>,
    /// Modality-1 features (the targets), one row per modality-1 row of the run.
    #[arg(long, value_name = "X1", help_heading = INPUTS)]
    pub x1: PathBuf,
    /// Modality-2 features (the inputs), one row per modality-2 row of the run.
    #[arg(long, value_name = "X2", help_heading = INPUTS)]
    pub x2: PathBuf,
    /// Model directory to write, replaced as a whole on success.
    #[arg(long, value_name = "MODEL_DIR", help_heading = INPUTS)]
    pub out: PathBuf,
    /// Replace MODEL_DIR even if it holds files psa did not write.
    #[arg(long, help_heading = INPUTS)]
    pub force: bool,
    /// Train on the true pairs instead of a coupling (the upper reference): rows with equal
    /// --ids1/--ids2 are the same unit.
    #[arg(long, conflicts_with = "run", requires_all = ["ids1", "ids2"], help_heading = INPUTS)]
    pub true_pairs: bool,
    /// Unit ids of modality 1 (FILE, FILE:COLUMN, obs:COLUMN or obs_names), for --true-pairs.
    #[arg(long, value_name = "U1", help_heading = INPUTS)]
    pub ids1: Option<String>,
    /// Unit ids of modality 2.
    #[arg(long, value_name = "U2", help_heading = INPUTS)]
    pub ids2: Option<String>,
    /// Image stacks are n × H × W × C.
    #[arg(long, help_heading = INPUTS, hide_short_help = true)]
    pub channels_last: bool,
    #[command(flatten)]
    #[serde(flatten)]
    pub anndata: AnnDataArgs,
    /// Loss on the partners.
    #[arg(long, value_enum, default_value_t = LossArg::Unbiased, help_heading = TRAINING)]
    pub loss: LossArg,
    /// Hidden layer widths of the MLP, comma-separated.
    #[arg(long, value_name = "W,W", value_delimiter = ',', default_values_t = [256usize, 256], help_heading = TRAINING)]
    pub hidden: Vec<usize>,
    /// Epoch cap (early stopping on the validation loss usually ends sooner).
    #[arg(long, value_name = "N", default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..), help_heading = TRAINING)]
    pub epochs: u64,
    /// Adam's learning rate.
    #[arg(long, default_value_t = 1e-3, value_parser = crate::flags::positive_f64, help_heading = TRAINING)]
    pub lr: f64,
    /// Mini-batch of modality-1 rows [default: rows/16 as a power of two in 32..256].
    #[arg(long, value_name = "B", value_parser = clap::value_parser!(u64).range(1..), help_heading = TRAINING, hide_short_help = true)]
    pub batch_size: Option<u64>,
    /// Candidate couplings, comma-separated: multiples of the run's λ (re-solved on the run's
    /// scores; `1` is the run's own coupling) and `random` (the uniform coupling, trained with
    /// the mse loss, whose optimum there is each group's mean). The
    /// predictor with the lowest validation pseudo-pair MSE (held-out modality-1 rows against
    /// partners drawn from each candidate) is kept.
    #[arg(long, value_name = "LIST", value_delimiter = ',', default_values_t = default_grid(), help_heading = COUPLING)]
    pub epsilon_grid: Vec<String>,
    /// Seed of the predictor's initialisation, validation split, batches and partner draws.
    #[arg(long, default_value_t = 0, help_heading = TRAINING)]
    pub seed: u64,
    #[command(flatten)]
    #[serde(flatten)]
    pub hardware: HardwareArgs,
}

/// The default candidates of `--epsilon-grid`.
pub fn default_grid() -> Vec<String> {
    ["1", "4", "16", "random"].map(String::from).to_vec()
}

/// One candidate coupling of the grid.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Candidate {
    /// `factor ×` the run's λ (1: the run's own coupling, no solve).
    Scaled(f64),
    /// The uniform coupling within each group.
    Random,
}

impl Candidate {
    fn parse(text: &str) -> Result<Candidate> {
        if text.trim() == "random" {
            return Ok(Candidate::Random);
        }
        match text.trim().parse::<f64>() {
            Ok(f) if f.is_finite() && f > 0.0 => Ok(Candidate::Scaled(f)),
            _ => bail!(
                "--epsilon-grid: {text:?} is neither a positive multiple of the run's λ nor `random`"
            ),
        }
    }

    fn name(&self) -> String {
        match self {
            Candidate::Scaled(f) => format!("{f}×λ"),
            Candidate::Random => "random".into(),
        }
    }
}

/// What `predictor.json`'s provenance records of each candidate.
#[derive(Debug, Serialize)]
struct CandidateReport {
    trial: usize,
    coupling: String,
    /// The run's option `epsilon` times the factor (None for random and true pairs).
    epsilon: Option<f64>,
    /// The loss it was trained with (`mse` for the uniform coupling).
    loss: PredictionLoss,
    /// Eq. 9 on the validation rows (per standardised column).
    validation_loss: f64,
    /// The pseudo-pair MSE on the validation rows: what the candidates are compared by.
    validation_pair_mse: f64,
    best_epoch: usize,
    epochs_run: usize,
}

pub fn run_predict(args: PredictArgs) -> Result<()> {
    let x1 = read_features(&args.x1, &args.anndata.modality(1), args.channels_last)?;
    let x2 = read_features(&args.x2, &args.anndata.modality(2), args.channels_last)?;
    let spec = PredictorSpec {
        hidden: args.hidden.clone(),
        loss: match args.loss {
            LossArg::Unbiased => PredictionLoss::Unbiased,
            LossArg::Mse => PredictionLoss::Mse,
        },
        learning_rate: args.lr,
        batch_size: args.batch_size.map(|b| b as usize),
        epochs: args.epochs as usize,
        seed: args.seed,
        ..PredictorSpec::default()
    };
    spec.validate().map_err(|m| anyhow::anyhow!("{m}"))?;
    let out = OutputDir::create(&args.out, args.force)?;
    let hardware = Hardware::select(args.hardware.backend)?;
    let device = hardware.learn_device()?;
    let options = serde_json::to_value(&args)?;
    let (run, reports) = if args.true_pairs {
        let partners = true_partners(&args, x1.rows(), x2.rows())?;
        tracing::info!(
            "training on the true pairs ({} of {} modality-1 rows paired) with {}",
            partners.0.iter().flatten().count(),
            x1.rows(),
            hardware.learn_name()
        );
        let run = train_one(&spec, &x1, &x2, &partners, 0, "true pairs", &device)?;
        (run, Vec::new())
    } else {
        let dir = args.run.as_ref().expect("clap: --run or --true-pairs");
        let grid: Vec<Candidate> = args
            .epsilon_grid
            .iter()
            .map(|t| Candidate::parse(t))
            .collect::<Result<_>>()?;
        select_coupling(
            dir,
            &grid,
            &spec,
            (&args.x1, &x1),
            (&args.x2, &x2),
            &hardware,
            &args,
        )?
    };
    let mut predictor = run.predictor;
    predictor.card.provenance = serde_json::json!({
        "options": options,
        "candidates": reports,
    });
    predictor.save(out.staging_dir())?;
    write_records(&out, &run.records)?;
    out.commit()?;
    tracing::info!(
        "wrote {} (best epoch {} of {}; validation Eq. 9 {:.4}, pseudo-pair MSE {:.4} per \
         standardised column, where 1 is the loss of predicting each column's mean)",
        args.out.display(),
        predictor.card.best_epoch,
        predictor.card.epochs_run,
        predictor.card.best_validation_loss,
        predictor.card.best_validation_pair_mse
    );
    Ok(())
}

/// Trains one predictor per candidate coupling of the run in `dir` and keeps the one with the
/// lowest validation loss; every run's epochs go to `training.csv`.
fn select_coupling(
    dir: &Path,
    grid: &[Candidate],
    spec: &PredictorSpec,
    (path1, x1): (&Path, &Features),
    (path2, x2): (&Path, &Features),
    hardware: &Hardware,
    args: &PredictArgs,
) -> Result<(PredictorRun, Vec<CandidateReport>)> {
    let loaded = psa_io::read_run(dir)?;
    let manifest = loaded.manifest.clone();
    for (path, rows, expected, which) in [
        (path1, x1.rows(), manifest.n1_total, 1),
        (path2, x2.rows(), manifest.n2_total, 2),
    ] {
        if rows != expected {
            bail!(
                "{}: {rows} rows, but the run {} has {expected} modality-{which} rows; give \
                 features whose rows are the run's input rows",
                path.display(),
                dir.display()
            );
        }
    }
    let ot = manifest.method == Method::Ot;
    if !ot
        && grid
            .iter()
            .any(|c| matches!(c, Candidate::Scaled(f) if *f != 1.0))
    {
        bail!(
            "--epsilon-grid: the run {} was matched by {}, which has no λ to scale; use \
             --epsilon-grid 1 (its coupling) or 1,random",
            dir.display(),
            manifest.method.name()
        );
    }
    let matcher = hardware.matcher(args.hardware.gpu_cost)?;
    let device = hardware.learn_device()?;
    let problem = loaded.problem.clone();
    let base = run_solve_options(&manifest.options);
    let own = loaded.solved(matcher.as_ref())?;
    let mut best: Option<(f64, PredictorRun)> = None;
    let mut reports = Vec::new();
    let mut records = Vec::new();
    for (trial, &candidate) in grid.iter().enumerate() {
        let resolved: Box<dyn Solved + '_>;
        let solved: &dyn Solved = match candidate {
            Candidate::Scaled(1.0) => own.as_ref(),
            Candidate::Scaled(f) => {
                let options = SolveOptions {
                    epsilon: base.epsilon * f,
                    ..base.clone()
                };
                tracing::info!(
                    "solving the run's problem at {} (λ = {:e}) for candidate {trial}",
                    candidate.name(),
                    options.epsilon
                );
                resolved = psa_core::match_problem(
                    matcher.as_ref(),
                    problem.clone(),
                    Method::Ot,
                    &options,
                    &NoProgress,
                )?;
                resolved.as_ref()
            }
            Candidate::Random => {
                resolved = Box::new(psa_core::CpuSolved::random(problem.clone()));
                resolved.as_ref()
            }
        };
        let partners = CouplingPartners {
            solved,
            seed: spec.seed,
        };
        // The uniform coupling stands for random matching, whose predictor is the group mean
        // of modality 1: the pseudo-pair MSE has exactly that optimum, while under the uniform
        // coupling Eq. 9 (the unbiased loss) sees only each group's average of f and leaves
        // every within-group variation free (benches/RESULTS.md, "Cross-modal prediction").
        let candidate_spec = match candidate {
            Candidate::Random => PredictorSpec {
                loss: PredictionLoss::Mse,
                ..spec.clone()
            },
            Candidate::Scaled(_) => spec.clone(),
        };
        let run = train_one(
            &candidate_spec,
            x1,
            x2,
            &partners,
            trial,
            &format!("predictor on {}", candidate.name()),
            &device,
        )?;
        let loss = run.predictor.card.best_validation_pair_mse;
        tracing::info!(
            "candidate {trial} ({}): validation pseudo-pair MSE {loss:.4}, Eq. 9 {:.4} (best \
             epoch {} of {})",
            candidate.name(),
            run.predictor.card.best_validation_loss,
            run.predictor.card.best_epoch,
            run.predictor.card.epochs_run
        );
        reports.push(CandidateReport {
            trial,
            coupling: candidate.name(),
            epsilon: match candidate {
                Candidate::Scaled(f) if ot => Some(base.epsilon * f),
                _ => None,
            },
            loss: candidate_spec.loss,
            validation_loss: run.predictor.card.best_validation_loss,
            validation_pair_mse: loss,
            best_epoch: run.predictor.card.best_epoch,
            epochs_run: run.predictor.card.epochs_run,
        });
        records.extend(run.records.iter().cloned());
        if best.as_ref().is_none_or(|(b, _)| loss < *b) {
            best = Some((loss, run));
        }
    }
    let (_, mut run) = best.context("--epsilon-grid: no candidate")?;
    let chosen = run.records[0].trial;
    // Only the kept predictor's best epoch stays marked.
    for r in &mut records {
        r.best = r.best && r.trial == chosen;
    }
    run.records = records;
    if grid.len() > 1 {
        tracing::info!(
            "kept candidate {chosen} ({}): the lowest validation pseudo-pair MSE of {}",
            grid[chosen].name(),
            grid.len()
        );
        if grid[chosen] == Candidate::Random {
            tracing::warn!(
                "the uniform coupling predicted best on the validation rows: the run's matching \
                 does not help prediction here (check the classifiers' out-of-sample \
                 cross-entropy in the run's summary)"
            );
        }
    }
    Ok((run, reports))
}

/// The OT options the run was solved with (its `summary.json` options): λ, its mode, the
/// unbalanced strength; solver defaults for the rest.
fn run_solve_options(options: &serde_json::Map<String, serde_json::Value>) -> SolveOptions {
    let defaults = SolveOptions::default();
    let number = |key: &str| options.get(key).and_then(serde_json::Value::as_f64);
    SolveOptions {
        epsilon: number("epsilon").unwrap_or(defaults.epsilon),
        epsilon_mode: match options.get("epsilon_relative").and_then(|v| v.as_bool()) {
            Some(true) => EpsilonMode::Relative,
            _ => EpsilonMode::Absolute,
        },
        unbalanced: number("unbalanced"),
        tol: number("tol").unwrap_or(defaults.tol),
        max_iter: number("max_iter").map_or(defaults.max_iter, |v| v as usize),
        ..defaults
    }
}

/// Trains one predictor behind a progress bar.
fn train_one(
    spec: &PredictorSpec,
    x1: &Features,
    x2: &Features,
    partners: &dyn PartnerDraws,
    trial: usize,
    message: &str,
    device: &psa_learn::Device,
) -> Result<PredictorRun> {
    let bar = logging::progress_bar(spec.epochs as u64, message);
    let observer = Bar(bar.clone());
    let run = psa_learn::train_predictor(spec, x1, x2, partners, trial, device, &observer)?;
    bar.finish_and_clear();
    Ok(run)
}

struct Bar(indicatif::ProgressBar);

impl PredictObserver for Bar {
    fn epoch_done(&self, record: &PredictorEpoch) {
        self.0.inc(1);
        self.0
            .set_message(format!("validation loss {:.4}", record.validation_loss));
    }
}

/// Each modality-1 row's true partner from the ids (rows whose id is not in modality 2 have
/// none; ids must be unique within a modality).
fn true_partners(args: &PredictArgs, n1: usize, n2: usize) -> Result<TruePartners> {
    let spec1 = args
        .ids1
        .as_deref()
        .expect("clap: --true-pairs requires --ids1");
    let spec2 = args
        .ids2
        .as_deref()
        .expect("clap: --true-pairs requires --ids2");
    let ids1 = read_ids(spec1, &args.x1)?;
    let ids2 = read_ids(spec2, &args.x2)?;
    if ids1.len() != n1 || ids2.len() != n2 {
        bail!(
            "--ids1 has {} ids for {n1} rows of {}, --ids2 {} for {n2} rows of {}",
            ids1.len(),
            args.x1.display(),
            ids2.len(),
            args.x2.display()
        );
    }
    let mut position = std::collections::HashMap::with_capacity(n2);
    for (j, id) in ids2.iter().enumerate() {
        if position.insert(id.as_str(), j).is_some() {
            bail!("--ids2 {spec2}: id {id:?} appears more than once (row {j})");
        }
    }
    Ok(TruePartners(
        ids1.iter()
            .map(|id| position.get(id.as_str()).copied())
            .collect(),
    ))
}

/// `training.csv`: one row per epoch of every candidate (`trial`), `best` on the kept one.
fn write_records(out: &OutputDir, records: &[PredictorEpoch]) -> Result<()> {
    psa_io::write_atomic(&out.path("training.csv"), |w| {
        psa_learn::write_predictor_csv(w, records)
    })?;
    Ok(())
}

/// Predict modality-1 rows for new modality-2 rows with a saved predictor.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// A directory written by `psa predict`.
    #[arg(long, value_name = "MODEL_DIR")]
    pub model: PathBuf,
    /// Modality-2 rows (.npy, .csv, .h5ad), in the form the predictor was trained on.
    #[arg(long, value_name = "X2")]
    pub x2: PathBuf,
    /// Predictions, float64 n × d1 (.npy). With an .h5ad X2, an .h5ad beside it (same stem)
    /// holds them in obsm["psa_prediction"] under X2's obs_names.
    #[arg(long, value_name = "Y1.npy")]
    pub out: PathBuf,
    #[command(flatten)]
    pub h5ad: H5adChoice,
    /// Image stacks are n × H × W × C.
    #[arg(long, hide_short_help = true)]
    pub channels_last: bool,
    #[command(flatten)]
    pub hardware: HardwareArgs,
}

pub fn run_apply(args: ApplyArgs) -> Result<()> {
    let x2 = read_features(&args.x2, &args.h5ad, args.channels_last)?;
    let hardware = Hardware::select(args.hardware.backend)?;
    let device = hardware.learn_device()?;
    let predictor = TrainedPredictor::load(&args.model, &device)?;
    let prediction = predictor
        .predict(x2, &device)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.x2.display()))?;
    psa_io::write_npy_f64(&args.out, prediction.view())?;
    let mut written = vec![args.out.display().to_string()];
    if psa_io::is_h5ad(&args.x2) {
        let names = psa_io::read_h5ad_obs_names(&args.x2)?;
        let path = args.out.with_extension("h5ad");
        let options = serde_json::json!({
            "model": args.model.display().to_string(),
            "x2": args.x2.display().to_string(),
        });
        psa_io::write_predictions_h5ad(&path, &names, prediction.view(), &options)?;
        written.push(path.display().to_string());
    }
    tracing::info!(
        "wrote {} ({} rows × {} columns)",
        written.join(" and "),
        prediction.nrows(),
        prediction.ncols()
    );
    Ok(())
}

/// Score predicted modality-1 rows against real ones.
#[derive(Debug, Args)]
pub struct EvaluatePredictionArgs {
    /// Predictions (.npy, .csv or .h5ad), n × d.
    #[arg(long, value_name = "Y1")]
    pub pred: PathBuf,
    /// Real modality-1 rows, m × d. With as many rows as --pred, row i is taken as the true
    /// pair of prediction i and R² is reported.
    #[arg(long, value_name = "X1")]
    pub truth: PathBuf,
    /// Labels of both (when they have the same rows): per-group distances.
    #[arg(long, value_name = "L")]
    pub labels: Option<String>,
    /// Labels of the predictions' rows (e.g. the modality-2 labels).
    #[arg(
        long,
        value_name = "L2",
        conflicts_with = "labels",
        requires = "truth_labels"
    )]
    pub pred_labels: Option<String>,
    /// Labels of the truth's rows.
    #[arg(
        long,
        value_name = "L1",
        conflicts_with = "labels",
        requires = "pred_labels"
    )]
    pub truth_labels: Option<String>,
    /// The rows are not pairs: skip R² even when the row counts agree.
    #[arg(long)]
    pub unpaired: bool,
    /// Also write the metrics as JSON.
    #[arg(long, value_name = "FILE.json")]
    pub out: Option<PathBuf>,
    /// .h5ad: read this layer of --truth instead of X.
    #[arg(long, value_name = "NAME", help_heading = ANNDATA)]
    pub layer: Option<String>,
    /// .h5ad: read this obsm of --truth instead of X.
    #[arg(long, value_name = "NAME", help_heading = ANNDATA, conflicts_with = "layer")]
    pub obsm: Option<String>,
}

/// What `psa evaluate-prediction` reports.
#[derive(Debug, Serialize)]
struct PredictionReport {
    rows_pred: usize,
    rows_truth: usize,
    r2: Option<f64>,
    distances: Option<psa_core::prediction::Distances>,
}

pub fn run_evaluate_prediction(args: EvaluatePredictionArgs) -> Result<()> {
    let pred = read_plain(&args.pred, &H5adChoice::default())?;
    let truth_choice = H5adChoice {
        layer: args.layer.clone(),
        obsm: args.obsm.clone(),
    };
    let truth = read_plain(&args.truth, &truth_choice)?;
    let paired = !args.unpaired && pred.nrows() == truth.nrows();
    let r2 = if paired {
        Some(psa_core::prediction::r2(pred.view(), truth.view())?)
    } else {
        None
    };
    let labels = match (&args.labels, &args.pred_labels, &args.truth_labels) {
        (Some(l), _, _) => {
            if pred.nrows() != truth.nrows() {
                bail!(
                    "--labels gives one label per row of both, but --pred has {} rows and \
                     --truth {}; use --pred-labels and --truth-labels",
                    pred.nrows(),
                    truth.nrows()
                );
            }
            let l = read_labels(l, &args.truth)?;
            Some((l.clone(), l))
        }
        (None, Some(lp), Some(lt)) => {
            Some((read_labels(lp, &args.pred)?, read_labels(lt, &args.truth)?))
        }
        _ => None,
    };
    let distances = match &labels {
        Some((lp, lt)) => Some(psa_core::prediction::distances(
            pred.view(),
            lp,
            truth.view(),
            lt,
        )?),
        None => {
            let all = |n| vec![String::from("all"); n];
            Some(psa_core::prediction::distances(
                pred.view(),
                &all(pred.nrows()),
                truth.view(),
                &all(truth.nrows()),
            )?)
        }
    };
    let report = PredictionReport {
        rows_pred: pred.nrows(),
        rows_truth: truth.nrows(),
        r2,
        distances,
    };
    print_report(&report);
    if let Some(path) = &args.out {
        psa_io::write_json(path, &report)?;
    }
    Ok(())
}

fn read_plain(path: &Path, h5ad: &H5adChoice) -> Result<Array2<f64>> {
    let x = if psa_io::is_h5ad(path) {
        psa_io::read_h5ad_matrix(path, &h5ad.matrix())?
    } else {
        psa_io::read_matrix(path)?
    };
    if let Some(((row, column), v)) = x.indexed_iter().find(|(_, v)| !v.is_finite()) {
        bail!(
            "{}: row {row}, column {column} is {v}; predictions and truth must be finite",
            path.display()
        );
    }
    Ok(x)
}

fn print_report(report: &PredictionReport) {
    let fmt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.4}"));
    let mut lines = vec![format!(
        "{} predicted rows, {} real rows",
        report.rows_pred, report.rows_truth
    )];
    if let Some(r2) = report.r2 {
        lines.push(format!("R² {r2:.4} (row i of both is one unit)"));
    }
    if let Some(d) = &report.distances {
        lines.push(format!(
            "{:<16} {:>7} {:>7} {:>10} {:>10} {:>10}",
            "group", "n_pred", "n_true", "mean L2", "sliced W1", "KL"
        ));
        for g in &d.groups {
            lines.push(format!(
                "{:<16} {:>7} {:>7} {:>10} {:>10} {:>10}",
                g.label,
                g.n_pred,
                g.n_truth,
                fmt(g.mean_l2),
                fmt(g.sliced_w1),
                fmt(g.kl)
            ));
        }
        lines.push(format!(
            "{:<16} {:>7} {:>7} {:>10} {:>10} {:>10}",
            "weighted mean",
            "",
            "",
            fmt(d.mean_l2),
            fmt(d.sliced_w1),
            fmt(d.kl)
        ));
    }
    logging::suspend(|| println!("{}", lines.join("\n")));
}

//! `psa train` (one modality's classifier, saved) and `psa score` (its logits for new rows).
//!
//! For matching, prefer `psa match --x1 … --x2 …`, which cross-fits: a model scoring the very
//! rows it trained on gives in-sample, over-confident scores.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use psa_io::OutputDir;
use psa_learn::{Classes, TrainedModel};

use crate::classify::{BarObserverOnce, ModelArgs, write_monitor};
use crate::flags::{H5adChoice, HardwareArgs, SeedArg};
use crate::hardware::Hardware;
use crate::inputs::{read_features, read_labels};

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Features (.npy n × d or image stack n × C × H × W, .csv, or .h5ad).
    #[arg(long, value_name = "X")]
    pub x: PathBuf,
    /// Labels t, one per row (FILE, FILE:COLUMN, or obs:COLUMN of an .h5ad).
    #[arg(long, value_name = "L")]
    pub labels: String,
    /// Model directory to write: model.bpk (burn weights), model.json (spec, classes in
    /// output order, standardisation), training.csv, training.png.
    #[arg(long, value_name = "MODEL_DIR")]
    pub out: PathBuf,
    /// Replace MODEL_DIR even if it holds files psa did not write (they are deleted).
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub h5ad: H5adChoice,
    /// Image stacks are n × H × W × C.
    #[arg(long)]
    pub channels_last: bool,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub seed: SeedArg,
    #[command(flatten)]
    pub hardware: HardwareArgs,
}

pub fn run_train(args: TrainArgs) -> Result<()> {
    let out = OutputDir::create(&args.out, args.force)?;
    let features = read_features(&args.x, &args.h5ad, args.channels_last)?;
    let labels = read_labels(&args.labels, &args.x)?;
    psa_io::check_rows(
        std::path::Path::new(&args.labels),
        labels.len(),
        &args.x,
        features.rows(),
    )?;
    let classes = Classes::from_labels(&labels);
    if classes.len() < 2 {
        bail!("{}: a classifier needs at least 2 labels", args.labels);
    }
    let class_of_row = classes.indices(&labels)?;
    let spec = args.model.spec(features.shape(), args.seed.seed)?;
    let hardware = Hardware::select(args.hardware.backend)?;
    let device = hardware.learn_device()?;
    tracing::info!(
        "training on {} rows, {} labels, with {}",
        features.rows(),
        classes.len(),
        hardware.learn_name()
    );
    let observer = BarObserverOnce::new(spec.training.epochs as u64, "training classifier");
    let (model, run) = psa_learn::train_model(
        &spec,
        features,
        &classes,
        &class_of_row,
        &device,
        "1",
        &observer,
    )
    .with_context(|| format!("{} (labels {})", args.x.display(), args.labels))?;
    observer.finish();
    model.save(out.staging_dir())?;
    let baseline = model
        .card
        .validation_baseline_cross_entropy
        .unwrap_or(f64::NAN);
    write_monitor(&out, &run.records, &[("1", baseline)])?;
    out.commit()?;
    tracing::info!(
        "wrote {} (best epoch {} of {}, validation cross-entropy {:.4}, label-frequency \
         baseline {:.4}, temperature {:.2})",
        args.out.display(),
        run.best_epoch,
        run.epochs_run,
        run.best_validation_cross_entropy,
        baseline,
        model.card.temperature
    );
    let learned = run.best_validation_cross_entropy < baseline;
    if !learned {
        tracing::warn!(
            "this classifier learned nothing: its validation cross-entropy does not beat the \
             label-frequency baseline, and scores from it are random"
        );
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct ScoreArgs {
    /// A directory written by `psa train`.
    #[arg(long, value_name = "MODEL_DIR")]
    pub model: PathBuf,
    /// Rows to score, in the form the model was trained on.
    #[arg(long, value_name = "X")]
    pub x: PathBuf,
    /// Output: logits, float64 n × T, columns in the order of model.json's classes.
    #[arg(long, value_name = "S.npy")]
    pub out: PathBuf,
    #[command(flatten)]
    pub h5ad: H5adChoice,
    /// Image stacks are n × H × W × C.
    #[arg(long)]
    pub channels_last: bool,
    #[command(flatten)]
    pub hardware: HardwareArgs,
}

pub fn run_score(args: ScoreArgs) -> Result<()> {
    let features = read_features(&args.x, &args.h5ad, args.channels_last)?;
    let hardware = Hardware::select(args.hardware.backend)?;
    let device = hardware.learn_device()?;
    let model = TrainedModel::load(&args.model, &device)?;
    let logits = model
        .score(features, &device)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.x.display()))?;
    psa_io::write_npy_f64(&args.out, logits.view())?;
    tracing::info!(
        "wrote {} ({} rows × {} classes: {})",
        args.out.display(),
        logits.nrows(),
        logits.ncols(),
        model.card.classes.labels.join(", ")
    );
    Ok(())
}

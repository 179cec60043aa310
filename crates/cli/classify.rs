//! The classifier flags shared by `psa match --x1 … --x2 …`, `psa train` and `psa demo`, the
//! progress bars, and the monitor files (`training.csv`, `training.png`). The classifier step
//! itself (standardisation, label set, cross-fitting, calibration, checks) is psa-learn's.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use psa_io::OutputDir;
use psa_learn::{
    Activation, Classes, CrossFitConfig, CrossFitted, EncoderSpec, EpochRecord, Features,
    InputShape, Labelled, ModelSpec, Preset, Schedule, TrainObserver, TuneGrid,
};
use serde::Serialize;

use crate::logging;

/// The classifier's architecture and training (defaults: the paper's, METHOD.md step 1).
#[derive(Clone, Debug, Default, Args, Serialize)]
pub struct ModelArgs {
    /// Model spec as a JSON or TOML file ({"encoder": {"kind": "mlp", "hidden": [64, 64]},
    /// "training": {...}}); flags below override its training values.
    #[arg(long, value_name = "FILE", help_heading = "Classifier")]
    pub model_spec: Option<PathBuf>,
    /// Settings preset [default: psa's measured default, an MLP (on the pixels for images)].
    #[arg(long, value_enum, help_heading = "Classifier")]
    pub preset: Option<PresetArg>,
    /// MLP hidden layer sizes, e.g. 1024,1024 (replaces the preset's encoder by an MLP).
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "SIZES",
        help_heading = "Classifier"
    )]
    pub hidden: Option<Vec<usize>>,
    /// CNN channels per strided conv layer, e.g. 32,64,128 (replaces the encoder by a CNN).
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "CHANNELS",
        conflicts_with = "hidden",
        help_heading = "Classifier"
    )]
    pub conv_channels: Option<Vec<usize>>,
    /// MLP dropout probability [default: the preset's].
    #[arg(long, help_heading = "Classifier")]
    pub dropout: Option<f64>,
    /// Activation between layers [default: the preset's].
    #[arg(long, value_enum, help_heading = "Classifier")]
    pub activation: Option<ActivationArg>,
    /// No BatchNorm after each layer.
    #[arg(long, help_heading = "Classifier")]
    pub no_batch_norm: bool,
    /// Adam's (peak) learning rate [default: 1e-3; paper: 1e-4].
    #[arg(long, help_heading = "Training")]
    pub lr: Option<f64>,
    /// L2 weight decay [default: 0].
    #[arg(long, help_heading = "Training")]
    pub weight_decay: Option<f64>,
    /// Mini-batch size [default: a sixteenth of the training rows as a power of two in
    /// 32..=256; paper: 256].
    #[arg(long, help_heading = "Training")]
    pub batch_size: Option<usize>,
    /// Maximum epochs [default: 200; paper: 100].
    #[arg(long, help_heading = "Training")]
    pub epochs: Option<usize>,
    /// Early stopping: epochs without a better validation cross-entropy [default: 15; paper: 10].
    #[arg(long, help_heading = "Training")]
    pub patience: Option<usize>,
    /// Early stopping never ends a run before this many epochs (nor before a one-cycle warm-up
    /// ends) [default: 10].
    #[arg(long, help_heading = "Training")]
    pub min_epochs: Option<usize>,
    /// Learning-rate schedule [default: constant; paper: one-cycle].
    #[arg(long, value_enum, help_heading = "Training")]
    pub schedule: Option<ScheduleArg>,
    /// Share of the training rows held back to pick the checkpoint [default: 0.1].
    #[arg(long, help_heading = "Training")]
    pub validation_fraction: Option<f64>,
    /// Do not standardise features (per feature; per channel for images).
    #[arg(long, help_heading = "Training")]
    pub no_standardize: bool,
    /// Do not calibrate each model's logits (temperature scaling on its validation rows).
    #[arg(long, help_heading = "Training")]
    pub no_calibrate: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PresetArg {
    /// psa's measured default (benches/RESULTS.md): an MLP, on the pixels for images;
    /// Adam lr 1e-3, constant, batch scaled to the rows, calibrated.
    Default,
    /// The paper's settings: its PerturbSeq MLP (features) or CNN (images), Adam lr 1e-4,
    /// one-cycle, batch 256, 100 epochs, patience 10, no calibration.
    Paper,
    /// MLP 2×64, BatchNorm, ReLU, dropout 0.1 (the paper's PerturbSeq model).
    Tabular,
    /// MLP 5×1024, BatchNorm, ReLU (the paper's CITE-seq model).
    Citeseq,
    /// CNN, channels 32/64/128/256/512, BatchNorm, LeakyReLU (the paper's image model).
    Images,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActivationArg {
    Relu,
    LeakyRelu,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScheduleArg {
    OneCycle,
    Constant,
}

impl ModelArgs {
    /// The spec for inputs of `input` shape: file or preset, then the flags.
    pub fn spec(&self, input: InputShape, seed: u64) -> Result<ModelSpec> {
        let mut spec = match &self.model_spec {
            Some(path) => ModelSpec::from_file(path)?,
            None => match self.preset.unwrap_or(PresetArg::Default) {
                PresetArg::Default => Preset::Default,
                PresetArg::Paper => Preset::Paper,
                PresetArg::Tabular => Preset::Tabular,
                PresetArg::Citeseq => Preset::CiteSeq,
                PresetArg::Images => Preset::Images,
            }
            .spec(input),
        };
        self.override_encoder(&mut spec.encoder);
        let t = &mut spec.training;
        t.learning_rate = self.lr.unwrap_or(t.learning_rate);
        t.weight_decay = self.weight_decay.unwrap_or(t.weight_decay);
        t.batch_size = self.batch_size.or(t.batch_size);
        t.epochs = self.epochs.unwrap_or(t.epochs);
        t.patience = self.patience.unwrap_or(t.patience);
        t.min_epochs = self.min_epochs.unwrap_or(t.min_epochs);
        t.validation_fraction = self.validation_fraction.unwrap_or(t.validation_fraction);
        if let Some(s) = self.schedule {
            t.schedule = match s {
                ScheduleArg::OneCycle => Schedule::OneCycle,
                ScheduleArg::Constant => Schedule::Constant,
            };
        }
        t.standardize &= !self.no_standardize;
        t.calibrate &= !self.no_calibrate;
        t.seed = seed;
        if let Err(message) = spec.validate() {
            bail!("classifier options: {message}");
        }
        Ok(spec)
    }

    fn override_encoder(&self, encoder: &mut EncoderSpec) {
        if let Some(hidden) = &self.hidden {
            *encoder = EncoderSpec::Mlp {
                hidden: hidden.clone(),
                batch_norm: true,
                dropout: 0.0,
                activation: Activation::Relu,
            };
        }
        if let Some(channels) = &self.conv_channels {
            *encoder = EncoderSpec::Cnn {
                channels: channels.clone(),
                batch_norm: true,
                activation: Activation::LeakyRelu,
            };
        }
        let activation_flag = self.activation.map(|a| match a {
            ActivationArg::Relu => Activation::Relu,
            ActivationArg::LeakyRelu => Activation::LeakyRelu,
        });
        match encoder {
            EncoderSpec::Mlp {
                batch_norm,
                dropout,
                activation,
                ..
            } => {
                *dropout = self.dropout.unwrap_or(*dropout);
                *activation = activation_flag.unwrap_or(*activation);
                *batch_norm &= !self.no_batch_norm;
            }
            EncoderSpec::Cnn {
                batch_norm,
                activation,
                ..
            } => {
                *activation = activation_flag.unwrap_or(*activation);
                *batch_norm &= !self.no_batch_norm;
            }
        }
    }
}

/// How scores are made out of sample.
#[derive(Clone, Debug, Args, Serialize)]
pub struct CrossFitArgs {
    /// K-fold cross-fitting: every row is scored by a model trained on the other K − 1 folds
    /// (stratified by label). 1 = a single held-out part, as in the paper; only it is matched.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..), help_heading = "Classifier")]
    pub folds: u64,
    /// With --folds 1: share of each label held out, scored and matched.
    #[arg(long, default_value_t = 0.2, help_heading = "Classifier")]
    pub holdout_fraction: f64,
    /// Allow labels present in only one modality (otherwise an error): they are classes of
    /// both classifiers but are left unmatched.
    #[arg(long, help_heading = "Classifier")]
    pub allow_missing_labels: bool,
    /// A fold whose classifier does not beat the label-frequency baseline is an error (by
    /// default a warning, recorded in summary.json).
    #[arg(long, help_heading = "Classifier")]
    pub strict: bool,
    /// Cross-fit a small grid (learning rate ×⅓, ×1, ×3; width ×1, ×4; weight decay 0, 1e-3)
    /// and keep the setting with the lowest mean validation cross-entropy (12× the training).
    #[arg(long, help_heading = "Classifier")]
    pub tune: bool,
}

impl CrossFitArgs {
    pub fn config(&self) -> CrossFitConfig {
        CrossFitConfig {
            folds: self.folds as usize,
            holdout_fraction: self.holdout_fraction,
            strict: self.strict,
            tune: self.tune.then(TuneGrid::default),
        }
    }
}

/// One modality as the classifiers take it.
pub struct Modality {
    /// "1" or "2" (also the name in training.csv).
    pub name: String,
    pub source: PathBuf,
    pub features: Features,
    pub labels: Vec<String>,
}

/// The shared label set; a label seen in one modality only is an error unless allowed.
pub fn classes_of(m1: &Modality, m2: &Modality, allow_missing: bool) -> Result<Classes> {
    let name = |m: &Modality| m.source.display().to_string();
    Classes::shared(
        (&name(m1), &m1.labels),
        (&name(m2), &m2.labels),
        allow_missing,
    )
    .map_err(|e| {
        let message = e.to_string();
        anyhow::anyhow!(
            "{}",
            message.replace("set allow_missing", "pass --allow-missing-labels")
        )
    })
}

/// Progress bar over all epochs of a modality's folds (and trials), plus a debug log per epoch.
struct BarObserver {
    bar: indicatif::ProgressBar,
    epochs: u64,
    folds: u64,
}

impl TrainObserver for BarObserver {
    fn fold_started(&self, modality: &str, fold: usize, folds: usize) {
        // Runs are (trial, fold) in order; a new trial starts again at fold 0.
        let done = self.bar.position() / (self.folds * self.epochs).max(1);
        let trial = if fold == 0 && self.bar.position() > 0 {
            done + 1
        } else {
            done
        };
        self.bar
            .set_position((trial * self.folds + fold as u64) * self.epochs);
        self.bar
            .set_message(format!("modality {modality}: fold {}/{folds}", fold + 1));
    }

    fn epoch_done(&self, r: &EpochRecord) {
        self.bar.inc(1);
        tracing::debug!(
            modality = %r.modality,
            fold = r.fold,
            epoch = r.epoch,
            trial = r.trial,
            "train CE {:.4} acc {:.3} | validation CE {:.4} acc {:.3}{}",
            r.train_cross_entropy,
            r.train_accuracy,
            r.validation_cross_entropy,
            r.validation_accuracy,
            if r.best { " (best)" } else { "" }
        );
    }
}

/// Cross-fits one modality's classifier (psa-learn's classifier step) behind a progress bar.
pub fn cross_fit_modality(
    modality: &Modality,
    classes: &Classes,
    spec: &ModelSpec,
    cv: CrossFitConfig,
    device: &psa_learn::Device,
) -> Result<CrossFitted> {
    let class_of_row = classes.indices(&modality.labels)?;
    let data = Labelled {
        features: &modality.features,
        classes: &class_of_row,
        n_classes: classes.len(),
    };
    let epochs = spec.training.epochs as u64;
    let trials = cv.tune.as_ref().map_or(1, |g| g.settings(spec).len()) as u64;
    let bar = logging::progress_bar(
        trials * cv.folds as u64 * epochs,
        &format!("training classifier {}", modality.name),
    );
    let observer = BarObserver {
        bar: bar.clone(),
        epochs,
        folds: cv.folds as u64,
    };
    let fitted = psa_learn::cross_fit(spec, &data, cv, device, &modality.name, &observer)
        .with_context(|| format!("modality {} ({})", modality.name, modality.source.display()))?;
    bar.finish_and_clear();
    let q = &fitted.out_of_sample;
    tracing::info!(
        "modality {}: out-of-sample cross-entropy {:.4} (label-frequency baseline {:.4}, log T \
         {:.4}), accuracy {:.3}, {} rows, trained in {:.0} s",
        modality.name,
        q.cross_entropy,
        q.baseline_cross_entropy,
        (classes.len() as f64).ln(),
        q.accuracy,
        q.rows,
        fitted.seconds
    );
    Ok(fitted)
}

/// Writes `training.csv` and `training.png` (validation cross-entropy per epoch and fold, with
/// each modality's label-frequency baseline for reference).
pub fn write_monitor(
    out: &OutputDir,
    records: &[EpochRecord],
    baselines: &[(&str, f64)],
) -> Result<()> {
    psa_io::write_atomic(&out.path("training.csv"), |w| {
        psa_learn::write_training_csv(w, records)
    })?;
    psa_io::write_atomic(&out.path("training.png"), |w| {
        psa_learn::plot_validation_cross_entropy(w, records, baselines)
    })?;
    Ok(())
}

/// A progress bar over one training run's epochs.
pub struct BarObserverOnce(BarObserver);

impl BarObserverOnce {
    pub fn new(epochs: u64, message: &str) -> Self {
        BarObserverOnce(BarObserver {
            bar: logging::progress_bar(epochs, message),
            epochs,
            folds: 1,
        })
    }

    pub fn finish(&self) {
        self.0.bar.finish_and_clear();
    }
}

impl TrainObserver for BarObserverOnce {
    fn epoch_done(&self, record: &EpochRecord) {
        self.0.epoch_done(record);
    }
}

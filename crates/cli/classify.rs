//! The classifier step shared by `psa match --x1 … --x2 …`, `psa train` and `psa demo`:
//! model flags, the label set, K-fold cross-fitting of both modalities, and the monitor files
//! (`training.csv`, `training.png`, `scores{1,2}.npy`).

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::{Args, ValueEnum};
use psa_io::EpochRecord;
use psa_io::OutputDir;
use psa_learn::{
    Activation, Classes, CrossFitConfig, CrossFitted, EncoderSpec, Features, InputShape, Labelled,
    ModelSpec, Preset, Schedule, Standardizer, TrainObserver,
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
    /// Architecture preset [default: images for image stacks, tabular otherwise].
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
    /// Adam's peak learning rate [default: 1e-4].
    #[arg(long, help_heading = "Training")]
    pub lr: Option<f64>,
    /// L2 weight decay [default: 0].
    #[arg(long, help_heading = "Training")]
    pub weight_decay: Option<f64>,
    /// Mini-batch size [default: 256].
    #[arg(long, help_heading = "Training")]
    pub batch_size: Option<usize>,
    /// Maximum epochs [default: 100].
    #[arg(long, help_heading = "Training")]
    pub epochs: Option<usize>,
    /// Early stopping: epochs without a better validation cross-entropy [default: 10].
    #[arg(long, help_heading = "Training")]
    pub patience: Option<usize>,
    /// Learning-rate schedule [default: one-cycle].
    #[arg(long, value_enum, help_heading = "Training")]
    pub schedule: Option<ScheduleArg>,
    /// Share of the training rows held back to pick the checkpoint [default: 0.1].
    #[arg(long, help_heading = "Training")]
    pub validation_fraction: Option<f64>,
    /// Do not standardise features (per feature; per channel for images).
    #[arg(long, help_heading = "Training")]
    pub no_standardize: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PresetArg {
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
            None => {
                let preset = match (self.preset, input) {
                    (Some(PresetArg::Tabular), _) => Preset::Tabular,
                    (Some(PresetArg::Citeseq), _) => Preset::CiteSeq,
                    (Some(PresetArg::Images), _) => Preset::Images,
                    (None, InputShape::Image { .. }) => Preset::Images,
                    (None, InputShape::Flat { .. }) => Preset::Tabular,
                };
                preset.spec()
            }
        };
        self.override_encoder(&mut spec.encoder);
        let t = &mut spec.training;
        t.learning_rate = self.lr.unwrap_or(t.learning_rate);
        t.weight_decay = self.weight_decay.unwrap_or(t.weight_decay);
        t.batch_size = self.batch_size.unwrap_or(t.batch_size);
        t.epochs = self.epochs.unwrap_or(t.epochs);
        t.patience = self.patience.unwrap_or(t.patience);
        t.validation_fraction = self.validation_fraction.unwrap_or(t.validation_fraction);
        if let Some(s) = self.schedule {
            t.schedule = match s {
                ScheduleArg::OneCycle => Schedule::OneCycle,
                ScheduleArg::Constant => Schedule::Constant,
            };
        }
        t.standardize &= !self.no_standardize;
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
}

impl CrossFitArgs {
    pub fn config(&self) -> CrossFitConfig {
        CrossFitConfig {
            folds: self.folds as usize,
            holdout_fraction: self.holdout_fraction,
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
    let classes = Classes::from_labels(m1.labels.iter().chain(&m2.labels));
    let only_in = |a: &Modality, b: &Modality| -> Vec<String> {
        let mut only: Vec<String> = Classes::from_labels(&a.labels)
            .labels
            .into_iter()
            .filter(|l| !b.labels.contains(l))
            .collect();
        only.truncate(10);
        only
    };
    let (only1, only2) = (only_in(m1, m2), only_in(m2, m1));
    let one_sided = !(only1.is_empty() && only2.is_empty());
    if one_sided && !allow_missing {
        let mut parts = Vec::new();
        if !only1.is_empty() {
            parts.push(format!(
                "only in modality 1 ({}): {}",
                m1.source.display(),
                only1.join(", ")
            ));
        }
        if !only2.is_empty() {
            parts.push(format!(
                "only in modality 2 ({}): {}",
                m2.source.display(),
                only2.join(", ")
            ));
        }
        bail!(
            "labels {}; the classifiers need the same labels in both modalities \
             (pass --allow-missing-labels to train on the union and leave those unmatched)",
            parts.join("; ")
        );
    }
    if classes.len() < 2 {
        bail!(
            "a propensity classifier needs at least 2 labels; found {}",
            classes.len()
        );
    }
    Ok(classes)
}

/// Progress bar over all epochs of a modality's folds, plus a debug log per epoch.
struct BarObserver {
    bar: indicatif::ProgressBar,
    epochs: u64,
}

impl TrainObserver for BarObserver {
    fn fold_started(&self, modality: &str, fold: usize, folds: usize) {
        self.bar.set_position(fold as u64 * self.epochs);
        self.bar
            .set_message(format!("modality {modality}: fold {}/{folds}", fold + 1));
    }

    fn epoch_done(&self, r: &EpochRecord) {
        self.bar.inc(1);
        tracing::debug!(
            modality = %r.modality,
            fold = r.fold,
            epoch = r.epoch,
            "train CE {:.4} acc {:.3} | validation CE {:.4} acc {:.3}{}",
            r.train_cross_entropy,
            r.train_accuracy,
            r.validation_cross_entropy,
            r.validation_accuracy,
            if r.best { " (best)" } else { "" }
        );
    }
}

/// Cross-fits one modality's classifier: standardised features, K folds, out-of-sample logits.
pub fn cross_fit_modality(
    modality: &Modality,
    classes: &Classes,
    spec: &ModelSpec,
    cv: CrossFitConfig,
    device: &psa_learn::Device,
) -> Result<CrossFitted> {
    let class_of_row = classes.indices(&modality.labels)?;
    let mut features = modality.features.clone();
    if spec.training.standardize {
        // Label-free, so fitting it on every row leaks nothing into the out-of-sample scores.
        features.standardize(&Standardizer::fit(&features));
    }
    let data = Labelled {
        features: &features,
        classes: &class_of_row,
        n_classes: classes.len(),
    };
    let epochs = spec.training.epochs as u64;
    let bar = logging::progress_bar(
        cv.folds as u64 * epochs,
        &format!("training classifier {}", modality.name),
    );
    let observer = BarObserver {
        bar: bar.clone(),
        epochs,
    };
    let fitted = psa_learn::cross_fit(spec, &data, cv, device, &modality.name, &observer)?;
    bar.finish_and_clear();
    Ok(fitted)
}

/// Writes `training.csv` and `training.png` (validation cross-entropy per epoch and fold, with
/// log T, the cross-entropy of guessing, for reference).
pub fn write_monitor(out: &OutputDir, records: &[EpochRecord], classes: usize) -> Result<()> {
    psa_io::write_training_csv(&out.path("training.csv"), records)?;
    psa_io::plot_validation_cross_entropy(
        &out.path("training.png"),
        records,
        Some((classes as f64).ln()),
    )?;
    Ok(())
}

/// A progress bar over one training run's epochs.
pub struct BarObserverOnce(BarObserver);

impl BarObserverOnce {
    pub fn new(epochs: u64, message: &str) -> Self {
        BarObserverOnce(BarObserver {
            bar: logging::progress_bar(epochs, message),
            epochs,
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

//! # psa-learn — the propensity classifiers
//!
//! METHOD.md step 1: one classifier per modality predicts the experimental label `t` from the
//! features; its out-of-sample logits are the propensity scores that psa-core turns into a
//! [`psa_core::Problem`]. This crate holds
//!
//! * [`ModelSpec`]: MLP or CNN encoder plus training hyper-parameters (JSON/TOML, measured
//!   defaults, [`Preset`]s for the paper's settings and architectures);
//! * [`Classifier`]: the burn network (encoder + linear head to `T` logits);
//! * [`train_run`]: Adam, early stopping that waits for warm-up, best finite validation
//!   checkpoint;
//! * [`cross_fit`]: the classifier step of `psa match`: standardisation, stratified K-fold
//!   cross-fitting (no row is scored by a model that saw it), temperature calibration per fold,
//!   the label-frequency baseline check, and `--tune`'s grid ([`TuneGrid`]);
//! * [`Classes`]: the label set shared by both modalities;
//! * [`train_predictor`]: cross-modal prediction `modality 2 → modality 1` from partners drawn
//!   from a coupling (Sec. 5: the unbiased loss of Eq. 10), [`TrainedPredictor`] to save, load
//!   and apply it;
//! * [`TrainedModel`]: save/load (`model.bpk` + `model.json`) and scoring new data;
//! * the validation monitor: [`EpochRecord`], [`write_training_csv`] and
//!   [`plot_validation_cross_entropy`] (`training.csv`, `training.png`);
//! * [`cpu_device`] / [`shared_wgpu_device`]: burn's NdArray or wgpu backend, the latter on the
//!   wgpu device psa's own kernels use.
//!
//! Not here: file formats and paths (psa-io), matching (psa-core, psa-gpu), command-line parsing.
//!
//! ```no_run
//! use psa_learn::{Classes, CrossFitConfig, Features, Labelled, NoObserver, Preset, cpu_device, cross_fit};
//! let x = ndarray::Array2::<f64>::zeros((100, 5));
//! let labels: Vec<String> = (0..100).map(|i| (i % 2).to_string()).collect();
//! let classes = Classes::from_labels(&labels);
//! let class_of_row = classes.indices(&labels).unwrap();
//! let features = Features::from_matrix(x.view());
//! let data = Labelled { features: &features, classes: &class_of_row, n_classes: classes.len() };
//! let spec = Preset::Default.spec(features.shape());
//! let fitted = cross_fit(&spec, &data, CrossFitConfig::default(),
//!                        &cpu_device(), "rna", &NoObserver).unwrap();
//! assert_eq!(fitted.logits.dim(), (100, 2));
//! println!("out-of-sample cross-entropy {:.3} (baseline {:.3})",
//!          fitted.out_of_sample.cross_entropy, fitted.out_of_sample.baseline_cross_entropy);
//! ```

mod calibrate;
mod crossfit;
mod data;
mod device;
mod error;
mod model;
mod monitor;
mod persist;
mod predict;
mod spec;
mod train;
mod tune;

pub use calibrate::{
    Quality, TEMPERATURE_RANGE, cross_entropy_and_hit, fit_temperature, label_frequencies,
};
pub use crossfit::{CrossFitConfig, CrossFitted, FoldReport, cross_fit, score_rows};
pub use data::{
    Classes, Features, InputShape, Standardizer, logits_matrix, stratified_folds, stratified_split,
};
pub use device::cpu_device;
#[cfg(feature = "wgpu")]
pub use device::shared_wgpu_device;
pub use error::LearnError;
pub use model::Classifier;
pub use monitor::{
    EpochRecord, PLOT_HEIGHT, PLOT_WIDTH, plot_validation_cross_entropy, write_training_csv,
};
pub use persist::{CARD_FILE, ModelCard, TrainedModel, WEIGHTS_FILE, train_model};
pub use predict::{
    CouplingPartners, PREDICTOR_CARD_FILE, PREDICTOR_WEIGHTS_FILE, PartnerDraws, PredictObserver,
    PredictionLoss, PredictorCard, PredictorEpoch, PredictorRun, PredictorSpec, TrainedPredictor,
    TruePartners, eq9_u_statistic, mse_loss, train_predictor, unbiased_loss, write_predictor_csv,
};
pub use spec::{
    Activation, EncoderSpec, LEAKY_RELU_SLOPE, ModelSpec, Preset, Schedule, TrainingSpec,
};
pub use train::{
    Labelled, RunTag, Stop, TrainedRun, epoch_seconds, evaluate, predict_logits, train_run,
};
pub use tune::{TrialReport, TuneGrid};

pub use burn::tensor::Device;

/// Progress of a training job, for progress bars and logs. Called from the training thread.
pub trait TrainObserver {
    /// A fold (or the only run) begins.
    fn fold_started(&self, _modality: &str, _fold: usize, _folds: usize) {}
    /// An epoch finished; `record` is what goes into `training.csv`.
    fn epoch_done(&self, _record: &EpochRecord) {}
}

/// A [`TrainObserver`] that ignores everything.
pub struct NoObserver;
impl TrainObserver for NoObserver {}

//! # psa-learn — the propensity classifiers
//!
//! METHOD.md step 1: one classifier per modality predicts the experimental label `t` from the
//! features; its out-of-sample logits are the propensity scores that psa-core turns into a
//! [`psa_core::Problem`]. This crate holds
//!
//! * [`ModelSpec`]: MLP or CNN encoder plus training hyper-parameters (JSON/TOML, paper
//!   defaults, [`Preset`]s for the paper's three architectures);
//! * [`Classifier`]: the burn network (encoder + linear head to `T` logits);
//! * [`train_run`]: Adam, one-cycle, early stopping, best-validation checkpoint;
//! * [`cross_fit`]: stratified K-fold cross-fitting, so no row is scored by a model that saw it;
//! * [`TrainedModel`]: save/load (`model.bpk` + `model.json`) and scoring new data;
//! * [`cpu_device`] / [`shared_wgpu_device`]: burn's NdArray or wgpu backend, the latter on the
//!   wgpu device psa's own kernels use.
//!
//! Not here: file formats (psa-io), matching (psa-core, psa-gpu), command-line parsing.
//!
//! ```no_run
//! use psa_learn::{Classes, CrossFitConfig, Features, Labelled, NoObserver, Preset, cpu_device, cross_fit};
//! let x = ndarray::Array2::<f64>::zeros((100, 5));
//! let labels: Vec<String> = (0..100).map(|i| (i % 2).to_string()).collect();
//! let classes = Classes::from_labels(&labels);
//! let class_of_row = classes.indices(&labels).unwrap();
//! let features = Features::from_matrix(x.view());
//! let data = Labelled { features: &features, classes: &class_of_row, n_classes: classes.len() };
//! let fitted = cross_fit(&Preset::Tabular.spec(), &data, CrossFitConfig::default(),
//!                        &cpu_device(), "rna", &NoObserver).unwrap();
//! assert_eq!(fitted.logits.dim(), (100, 2));
//! ```

mod crossfit;
mod data;
mod device;
mod error;
mod model;
mod persist;
mod spec;
mod train;

pub use crossfit::{CrossFitConfig, CrossFitted, FoldReport, cross_fit, score_rows};
pub use data::{
    Classes, Features, InputShape, Standardizer, logits_matrix, stratified_folds, stratified_split,
};
pub use device::cpu_device;
#[cfg(feature = "wgpu")]
pub use device::shared_wgpu_device;
pub use error::LearnError;
pub use model::Classifier;
pub use persist::{CARD_FILE, ModelCard, TrainedModel, WEIGHTS_FILE, train_model};
pub use psa_io::EpochRecord;
pub use spec::{
    Activation, EncoderSpec, LEAKY_RELU_SLOPE, ModelSpec, Preset, Schedule, TrainingSpec,
};
pub use train::{
    Labelled, RunTag, TrainedRun, cross_entropy_and_hit, evaluate, predict_logits, train_run,
};

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

//! A trained classifier on disk, as `psa train` writes it and `psa score` reads it:
//!
//! * `model.bpk`: the network's weights, written by burn's recorder (burnpack);
//! * `model.json`: everything else needed to rebuild and use it ([`ModelCard`]): the spec,
//!   input shape, class labels in output order, the standardisation fitted at training and the
//!   calibration temperature. It is checked against itself when loaded and against the input
//!   before scoring.
//!
//! Files go into a directory the caller provides; the CLI stages it and renames it into place,
//! so an interrupted training leaves no half-written model.

use std::path::Path;

use burn::module::Module;
use burn::tensor::Device;
use ndarray::Array2;
use serde::{Deserialize, Serialize};

use crate::calibrate::{fit_temperature, label_frequencies};
use crate::crossfit::score_rows;
use crate::data::{Classes, Features, InputShape, Standardizer, stratified_split};
use crate::model::Classifier;
use crate::spec::ModelSpec;
use crate::train::{Labelled, RunTag, TrainedRun, train_run};
use crate::{LearnError, TrainObserver};

pub const WEIGHTS_FILE: &str = "model.bpk";
pub const CARD_FILE: &str = "model.json";

/// What `model.json` holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ModelCard {
    pub format: u32,
    pub spec: ModelSpec,
    pub input: InputShape,
    pub classes: Classes,
    pub standardizer: Standardizer,
    pub best_epoch: usize,
    pub best_validation_cross_entropy: f64,
    pub epochs_run: usize,
    pub trained_rows: usize,
    /// Logits are divided by this before they are returned (temperature scaling fitted on the
    /// validation rows; 1 without calibration).
    #[serde(default = "one")]
    pub temperature: f64,
    /// The label-frequency baseline on the validation rows: the kept cross-entropy must be
    /// below it for the model to have learned anything.
    #[serde(default)]
    pub validation_baseline_cross_entropy: Option<f64>,
}

fn one() -> f64 {
    1.0
}

const CARD_FORMAT: u32 = 1;

/// A network with its card.
pub struct TrainedModel {
    pub card: ModelCard,
    pub network: Classifier,
}

/// Trains one classifier on all rows of a modality (a stratified validation part picks the
/// checkpoint), as `psa train` does. Its scores on these same rows are in-sample.
pub fn train_model(
    spec: &ModelSpec,
    mut features: Features,
    classes: &Classes,
    class_of_row: &[usize],
    device: &Device,
    modality: &str,
    observer: &dyn TrainObserver,
) -> Result<(TrainedModel, TrainedRun), LearnError> {
    let standardizer = if spec.training.standardize {
        Standardizer::fit(&features)
    } else {
        Standardizer::identity(features.shape())
    };
    features.standardize(&standardizer);
    let all: Vec<usize> = (0..features.rows()).collect();
    let (train_rows, validation_rows) = stratified_split(
        &all,
        class_of_row,
        spec.training.validation_fraction,
        spec.training.seed.wrapping_add(17),
    );
    let data = Labelled {
        features: &features,
        classes: class_of_row,
        n_classes: classes.len(),
    };
    observer.fold_started(modality, 0, 1);
    let tag = RunTag {
        modality: modality.to_string(),
        fold: 0,
        trial: 0,
    };
    let run = train_run(
        spec,
        &data,
        &train_rows,
        &validation_rows,
        device,
        &tag,
        observer,
    )?;
    let temperature = if spec.training.calibrate {
        let logits = score_rows(
            &run.model,
            &features,
            &validation_rows,
            classes.len(),
            device,
        )?;
        let targets: Vec<usize> = validation_rows.iter().map(|&r| class_of_row[r]).collect();
        fit_temperature(logits.view(), &targets)
    } else {
        1.0
    };
    let frequencies = label_frequencies(class_of_row, &train_rows, classes.len());
    let card = ModelCard {
        format: CARD_FORMAT,
        spec: spec.clone(),
        input: features.shape(),
        classes: classes.clone(),
        standardizer,
        best_epoch: run.best_epoch,
        best_validation_cross_entropy: run.best_validation_cross_entropy,
        epochs_run: run.epochs_run,
        trained_rows: train_rows.len(),
        temperature,
        validation_baseline_cross_entropy: Some(
            validation_rows
                .iter()
                .map(|&r| -frequencies[class_of_row[r]].ln())
                .sum::<f64>()
                / validation_rows.len().max(1) as f64,
        ),
    };
    let model = TrainedModel {
        card,
        network: run.model.clone(),
    };
    Ok((model, run))
}

impl TrainedModel {
    /// Writes `model.bpk` and `model.json` into `dir` (which must exist).
    pub fn save(&self, dir: &Path) -> Result<(), LearnError> {
        save_network(&self.network, &dir.join(WEIGHTS_FILE))?;
        write_card(&dir.join(CARD_FILE), &self.card)
    }

    /// Reads a directory written by [`TrainedModel::save`] onto `device`.
    pub fn load(dir: &Path, device: &Device) -> Result<TrainedModel, LearnError> {
        let card_path = dir.join(CARD_FILE);
        let card: ModelCard = read_card(&card_path, "model")?;
        if card.format != CARD_FORMAT {
            return Err(LearnError::Model {
                path: card_path,
                message: format!(
                    "model format {} is not supported (expected {CARD_FORMAT})",
                    card.format
                ),
            });
        }
        card.check().map_err(|message| LearnError::Model {
            path: card_path.clone(),
            message,
        })?;
        let network = Classifier::new(&card.spec.encoder, card.input, card.classes.len(), device)?;
        let network = load_network(network, &dir.join(WEIGHTS_FILE))?;
        Ok(TrainedModel { card, network })
    }

    /// Logits for every row, `n × T`, with the training standardisation applied.
    pub fn score(
        &self,
        mut features: Features,
        device: &Device,
    ) -> Result<Array2<f64>, LearnError> {
        if features.shape() != self.card.input {
            return Err(LearnError::Input(format!(
                "the model takes rows of shape {:?}, but the input has {:?}",
                self.card.input,
                features.shape()
            )));
        }
        features.standardize(&self.card.standardizer);
        let rows: Vec<usize> = (0..features.rows()).collect();
        let logits = score_rows(
            &self.network,
            &features,
            &rows,
            self.card.classes.len(),
            device,
        )? / self.card.temperature;
        if let Some(k) = logits.iter().position(|v| !v.is_finite()) {
            return Err(LearnError::Input(format!(
                "row {}: the model's logits are not finite; its weights may have diverged \
                 (retrain with a lower learning rate)",
                k / self.card.classes.len().max(1)
            )));
        }
        Ok(logits)
    }
}

impl ModelCard {
    /// The card's own consistency, before any weights are read: a card edited or written by
    /// another program must fail here with the field at fault, not panic or score NaN later.
    pub fn check(&self) -> Result<(), String> {
        if self.classes.len() < 2 {
            return Err(format!(
                "classes: a classifier needs at least 2 (found {})",
                self.classes.len()
            ));
        }
        if self.input.is_empty() {
            return Err("input: the rows have no values".into());
        }
        self.standardizer.check(self.input)?;
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(format!(
                "temperature is {}; it must be finite and > 0",
                self.temperature
            ));
        }
        self.spec.validate().map_err(|m| format!("spec: {m}"))
    }
}

/// Writes a network's weights with burn's recorder.
pub(crate) fn save_network(network: &Classifier, path: &Path) -> Result<(), LearnError> {
    network
        .clone()
        .save_file(path)
        .map_err(|e| LearnError::Model {
            path: path.to_path_buf(),
            message: format!("cannot write the weights: {e:?}"),
        })
}

/// Reads weights written by [`save_network`] into a freshly built `network`, in inference mode.
pub(crate) fn load_network(network: Classifier, path: &Path) -> Result<Classifier, LearnError> {
    Ok(network
        .try_load_file(path)
        .map_err(|e| LearnError::Model {
            path: path.to_path_buf(),
            message: format!("cannot read the weights: {e:?}"),
        })?
        .valid())
}

/// Writes a card as pretty JSON.
pub(crate) fn write_card(path: &Path, card: &impl Serialize) -> Result<(), LearnError> {
    let text = serde_json::to_string_pretty(card).expect("a card serialises");
    std::fs::write(path, text + "\n").map_err(|cause| LearnError::Io {
        path: path.to_path_buf(),
        cause,
    })
}

/// Reads a card; `what` names it in the error ("model", "predictor").
pub(crate) fn read_card<T: serde::de::DeserializeOwned>(
    path: &Path,
    what: &str,
) -> Result<T, LearnError> {
    let text = std::fs::read_to_string(path).map_err(|cause| LearnError::Io {
        path: path.to_path_buf(),
        cause,
    })?;
    serde_json::from_str(&text).map_err(|e| LearnError::Model {
        path: path.to_path_buf(),
        message: format!("not a psa {what} card: {e}"),
    })
}

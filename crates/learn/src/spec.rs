//! What a propensity classifier is and how it is trained (METHOD.md step 1, paper App. D.2).
//!
//! A [`ModelSpec`] is plain data: it is written beside every saved model (`model.json`), can be
//! given to the CLI as a small JSON or TOML file, and every field has a default. The training
//! defaults ([`TrainingSpec::default`]) were chosen by measurement on the development suite
//! (`benches/quality/`, evidence in benches/RESULTS.md), not inherited from the paper: the
//! paper's optimiser (Adam 1e-4, one-cycle, batch 256, for tens of thousands of cells) left
//! small data sets untrained. [`Preset::Paper`] keeps the paper's settings; the other presets
//! are the paper's architectures with the measured training defaults.

use serde::{Deserialize, Serialize};

use crate::LearnError;
use crate::data::InputShape;

/// Encoder architecture plus training hyper-parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    pub encoder: EncoderSpec,
    #[serde(default)]
    pub training: TrainingSpec,
}

/// The encoder in front of the linear head to the `T` labels.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum EncoderSpec {
    /// Fully connected layers, each `Linear → [BatchNorm] → activation → [Dropout]`.
    Mlp {
        hidden: Vec<usize>,
        #[serde(default = "yes")]
        batch_norm: bool,
        #[serde(default)]
        dropout: f64,
        #[serde(default)]
        activation: Activation,
    },
    /// Strided 3×3 convolutions (each halves the image), each `Conv → [BatchNorm] →
    /// activation`, then a global average pool.
    Cnn {
        channels: Vec<usize>,
        #[serde(default = "yes")]
        batch_norm: bool,
        #[serde(default = "leaky")]
        activation: Activation,
    },
}

fn yes() -> bool {
    true
}

fn leaky() -> Activation {
    Activation::LeakyRelu
}

/// Non-linearity between layers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    #[default]
    Relu,
    /// Negative slope [`LEAKY_RELU_SLOPE`] (PyTorch's default).
    LeakyRelu,
}

/// Negative slope of [`Activation::LeakyRelu`].
pub const LEAKY_RELU_SLOPE: f64 = 0.01;

/// Learning-rate schedule over the whole run (`epochs × batches`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    /// Smith's one-cycle policy as PyTorch's `OneCycleLR` (the paper's): 30% cosine warm-up from
    /// lr/25 to lr, then cosine annealing to lr/10⁴.
    #[default]
    OneCycle,
    /// `learning_rate` throughout.
    Constant,
}

/// Optimiser, stopping rule and calibration. The defaults are measured (module doc); the
/// paper's are [`TrainingSpec::paper`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainingSpec {
    /// Adam's (peak) learning rate.
    pub learning_rate: f64,
    /// L2 weight decay added to the gradient (Adam, not AdamW, as the paper's PyTorch code).
    pub weight_decay: f64,
    /// Rows per mini-batch; `None` (absent, or `null` in JSON): scaled to the training rows
    /// ([`TrainingSpec::batch_size_for`]).
    pub batch_size: Option<usize>,
    /// Upper bound on epochs; early stopping usually ends sooner.
    pub epochs: usize,
    /// Stop after this many epochs without a better validation cross-entropy.
    pub patience: usize,
    /// Early stopping never ends a run before this many epochs, nor before a one-cycle schedule
    /// has reached its peak learning rate: a run stopped during warm-up has barely trained.
    pub min_epochs: usize,
    pub schedule: Schedule,
    /// Fraction of the training rows held back (stratified) to pick the checkpoint, stop, and
    /// fit the calibration.
    pub validation_fraction: f64,
    /// Standardise features (per feature; per channel for images) before the encoder.
    pub standardize: bool,
    /// Temperature scaling: divide each model's logits by the temperature that minimises the
    /// cross-entropy of its own validation rows, so that the folds' scores share one scale.
    pub calibrate: bool,
    pub seed: u64,
}

impl Default for TrainingSpec {
    fn default() -> Self {
        TrainingSpec {
            learning_rate: 1e-3,
            weight_decay: 0.0,
            batch_size: None,
            epochs: 200,
            patience: 15,
            min_epochs: 10,
            schedule: Schedule::Constant,
            validation_fraction: 0.1,
            standardize: true,
            calibrate: true,
            seed: 0,
        }
    }
}

impl TrainingSpec {
    /// The paper's optimiser (App. D.2): Adam, lr 1e-4, one-cycle, batch 256, 100 epochs,
    /// patience 10, no calibration.
    pub fn paper() -> TrainingSpec {
        TrainingSpec {
            learning_rate: 1e-4,
            batch_size: Some(256),
            epochs: 100,
            patience: 10,
            min_epochs: 0,
            schedule: Schedule::OneCycle,
            calibrate: false,
            ..TrainingSpec::default()
        }
    }

    /// The mini-batch size for `train_rows` training rows: the fixed `batch_size`, or else
    /// about a sixteenth of the rows as a power of two in `[32, 256]`, so a small data set still
    /// takes a dozen optimiser steps per epoch and a large one uses the paper's 256.
    pub fn batch_size_for(&self, train_rows: usize) -> usize {
        self.batch_size.unwrap_or_else(|| {
            (train_rows / 16)
                .max(1)
                .next_power_of_two()
                .clamp(AUTO_BATCH_MIN, AUTO_BATCH_MAX)
        })
    }
}

/// Bounds of the batch size scaled to the training rows.
const AUTO_BATCH_MIN: usize = 32;
const AUTO_BATCH_MAX: usize = 256;

/// Named settings: psa's measured default, the paper's complete settings, and the paper's
/// three architectures (App. D.2) trained with the measured defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    /// psa's default, chosen on the development suite: an MLP for feature matrices and for
    /// image stacks (on the pixels), [`TrainingSpec::default`].
    Default,
    /// The paper's settings: its PerturbSeq MLP for feature matrices, its CNN for images, and
    /// its optimiser ([`TrainingSpec::paper`]).
    Paper,
    /// PerturbSeq: MLP 2×64, BatchNorm, ReLU, dropout 0.1.
    Tabular,
    /// CITE-seq: MLP 5×1024, BatchNorm, ReLU.
    CiteSeq,
    /// Synthetic images: CNN with channels 32, 64, 128, 256, 512, BatchNorm, LeakyReLU.
    Images,
}

impl Preset {
    /// The encoder for inputs of `input` shape.
    pub fn encoder(self, input: InputShape) -> EncoderSpec {
        let image = matches!(input, InputShape::Image { .. });
        match self {
            Preset::Default if image => EncoderSpec::Mlp {
                hidden: vec![512, 256],
                batch_norm: true,
                dropout: 0.1,
                activation: Activation::Relu,
            },
            Preset::Default => EncoderSpec::Mlp {
                hidden: vec![256],
                batch_norm: true,
                dropout: 0.1,
                activation: Activation::Relu,
            },
            Preset::Paper if image => Preset::Images.encoder(input),
            Preset::Paper | Preset::Tabular => EncoderSpec::Mlp {
                hidden: vec![64, 64],
                batch_norm: true,
                dropout: 0.1,
                activation: Activation::Relu,
            },
            Preset::CiteSeq => EncoderSpec::Mlp {
                hidden: vec![1024; 5],
                batch_norm: true,
                dropout: 0.0,
                activation: Activation::Relu,
            },
            Preset::Images => EncoderSpec::Cnn {
                channels: vec![32, 64, 128, 256, 512],
                batch_norm: true,
                activation: Activation::LeakyRelu,
            },
        }
    }

    /// Encoder and training for inputs of `input` shape.
    pub fn spec(self, input: InputShape) -> ModelSpec {
        ModelSpec {
            encoder: self.encoder(input),
            training: match self {
                Preset::Paper => TrainingSpec::paper(),
                _ => TrainingSpec::default(),
            },
        }
    }
}

impl ModelSpec {
    /// Reads a spec from JSON or TOML, chosen by the file's extension.
    pub fn from_file(path: &std::path::Path) -> Result<ModelSpec, LearnError> {
        let text = std::fs::read_to_string(path).map_err(|cause| LearnError::Io {
            path: path.to_path_buf(),
            cause,
        })?;
        let bad = |message: String| LearnError::Spec {
            path: path.to_path_buf(),
            message,
        };
        let spec: ModelSpec = match path.extension().and_then(|e| e.to_str()) {
            Some("toml") => toml::from_str(&text).map_err(|e| bad(e.to_string()))?,
            Some("json") => serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?,
            _ => return Err(bad("expected a .json or .toml file".into())),
        };
        spec.validate().map_err(bad)?;
        Ok(spec)
    }

    /// Checks the values that serde cannot (positive sizes, fractions in range).
    pub fn validate(&self) -> Result<(), String> {
        let t = &self.training;
        let positive = |name: &str, v: f64| {
            (v.is_finite() && v > 0.0)
                .then_some(())
                .ok_or(format!("{name} must be > 0 (got {v})"))
        };
        positive("learning_rate", t.learning_rate)?;
        if !(t.weight_decay.is_finite() && t.weight_decay >= 0.0) {
            return Err(format!("weight_decay must be ≥ 0 (got {})", t.weight_decay));
        }
        if let Some(b) = t.batch_size
            && b < 2
        {
            return Err(format!("batch_size must be ≥ 2 for BatchNorm (got {b})"));
        }
        if t.epochs == 0 {
            return Err("epochs must be ≥ 1".into());
        }
        if !(t.validation_fraction > 0.0 && t.validation_fraction < 1.0) {
            return Err(format!(
                "validation_fraction must be in (0, 1) (got {})",
                t.validation_fraction
            ));
        }
        match &self.encoder {
            EncoderSpec::Mlp {
                hidden, dropout, ..
            } => {
                if hidden.contains(&0) {
                    return Err("hidden layer sizes must be ≥ 1".into());
                }
                if !(0.0..1.0).contains(dropout) {
                    return Err(format!("dropout must be in [0, 1) (got {dropout})"));
                }
            }
            EncoderSpec::Cnn { channels, .. } => {
                if channels.is_empty() || channels.contains(&0) {
                    return Err("a CNN needs at least one layer, each with ≥ 1 channel".into());
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_toml_specs_parse_with_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let json = dir.path().join("m.json");
        std::fs::write(&json, r#"{"encoder": {"kind": "mlp", "hidden": [32]}}"#).unwrap();
        let spec = ModelSpec::from_file(&json).unwrap();
        assert_eq!(spec.training, TrainingSpec::default());
        assert!(matches!(
            spec.encoder,
            EncoderSpec::Mlp {
                batch_norm: true,
                ..
            }
        ));

        let toml = dir.path().join("m.toml");
        std::fs::write(
            &toml,
            "[encoder]\nkind = \"cnn\"\nchannels = [8, 16]\n[training]\nlearning_rate = 0.001\n",
        )
        .unwrap();
        let spec = ModelSpec::from_file(&toml).unwrap();
        assert_eq!(spec.training.learning_rate, 1e-3);
        assert!(matches!(
            spec.encoder,
            EncoderSpec::Cnn {
                activation: Activation::LeakyRelu,
                ..
            }
        ));
    }

    #[test]
    fn bad_specs_name_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.json");
        std::fs::write(
            &path,
            r#"{"encoder": {"kind": "mlp", "hidden": [32], "dropot": 0.1}}"#,
        )
        .unwrap();
        let err = ModelSpec::from_file(&path).unwrap_err().to_string();
        assert!(err.contains("m.json") && err.contains("dropot"), "{err}");

        std::fs::write(
            &path,
            r#"{"encoder": {"kind": "mlp", "hidden": [32]}, "training": {"batch_size": 1}}"#,
        )
        .unwrap();
        let err = ModelSpec::from_file(&path).unwrap_err().to_string();
        assert!(err.contains("batch_size"), "{err}");
    }

    #[test]
    fn batch_size_scales_with_the_training_rows() {
        let t = TrainingSpec::default();
        assert_eq!(t.batch_size_for(10), 32);
        assert_eq!(t.batch_size_for(560), 64);
        assert_eq!(t.batch_size_for(1_400), 128);
        assert_eq!(t.batch_size_for(100_000), 256);
        let fixed = TrainingSpec {
            batch_size: Some(100),
            ..TrainingSpec::default()
        };
        assert_eq!(fixed.batch_size_for(10), 100);
        assert_eq!(TrainingSpec::paper().batch_size_for(10), 256);
    }
}

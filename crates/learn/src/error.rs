use std::path::PathBuf;

/// Everything that can go wrong while training, scoring, saving or loading a classifier.
#[derive(Debug, thiserror::Error)]
pub enum LearnError {
    #[error("{}: {cause}", path.display())]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{}: bad model spec: {message}", path.display())]
    Spec { path: PathBuf, message: String },
    #[error("{0}")]
    Input(String),
    /// Not enough rows for a training run (names the rule that failed).
    #[error("too few rows to train a classifier: {0}")]
    TooFewRows(String),
    #[error(
        "modality {modality}, fold {fold}: training diverged at epoch {epoch} (the cross-entropy \
         is not finite) with learning rate {learning_rate:e}, and no earlier epoch was finite; \
         lower the learning rate"
    )]
    Diverged {
        modality: String,
        fold: usize,
        epoch: usize,
        learning_rate: f64,
    },
    /// A fold's classifier did no better than predicting label frequencies (with `strict`).
    #[error(
        "modality {modality}, fold {fold}: this classifier learned nothing; matching on its scores \
         is random (validation cross-entropy {cross_entropy:.4} does not beat the label-frequency \
         baseline {baseline:.4})"
    )]
    Untrained {
        modality: String,
        fold: usize,
        cross_entropy: f64,
        baseline: f64,
    },
    /// A fold's logits are not finite (a diverged model that still scored).
    #[error(
        "modality {modality}, fold {fold}: the classifier's logits are not finite (row {row}); \
         training diverged, lower the learning rate"
    )]
    NonFiniteScores {
        modality: String,
        fold: usize,
        row: usize,
    },
    #[error("{}: {message}", path.display())]
    Model { path: PathBuf, message: String },
    #[error("burn backend: {0}")]
    Backend(String),
}

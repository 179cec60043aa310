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
    #[error(
        "modality {modality}, fold {fold}: training diverged at epoch {epoch} (loss is not finite); \
         lower the learning rate"
    )]
    Diverged {
        modality: String,
        fold: usize,
        epoch: usize,
    },
    #[error("{}: {message}", path.display())]
    Model { path: PathBuf, message: String },
    #[error("burn backend: {0}")]
    Backend(String),
}

//! Errors of the reference backend. Each says which option or input is at fault.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum CoreError {
    #[error("option {option}: {message}")]
    InvalidOption {
        option: &'static str,
        message: String,
    },
    #[error("{what}: row {row}, column {column} is {value} (scores must be finite)")]
    NonFinite {
        what: &'static str,
        row: usize,
        column: usize,
        value: f64,
    },
    #[error("{what}: {message}")]
    Shape { what: &'static str, message: String },
}

impl CoreError {
    pub fn option(option: &'static str, message: impl Into<String>) -> Self {
        CoreError::InvalidOption {
            option,
            message: message.into(),
        }
    }
}

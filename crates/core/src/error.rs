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
    #[error(
        "{what}: row {row}, column {column} is {value:e}: its centred log-ratio score {score:e} \
         is beyond ±{bound:e}, the range psa matches on (a softmax saturates long before; \
         check that these are classifier logits or probabilities)"
    )]
    OutOfRange {
        what: &'static str,
        row: usize,
        column: usize,
        /// The input value at that position.
        value: f64,
        /// Its centred log-ratio score.
        score: f64,
        bound: f64,
    },
    #[error("{what}: {message}")]
    Shape { what: &'static str, message: String },
}

impl CoreError {
    /// Maps the group-local row of a value error to the input row `rows[row]`.
    pub fn at_input_row(self, rows: &[usize]) -> Self {
        let map = |row: usize| rows.get(row).copied().unwrap_or(row);
        match self {
            CoreError::NonFinite {
                what,
                row,
                column,
                value,
            } => CoreError::NonFinite {
                what,
                row: map(row),
                column,
                value,
            },
            CoreError::OutOfRange {
                what,
                row,
                column,
                value,
                score,
                bound,
            } => CoreError::OutOfRange {
                what,
                row: map(row),
                column,
                value,
                score,
                bound,
            },
            other => other,
        }
    }

    pub fn option(option: &'static str, message: impl Into<String>) -> Self {
        CoreError::InvalidOption {
            option,
            message: message.into(),
        }
    }
}

//! The one error type of psa-io. Every variant names the file at fault and, where it helps the
//! user find the problem, the line (1-based, as an editor counts) or the row and column (0-based,
//! as NumPy indexes), so a message reads "labels1.csv: line 17: empty label".

use std::fmt;
use std::path::{Path, PathBuf};

use thiserror::Error;

/// Where in a file a problem is: a text line (1-based) or an array row (0-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// A line of a text file, counted from 1 as editors do.
    Line(u64),
    /// A row of an array, counted from 0 as NumPy does.
    Row(usize),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Line(line) => write!(f, "line {line}"),
            Location::Row(row) => write!(f, "row {row}"),
        }
    }
}

/// Every error of psa-io. Its `Display` is the whole message for the user, file name first; the
/// fields are there for programs that want to react to one kind.
#[derive(Debug, Error)]
pub enum IoError {
    // The cause is part of the message, not a `source()`, so `{:#}` does not print it twice.
    #[error("{}: {cause}", path.display())]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },

    #[error("{}: empty, expected {expected}", path.display())]
    Empty {
        path: PathBuf,
        expected: &'static str,
    },

    #[error("{}: unsupported file type; expected {supported}", path.display())]
    UnsupportedExtension {
        path: PathBuf,
        supported: &'static str,
    },

    #[error("{}: not a valid .npy file: {cause}", path.display())]
    NpyHeader {
        path: PathBuf,
        cause: ndarray_npy::npy::header::ParseHeaderError,
    },

    #[error("{}: dtype {descr} not supported; {hint}", path.display())]
    NpyDtype {
        path: PathBuf,
        descr: String,
        hint: &'static str,
    },

    #[error("{}: array has shape {}; it must be {expected}", path.display(), numpy_shape(shape))]
    NpyShape {
        path: PathBuf,
        shape: Vec<usize>,
        expected: &'static str,
    },

    #[error("{}: {message}", path.display())]
    NpyData { path: PathBuf, message: String },

    #[error("{}: line {line}: {message}", path.display())]
    Syntax {
        path: PathBuf,
        line: u64,
        message: &'static str,
    },

    #[error("{}: line {line}: expected {expected} columns, found {found}", path.display())]
    Ragged {
        path: PathBuf,
        line: u64,
        expected: usize,
        found: usize,
    },

    #[error("{}: line {line}, column {column}: {text:?} is not a number", path.display())]
    NotNumeric {
        path: PathBuf,
        line: u64,
        column: usize,
        text: String,
    },

    #[error(
        "{}: row {row}, column {column} (0-based) is {value}; values must be finite",
        path.display()
    )]
    NonFinite {
        path: PathBuf,
        row: usize,
        column: usize,
        value: f64,
    },

    #[error("{}: {location}: empty {what}", path.display())]
    EmptyField {
        path: PathBuf,
        location: Location,
        what: &'static str,
    },

    #[error("{}: no column named {column:?}; the header has: {}", path.display(), available.join(", "))]
    NoSuchColumn {
        path: PathBuf,
        column: String,
        available: Vec<String>,
    },

    #[error("{}: a column can be chosen only in .csv, .tsv or .txt files", path.display())]
    ColumnNotSupported { path: PathBuf },

    #[error("{} has {n_a} rows but {} has {n_b}", a.display(), b.display())]
    RowMismatch {
        a: PathBuf,
        n_a: usize,
        b: PathBuf,
        n_b: usize,
    },

    #[error("{}: not a directory path (it has no final component)", path.display())]
    NotADirectoryPath { path: PathBuf },

    #[error("{}: exists and is not a directory; choose another output directory", path.display())]
    NotADirectory { path: PathBuf },

    #[error("{}: cannot open as HDF5, the format of .h5ad files: {cause}", path.display())]
    NotHdf5 { path: PathBuf, cause: String },

    /// `key` is the HDF5 path inside the file: `X`, `layers/counts`, `obs/cell_type`.
    #[error("{}: {key}: {message}", path.display())]
    H5ad {
        path: PathBuf,
        key: String,
        message: String,
    },

    /// A layer or obsm entry that is not in the file; `group` is `layers` or `obsm`.
    #[error("{}: no {what} {name:?} ({group}: {})", path.display(), or_none(available))]
    H5adNoSuchKey {
        path: PathBuf,
        what: &'static str,
        group: &'static str,
        name: String,
        available: Vec<String>,
    },

    #[error("{}: obs has no column {column:?} (columns: {})", path.display(), or_none(available))]
    H5adNoSuchColumn {
        path: PathBuf,
        column: String,
        available: Vec<String>,
    },
}

/// The names a user can choose from, or "none" when there are none.
fn or_none(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

/// A shape as NumPy prints it: `(3,)`, `(2, 3)`.
pub(crate) fn numpy_shape(shape: &[usize]) -> String {
    match shape {
        [n] => format!("({n},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

impl IoError {
    /// Wraps an operating-system error with the file it concerns.
    pub(crate) fn io(path: &Path, cause: std::io::Error) -> Self {
        IoError::Io {
            path: path.to_path_buf(),
            cause,
        }
    }
}

/// Adds the file name to an `std::io::Result`, so `?` cannot lose it.
pub(crate) trait WithPath<T> {
    fn with_path(self, path: &Path) -> Result<T, IoError>;
}

impl<T> WithPath<T> for std::io::Result<T> {
    fn with_path(self, path: &Path) -> Result<T, IoError> {
        self.map_err(|source| IoError::io(path, source))
    }
}

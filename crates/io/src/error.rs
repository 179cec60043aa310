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

    #[error(
        "{}: exists and is a file, not a directory; psa writes a directory of results there, so \
         choose another output directory",
        path.display()
    )]
    NotADirectory { path: PathBuf },

    /// An output directory that holds files but no [`crate::RUN_MARKER`]: psa replaces its
    /// output directory as a whole and does not delete what it did not write unless forced.
    #[error(
        "{}: holds {count} {} that psa did not write ({}) and no {marker}; psa replaces its \
         output directory as a whole, so choose a new or empty directory, or pass --force to \
         replace this one",
        path.display(),
        if *count == 1 { "entry" } else { "entries" },
        examples.join(", ") + if examples.len() < *count { ", …" } else { "" },
        marker = crate::RUN_MARKER
    )]
    NotPsaOutput {
        path: PathBuf,
        count: usize,
        examples: Vec<String>,
    },

    /// Another process holds the output directory's lock; `holder` says which run it is.
    #[error(
        "{}: another psa run is writing here ({holder}); wait for it to finish or choose another \
         output directory",
        path.display()
    )]
    Busy { path: PathBuf, holder: String },

    /// Both renames of the swap failed: the new run is not in place and the previous one could
    /// not be moved back; it is kept whole under `kept`.
    #[error(
        "{}: {cause}; the previous run could not be moved back and is kept whole in {}",
        path.display(),
        kept.display()
    )]
    PreviousRunKept {
        path: PathBuf,
        kept: PathBuf,
        cause: std::io::Error,
    },

    /// An allocation that would not fit in memory, refused before it is tried
    /// ([`crate::ensure_memory`]). `option` is what the user asked for, e.g. `--topk 1000000`.
    #[error(
        "{option} needs {} for {output}; this machine has {} available",
        crate::resources::human_bytes(*needed),
        crate::resources::human_bytes(Some(*available))
    )]
    OutOfMemory {
        option: String,
        output: String,
        /// `None` when the size does not even fit in 64 bits.
        needed: Option<u64>,
        available: u64,
    },

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

    #[error(
        "{}: name the obs column that holds the labels, as FILE.h5ad:COLUMN (columns: {})",
        path.display(), or_none(available)
    )]
    H5adNoColumnChosen {
        path: PathBuf,
        available: Vec<String>,
    },

    /// A run directory (`psa match --out`) that cannot be reloaded.
    #[error("{}: {message}", path.display())]
    Run { path: PathBuf, message: String },

    /// A backend failed while computing outputs.
    #[error(transparent)]
    Matcher(#[from] psa_core::MatcherError),
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

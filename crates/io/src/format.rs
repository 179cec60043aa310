//! Which reader a file goes to, decided by its extension (case-insensitive), and the checks every
//! reader shares: an empty file gets one clear message whatever its format, and a matrix with a
//! NaN or an infinite value is refused at the door with the row and column, so that no solver
//! downstream has to guess where a NaN came from.

use std::fs;
use std::path::Path;

use ndarray::ArrayView2;

use crate::error::{IoError, WithPath};

/// The forms listed in the error for an unknown extension.
const SUPPORTED: &str =
    ".npy, .csv (comma-separated), .tsv (tab-separated), .txt or .h5ad (AnnData)";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Npy,
    Csv,
    Tsv,
    /// Plain text: for matrices the delimiter is sniffed, for labels and ids it is a tab.
    Txt,
    /// AnnData (HDF5): for matrices its `X`, for labels and ids an `obs` column.
    H5ad,
}

impl Format {
    pub(crate) fn of(path: &Path) -> Result<Self, IoError> {
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match extension.as_deref() {
            Some("npy") => Ok(Format::Npy),
            Some("csv") => Ok(Format::Csv),
            Some("tsv" | "tab") => Ok(Format::Tsv),
            Some("txt") => Ok(Format::Txt),
            Some("h5ad") => Ok(Format::H5ad),
            _ => Err(IoError::UnsupportedExtension {
                path: path.to_path_buf(),
                supported: SUPPORTED,
            }),
        }
    }
}

/// Fails with "FILE: empty, expected {expected}" for a zero-byte file, before any parser sees it
/// (a parser would report a truncated header or nothing at all).
pub(crate) fn ensure_not_empty(path: &Path, expected: &'static str) -> Result<(), IoError> {
    if fs::metadata(path).with_path(path)?.len() == 0 {
        return Err(IoError::Empty {
            path: path.to_path_buf(),
            expected,
        });
    }
    Ok(())
}

/// Fails on the first NaN or infinite value in row-major order, naming its row and column.
pub(crate) fn check_finite(path: &Path, matrix: ArrayView2<f64>) -> Result<(), IoError> {
    match matrix.indexed_iter().find(|(_, value)| !value.is_finite()) {
        None => Ok(()),
        Some(((row, column), &value)) => Err(IoError::NonFinite {
            path: path.to_path_buf(),
            row,
            column,
            value,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_decides_format_case_insensitively() {
        assert_eq!(Format::of(Path::new("a/B.NPY")).unwrap(), Format::Npy);
        assert_eq!(Format::of(Path::new("x.csv")).unwrap(), Format::Csv);
        assert_eq!(Format::of(Path::new("x.tsv")).unwrap(), Format::Tsv);
        assert_eq!(Format::of(Path::new("x.txt")).unwrap(), Format::Txt);
        assert_eq!(Format::of(Path::new("rna.H5AD")).unwrap(), Format::H5ad);
    }

    #[test]
    fn unknown_extension_lists_supported_forms() {
        let err = Format::of(Path::new("data.h5")).unwrap_err().to_string();
        assert!(err.starts_with("data.h5: unsupported file type"), "{err}");
        for form in [".npy", ".csv", ".tsv", ".txt", ".h5ad"] {
            assert!(err.contains(form), "{err}");
        }
        assert!(Format::of(Path::new("noextension")).is_err());
    }
}

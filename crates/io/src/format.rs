//! Which reader a file goes to, decided by its extension (case-insensitive), and the empty-file
//! check every reader shares, so an empty file gets one clear message whatever its format.

use std::fs;
use std::path::Path;

use crate::error::{IoError, WithPath};

/// The forms listed in the error for an unknown extension.
const SUPPORTED: &str = ".npy, .csv (comma-separated), .tsv (tab-separated) or .txt";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Npy,
    Csv,
    Tsv,
    /// Plain text: for matrices the delimiter is sniffed, for labels and ids it is a tab.
    Txt,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_decides_format_case_insensitively() {
        assert_eq!(Format::of(Path::new("a/B.NPY")).unwrap(), Format::Npy);
        assert_eq!(Format::of(Path::new("x.csv")).unwrap(), Format::Csv);
        assert_eq!(Format::of(Path::new("x.tsv")).unwrap(), Format::Tsv);
        assert_eq!(Format::of(Path::new("x.txt")).unwrap(), Format::Txt);
    }

    #[test]
    fn unknown_extension_lists_supported_forms() {
        let err = Format::of(Path::new("data.h5ad")).unwrap_err().to_string();
        assert!(err.starts_with("data.h5ad: unsupported file type"), "{err}");
        for form in [".npy", ".csv", ".tsv", ".txt"] {
            assert!(err.contains(form), "{err}");
        }
        assert!(Format::of(Path::new("noextension")).is_err());
    }
}

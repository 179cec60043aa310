//! Reading one value per row — the group label `t` of each unit, or the unit's id — from a
//! `.npy` array or one column of a text table. Labels and ids are kept as text: psa only compares
//! them, and text is the one form integers and strings share.

use std::path::{Path, PathBuf};

use crate::error::{IoError, Location};
use crate::format::{Format, ensure_not_empty};
use crate::h5ad::H5adFile;
use crate::npy;
use crate::text::{Comments, Delimiter, Fields, Records};

/// What is being read: its name in messages and the header names recognised without a column.
#[derive(Debug, Clone, Copy)]
struct Kind {
    what: &'static str,
    expected: &'static str,
    header_names: &'static [&'static str],
    /// Whether an `.h5ad` named without a column gives its obs names (ids do, labels do not).
    obs_names_by_default: bool,
}

const LABELS: Kind = Kind {
    what: "label",
    expected: "one label per row",
    header_names: &["label", "labels", "t"],
    obs_names_by_default: false,
};
const IDS: Kind = Kind {
    what: "id",
    expected: "one id per row",
    header_names: &["id", "ids"],
    obs_names_by_default: true,
};

/// A file of labels or ids, and optionally the column to take from it.
///
/// Written on the command line as `FILE` or `FILE:COLUMN` (see [`LabelSource::parse`]). Used for
/// ids as well as labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelSource {
    pub path: PathBuf,
    /// The header name of the column to read; `None` reads the first column.
    pub column: Option<String>,
}

impl LabelSource {
    /// Splits `meta.csv:cell_type` into the file and the column.
    ///
    /// The split is at the last `:` and only when the text as a whole is not an existing path but
    /// the part before the `:` is, so a path that contains `:` (`C:\data\t.csv`, `run:1/t.csv`)
    /// is never cut. Otherwise the whole text is the path.
    pub fn parse(spec: &str) -> Self {
        let whole = || LabelSource {
            path: PathBuf::from(spec),
            column: None,
        };
        if Path::new(spec).exists() {
            return whole();
        }
        match spec.rsplit_once(':') {
            Some((file, column)) if !column.is_empty() && Path::new(file).is_file() => {
                LabelSource {
                    path: PathBuf::from(file),
                    column: Some(column.to_owned()),
                }
            }
            _ => whole(),
        }
    }

    /// Reads one label per row; see [`read_labels`].
    pub fn read_labels(&self) -> Result<Vec<String>, IoError> {
        self.read(LABELS)
    }

    /// Reads one id per row; see [`read_ids`].
    pub fn read_ids(&self) -> Result<Vec<String>, IoError> {
        self.read(IDS)
    }

    fn read(&self, kind: Kind) -> Result<Vec<String>, IoError> {
        let path = self.path.as_path();
        ensure_not_empty(path, kind.expected)?;
        let format = Format::of(path)?;
        let delimiter = match format {
            Format::H5ad => return self.read_h5ad(kind),
            Format::Npy if self.column.is_some() => {
                return Err(IoError::ColumnNotSupported {
                    path: path.to_path_buf(),
                });
            }
            Format::Npy => return npy::read_column(path, kind.what, kind.expected),
            Format::Csv => Delimiter::Comma,
            // One value per line: a tab is the only separator that cannot be part of a label.
            Format::Tsv | Format::Txt => Delimiter::Tab,
        };
        let values = read_text_column(path, delimiter, self.column.as_deref(), kind)?;
        tracing::debug!(path = %path.display(), rows = values.len(), "read {}s", kind.what);
        Ok(values)
    }

    /// An `obs` column of an AnnData file (`rna.h5ad:cell_type`); without a column, the obs names
    /// as ids, and for labels an error listing the columns to choose from.
    fn read_h5ad(&self, kind: Kind) -> Result<Vec<String>, IoError> {
        let file = H5adFile::open(&self.path)?;
        match &self.column {
            Some(column) => file.obs_column(column),
            None if kind.obs_names_by_default => file.obs_names(),
            None => Err(IoError::H5adNoColumnChosen {
                path: self.path.clone(),
                available: file.obs_columns()?,
            }),
        }
    }
}

impl From<&Path> for LabelSource {
    fn from(path: &Path) -> Self {
        LabelSource {
            path: path.to_path_buf(),
            column: None,
        }
    }
}

/// Reads one group label per row.
///
/// * `.npy`: a 1-D or `n × 1` array of integers (any width, signed or not; returned as decimal
///   text) or of fixed-width strings (`<U…`, `|S…`).
/// * `.csv`, `.tsv`, `.txt` (tab-separated; a `.txt` without tabs is one label per line): the
///   first column. The first line is a header, and skipped, when its first field is `label`,
///   `labels` or `t` (any case). To take another column by its header name, use
///   [`LabelSource::parse`]`("meta.csv:cell_type")`.
///
/// * `.h5ad`: an `obs` column named after the file (`rna.h5ad:cell_type`), as
///   [`H5adFile::obs_column`] reads it.
///
/// Blank lines before the first line and after the last value are ignored; a blank line or an
/// empty field elsewhere is an error naming its line, as is a file without values.
pub fn read_labels(path: &Path) -> Result<Vec<String>, IoError> {
    LabelSource::from(path).read_labels()
}

/// Reads one unit id per row: the same forms as [`read_labels`], with `id` or `ids` (any case)
/// recognised as the header; an `.h5ad` named without a column gives its `obs_names`.
pub fn read_ids(path: &Path) -> Result<Vec<String>, IoError> {
    LabelSource::from(path).read_ids()
}

fn read_text_column(
    path: &Path,
    delimiter: Delimiter,
    column: Option<&str>,
    kind: Kind,
) -> Result<Vec<String>, IoError> {
    let mut records = Records::open(path, delimiter, Comments::Keep)?;
    let mut record = Fields::default();
    let empty = || IoError::Empty {
        path: path.to_path_buf(),
        expected: kind.expected,
    };
    let first = records.next_into(&mut record)?.ok_or_else(empty)?;
    let (index, first_is_data) = match column {
        Some(name) => (column_index(path, &record, name)?, false),
        None => (0, !is_header(&record, kind)),
    };
    let mut column = Column {
        path,
        kind,
        index,
        width: record.len(),
        values: Vec::new(),
    };
    if first_is_data {
        column.push(&record, first.line)?;
    }
    while let Some(at) = records.next_into(&mut record)? {
        // Blank lines at the end of the file are harmless; before a value, one is a missing value.
        if let Some(blank) = at.blank_before {
            let location = Location::Line(blank);
            return Err(IoError::EmptyField {
                path: path.to_path_buf(),
                location,
                what: kind.what,
            });
        }
        column.push(&record, at.line)?;
    }
    if column.values.is_empty() {
        return Err(empty());
    }
    Ok(column.values)
}

/// The values of one column, collected record by record with the checks each needs.
struct Column<'a> {
    path: &'a Path,
    kind: Kind,
    index: usize,
    width: usize,
    values: Vec<String>,
}

impl Column<'_> {
    fn push(&mut self, record: &Fields, line: u64) -> Result<(), IoError> {
        let path = || self.path.to_path_buf();
        if record.len() != self.width {
            let (expected, found) = (self.width, record.len());
            return Err(IoError::Ragged {
                path: path(),
                line,
                expected,
                found,
            });
        }
        match record.get(self.index) {
            Some(value) if !value.is_empty() => {
                self.values.push(value.to_owned());
                Ok(())
            }
            _ => {
                let location = Location::Line(line);
                Err(IoError::EmptyField {
                    path: path(),
                    location,
                    what: self.kind.what,
                })
            }
        }
    }
}

fn is_header(record: &Fields, kind: Kind) -> bool {
    let first = record.get(0).unwrap_or("");
    kind.header_names
        .iter()
        .any(|name| first.eq_ignore_ascii_case(name))
}

fn column_index(path: &Path, header: &Fields, name: &str) -> Result<usize, IoError> {
    header
        .iter()
        .position(|field| field == name)
        .ok_or_else(|| IoError::NoSuchColumn {
            path: path.to_path_buf(),
            column: name.to_owned(),
            available: header.iter().map(str::to_owned).collect(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{npy_bytes, write_file};
    use ndarray::array;
    use ndarray_npy::WriteNpyExt;

    fn strings(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| (*v).to_owned()).collect()
    }

    #[test]
    fn labels_from_int64_npy_are_decimal_text() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.npy");
        array![3i64, -1, 1_000_000_000_000]
            .write_npy(std::fs::File::create(&path).unwrap())
            .unwrap();
        assert_eq!(
            read_labels(&path).unwrap(),
            strings(&["3", "-1", "1000000000000"])
        );

        let column = npy_bytes("|u1", false, &[2, 1], &[7, 255]);
        let path = write_file(dir.path(), "u8.npy", &column);
        assert_eq!(read_labels(&path).unwrap(), strings(&["7", "255"]));

        let wide = npy_bytes("<i2", false, &[1, 2], &[0; 4]);
        let path = write_file(dir.path(), "wide.npy", &wide);
        let err = read_labels(&path).unwrap_err().to_string();
        assert!(
            err.contains("shape (1, 2); it must be 1-D (n) or n × 1"),
            "{err}"
        );
    }

    #[test]
    fn labels_from_text_with_and_without_header() {
        let dir = tempfile::tempdir().unwrap();
        let plain = write_file(dir.path(), "t.txt", b"B cell\nCD4 T\nB cell\n\n");
        assert_eq!(
            read_labels(&plain).unwrap(),
            strings(&["B cell", "CD4 T", "B cell"])
        );
        let header = write_file(dir.path(), "t.csv", b"Label\nNK\n\"Mono, CD14\"\n");
        assert_eq!(
            read_labels(&header).unwrap(),
            strings(&["NK", "Mono, CD14"])
        );
        let first_column = write_file(dir.path(), "two.csv", b"t,batch\nNK,1\nB,2\n");
        assert_eq!(read_labels(&first_column).unwrap(), strings(&["NK", "B"]));
    }

    #[test]
    fn a_named_column_is_chosen_from_a_table() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_file(dir.path(), "meta.csv", b"id,cell_type\nc1,NK\nc2,B\n");
        let spec = format!("{}:cell_type", path.display());
        let source = LabelSource::parse(&spec);
        assert_eq!(
            source,
            LabelSource {
                path: path.clone(),
                column: Some("cell_type".into())
            }
        );
        assert_eq!(source.read_labels().unwrap(), strings(&["NK", "B"]));
        assert_eq!(
            LabelSource::parse(&format!("{}:id", path.display()))
                .read_ids()
                .unwrap(),
            strings(&["c1", "c2"])
        );
        assert_eq!(read_ids(&path).unwrap(), strings(&["c1", "c2"]));

        let err = LabelSource::parse(&format!("{}:celltype", path.display()))
            .read_labels()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no column named \"celltype\"") && err.contains("id, cell_type"),
            "{err}"
        );
    }

    #[test]
    fn parse_keeps_paths_that_merely_contain_a_colon() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_file(dir.path(), "a:b.csv", b"x\n");
        let spec = path.display().to_string();
        assert_eq!(
            LabelSource::parse(&spec),
            LabelSource {
                path: path.clone(),
                column: None
            }
        );
        let missing = "no/such/file.csv:cell_type";
        assert_eq!(LabelSource::parse(missing).path, PathBuf::from(missing));
    }

    #[test]
    fn empty_labels_are_errors_naming_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let blank = write_file(dir.path(), "blank.txt", b"labels\nNK\n\nB\n");
        let err = read_labels(&blank).unwrap_err().to_string();
        assert_eq!(err, format!("{}: line 3: empty label", blank.display()));
        let after_header = write_file(dir.path(), "after.txt", b"\nlabels\n\nB\n");
        let err = read_labels(&after_header).unwrap_err().to_string();
        assert_eq!(
            err,
            format!("{}: line 3: empty label", after_header.display())
        );

        let field = write_file(dir.path(), "field.csv", b"NK,1\n,2\n");
        let err = read_labels(&field).unwrap_err().to_string();
        assert_eq!(err, format!("{}: line 2: empty label", field.display()));

        let empty = write_file(dir.path(), "empty.csv", b"");
        let err = read_labels(&empty).unwrap_err().to_string();
        assert_eq!(
            err,
            format!("{}: empty, expected one label per row", empty.display())
        );
        let header_only = write_file(dir.path(), "header.csv", b"label\n");
        assert!(
            read_labels(&header_only)
                .unwrap_err()
                .to_string()
                .contains("empty")
        );
    }

    #[test]
    fn a_column_cannot_be_chosen_from_npy() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_file(dir.path(), "t.npy", &npy_bytes("|u1", false, &[1], &[1]));
        let source = LabelSource {
            path,
            column: Some("x".into()),
        };
        assert!(matches!(
            source.read_labels(),
            Err(IoError::ColumnNotSupported { .. })
        ));
    }
}

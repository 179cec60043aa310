//! An open `.h5ad` file and the reads every part of the reader shares: which objects exist,
//! attributes, element types, and whole datasets read a row window at a time.
//!
//! The file is opened with hdf5-pure's streaming reader, which reads metadata and chunks from
//! disk on demand, so a read holds what it returns plus one window, never the file. Every size a
//! file declares (a shape, a string width) is checked against the reader's memory budget before
//! anything is allocated for it: a corrupt or hostile file gets a one-line error, not an abort.
//! Every error names the file and the HDF5 path at fault.

use std::collections::HashMap;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use hdf5_pure::{AttrValue, DType, Dataset, File, Group, ReadSeekSource};

use crate::error::{IoError, WithPath, numpy_shape};
use crate::format::ensure_not_empty;

/// What an empty file should have been.
const EXPECTED: &str = "an AnnData .h5ad file";

/// The stored bytes a window of rows aims at: large enough that per-read overhead (a header parse,
/// a chunk lookup) does not matter, small enough to be negligible beside the result.
pub(crate) const WINDOW_BYTES: u64 = 4 << 20;

/// What an object in the file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Group,
    Dataset,
}

/// The element type of a dataset, as the reader tells them apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Element {
    Float,
    Signed,
    Unsigned,
    /// h5py's boolean: an enumeration `FALSE = 0`, `TRUE = 1` over an 8-bit integer.
    Bool,
    /// A fixed-length or variable-length string.
    Text,
    /// Anything else, by the name a message shows.
    Other(String),
}

/// An open `.h5ad` file, its name for messages, and the memory budget of its reads.
pub(crate) struct H5ad {
    path: PathBuf,
    file: File,
    max_bytes: u64,
}

impl H5ad {
    /// Opens `path` with the streaming reader: nothing but the superblock is read yet.
    pub(crate) fn open(path: &Path, max_bytes: u64) -> Result<Self, IoError> {
        ensure_not_empty(path, EXPECTED)?;
        // Operating-system errors (a missing file, permissions) in the system's words.
        std::fs::File::open(path).with_path(path)?;
        let file = File::open_streaming(path).map_err(|cause| not_hdf5(path, cause))?;
        Ok(H5ad {
            path: path.to_path_buf(),
            file,
            max_bytes,
        })
    }

    /// Reads a file held in memory through the same lazy reader as [`H5ad::open`]; `name` is what
    /// messages call it.
    pub(crate) fn from_bytes(name: &Path, bytes: Vec<u8>, max_bytes: u64) -> Result<Self, IoError> {
        if bytes.is_empty() {
            return Err(IoError::Empty {
                path: name.to_path_buf(),
                expected: EXPECTED,
            });
        }
        let source =
            ReadSeekSource::new(Cursor::new(bytes)).map_err(|cause| not_hdf5(name, cause))?;
        let file = File::from_source(source).map_err(|cause| not_hdf5(name, cause))?;
        Ok(H5ad {
            path: name.to_path_buf(),
            file,
            max_bytes,
        })
    }

    /// The same file with another memory budget for its reads.
    pub(crate) fn with_budget(self, max_bytes: u64) -> Self {
        H5ad { max_bytes, ..self }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// An error about the object at `key`: "FILE: KEY: message".
    pub(crate) fn error(&self, key: &str, message: impl Into<String>) -> IoError {
        IoError::H5ad {
            path: self.path.clone(),
            key: key.to_owned(),
            message: message.into(),
        }
    }

    /// Wraps an error of the HDF5 reader with the key being read.
    pub(crate) fn hdf5<E: std::fmt::Display>(&self, key: &str) -> impl FnOnce(E) -> IoError {
        move |cause| self.error(key, format!("cannot read: {cause}"))
    }

    /// What `key` is, or `None` when the file has no such object (or a part of the path is not a
    /// group). Each step of the path is looked up in its parent, so a missing object is an answer
    /// and not an error of the HDF5 reader.
    pub(crate) fn kind(&self, key: &str) -> Option<Kind> {
        let mut group = self.file.root();
        let mut parts = key.split('/').peekable();
        while let Some(part) = parts.next() {
            if part.is_empty() {
                return None;
            }
            let groups = group.groups().ok()?;
            let is_group = groups.iter().any(|name| name == part);
            if parts.peek().is_none() {
                if is_group {
                    return Some(Kind::Group);
                }
                let datasets = group.datasets().ok()?;
                return datasets
                    .iter()
                    .any(|name| name == part)
                    .then_some(Kind::Dataset);
            }
            if !is_group {
                return None;
            }
            group = group.group(part).ok()?;
        }
        None
    }

    /// The dataset at `key`, its chunks checked (see [`H5ad::check_chunks`]).
    pub(crate) fn dataset(&self, key: &str) -> Result<Dataset, IoError> {
        let dataset = match self.kind(key) {
            Some(Kind::Dataset) => self.file.dataset(key).map_err(self.hdf5(key))?,
            Some(Kind::Group) => return Err(self.error(key, "a group, expected a dataset")),
            None => return Err(self.error(key, "not in the file")),
        };
        self.check_chunks(key, &dataset)?;
        Ok(dataset)
    }

    /// Fails when a chunk of a chunked dataset could never be read: larger than the memory budget
    /// once decoded, or stored past the end of the file. hdf5-pure 0.47 sizes the buffer of
    /// adjacent chunks it reads together by the sizes the chunk index declares, before reading, so
    /// a corrupt index could otherwise ask for gigabytes (found by fuzzing; see
    /// `tests/fuzz_corpus.rs`). The index is read once per dataset opened.
    fn check_chunks(&self, key: &str, dataset: &Dataset) -> Result<(), IoError> {
        let Some(chunk) = dataset.chunk_shape().map_err(self.hdf5(key))? else {
            return Ok(());
        };
        let element = dataset.element_size().map_err(self.hdf5(key))?;
        let decoded = chunk.iter().try_fold(element, |n, &d| n.checked_mul(d));
        let decoded = decoded
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(usize::MAX);
        self.check_budget(key, 1, decoded)?;
        let shape = dataset.shape().map_err(self.hdf5(key))?;
        let count = shape
            .iter()
            .zip(&chunk)
            .try_fold(1u64, |n, (&d, &c)| n.checked_mul(d.div_ceil(c.max(1))));
        let count = count
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(usize::MAX);
        self.check_budget(key, count, size_of::<hdf5_pure::Chunk>())?;
        let file_size = self.file.file_size();
        for stored in dataset.chunks().map_err(self.hdf5(key))? {
            let end = stored.address.checked_add(stored.storage_size);
            if end.is_none_or(|end| end > file_size) {
                let (at, size) = (stored.address, stored.storage_size);
                let message = format!(
                    "the chunk at {:?} claims {size} bytes at offset {at}, past the end of the \
                     {file_size}-byte file",
                    stored.offset
                );
                return Err(self.error(key, message));
            }
        }
        Ok(())
    }

    pub(crate) fn group(&self, key: &str) -> Result<Group, IoError> {
        match self.kind(key) {
            Some(Kind::Group) => self.file.group(key).map_err(self.hdf5(key)),
            Some(Kind::Dataset) => Err(self.error(key, "a dataset, expected a group")),
            None => Err(self.error(key, "not in the file")),
        }
    }

    /// The names in a group (subgroups and datasets), sorted; none when there is no such group.
    pub(crate) fn members(&self, key: &str) -> Vec<String> {
        let Ok(group) = self.group(key) else {
            return Vec::new();
        };
        let mut names = group.groups().unwrap_or_default();
        names.extend(group.datasets().unwrap_or_default());
        names.sort();
        names
    }

    /// The attributes of the group or dataset at `key` that have a value type (hdf5-pure leaves
    /// out the others, e.g. object references).
    pub(crate) fn attrs(&self, key: &str) -> Result<HashMap<String, AttrValue>, IoError> {
        match self.kind(key) {
            Some(Kind::Group) => self.group(key)?.attrs().map_err(self.hdf5(key)),
            Some(Kind::Dataset) => self.dataset(key)?.attrs().map_err(self.hdf5(key)),
            None => Err(self.error(key, "not in the file")),
        }
    }

    /// A string attribute; `None` when absent or not a string.
    pub(crate) fn string_attr(&self, key: &str, name: &str) -> Result<Option<String>, IoError> {
        let attrs = self.attrs(key)?;
        Ok(attrs
            .get(name)
            .and_then(AttrValue::as_str)
            .map(str::to_owned))
    }

    /// The shape of a dataset, each dimension a `usize`.
    pub(crate) fn shape(&self, key: &str, dataset: &Dataset) -> Result<Vec<usize>, IoError> {
        let shape = dataset.shape().map_err(self.hdf5(key))?;
        shape
            .iter()
            .map(|&n| usize::try_from(n))
            .collect::<Result<_, _>>()
            .map_err(|_| self.error(key, format!("shape {shape:?} is too large")))
    }

    /// The length of a 1-D dataset.
    pub(crate) fn length(&self, key: &str, dataset: &Dataset) -> Result<usize, IoError> {
        match self.shape(key, dataset)?[..] {
            [n] => Ok(n),
            ref shape => {
                let shape = numpy_shape(shape);
                Err(self.error(key, format!("array has shape {shape}; expected 1-D")))
            }
        }
    }

    pub(crate) fn element(&self, key: &str, dataset: &Dataset) -> Result<Element, IoError> {
        let dtype = dataset.dtype().map_err(self.hdf5(key))?;
        Ok(element(&dtype))
    }

    /// Fails unless `count` values of `bytes_each` bytes fit the memory budget, so no allocation
    /// is ever sized by a number the file declares without this check.
    pub(crate) fn check_budget(
        &self,
        key: &str,
        count: usize,
        bytes_each: usize,
    ) -> Result<(), IoError> {
        let bytes = (count as u128) * (bytes_each as u128);
        if bytes <= u128::from(self.max_bytes) {
            return Ok(());
        }
        let (size, limit) = (gigabytes(bytes), gigabytes(u128::from(self.max_bytes)));
        Err(self.error(
            key,
            format!(
                "{count} values would take {size} of memory, over the budget of {limit} \
                 (the machine's memory); read a smaller layer or an obsm embedding"
            ),
        ))
    }

    /// An empty vector with room for `count` values, within the budget.
    pub(crate) fn vec_with_capacity<T>(&self, key: &str, count: usize) -> Result<Vec<T>, IoError> {
        self.check_budget(key, count, size_of::<T>())?;
        let mut values = Vec::new();
        values
            .try_reserve_exact(count)
            .map_err(|_| self.error(key, format!("cannot allocate memory for {count} values")))?;
        Ok(values)
    }

    /// How many rows of a dataset one window reads: about [`WINDOW_BYTES`] of stored data, at
    /// least one row, and a whole number of chunks along the rows when the dataset is chunked (so
    /// no chunk is decompressed twice). `None` when its rows hold no values (a `(n, 0)` shape):
    /// there is nothing to read, however many rows it declares.
    pub(crate) fn window_rows(&self, key: &str, dataset: &Dataset) -> Result<Option<u64>, IoError> {
        let shape = dataset.shape().map_err(self.hdf5(key))?;
        let element = dataset.element_size().map_err(self.hdf5(key))?;
        let row_elements = shape
            .iter()
            .skip(1)
            .try_fold(1u64, |n, &d| n.checked_mul(d));
        let row_bytes = row_elements
            .and_then(|n| n.checked_mul(element))
            .ok_or_else(|| self.error(key, format!("rows of shape {shape:?} are too large")))?;
        let row_bytes_usize = usize::try_from(row_bytes)
            .map_err(|_| self.error(key, format!("rows of {row_bytes} bytes are too large")))?;
        self.check_budget(key, 1, row_bytes_usize)?;
        if row_bytes == 0 {
            return Ok(None);
        }
        let rows = (WINDOW_BYTES / row_bytes).max(1);
        let chunk_rows = match dataset.chunk_shape().map_err(self.hdf5(key))? {
            Some(chunk) => chunk.first().copied().unwrap_or(1).max(1),
            None => 1,
        };
        Ok(Some(rows.div_ceil(chunk_rows).saturating_mul(chunk_rows)))
    }

    /// Reads the rows `[start, end)` of a dataset window by window, handing each window (its first
    /// row and its values) to `visit`.
    pub(crate) fn for_each_window<T>(
        &self,
        key: &str,
        dataset: &Dataset,
        (start, end): (u64, u64),
        read: impl Fn(&Dataset, u64, u64) -> Result<Vec<T>, hdf5_pure::Error>,
        mut visit: impl FnMut(u64, Vec<T>) -> Result<(), IoError>,
    ) -> Result<(), IoError> {
        let Some(window) = self.window_rows(key, dataset)? else {
            return Ok(());
        };
        let mut row = start;
        while row < end {
            let count = window.min(end - row);
            let values = read(dataset, row, count).map_err(self.hdf5(key))?;
            visit(row, values)?;
            row += count;
        }
        Ok(())
    }

    /// A whole dataset, read window by window into one vector of `n · row elements` values.
    pub(crate) fn read_all<T>(
        &self,
        key: &str,
        dataset: &Dataset,
        read: impl Fn(&Dataset, u64, u64) -> Result<Vec<T>, hdf5_pure::Error>,
    ) -> Result<Vec<T>, IoError> {
        let shape = self.shape(key, dataset)?;
        let count = shape
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .ok_or_else(|| self.error(key, format!("shape {shape:?} is too large")))?;
        let mut values = self.vec_with_capacity(key, count)?;
        let rows = shape.first().map_or(1, |&n| n as u64);
        self.for_each_window(key, dataset, (0, rows), read, |_, window| {
            values.extend(window);
            Ok(())
        })?;
        if values.len() != count {
            let found = values.len();
            return Err(self.error(key, format!("holds {found} values; its shape says {count}")));
        }
        Ok(values)
    }

    /// A 1-D dataset of integers (any width, signed or not) as `i64`.
    pub(crate) fn read_integers(&self, key: &str) -> Result<Vec<i64>, IoError> {
        let dataset = self.dataset(key)?;
        self.length(key, &dataset)?;
        match self.element(key, &dataset)? {
            Element::Signed | Element::Bool => self.read_all(key, &dataset, Dataset::read_i64_rows),
            Element::Unsigned => self
                .read_all(key, &dataset, Dataset::read_u64_rows)?
                .into_iter()
                .map(|value| {
                    i64::try_from(value)
                        .map_err(|_| self.error(key, format!("value {value} is too large")))
                })
                .collect(),
            other => Err(self.error(key, format!("holds {}; expected integers", other.name()))),
        }
    }

    /// Fails unless a dataset holds numbers (integers, floats or booleans).
    pub(crate) fn check_numeric(&self, key: &str, dataset: &Dataset) -> Result<(), IoError> {
        match self.element(key, dataset)? {
            Element::Float | Element::Signed | Element::Unsigned | Element::Bool => Ok(()),
            other => Err(self.error(
                key,
                format!("holds {}; a matrix must hold numbers", other.name()),
            )),
        }
    }
}

impl Element {
    /// The type as NumPy names it, for messages.
    pub(crate) fn name(&self) -> String {
        match self {
            Element::Float => "floats".to_owned(),
            Element::Signed | Element::Unsigned => "integers".to_owned(),
            Element::Bool => "booleans".to_owned(),
            Element::Text => "strings".to_owned(),
            Element::Other(name) => name.clone(),
        }
    }
}

/// The reader's view of an element type.
pub(crate) fn element(dtype: &DType) -> Element {
    match dtype {
        DType::F32 | DType::F64 => Element::Float,
        DType::I8 | DType::I16 | DType::I32 | DType::I64 => Element::Signed,
        DType::U8 | DType::U16 | DType::U32 | DType::U64 => Element::Unsigned,
        DType::Enum(names) if names.len() == 2 && names[0] == "FALSE" && names[1] == "TRUE" => {
            Element::Bool
        }
        DType::String | DType::VariableLengthString => Element::Text,
        DType::Compound(_) => Element::Other("a compound type (records)".to_owned()),
        DType::Enum(_) => Element::Other("an enumeration".to_owned()),
        DType::Array(..) => Element::Other("an array type".to_owned()),
        DType::ObjectReference => Element::Other("object references".to_owned()),
        other => Element::Other(format!("HDF5 type {other}")),
    }
}

fn not_hdf5(path: &Path, cause: impl std::fmt::Display) -> IoError {
    IoError::NotHdf5 {
        path: path.to_path_buf(),
        cause: cause.to_string(),
    }
}

/// A byte count in GB (or MB below one GB), as a message shows it.
fn gigabytes(bytes: u128) -> String {
    let bytes = bytes as f64;
    if bytes >= 1e9 {
        format!("{:.1} GB", bytes / 1e9)
    } else {
        format!("{:.1} MB", bytes / 1e6)
    }
}

//! Matrices of an AnnData file — `X`, `layers/NAME`, `obsm/NAME` — as dense `n × d` float64
//! arrays, read a row window at a time into the one output array:
//!
//! * a dense 2-D dataset of any integer, float or boolean type;
//! * a `csr_matrix` or `csc_matrix` group (`data`, `indices`, `indptr`, attribute `shape`; in
//!   files older than anndata 0.7 `h5sparse_format` and `h5sparse_shape`), windows of whole rows
//!   (columns, for CSC) of at most [`WINDOW_ENTRIES`] stored entries, repeated entries summed as
//!   SciPy does;
//! * a field of the compound `obsm` dataset of files older than anndata 0.7.

use hdf5_pure::Dataset;
use ndarray::Array2;

use crate::error::{IoError, numpy_shape};
use crate::h5ad::H5adMatrix;
use crate::h5ad::file::{H5ad, Kind};
use crate::h5ad::records::Records;

/// Stored entries of a sparse matrix read per window.
const WINDOW_ENTRIES: usize = 1 << 19;

/// The two compressed sparse layouts, by the axis `indptr` runs along.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compressed {
    Rows,
    Columns,
}

impl Compressed {
    fn name(self) -> &'static str {
        match self {
            Compressed::Rows => "csr_matrix",
            Compressed::Columns => "csc_matrix",
        }
    }
}

/// Reads the matrix `which` names, checked to be non-empty (not yet checked to be finite).
pub(crate) fn read(h5: &H5ad, which: &H5adMatrix) -> Result<Array2<f64>, IoError> {
    let matrix = match which {
        H5adMatrix::Obsm(name) if h5.kind("obsm") == Some(Kind::Dataset) => {
            read_record_field(h5, name)?
        }
        _ => {
            let key = which.key();
            match h5.kind(&key) {
                Some(Kind::Group) => read_sparse(h5, &key)?,
                Some(Kind::Dataset) => read_dense(h5, &key)?,
                None => return Err(missing(h5, which)),
            }
        }
    };
    if matrix.is_empty() {
        let shape = numpy_shape(matrix.shape());
        let message = format!("empty (shape {shape}); expected an n × d matrix");
        return Err(h5.error(&which.key(), message));
    }
    Ok(matrix)
}

/// The error for a matrix the file does not have, listing those it has.
fn missing(h5: &H5ad, which: &H5adMatrix) -> IoError {
    let (what, group, name) = match which {
        H5adMatrix::X => {
            let message =
                "not in the file (saved with X=None); read a layer or an obsm entry instead";
            return h5.error("X", message);
        }
        H5adMatrix::Layer(name) => ("layer", "layers", name),
        H5adMatrix::Obsm(name) => ("obsm entry", "obsm", name),
    };
    IoError::H5adNoSuchKey {
        path: h5.path().to_path_buf(),
        what,
        group,
        name: name.clone(),
        available: h5.members(group),
    }
}

/// The names of the matrices in `layers` or `obsm` (the fields of a compound `obsm`).
pub(crate) fn names(h5: &H5ad, group: &str) -> Result<Vec<String>, IoError> {
    if group == "obsm" && h5.kind("obsm") == Some(Kind::Dataset) {
        return match Records::open(h5, "obsm")? {
            Some(records) => Ok(records.names()),
            None => Err(h5.error("obsm", "a dataset that is not a table of embeddings")),
        };
    }
    Ok(h5.members(group))
}

/// An `n × d` array of `n · d` zeros, within the memory budget.
fn zeros(h5: &H5ad, key: &str, (rows, columns): (usize, usize)) -> Result<Array2<f64>, IoError> {
    let count = rows
        .checked_mul(columns)
        .ok_or_else(|| h5.error(key, format!("shape ({rows}, {columns}) is too large")))?;
    let mut values = h5.vec_with_capacity::<f64>(key, count)?;
    values.resize(count, 0.0);
    // ndarray also refuses a side longer than isize::MAX, even beside a side of 0 (found by
    // fuzzing: a (2^63, 0) shape panicked here when this was taken for an invariant).
    Array2::from_shape_vec((rows, columns), values)
        .map_err(|_| h5.error(key, format!("shape ({rows}, {columns}) is too large")))
}

fn read_dense(h5: &H5ad, key: &str) -> Result<Array2<f64>, IoError> {
    let dataset = h5.dataset(key)?;
    let shape = h5.shape(key, &dataset)?;
    let [rows, columns] = shape[..] else {
        let shape = numpy_shape(&shape);
        return Err(h5.error(key, format!("array has shape {shape}; it must be n × d")));
    };
    h5.check_numeric(key, &dataset)?;
    let mut dense = zeros(h5, key, (rows, columns))?;
    let out = dense
        .as_slice_mut()
        .expect("a new array is in standard layout");
    h5.for_each_window(
        key,
        &dataset,
        (0, rows as u64),
        Dataset::read_f64_rows,
        |start, window| {
            let at = start as usize * columns;
            let end = at + window.len();
            if end > out.len() {
                return Err(h5.error(key, "holds more values than its shape"));
            }
            out[at..end].copy_from_slice(&window);
            Ok(())
        },
    )?;
    Ok(dense)
}

fn read_sparse(h5: &H5ad, key: &str) -> Result<Array2<f64>, IoError> {
    let layout = sparse_layout(h5, key)?;
    let shape = sparse_shape(h5, key)?;
    let malformed =
        |message: String| h5.error(key, format!("malformed {}: {message}", layout.name()));
    let mut dense = zeros(h5, key, shape)?;
    let indptr = h5.read_integers(&format!("{key}/indptr"))?;
    let data_key = format!("{key}/data");
    let indices_key = format!("{key}/indices");
    let data = h5.dataset(&data_key)?;
    let indices = h5.dataset(&indices_key)?;
    let stored = h5.length(&data_key, &data)?;
    h5.check_numeric(&data_key, &data)?;
    if h5.length(&indices_key, &indices)? != stored {
        let n_indices = h5.length(&indices_key, &indices)?;
        return Err(malformed(format!(
            "{stored} data entries but {n_indices} indices"
        )));
    }
    check_indptr(layout, shape, &indptr, stored).map_err(malformed)?;
    for (first, last) in windows(&indptr) {
        let (from, to) = (indptr[first] as u64, indptr[last] as u64);
        let values = data
            .read_f64_rows(from, to - from)
            .map_err(h5.hdf5(&data_key))?;
        let minor = read_indices(h5, &indices_key, &indices, (from, to))?;
        let window = Window {
            first,
            indptr: &indptr[first..=last],
            data: &values,
            indices: &minor,
        };
        scatter(layout, &mut dense, &window).map_err(malformed)?;
    }
    Ok(dense)
}

fn read_indices(
    h5: &H5ad,
    key: &str,
    dataset: &Dataset,
    (from, to): (u64, u64),
) -> Result<Vec<i64>, IoError> {
    use crate::h5ad::file::Element;
    match h5.element(key, dataset)? {
        Element::Signed => dataset.read_i64_rows(from, to - from).map_err(h5.hdf5(key)),
        // An index past i64 is past every column too: `scatter` reports it as out of range.
        Element::Unsigned => Ok(dataset
            .read_u64_rows(from, to - from)
            .map_err(h5.hdf5(key))?
            .into_iter()
            .map(|index| i64::try_from(index).unwrap_or(i64::MAX))
            .collect()),
        other => Err(h5.error(key, format!("holds {}; expected integers", other.name()))),
    }
}

/// The layout of a sparse matrix group, from anndata's `encoding-type` or, in files older than
/// anndata 0.7, h5sparse's `h5sparse_format`.
fn sparse_layout(h5: &H5ad, key: &str) -> Result<Compressed, IoError> {
    let encoding = h5.string_attr(key, "encoding-type")?;
    let legacy = h5.string_attr(key, "h5sparse_format")?;
    match (encoding.as_deref(), legacy.as_deref()) {
        (Some("csr_matrix"), _) | (None, Some("csr")) => Ok(Compressed::Rows),
        (Some("csc_matrix"), _) | (None, Some("csc")) => Ok(Compressed::Columns),
        (Some("dataframe"), _) => Err(h5.error(
            key,
            "a data frame, not a matrix; store the embedding as an array \
             (adata.obsm[name] = df.to_numpy())",
        )),
        (Some(other), _) => Err(h5.error(
            key,
            format!("encoding-type {other:?} is not a matrix (array, csr_matrix or csc_matrix)"),
        )),
        (None, _) => Err(h5.error(key, "a group without an encoding-type; not a matrix")),
    }
}

/// `(rows, columns)` from the attribute `shape` (`h5sparse_shape` in older files).
fn sparse_shape(h5: &H5ad, key: &str) -> Result<(usize, usize), IoError> {
    let attrs = h5.attrs(key)?;
    let shape = attrs
        .get("shape")
        .or_else(|| attrs.get("h5sparse_shape"))
        .ok_or_else(|| h5.error(key, "sparse matrix without a shape attribute"))?
        .to_i64s()
        .ok_or_else(|| h5.error(key, "sparse matrix shape is not integers"))?;
    let dimension = |value: i64| usize::try_from(value).ok();
    match shape[..] {
        [rows, columns] => dimension(rows).zip(dimension(columns)),
        _ => None,
    }
    .ok_or_else(|| h5.error(key, format!("sparse matrix shape {shape:?} is not n × d")))
}

/// Checks `indptr` once, so that every window is in range: one entry per row (column) plus one,
/// non-negative, non-decreasing, ending within the stored entries.
fn check_indptr(
    layout: Compressed,
    (rows, columns): (usize, usize),
    indptr: &[i64],
    stored: usize,
) -> Result<(), String> {
    let major = match layout {
        Compressed::Rows => rows,
        Compressed::Columns => columns,
    };
    if indptr.len() != major + 1 {
        let n = indptr.len();
        return Err(format!("indptr has {n} entries; shape needs {}", major + 1));
    }
    if let Some(&first) = indptr.first().filter(|&&first| first < 0) {
        return Err(format!("indptr[0] = {first} is negative"));
    }
    if let Some(outer) = indptr.windows(2).position(|pair| pair[0] > pair[1]) {
        let pair = &indptr[outer..outer + 2];
        return Err(format!(
            "indptr[{outer}..={}] = {pair:?} is out of order",
            outer + 1
        ));
    }
    let last = indptr.last().copied().unwrap_or(0);
    if usize::try_from(last).map_or(true, |last| last > stored) {
        return Err(format!(
            "indptr ends at {last}, past the {stored} stored entries"
        ));
    }
    Ok(())
}

/// Ranges `[first, last)` of rows (columns) whose stored entries fill a window: at most
/// [`WINDOW_ENTRIES`], or one row when that row alone has more. `indptr` is checked.
fn windows(indptr: &[i64]) -> Vec<(usize, usize)> {
    let mut ranges = Vec::new();
    let mut first = 0;
    let major = indptr.len().saturating_sub(1);
    while first < major {
        let mut last = first + 1;
        while last < major && (indptr[last + 1] - indptr[first]) as usize <= WINDOW_ENTRIES {
            last += 1;
        }
        ranges.push((first, last));
        first = last;
    }
    ranges
}

/// The stored entries of rows (columns) `first ..` of a compressed sparse matrix: their `indptr`
/// (absolute, one more than the rows), and their values and minor indices from `indptr[0]` on.
pub(crate) struct Window<'a> {
    pub(crate) first: usize,
    pub(crate) indptr: &'a [i64],
    pub(crate) data: &'a [f64],
    pub(crate) indices: &'a [i64],
}

/// Adds a window's entries into the dense matrix, checking every index, so that a malformed file
/// is an error and never a panic. Repeated entries are summed, as SciPy does.
pub(crate) fn scatter(
    layout: Compressed,
    dense: &mut Array2<f64>,
    window: &Window,
) -> Result<(), String> {
    let (rows, columns) = dense.dim();
    let minor = match layout {
        Compressed::Rows => columns,
        Compressed::Columns => rows,
    };
    let base = window.indptr.first().copied().unwrap_or(0);
    let count = window.indptr.last().copied().unwrap_or(0) - base;
    if window.data.len() as i64 != count || window.indices.len() as i64 != count {
        let (n_data, n_indices) = (window.data.len(), window.indices.len());
        return Err(format!(
            "read {n_data} values and {n_indices} indices for {count} entries"
        ));
    }
    for (offset, bounds) in window.indptr.windows(2).enumerate() {
        let outer = window.first + offset;
        let range = (bounds[0] - base) as usize..(bounds[1] - base) as usize;
        for position in range {
            let index = window.indices[position];
            let inner = usize::try_from(index)
                .ok()
                .filter(|&inner| inner < minor)
                .ok_or_else(|| {
                    let at = base as usize + position;
                    format!("index {index} at {at} is outside 0..{minor}")
                })?;
            let at = match layout {
                Compressed::Rows => [outer, inner],
                Compressed::Columns => [inner, outer],
            };
            dense[at] += window.data[position];
        }
    }
    Ok(())
}

/// A field of the compound `obsm` dataset of pre-0.7 files: `n` records of `d` numbers.
fn read_record_field(h5: &H5ad, name: &str) -> Result<Array2<f64>, IoError> {
    let records = Records::open(h5, "obsm")?
        .ok_or_else(|| h5.error("obsm", "a dataset that is not a table of embeddings"))?;
    let Some(field) = records.field(h5, name)? else {
        return Err(IoError::H5adNoSuchKey {
            path: h5.path().to_path_buf(),
            what: "obsm entry",
            group: "obsm",
            name: name.to_owned(),
            available: records.names(),
        });
    };
    let rows = records.len(h5)?;
    let mut dense = zeros(h5, records.key(), (rows, field.count))?;
    let out = dense
        .as_slice_mut()
        .expect("a new array is in standard layout");
    let mut at = 0;
    let wrong_count = || h5.error("obsm", format!("field {name:?} does not hold {rows} rows"));
    records.for_each(h5, &field, |row, value| {
        let number = value
            .as_f64()
            .ok_or_else(|| h5.error("obsm", format!("field {name:?}, row {row}: not a number")))?;
        *out.get_mut(at).ok_or_else(wrong_count)? = number;
        at += 1;
        Ok(())
    })?;
    if at != out.len() {
        return Err(wrong_count());
    }
    Ok(dense)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    fn expected() -> Array2<f64> {
        array![[1.0, 0.0, 2.0], [0.0, 0.0, 0.0], [0.0, 3.0, 0.0]]
    }

    /// The whole matrix as one window.
    fn densify(
        layout: Compressed,
        shape: (usize, usize),
        data: &[f64],
        indices: &[i64],
        indptr: &[i64],
    ) -> Result<Array2<f64>, String> {
        check_indptr(layout, shape, indptr, data.len())?;
        let mut dense = Array2::zeros(shape);
        let window = Window {
            first: 0,
            indptr,
            data,
            indices,
        };
        scatter(layout, &mut dense, &window)?;
        Ok(dense)
    }

    #[test]
    fn csr_and_csc_densify_to_the_same_matrix_summing_repeats() {
        // The 2 written as 0.5 + 1.5.
        let data = [1.0, 0.5, 1.5, 3.0];
        let csr = densify(
            Compressed::Rows,
            (3, 3),
            &data,
            &[0, 2, 2, 1],
            &[0, 3, 3, 4],
        );
        assert_eq!(csr.unwrap(), expected());
        let csc = densify(
            Compressed::Columns,
            (3, 3),
            &[1.0, 3.0, 2.0],
            &[0, 2, 0],
            &[0, 1, 2, 3],
        );
        assert_eq!(csc.unwrap(), expected());
    }

    #[test]
    fn windows_split_rows_and_scatter_in_pieces_to_the_same_matrix() {
        let (data, indices, indptr) = ([1.0, 0.5, 1.5, 3.0], [0, 2, 2, 1], [0i64, 3, 3, 4]);
        let mut dense = Array2::zeros((3, 3));
        // Rows 0..1, then rows 1..3, as two windows read from the stored entries.
        for (first, last) in [(0, 1), (1, 3)] {
            let (from, to) = (indptr[first] as usize, indptr[last] as usize);
            let window = Window {
                first,
                indptr: &indptr[first..=last],
                data: &data[from..to],
                indices: &indices[from..to],
            };
            scatter(Compressed::Rows, &mut dense, &window).unwrap();
        }
        assert_eq!(dense, expected());
    }

    #[test]
    fn windows_hold_at_most_the_window_entries_and_at_least_one_row() {
        let big = WINDOW_ENTRIES as i64;
        assert_eq!(windows(&[0, 1, 2, 3]), [(0, 3)]);
        assert_eq!(
            windows(&[0, big, big + 1, 3 * big]),
            [(0, 1), (1, 2), (2, 3)]
        );
        assert_eq!(windows(&[0, 1, big, big + 2]), [(0, 2), (2, 3)]);
        assert!(windows(&[0]).is_empty());
    }

    #[test]
    fn malformed_sparse_is_an_error_not_a_panic() {
        let short = densify(Compressed::Rows, (2, 2), &[1.0], &[0], &[0, 1]);
        assert_eq!(short.unwrap_err(), "indptr has 2 entries; shape needs 3");
        let out_of_range = densify(Compressed::Rows, (1, 2), &[1.0], &[2], &[0, 1]);
        assert_eq!(out_of_range.unwrap_err(), "index 2 at 0 is outside 0..2");
        let decreasing = densify(Compressed::Rows, (2, 2), &[1.0], &[0], &[0, 1, 0]);
        assert!(decreasing.unwrap_err().contains("out of order"));
        let past_end = densify(Compressed::Rows, (1, 2), &[1.0], &[0], &[0, 2]);
        assert!(past_end.unwrap_err().contains("past the 1 stored entries"));
        let negative_start = densify(Compressed::Rows, (1, 2), &[1.0], &[0], &[-1, 1]);
        assert!(negative_start.unwrap_err().contains("negative"));
        let negative = densify(Compressed::Columns, (1, 1), &[1.0], &[-1], &[0, 1]);
        assert!(negative.unwrap_err().contains("index -1"));
    }
}

//! Reading AnnData `.h5ad` files, as single-cell users hold their data: `X`, a layer or an `obsm`
//! embedding as the `n × d` matrix, an `obs` column as the labels, `obs_names` as the unit ids.
//!
//! An `.h5ad` file is HDF5; it is read with the `hdf5` crate (hdf5-metno) against the system's
//! libhdf5, in the layout anndata ≥ 0.8 writes (anndata's "on-disk format" page):
//!
//! * a matrix (`X`, `layers/NAME`, `obsm/NAME`) is a dense 2-D dataset, or a group with attribute
//!   `encoding-type` = `csr_matrix` or `csc_matrix`, datasets `data`, `indices`, `indptr` and
//!   attribute `shape`;
//! * `obs` is a group (`encoding-type` = `dataframe`) whose attribute `_index` names the column
//!   holding the obs names; a column is a dataset (strings, integers, booleans), a `categorical`
//!   group (`categories` and `codes`, code −1 = missing) or a `nullable-*` group (`values` and
//!   `mask`).
//!
//! anndata 0.7 wrote the same layout except for categorical columns (codes referring to
//! `obs/__categories`), which are refused with a message saying how to re-save the file, as is the
//! `obs` of anndata < 0.7 (a compound dataset); the sparse `X` of those older files (attributes
//! `h5sparse_format`, `h5sparse_shape`) reads.
//!
//! Sparse matrices are made dense, so a matrix takes `8 · n · d` bytes whatever its sparsity:
//! 160 MB for 10 000 cells × 2 000 genes. That suits psa's inputs, which are scores, embeddings or
//! selected features; for all genes of a large atlas, choose an `obsm` embedding instead.

use std::fmt;
use std::path::Path;

use hdf5::types::{TypeDescriptor, VarLenAscii, VarLenUnicode};
use hdf5::{Dataset, File, Group, Location, LocationType};
use ndarray::Array2;

use crate::error::{IoError, WithPath, numpy_shape};
use crate::format::ensure_not_empty;
use crate::matrix::check_finite;

/// What an empty file should have been.
const EXPECTED: &str = "an AnnData .h5ad file";

/// How to bring an old file to the layout read here; anndata reads every older layout.
const RESAVE: &str = "psa reads .h5ad files written by anndata ≥ 0.8; re-save it with a current \
                      anndata: anndata.read_h5ad(path).write_h5ad(path)";

/// Which matrix of an AnnData file to read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum H5adMatrix {
    /// The main matrix, `adata.X`.
    #[default]
    X,
    /// A layer, `adata.layers[NAME]`, e.g. `counts`.
    Layer(String),
    /// An embedding, `adata.obsm[NAME]`, e.g. `X_pca`.
    Obsm(String),
}

impl H5adMatrix {
    /// Its path inside the file: `X`, `layers/NAME` or `obsm/NAME`.
    pub fn key(&self) -> String {
        match self {
            H5adMatrix::X => "X".to_owned(),
            H5adMatrix::Layer(name) => format!("layers/{name}"),
            H5adMatrix::Obsm(name) => format!("obsm/{name}"),
        }
    }
}

impl fmt::Display for H5adMatrix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key())
    }
}

/// Whether a path names an AnnData file, by its extension `.h5ad` (any case).
pub fn is_h5ad(path: &Path) -> bool {
    path.extension()
        .and_then(|extension| extension.to_str())
        .is_some_and(|extension| extension.eq_ignore_ascii_case("h5ad"))
}

/// Reads `X`, a layer or an `obsm` entry as an `n × d` matrix of finite numbers (row-major).
///
/// A dense matrix may hold any integer or float type (widened to f64); a `csr_matrix` or
/// `csc_matrix` is made dense, repeated entries summed as SciPy does. Errors name the file and the
/// key; a missing layer or `obsm` entry lists the ones the file has:
/// `rna.h5ad: no layer "counts" (layers: raw, spliced)`.
pub fn read_h5ad_matrix(path: &Path, which: &H5adMatrix) -> Result<Array2<f64>, IoError> {
    let file = H5ad::open(path)?;
    let key = file.matrix_key(which)?;
    let matrix = file.read_matrix(&key)?;
    check_finite(path, matrix.view())?;
    let (rows, columns) = matrix.dim();
    tracing::debug!(path = %path.display(), %key, rows, columns, "read h5ad matrix");
    Ok(matrix)
}

/// Reads one `obs` column as text, one value per row: a categorical gives its categories, strings
/// are taken as they are, integers as decimals, booleans as `True` / `False` (as pandas prints
/// them). Float columns are refused: labels and ids are compared exactly.
///
/// A missing value (categorical code −1, a masked entry of a nullable column) or an empty string
/// is an error naming its row (0-based). A missing column lists the columns the file has:
/// `rna.h5ad: obs has no column "cell_type" (columns: batch, donor)`.
pub fn read_h5ad_obs_column(path: &Path, column: &str) -> Result<Vec<String>, IoError> {
    let file = H5ad::open(path)?;
    let obs = file.obs()?;
    if column.is_empty() || column.contains('/') || !obs.group.link_exists(column) {
        return Err(IoError::H5adNoSuchColumn {
            path: path.to_path_buf(),
            column: column.to_owned(),
            available: file.obs_columns(&obs),
        });
    }
    file.read_obs(&format!("obs/{column}"))
}

/// Reads the unit ids, `adata.obs_names`: the `obs` column named by its `_index` attribute.
pub fn read_h5ad_obs_names(path: &Path) -> Result<Vec<String>, IoError> {
    let file = H5ad::open(path)?;
    let obs = file.obs()?;
    file.read_obs(&format!("obs/{}", obs.index))
}

/// An open `.h5ad` file and its name, which every error carries.
struct H5ad<'a> {
    path: &'a Path,
    file: File,
}

/// The `obs` data frame: its group and the name of its index column.
struct Obs {
    group: Group,
    index: String,
}

/// The two compressed sparse layouts, by the axis `indptr` runs along.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compressed {
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

impl<'a> H5ad<'a> {
    fn open(path: &'a Path) -> Result<Self, IoError> {
        ensure_not_empty(path, EXPECTED)?;
        // Operating-system errors (permissions) in the system's words, not HDF5's.
        std::fs::File::open(path).with_path(path)?;
        let file = File::open(path).map_err(|cause| IoError::NotHdf5 {
            path: path.to_path_buf(),
            cause: cause.to_string(),
        })?;
        Ok(H5ad { path, file })
    }

    fn error(&self, key: &str, message: impl Into<String>) -> IoError {
        IoError::H5ad {
            path: self.path.to_path_buf(),
            key: key.to_owned(),
            message: message.into(),
        }
    }

    /// Wraps an error of the HDF5 library with the key being read.
    fn hdf5(&self, key: &str) -> impl FnOnce(hdf5::Error) -> IoError {
        move |cause| self.error(key, format!("cannot read: {cause}"))
    }

    /// What `key` is, or `None` when the file has no such object. Each step of the path is checked
    /// in turn, as HDF5 requires of a link's parents.
    fn kind(&self, key: &str) -> Option<LocationType> {
        let mut end = 0;
        for part in key.split('/') {
            end += part.len();
            if part.is_empty() || !self.file.link_exists(&key[..end]) {
                return None;
            }
            end += 1;
        }
        self.file.loc_type_by_name(key).ok()
    }

    fn dataset(&self, key: &str) -> Result<Dataset, IoError> {
        match self.kind(key) {
            Some(LocationType::Dataset) => self.file.dataset(key).map_err(self.hdf5(key)),
            Some(_) => Err(self.error(key, "expected a dataset")),
            None => Err(self.error(key, "not in the file")),
        }
    }

    /// The names in a group, sorted; none when the file has no such group.
    fn members(&self, key: &str) -> Vec<String> {
        if self.kind(key) != Some(LocationType::Group) {
            return Vec::new();
        }
        let mut names = self
            .file
            .group(key)
            .and_then(|group| group.member_names())
            .unwrap_or_default();
        names.sort();
        names
    }

    fn matrix_key(&self, which: &H5adMatrix) -> Result<String, IoError> {
        let key = which.key();
        if self.kind(&key).is_some() {
            return Ok(key);
        }
        let (what, group, name) = match which {
            H5adMatrix::X => {
                return Err(self.error(
                    "X",
                    "not in the file (saved with X=None); read a layer or an obsm entry instead",
                ));
            }
            H5adMatrix::Layer(name) => ("layer", "layers", name),
            H5adMatrix::Obsm(name) => ("obsm entry", "obsm", name),
        };
        Err(IoError::H5adNoSuchKey {
            path: self.path.to_path_buf(),
            what,
            group,
            name: name.clone(),
            available: self.members(group),
        })
    }

    fn read_matrix(&self, key: &str) -> Result<Array2<f64>, IoError> {
        let matrix = match self.kind(key) {
            Some(LocationType::Group) => self.read_sparse(key)?,
            _ => self.read_dense(key)?,
        };
        if matrix.is_empty() {
            let shape = numpy_shape(matrix.shape());
            return Err(self.error(
                key,
                format!("empty (shape {shape}); expected an n × d matrix"),
            ));
        }
        Ok(matrix)
    }

    fn read_dense(&self, key: &str) -> Result<Array2<f64>, IoError> {
        let dataset = self.dataset(key)?;
        let shape = dataset.shape();
        if shape.len() != 2 {
            let shape = numpy_shape(&shape);
            return Err(self.error(key, format!("array has shape {shape}; it must be n × d")));
        }
        self.check_numeric(key, &dataset)?;
        dataset.read_2d::<f64>().map_err(self.hdf5(key))
    }

    fn read_sparse(&self, key: &str) -> Result<Array2<f64>, IoError> {
        let group = self.file.group(key).map_err(self.hdf5(key))?;
        let layout = self.sparse_layout(key, &group)?;
        let shape = self.sparse_shape(key, &group)?;
        let data = self.read_numbers(&format!("{key}/data"))?;
        let indices = self.read_integers(&format!("{key}/indices"))?;
        let indptr = self.read_integers(&format!("{key}/indptr"))?;
        densify(layout, shape, &data, &indices, &indptr)
            .map_err(|message| self.error(key, format!("malformed {}: {message}", layout.name())))
    }

    /// The layout of a sparse matrix group, from anndata's `encoding-type` or, in files older than
    /// anndata 0.7, h5sparse's `h5sparse_format`.
    fn sparse_layout(&self, key: &str, group: &Group) -> Result<Compressed, IoError> {
        let encoding = string_attr(group, "encoding-type");
        let legacy = string_attr(group, "h5sparse_format");
        match (encoding.as_deref(), legacy.as_deref()) {
            (Some("csr_matrix"), _) | (None, Some("csr")) => Ok(Compressed::Rows),
            (Some("csc_matrix"), _) | (None, Some("csc")) => Ok(Compressed::Columns),
            (Some("dataframe"), _) => Err(self.error(
                key,
                "a data frame, not a matrix; store the embedding as an array \
                 (adata.obsm[name] = df.to_numpy())",
            )),
            (Some(other), _) => Err(self.error(
                key,
                format!(
                    "encoding-type {other:?} is not a matrix (array, csr_matrix or csc_matrix)"
                ),
            )),
            (None, _) => Err(self.error(key, "a group without an encoding-type; not a matrix")),
        }
    }

    /// `(rows, columns)` from the attribute `shape` (`h5sparse_shape` in older files).
    fn sparse_shape(&self, key: &str, group: &Group) -> Result<(usize, usize), IoError> {
        let attr = group
            .attr("shape")
            .or_else(|_| group.attr("h5sparse_shape"))
            .map_err(|_| self.error(key, "sparse matrix without a shape attribute"))?;
        let shape = attr.read_raw::<i64>().map_err(self.hdf5(key))?;
        let dimension = |value: i64| usize::try_from(value).ok();
        match shape[..] {
            [rows, columns] => dimension(rows).zip(dimension(columns)),
            _ => None,
        }
        .ok_or_else(|| self.error(key, format!("sparse matrix shape {shape:?} is not n × d")))
    }

    fn check_numeric(&self, key: &str, dataset: &Dataset) -> Result<(), IoError> {
        match self.descriptor(key, dataset)? {
            TypeDescriptor::Integer(_) | TypeDescriptor::Unsigned(_) | TypeDescriptor::Float(_) => {
                Ok(())
            }
            other => Err(self.error(key, format!("holds {other}; a matrix must hold numbers"))),
        }
    }

    fn descriptor(&self, key: &str, dataset: &Dataset) -> Result<TypeDescriptor, IoError> {
        dataset
            .dtype()
            .and_then(|dtype| dtype.to_descriptor())
            .map_err(self.hdf5(key))
    }

    fn read_numbers(&self, key: &str) -> Result<Vec<f64>, IoError> {
        let dataset = self.dataset(key)?;
        self.check_numeric(key, &dataset)?;
        dataset.read_raw::<f64>().map_err(self.hdf5(key))
    }

    fn read_integers(&self, key: &str) -> Result<Vec<i64>, IoError> {
        let dataset = self.dataset(key)?;
        match self.descriptor(key, &dataset)? {
            TypeDescriptor::Integer(_) | TypeDescriptor::Unsigned(_) => {
                dataset.read_raw::<i64>().map_err(self.hdf5(key))
            }
            other => Err(self.error(key, format!("holds {other}; expected integers"))),
        }
    }

    fn obs(&self) -> Result<Obs, IoError> {
        match self.kind("obs") {
            Some(LocationType::Group) => {}
            Some(_) => {
                let layout = "a compound dataset, the layout of anndata < 0.7";
                return Err(self.error("obs", format!("{layout}; {RESAVE}")));
            }
            None => return Err(self.error("obs", "not in the file")),
        }
        let group = self.file.group("obs").map_err(self.hdf5("obs"))?;
        let index = string_attr(&group, "_index").ok_or_else(|| {
            self.error("obs", "no _index attribute naming the column of obs names")
        })?;
        Ok(Obs { group, index })
    }

    /// The columns a user can choose: all but the index and anndata 0.7's `__categories`.
    fn obs_columns(&self, obs: &Obs) -> Vec<String> {
        let mut names = self.members("obs");
        names.retain(|name| *name != obs.index && !name.starts_with("__"));
        names
    }

    /// One `obs` column as text, every row present and non-empty.
    fn read_obs(&self, key: &str) -> Result<Vec<String>, IoError> {
        let values = self.read_column(key)?;
        if let Some(row) = values.iter().position(String::is_empty) {
            return Err(self.error(key, format!("row {row} (0-based) is an empty string")));
        }
        let (path, rows) = (self.path.display(), values.len());
        tracing::debug!(%path, %key, rows, "read h5ad obs column");
        Ok(values)
    }

    fn read_column(&self, key: &str) -> Result<Vec<String>, IoError> {
        if self.kind(key) != Some(LocationType::Group) {
            return self.read_text(key);
        }
        let group = self.file.group(key).map_err(self.hdf5(key))?;
        match string_attr(&group, "encoding-type").as_deref() {
            Some("categorical") => self.read_categorical(key),
            Some(encoding) if encoding.starts_with("nullable-") => self.read_nullable(key),
            Some(other) => Err(self.error(key, format!("encoding-type {other:?} is not a column"))),
            None => Err(self.error(key, "a group without an encoding-type; not a column")),
        }
    }

    /// A 1-D dataset of strings, integers or booleans, as text.
    fn read_text(&self, key: &str) -> Result<Vec<String>, IoError> {
        let dataset = self.dataset(key)?;
        if dataset.attr("categories").is_ok() {
            let layout = "a categorical in the layout of anndata 0.7";
            return Err(self.error(key, format!("{layout}; {RESAVE}")));
        }
        if dataset.ndim() != 1 {
            let shape = numpy_shape(&dataset.shape());
            return Err(self.error(key, format!("array has shape {shape}; a column is 1-D")));
        }
        let read = self.hdf5(key);
        match self.descriptor(key, &dataset)? {
            TypeDescriptor::VarLenUnicode => Ok(dataset
                .read_raw::<VarLenUnicode>()
                .map_err(read)?
                .iter()
                .map(|text| text.as_str().to_owned())
                .collect()),
            TypeDescriptor::VarLenAscii => Ok(dataset
                .read_raw::<VarLenAscii>()
                .map_err(read)?
                .iter()
                .map(|text| text.as_str().to_owned())
                .collect()),
            TypeDescriptor::Integer(_) => Ok(to_text(dataset.read_raw::<i64>().map_err(read)?)),
            TypeDescriptor::Unsigned(_) => Ok(to_text(dataset.read_raw::<u64>().map_err(read)?)),
            TypeDescriptor::Boolean => Ok(dataset
                .read_raw::<bool>()
                .map_err(read)?
                .into_iter()
                .map(|value| if value { "True" } else { "False" }.to_owned())
                .collect()),
            other => {
                let allowed = "strings, categories, integers or booleans";
                let message = format!("holds {other}; labels and ids must be {allowed}");
                Err(self.error(key, message))
            }
        }
    }

    /// A categorical column: each row's category, by its code.
    fn read_categorical(&self, key: &str) -> Result<Vec<String>, IoError> {
        let categories = self.read_text(&format!("{key}/categories"))?;
        let codes = self.read_integers(&format!("{key}/codes"))?;
        let category = |(row, code): (usize, i64)| match code {
            -1 => Err(self.error(
                key,
                format!("row {row} (0-based) is missing (categorical code -1)"),
            )),
            _ => usize::try_from(code)
                .ok()
                .and_then(|code| categories.get(code))
                .cloned()
                .ok_or_else(|| {
                    let n = categories.len();
                    self.error(
                        key,
                        format!("row {row}: code {code} is not one of {n} categories"),
                    )
                }),
        };
        codes.into_iter().enumerate().map(category).collect()
    }

    /// A nullable column (`nullable-integer`, `nullable-boolean`, `nullable-string-array`): its
    /// values, provided none is masked.
    fn read_nullable(&self, key: &str) -> Result<Vec<String>, IoError> {
        let values = self.read_text(&format!("{key}/values"))?;
        let mask_key = format!("{key}/mask");
        let mask = self.dataset(&mask_key)?;
        let mask = mask.read_raw::<bool>().map_err(self.hdf5(&mask_key))?;
        if mask.len() != values.len() {
            let (n_mask, n_values) = (mask.len(), values.len());
            return Err(self.error(key, format!("{n_mask} mask entries for {n_values} values")));
        }
        match mask.iter().position(|&missing| missing) {
            Some(row) => Err(self.error(key, format!("row {row} (0-based) is missing (masked)"))),
            None => Ok(values),
        }
    }
}

/// A string attribute (anndata writes them as variable-length strings); `None` when absent or not
/// a string.
fn string_attr(location: &Location, name: &str) -> Option<String> {
    let attr = location.attr(name).ok()?;
    match attr.dtype().ok()?.to_descriptor().ok()? {
        TypeDescriptor::VarLenUnicode => attr
            .read_scalar::<VarLenUnicode>()
            .ok()
            .map(|text| text.as_str().to_owned()),
        TypeDescriptor::VarLenAscii => attr
            .read_scalar::<VarLenAscii>()
            .ok()
            .map(|text| text.as_str().to_owned()),
        _ => None,
    }
}

fn to_text<T: ToString>(values: Vec<T>) -> Vec<String> {
    values.iter().map(T::to_string).collect()
}

/// The dense `rows × columns` matrix of a compressed sparse one, checking every index, so that a
/// malformed file is an error and never a panic. Repeated entries are summed, as SciPy does.
fn densify(
    layout: Compressed,
    (rows, columns): (usize, usize),
    data: &[f64],
    indices: &[i64],
    indptr: &[i64],
) -> Result<Array2<f64>, String> {
    let (major, minor) = match layout {
        Compressed::Rows => (rows, columns),
        Compressed::Columns => (columns, rows),
    };
    if indptr.len() != major + 1 {
        let n = indptr.len();
        return Err(format!("indptr has {n} entries; shape needs {}", major + 1));
    }
    if data.len() != indices.len() {
        let (n_data, n_indices) = (data.len(), indices.len());
        return Err(format!("{n_data} data entries but {n_indices} indices"));
    }
    let mut dense = Array2::zeros((rows, columns));
    for (outer, bounds) in indptr.windows(2).enumerate() {
        let range = usize::try_from(bounds[0])
            .ok()
            .zip(usize::try_from(bounds[1]).ok())
            .filter(|&(start, end)| start <= end && end <= data.len())
            .ok_or_else(|| {
                format!(
                    "indptr[{outer}..={}] = {bounds:?} is out of order",
                    outer + 1
                )
            })?;
        for position in range.0..range.1 {
            let index = indices[position];
            let inner = usize::try_from(index)
                .ok()
                .filter(|&inner| inner < minor)
                .ok_or_else(|| format!("index {index} at {position} is outside 0..{minor}"))?;
            let at = match layout {
                Compressed::Rows => [outer, inner],
                Compressed::Columns => [inner, outer],
            };
            dense[at] += data[position];
        }
    }
    Ok(dense)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn extension_decides_is_h5ad() {
        assert!(is_h5ad(Path::new("data/rna.h5ad")));
        assert!(is_h5ad(Path::new("RNA.H5AD")));
        assert!(!is_h5ad(Path::new("rna.h5")));
        assert!(!is_h5ad(Path::new("h5ad")));
    }

    #[test]
    fn keys_are_paths_in_the_file() {
        assert_eq!(H5adMatrix::default().key(), "X");
        assert_eq!(
            H5adMatrix::Layer("counts".into()).to_string(),
            "layers/counts"
        );
        assert_eq!(H5adMatrix::Obsm("X_pca".into()).key(), "obsm/X_pca");
    }

    #[test]
    fn csr_and_csc_densify_to_the_same_matrix_summing_repeats() {
        // [[1, 0, 2], [0, 0, 0], [0, 3, 0]] with the 2 written as 0.5 + 1.5.
        let csr = densify(
            Compressed::Rows,
            (3, 3),
            &[1.0, 0.5, 1.5, 3.0],
            &[0, 2, 2, 1],
            &[0, 3, 3, 4],
        )
        .unwrap();
        let expected = array![[1.0, 0.0, 2.0], [0.0, 0.0, 0.0], [0.0, 3.0, 0.0]];
        assert_eq!(csr, expected);
        let csc = densify(
            Compressed::Columns,
            (3, 3),
            &[1.0, 3.0, 2.0],
            &[0, 2, 0],
            &[0, 1, 2, 3],
        )
        .unwrap();
        assert_eq!(csc, expected);
    }

    #[test]
    fn malformed_sparse_is_an_error_not_a_panic() {
        let indptr_short = densify(Compressed::Rows, (2, 2), &[1.0], &[0], &[0, 1]);
        assert_eq!(
            indptr_short.unwrap_err(),
            "indptr has 2 entries; shape needs 3"
        );
        let out_of_range = densify(Compressed::Rows, (1, 2), &[1.0], &[2], &[0, 1]);
        assert_eq!(out_of_range.unwrap_err(), "index 2 at 0 is outside 0..2");
        let decreasing = densify(Compressed::Rows, (2, 2), &[1.0], &[0], &[0, 1, 0]);
        assert!(decreasing.unwrap_err().contains("out of order"));
        let past_end = densify(Compressed::Rows, (1, 2), &[1.0], &[0], &[0, 2]);
        assert!(past_end.unwrap_err().contains("out of order"));
        let negative = densify(Compressed::Columns, (1, 1), &[1.0], &[-1], &[0, 1]);
        assert!(negative.unwrap_err().contains("index -1"));
        let lengths = densify(Compressed::Rows, (1, 1), &[1.0, 2.0], &[0], &[0, 1]);
        assert_eq!(lengths.unwrap_err(), "2 data entries but 1 indices");
    }
}

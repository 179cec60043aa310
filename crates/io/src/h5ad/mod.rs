//! AnnData `.h5ad` files, as single-cell users hold their data: read `X`, a layer or an `obsm`
//! embedding as the `n × d` matrix, an `obs` column as the labels and `obs_names` as the unit ids;
//! write psa's matches back as an AnnData file (`matches.h5ad`, see [`write_matches_h5ad`]).
//!
//! An `.h5ad` file is HDF5, read and written with the pure-Rust `hdf5-pure` crate (no system
//! libhdf5). The layouts of anndata's "on-disk format" page are read, from anndata ≥ 0.8 back to
//! the pre-0.7 files still found in the wild (scanpy's own bundled `pbmc68k_reduced.h5ad`):
//!
//! * a matrix ([`H5adMatrix`]: `X`, `layers/NAME`, `obsm/NAME`) is a dense 2-D dataset, or a
//!   group with `encoding-type` = `csr_matrix` / `csc_matrix` (`h5sparse_format` = `csr` / `csc`
//!   before 0.7), datasets `data`, `indices`, `indptr` and attribute `shape` (`h5sparse_shape`);
//!   before 0.7 `obsm` is one compound dataset whose fields are the embeddings;
//! * `obs`: see the `obs` module (a data frame group, with 0.7's categoricals, or a compound
//!   dataset whose integer columns take their categories from `uns/COLUMN_categories`).
//!
//! Large files are read by row windows: the streaming reader fetches only the chunks a window
//! touches, each window is decoded straight into the one output array, and every size a file
//! declares is checked against a memory budget (the machine's memory by default) before anything
//! is allocated for it. Sparse matrices are made dense, so a matrix takes `8 · n · d` bytes whatever
//! its sparsity: 160 MB for 10 000 cells × 2 000 genes; for all genes of a large atlas, choose an
//! `obsm` embedding. Every error names the file and the HDF5 path at fault.

mod file;
mod matrix;
mod obs;
mod records;
mod write;

use std::fmt;
use std::path::{Path, PathBuf};

use ndarray::Array2;

use crate::error::IoError;
use crate::format::check_finite;
use crate::resources::physical_memory;
use file::H5ad;
use obs::Obs;

pub use write::{Matches, write_matches_h5ad, write_predictions_h5ad};

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

/// An open AnnData file, for reading several of its parts; nothing is read until asked for.
///
/// ```no_run
/// use psa_io::{H5adFile, H5adMatrix};
/// let file = H5adFile::open("rna.h5ad".as_ref())?;
/// let x_pca = file.matrix(&H5adMatrix::Obsm("X_pca".into()))?;
/// let cell_types = file.obs_column("cell_type")?;
/// assert_eq!(x_pca.nrows(), cell_types.len());
/// # Ok::<(), psa_io::IoError>(())
/// ```
pub struct H5adFile {
    h5: H5ad,
}

impl H5adFile {
    /// Opens an `.h5ad` file; what is read from it may take at most the machine's memory.
    pub fn open(path: &Path) -> Result<Self, IoError> {
        let budget = physical_memory().unwrap_or(u64::MAX);
        Ok(H5adFile {
            h5: H5ad::open(path, budget)?,
        })
    }

    /// Reads an `.h5ad` file held in memory (through the same lazy reader as a file on disk);
    /// `name` is what messages call it.
    pub fn from_bytes(name: impl Into<PathBuf>, bytes: Vec<u8>) -> Result<Self, IoError> {
        let budget = physical_memory().unwrap_or(u64::MAX);
        Ok(H5adFile {
            h5: H5ad::from_bytes(&name.into(), bytes, budget)?,
        })
    }

    /// Caps the memory one read may allocate for its values, in bytes: a file declaring more is an
    /// error naming the size, before any allocation.
    pub fn with_memory_budget(mut self, bytes: u64) -> Self {
        self.h5 = self.h5.with_budget(bytes);
        self
    }

    /// `X`, a layer or an `obsm` entry as an `n × d` matrix of finite numbers (row-major).
    ///
    /// A dense matrix may hold any integer, float or boolean type (widened to f64); a
    /// `csr_matrix` or `csc_matrix` is made dense, repeated entries summed as SciPy does. A
    /// missing layer or `obsm` entry lists the ones the file has:
    /// `rna.h5ad: no layer "counts" (layers: raw, spliced)`.
    pub fn matrix(&self, which: &H5adMatrix) -> Result<Array2<f64>, IoError> {
        let matrix = matrix::read(&self.h5, which)?;
        check_finite(self.h5.path(), matrix.view())?;
        let (rows, columns) = matrix.dim();
        let path = self.h5.path().display();
        tracing::debug!(%path, key = %which, rows, columns, "read h5ad matrix");
        Ok(matrix)
    }

    /// One `obs` column as text, one value per row: a categorical gives its categories, strings
    /// are taken as they are, integers as decimals, booleans as `True` / `False` (as pandas prints
    /// them). Float columns are refused: labels and ids are compared exactly.
    ///
    /// A missing value (categorical code −1, a masked entry of a nullable column) or an empty
    /// string is an error naming its row (0-based). A missing column lists the columns the file
    /// has: `rna.h5ad: obs has no column "cell_type" (columns: batch, donor)`.
    pub fn obs_column(&self, column: &str) -> Result<Vec<String>, IoError> {
        let obs = Obs::open(&self.h5)?;
        obs.column(&self.h5, column)?
            .ok_or_else(|| IoError::H5adNoSuchColumn {
                path: self.h5.path().to_path_buf(),
                column: column.to_owned(),
                available: obs.columns(&self.h5),
            })
    }

    /// The unit ids, `adata.obs_names`.
    pub fn obs_names(&self) -> Result<Vec<String>, IoError> {
        Obs::open(&self.h5)?.names(&self.h5)
    }

    /// The `obs` columns a user can choose (the index is not one): sorted by name, or in record
    /// order for files older than anndata 0.7.
    pub fn obs_columns(&self) -> Result<Vec<String>, IoError> {
        Ok(Obs::open(&self.h5)?.columns(&self.h5))
    }

    /// The names of the layers, sorted; none when the file has no `layers`.
    pub fn layers(&self) -> Result<Vec<String>, IoError> {
        matrix::names(&self.h5, "layers")
    }

    /// The names of the `obsm` embeddings; none when the file has no `obsm`.
    pub fn obsm(&self) -> Result<Vec<String>, IoError> {
        matrix::names(&self.h5, "obsm")
    }
}

/// Reads `X`, a layer or an `obsm` entry of the file at `path`; see [`H5adFile::matrix`].
pub fn read_h5ad_matrix(path: &Path, which: &H5adMatrix) -> Result<Array2<f64>, IoError> {
    H5adFile::open(path)?.matrix(which)
}

/// Reads one `obs` column of the file at `path`; see [`H5adFile::obs_column`].
pub fn read_h5ad_obs_column(path: &Path, column: &str) -> Result<Vec<String>, IoError> {
    H5adFile::open(path)?.obs_column(column)
}

/// Reads the unit ids, `adata.obs_names`, of the file at `path`.
pub fn read_h5ad_obs_names(path: &Path) -> Result<Vec<String>, IoError> {
    H5adFile::open(path)?.obs_names()
}

/// Reads everything a user can ask psa for — every matrix, every `obs` column, the obs names — in
/// a file held in memory, within a small memory budget, ignoring errors. The fuzz target and the
/// test that replays its corpus call this: it must never panic, whatever the bytes.
#[doc(hidden)]
pub fn read_everything(bytes: &[u8]) -> usize {
    const BUDGET: u64 = 64 << 20;
    let Ok(file) = H5adFile::from_bytes("fuzz.h5ad", bytes.to_vec()) else {
        return 0;
    };
    let file = file.with_memory_budget(BUDGET);
    let mut read = 0;
    let mut matrices = vec![H5adMatrix::X];
    let layers = file.layers().unwrap_or_default();
    matrices.extend(layers.into_iter().map(H5adMatrix::Layer));
    matrices.extend(
        file.obsm()
            .unwrap_or_default()
            .into_iter()
            .map(H5adMatrix::Obsm),
    );
    for which in &matrices {
        read += file.matrix(which).map_or(0, |matrix| matrix.len());
    }
    read += file.obs_names().map_or(0, |names| names.len());
    for column in file.obs_columns().unwrap_or_default() {
        read += file.obs_column(&column).map_or(0, |values| values.len());
    }
    read
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let layer = H5adMatrix::Layer("counts".into());
        assert_eq!(layer.to_string(), "layers/counts");
        assert_eq!(H5adMatrix::Obsm("X_pca".into()).key(), "obsm/X_pca");
    }
}

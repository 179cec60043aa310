//! # psa-io — psa's files: users' inputs in, results out
//!
//! psa reads what users already have and writes what NumPy and pandas read back:
//!
//! * [`read_matrix`]: an `n × d` matrix of scores or features from `.npy` (float32 or float64,
//!   C or Fortran order) or from `.csv` / `.tsv` / `.txt` (optional header row), checked to be
//!   finite;
//! * [`read_labels`] and [`read_ids`]: one label or unit id per row, from `.npy` (integers or
//!   fixed-width strings) or from a text column; [`LabelSource`] picks a named column
//!   (`meta.csv:cell_type`);
//! * [`H5adFile`] (and [`read_h5ad_matrix`], [`read_h5ad_obs_column`], [`read_h5ad_obs_names`]):
//!   AnnData `.h5ad` files, as single-cell users hold their data, in every layout anndata has
//!   written: `X` (dense or sparse), a layer or an `obsm` embedding ([`H5adMatrix`]), an `obs`
//!   column as labels and `obs_names` as ids, read by row windows with no system library;
//!   [`read_matrix`] reads the `X` of an `.h5ad` file, [`read_labels`] an `obs` column
//!   (`rna.h5ad:cell_type`);
//! * [`write_matches_h5ad`]: psa's matches as an AnnData file ([`Matches`]) that anndata and scanpy
//!   open unchanged, one row per modality-1 row;
//! * [`check_rows`]: the row counts of two inputs agree;
//! * [`write_npy_f64`], [`write_npy_f32`], [`write_npy_i64`], [`write_json`], [`write_atomic`]:
//!   each file appears complete or not at all (written beside its target, then renamed);
//! * [`OutputDir`]: a run's whole output directory, staged beside the final one and swapped in
//!   for it by [`OutputDir::commit`], so the directory holds exactly one run: a failed,
//!   interrupted or concurrent run leaves no partial results ([`abandon_unfinished_outputs`]
//!   for signal handlers);
//! * [`ensure_memory`]: refuses, in one line naming the option and the size, an output too
//!   large for the machine, before allocating it;
//! * [`write_results`] and [`write_run`] / [`read_run`]: every output of a solved matching, and
//!   the run directory that reloads it;
//! * [`summary`]: the schema of `summary.json`.
//!
//! Every error names the file and, where it helps, the line or the row and column at fault
//! ([`IoError`]).
//!
//! Not here: any arithmetic on the data (transforms, matching and metrics live in `psa-core`), or
//! command-line parsing.
//!
//! ```
//! use ndarray::array;
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("scores.npy");
//! psa_io::write_npy_f64(&path, array![[1.0, 2.0], [3.0, 4.0]].view()).unwrap();
//! assert_eq!(psa_io::read_matrix(&path).unwrap(), array![[1.0, 2.0], [3.0, 4.0]]);
//! ```

mod error;
mod format;
#[doc(hidden)]
pub mod fuzzing;
mod h5ad;
mod labels;
mod matrix;
mod npy;
mod output;
mod resources;
mod results;
pub mod run;
pub mod summary;
#[cfg(test)]
mod testutil;
mod text;
mod write;

pub use error::{IoError, Location};
#[doc(hidden)]
pub use h5ad::read_everything as read_h5ad_everything;
pub use h5ad::{
    H5adFile, H5adMatrix, Matches, is_h5ad, read_h5ad_matrix, read_h5ad_obs_column,
    read_h5ad_obs_names, write_matches_h5ad, write_predictions_h5ad,
};
pub use labels::{LabelSource, read_ids, read_labels};
pub use matrix::read_matrix;
pub use output::{Abandoned, OutputDir, RUN_MARKER, abandon_unfinished_outputs};
pub use resources::{available_memory, bytes_of, ensure_memory, physical_memory};
pub use results::{
    CouplingFiles, MATCHES_H5AD, MAX_LABEL_FILE_CHARS, OutputRequest, RowNames,
    file_name_for_label, write_results,
};
pub use run::{InputFile, LoadedRun, Manifest, read_run, write_run};
pub use summary::{GroupSummary, Metrics, Summary, UnmatchedSummary, group_summaries};
pub use write::{
    write_atomic, write_json, write_npy_f32, write_npy_f64, write_npy_i64, write_npy_vec_f64,
    write_npy_vec_i64,
};

use std::path::Path;

/// Checks that two inputs describe the same rows, e.g. a labels file and its scores.
///
/// The error reads "labels1.csv has 99 rows but scores1.npy has 100".
pub fn check_rows(what_a: &Path, n_a: usize, what_b: &Path, n_b: usize) -> Result<(), IoError> {
    if n_a == n_b {
        return Ok(());
    }
    Err(IoError::RowMismatch {
        a: what_a.to_path_buf(),
        n_a,
        b: what_b.to_path_buf(),
        n_b,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_rows_names_both_files_and_counts() {
        assert!(check_rows(Path::new("a.csv"), 3, Path::new("b.npy"), 3).is_ok());
        let err = check_rows(Path::new("labels1.csv"), 99, Path::new("scores1.npy"), 100)
            .unwrap_err()
            .to_string();
        assert_eq!(err, "labels1.csv has 99 rows but scores1.npy has 100");
    }
}

//! Reading AnnData `.h5ad` files written by anndata itself: the fixtures under `tests/data/` were
//! made by `tests/data/make_h5ad.py` (anndata 0.12), and the values below are the ones that script
//! wrote, so each read is compared exactly against what Python saved.

use std::path::{Path, PathBuf};

use ndarray::{Array2, array};
use psa_io::{
    H5adMatrix, is_h5ad, read_h5ad_matrix, read_h5ad_obs_column, read_h5ad_obs_names, read_matrix,
};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// `X` in make_h5ad.py: dense in dense.h5ad, CSR in sparse.h5ad and legacy.h5ad.
fn x() -> Array2<f64> {
    array![
        [1.0, 0.0, 2.5],
        [0.0, 0.0, 0.0],
        [-3.0, 4.25, 0.0],
        [0.0, 0.5, 6.0]
    ]
}

fn layer(name: &str) -> H5adMatrix {
    H5adMatrix::Layer(name.to_owned())
}

fn obsm(name: &str) -> H5adMatrix {
    H5adMatrix::Obsm(name.to_owned())
}

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|value| (*value).to_owned()).collect()
}

/// The error message of a read that must fail.
fn error<T: std::fmt::Debug>(result: Result<T, psa_io::IoError>) -> String {
    result.unwrap_err().to_string()
}

#[test]
fn dense_x_layers_and_obsm_read_as_written() {
    let path = fixture("dense.h5ad");
    assert!(is_h5ad(&path));
    assert_eq!(read_h5ad_matrix(&path, &H5adMatrix::X).unwrap(), x());
    // int32 counts, widened.
    let counts = array![
        [1.0, 0.0, 2.0],
        [0.0, 0.0, 0.0],
        [3.0, 4.0, 0.0],
        [0.0, 5.0, 6.0]
    ];
    assert_eq!(read_h5ad_matrix(&path, &layer("counts")).unwrap(), counts);
    // A CSR layer (float64) beside a dense X.
    assert_eq!(read_h5ad_matrix(&path, &layer("spliced")).unwrap(), x());
    let x_pca = array![[0.5, -1.0], [1.5, 2.0], [-0.25, 0.0], [3.0, -4.5]];
    assert_eq!(read_h5ad_matrix(&path, &obsm("X_pca")).unwrap(), x_pca);
}

#[test]
fn sparse_x_and_layers_are_made_dense() {
    let path = fixture("sparse.h5ad");
    assert_eq!(read_h5ad_matrix(&path, &H5adMatrix::X).unwrap(), x());
    assert_eq!(read_h5ad_matrix(&path, &layer("csc")).unwrap(), x());
}

#[test]
fn read_matrix_reads_the_x_of_an_h5ad() {
    assert_eq!(read_matrix(&fixture("dense.h5ad")).unwrap(), x());
    assert_eq!(read_matrix(&fixture("sparse.h5ad")).unwrap(), x());
}

#[test]
fn obs_columns_of_every_kind_read_as_text() {
    let path = fixture("dense.h5ad");
    let column = |name| read_h5ad_obs_column(&path, name).unwrap();
    assert_eq!(column("cell_type"), strings(&["T", "B", "T", "NK"]));
    assert_eq!(
        column("barcode"),
        strings(&["AAAC", "AAAG", "Müller-1", "TTTT"])
    );
    assert_eq!(column("batch"), strings(&["1", "2", "1", "20"]));
    // A categorical of integers gives its integer categories.
    assert_eq!(column("cluster"), strings(&["0", "1", "0", "2"]));
    assert_eq!(
        column("is_doublet"),
        strings(&["False", "True", "False", "False"])
    );
    assert_eq!(column("donor"), strings(&["d1", "d2", "d3", "d4"]));
    assert_eq!(column("n_genes"), strings(&["10", "20", "30", "40"]));
}

#[test]
fn obs_names_come_from_the_index_named_by_the_file() {
    // dense.h5ad's index is named "cell"; sparse.h5ad's is anndata's default "_index".
    assert_eq!(
        read_h5ad_obs_names(&fixture("dense.h5ad")).unwrap(),
        strings(&["cell_a", "cell_b", "cell_c", "cell_d"])
    );
    assert_eq!(
        read_h5ad_obs_names(&fixture("sparse.h5ad")).unwrap(),
        strings(&["0", "1", "2", "3"])
    );
}

#[test]
fn missing_keys_name_the_file_and_list_what_there_is() {
    let path = fixture("dense.h5ad");
    let shown = path.display();
    assert_eq!(
        error(read_h5ad_matrix(&path, &layer("raw"))),
        format!("{shown}: no layer \"raw\" (layers: counts, spliced)")
    );
    assert_eq!(
        error(read_h5ad_matrix(&path, &obsm("X_umap"))),
        format!("{shown}: no obsm entry \"X_umap\" (obsm: X_pca, meta)")
    );
    assert_eq!(
        error(read_h5ad_obs_column(&path, "celltype")),
        format!(
            "{shown}: obs has no column \"celltype\" (columns: barcode, batch, cell_type, \
             cluster, donor, is_doublet, n_genes, score)"
        )
    );
    let sparse = fixture("sparse.h5ad");
    assert_eq!(
        error(read_h5ad_matrix(&sparse, &obsm("X_pca"))),
        format!("{}: no obsm entry \"X_pca\" (obsm: none)", sparse.display())
    );
}

#[test]
fn missing_values_name_the_column_and_row() {
    let path = fixture("sparse.h5ad");
    let shown = path.display();
    assert_eq!(
        error(read_h5ad_obs_column(&path, "cell_type")),
        format!("{shown}: obs/cell_type: row 1 (0-based) is missing (categorical code -1)")
    );
    assert_eq!(
        error(read_h5ad_obs_column(&path, "n_genes")),
        format!("{shown}: obs/n_genes: row 1 (0-based) is missing (masked)")
    );
}

#[test]
fn what_cannot_be_labels_or_a_matrix_is_refused_clearly() {
    let path = fixture("dense.h5ad");
    let shown = path.display();
    let float_labels = error(read_h5ad_obs_column(&path, "score"));
    assert!(
        float_labels.starts_with(&format!(
            "{shown}: obs/score: holds float64; labels and ids"
        )),
        "{float_labels}"
    );
    let frame = error(read_h5ad_matrix(&path, &obsm("meta")));
    assert!(
        frame.starts_with(&format!("{shown}: obsm/meta: a data frame, not a matrix")),
        "{frame}"
    );
}

#[test]
fn old_layouts_read_x_and_explain_obs() {
    // anndata < 0.7: X sparse with h5sparse attributes, obs a compound dataset.
    let path = fixture("legacy.h5ad");
    assert_eq!(read_matrix(&path).unwrap(), x());
    let err = error(read_h5ad_obs_names(&path));
    let expected = format!(
        "{}: obs: a compound dataset, the layout of anndata < 0.7; psa reads .h5ad files \
         written by anndata ≥ 0.8",
        path.display()
    );
    assert!(err.starts_with(&expected), "{err}");
}

#[test]
fn a_file_that_is_not_hdf5_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rna.h5ad");
    std::fs::write(&path, "cell,label\nc1,T\n").unwrap();
    let err = error(read_h5ad_matrix(&path, &H5adMatrix::X));
    let expected = format!("{}: cannot open as HDF5", path.display());
    assert!(err.starts_with(&expected), "{err}");
    assert!(error(read_h5ad_obs_names(&path)).starts_with(&expected));

    let empty = dir.path().join("empty.h5ad");
    std::fs::write(&empty, "").unwrap();
    assert_eq!(
        error(read_matrix(&empty)),
        format!("{}: empty, expected an AnnData .h5ad file", empty.display())
    );
    let missing = dir.path().join("missing.h5ad");
    let err = error(read_h5ad_obs_column(&missing, "cell_type"));
    assert!(
        err.starts_with(&format!("{}: ", missing.display())),
        "{err}"
    );
}

#[test]
fn non_finite_values_name_row_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nan.h5ad");
    let mut values = x();
    values[[2, 1]] = f64::NAN;
    let file = hdf5::File::create(&path).unwrap();
    file.new_dataset_builder()
        .with_data(&values)
        .create("X")
        .unwrap();
    drop(file);
    assert_eq!(
        error(read_matrix(&path)),
        format!(
            "{}: row 2, column 1 (0-based) is NaN; values must be finite",
            path.display()
        )
    );
}

//! Reading AnnData `.h5ad` files written by anndata itself (and, for the layouts of anndata 0.7 and
//! older, by h5py in those layouts): the fixtures under `tests/data/` were made by
//! `tests/data/make_h5ad.py` (anndata 0.12), and the values below are the ones that script wrote,
//! so each read is compared exactly against what Python saved. `tests/anndata.rs` compares the
//! same reads against what Python's anndata reads, when it is installed.

use std::path::{Path, PathBuf};

use hdf5_pure::{AttrValue, FileBuilder};
use ndarray::{Array2, array};
use psa_io::{
    H5adFile, H5adMatrix, LabelSource, is_h5ad, read_h5ad_matrix, read_h5ad_obs_column,
    read_h5ad_obs_names, read_ids, read_labels, read_matrix,
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
        float_labels.starts_with(&format!("{shown}: obs/score: holds floats; labels and ids")),
        "{float_labels}"
    );
    let frame = error(read_h5ad_matrix(&path, &obsm("meta")));
    assert!(
        frame.starts_with(&format!("{shown}: obsm/meta: a data frame, not a matrix")),
        "{frame}"
    );
}

/// `obsm` of make_h5ad.py.
fn x_pca() -> Array2<f64> {
    array![[0.5, -1.0], [1.5, 2.0], [-0.25, 0.0], [3.0, -4.5]]
}

#[test]
fn the_layout_before_anndata_0_7_reads_like_scanpys_pbmc68k() {
    // X dense (chunked, gzip); obs, obsm compound datasets; categories in uns/<column>_categories.
    let path = fixture("legacy.h5ad");
    let file = H5adFile::open(&path).unwrap();
    assert_eq!(file.matrix(&H5adMatrix::X).unwrap(), x());
    assert_eq!(file.obsm().unwrap(), ["X_pca", "X_umap"]);
    assert_eq!(file.matrix(&obsm("X_pca")).unwrap(), x_pca());
    let x_umap = array![[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]];
    assert_eq!(file.matrix(&obsm("X_umap")).unwrap(), x_umap);
    assert_eq!(
        file.obs_names().unwrap(),
        strings(&[
            "AAAGCCTGGCTAAC-1",
            "AAATTCGATGCACA-1",
            "AACACGTGGTCTTT-1",
            "AAGTGCACGTGCTA-1"
        ])
    );
    let columns = [
        "cell_type",
        "n_genes",
        "percent_mito",
        "phase",
        "leiden",
        "is_doublet",
    ];
    assert_eq!(file.obs_columns().unwrap(), columns);
    let column = |name| file.obs_column(name).unwrap();
    assert_eq!(column("cell_type"), strings(&["T", "B", "T", "NK"]));
    assert_eq!(column("phase"), strings(&["G1", "S", "G1", "G2M"]));
    assert_eq!(
        column("n_genes"),
        strings(&["1003", "1080", "1228", "1007"])
    );
    // A code past its two categories: anndata keeps the integers, and so does psa.
    assert_eq!(column("leiden"), strings(&["0", "1", "2", "0"]));
    assert_eq!(
        column("is_doublet"),
        strings(&["False", "True", "False", "False"])
    );
    let floats = error(file.obs_column("percent_mito"));
    assert!(
        floats.contains("\"percent_mito\" (row 0) holds floats"),
        "{floats}"
    );
    assert_eq!(
        error(file.matrix(&obsm("X_tsne"))),
        format!(
            "{}: no obsm entry \"X_tsne\" (obsm: X_pca, X_umap)",
            path.display()
        )
    );
    // The sparse X of those files, with h5sparse attributes.
    let sparse = fixture("legacy_sparse.h5ad");
    assert_eq!(read_matrix(&sparse).unwrap(), x());
    assert_eq!(
        read_h5ad_obs_names(&sparse).unwrap(),
        strings(&["cell_a", "cell_b", "cell_c", "cell_d"])
    );
}

#[test]
fn the_layout_of_anndata_0_7_reads_its_categoricals() {
    let path = fixture("v07.h5ad");
    assert_eq!(read_matrix(&path).unwrap(), x());
    let cell_type = read_h5ad_obs_column(&path, "cell_type").unwrap();
    assert_eq!(cell_type, strings(&["T", "B", "T", "NK"]));
    let batch = read_h5ad_obs_column(&path, "batch").unwrap();
    assert_eq!(batch, strings(&["1", "2", "1", "20"]));
    let columns = H5adFile::open(&path).unwrap().obs_columns().unwrap();
    assert_eq!(columns, ["batch", "cell_type"]);
}

#[test]
fn labels_and_ids_name_an_obs_column_after_the_file() {
    let path = fixture("dense.h5ad");
    let spec = format!("{}:cell_type", path.display());
    let labels = LabelSource::parse(&spec).read_labels().unwrap();
    assert_eq!(labels, strings(&["T", "B", "T", "NK"]));
    assert_eq!(
        read_ids(&path).unwrap(),
        strings(&["cell_a", "cell_b", "cell_c", "cell_d"])
    );
    let err = error(read_labels(&path));
    assert!(
        err.starts_with(&format!(
            "{}: name the obs column that holds the labels, as FILE.h5ad:COLUMN (columns: barcode",
            path.display()
        )),
        "{err}"
    );
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

/// Writes `builder` to `dir/name` (hdf5-pure is the writer; anndata-written files are the fixtures).
fn write(dir: &Path, name: &str, builder: FileBuilder) -> PathBuf {
    let path = dir.join(name);
    builder.write(&path).unwrap();
    path
}

#[test]
fn non_finite_values_name_row_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let mut values = x();
    values[[2, 1]] = f64::NAN;
    let mut builder = FileBuilder::new();
    builder
        .create_dataset("X")
        .with_f64_data(values.as_slice().unwrap())
        .with_shape(&[4, 3]);
    let path = write(dir.path(), "nan.h5ad", builder);
    assert_eq!(
        error(read_matrix(&path)),
        format!(
            "{}: row 2, column 1 (0-based) is NaN; values must be finite",
            path.display()
        )
    );
}

/// A matrix whose value at (i, j) is unique: 1000·i + j, widened exactly from f32.
fn numbered(rows: usize, columns: usize) -> Array2<f64> {
    Array2::from_shape_fn((rows, columns), |(i, j)| (1000 * i + j) as f32 as f64)
}

#[test]
fn large_matrices_are_read_in_row_windows_to_the_same_values() {
    // 20 000 × 64 float32, chunked 128 rows, gzip: 5 MB stored, two windows of 4 MB.
    let dir = tempfile::tempdir().unwrap();
    let (rows, columns) = (20_000, 64);
    let expected = numbered(rows, columns);
    let values: Vec<f32> = expected.iter().map(|&v| v as f32).collect();
    let mut builder = FileBuilder::new();
    builder
        .create_dataset("X")
        .with_f32_data(&values)
        .with_shape(&[rows as u64, columns as u64])
        .with_chunks(&[128, columns as u64])
        .with_deflate(4);
    let path = write(dir.path(), "chunked.h5ad", builder);
    assert_eq!(read_matrix(&path).unwrap(), expected);

    // The same matrix as CSR, every other entry stored: 640 000 entries, two windows.
    let mut data = Vec::new();
    let (mut indices, mut indptr) = (Vec::new(), vec![0i64]);
    for row in 0..rows {
        for column in (row % 2..columns).step_by(2) {
            data.push(expected[[row, column]]);
            indices.push(column as i32);
        }
        indptr.push(data.len() as i64);
    }
    let mut builder = FileBuilder::new();
    let mut group = builder.create_group("X");
    group.set_attr(
        "encoding-type",
        AttrValue::VarLenString("csr_matrix".into()),
    );
    group.set_attr(
        "shape",
        AttrValue::I64Array(vec![rows as i64, columns as i64]),
    );
    group.create_dataset("data").with_f64_data(&data);
    group.create_dataset("indices").with_i32_data(&indices);
    group.create_dataset("indptr").with_i64_data(&indptr);
    builder.add_group(group.finish());
    let path = write(dir.path(), "csr.h5ad", builder);
    let read = read_matrix(&path).unwrap();
    let every_other = Array2::from_shape_fn((rows, columns), |(i, j)| {
        if (i + j) % 2 == 0 {
            expected[[i, j]]
        } else {
            0.0
        }
    });
    assert_eq!(read, every_other);
}

#[test]
fn declared_sizes_beyond_the_memory_budget_are_refused_before_allocating() {
    // A sparse X that declares 10⁶ × 10⁶ (8 TB dense) over one stored entry.
    let mut builder = FileBuilder::new();
    let mut group = builder.create_group("X");
    group.set_attr(
        "encoding-type",
        AttrValue::VarLenString("csr_matrix".into()),
    );
    group.set_attr("shape", AttrValue::I64Array(vec![1_000_000, 1_000_000]));
    group.create_dataset("data").with_f64_data(&[1.0]);
    group.create_dataset("indices").with_i64_data(&[0]);
    group.create_dataset("indptr").with_i64_data(&[0, 1]);
    builder.add_group(group.finish());
    let bytes = builder.finish().unwrap();
    let file = H5adFile::from_bytes("huge.h5ad", bytes).unwrap();
    let err = error(file.with_memory_budget(1 << 30).matrix(&H5adMatrix::X));
    assert_eq!(
        err,
        "huge.h5ad: X: 1000000000000 values would take 8000.0 GB of memory, over the budget of \
         1.1 GB (the machine's memory); read a smaller layer or an obsm embedding"
    );
}

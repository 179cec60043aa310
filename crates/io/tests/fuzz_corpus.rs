//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/` at the repository root) through the
//! same harnesses `cargo fuzz` runs (`psa_io::fuzzing`): every input must be read without a panic
//! or an abort (errors are fine). This is how CI catches a regression of a fuzzing finding
//! without a timed fuzzing run; see fuzz/README.md for the fuzzing itself.

use std::fs;
use std::path::{Path, PathBuf};

fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("{}: {err}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    files
}

/// Runs `harness` on every corpus file of `target`, which must hold at least `at_least` files
/// (so a lost corpus fails rather than passes vacuously).
fn replay(target: &str, at_least: usize, harness: fn(&Path, &[u8])) {
    let files = corpus(target);
    assert!(
        files.len() >= at_least,
        "fuzz/corpus/{target} holds {} files, expected at least {at_least}",
        files.len()
    );
    let scratch = tempfile::tempdir().unwrap();
    for file in &files {
        let data = fs::read(file).unwrap();
        let outcome = std::panic::catch_unwind(|| harness(scratch.path(), &data));
        assert!(outcome.is_ok(), "{}: the reader panicked", file.display());
    }
}

#[test]
fn npy_corpus_reads_without_panics() {
    replay("npy", 50, psa_io::fuzzing::npy);
}

#[test]
fn text_matrix_corpus_reads_without_panics() {
    replay("text_matrix", 50, psa_io::fuzzing::text_matrix);
}

#[test]
fn labels_corpus_reads_without_panics() {
    replay("labels", 50, psa_io::fuzzing::labels);
}

#[test]
fn h5ad_corpus_reads_or_fails_without_panicking() {
    let files = corpus("h5ad");
    assert!(
        files.len() >= 5,
        "the h5ad corpus holds {} files",
        files.len()
    );
    let mut panicked = Vec::new();
    let mut values = 0;
    for file in &files {
        let bytes = fs::read(file).unwrap();
        match std::panic::catch_unwind(|| psa_io::read_h5ad_everything(&bytes)) {
            Ok(read) => values += read,
            Err(_) => panicked.push(file.display().to_string()),
        }
    }
    assert!(panicked.is_empty(), "panicked on: {panicked:#?}");
    // The seeds (anndata's own files) read: the replay does reach the reader's depths.
    assert!(values > 0);
}

/// A file in `tests/data/fuzz/`: an input the fuzz target found, kept as a named regression test.
fn finding(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/fuzz")
        .join(name);
    fs::read(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

#[test]
fn a_chunk_index_pointing_past_the_end_is_an_error_not_a_4_gb_allocation() {
    // An anndata-like file whose X chunk index was mutated: hdf5-pure 0.47 would size the buffer
    // of two adjacent chunks by their declared addresses, 4 GB for a 14 KB file (fuzzing, run 2).
    let bytes = finding("chunk_past_end.h5ad");
    let file = psa_io::H5adFile::from_bytes("chunk_past_end.h5ad", bytes.clone()).unwrap();
    let err = file.matrix(&psa_io::H5adMatrix::X).unwrap_err().to_string();
    assert!(
        err.starts_with("chunk_past_end.h5ad: X: the chunk at [0, 0] claims 0 bytes at offset")
            && err.ends_with("past the end of the 14440-byte file"),
        "{err}"
    );
    psa_io::read_h5ad_everything(&bytes);
}

#[test]
fn a_matrix_of_many_empty_rows_is_refused_at_once() {
    // X declared (281474976710659, 0): no values, but the reader swept its 2.8·10¹⁴ rows in
    // windows until libFuzzer's timeout (fuzzing, run 3).
    let bytes = finding("empty_rows_timeout.h5ad");
    let file = psa_io::H5adFile::from_bytes("empty_rows.h5ad", bytes.clone()).unwrap();
    let err = file.matrix(&psa_io::H5adMatrix::X).unwrap_err().to_string();
    assert_eq!(
        err,
        "empty_rows.h5ad: X: empty (shape (281474976710659, 0)); expected an n × d matrix"
    );
    psa_io::read_h5ad_everything(&bytes);
}

#[test]
fn a_matrix_side_beyond_isize_is_an_error_not_a_panic() {
    // X declared (18446744073675997187, 0): no values, yet ndarray refuses a side past isize::MAX,
    // which the reader took for impossible and unwrapped (fuzzing, run 4: a panic).
    let bytes = finding("huge_empty_shape_panic.h5ad");
    let file = psa_io::H5adFile::from_bytes("huge.h5ad", bytes.clone()).unwrap();
    let err = file.matrix(&psa_io::H5adMatrix::X).unwrap_err().to_string();
    assert_eq!(
        err,
        "huge.h5ad: X: shape (18446744073675997187, 0) is too large"
    );
    psa_io::read_h5ad_everything(&bytes);
}

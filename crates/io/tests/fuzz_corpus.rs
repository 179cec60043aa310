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

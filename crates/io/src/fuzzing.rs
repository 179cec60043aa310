//! The fuzz harnesses of psa-io's readers, shared by the `cargo fuzz` targets (`fuzz/` at the
//! repository root) and by the test that replays their corpus (`tests/fuzz_corpus.rs`), so CI
//! runs every corpus file through exactly what the fuzzer ran, without a timed fuzzing run.
//!
//! Each harness writes the bytes to a file (the readers take paths, as users give them) and
//! reads it back. Errors are expected and fine; a panic, an abort or a runaway allocation is a
//! finding. Not part of the API: hidden from the docs, and may change with the readers.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::{LabelSource, read_ids, read_labels, read_matrix};

/// Bytes as a `.npy` file, read as a matrix, as labels and as ids.
pub fn npy(dir: &Path, data: &[u8]) {
    let path = write(dir, "input.npy", data);
    let _ = read_matrix(&path);
    let _ = read_labels(&path);
    let _ = read_ids(&path);
}

/// A text matrix: the first byte picks `.csv`, `.tsv` or `.txt` (whose delimiter is sniffed),
/// the rest is the file.
pub fn text_matrix(dir: &Path, data: &[u8]) {
    let Some((&choice, contents)) = data.split_first() else {
        return;
    };
    let extension = ["csv", "tsv", "txt"][usize::from(choice % 3)];
    let path = write(dir, &format!("input.{extension}"), contents);
    let _ = read_matrix(&path);
}

/// Labels or ids from text: the first byte picks the extension (bits 0–1: `.csv`, `.tsv`,
/// `.txt`), labels or ids (bit 2), and whether a column is named (bit 3): then the first field
/// of the first line is the column's name, given as `FILE:COLUMN` to [`LabelSource::parse`].
pub fn labels(dir: &Path, data: &[u8]) {
    let Some((&choice, contents)) = data.split_first() else {
        return;
    };
    let extension = ["csv", "tsv", "txt", "csv"][usize::from(choice & 3)];
    let path = write(dir, &format!("input.{extension}"), contents);
    let source = if choice & 8 == 0 {
        LabelSource::from(path.as_path())
    } else {
        let text = String::from_utf8_lossy(contents);
        let column = text.split([',', '\t', '\n']).next().unwrap_or("");
        LabelSource::parse(&format!("{}:{column}", path.display()))
    };
    let _ = if choice & 4 == 0 {
        source.read_labels()
    } else {
        source.read_ids()
    };
}

/// A scratch directory for one fuzzing process: `/dev/shm/psa-fuzz-PID` (memory, not disk)
/// where it exists, else in the temporary directory. It is left behind when the process ends.
pub fn scratch_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let shm = Path::new("/dev/shm");
        let base = if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!("psa-fuzz-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("a scratch directory for the fuzz inputs");
        dir
    })
}

fn write(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, data).expect("the fuzz input can be written to the scratch directory");
    path
}

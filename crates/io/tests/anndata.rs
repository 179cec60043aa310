//! Python's anndata on the other side of psa's `.h5ad` reader and writer:
//!
//! * every `.h5ad` that `tests/data/make_h5ad.py` writes — the checked-in fixtures, and fresh ones
//!   written now by the anndata installed, including files large enough to be read in several
//!   row windows — and scanpy's bundled `pbmc68k_reduced.h5ad` (when scanpy is installed) are read
//!   by anndata (`tests/data/anndata_check.py dump`) and by psa, and must agree: every matrix,
//!   every `obs` column, the obs names;
//! * the `matches.h5ad` psa writes is read back by anndata (and scanpy, when installed), which
//!   checks names, dtypes and values (`anndata_check.py matches`).
//!
//! The interpreter is `$PSA_PYTHON` (default `python3`). Without anndata these tests print
//! `SKIPPED: ...` and pass, unless `PSA_REQUIRE_ANNDATA=1` (CI sets it), which makes that a failure.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use ndarray::{Array2, array};
use psa_io::{
    H5adFile, H5adMatrix, Matches, read_matrix, write_matches_h5ad, write_predictions_h5ad,
};
use serde_json::{Value, json};

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// The Python interpreter with anndata, or `None` after saying loudly why the test is skipped.
fn python(test: &str) -> Option<PathBuf> {
    let python = PathBuf::from(std::env::var_os("PSA_PYTHON").unwrap_or("python3".into()));
    let probe = Command::new(&python)
        .args(["-c", "import anndata"])
        .output();
    let missing = match probe {
        Ok(output) if output.status.success() => return Some(python),
        Ok(output) => String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        Err(err) => err.to_string(),
    };
    let reason = format!(
        "{test}: Python's anndata is not importable with {} ({missing}); set PSA_PYTHON to an \
         interpreter that has it",
        python.display()
    );
    if std::env::var("PSA_REQUIRE_ANNDATA").as_deref() == Ok("1") {
        panic!("PSA_REQUIRE_ANNDATA=1: {reason}");
    }
    // Straight to the process's stderr, past the test harness's capture of `eprintln!`, so that
    // `cargo test` shows the skip even though the test passes.
    let _ = writeln!(std::io::stderr(), "SKIPPED: {reason}");
    None
}

/// Runs a script of `tests/data` and fails with its output when it fails.
fn run(python: &Path, script: &str, args: &[&OsStr]) -> String {
    let output = Command::new(python)
        .arg(data_dir().join(script))
        .args(args)
        .output()
        .expect("the interpreter runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{script} {args:?} failed:\n{stdout}\n{stderr}"
    );
    if !stderr.trim().is_empty() {
        eprintln!("{script}: {}", stderr.trim());
    }
    stdout
}

/// The `.npy` files of a dump directory, by name without extension.
fn dumped_matrices(dir: &Path) -> BTreeMap<String, Array2<f64>> {
    let Ok(entries) = fs::read_dir(dir) else {
        return BTreeMap::new();
    };
    entries
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension() == Some(OsStr::new("npy")))
        .map(|path| {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            (name, read_matrix(&path).unwrap())
        })
        .collect()
}

/// Reads `files` with anndata and then with psa, and asserts that they agree on each.
fn compare_with_anndata(python: &Path, files: &[PathBuf]) {
    let dump = tempfile::tempdir().unwrap();
    let mut args = vec!["dump".as_ref(), dump.path().as_os_str()];
    args.extend(files.iter().map(|file| file.as_os_str()));
    run(python, "anndata_check.py", &args);
    for file in files {
        let stem = file.file_stem().unwrap();
        eprintln!("{}", compare_one(file, &dump.path().join(stem)));
    }
}

/// Compares psa's reads of `file` with anndata's, dumped in `dump`; returns what was compared.
fn compare_one(file: &Path, dump: &Path) -> String {
    let h5ad = H5adFile::open(file).unwrap();
    let shown = file.display();
    let mut compared = Vec::new();
    if let Some(x) = dumped_matrices(dump).get("X") {
        assert_eq!(&h5ad.matrix(&H5adMatrix::X).unwrap(), x, "{shown}: X");
        compared.push(format!("X {:?}", x.dim()));
    }
    let layers = dumped_matrices(&dump.join("layers"));
    assert_eq!(
        h5ad.layers().unwrap(),
        layers.keys().cloned().collect::<Vec<_>>()
    );
    for (name, expected) in &layers {
        let read = h5ad.matrix(&H5adMatrix::Layer(name.clone())).unwrap();
        assert_eq!(&read, expected, "{shown}: layers/{name}");
        compared.push(format!("layers/{name}"));
    }
    let obsm = dumped_matrices(&dump.join("obsm"));
    for (name, expected) in &obsm {
        assert!(h5ad.obsm().unwrap().contains(name), "{shown}: obsm {name}");
        let read = h5ad.matrix(&H5adMatrix::Obsm(name.clone())).unwrap();
        assert_eq!(&read, expected, "{shown}: obsm/{name}");
        compared.push(format!("obsm/{name}"));
    }
    let obs: Value =
        serde_json::from_str(&fs::read_to_string(dump.join("obs.json")).unwrap()).unwrap();
    let names: Vec<String> = serde_json::from_value(obs["obs_names"].clone()).unwrap();
    assert_eq!(h5ad.obs_names().unwrap(), names, "{shown}: obs_names");
    let columns = obs["columns"].as_object().unwrap();
    let mut expected_columns: Vec<&String> = columns.keys().collect();
    expected_columns.sort();
    let mut read_columns = h5ad.obs_columns().unwrap();
    read_columns.sort();
    assert_eq!(
        read_columns.iter().collect::<Vec<_>>(),
        expected_columns,
        "{shown}: obs columns"
    );
    for (name, expected) in columns {
        let read = h5ad.obs_column(name);
        if let Some(values) = expected.get("values") {
            let values: Vec<String> = serde_json::from_value(values.clone()).unwrap();
            assert_eq!(read.unwrap(), values, "{shown}: obs/{name}");
        } else if let Some(row) = expected.get("missing_row") {
            let err = read.unwrap_err().to_string();
            let needle = format!("row {row} (0-based) is missing");
            assert!(err.contains(&needle), "{shown}: obs/{name}: {err}");
        } else {
            let err = read.unwrap_err().to_string();
            assert!(err.contains("holds floats"), "{shown}: obs/{name}: {err}");
        }
        compared.push(format!("obs/{name}"));
    }
    format!(
        "{} ({} rows): {}",
        file.display(),
        names.len(),
        compared.join(", ")
    )
}

fn h5ad_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension() == Some(OsStr::new("h5ad")))
        .collect();
    files.sort();
    files
}

#[test]
fn psa_reads_the_checked_in_fixtures_as_anndata_does() {
    let Some(python) = python("psa_reads_the_checked_in_fixtures_as_anndata_does") else {
        return;
    };
    let files = h5ad_files(&data_dir());
    assert_eq!(files.len(), 5, "{files:?}");
    compare_with_anndata(&python, &files);
}

#[test]
fn psa_reads_freshly_written_anndata_files_as_anndata_does() {
    let Some(python) = python("psa_reads_freshly_written_anndata_files_as_anndata_does") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let args = [dir.path().as_os_str(), "--large".as_ref()];
    run(&python, "make_h5ad.py", &args);
    let files = h5ad_files(dir.path());
    let names: Vec<_> = files.iter().map(|f| f.file_name().unwrap()).collect();
    assert_eq!(
        names,
        [
            "dense.h5ad",
            "large_csc.h5ad",
            "large_csr.h5ad",
            "large_dense.h5ad",
            "legacy.h5ad",
            "legacy_sparse.h5ad",
            "sparse.h5ad",
            "v07.h5ad"
        ]
    );
    compare_with_anndata(&python, &files);
}

#[test]
fn psa_reads_scanpys_bundled_pre_0_7_file_as_anndata_does() {
    let test = "psa_reads_scanpys_bundled_pre_0_7_file_as_anndata_does";
    let Some(python) = python(test) else {
        return;
    };
    let locate = "import os, scanpy.datasets as d; \
                  print(os.path.join(os.path.dirname(d.__file__), '10x_pbmc68k_reduced.h5ad'))";
    let output = Command::new(&python).args(["-c", locate]).output().unwrap();
    if !output.status.success() {
        // scanpy is optional (CI installs anndata only): the same layout is in legacy.h5ad.
        eprintln!("note: {test}: scanpy is not installed; its bundled file was not compared");
        return;
    }
    let path = PathBuf::from(String::from_utf8(output.stdout).unwrap().trim());
    compare_with_anndata(&python, &[path]);
}

/// What `anndata_check.py matches` expects of a matches file.
fn expected_json(m: &Matches, partners: &[&str], partner_weights: &[f32]) -> Value {
    let rows =
        |a: ndarray::ArrayView2<f64>| a.rows().into_iter().map(|r| r.to_vec()).collect::<Vec<_>>();
    json!({
        "obs_names": m.obs_names,
        "labels": m.labels,
        "partners": partners,
        "partner_weights": partner_weights,
        "topk_index": m.topk_index.rows().into_iter().map(|r| r.to_vec()).collect::<Vec<_>>(),
        "topk_weight": m.topk_weight.rows().into_iter().map(|r| r.to_vec()).collect::<Vec<_>>(),
        "projection": m.projection.map(rows),
        "options": m.options,
        "psa_version": env!("CARGO_PKG_VERSION"),
    })
}

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|value| (*value).to_owned()).collect()
}

#[test]
fn anndata_and_scanpy_read_psas_matches() {
    let Some(python) = python("anndata_and_scanpy_read_psas_matches") else {
        return;
    };
    let obs_names = strings(&["AAAC-1", "AAAG-1", "Müller-7", "TTTT-1"]);
    let labels = strings(&["stim", "ctrl", "stim", "ctrl"]);
    let partner_names = strings(&["p0", "p1", "p2"]);
    // Row 3 is unmatched (its label absent from modality 2, say): −1 throughout.
    let topk_index = array![[2i64, 0], [1, -1], [0, 2], [-1, -1]];
    let topk_weight = array![[0.75f32, 0.25], [1.0, 0.0], [0.5, 0.5], [0.0, 0.0]];
    let projection = array![
        [0.5, -1.0, 2.0],
        [1.5, 2.0, 0.0],
        [-0.25, 0.0, 1.0],
        [0.0, 0.0, 0.0]
    ];
    let options = json!({"method": "ot", "epsilon": 0.05, "topk": 2});
    let dir = tempfile::tempdir().unwrap();
    for with_projection in [true, false] {
        let matches = Matches {
            obs_names: &obs_names,
            labels: &labels,
            partner_names: &partner_names,
            topk_index: topk_index.view(),
            topk_weight: topk_weight.view(),
            projection: with_projection.then(|| projection.view()),
            options: &options,
        };
        let path = dir.path().join("matches.h5ad");
        write_matches_h5ad(&path, &matches).unwrap();
        let expected = expected_json(&matches, &["p2", "p1", "p0", ""], &[0.75, 1.0, 0.5, 0.0]);
        let expected_path = dir.path().join("expected.json");
        fs::write(&expected_path, expected.to_string()).unwrap();
        let args = [
            "matches".as_ref(),
            path.as_os_str(),
            expected_path.as_os_str(),
        ];
        run(&python, "anndata_check.py", &args);
    }
}

#[test]
fn anndata_reads_psas_predictions() {
    let Some(python) = python("anndata_reads_psas_predictions") else {
        return;
    };
    let obs_names = strings(&["AAAC-1", "Müller-7", "TTTT-1"]);
    let prediction = array![[0.5, -1.0], [1.5, 2.0], [-0.25, 1e-300]];
    let options = json!({"model": "pred", "x2": "rna.h5ad"});
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("y1.h5ad");
    write_predictions_h5ad(&path, &obs_names, prediction.view(), &options).unwrap();
    let expected = json!({
        "obs_names": obs_names,
        "prediction": prediction.rows().into_iter().map(|r| r.to_vec()).collect::<Vec<_>>(),
        "options": options,
    });
    let expected_path = dir.path().join("expected.json");
    fs::write(&expected_path, expected.to_string()).unwrap();
    let args = [
        "predictions".as_ref(),
        path.as_os_str(),
        expected_path.as_os_str(),
    ];
    run(&python, "anndata_check.py", &args);
    // psa reads its own file back the same way.
    let file = H5adFile::open(&path).unwrap();
    assert_eq!(file.obs_names().unwrap(), obs_names);
    let read = file
        .matrix(&H5adMatrix::Obsm("psa_prediction".into()))
        .unwrap();
    assert_eq!(read, prediction);
}

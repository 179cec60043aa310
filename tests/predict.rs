//! Cross-modal prediction through the binary (issue 14): `psa match` on generated two-view data,
//! `psa predict` on its run directory (the λ grid chosen without ground truth), `psa apply` on
//! held-out units, `psa evaluate-prediction` against their true modality-1 rows; the true-pairs
//! and uniform-coupling references through the same commands; `.h5ad` in, `.h5ad` out.
//! All on `--backend cpu`.

use std::fs;

use ndarray::{Array1, Array2, Axis};
use ndarray_npy::{read_npy, write_npy};
use serde_json::Value;

mod common;
use common::Work;

/// `psa generate tabular` into `dir`, and modality 1's rows put in modality 2's unit order as
/// `dir/x1_paired.npy` (row i of it is the unit of row i of x2), for R².
fn generate(w: &Work, dir: &str, n_per_group: usize, seed: u64) {
    w.ok(&[
        "generate",
        "tabular",
        "--n-per-group",
        &n_per_group.to_string(),
        "--seed",
        &seed.to_string(),
        "--out",
        &w.arg(dir),
    ]);
    let ids = |m: u8| -> Vec<String> {
        let ids: Array1<String> = read_npy_strings(&w.path(&format!("{dir}/ids{m}.npy")));
        ids.to_vec()
    };
    let (ids1, ids2) = (ids(1), ids(2));
    let position: std::collections::HashMap<&str, usize> = ids1
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let order: Vec<usize> = ids2.iter().map(|id| position[id.as_str()]).collect();
    let x1: Array2<f32> = read_npy(w.path(&format!("{dir}/x1.npy"))).unwrap();
    let paired = x1.select(Axis(0), &order).mapv(f64::from);
    write_npy(w.path(&format!("{dir}/x1_paired.npy")), &paired).unwrap();
}

/// Unit ids as psa generate writes them (a NumPy unicode array), through psa's own reader.
fn read_npy_strings(path: &std::path::Path) -> Array1<String> {
    let ids = psa_io::LabelSource::parse(path.to_str().unwrap())
        .read_ids()
        .unwrap();
    Array1::from(ids)
}

/// `psa match` with defaults on `train/`, into `run/`.
fn match_training_units(w: &Work) {
    w.ok(&[
        "match",
        "--x1",
        "train/x1.npy",
        "--x2",
        "train/x2.npy",
        "--labels1",
        "train/labels1.npy",
        "--labels2",
        "train/labels2.npy",
        "--out",
        "run",
        "--backend",
        "cpu",
    ]);
}

fn predict(w: &Work, out: &str, extra: &[&str]) {
    let mut args = vec![
        "predict",
        "--x1",
        "train/x1.npy",
        "--x2",
        "train/x2.npy",
        "--out",
        out,
        "--backend",
        "cpu",
        "--epochs",
        "60",
    ];
    args.extend_from_slice(extra);
    w.ok(&args);
}

/// R² of a predictor on the held-out units, through `psa apply` and `psa evaluate-prediction`.
fn held_out_r2(w: &Work, model: &str) -> f64 {
    let y = format!("{model}.npy");
    w.ok(&[
        "apply",
        "--model",
        model,
        "--x2",
        "test/x2.npy",
        "--out",
        &y,
        "--backend",
        "cpu",
    ]);
    let json = format!("{model}.json");
    w.ok(&[
        "evaluate-prediction",
        "--pred",
        &y,
        "--truth",
        "test/x1_paired.npy",
        "--labels",
        "test/labels2.npy",
        "--out",
        &json,
    ]);
    let report: Value = serde_json::from_str(&fs::read_to_string(w.path(&json)).unwrap()).unwrap();
    // The printed table and the JSON carry the same weighted distances.
    assert!(report["distances"]["sliced_w1"].as_f64().unwrap() >= 0.0);
    assert_eq!(report["distances"]["groups"].as_array().unwrap().len(), 12);
    report["r2"].as_f64().unwrap()
}

#[test]
fn a_runs_coupling_predicts_held_out_units_better_than_random_matching() {
    let w = Work::new();
    generate(&w, "train", 50, 0);
    generate(&w, "test", 20, 7);
    match_training_units(&w);
    predict(&w, "chosen", &["--run", "run"]);
    predict(&w, "uniform", &["--run", "run", "--epsilon-grid", "random"]);
    predict(
        &w,
        "truth",
        &[
            "--true-pairs",
            "--ids1",
            "train/ids1.npy",
            "--ids2",
            "train/ids2.npy",
        ],
    );
    let card: Value =
        serde_json::from_str(&fs::read_to_string(w.path("chosen/predictor.json")).unwrap())
            .unwrap();
    let candidates = card["provenance"]["candidates"].as_array().unwrap();
    let names: Vec<&str> = candidates
        .iter()
        .map(|c| c["coupling"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["1×λ", "4×λ", "16×λ", "random"]);
    // The kept predictor is the candidate with the lowest validation pseudo-pair MSE.
    let best = candidates
        .iter()
        .map(|c| c["validation_pair_mse"].as_f64().unwrap())
        .fold(f64::INFINITY, f64::min);
    assert_eq!(card["best_validation_pair_mse"].as_f64().unwrap(), best);
    // training.csv: every candidate's epochs, one kept epoch in all.
    let csv = fs::read_to_string(w.path("chosen/training.csv")).unwrap();
    let header = csv.lines().next().unwrap();
    assert_eq!(
        header,
        "trial,epoch,train_loss,validation_loss,validation_pair_mse,learning_rate,best"
    );
    assert_eq!(csv.lines().filter(|l| l.ends_with(",true")).count(), 1);
    let trials: std::collections::BTreeSet<&str> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(trials.len(), 4);

    let (chosen, uniform, truth) = (
        held_out_r2(&w, "chosen"),
        held_out_r2(&w, "uniform"),
        held_out_r2(&w, "truth"),
    );
    assert!(
        chosen > uniform + 0.02,
        "R²: chosen coupling {chosen}, uniform coupling {uniform}"
    );
    assert!(truth > uniform, "R²: true pairs {truth}, uniform {uniform}");
}

#[test]
fn apply_on_an_h5ad_writes_predictions_under_its_obs_names() {
    let w = Work::new();
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/io/tests/data");
    fs::copy(data.join("dense.h5ad"), w.path("x2.h5ad")).unwrap();
    let names = psa_io::read_h5ad_obs_names(&w.path("x2.h5ad")).unwrap();
    // Modality-1 targets for the 4 cells, their ids in another order.
    let x1 = Array2::from_shape_fn((4, 2), |(i, c)| (i * 2 + c) as f64);
    write_npy(w.path("x1.npy"), &x1).unwrap();
    fs::write(w.path("ids1.txt"), names.join("\n") + "\n").unwrap();
    w.ok(&[
        "predict",
        "--true-pairs",
        "--ids1",
        "ids1.txt",
        "--ids2",
        "obs_names",
        "--x1",
        "x1.npy",
        "--x2",
        "x2.h5ad",
        "--out",
        "model",
        "--backend",
        "cpu",
        "--epochs",
        "5",
    ]);
    w.ok(&[
        "apply",
        "--model",
        "model",
        "--x2",
        "x2.h5ad",
        "--out",
        "y1.npy",
        "--backend",
        "cpu",
    ]);
    let y: Array2<f64> = read_npy(w.path("y1.npy")).unwrap();
    assert_eq!(y.dim(), (4, 2));
    let file = psa_io::H5adFile::open(&w.path("y1.h5ad")).unwrap();
    assert_eq!(file.obs_names().unwrap(), names);
    let read = file
        .matrix(&psa_io::H5adMatrix::Obsm("psa_prediction".into()))
        .unwrap();
    assert_eq!(read, y);
    // A predictor refuses rows of another width, naming the file.
    write_npy(w.path("wide.npy"), &Array2::<f64>::zeros((3, 7))).unwrap();
    let error = w.fails(&[
        "apply",
        "--model",
        "model",
        "--x2",
        "wide.npy",
        "--out",
        "y.npy",
        "--backend",
        "cpu",
    ]);
    assert!(error.contains("wide.npy"), "{error}");
    assert!(!w.path("y.npy").exists());
}

#[test]
fn predict_refuses_features_that_are_not_the_runs_rows() {
    let w = Work::new();
    generate(&w, "train", 10, 0);
    match_training_units(&w);
    write_npy(w.path("short.npy"), &Array2::<f64>::zeros((5, 3))).unwrap();
    let error = w.fails(&[
        "predict",
        "--run",
        "run",
        "--x1",
        "short.npy",
        "--x2",
        "train/x2.npy",
        "--out",
        "model",
        "--backend",
        "cpu",
    ]);
    assert!(
        error.contains("short.npy") && error.contains("5 rows"),
        "{error}"
    );
    assert!(!w.path("model").exists());
    let error = w.fails(&[
        "predict",
        "--run",
        "run",
        "--x1",
        "train/x1.npy",
        "--x2",
        "train/x2.npy",
        "--out",
        "model",
        "--epsilon-grid",
        "1,-2",
    ]);
    assert!(error.contains("--epsilon-grid"), "{error}");
}

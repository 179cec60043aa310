//! # psa-testdata — the fixtures every test crate of psa shares
//!
//! The POT reference couplings live in the repository at `tests/fixtures/pot/` (made by
//! `tests/fixtures/pot/make_fixtures.py`; see its README), and a small real two-view data set
//! (handwritten digits, top and bottom halves) at `tests/fixtures/digits/`. This crate is their
//! one locator and loader, so the CPU reference's tests, the GPU tests and the binary's end-to-end tests read
//! the same cases the same way. A dev-dependency only: nothing here ships in `psa`.

pub mod acceleration;
pub mod dense;

use std::path::{Path, PathBuf};

use ndarray::{Array1, Array2};
use ndarray_npy::read_npy;
use psa_core::{Metric, Problem, ScoresKind};

/// `tests/fixtures/pot/` of this repository.
pub fn pot_fixtures_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/pot");
    assert!(
        dir.join("README.md").is_file(),
        "POT fixtures missing: expected {}/README.md",
        dir.display()
    );
    dir
}

/// The names of every case (a folder with a `case.json`), sorted.
pub fn pot_case_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(pot_fixtures_dir())
        .expect("list the POT fixtures")
        .map(|e| e.expect("a fixture entry").path())
        .filter(|p| p.join("case.json").is_file())
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// One POT case: the raw logits and labels, the solver settings, and POT's couplings.
pub struct PotCase {
    pub name: String,
    pub dir: PathBuf,
    pub logits1: Array2<f64>,
    pub logits2: Array2<f64>,
    pub labels1: Vec<String>,
    pub labels2: Vec<String>,
    pub metric: Metric,
    /// λ on the raw cost.
    pub reg: f64,
    /// KL strength of the unbalanced cases.
    pub tau: Option<f64>,
    /// `case.json` as written.
    pub meta: serde_json::Value,
}

impl PotCase {
    /// Loads `tests/fixtures/pot/<name>`.
    pub fn load(name: &str) -> PotCase {
        let dir = pot_fixtures_dir().join(name);
        let text = std::fs::read_to_string(dir.join("case.json"))
            .unwrap_or_else(|e| panic!("{}/case.json: {e}", dir.display()));
        let meta: serde_json::Value = serde_json::from_str(&text).expect("case.json is JSON");
        let metric = match meta["metric"].as_str().expect("case.json: metric") {
            "euclidean" => Metric::Euclidean,
            "sqeuclidean" => Metric::SqEuclidean,
            other => panic!("{name}: unknown metric {other}"),
        };
        let labels = |file: &str| -> Vec<String> {
            let l: Array1<i64> = read_npy(dir.join(file)).expect(file);
            l.iter().map(|v| v.to_string()).collect()
        };
        PotCase {
            name: name.to_string(),
            logits1: read_npy(dir.join("logits1.npy")).expect("logits1.npy"),
            logits2: read_npy(dir.join("logits2.npy")).expect("logits2.npy"),
            labels1: labels("labels1.npy"),
            labels2: labels("labels2.npy"),
            metric,
            reg: meta["reg"].as_f64().expect("case.json: reg"),
            tau: meta["tau"].as_f64(),
            meta,
            dir,
        }
    }

    /// The case as psa's matchers take it (centred log-ratio of the logits).
    pub fn problem(&self) -> Problem {
        Problem::from_scores(
            self.logits1.view(),
            &self.labels1,
            self.logits2.view(),
            &self.labels2,
            ScoresKind::Logits,
            self.metric,
        )
        .expect("a valid fixture")
    }

    /// POT's `P(j|i)` of the group `label` (rows and columns in input order of that label).
    pub fn conditional(&self, label: &str) -> Array2<f64> {
        read_npy(self.dir.join(format!("P_{label}.npy"))).expect("P_<label>.npy")
    }

    /// POT's plan `M` of the group `label` (unbalanced cases only).
    pub fn plan(&self, label: &str) -> Array2<f64> {
        read_npy(self.dir.join(format!("M_{label}.npy"))).expect("M_<label>.npy")
    }

    /// Path of a file of the case, for tests that hand it to the binary.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// Largest absolute difference between two matrices of the same shape.
pub fn max_abs_diff(a: &Array2<f64>, b: &Array2<f64>) -> f64 {
    assert_eq!(a.dim(), b.dim(), "shapes differ");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// One modality of the real two-view digits fixture (`tests/fixtures/digits/`, made by its
/// `make_digits.py`): 500 handwritten digits, the top (modality 1) or bottom (2) half of each
/// 8 × 8 image, rows shuffled per modality. Returns the `500 × 32` pixels and the labels.
pub fn digits(modality: usize) -> (Array2<f64>, Vec<String>) {
    let dir = digits_dir();
    let x: Array2<f32> = read_npy(dir.join(format!("x{modality}.npy")))
        .unwrap_or_else(|e| panic!("{}/x{modality}.npy: {e}", dir.display()));
    let labels: Array1<i64> = read_npy(dir.join(format!("labels{modality}.npy")))
        .unwrap_or_else(|e| panic!("{}/labels{modality}.npy: {e}", dir.display()));
    (
        x.mapv(f64::from),
        labels.iter().map(i64::to_string).collect(),
    )
}

/// `tests/fixtures/digits/` of this repository.
pub fn digits_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/digits");
    assert!(
        dir.join("make_digits.py").is_file(),
        "digits fixture missing: expected {}/make_digits.py",
        dir.display()
    );
    dir
}

/// The names of the entries of `dir`, sorted: what a test compares to check that a run left
/// nothing behind, or added nothing.
pub fn sorted_entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

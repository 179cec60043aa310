//! The GPU matcher against POT: `../shared/fixtures/` holds couplings computed by POT's
//! `sinkhorn_log` and `sinkhorn_unbalanced` to 1e-12; the f32 GPU solve must agree on
//! `P(j|i)` within 1e-4, both through the host's coupling view of the GPU potentials and
//! through the GPU's own top-k weights.

mod common;

use std::path::{Path, PathBuf};

use ndarray::{Array1, Array2};
use ndarray_npy::read_npy;
use psa_core::{Matcher, Metric, NoProgress, Problem, ScoresKind, SolveOptions};
use psa_gpu::{CostMode, GpuOptions};

fn fixtures() -> PathBuf {
    let dir = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/fixtures"
    ))
    .to_path_buf();
    assert!(dir.is_dir(), "POT fixtures not found at {}", dir.display());
    dir
}

struct Case {
    dir: PathBuf,
    problem: Problem,
    reg: f64,
    tau: Option<f64>,
}

fn load(name: &str) -> Case {
    let dir = fixtures().join(name);
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("case.json")).expect("case.json"))
            .expect("valid JSON");
    let metric = match meta["metric"].as_str().expect("metric") {
        "euclidean" => Metric::Euclidean,
        "sqeuclidean" => Metric::SqEuclidean,
        other => panic!("unknown metric {other}"),
    };
    let labels = |f: &str| -> Vec<String> {
        let l: Array1<i64> = read_npy(dir.join(f)).expect("labels");
        l.iter().map(|v| v.to_string()).collect()
    };
    let s1: Array2<f64> = read_npy(dir.join("logits1.npy")).expect("logits1");
    let s2: Array2<f64> = read_npy(dir.join("logits2.npy")).expect("logits2");
    let problem = Problem::from_scores(
        s1.view(),
        &labels("labels1.npy"),
        s2.view(),
        &labels("labels2.npy"),
        ScoresKind::Logits,
        metric,
    )
    .expect("valid fixture");
    Case {
        reg: meta["reg"].as_f64().expect("reg"),
        tau: meta["tau"].as_f64(),
        dir,
        problem,
    }
}

fn assert_matches_pot(name: &str) {
    // Streaming costs: the path large problems take (Auto would materialise on lavapipe).
    let streaming = GpuOptions {
        cost_mode: CostMode::Streaming,
        ..GpuOptions::default()
    };
    let Some(matcher) = common::matcher(streaming) else {
        return;
    };
    let case = load(name);
    let options = SolveOptions {
        epsilon: case.reg,
        tol: 1e-9,
        max_iter: 100_000,
        unbalanced: case.tau,
        ..SolveOptions::default()
    };
    let solution = matcher
        .solve(&case.problem, &options, &NoProgress)
        .expect("GPU solve");
    let k = case
        .problem
        .groups
        .iter()
        .map(|g| g.n2())
        .max()
        .unwrap_or(1)
        .min(64);
    let top = matcher
        .top_k(&case.problem, &solution, k)
        .expect("GPU top-k");
    for (index, group) in case.problem.groups.iter().enumerate() {
        let report = &solution.groups[index].report;
        assert!(report.converged, "{name} group {}: {report:?}", group.label);
        let pot: Array2<f64> =
            read_npy(case.dir.join(format!("P_{}.npy", group.label))).expect("POT coupling");
        let ours = solution.coupling(&case.problem, index).dense();
        let diff = ours
            .iter()
            .zip(&pot)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        eprintln!(
            "{name} group {}: max |ΔP| = {diff:.2e} ({report:?})",
            group.label
        );
        assert!(
            diff < 1e-4,
            "{name} group {}: max |ΔP| = {diff:e}",
            group.label
        );
        let t = &top[index];
        for i in 0..group.n1() {
            for slot in 0..k {
                let j = t.index[[i, slot]];
                if j >= 0 {
                    let d = (t.weight[[i, slot]] - pot[[i, j as usize]]).abs();
                    assert!(
                        d < 1e-4,
                        "{name} group {} row {i}: GPU weight off by {d:e}",
                        group.label
                    );
                }
            }
        }
    }
}

#[test]
fn paper_setting_matches_pot() {
    assert_matches_pot("euclid_reg005_T12");
}

#[test]
fn squared_euclidean_matches_pot() {
    assert_matches_pot("sqeuclid_reg05_T5");
}

#[test]
fn large_epsilon_many_labels_matches_pot() {
    assert_matches_pot("euclid_reg1_T45");
}

#[test]
fn unbalanced_matches_pot() {
    assert_matches_pot("unbalanced_euclid_reg05_tau1_T6");
}

//! The GPU matcher against POT: `tests/fixtures/pot/` (via `psa-testdata`) holds couplings computed by POT's
//! `sinkhorn_log` and `sinkhorn_unbalanced` to 1e-12; the f32 GPU solve must agree on
//! `P(j|i)` within 1e-4, both through the host's coupling view of the GPU potentials and
//! through the GPU's own top-k weights.

mod common;

use psa_core::{Matcher, NoProgress, SolveOptions};
use psa_gpu::{CostMode, GpuOptions};
use psa_testdata::PotCase;

fn assert_matches_pot(name: &str) {
    // Streaming costs: the path large problems take (Auto would materialise on lavapipe).
    let streaming = GpuOptions {
        cost_mode: CostMode::Streaming,
        ..GpuOptions::default()
    };
    let Some(matcher) = common::matcher(streaming) else {
        return;
    };
    let fixture = PotCase::load(name);
    let case = fixture.problem();
    let options = SolveOptions {
        epsilon: fixture.reg,
        tol: 1e-9,
        max_iter: 100_000,
        unbalanced: fixture.tau,
        ..SolveOptions::default()
    };
    let solution = matcher
        .solve(&case, &options, &NoProgress)
        .expect("GPU solve");
    let k = case
        .groups
        .iter()
        .map(|g| g.n2())
        .max()
        .unwrap_or(1)
        .min(64);
    let top = matcher.top_k(&case, &solution, k).expect("GPU top-k");
    for (index, group) in case.groups.iter().enumerate() {
        let report = &solution.groups[index].report;
        common::assert_honest_stop(&format!("{name} group {}", group.label), report, &options);
        let pot = fixture.conditional(&group.label);
        let ours = solution.coupling(&case, index).dense();
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

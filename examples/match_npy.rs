//! Library use: match two modalities from `.npy` files with the CPU reference, then read rows of
//! the coupling, top partners and a projection — no `n1 × n2` matrix is ever built.
//!
//! ```sh
//! cargo run --release -- demo --write-data /tmp/psa-demo
//! cargo run --release --example match_npy -- /tmp/psa-demo
//! ```

use std::path::Path;

use psa_core::{CpuMatcher, Matcher, Metric, NoProgress, Problem, ScoresKind, SolveOptions};

fn main() -> anyhow::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/tmp/psa-demo".into());
    let dir = Path::new(&dir);
    let scores1 = psa_io::read_matrix(&dir.join("scores1.npy"))?;
    let scores2 = psa_io::read_matrix(&dir.join("scores2.npy"))?;
    let labels1 = psa_io::read_labels(&dir.join("labels1.npy"))?;
    let labels2 = psa_io::read_labels(&dir.join("labels2.npy"))?;
    let problem = Problem::from_scores(
        scores1.view(),
        &labels1,
        scores2.view(),
        &labels2,
        ScoresKind::Logits,
        Metric::Euclidean,
    )?;
    let options = SolveOptions {
        tol: 1e-4,
        ..SolveOptions::default()
    };
    let solution = CpuMatcher.solve(&problem, &options, &NoProgress)?;
    for (index, group) in problem.groups.iter().enumerate() {
        let report = &solution.groups[index].report;
        let coupling = solution.coupling(&problem, index);
        let top = coupling.top_k(3, None);
        println!(
            "label {}: {} × {} rows, {} iterations, marginal error {:.1e}; input row {} of modality 1 \
             pairs best with row {} of modality 2 (P = {:.3})",
            group.label,
            group.n1(),
            group.n2(),
            report.iterations,
            report.marginal_error,
            group.rows1[0],
            group.rows2[top.index[[0, 0]] as usize],
            top.weight[[0, 0]],
        );
    }
    Ok(())
}

//! Library use: match two modalities from `.npy` files with the CPU reference, then read rows of
//! the coupling, top partners and a projection — no `n1 × n2` matrix is ever built.
//!
//! ```sh
//! cargo run --release -- demo --write-data /tmp/psa-demo
//! cargo run --release --example match_npy -- /tmp/psa-demo
//! ```

use std::path::Path;

use psa_core::metrics::{GroundTruth, evaluate};
use psa_core::{
    CpuMatcher, Method, Metric, NoProgress, Problem, ScoresKind, SolveOptions, match_problem,
    scatter,
};

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
    // Any backend's matcher goes here (psa_gpu::GpuMatcher implements the same trait); every
    // output below comes through the solved result, on that backend.
    let solved = match_problem(&CpuMatcher, problem, Method::Ot, &options, &NoProgress)?;
    let problem = solved.problem();
    let top = scatter::top_k_rows(problem, &solved.top_k(3, None)?, 3);
    let reports = &solved.solution().expect("OT has potentials").groups;
    for (group, solution) in problem.groups.iter().zip(reports) {
        let first = group.rows1[0];
        println!(
            "label {}: {} × {} rows, {} iterations, {} (marginal error {:.1e}); input row {first} \
             of modality 1 pairs best with row {} of modality 2 (P = {:.3})",
            group.label,
            group.n1(),
            group.n2(),
            solution.report.iterations,
            solution.report.stopped.as_str(),
            solution.report.marginal_error,
            top.index[[first, 0]],
            top.weight[[first, 0]],
        );
    }
    // The barycentric projection of modality-2 latents onto modality-1 rows, in input order.
    let latents2 = psa_io::read_matrix(&dir.join("latents2.npy"))?;
    let projected = solved.project(&scatter::views(&scatter::split2(problem, latents2.view())))?;
    let projection = scatter::rows1(problem, &projected, latents2.ncols());
    println!("projection of latents2: {:?}", projection.dim());
    // Metrics, when ground truth is known (the demo wrote unit ids).
    let ids1 = psa_io::read_ids(&dir.join("ids1.npy"))?;
    let ids2 = psa_io::read_ids(&dir.join("ids2.npy"))?;
    let truth = GroundTruth {
        ids: Some((ids1, ids2)),
        ..GroundTruth::default()
    };
    for (group, m) in problem
        .groups
        .iter()
        .zip(evaluate(solved.as_ref(), &truth)?)
    {
        println!(
            "label {}: trace {:.4} (random {:.4}), FOSCTTM {:.3}",
            group.label,
            m.trace.unwrap_or(f64::NAN),
            m.random_trace.unwrap_or(f64::NAN),
            m.foscttm.unwrap_or(f64::NAN)
        );
    }
    Ok(())
}

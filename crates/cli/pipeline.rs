//! From a `Problem` to results: solve, evaluate, write. Shared by `psa match` and `psa demo`.
//!
//! Outputs are written into a staged [`OutputDir`] and moved into place only when every file is
//! complete, so a failed run leaves no partial results behind.

use std::time::Instant;

use anyhow::{Context, Result};
use clap::ValueEnum;
use ndarray::{Array2, ArrayView2, Axis};
use psa_core::coupling::sample_pairs;
use psa_core::metrics::{
    foscttm_of_projection, latent_pair_mse_from_projection, partners_from_ids, random_trace,
    with_squared_norms,
};
use psa_core::random::random_coupling;
use psa_core::snn::{SnnCoupling, snn};
use psa_core::{Coupling, Problem, Progress, Solution, SolveOptions, SolveReport, TopK};
use psa_io::{GroupSummary, OutputDir};
use rayon::prelude::*;
use serde::Serialize;

use crate::engine::Engine;
use crate::logging;

/// How rows are paired within a group (METHOD.md step 3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Entropic optimal transport (log-domain Sinkhorn).
    #[default]
    Ot,
    /// Shared nearest neighbours in propensity space.
    Snn,
    /// Uniform coupling within each group (the baseline).
    Random,
}

/// Inputs beyond the scores: everything optional that evaluation and exports use. Matrices
/// are in input row order of their modality.
#[derive(Default)]
pub struct Extras {
    /// Unit ids (`ids1`, `ids2`): rows with equal ids are the same unit. Used only to evaluate.
    pub ids: Option<(Vec<String>, Vec<String>)>,
    /// Modality-1 features for FOSCTTM (defaults to the transformed scores).
    pub eval_features1: Option<Array2<f64>>,
    /// Latents of both modalities, for the latent MSE.
    pub latents: Option<(Array2<f64>, Array2<f64>)>,
    /// Modality-2 features to project onto modality 1.
    pub project2: Option<Array2<f64>>,
}

/// What to compute and write.
#[derive(Clone, Debug)]
pub struct RunConfig {
    pub method: Method,
    pub solve: SolveOptions,
    pub snn_k: usize,
    pub topk: usize,
    pub mass: Option<f64>,
    pub dense_max: u64,
    pub pseudo_pairs: usize,
    pub seed: u64,
}

/// Solves and evaluates every group; writes outputs into `out` when given.
pub fn run(
    problem: &Problem,
    extras: &Extras,
    config: &RunConfig,
    engine: &Engine,
    out: Option<&OutputDir>,
) -> Result<Vec<GroupSummary>> {
    let start = Instant::now();
    let solved = solve(problem, config, engine)?;
    let couplings = solved.couplings(problem);
    let evaluation = evaluate(problem, extras, &solved, &couplings, engine)?;
    if let Some(out) = out {
        write_outputs(problem, extras, config, &solved, &couplings, engine, out)?;
    }
    tracing::info!(
        method = ?config.method,
        groups = problem.groups.len(),
        "matched in {:.2} s",
        start.elapsed().as_secs_f64()
    );
    Ok(summaries(problem, config, &solved, evaluation))
}

/// What the solve produced: OT potentials, SNN rows, or nothing (random).
struct Solved {
    method: Method,
    ot: Option<Solution>,
    snn: Vec<SnnCoupling>,
    seconds: Vec<f64>,
}

impl Solved {
    fn couplings<'a>(&'a self, problem: &'a Problem) -> Vec<Coupling<'a>> {
        (0..problem.groups.len())
            .map(|index| match self.method {
                Method::Ot => self
                    .ot
                    .as_ref()
                    .expect("OT solved")
                    .coupling(problem, index),
                Method::Snn => self.snn[index].coupling(&problem.groups[index], problem.metric),
                Method::Random => random_coupling(&problem.groups[index], problem.metric),
            })
            .collect()
    }
}

struct BarProgress(indicatif::ProgressBar);

impl Progress for BarProgress {
    fn group_done(&self, _group: usize, _report: &SolveReport) {
        self.0.inc(1);
    }
}

fn solve(problem: &Problem, config: &RunConfig, engine: &Engine) -> Result<Solved> {
    let n_groups = problem.groups.len();
    let bar = logging::progress_bar(n_groups as u64, "matching groups");
    let mut solved = Solved {
        method: config.method,
        ot: None,
        snn: Vec::new(),
        seconds: vec![0.0; n_groups],
    };
    match config.method {
        Method::Ot => {
            tracing::info!(
                backend = engine.name(),
                "solving {n_groups} group(s) by entropic OT"
            );
            let solution = engine.solve(problem, &config.solve, &BarProgress(bar.clone()))?;
            solved.seconds = solution.groups.iter().map(|g| g.report.seconds).collect();
            solved.ot = Some(solution);
        }
        Method::Snn => {
            let results: Vec<(SnnCoupling, f64)> = problem
                .groups
                .par_iter()
                .map(|group| {
                    let t = Instant::now();
                    let c = snn(group, config.snn_k)?;
                    bar.inc(1);
                    Ok((c, t.elapsed().as_secs_f64()))
                })
                .collect::<Result<_, psa_core::CoreError>>()?;
            (solved.snn, solved.seconds) = results.into_iter().unzip();
        }
        Method::Random => bar.inc(n_groups as u64),
    }
    bar.finish_and_clear();
    Ok(solved)
}

/// Per-group metrics, `None` where not computable.
#[derive(Default, Clone)]
struct GroupMetrics {
    trace: Option<f64>,
    foscttm: Option<f64>,
    latent_mse: Option<f64>,
    latent_pair_mse: Option<f64>,
    random_trace: Option<f64>,
}

fn evaluate(
    problem: &Problem,
    extras: &Extras,
    solved: &Solved,
    couplings: &[Coupling<'_>],
    engine: &Engine,
) -> Result<Vec<GroupMetrics>> {
    let mut metrics = vec![GroupMetrics::default(); problem.groups.len()];
    let ot = solved.ot.as_ref();
    if let Some((ids1, ids2)) = &extras.ids {
        let partners = group_partners(problem, ids1, ids2);
        let diagonals = engine.diagonal(problem, ot, couplings, &partners)?;
        // FOSCTTM projects modality-1 features of each column's unit: x̂_i = Σ_j P(j|i) x_unit(j).
        let features: Vec<Array2<f64>> = problem
            .groups
            .iter()
            .map(|g| match &extras.eval_features1 {
                Some(f) => f.select(Axis(0), &g.rows1),
                None => g.x1.clone(),
            })
            .collect();
        let by_column: Vec<Array2<f64>> = features
            .iter()
            .zip(&partners)
            .zip(&problem.groups)
            .map(|((f, p), g)| match p {
                Some(p) => f.select(Axis(0), &unit_of_column(p)),
                None => Array2::zeros((g.n2(), f.ncols())),
            })
            .collect();
        let views: Vec<ArrayView2<'_, f64>> = by_column.iter().map(|a| a.view()).collect();
        let projected = engine.project(problem, ot, couplings, &views)?;
        for (index, m) in metrics.iter_mut().enumerate() {
            if let (Some(diagonal), Some(_)) = (&diagonals[index], &partners[index]) {
                m.trace = Some(diagonal.iter().sum::<f64>() / diagonal.len() as f64);
                m.random_trace = Some(random_trace(problem.groups[index].n2()));
                if diagonal.len() >= 2 {
                    m.foscttm = Some(foscttm_of_projection(
                        projected[index].view(),
                        features[index].view(),
                    ));
                }
            }
        }
    }
    if let Some((z1, z2)) = &extras.latents {
        // Project [z2, ‖z2‖²] once: the first columns give the projection's MSE, the last the
        // pseudo-pairs' (`latent_pair_mse_from_projection`).
        let z2s: Vec<Array2<f64>> = problem
            .groups
            .iter()
            .map(|g| with_squared_norms(z2.select(Axis(0), &g.rows2).view()))
            .collect();
        let views: Vec<ArrayView2<'_, f64>> = z2s.iter().map(|a| a.view()).collect();
        let projected = engine.project(problem, ot, couplings, &views)?;
        for ((m, g), p) in metrics.iter_mut().zip(&problem.groups).zip(projected) {
            let z1g = z1.select(Axis(0), &g.rows1);
            let d = z1g.ncols();
            let barycentre = p.slice(ndarray::s![.., ..d]);
            m.latent_mse = Some((&barycentre - &z1g).mapv(|d| d * d).sum() / g.n1() as f64);
            m.latent_pair_mse = Some(latent_pair_mse_from_projection(z1g.view(), p.view()));
        }
    }
    Ok(metrics)
}

/// `partner[i]` per group when ids pair the group's rows one to one; warns otherwise.
fn group_partners(problem: &Problem, ids1: &[String], ids2: &[String]) -> Vec<Option<Vec<usize>>> {
    problem
        .groups
        .iter()
        .map(|g| {
            let a: Vec<&str> = g.rows1.iter().map(|&r| ids1[r].as_str()).collect();
            let b: Vec<&str> = g.rows2.iter().map(|&r| ids2[r].as_str()).collect();
            let partners = partners_from_ids(&a, &b);
            if partners.is_none() {
                tracing::warn!(
                    label = %g.label,
                    "ids do not pair this group's rows one to one (n1 = {}, n2 = {}): trace and FOSCTTM left null",
                    g.n1(),
                    g.n2()
                );
            }
            partners
        })
        .collect()
}

fn unit_of_column(partner: &[usize]) -> Vec<usize> {
    let mut unit = vec![0; partner.len()];
    for (i, &j) in partner.iter().enumerate() {
        unit[j] = i;
    }
    unit
}

fn summaries(
    problem: &Problem,
    config: &RunConfig,
    solved: &Solved,
    metrics: Vec<GroupMetrics>,
) -> Vec<GroupSummary> {
    problem
        .groups
        .iter()
        .zip(metrics)
        .enumerate()
        .map(|(index, (group, m))| {
            let ot = solved.ot.as_ref().map(|s| &s.groups[index]);
            GroupSummary {
                label: group.label.clone(),
                n1: group.n1(),
                n2: group.n2(),
                method: config
                    .method
                    .to_possible_value()
                    .expect("no skipped variants")
                    .get_name()
                    .to_string(),
                epsilon: ot.map(|s| s.epsilon),
                iterations: ot.map(|s| s.report.iterations),
                converged: ot.map(|s| s.report.converged),
                stopped: ot.map(|s| s.report.stopped.as_str().to_string()),
                marginal_error: ot.map(|s| s.report.marginal_error),
                seconds: solved.seconds[index],
                trace: m.trace,
                foscttm: m.foscttm,
                latent_mse: m.latent_mse,
                latent_pair_mse: m.latent_pair_mse,
                random_trace: m.random_trace,
            }
        })
        .collect()
}

fn write_outputs(
    problem: &Problem,
    extras: &Extras,
    config: &RunConfig,
    solved: &Solved,
    couplings: &[Coupling<'_>],
    engine: &Engine,
    out: &OutputDir,
) -> Result<()> {
    let ot = solved.ot.as_ref();
    let tops = engine.top_k(problem, ot, couplings, config.topk, config.mass)?;
    write_top_k(problem, &tops, config.topk, out)?;
    write_dense(problem, couplings, config.dense_max, out)?;
    if let Some(y) = &extras.project2 {
        let ys: Vec<Array2<f64>> = problem
            .groups
            .iter()
            .map(|g| y.select(Axis(0), &g.rows2))
            .collect();
        let views: Vec<ArrayView2<'_, f64>> = ys.iter().map(|a| a.view()).collect();
        let projected = engine.project(problem, ot, couplings, &views)?;
        // Rows of unmatched labels have no projection: NaN marks them.
        let mut all = Array2::from_elem((problem.n1_total, y.ncols()), f64::NAN);
        scatter_rows(problem, &projected, &mut all);
        psa_io::write_npy_f64(&out.path("projection.npy"), all.view())?;
    }
    if config.pseudo_pairs > 0 {
        let mut all = Array2::from_elem((problem.n1_total, config.pseudo_pairs), -1i64);
        for (group, coupling) in problem.groups.iter().zip(couplings) {
            let local = sample_pairs(coupling, config.pseudo_pairs, config.seed);
            for (i, row) in local.rows().into_iter().enumerate() {
                for (d, &j) in row.iter().enumerate() {
                    all[[group.rows1[i], d]] = group.rows2[j as usize] as i64;
                }
            }
        }
        psa_io::write_npy_i64(&out.path("pseudo_pairs.npy"), all.view())?;
    }
    Ok(())
}

fn scatter_rows(problem: &Problem, per_group: &[Array2<f64>], all: &mut Array2<f64>) {
    for (group, rows) in problem.groups.iter().zip(per_group) {
        for (i, row) in rows.rows().into_iter().enumerate() {
            all.row_mut(group.rows1[i]).assign(&row);
        }
    }
}

/// `topk_index.npy` (int64, modality-2 input rows, −1 unused) and `topk_weight.npy` (f32).
fn write_top_k(problem: &Problem, tops: &[TopK], k: usize, out: &OutputDir) -> Result<()> {
    let mut index = Array2::from_elem((problem.n1_total, k), -1i64);
    let mut weight = Array2::<f32>::zeros((problem.n1_total, k));
    for (group, top) in problem.groups.iter().zip(tops) {
        for (i, &row) in group.rows1.iter().enumerate() {
            for slot in 0..k {
                let j = top.index[[i, slot]];
                if j >= 0 {
                    index[[row, slot]] = group.rows2[j as usize] as i64;
                    weight[[row, slot]] = top.weight[[i, slot]] as f32;
                }
            }
        }
    }
    psa_io::write_npy_i64(&out.path("topk_index.npy"), index.view())?;
    psa_io::write_npy_f32(&out.path("topk_weight.npy"), weight.view())?;
    Ok(())
}

/// `coupling/<label>.npy` for each group with `n1 · n2 ≤ dense_max`.
fn write_dense(
    problem: &Problem,
    couplings: &[Coupling<'_>],
    dense_max: u64,
    out: &OutputDir,
) -> Result<()> {
    let small: Vec<usize> = (0..problem.groups.len())
        .filter(|&i| problem.groups[i].pairs() <= dense_max)
        .collect();
    if small.is_empty() {
        return Ok(());
    }
    let dir = out.subdir("coupling")?;
    let mut used = std::collections::HashSet::new();
    for index in small {
        let group = &problem.groups[index];
        let name = unique_name(file_name_for_label(&group.label), &mut used);
        let path = dir.join(format!("{name}.npy"));
        psa_io::write_npy_f64(&path, couplings[index].dense().view())
            .with_context(|| format!("writing the coupling of label {:?}", group.label))?;
    }
    Ok(())
}

/// `name`, or `name-2`, `name-3`, … when two labels map to the same file name.
fn unique_name(name: String, used: &mut std::collections::HashSet<String>) -> String {
    let mut candidate = name.clone();
    let mut suffix = 1;
    while !used.insert(candidate.clone()) {
        suffix += 1;
        candidate = format!("{name}-{suffix}");
    }
    if suffix > 1 {
        tracing::warn!("two labels map to coupling/{name}.npy; writing coupling/{candidate}.npy");
    }
    candidate
}

/// Labels become file names: characters outside `[A-Za-z0-9._-]` are replaced by `_`.
pub fn file_name_for_label(label: &str) -> String {
    let name: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() || name.starts_with('.') {
        format!("_{name}")
    } else {
        name
    }
}

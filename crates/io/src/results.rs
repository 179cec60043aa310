//! A solved matching's output files (README "Outputs"), written through the [`Solved`] seam so
//! every backend and every command (`psa match`, `psa export`) writes the same files the same
//! way: top-k partners, dense couplings of small groups, the barycentric projection of a
//! modality-2 matrix, and pseudo-pairs — all in input row order, all NumPy-readable.

use std::collections::HashSet;

use ndarray::Array2;
use psa_core::{Solved, scatter};

use crate::{IoError, Matches, OutputDir, write_npy_f32, write_npy_f64, write_npy_i64};

/// Who the rows are, for `matches.h5ad`: the modality-1 rows' `obs_names` and labels, and the
/// ids of the modality-2 rows that partners point to. `psa match` has them when modality 1 is
/// an `.h5ad` (its `obs_names`) or `--ids1` is given; the run directory keeps them
/// (`run/names.json`) so `psa export` writes the same file.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RowNames {
    /// `obs_names` of `matches.h5ad`: one per modality-1 input row.
    pub obs_names: Vec<String>,
    /// The label `t` of each modality-1 input row (`obs["psa_label"]`).
    pub labels: Vec<String>,
    /// One id per modality-2 input row (`obs["psa_partner"]` names these).
    pub partner_names: Vec<String>,
}

/// The outputs to write, as `psa match` and `psa export` flags give them.
#[derive(Clone, Debug)]
pub struct OutputRequest {
    /// Partners per row in `topk_index.npy` / `topk_weight.npy` (`--topk`).
    pub topk: usize,
    /// Keep only the fewest partners holding this share of each row (`--mass`).
    pub mass: Option<f64>,
    /// Write `coupling/<label>.npy` for groups with `n1 · n2 ≤ dense_max` (`--dense-max`).
    pub dense_max: u64,
    /// A modality-2 matrix (input row order) to project: `projection.npy` (`--project2`).
    pub project2: Option<Array2<f64>>,
    /// Draws per row into `pseudo_pairs.npy`; 0 writes none (`--pseudo-pairs`).
    pub pseudo_pairs: usize,
    /// Seed of the pseudo-pair draws (`--seed`).
    pub seed: u64,
    /// Row names: when given, `matches.h5ad` is written too.
    pub names: Option<RowNames>,
    /// What `uns["psa"]["options"]` of `matches.h5ad` records (the run's options).
    pub options: serde_json::Value,
}

impl Default for OutputRequest {
    fn default() -> Self {
        OutputRequest {
            topk: 10,
            mass: None,
            dense_max: 4_000_000,
            project2: None,
            pseudo_pairs: 0,
            seed: 0,
            names: None,
            options: serde_json::Value::Null,
        }
    }
}

/// The file each group's dense coupling went to (`None`: above `--dense-max`), by group index.
pub type CouplingFiles = Vec<Option<String>>;

/// Writes every requested output of `solved` into `out`; returns where each group's dense
/// coupling went (relative to the directory), for the summary.
pub fn write_results(
    solved: &dyn Solved,
    request: &OutputRequest,
    out: &OutputDir,
) -> Result<CouplingFiles, IoError> {
    let problem = solved.problem();
    ensure_fits(problem, request)?;
    let top = scatter::top_k_rows(
        problem,
        &solved.top_k(request.topk, request.mass)?,
        request.topk,
    );
    write_npy_i64(&out.path("topk_index.npy"), top.index.view())?;
    write_npy_f32(&out.path("topk_weight.npy"), top.weight.view())?;
    let files = write_dense(solved, request.dense_max, out)?;
    let projection = match &request.project2 {
        Some(y) => {
            let ys = scatter::split2(problem, y.view());
            let projected = solved.project(&scatter::views(&ys))?;
            let all = scatter::rows1(problem, &projected, y.ncols());
            write_npy_f64(&out.path("projection.npy"), all.view())?;
            Some(all)
        }
        None => None,
    };
    if request.pseudo_pairs > 0 {
        let draws = solved.sample_pairs(request.pseudo_pairs, request.seed)?;
        let all = scatter::pairs1(problem, &draws, request.pseudo_pairs);
        write_npy_i64(&out.path("pseudo_pairs.npy"), all.view())?;
    }
    if let Some(names) = &request.names {
        let matches = Matches {
            obs_names: &names.obs_names,
            labels: &names.labels,
            partner_names: &names.partner_names,
            topk_index: top.index.view(),
            topk_weight: top.weight.view(),
            projection: projection.as_ref().map(|p| p.view()),
            options: &request.options,
        };
        crate::write_matches_h5ad(&out.path(MATCHES_H5AD), &matches)?;
    }
    Ok(files)
}

/// The AnnData file of the matches (README "Outputs").
pub const MATCHES_H5AD: &str = "matches.h5ad";

/// Refuses, before anything is allocated, outputs that cannot fit in memory (issue 11): the
/// top-k arrays (`n1 × k` int64 + float32, and each group's f64 + int64 top-k before they are
/// scattered), the pseudo-pairs (`n1 × N` int64, twice while scattered) and the largest dense
/// coupling `--dense-max` lets through (f64).
fn ensure_fits(problem: &psa_core::Problem, request: &OutputRequest) -> Result<(), IoError> {
    let n1 = problem.n1_total as u64;
    let topk = request.topk as u64;
    crate::ensure_memory(
        format!("--topk {topk}"),
        "topk_index.npy and topk_weight.npy",
        crate::bytes_of(&[n1, topk], 8 + 4 + 8 + 8),
    )?;
    if request.pseudo_pairs > 0 {
        let draws = request.pseudo_pairs as u64;
        crate::ensure_memory(
            format!("--pseudo-pairs {draws}"),
            "pseudo_pairs.npy",
            crate::bytes_of(&[n1, draws], 2 * 8),
        )?;
    }
    let largest_dense = problem
        .groups
        .iter()
        .map(|g| g.pairs())
        .filter(|&pairs| pairs <= request.dense_max)
        .max();
    if let Some(pairs) = largest_dense {
        crate::ensure_memory(
            format!("--dense-max {}", request.dense_max),
            "the dense coupling/<label>.npy files",
            crate::bytes_of(&[pairs], 8),
        )?;
    }
    Ok(())
}

/// `coupling/<name>.npy` for each group with `n1 · n2 ≤ dense_max`.
fn write_dense(
    solved: &dyn Solved,
    dense_max: u64,
    out: &OutputDir,
) -> Result<CouplingFiles, IoError> {
    let problem = solved.problem();
    let mut files = vec![None; problem.groups.len()];
    let small: Vec<usize> = (0..problem.groups.len())
        .filter(|&g| problem.groups[g].pairs() <= dense_max)
        .collect();
    if small.is_empty() {
        return Ok(files);
    }
    let dir = out.subdir("coupling")?;
    let mut used = HashSet::new();
    for g in small {
        let name = unique_name(file_name_for_label(&problem.groups[g].label), &mut used);
        write_npy_f64(&dir.join(format!("{name}.npy")), solved.dense(g)?.view())?;
        files[g] = Some(format!("coupling/{name}.npy"));
    }
    Ok(files)
}

/// `name`, or `name-2`, `name-3`, … when two labels map to the same file name.
fn unique_name(name: String, used: &mut HashSet<String>) -> String {
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

/// Longest label kept whole in a file name; longer ones are cut and given a hash suffix, so
/// every name stays far below file systems' 255-byte limit (the summary keeps the label).
pub const MAX_LABEL_FILE_CHARS: usize = 64;

/// Labels become file names: characters outside `[A-Za-z0-9._-]` are replaced by `_`; a name
/// that would start with `.` gets a `_` in front; labels longer than [`MAX_LABEL_FILE_CHARS`]
/// are cut and end in `~` and 16 hex digits of a hash of the whole label.
pub fn file_name_for_label(label: &str) -> String {
    let mut name: String = label
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
        name.insert(0, '_');
    }
    if name.chars().count() > MAX_LABEL_FILE_CHARS {
        let head: String = name.chars().take(MAX_LABEL_FILE_CHARS).collect();
        name = format!("{head}~{:016x}", fnv1a(label.as_bytes()));
    }
    name
}

/// FNV-1a, 64 bits: a stable (across runs and platforms) hash for file-name suffixes.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_file_names_are_safe_short_and_distinct() {
        assert_eq!(file_name_for_label("CD4 T/cells"), "CD4_T_cells");
        assert_eq!(file_name_for_label(".hidden"), "_.hidden");
        assert_eq!(file_name_for_label(""), "_");
        let long_a = "a".repeat(300);
        let long_b = format!("{}b", "a".repeat(299));
        let (a, b) = (file_name_for_label(&long_a), file_name_for_label(&long_b));
        assert!(a.len() < 100 && b.len() < 100, "{a}");
        assert_ne!(a, b, "labels that share a long prefix get different names");
        assert_eq!(a, file_name_for_label(&long_a), "stable");
    }
}

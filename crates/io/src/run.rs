//! A run directory as a complete, reloadable result (DESIGN.md "Seams"): besides the outputs a
//! user asked for, `psa match` writes under `DIR/run/` everything needed to answer any other
//! question about the coupling later, without solving again:
//!
//! | file | contents |
//! | --- | --- |
//! | `run/manifest.json` | psa version, method, metric, options, a SHA-256 of each input file, and per group its label, sizes, λ and solve report |
//! | `run/clr1.npy`, `run/clr2.npy` | `n × T` float64: the centred log-ratio scores the matcher solved on, input row order; NaN rows for rows that were not matched |
//! | `run/group1.npy`, `run/group2.npy` | `n` int64: each input row's group (index into the manifest's `groups`), −1 if not matched |
//! | `run/f.npy`, `run/g.npy` | `n` float64 (OT only): the Sinkhorn potentials of each row, NaN if not matched |
//! | `run/names.json` | when the run knew them (`.h5ad` modality 1 or `--ids1`): the rows' names and labels for `matches.h5ad` ([`RowNames`]) |
//!
//! [`read_run`] rebuilds the exact [`Problem`] (same groups, same row order, the same f64 scores)
//! and [`Solution`]; [`LoadedRun::solved`] hands them to a backend's
//! [`Matcher::outputs`](psa_core::Matcher::outputs), which computes outputs without a Sinkhorn
//! iteration. SNN rebuilds its (deterministic) neighbourhoods from the stored scores.

use std::io::Read;
use std::path::{Path, PathBuf};

use ndarray::{Array1, Array2, Axis};
use ndarray_npy::ReadNpyExt;
use psa_core::matcher::MatcherError;
use psa_core::{
    CpuSolved, Group, GroupSolution, Matcher, Method, Metric, NoProgress, Problem, Solution,
    SolveReport, Solved, Unmatched,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::WithPath;
use crate::summary::UnmatchedSummary;
use crate::write::{write_npy_vec_f64, write_npy_vec_i64};
use crate::{IoError, OutputDir, RowNames, write_json, write_npy_f64};

/// The folder of a run directory that holds the reloadable state.
pub const RUN_DIR: &str = "run";
/// `format` of every manifest psa writes.
pub const MANIFEST_FORMAT: &str = "psa-run";
/// Version of the layout above; bumped when it changes incompatibly.
pub const MANIFEST_VERSION: u32 = 1;

/// `run/manifest.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`MANIFEST_FORMAT`].
    pub format: String,
    pub format_version: u32,
    pub psa_version: String,
    /// `{"method": "ot"}`, `{"method": "snn", "k": 1}` or `{"method": "random"}`.
    pub method: Method,
    pub metric: Metric,
    /// The backend that solved ("cpu", "gpu").
    pub backend: String,
    /// The run's options as the command resolved them (free form, as in `summary.json`).
    pub options: serde_json::Map<String, serde_json::Value>,
    /// The files the run read, with their size and SHA-256.
    pub inputs: Vec<InputFile>,
    pub n1_total: usize,
    pub n2_total: usize,
    pub groups: Vec<ManifestGroup>,
    pub unmatched: Vec<UnmatchedSummary>,
}

/// One input file of a run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputFile {
    /// What the file was to the run: `scores1`, `labels2`, `x1`, `ids1`, …
    pub role: String,
    /// The path as given on the command line.
    pub path: String,
    pub bytes: u64,
    /// Lower-case hex SHA-256 of the file's bytes.
    pub sha256: String,
}

/// One label group of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ManifestGroup {
    pub label: String,
    pub n1: usize,
    pub n2: usize,
    /// The absolute λ (OT only).
    pub epsilon: Option<f64>,
    /// How the solve ended (OT only).
    pub report: Option<SolveReport>,
}

impl InputFile {
    /// Size and SHA-256 of `path`, read in blocks (never the whole file at once).
    pub fn hash(role: &str, path: &Path) -> Result<InputFile, IoError> {
        let mut file = std::fs::File::open(path).with_path(path)?;
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; 1 << 20];
        let mut bytes = 0u64;
        loop {
            let read = file.read(&mut buffer).with_path(path)?;
            if read == 0 {
                break;
            }
            hasher.update(&buffer[..read]);
            bytes += read as u64;
        }
        let sha256 = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(InputFile {
            role: role.to_string(),
            path: path.display().to_string(),
            bytes,
            sha256,
        })
    }
}

/// Writes the reloadable state of `solved` under `run/` of `out`.
pub fn write_run(
    solved: &dyn Solved,
    options: serde_json::Map<String, serde_json::Value>,
    inputs: Vec<InputFile>,
    names: Option<&RowNames>,
    out: &OutputDir,
) -> Result<(), IoError> {
    let problem = solved.problem();
    let dir = out.subdir(RUN_DIR)?;
    if let Some(names) = names {
        write_json(&dir.join(NAMES_FILE), names)?;
    }
    let t = problem.dim();
    let mut clr1 = Array2::from_elem((problem.n1_total, t), f64::NAN);
    let mut clr2 = Array2::from_elem((problem.n2_total, t), f64::NAN);
    let mut group1 = vec![-1i64; problem.n1_total];
    let mut group2 = vec![-1i64; problem.n2_total];
    for (index, group) in problem.groups.iter().enumerate() {
        for (i, &row) in group.rows1.iter().enumerate() {
            clr1.row_mut(row).assign(&group.x1.row(i));
            group1[row] = index as i64;
        }
        for (j, &row) in group.rows2.iter().enumerate() {
            clr2.row_mut(row).assign(&group.x2.row(j));
            group2[row] = index as i64;
        }
    }
    write_npy_f64(&dir.join("clr1.npy"), clr1.view())?;
    write_npy_f64(&dir.join("clr2.npy"), clr2.view())?;
    write_npy_vec_i64(&dir.join("group1.npy"), &group1)?;
    write_npy_vec_i64(&dir.join("group2.npy"), &group2)?;
    if let Some(solution) = solved.solution() {
        let (f, g) = potentials_in_input_rows(problem, solution);
        write_npy_vec_f64(&dir.join("f.npy"), &f)?;
        write_npy_vec_f64(&dir.join("g.npy"), &g)?;
    }
    let manifest = Manifest {
        format: MANIFEST_FORMAT.to_string(),
        format_version: MANIFEST_VERSION,
        psa_version: env!("CARGO_PKG_VERSION").to_string(),
        method: solved.method(),
        metric: problem.metric,
        backend: solved.backend().to_string(),
        options,
        inputs,
        n1_total: problem.n1_total,
        n2_total: problem.n2_total,
        groups: problem
            .groups
            .iter()
            .enumerate()
            .map(|(index, g)| {
                let s = solved.solution().map(|s| &s.groups[index]);
                ManifestGroup {
                    label: g.label.clone(),
                    n1: g.n1(),
                    n2: g.n2(),
                    epsilon: s.map(|s| s.epsilon),
                    report: s.map(|s| s.report.clone()),
                }
            })
            .collect(),
        unmatched: problem
            .unmatched
            .iter()
            .map(UnmatchedSummary::from)
            .collect(),
    };
    write_json(&dir.join("manifest.json"), &manifest)
}

fn potentials_in_input_rows(problem: &Problem, solution: &Solution) -> (Vec<f64>, Vec<f64>) {
    let mut f = vec![f64::NAN; problem.n1_total];
    let mut g = vec![f64::NAN; problem.n2_total];
    for (group, s) in problem.groups.iter().zip(&solution.groups) {
        for (&row, &v) in group.rows1.iter().zip(&s.f) {
            f[row] = v;
        }
        for (&row, &v) in group.rows2.iter().zip(&s.g) {
            g[row] = v;
        }
    }
    (f, g)
}

/// A run read back from its directory.
#[derive(Clone, Debug)]
pub struct LoadedRun {
    /// The run directory.
    pub dir: PathBuf,
    pub manifest: Manifest,
    /// The problem exactly as it was solved.
    pub problem: Problem,
    /// The potentials (OT runs).
    pub solution: Option<Solution>,
    /// Row names, where the run had them (`run/names.json`).
    pub names: Option<RowNames>,
}

/// Row names of a run that had them ([`RowNames`]).
const NAMES_FILE: &str = "names.json";

impl LoadedRun {
    /// The run's outputs on `matcher`'s backend (OT), or on the CPU (SNN, random). No Sinkhorn
    /// iteration runs: OT outputs come from the stored potentials.
    pub fn solved<'m>(
        self,
        matcher: &'m dyn Matcher,
    ) -> Result<Box<dyn Solved + 'm>, MatcherError> {
        match (self.manifest.method, self.solution) {
            (Method::Ot, Some(solution)) => matcher.outputs(self.problem, solution),
            (Method::Snn { k }, _) => Ok(Box::new(CpuSolved::snn(self.problem, k, &NoProgress)?)),
            (Method::Random, _) => Ok(Box::new(CpuSolved::random(self.problem))),
            (Method::Ot, None) => unreachable!("read_run loads potentials for OT runs"),
        }
    }
}

/// Reads the run directory `dir` (the one `psa match --out` wrote).
pub fn read_run(dir: &Path) -> Result<LoadedRun, IoError> {
    let state = dir.join(RUN_DIR);
    let manifest_path = state.join("manifest.json");
    let text = std::fs::read_to_string(&manifest_path).map_err(|cause| match cause.kind() {
        std::io::ErrorKind::NotFound => bad_run(
            dir,
            format!(
                "no {RUN_DIR}/manifest.json: not a run directory written by psa match (psa ≥ {})",
                env!("CARGO_PKG_VERSION")
            ),
        ),
        _ => IoError::io(&manifest_path, cause),
    })?;
    let manifest: Manifest = serde_json::from_str(&text)
        .map_err(|e| bad_run(&manifest_path, format!("not a psa run manifest: {e}")))?;
    if manifest.format != MANIFEST_FORMAT || manifest.format_version != MANIFEST_VERSION {
        return Err(bad_run(
            &manifest_path,
            format!(
                "format {} version {}; this psa reads {MANIFEST_FORMAT} version {MANIFEST_VERSION}",
                manifest.format, manifest.format_version
            ),
        ));
    }
    let clr1: Array2<f64> = read_state(&state, "clr1.npy")?;
    let clr2: Array2<f64> = read_state(&state, "clr2.npy")?;
    let group1: Array1<i64> = read_state(&state, "group1.npy")?;
    let group2: Array1<i64> = read_state(&state, "group2.npy")?;
    check_lengths(&state, &manifest, &clr1, &clr2, &group1, &group2)?;
    let problem = rebuild_problem(&manifest, &clr1, &clr2, &group1, &group2)?;
    let solution = match manifest.method {
        Method::Ot => {
            let f: Array1<f64> = read_state(&state, "f.npy")?;
            let g: Array1<f64> = read_state(&state, "g.npy")?;
            Some(rebuild_solution(&state, &manifest, &problem, &f, &g)?)
        }
        _ => None,
    };
    let names = read_names(&state, &problem)?;
    Ok(LoadedRun {
        dir: dir.to_path_buf(),
        manifest,
        problem,
        solution,
        names,
    })
}

/// `run/names.json` when the run wrote one, checked against the problem's row counts.
fn read_names(state: &Path, problem: &Problem) -> Result<Option<RowNames>, IoError> {
    let path = state.join(NAMES_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(IoError::io(&path, e)),
    };
    let names: RowNames = serde_json::from_str(&text)
        .map_err(|e| bad_run(&path, format!("not psa's row names: {e}")))?;
    let (n1, n2) = (problem.n1_total, problem.n2_total);
    if names.obs_names.len() != n1 || names.labels.len() != n1 || names.partner_names.len() != n2 {
        return Err(bad_run(
            &path,
            format!(
                "{} obs names, {} labels and {} partner names for a run of {n1} × {n2} rows",
                names.obs_names.len(),
                names.labels.len(),
                names.partner_names.len()
            ),
        ));
    }
    Ok(Some(names))
}

fn bad_run(path: &Path, message: String) -> IoError {
    IoError::Run {
        path: path.to_path_buf(),
        message,
    }
}

fn read_state<A: ReadNpyExt>(state: &Path, name: &str) -> Result<A, IoError> {
    let path = state.join(name);
    let file = std::fs::File::open(&path).with_path(&path)?;
    A::read_npy(std::io::BufReader::new(file))
        .map_err(|e| bad_run(&path, format!("unreadable run state: {e}")))
}

fn check_lengths(
    state: &Path,
    manifest: &Manifest,
    clr1: &Array2<f64>,
    clr2: &Array2<f64>,
    group1: &Array1<i64>,
    group2: &Array1<i64>,
) -> Result<(), IoError> {
    let expect = [
        ("clr1.npy", clr1.nrows(), manifest.n1_total),
        ("clr2.npy", clr2.nrows(), manifest.n2_total),
        ("group1.npy", group1.len(), manifest.n1_total),
        ("group2.npy", group2.len(), manifest.n2_total),
    ];
    for (name, found, expected) in expect {
        if found != expected {
            return Err(bad_run(
                &state.join(name),
                format!("{found} rows, the manifest says {expected}"),
            ));
        }
    }
    let groups = manifest.groups.len() as i64;
    for (name, membership) in [("group1.npy", group1), ("group2.npy", group2)] {
        if let Some(row) = membership.iter().position(|&g| g < -1 || g >= groups) {
            return Err(bad_run(
                &state.join(name),
                format!("row {row}: group {} of {groups}", membership[row]),
            ));
        }
    }
    Ok(())
}

fn rebuild_problem(
    manifest: &Manifest,
    clr1: &Array2<f64>,
    clr2: &Array2<f64>,
    group1: &Array1<i64>,
    group2: &Array1<i64>,
) -> Result<Problem, IoError> {
    let rows_of = |membership: &Array1<i64>, index: usize| -> Vec<usize> {
        (0..membership.len())
            .filter(|&r| membership[r] == index as i64)
            .collect()
    };
    let groups = manifest
        .groups
        .iter()
        .enumerate()
        .map(|(index, m)| {
            let rows1 = rows_of(group1, index);
            let rows2 = rows_of(group2, index);
            Group {
                label: m.label.clone(),
                x1: clr1.select(Axis(0), &rows1),
                x2: clr2.select(Axis(0), &rows2),
                rows1,
                rows2,
            }
        })
        .collect();
    Ok(Problem {
        groups,
        metric: manifest.metric,
        unmatched: manifest
            .unmatched
            .iter()
            .map(|u| Unmatched {
                label: u.label.clone(),
                modality: u.modality,
                rows: u.rows,
            })
            .collect(),
        n1_total: manifest.n1_total,
        n2_total: manifest.n2_total,
    })
}

fn rebuild_solution(
    state: &Path,
    manifest: &Manifest,
    problem: &Problem,
    f: &Array1<f64>,
    g: &Array1<f64>,
) -> Result<Solution, IoError> {
    let groups = problem
        .groups
        .iter()
        .zip(&manifest.groups)
        .map(|(group, m)| {
            let epsilon = m.epsilon.ok_or_else(|| {
                bad_run(
                    &state.join("manifest.json"),
                    format!("group {:?}: an OT run without its λ", m.label),
                )
            })?;
            Ok(GroupSolution {
                f: group.rows1.iter().map(|&r| f[r]).collect(),
                g: group.rows2.iter().map(|&r| g[r]).collect(),
                epsilon,
                report: m.report.clone().unwrap_or_default(),
            })
        })
        .collect::<Result<_, IoError>>()?;
    Ok(Solution { groups })
}

//! A run directory reloads to the same problem and potentials, and every output computed from
//! it is identical to the one computed right after the solve, with no Sinkhorn iteration.

use ndarray::array;
use psa_core::matcher::{MatcherError, Progress};
use psa_core::solved::solve_on_cpu;
use psa_core::{
    CpuSolved, Matcher, Method, Metric, NoProgress, Problem, ScoresKind, Solution, SolveOptions,
    Solved,
};
use psa_io::{InputFile, OutputDir, OutputRequest, RowNames, read_run, write_results, write_run};

/// A matcher whose solve must never run: reloading a run only computes outputs.
struct NoSolve;

impl Matcher for NoSolve {
    fn name(&self) -> &str {
        "cpu"
    }
    fn solve(
        &self,
        _: &Problem,
        _: &SolveOptions,
        _: &dyn Progress,
    ) -> Result<Solution, MatcherError> {
        panic!("reloading a run must not solve")
    }
}

fn problem() -> Problem {
    let s1 = array![
        [2.0, 0.0, 0.1],
        [0.0, 2.0, 0.3],
        [1.0, 1.0, 0.0],
        [0.5, 0.0, 2.0],
        [0.0, 0.4, 1.9],
        [0.3, 0.2, 1.0],
    ];
    let s2 = array![
        [0.1, 1.9, 0.2],
        [2.1, 0.1, 0.0],
        [0.0, 0.5, 2.1],
        [0.4, 0.0, 1.8],
        [9.0, 0.0, 0.0]
    ];
    let l = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let mut p = Problem::from_scores(
        s1.view(),
        &l(&["a", "a", "c", "b", "b", "b"]),
        s2.view(),
        &l(&["a", "a", "b", "b", "d"]),
        ScoresKind::Logits,
        Metric::Euclidean,
    )
    .unwrap();
    // As `--folds 1` does: the matched rows are a subset of larger inputs.
    p.map_rows(&[0, 2, 3, 5, 6, 8], &[1, 2, 4, 5, 7], 9, 8);
    p
}

fn files(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in walk(dir) {
        let rel = entry.strip_prefix(dir).unwrap().display().to_string();
        out.push((rel, std::fs::read(&entry).unwrap()));
    }
    out.sort();
    out
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut all = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            all.extend(walk(&p));
        } else {
            all.push(p);
        }
    }
    all
}

fn request() -> OutputRequest {
    OutputRequest {
        topk: 3,
        mass: Some(0.9),
        dense_max: 100,
        project2: Some(ndarray::Array2::from_shape_fn((8, 2), |(i, k)| {
            (i * 3 + k) as f64 * 0.5
        })),
        pseudo_pairs: 4,
        seed: 11,
        names: None,
        options: serde_json::json!({"epsilon": 0.3}),
    }
}

/// Names for every input row of [`problem`], so `matches.h5ad` is written too.
fn names(problem: &psa_core::Problem) -> RowNames {
    let mut labels = vec![String::new(); problem.n1_total];
    for group in &problem.groups {
        for &row in &group.rows1 {
            labels[row] = group.label.clone();
        }
    }
    RowNames {
        obs_names: (0..problem.n1_total).map(|r| format!("cell-{r}")).collect(),
        labels,
        partner_names: (0..problem.n2_total)
            .map(|r| format!("protein-{r}"))
            .collect(),
    }
}

fn round_trip(solved: &dyn Solved) {
    let root = tempfile::tempdir().unwrap();
    let run_dir = root.path().join("run1");
    let input = root.path().join("scores1.npy");
    std::fs::write(&input, b"abc").unwrap();
    let out = OutputDir::create(&run_dir, false).unwrap();
    let named = OutputRequest {
        names: Some(names(solved.problem())),
        ..request()
    };
    write_results(solved, &named, &out).unwrap();
    let inputs = vec![InputFile::hash("scores1", &input).unwrap()];
    write_run(
        solved,
        serde_json::Map::new(),
        inputs,
        named.names.as_ref(),
        &out,
    )
    .unwrap();
    out.commit().unwrap();

    let loaded = read_run(&run_dir).unwrap();
    // SHA-256("abc"), the FIPS 180-2 test vector.
    assert_eq!(
        loaded.manifest.inputs[0].sha256,
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(loaded.manifest.inputs[0].bytes, 3);
    let original = solved.problem();
    assert_eq!(loaded.problem.n1_total, original.n1_total);
    assert_eq!(loaded.problem.n2_total, original.n2_total);
    assert_eq!(loaded.problem.unmatched, original.unmatched);
    for (a, b) in loaded.problem.groups.iter().zip(&original.groups) {
        assert_eq!(
            (&a.label, &a.rows1, &a.rows2),
            (&b.label, &b.rows1, &b.rows2)
        );
        assert_eq!(a.x1, b.x1, "the same f64 scores, bit for bit");
        assert_eq!(a.x2, b.x2);
    }
    assert_eq!(loaded.names, named.names, "run/names.json round-trips");
    let reloaded_request = OutputRequest {
        names: loaded.names.clone(),
        ..request()
    };
    let reloaded = loaded.solved(&NoSolve).unwrap();
    assert_eq!(reloaded.method(), solved.method());
    let again = root.path().join("run2");
    let out = OutputDir::create(&again, false).unwrap();
    write_results(reloaded.as_ref(), &reloaded_request, &out).unwrap();
    out.commit().unwrap();
    // The reloadable state and OutputDir's marker (times, pid) are the run's own.
    let outputs = |dir: &std::path::Path| -> Vec<(String, Vec<u8>)> {
        files(dir)
            .into_iter()
            .filter(|(name, _)| !name.starts_with("run/") && name != psa_io::RUN_MARKER)
            .collect()
    };
    let first = outputs(&run_dir);
    assert!(first.iter().any(|(n, _)| n == "projection.npy"));
    assert!(first.iter().any(|(n, _)| n.starts_with("coupling/")));
    assert!(first.iter().any(|(n, _)| n == psa_io::MATCHES_H5AD));
    assert_eq!(
        first,
        outputs(&again),
        "every output identical, byte for byte"
    );
}

#[test]
fn an_ot_run_reloads_and_gives_identical_outputs_without_solving() {
    let options = SolveOptions {
        epsilon: 0.3,
        tol: 1e-10,
        ..SolveOptions::default()
    };
    let solved = solve_on_cpu(problem(), &options).unwrap();
    round_trip(&solved);
}

#[test]
fn snn_and_random_runs_reload_too() {
    round_trip(&CpuSolved::snn(problem(), 1, &NoProgress).unwrap());
    round_trip(&CpuSolved::random(problem()));
    assert_eq!(
        CpuSolved::snn(problem(), 2, &NoProgress).unwrap().method(),
        Method::Snn { k: 2 }
    );
}

#[test]
fn a_directory_that_is_not_a_run_says_so() {
    let root = tempfile::tempdir().unwrap();
    let err = read_run(root.path()).unwrap_err().to_string();
    assert!(
        err.contains("not a run directory written by psa match"),
        "{err}"
    );
}

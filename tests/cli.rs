//! End-to-end tests of the `psa` binary: real files in a temporary directory, the real binary,
//! and every result checked against an independent reference — POT's couplings, a closed form,
//! or the definition (METHOD.md) recomputed here from the dense coupling psa wrote.
//!
//! Every run passes `--backend cpu`, so the tests mean the same with or without the `gpu`
//! feature.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use ndarray::{Array1, Array2, Axis, ShapeBuilder};
use ndarray_npy::{read_npy, write_npy};
use serde_json::Value;

mod common;
use common::Work;

// ------------------------------------------------------------------------------------------------
// Harness: a scratch directory, input writers, and one helper per way of running psa.

/// Input writers and `psa match` on top of the shared scratch directory ([`Work`]), whose
/// inputs are written there and where psa runs with its outputs.
trait Writes {
    fn text(&self, name: &str, contents: &str) -> String;
    fn lines(&self, name: &str, values: &[String]) -> String;
    fn npy(&self, name: &str, matrix: &Array2<f64>) -> String;
    fn run_match(&self, out: &str, args: &[String]) -> Run;
}

impl Writes for Work {
    /// Writes a text file and returns its path as a command-line argument.
    fn text(&self, name: &str, contents: &str) -> String {
        let path = self.path(name);
        fs::write(&path, contents).expect("write a text input");
        arg(&path)
    }

    /// Writes one value per line (labels or ids as a text file).
    fn lines(&self, name: &str, values: &[String]) -> String {
        self.text(name, &format!("{}\n", values.join("\n")))
    }

    fn npy(&self, name: &str, matrix: &Array2<f64>) -> String {
        let path = self.path(name);
        write_npy(&path, matrix).expect("write an .npy input");
        arg(&path)
    }

    /// `psa match ARGS --out OUT --backend cpu`, which must succeed; returns its outputs.
    fn run_match(&self, out: &str, args: &[String]) -> Run {
        let dir = self.path(out);
        let output = self.psa(match_args(&dir, args));
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(
            output.status.success(),
            "psa match {args:?} failed ({}):\n{stderr}",
            output.status
        );
        Run {
            summary: read_summary(&dir),
            dir,
            stderr,
        }
    }
}

fn match_args(out: &Path, args: &[String]) -> Vec<String> {
    let mut all = vec!["match".to_string()];
    all.extend(args.iter().cloned());
    all.extend(["--out".into(), arg(out), "--backend".into(), "cpu".into()]);
    all
}

fn arg(path: &Path) -> String {
    path.to_str()
        .expect("temporary paths are UTF-8")
        .to_string()
}

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| (*v).to_string()).collect()
}

fn read_summary(dir: &Path) -> Value {
    let text = fs::read_to_string(dir.join("summary.json")).expect("summary.json is written");
    serde_json::from_str(&text).expect("summary.json is JSON")
}

/// The outputs of one successful `psa match`.
struct Run {
    dir: PathBuf,
    summary: Value,
    stderr: String,
}

impl Run {
    fn coupling(&self, label_file: &str) -> Array2<f64> {
        let path = self.dir.join("coupling").join(format!("{label_file}.npy"));
        read_npy(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn f64(&self, name: &str) -> Array2<f64> {
        read_npy(self.dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    fn topk(&self) -> (Array2<i64>, Array2<f32>) {
        let index = read_npy(self.dir.join("topk_index.npy")).expect("topk_index.npy");
        let weight = read_npy(self.dir.join("topk_weight.npy")).expect("topk_weight.npy");
        (index, weight)
    }

    fn group(&self, label: &str) -> &Value {
        self.summary["groups"]
            .as_array()
            .expect("groups is a list")
            .iter()
            .find(|g| g["label"] == label)
            .unwrap_or_else(|| panic!("no group {label:?} in {}", self.summary))
    }

    fn metric(&self, label: &str, name: &str) -> f64 {
        self.group(label)[name]
            .as_f64()
            .unwrap_or_else(|| panic!("group {label}: {name} is {}", self.group(label)[name]))
    }
}

fn keys(value: &Value) -> BTreeSet<&str> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .map(String::as_str)
        .collect()
}

fn assert_close(what: &str, got: f64, want: f64, tol: f64) {
    assert!(
        (got - want).abs() <= tol,
        "{what}: got {got:e}, want {want:e} (tolerance {tol:e})"
    );
}

fn max_abs_diff(a: &Array2<f64>, b: &Array2<f64>) -> f64 {
    assert_eq!(a.dim(), b.dim(), "shapes differ");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// Input rows carrying `label`, in input order (a group's rows, as psa orders them).
fn rows_of(labels: &[String], label: &str) -> Vec<usize> {
    (0..labels.len()).filter(|&r| labels[r] == label).collect()
}

// ------------------------------------------------------------------------------------------------
// A tiny hand-made problem: two label groups, A (4 units) and B (3 units), plus C (modality 1
// only) and D (modality 2 only). Logits are a unit's point plus a per-row offset (which the
// centred log-ratio removes); modality 2 lists the units in another order, labels interleaved.

struct Unit {
    id: &'static str,
    label: &'static str,
    point: [f64; 2],
}

const UNITS: [Unit; 10] = [
    unit("a0", "A", 0.0, 0.0),
    unit("a1", "A", 4.0, 0.0),
    unit("a2", "A", 0.0, 4.0),
    unit("a3", "A", 4.0, 4.0),
    unit("b0", "B", 0.0, 0.0),
    unit("b1", "B", -4.0, 0.0),
    unit("b2", "B", 0.0, -4.0),
    unit("c0", "C", 1.0, 1.0),
    unit("c1", "C", 2.0, 2.0),
    unit("d0", "D", 3.0, 3.0),
];

const fn unit(id: &'static str, label: &'static str, x: f64, y: f64) -> Unit {
    Unit {
        id,
        label,
        point: [x, y],
    }
}

const ORDER1: [&str; 9] = ["a0", "b0", "a1", "c0", "b1", "a2", "b2", "a3", "c1"];
const ORDER2: [&str; 8] = ["b2", "a3", "d0", "a1", "b0", "a0", "b1", "a2"];

/// One modality of the toy problem, in its input order.
struct Modality {
    ids: Vec<String>,
    labels: Vec<String>,
    scores: Array2<f64>,
}

/// `noise` shifts every point by a deterministic amount of that size (0: identical modalities).
fn modality(order: &[&str], offset: f64, noise: f64) -> Modality {
    let units: Vec<&Unit> = order
        .iter()
        .map(|id| UNITS.iter().find(|u| u.id == *id).expect("known unit"))
        .collect();
    let scores = Array2::from_shape_fn((units.len(), 3), |(r, c)| {
        let shift = offset * r as f64;
        let jitter = noise * wiggle(r * 3 + c);
        match c {
            0 | 1 => units[r].point[c] + shift + jitter,
            _ => shift,
        }
    });
    Modality {
        ids: units.iter().map(|u| u.id.to_string()).collect(),
        labels: units.iter().map(|u| u.label.to_string()).collect(),
        scores,
    }
}

/// A fixed, irregular number in [−1, 1).
fn wiggle(k: usize) -> f64 {
    let mut x = (k as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 31;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 29;
    (x >> 11) as f64 / (1u64 << 52) as f64 - 1.0
}

struct Toy {
    m1: Modality,
    m2: Modality,
}

/// Both modalities see the same points (up to the per-row offsets).
fn toy() -> Toy {
    Toy {
        m1: modality(&ORDER1, 1.5, 0.0),
        m2: modality(&ORDER2, -2.0, 0.0),
    }
}

/// Modality 2 sees each point moved by up to 0.8.
fn noisy_toy() -> Toy {
    Toy {
        m1: modality(&ORDER1, 1.5, 0.0),
        m2: modality(&ORDER2, -2.0, 0.8),
    }
}

/// Paths of a toy problem's inputs, written into a `Work`.
struct Inputs {
    scores1: String,
    labels1: String,
    scores2: String,
    labels2: String,
    ids1: String,
    ids2: String,
}

impl Inputs {
    fn write(work: &Work, toy: &Toy) -> Self {
        Inputs {
            scores1: work.npy("s1.npy", &toy.m1.scores),
            labels1: work.lines("l1.txt", &toy.m1.labels),
            scores2: work.npy("s2.npy", &toy.m2.scores),
            labels2: work.lines("l2.txt", &toy.m2.labels),
            ids1: work.lines("u1.txt", &toy.m1.ids),
            ids2: work.lines("u2.txt", &toy.m2.ids),
        }
    }

    /// The four required inputs followed by `extra`.
    fn args(&self, extra: &[&str]) -> Vec<String> {
        let mut args = strings(&["--scores1", &self.scores1, "--labels1", &self.labels1]);
        args.extend(strings(&[
            "--scores2",
            &self.scores2,
            "--labels2",
            &self.labels2,
        ]));
        args.extend(strings(extra));
        args
    }

    fn with_ids(&self, extra: &[&str]) -> Vec<String> {
        let mut args = self.args(&["--ids1", &self.ids1, "--ids2", &self.ids2]);
        args.extend(strings(extra));
        args
    }
}

impl Toy {
    /// `partner[i]`: the group-local modality-2 index of the unit of group row `i`.
    fn partner(&self, label: &str) -> Vec<usize> {
        let rows2 = rows_of(&self.m2.labels, label);
        rows_of(&self.m1.labels, label)
            .iter()
            .map(|&r1| {
                rows2
                    .iter()
                    .position(|&r2| self.m2.ids[r2] == self.m1.ids[r1])
                    .expect("every unit of A and B is in both modalities")
            })
            .collect()
    }

    /// The modality-1 transformed scores (centred logits) of a group: FOSCTTM's default features.
    fn clr1(&self, label: &str) -> Array2<f64> {
        clr(&self
            .m1
            .scores
            .select(Axis(0), &rows_of(&self.m1.labels, label)))
    }
}

/// `h_k = l_k − Σ_m l_m / T`, summed as `Σ (l_m / T)` like psa (the toys have exact ties in
/// neighbour distances, which one ulp of a differently rounded mean would break differently).
fn clr(scores: &Array2<f64>) -> Array2<f64> {
    let t = scores.ncols() as f64;
    let mean = scores.map_axis(Axis(1), |row| row.iter().map(|v| v / t).sum::<f64>());
    scores - &mean.insert_axis(Axis(1))
}

fn squared_distance(a: ndarray::ArrayView1<f64>, b: ndarray::ArrayView1<f64>) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

// ------------------------------------------------------------------------------------------------
// References: the metrics of METHOD.md recomputed from a dense P(j|i).

fn trace_of(p: &Array2<f64>, partner: &[usize]) -> f64 {
    partner
        .iter()
        .enumerate()
        .map(|(i, &j)| p[[i, j]])
        .sum::<f64>()
        / partner.len() as f64
}

/// FOSCTTM with `x1` (group order) at both ends: `x̂_i = Σ_j P(j|i) x1_unit(j)`; ties count ½.
fn foscttm_of(p: &Array2<f64>, partner: &[usize], x1: &Array2<f64>) -> f64 {
    let n = partner.len();
    let mut unit_of = vec![0; n];
    for (i, &j) in partner.iter().enumerate() {
        unit_of[j] = i;
    }
    let projected = p.dot(&x1.select(Axis(0), &unit_of));
    let score = |d: f64, own: f64| {
        if d < own {
            1.0
        } else if d == own {
            0.5
        } else {
            0.0
        }
    };
    let mut total = 0.0;
    for i in 0..n {
        let own = squared_distance(projected.row(i), x1.row(i));
        for m in (0..n).filter(|&m| m != i) {
            total += score(squared_distance(projected.row(i), x1.row(m)), own);
            total += score(squared_distance(x1.row(i), projected.row(m)), own);
        }
    }
    total / (2 * n * (n - 1)) as f64
}

fn latent_mse_of(p: &Array2<f64>, z1: &Array2<f64>, z2: &Array2<f64>) -> f64 {
    (p.dot(z2) - z1).mapv(|d| d * d).sum() / z1.nrows() as f64
}

/// `(1/n) Σ_i Σ_j P(j|i) ‖z1_i − z2_j‖²`, summed pair by pair.
fn latent_pair_mse_of(p: &Array2<f64>, z1: &Array2<f64>, z2: &Array2<f64>) -> f64 {
    let mut total = 0.0;
    for (i, zi) in z1.rows().into_iter().enumerate() {
        for (j, zj) in z2.rows().into_iter().enumerate() {
            total += p[[i, j]] * (&zi - &zj).mapv(|d| d * d).sum();
        }
    }
    total / z1.nrows() as f64
}

/// Checks one row of topk_index / topk_weight against that row of the dense coupling: the
/// `kept` largest entries, largest first, as modality-2 input rows (`rows2` maps the group's
/// columns to them), then −1 and 0.
fn check_top_row(
    what: &str,
    index: &[i64],
    weight: &[f32],
    p: &[f64],
    rows2: &[usize],
    kept: usize,
) {
    let mut taken = BTreeSet::new();
    let mut previous = f64::INFINITY;
    for slot in 0..index.len() {
        if slot >= kept {
            assert_eq!(index[slot], -1, "{what}: slot {slot} should be unused");
            assert_eq!(weight[slot], 0.0, "{what}: slot {slot} should weigh 0");
            continue;
        }
        let local = rows2
            .iter()
            .position(|&r| r as i64 == index[slot])
            .unwrap_or_else(|| {
                panic!(
                    "{what}: slot {slot} is row {} of another group",
                    index[slot]
                )
            });
        assert!(taken.insert(local), "{what}: column {local} listed twice");
        let w = p[local];
        assert_close(
            &format!("{what} slot {slot}"),
            f64::from(weight[slot]),
            w,
            1e-7 + 1e-6 * w,
        );
        assert!(
            w <= previous,
            "{what}: slot {slot} is larger than the one before"
        );
        previous = w;
    }
    let smallest_kept = previous;
    let largest_left = (0..p.len())
        .filter(|j| !taken.contains(j))
        .map(|j| p[j])
        .fold(f64::NEG_INFINITY, f64::max);
    assert!(
        smallest_kept >= largest_left,
        "{what}: an entry of {largest_left:e} was left out for one of {smallest_kept:e}"
    );
}

/// Checks topk against the dense coupling of each `(label, coupling file name)` (no --mass).
fn check_topk(
    run: &Run,
    labels1: &[String],
    labels2: &[String],
    groups: &[(&str, &str)],
    k: usize,
) {
    let (index, weight) = run.topk();
    assert_eq!(index.dim(), (labels1.len(), k), "topk_index.npy shape");
    assert_eq!(weight.dim(), (labels1.len(), k), "topk_weight.npy shape");
    for &(label, file) in groups {
        let p = run.coupling(file);
        let rows2 = rows_of(labels2, label);
        for (i, &row) in rows_of(labels1, label).iter().enumerate() {
            check_top_row(
                &format!("label {label} row {row}"),
                index.row(row).as_slice().unwrap(),
                weight.row(row).as_slice().unwrap(),
                p.row(i).as_slice().unwrap(),
                &rows2,
                k.min(rows2.len()),
            );
        }
    }
}

fn assert_row_stochastic(what: &str, p: &Array2<f64>) {
    assert!(p.iter().all(|&v| v >= 0.0), "{what}: negative entry");
    for (i, row) in p.rows().into_iter().enumerate() {
        assert_close(&format!("{what}: row {i} sum"), row.sum(), 1.0, 1e-12);
    }
}

// ------------------------------------------------------------------------------------------------
// 1. POT's couplings, through the CLI.

fn fixtures() -> PathBuf {
    psa_testdata::pot_fixtures_dir()
}

#[test]
fn pot_fixtures_match_through_the_cli() {
    let root = fixtures();
    let readme = fs::read_to_string(root.join("README.md")).expect("fixtures README.md");
    let mut cases: Vec<PathBuf> = fs::read_dir(&root)
        .expect("list the fixtures")
        .map(|e| e.expect("a fixture entry").path())
        .filter(|p| p.join("case.json").is_file())
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 4,
        "expected at least 4 fixture cases in {}",
        root.display()
    );
    let work = Work::new();
    for case in cases {
        let name = case.file_name().unwrap().to_str().unwrap().to_string();
        assert!(
            readme.contains(&name),
            "fixture {name} is not described in README.md"
        );
        let meta: Value =
            serde_json::from_str(&fs::read_to_string(case.join("case.json")).unwrap()).unwrap();
        let labels = |file: &str| -> Vec<String> {
            let l: Array1<i64> = read_npy(case.join(file)).unwrap();
            l.iter().map(i64::to_string).collect()
        };
        let (labels1, labels2) = (labels("labels1.npy"), labels("labels2.npy"));
        let path = |file: &str| arg(&case.join(file));
        let reg = meta["reg"].as_f64().expect("case.json: reg").to_string();
        let mut args = strings(&[
            "--scores1",
            &path("logits1.npy"),
            "--labels1",
            &path("labels1.npy"),
            "--scores2",
            &path("logits2.npy"),
            "--labels2",
            &path("labels2.npy"),
            "--metric",
            meta["metric"].as_str().expect("case.json: metric"),
            "--epsilon",
            &reg,
            "--tol",
            "1e-11",
            "--max-iter",
            "100000",
            "--topk",
            "5",
        ]);
        if let Some(tau) = meta["tau"].as_f64() {
            args.extend(strings(&["--unbalanced", &tau.to_string()]));
        }
        // With and without ε-scaling: the same fixed point.
        for (suffix, scaling) in [("", None), ("-no-scaling", Some("--no-eps-scaling"))] {
            let mut args = args.clone();
            args.extend(scaling.map(str::to_string));
            let run = work.run_match(&format!("{name}{suffix}"), &args);
            assert_eq!(run.summary["options"]["no_eps_scaling"], scaling.is_some());
            let groups = meta["groups"].as_object().expect("case.json: groups");
            assert_eq!(
                run.summary["groups"].as_array().unwrap().len(),
                groups.len(),
                "{name}{suffix}"
            );
            for (label, expected) in groups {
                let what = format!("{name}{suffix} group {label}");
                let group = run.group(label);
                assert_eq!(group["n1"], expected["n1"], "{what}: n1");
                assert_eq!(group["n2"], expected["n2"], "{what}: n2");
                assert_eq!(group["converged"], true, "{what}: {group}");
                let pot: Array2<f64> = read_npy(case.join(format!("P_{label}.npy"))).unwrap();
                let diff = max_abs_diff(&run.coupling(label), &pot);
                assert!(diff < 1e-6, "{what}: max |ΔP| = {diff:e}");
            }
            let pairs: Vec<(&str, &str)> =
                groups.keys().map(|l| (l.as_str(), l.as_str())).collect();
            check_topk(&run, &labels1, &labels2, &pairs, 5);
        }
    }
}

// ------------------------------------------------------------------------------------------------
// 2. summary.json, unmatched labels, and which files are written.

#[test]
fn summary_schema_and_one_sided_labels() {
    let work = Work::new();
    let toy = toy();
    let inputs = Inputs::write(&work, &toy);
    let y = Array2::from_shape_fn((toy.m2.ids.len(), 2), |(r, c)| wiggle(100 + 2 * r + c));
    let y_path = work.npy("y.npy", &y);
    let args = inputs.args(&["--topk", "5", "--dense-max", "12", "--project2", &y_path]);
    // A label seen in one modality only (C in 1, D in 2) is not an error.
    let run = work.run_match("out", &args);
    let summary = &run.summary;

    let top: BTreeSet<&str> = [
        "psa_version",
        "options",
        "groups",
        "mean",
        "unmatched",
        "classifiers",
    ]
    .into();
    assert_eq!(keys(summary), top);
    let group_keys: BTreeSet<&str> = [
        "label",
        "n1",
        "n2",
        "method",
        "epsilon",
        "iterations",
        "converged",
        "stopped",
        "marginal_error",
        "omega",
        "seconds",
        "coupling",
        "trace",
        "foscttm",
        "latent_mse",
        "latent_pair_mse",
        "random_trace",
    ]
    .into();
    let metric_keys: BTreeSet<&str> = [
        "trace",
        "foscttm",
        "latent_mse",
        "latent_pair_mse",
        "random_trace",
    ]
    .into();
    assert_eq!(keys(&summary["mean"]), metric_keys);
    assert_eq!(summary["psa_version"], env!("CARGO_PKG_VERSION"));
    let options = &summary["options"];
    for option in [
        "scores1",
        "labels1",
        "scores2",
        "labels2",
        "out",
        "method",
        "epsilon",
        "epsilon_relative",
        "tol",
        "max_iter",
        "no_eps_scaling",
        "unbalanced",
        "scores_kind",
        "metric",
        "snn_k",
        "ids1",
        "ids2",
        "eval_features1",
        "latents1",
        "latents2",
        "topk",
        "mass",
        "dense_max",
        "project2",
        "pseudo_pairs",
        "seed",
        "backend",
    ] {
        assert!(
            options.get(option).is_some(),
            "options lacks {option}: {options}"
        );
    }
    assert_eq!(options["backend_used"], "cpu");
    assert_eq!(options["topk"], 5);
    assert_eq!(options["method"], "ot");

    let groups = summary["groups"].as_array().unwrap();
    let labels: Vec<&str> = groups
        .iter()
        .map(|g| g["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["A", "B"]);
    for (group, (n1, n2)) in groups.iter().zip([(4, 4), (3, 3)]) {
        assert_eq!(keys(group), group_keys);
        assert_eq!(
            (group["n1"].as_u64(), group["n2"].as_u64()),
            (Some(n1), Some(n2))
        );
        assert_eq!(group["method"], "ot");
        assert_eq!(group["epsilon"], 0.05);
        assert_eq!(group["converged"], true);
        assert!(group["iterations"].as_u64().unwrap() >= 1);
        assert!(group["marginal_error"].as_f64().unwrap() < 1e-6);
        assert!(group["seconds"].as_f64().unwrap() >= 0.0);
        // No ids, no latents: metrics are null, never missing.
        for metric in &metric_keys {
            assert_eq!(group[*metric], Value::Null, "{metric}");
            assert_eq!(summary["mean"][*metric], Value::Null, "mean {metric}");
        }
    }
    let unmatched = summary["unmatched"].as_array().unwrap();
    assert_eq!(unmatched.len(), 2, "{unmatched:?}");
    for entry in unmatched {
        assert_eq!(keys(entry), ["label", "modality", "rows"].into());
    }
    assert_eq!(
        unmatched[0],
        serde_json::json!({"label": "C", "modality": 1, "rows": 2})
    );
    assert_eq!(
        unmatched[1],
        serde_json::json!({"label": "D", "modality": 2, "rows": 1})
    );
    assert!(
        run.stderr.contains("\"C\"") && run.stderr.contains("\"D\""),
        "one-sided labels are warned about:\n{}",
        run.stderr
    );

    // --dense-max 12: A (4 × 4 = 16 pairs) has no dense coupling, B (9) has one.
    assert!(!run.dir.join("coupling/A.npy").exists());
    assert_eq!(run.coupling("B").dim(), (3, 3));
    assert!(!run.dir.join("pseudo_pairs.npy").exists());

    // Rows of C: −1 / 0 in topk, NaN in the projection; the others have their group's partners.
    let (index, weight) = run.topk();
    let projection = run.f64("projection.npy");
    assert_eq!(projection.dim(), (toy.m1.ids.len(), 2));
    for (row, label) in toy.m1.labels.iter().enumerate() {
        let used = index.row(row).iter().filter(|&&j| j >= 0).count();
        match label.as_str() {
            "C" => {
                assert_eq!(used, 0, "row {row}");
                assert!(weight.row(row).iter().all(|&w| w == 0.0));
                assert!(projection.row(row).iter().all(|v| v.is_nan()), "row {row}");
            }
            other => {
                assert_eq!(used, if other == "A" { 4 } else { 3 }, "row {row}");
                assert!(
                    projection.row(row).iter().all(|v| v.is_finite()),
                    "row {row}"
                );
                for &j in index.row(row).iter().filter(|&&j| j >= 0) {
                    assert_eq!(toy.m2.labels[j as usize], *label, "row {row} → {j}");
                }
            }
        }
    }
    check_topk(&run, &toy.m1.labels, &toy.m2.labels, &[("B", "B")], 5);
}

// ------------------------------------------------------------------------------------------------
// 3. Metrics where the answer is known, and against the dense coupling.

#[test]
fn identical_separated_scores_match_perfectly() {
    let work = Work::new();
    let toy = toy();
    let inputs = Inputs::write(&work, &toy);
    let run = work.run_match(
        "out",
        &inputs.with_ids(&["--epsilon", "0.05", "--tol", "1e-9", "--pseudo-pairs", "4"]),
    );
    for (label, n) in [("A", 4.0), ("B", 3.0)] {
        assert_close(
            &format!("{label} trace"),
            run.metric(label, "trace"),
            1.0,
            1e-9,
        );
        assert_close(
            &format!("{label} FOSCTTM"),
            run.metric(label, "foscttm"),
            0.0,
            1e-12,
        );
        assert_close(
            &format!("{label} random trace"),
            run.metric(label, "random_trace"),
            1.0 / n,
            1e-15,
        );
        assert_eq!(run.group(label)["latent_mse"], Value::Null);
    }
    assert_close(
        "mean trace",
        run.summary["mean"]["trace"].as_f64().unwrap(),
        1.0,
        1e-9,
    );
    assert_close(
        "mean random trace",
        run.summary["mean"]["random_trace"].as_f64().unwrap(),
        (1.0 / 4.0 + 1.0 / 3.0) / 2.0,
        1e-15,
    );
    // P is (numerically) the identity pairing, so every pseudo-partner is the true partner.
    let pairs: Array2<i64> = read_npy(run.dir.join("pseudo_pairs.npy")).unwrap();
    assert_eq!(pairs.dim(), (toy.m1.ids.len(), 4));
    for (row, id) in toy.m1.ids.iter().enumerate() {
        let want = toy
            .m2
            .ids
            .iter()
            .position(|u| u == id)
            .map_or(-1, |j| j as i64);
        assert!(
            pairs.row(row).iter().all(|&j| j == want),
            "row {row}: {:?}",
            pairs.row(row)
        );
    }
}

#[test]
fn random_method_has_closed_form_metrics() {
    let work = Work::new();
    let toy = noisy_toy();
    let inputs = Inputs::write(&work, &toy);
    let run = work.run_match("out", &inputs.with_ids(&["--method", "random"]));
    for (label, n) in [("A", 4.0), ("B", 3.0)] {
        assert_close(
            &format!("{label} trace"),
            run.metric(label, "trace"),
            1.0 / n,
            1e-15,
        );
        assert_close(
            &format!("{label} FOSCTTM"),
            run.metric(label, "foscttm"),
            0.5,
            1e-12,
        );
        let group = run.group(label);
        assert_eq!(group["method"], "random");
        for key in ["epsilon", "iterations", "converged", "marginal_error"] {
            assert_eq!(group[key], Value::Null, "{label}: {key}");
        }
    }
    assert_close(
        "mean FOSCTTM",
        run.summary["mean"]["foscttm"].as_f64().unwrap(),
        0.5,
        1e-12,
    );
}

/// Latents of the toy problem: arbitrary, different in each modality.
fn latents(m: &Modality, seed: usize) -> Array2<f64> {
    Array2::from_shape_fn((m.ids.len(), 2), |(r, c)| wiggle(seed + 2 * r + c))
}

#[test]
fn metrics_agree_with_the_dense_coupling() {
    let work = Work::new();
    let toy = noisy_toy();
    let inputs = Inputs::write(&work, &toy);
    let (z1, z2) = (latents(&toy.m1, 300), latents(&toy.m2, 400));
    let z1_path = work.npy("z1.npy", &z1);
    let z2_path = work.npy("z2.npy", &z2);
    let args = inputs.with_ids(&[
        "--epsilon",
        "1",
        "--latents1",
        &z1_path,
        "--latents2",
        &z2_path,
    ]);
    let run = work.run_match("out", &args);
    let mut sums = [0.0; 4];
    for label in ["A", "B"] {
        let p = run.coupling(label);
        let partner = toy.partner(label);
        let trace = trace_of(&p, &partner);
        // A blurred coupling: the test is not trivially 1 or 1/n.
        assert!(trace > 0.4 && trace < 0.95, "{label}: trace {trace}");
        let foscttm = foscttm_of(&p, &partner, &toy.clr1(label));
        let z1g = z1.select(Axis(0), &rows_of(&toy.m1.labels, label));
        let z2g = z2.select(Axis(0), &rows_of(&toy.m2.labels, label));
        let mse = latent_mse_of(&p, &z1g, &z2g);
        let pair_mse = latent_pair_mse_of(&p, &z1g, &z2g);
        assert_close(
            &format!("{label} pair MSE"),
            run.metric(label, "latent_pair_mse"),
            pair_mse,
            1e-12,
        );
        assert_close(
            &format!("{label} trace"),
            run.metric(label, "trace"),
            trace,
            1e-12,
        );
        assert_close(
            &format!("{label} FOSCTTM"),
            run.metric(label, "foscttm"),
            foscttm,
            1e-12,
        );
        assert_close(
            &format!("{label} latent MSE"),
            run.metric(label, "latent_mse"),
            mse,
            1e-12,
        );
        for (sum, v) in sums.iter_mut().zip([trace, foscttm, mse, pair_mse]) {
            *sum += v / 2.0;
        }
    }
    let mean = &run.summary["mean"];
    for (key, want) in ["trace", "foscttm", "latent_mse", "latent_pair_mse"]
        .iter()
        .zip(sums)
    {
        assert_close(
            &format!("mean {key}"),
            mean[*key].as_f64().unwrap(),
            want,
            1e-12,
        );
    }
}

// ------------------------------------------------------------------------------------------------
// 4. SNN and random couplings.

/// `N_e(p)`: the `k` nearest rows of `to` to `p` (ties by index), `own` forced in first.
fn nearest(
    p: ndarray::ArrayView1<f64>,
    to: &Array2<f64>,
    k: usize,
    own: Option<usize>,
) -> BTreeSet<usize> {
    let mut order: Vec<usize> = (0..to.nrows()).filter(|&j| Some(j) != own).collect();
    order.sort_by(|&a, &b| {
        squared_distance(p, to.row(a))
            .total_cmp(&squared_distance(p, to.row(b)))
            .then(a.cmp(&b))
    });
    let mut set: BTreeSet<usize> = own.into_iter().collect();
    set.extend(order.into_iter().take(k - set.len()));
    set
}

/// SNN as METHOD.md defines it, row-normalised.
fn snn_reference(x1: &Array2<f64>, x2: &Array2<f64>, k: usize) -> Array2<f64> {
    let mut m = Array2::from_shape_fn((x1.nrows(), x2.nrows()), |(i, j)| {
        let shared = nearest(x1.row(i), x1, k, Some(i))
            .intersection(&nearest(x2.row(j), x1, k, None))
            .count()
            + nearest(x1.row(i), x2, k, None)
                .intersection(&nearest(x2.row(j), x2, k, Some(j)))
                .count();
        shared as f64 / (4 * k - shared) as f64
    });
    for mut row in m.rows_mut() {
        let total = row.sum();
        row /= total;
    }
    m
}

#[test]
fn snn_and_random_couplings_are_row_stochastic() {
    let work = Work::new();
    let toy = noisy_toy();
    let inputs = Inputs::write(&work, &toy);
    let snn = work.run_match("snn", &inputs.args(&["--method", "snn", "--snn-k", "2"]));
    let random = work.run_match("random", &inputs.args(&["--method", "random"]));
    for label in ["A", "B"] {
        let p = snn.coupling(label);
        assert_row_stochastic(&format!("snn {label}"), &p);
        assert_eq!(snn.group(label)["method"], "snn");
        let x1 = clr(&toy
            .m1
            .scores
            .select(Axis(0), &rows_of(&toy.m1.labels, label)));
        let x2 = clr(&toy
            .m2
            .scores
            .select(Axis(0), &rows_of(&toy.m2.labels, label)));
        let diff = max_abs_diff(&p, &snn_reference(&x1, &x2, 2));
        assert!(
            diff < 1e-12,
            "snn {label}: max |ΔP| = {diff:e} against the definition"
        );

        let p = random.coupling(label);
        assert_row_stochastic(&format!("random {label}"), &p);
        let n2 = p.ncols() as f64;
        assert!(
            p.iter().all(|&v| (v - 1.0 / n2).abs() < 1e-15),
            "random {label}: {p}"
        );
    }
    check_topk(
        &snn,
        &toy.m1.labels,
        &toy.m2.labels,
        &[("A", "A"), ("B", "B")],
        10,
    );
}

#[test]
fn snn_on_identical_scores_finds_every_partner() {
    let work = Work::new();
    let toy = toy();
    let inputs = Inputs::write(&work, &toy);
    let run = work.run_match("out", &inputs.with_ids(&["--method", "snn"]));
    for label in ["A", "B"] {
        assert_eq!(run.metric(label, "trace"), 1.0, "{label}");
        assert_eq!(run.metric(label, "foscttm"), 0.0, "{label}");
    }
}

// ------------------------------------------------------------------------------------------------
// 5. --project2.

#[test]
fn projection_is_the_coupling_times_y() {
    let work = Work::new();
    let toy = noisy_toy();
    let inputs = Inputs::write(&work, &toy);
    let y = Array2::from_shape_fn((toy.m2.ids.len(), 3), |(r, c)| {
        10.0 * wiggle(500 + 3 * r + c)
    });
    let y_path = work.npy("y.npy", &y);
    let run = work.run_match(
        "out",
        &inputs.args(&["--epsilon", "0.5", "--project2", &y_path]),
    );
    let projection = run.f64("projection.npy");
    assert_eq!(projection.dim(), (toy.m1.ids.len(), 3));
    for label in ["A", "B"] {
        let want = run
            .coupling(label)
            .dot(&y.select(Axis(0), &rows_of(&toy.m2.labels, label)));
        let rows1 = rows_of(&toy.m1.labels, label);
        let got = projection.select(Axis(0), &rows1);
        let diff = max_abs_diff(&got, &want);
        assert!(diff < 1e-12, "{label}: max |Δ| = {diff:e}");
    }
    for row in rows_of(&toy.m1.labels, "C") {
        assert!(projection.row(row).iter().all(|v| v.is_nan()), "row {row}");
    }
}

#[test]
fn pseudo_pairs_follow_the_coupling_and_the_seed() {
    let work = Work::new();
    let toy = noisy_toy();
    let inputs = Inputs::write(&work, &toy);
    let draws = 4000;
    let run_with = |out: &str, seed: &str| {
        let extra = [
            "--epsilon",
            "2",
            "--pseudo-pairs",
            &draws.to_string(),
            "--seed",
            seed,
        ];
        let run = work.run_match(out, &inputs.args(&extra));
        let pairs: Array2<i64> = read_npy(run.dir.join("pseudo_pairs.npy")).unwrap();
        (run, pairs)
    };
    let (run, pairs) = run_with("seed7", "7");
    assert_eq!(pairs.dim(), (toy.m1.ids.len(), draws));
    for label in ["A", "B"] {
        let p = run.coupling(label);
        let rows2 = rows_of(&toy.m2.labels, label);
        for (i, &row) in rows_of(&toy.m1.labels, label).iter().enumerate() {
            for (local, &r2) in rows2.iter().enumerate() {
                let hits = pairs.row(row).iter().filter(|&&j| j == r2 as i64).count();
                // Binomial: 5e-2 is over 6 standard deviations for any p.
                let share = hits as f64 / draws as f64;
                assert_close(
                    &format!("{label} row {row} → {r2}"),
                    share,
                    p[[i, local]],
                    5e-2,
                );
            }
            let in_group = pairs
                .row(row)
                .iter()
                .filter(|&&j| rows2.contains(&(j as usize)))
                .count();
            assert_eq!(
                in_group, draws,
                "{label} row {row}: a partner outside the group"
            );
        }
    }
    for row in rows_of(&toy.m1.labels, "C") {
        assert!(
            pairs.row(row).iter().all(|&j| j == -1),
            "unmatched row {row}"
        );
    }
    assert_eq!(run_with("again7", "7").1, pairs, "same seed, same pairs");
    assert_ne!(run_with("seed8", "8").1, pairs, "another seed, other pairs");
}

// ------------------------------------------------------------------------------------------------
// 6. --mass.

#[test]
fn mass_keeps_the_fewest_leading_partners() {
    let work = Work::new();
    let toy = noisy_toy();
    let inputs = Inputs::write(&work, &toy);
    let k = 3;
    let run = work.run_match(
        "out",
        &inputs.args(&["--epsilon", "2", "--topk", &k.to_string(), "--mass", "0.9"]),
    );
    let (index, weight) = run.topk();
    let mut counts = BTreeSet::new();
    for label in ["A", "B"] {
        let p = run.coupling(label);
        let rows2 = rows_of(&toy.m2.labels, label);
        for (i, &row) in rows_of(&toy.m1.labels, label).iter().enumerate() {
            let mut sorted: Vec<f64> = p.row(i).to_vec();
            sorted.sort_by(|a, b| b.total_cmp(a));
            let mut held = 0.0;
            let needed = 1 + sorted
                .iter()
                .position(|w| {
                    held += w;
                    held >= 0.9
                })
                .unwrap_or(sorted.len() - 1);
            let kept = needed.min(k);
            counts.insert(kept);
            check_top_row(
                &format!("label {label} row {row}"),
                index.row(row).as_slice().unwrap(),
                weight.row(row).as_slice().unwrap(),
                p.row(i).as_slice().unwrap(),
                &rows2,
                kept,
            );
        }
    }
    // The data exercise the cut: rows keep different numbers of partners.
    assert!(
        counts.len() >= 2,
        "rows kept {counts:?} partners: tune --epsilon"
    );
}

// ------------------------------------------------------------------------------------------------
// 7. --scores-kind probs.

#[test]
fn probabilities_give_the_coupling_of_their_logits() {
    let work = Work::new();
    let toy = noisy_toy();
    let inputs = Inputs::write(&work, &toy);
    let softmax = |s: &Array2<f64>| {
        let mut p = s.mapv(f64::exp);
        for mut row in p.rows_mut() {
            let total = row.sum();
            row /= total;
        }
        p
    };
    let probs1 = work.npy("p1.npy", &softmax(&toy.m1.scores));
    let probs2 = work.npy("p2.npy", &softmax(&toy.m2.scores));
    let extra = ["--epsilon", "0.5", "--tol", "1e-11"];
    let logits = work.run_match("logits", &inputs.args(&extra));
    let mut args = strings(&[
        "--scores1",
        &probs1,
        "--labels1",
        &inputs.labels1,
        "--scores2",
        &probs2,
        "--labels2",
        &inputs.labels2,
        "--scores-kind",
        "probs",
    ]);
    args.extend(strings(&extra));
    let probs = work.run_match("probs", &args);
    assert_eq!(probs.summary["options"]["scores_kind"], "probs");
    for label in ["A", "B"] {
        let diff = max_abs_diff(&probs.coupling(label), &logits.coupling(label));
        assert!(diff < 1e-9, "{label}: max |ΔP| = {diff:e}");
    }
}

// ------------------------------------------------------------------------------------------------
// 8. Input formats.

#[test]
fn csv_fortran_npy_and_text_labels_read_as_the_same_problem() {
    let work = Work::new();
    let mut toy = noisy_toy();
    // String labels, one with a space (its coupling file replaces it with `_`).
    let rename = |labels: &mut Vec<String>| {
        for l in labels.iter_mut() {
            *l = match l.as_str() {
                "A" => "B cell".to_string(),
                "B" => "T-cell".to_string(),
                other => other.to_string(),
            };
        }
    };
    rename(&mut toy.m1.labels);
    rename(&mut toy.m2.labels);
    let inputs = Inputs::write(&work, &toy);
    let extra = ["--epsilon", "0.5", "--tol", "1e-10"];
    let reference = work.run_match("npy", &inputs.args(&extra));

    // Modality 1: CSV with a header; labels from a named column of a metadata table.
    let mut csv = String::from("logit_a,logit_b,logit_c\n");
    for row in toy.m1.scores.rows() {
        let fields: Vec<String> = row.iter().map(f64::to_string).collect();
        csv += &format!("{}\n", fields.join(","));
    }
    let scores1 = work.text("s1.csv", &csv);
    let mut meta = String::from("barcode,cell_type,batch\n");
    for (id, label) in toy.m1.ids.iter().zip(&toy.m1.labels) {
        meta += &format!("{id},{label},1\n");
    }
    let labels1 = format!("{}:cell_type", work.text("meta1.csv", &meta));
    // Modality 2: Fortran-order .npy; labels as a plain text file (already `l2.txt`).
    let mut fortran = Array2::<f64>::zeros(toy.m2.scores.dim().f());
    fortran.assign(&toy.m2.scores);
    let scores2 = work.npy("s2_fortran.npy", &fortran);
    let header = fs::read(&scores2).unwrap();
    assert!(
        String::from_utf8_lossy(&header[..128]).contains("'fortran_order': True"),
        "the test must write a Fortran-order file"
    );
    let mut args = strings(&[
        "--scores1",
        &scores1,
        "--labels1",
        &labels1,
        "--scores2",
        &scores2,
        "--labels2",
        &inputs.labels2,
    ]);
    args.extend(strings(&extra));
    let other = work.run_match("formats", &args);

    let labels: Vec<&str> = other.summary["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["B cell", "T-cell"]);
    for file in ["B_cell", "T-cell"] {
        let diff = max_abs_diff(&other.coupling(file), &reference.coupling(file));
        assert!(diff < 1e-12, "{file}: max |ΔP| = {diff:e}");
    }
    assert_eq!(other.topk().0, reference.topk().0);
    check_topk(
        &other,
        &toy.m1.labels,
        &toy.m2.labels,
        &[("B cell", "B_cell"), ("T-cell", "T-cell")],
        10,
    );
}

// ------------------------------------------------------------------------------------------------
// 9. Bad input: one `error:` line naming the culprit, and no output.

/// Runs `psa match ARGS` twice — into a fresh DIR and, with `--force`, into an existing DIR
/// holding a file of the user's — and checks that it fails with one `error:` line holding every
/// one of `needles`, leaving no output (and no staging directory) behind.
fn assert_fails(work: &Work, case: &str, args: &[String], needles: &[&str]) {
    let before = listing(work.dir.path());
    let fresh = work.path(&format!("out-{case}"));
    let existing = work.path(&format!("kept-{case}"));
    fs::create_dir(&existing).unwrap();
    fs::write(existing.join("marker.txt"), "mine").unwrap();
    for (out, force) in [(&fresh, None), (&existing, Some("--force".to_owned()))] {
        let output = work.psa(match_args(out, args).into_iter().chain(force));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{case}: psa succeeded:\n{stderr}");
        let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(errors.len(), 1, "{case}: want one error line:\n{stderr}");
        for needle in needles {
            assert!(
                errors[0].contains(needle),
                "{case}: {needle:?} not in {:?}",
                errors[0]
            );
        }
    }
    assert!(!fresh.exists(), "{case}: {} was created", fresh.display());
    assert_eq!(
        listing(&existing),
        ["marker.txt"],
        "{case}: files were added"
    );
    assert_eq!(
        fs::read_to_string(existing.join("marker.txt")).unwrap(),
        "mine"
    );
    let mut after = listing(work.dir.path());
    after.retain(|name| *name != format!("kept-{case}"));
    assert_eq!(
        after, before,
        "{case}: the run left files beside its output"
    );
}

use psa_testdata::sorted_entries as listing;

#[test]
fn bad_inputs_fail_with_one_error_line_and_leave_no_output() {
    let work = Work::new();
    let toy = toy();
    let inputs = Inputs::write(&work, &toy);
    let with = |scores1: &str, labels1: &str, scores2: &str, extra: &[&str]| {
        let mut args = strings(&[
            "--scores1",
            scores1,
            "--labels1",
            labels1,
            "--scores2",
            scores2,
            "--labels2",
            &inputs.labels2,
        ]);
        args.extend(strings(extra));
        args
    };
    let (s1, l1, s2) = (&inputs.scores1, &inputs.labels1, &inputs.scores2);

    let mut nan = toy.m1.scores.clone();
    nan[[2, 1]] = f64::NAN;
    let nan = work.npy("s1_nan.npy", &nan);
    assert_fails(
        &work,
        "nan",
        &with(&nan, l1, s2, &[]),
        &["s1_nan.npy", "row 2, column 1", "NaN"],
    );

    // Outputs that cannot fit in memory are refused before anything is allocated (issue 11).
    assert_fails(
        &work,
        "huge-topk",
        &with(s1, l1, s2, &["--topk", "18446744073709551615"]),
        &[
            "--topk 18446744073709551615 needs more than 16 EiB",
            "topk_index.npy",
        ],
    );
    assert_fails(
        &work,
        "huge-pseudo-pairs",
        &with(s1, l1, s2, &["--pseudo-pairs", "1000000000000000"]),
        &["--pseudo-pairs 1000000000000000 needs", "pseudo_pairs.npy"],
    );

    let short = work.lines("l1_short.txt", &toy.m1.labels[..8]);
    assert_fails(
        &work,
        "short-labels",
        &with(s1, &short, s2, &[]),
        &["l1_short.txt has 8 rows", "s1.npy has 9"],
    );

    let empty = work.text("s1_empty.npy", "");
    assert_fails(
        &work,
        "empty",
        &with(&empty, l1, s2, &[]),
        &["s1_empty.npy", "empty"],
    );
    let header_only = work.text("s1_header.csv", "a,b,c\n");
    assert_fails(
        &work,
        "header-only",
        &with(&header_only, l1, s2, &[]),
        &["s1_header.csv", "empty"],
    );

    let ragged = work.text("s1_ragged.csv", "a,b,c\n1,2,3\n4,5\n6,7,8\n");
    assert_fails(
        &work,
        "ragged",
        &with(&ragged, l1, s2, &[]),
        &["s1_ragged.csv", "line 3", "expected 3 columns, found 2"],
    );

    let ints = work.path("s1_int.npy");
    write_npy(&ints, &toy.m1.scores.mapv(|v| v as i64)).unwrap();
    assert_fails(
        &work,
        "int64",
        &with(&arg(&ints), l1, s2, &[]),
        &["s1_int.npy", "<i8"],
    );

    for value in ["0", "-1"] {
        let flag = format!("--epsilon={value}");
        assert_fails(
            &work,
            &format!("epsilon={value}"),
            &with(s1, l1, s2, &[&flag]),
            &["--epsilon"],
        );
        assert_fails(
            &work,
            &format!("epsilon {value}"),
            &with(s1, l1, s2, &["--epsilon", value]),
            &["--epsilon"],
        );
    }
    assert_fails(
        &work,
        "topk",
        &with(s1, l1, s2, &["--topk", "0"]),
        &["--topk"],
    );
    for (flag, value) in [("--tol", "-1"), ("--mass", "1.5"), ("--unbalanced", "0")] {
        assert_fails(
            &work,
            &format!("{flag} {value}"),
            &with(s1, l1, s2, &[flag, value]),
            &[flag, value],
        );
    }

    let wide = work.npy(
        "s2_wide.npy",
        &Array2::from_elem((toy.m2.ids.len(), 4), 0.5),
    );
    assert_fails(
        &work,
        "mismatched-T",
        &with(s1, l1, &wide, &[]),
        &["s2_wide.npy has 4 columns", "s1.npy has 3"],
    );

    let missing = arg(&work.path("missing.npy"));
    assert_fails(
        &work,
        "missing",
        &with(&missing, l1, s2, &[]),
        &["missing.npy"],
    );

    let meta = work.text("meta.csv", "barcode,cell_type\nx,A\n");
    let column = format!("{meta}:celltype");
    assert_fails(
        &work,
        "no-column",
        &with(s1, &column, s2, &[]),
        &["meta.csv", "\"celltype\""],
    );
}

// ------------------------------------------------------------------------------------------------
// 10. Non-convergence is a warning, not an error.

#[test]
fn hitting_max_iter_warns_and_reports_not_converged() {
    let work = Work::new();
    let toy = noisy_toy();
    let inputs = Inputs::write(&work, &toy);
    let run = work.run_match("out", &inputs.args(&["--max-iter", "3", "--tol", "1e-12"]));
    for label in ["A", "B"] {
        let group = run.group(label);
        assert_eq!(group["converged"], false, "{group}");
        assert_eq!(group["iterations"], 3, "{group}");
        assert!(
            group["marginal_error"].as_f64().unwrap() >= 1e-12,
            "{group}"
        );
    }
    assert!(
        run.stderr.contains("--max-iter"),
        "no warning naming --max-iter:\n{}",
        run.stderr
    );
    assert!(run.stderr.contains("WARN"), "{}", run.stderr);
}

// ------------------------------------------------------------------------------------------------
// 11. psa demo.

/// The rows of the demo's table: method → (trace, × random, FOSCTTM, latent MSE).
fn demo_table(stdout: &str) -> Vec<(String, [f64; 5])> {
    stdout
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let method = *fields.first()?;
            if !["ot", "snn", "random"].contains(&method) {
                return None;
            }
            assert_eq!(fields.len(), 7, "table row {line:?}");
            let number = |k: usize| fields[k].parse::<f64>().expect("a number in the table");
            Some((
                method.to_string(),
                [number(1), number(2), number(3), number(4), number(5)],
            ))
        })
        .collect()
}

/// The number after `key` in the demo's first line, if the line states it.
fn demo_setting(stdout: &str, key: &str) -> Option<String> {
    let header = stdout.lines().find(|line| line.contains(key))?;
    let rest = &header[header.find(key)? + key.len()..];
    let value: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '-' | '+'))
        .collect();
    value.parse::<f64>().is_ok().then_some(value)
}

#[test]
fn demo_prints_the_three_methods_and_its_data_reproduce_through_match() {
    let work = Work::new();
    let data = work.path("data");
    let output = work.psa([
        "demo",
        "--tabular",
        "--n-per-group",
        "20",
        "--epochs",
        "5",
        "--backend",
        "cpu",
        "--write-data",
        &arg(&data),
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let table = demo_table(&stdout);
    let methods: Vec<&str> = table.iter().map(|(m, _)| m.as_str()).collect();
    assert_eq!(methods, ["ot", "snn", "random"], "{stdout}");
    let [ot, _, random] = [&table[0].1, &table[1].1, &table[2].1];
    assert!(
        ot[0] > random[0],
        "OT trace {} ≤ random {}:\n{stdout}",
        ot[0],
        random[0]
    );
    assert!(stdout.contains("FOSCTTM"), "{stdout}");
    let random_row = stdout.lines().find(|l| l.starts_with("random")).unwrap();
    assert!(
        random_row.contains(" 0.5000 "),
        "random FOSCTTM is 0.5: {random_row:?}"
    );
    assert_close("random × random", random[1], 1.0, 0.005);
    // Both modalities hold the same units, so a random partner is off by twice the variance
    // around the group mean that the random projection is off by.
    assert_close("random pair MSE", random[4], 2.0 * random[3], 2e-4);

    // The written data, matched by `psa match` with the demo's settings, give the same numbers.
    for (k, (method, row)) in table.iter().enumerate() {
        let file = |name: &str| arg(&data.join(name));
        let mut args = Vec::new();
        for m in ["1", "2"] {
            for (flag, name) in [
                ("scores", "scores"),
                ("labels", "labels"),
                ("ids", "ids"),
                ("latents", "latents"),
            ] {
                args.extend([format!("--{flag}{m}"), file(&format!("{name}{m}.npy"))]);
            }
        }
        args.extend(strings(&[
            "--eval-features1",
            &file("features1.npy"),
            "--method",
            method,
        ]));
        // The demo states its OT settings: "matching: OT λ = 0.05, tol 1e-4, …".
        for (key, flag) in [("λ = ", "--epsilon"), ("tol ", "--tol")] {
            if let Some(value) = demo_setting(&stdout, key) {
                args.extend([flag.to_string(), value]);
            }
        }
        let run = work.run_match(&format!("out{k}"), &args);
        let mean = &run.summary["mean"];
        let groups = run.summary["groups"].as_array().unwrap();
        assert_eq!(groups.len(), 12);
        assert!(groups.iter().all(|g| g["n1"] == 20 && g["n2"] == 20));
        assert_close(
            &format!("{method} trace"),
            mean["trace"].as_f64().unwrap(),
            row[0],
            5.1e-6,
        );
        assert_close(
            &format!("{method} FOSCTTM"),
            mean["foscttm"].as_f64().unwrap(),
            row[2],
            5.1e-5,
        );
        assert_close(
            &format!("{method} latent MSE"),
            mean["latent_mse"].as_f64().unwrap(),
            row[3],
            5.1e-5,
        );
        assert_close(
            &format!("{method} pair MSE"),
            mean["latent_pair_mse"].as_f64().unwrap(),
            row[4],
            5.1e-5,
        );
    }
}

// ------------------------------------------------------------------------------------------------
// 12. Help.

/// Every subcommand's `--help`, against its snapshot in `tests/snapshots/` (run the tests with
/// `PSA_UPDATE_SNAPSHOTS=1` to rewrite them after an intended change, and review the diff).
#[test]
fn help_matches_its_snapshots() {
    let work = Work::new();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots");
    let update = std::env::var_os("PSA_UPDATE_SNAPSHOTS").is_some();
    let commands: [&[&str]; 12] = [
        &[],
        &["match"],
        &["export"],
        &["predict"],
        &["apply"],
        &["evaluate-prediction"],
        &["train"],
        &["score"],
        &["demo"],
        &["generate", "images"],
        &["bench"],
        &["bench-train"],
    ];
    let mut stale = Vec::new();
    for command in commands {
        let mut args: Vec<&str> = command.to_vec();
        args.push("--help");
        let output = work.psa(&args);
        assert!(output.status.success(), "psa {args:?}");
        let help = String::from_utf8(output.stdout).expect("UTF-8 help");
        let name = if command.is_empty() {
            "psa".to_string()
        } else {
            format!("psa-{}", command.join("-"))
        };
        let path = dir.join(format!("{name}.help.txt"));
        if update {
            fs::create_dir_all(&dir).unwrap();
            fs::write(&path, &help).unwrap();
        } else if fs::read_to_string(&path).ok().as_deref() != Some(help.as_str()) {
            stale.push(format!("{} differs:\n{help}", path.display()));
        }
    }
    assert!(
        stale.is_empty(),
        "help changed; if intended, rerun with PSA_UPDATE_SNAPSHOTS=1:\n{}",
        stale.join("\n")
    );
}

#[test]
fn match_help_groups_flags_under_headings_and_short_help_hides_rare_ones() {
    let work = Work::new();
    let long = work.ok(&["match", "--help"]);
    let headings = [
        "Inputs:",
        "AnnData:",
        "Classifier:",
        "Training:",
        "Transport:",
        "Evaluation:",
        "Outputs:",
        "Hardware:",
    ];
    let positions: Vec<usize> = headings
        .iter()
        .map(|h| {
            long.lines()
                .position(|l| l == *h)
                .unwrap_or_else(|| panic!("no heading {h} in:\n{long}"))
        })
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "headings out of order: {positions:?}"
    );
    let short = work.ok(&["match", "-h"]);
    for rare in ["--dense-max", "--layer1", "--gpu-cost", "--eval-features1"] {
        assert!(long.contains(rare), "--help lacks {rare}");
        assert!(!short.contains(rare), "-h shows the rare flag {rare}");
    }
    for common in ["--scores1", "--x1", "--epsilon", "--topk", "--backend"] {
        assert!(short.contains(common), "-h lacks {common}");
    }
}

#[test]
fn labels_that_clean_to_one_file_name_get_distinct_files() {
    let work = Work::new();
    let scores = ndarray::array![[0.0, 2.0], [2.0, 0.0], [1.0, 1.5], [0.5, 0.0]];
    let s = work.npy("s.npy", &scores);
    let labels = work.lines("l.txt", &strings(&["B cell", "B cell", "B_cell", "B_cell"]));
    let run = work.run_match(
        "out",
        &strings(&[
            "--scores1",
            &s,
            "--labels1",
            &labels,
            "--scores2",
            &s,
            "--labels2",
            &labels,
        ]),
    );
    // Groups are sorted by label: "B cell" < "B_cell"; the second gets a suffix.
    assert_row_stochastic("B cell", &run.coupling("B_cell"));
    assert_row_stochastic("B_cell", &run.coupling("B_cell-2"));
    assert!(
        run.stderr.contains("coupling/B_cell-2.npy"),
        "{}",
        run.stderr
    );
}

#[test]
fn an_out_path_that_is_a_file_fails_before_any_work() {
    let work = Work::new();
    let toy = toy();
    let inputs = Inputs::write(&work, &toy);
    let file = work.text("taken", "keep me");
    let output = work.psa(strings(&[
        "match",
        "--scores1",
        &inputs.scores1,
        "--labels1",
        &inputs.labels1,
        "--scores2",
        &inputs.scores2,
        "--labels2",
        &inputs.labels2,
        "--out",
        &file,
        "--backend",
        "cpu",
    ]));
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("taken"), "{stderr}");
    assert!(
        !stderr.contains("solving"),
        "failed only after solving:\n{stderr}"
    );
    assert_eq!(fs::read_to_string(work.path("taken")).unwrap(), "keep me");
}

// ------------------------------------------------------------------------------------------------
// 13. psa export: outputs again from a run directory, identical, without solving.

/// Every file under `dir` (relative path → bytes), except the summary and the run marker.
fn output_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let name = path.strip_prefix(root).unwrap().display().to_string();
                if name != "summary.json" && name != psa_io::RUN_MARKER {
                    out.push((name, fs::read(&path).unwrap()));
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[test]
fn export_writes_what_match_would_have_written_with_those_flags() {
    let work = Work::new();
    let toy = toy();
    let inputs = Inputs::write(&work, &toy);
    let y = Array2::from_shape_fn((toy.m2.ids.len(), 3), |(r, c)| wiggle(7 * r + c));
    let y_path = work.npy("y.npy", &y);
    let flags = [
        "--topk",
        "3",
        "--mass",
        "0.95",
        "--project2",
        &y_path,
        "--pseudo-pairs",
        "6",
        "--seed",
        "5",
        "--dense-max",
        "12",
    ];
    for method in ["ot", "snn", "random"] {
        let plain = work.run_match(
            &format!("plain-{method}"),
            &inputs.args(&["--method", method]),
        );
        let mut with_flags = vec!["--method", method];
        with_flags.extend(flags);
        let direct = work.run_match(&format!("direct-{method}"), &inputs.args(&with_flags));
        let exported = work.path(&format!("exported-{method}"));
        let mut args = strings(&[
            "export",
            "--run",
            &arg(&plain.dir),
            "--out",
            &arg(&exported),
        ]);
        args.extend(strings(&flags));
        args.extend(strings(&["--backend", "cpu"]));
        let output = work.psa(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "psa export failed:\n{stderr}");
        assert!(stderr.contains("without solving"), "{stderr}");
        let (a, b) = (output_files(&direct.dir), output_files(&exported));
        let names: Vec<&str> = a.iter().map(|(n, _)| n.as_str()).collect();
        for expected in [
            "topk_index.npy",
            "topk_weight.npy",
            "projection.npy",
            "pseudo_pairs.npy",
            "coupling/B.npy",
            "run/manifest.json",
            "run/clr1.npy",
            "run/group2.npy",
        ] {
            assert!(
                names.contains(&expected),
                "{method}: {expected} missing: {names:?}"
            );
        }
        // The manifests differ only in the options the two runs were given.
        let strip = |files: Vec<(String, Vec<u8>)>| -> Vec<(String, Vec<u8>)> {
            files
                .into_iter()
                .filter(|(n, _)| n != "run/manifest.json")
                .collect()
        };
        assert_eq!(
            strip(a),
            strip(b),
            "{method}: exported files differ from psa match's"
        );
        let summary = read_summary(&exported);
        assert_eq!(summary["groups"].as_array().unwrap().len(), 2);
        assert_eq!(summary["groups"][1]["coupling"], "coupling/B.npy");
    }
}

#[test]
fn export_of_a_directory_that_is_not_a_run_names_it() {
    let work = Work::new();
    fs::create_dir(work.path("empty")).unwrap();
    let err = work.fails(&[
        "export",
        "--run",
        &work.arg("empty"),
        "--out",
        &work.arg("x"),
    ]);
    assert!(
        err.contains("empty") && err.contains("not a run directory"),
        "{err}"
    );
    assert!(!work.path("x").exists());
}

/// With unit ids, `psa match` writes `matches.h5ad` (issue 13): one obs row per modality-1 row
/// named by `--ids1`, its label, and its partners, as `topk_index.npy` says;
/// `psa export` of the run writes the same rows (read back with psa-io's AnnData reader; the
/// file's dtypes and layout are checked against Python's anndata in crates/io/tests/anndata.rs).
#[test]
fn ids_give_a_matches_h5ad_that_export_writes_again() {
    let work = Work::new();
    let toy = toy();
    let inputs = Inputs::write(&work, &toy);
    let run = work.run_match("named", &inputs.with_ids(&["--topk", "2"]));
    let h5ad = run.dir.join(psa_io::MATCHES_H5AD);
    let index: Array2<i64> = read_npy(run.dir.join("topk_index.npy")).unwrap();
    let check = |path: &Path| {
        assert_eq!(psa_io::read_h5ad_obs_names(path).unwrap(), toy.m1.ids);
        let labels = psa_io::read_h5ad_obs_column(path, "psa_label").unwrap();
        assert_eq!(labels, toy.m1.labels);
        // obs["psa_partner"] is empty for unmatched rows, which psa's label reader refuses;
        // crates/io/tests/anndata.rs reads it with Python's anndata. Here: the partner rows.
        let which = psa_io::H5adMatrix::Obsm("psa_topk_index".into());
        let stored = psa_io::read_h5ad_matrix(path, &which).unwrap();
        assert_eq!(stored, index.mapv(|v| v as f64), "obsm[psa_topk_index]");
    };
    check(&h5ad);
    assert!(run.dir.join("run/names.json").exists());
    let exported = work.path("exported");
    work.ok(&[
        "export",
        "--run",
        &arg(&run.dir),
        "--out",
        &arg(&exported),
        "--topk",
        "2",
        "--backend",
        "cpu",
    ]);
    check(&exported.join(psa_io::MATCHES_H5AD));
    // Without ids or an .h5ad input there are no names, and no matches.h5ad.
    let plain = work.run_match("plain", &inputs.args(&[]));
    assert!(!plain.dir.join(psa_io::MATCHES_H5AD).exists());
}

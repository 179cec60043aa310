//! End-to-end tests of the `psa` binary: real files in a temporary directory, the real binary,
//! and every result checked against an independent reference — POT's couplings, a closed form,
//! or the definition (METHOD.md) recomputed here from the dense coupling psa wrote.
//!
//! Every run passes `--backend cpu`, so the tests mean the same with or without the `gpu`
//! feature. One test binary (as ripgrep's `tests/integration`): this file holds the harness, the
//! hand-made toy problem and the reference formulas; each topic is a module — `pot`, `summary`,
//! `metrics`, `outputs`, `inputs`, `demo`, `help`, `export`.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use ndarray::{Array1, Array2, Axis, ShapeBuilder};
use ndarray_npy::{read_npy, write_npy};
use serde_json::Value;

#[path = "../common/mod.rs"]
mod common;
use common::Work;

mod demo;
mod export;
mod help;
mod inputs;
mod metrics;
mod outputs;
mod pot;
mod summary;

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

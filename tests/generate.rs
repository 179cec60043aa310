//! End-to-end tests of `psa generate`: the real binary writes each data set into a temporary
//! directory, the files are read back as NumPy would (ndarray-npy) and as `psa match` does
//! (psa-io, and `psa match` itself), and the ground truth they carry is checked to hang together.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use ndarray::{Array2, Array4};
use ndarray_npy::read_npy;
use serde_json::Value;

mod common;
use common::Work;

/// One modality's files as read back.
struct Modality {
    labels: Vec<String>,
    ids: Vec<String>,
    latents: Array2<f64>,
}

fn read_modality(dir: &Path, e: u8) -> Modality {
    let labels: Array2<i64> = read_npy(dir.join(format!("labels{e}.npy"))).expect("int64 n × 1");
    let read_labels = psa_io::read_labels(&dir.join(format!("labels{e}.npy"))).unwrap();
    let as_text: Vec<String> = labels.iter().map(i64::to_string).collect();
    assert_eq!(read_labels, as_text, "psa-io reads the labels NumPy sees");
    assert_eq!(labels.ncols(), 1);
    Modality {
        labels: read_labels,
        ids: psa_io::read_ids(&dir.join(format!("ids{e}.npy"))).expect("ids psa match reads"),
        latents: read_npy(dir.join(format!("latents{e}.npy"))).expect("float64 n × 4"),
    }
}

/// Balanced labels, the same units in both modalities, in different orders.
fn check_ground_truth(dir: &Path, n_per_group: usize) -> (Modality, Modality) {
    let (m1, m2) = (read_modality(dir, 1), read_modality(dir, 2));
    let n = 12 * n_per_group;
    for m in [&m1, &m2] {
        assert_eq!(
            (m.labels.len(), m.ids.len(), m.latents.dim()),
            (n, n, (n, 4))
        );
        for t in 0..12 {
            let count = m.labels.iter().filter(|l| **l == t.to_string()).count();
            assert_eq!(count, n_per_group, "group {t}");
        }
    }
    assert_ne!(m1.ids, m2.ids, "each modality has its own order");
    let row_of: HashMap<&str, usize> = m2
        .ids
        .iter()
        .enumerate()
        .map(|(j, id)| (id.as_str(), j))
        .collect();
    for (i, id) in m1.ids.iter().enumerate() {
        let j = row_of[id.as_str()];
        assert_eq!(m1.latents.row(i), m2.latents.row(j), "{id}");
        assert_eq!(m1.labels[i], m2.labels[j], "{id}");
    }
    let settings: Value =
        serde_json::from_str(&fs::read_to_string(dir.join("generate.json")).unwrap()).unwrap();
    let groups = settings["groups"]
        .as_array()
        .expect("the groups are listed");
    assert_eq!(groups.len(), 12);
    for (label, z) in m1.labels.iter().zip(m1.latents.rows()) {
        let group = &groups[label.parse::<usize>().unwrap()];
        let coordinate = group["coordinate"].as_u64().unwrap() as usize;
        assert_eq!(z[coordinate], group["value"].as_f64().unwrap());
    }
    (m1, m2)
}

#[test]
fn tabular_data_are_numpy_arrays_with_their_ground_truth() {
    let work = Work::new();
    let stdout = work.ok(&[
        "generate",
        "tabular",
        "--n-per-group",
        "6",
        "--out",
        "data",
        "--d1",
        "7",
        "--d2",
        "3",
        "--seed",
        "4",
    ]);
    assert!(
        stdout.starts_with("psa generate tabular: 12 groups × 6 units"),
        "{stdout}"
    );
    let dir = work.path("data");
    let x1: Array2<f32> = read_npy(dir.join("x1.npy")).unwrap();
    let x2: Array2<f32> = read_npy(dir.join("x2.npy")).unwrap();
    assert_eq!((x1.dim(), x2.dim()), ((72, 7), (72, 3)));
    check_ground_truth(&dir, 6);
    let settings = fs::read_to_string(dir.join("generate.json")).unwrap();
    assert!(settings.contains("\"data\": \"tabular\""), "{settings}");
    let leftovers: Vec<_> = fs::read_dir(work.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, ["data"], "no staging directory is left behind");
}

#[test]
fn images_are_float32_nchw_in_the_unit_interval() {
    let work = Work::new();
    let stdout = work.ok(&[
        "generate",
        "images",
        "--n-per-group",
        "3",
        "--out",
        "img",
        "--size",
        "16",
    ]);
    assert!(stdout.contains("x1 36 × 3 × 16 × 16"), "{stdout}");
    let dir = work.path("img");
    for e in [1, 2] {
        let x: Array4<f32> = read_npy(dir.join(format!("x{e}.npy"))).unwrap();
        assert_eq!(x.dim(), (36, 3, 16, 16));
        assert!(x.iter().all(|p| (0.0..=1.0).contains(p)));
    }
    check_ground_truth(&dir, 3);
}

#[test]
fn the_same_seed_writes_the_same_files() {
    let work = Work::new();
    let args = |out: &'static str, seed: &'static str| {
        [
            "generate",
            "images",
            "--n-per-group",
            "2",
            "--size",
            "8",
            "--out",
            out,
            "--seed",
            seed,
        ]
    };
    work.ok(&args("a", "7"));
    work.ok(&args("b", "7"));
    work.ok(&args("c", "8"));
    let bytes = |dir: &str, file: &str| fs::read(work.path(dir).join(file)).unwrap();
    for file in [
        "x1.npy",
        "x2.npy",
        "ids1.npy",
        "ids2.npy",
        "labels2.npy",
        "latents1.npy",
    ] {
        assert_eq!(bytes("a", file), bytes("b", file), "{file}");
    }
    assert_ne!(bytes("a", "x1.npy"), bytes("c", "x1.npy"));
}

#[test]
fn psa_match_reads_the_generated_labels_ids_and_latents() {
    let work = Work::new();
    work.ok(&[
        "generate",
        "tabular",
        "--n-per-group",
        "20",
        "--out",
        "data",
    ]);
    // The latents serve as scores: matching on them must find the true partners far more
    // often than chance, which only happens if labels, ids and latents line up.
    let file = |name: &str| format!("data/{name}");
    let out = work.path("matched");
    work.ok(&[
        "match",
        "--scores1",
        &file("latents1.npy"),
        "--labels1",
        &file("labels1.npy"),
        "--scores2",
        &file("latents2.npy"),
        "--labels2",
        &file("labels2.npy"),
        "--ids1",
        &file("ids1.npy"),
        "--ids2",
        &file("ids2.npy"),
        "--latents1",
        &file("latents1.npy"),
        "--latents2",
        &file("latents2.npy"),
        "--out",
        out.to_str().unwrap(),
        "--backend",
        "cpu",
    ]);
    let summary: Value =
        serde_json::from_str(&fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let mean = &summary["mean"];
    let (trace, random) = (
        mean["trace"].as_f64().unwrap(),
        mean["random_trace"].as_f64().unwrap(),
    );
    assert!(trace > 3.0 * random, "trace {trace} vs random {random}");
    assert_eq!(summary["groups"].as_array().unwrap().len(), 12);
}

#[test]
fn bad_flags_are_refused_with_a_reason() {
    let work = Work::new();
    let output = work.psa(["generate", "images", "--out", "x", "--noise", "2"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("must be in [0, 1]"), "{stderr}");
    let output = work.psa(["generate", "tabular", "--out", "x", "--n-per-group", "0"]);
    assert!(!output.status.success());
    assert!(!work.path("x").exists());
}

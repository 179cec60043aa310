//! End-to-end tests of the classifier pipeline through the binary: `psa generate` data in,
//! `psa match --x1 … --x2 …` (cross-fitted classifiers, then matching), `psa train` / `psa
//! score`, and the errors for corrupt or mismatched inputs. All on `--backend cpu` with tiny
//! models, so they take seconds.

use std::fs;
use std::path::Path;

use ndarray::{Array2, Array4};
use ndarray_npy::{read_npy, write_npy};
use serde_json::Value;

mod common;
use common::Work;

/// Generated data sets.
trait Generated {
    fn tabular(&self, n_per_group: usize);
}

impl Generated for Work {
    /// `psa generate tabular` into `data/`.
    fn tabular(&self, n_per_group: usize) {
        self.ok(&[
            "generate",
            "tabular",
            "--n-per-group",
            &n_per_group.to_string(),
            "--out",
            &self.arg("data"),
        ]);
    }
}

/// Tiny, fast classifier flags.
const FAST: [&str; 10] = [
    "--epochs",
    "3",
    "--lr",
    "1e-2",
    "--batch-size",
    "64",
    "--folds",
    "2",
    "--backend",
    "cpu",
];

/// `psa match` on the classifier pipeline, over the `psa generate` output in `data/`, into `out/`.
const MATCH_GENERATED: [&str; 11] = [
    "match",
    "--x1",
    "data/x1.npy",
    "--labels1",
    "data/labels1.npy",
    "--x2",
    "data/x2.npy",
    "--labels2",
    "data/labels2.npy",
    "--out",
    "out",
];

fn png_size(path: &Path) -> (u32, u32) {
    let bytes = fs::read(path).unwrap();
    assert_eq!(
        &bytes[..8],
        b"\x89PNG\r\n\x1a\n",
        "{} is a PNG",
        path.display()
    );
    let be = |o: usize| u32::from_be_bytes(bytes[o..o + 4].try_into().unwrap());
    (be(16), be(20))
}

#[test]
fn match_on_features_cross_fits_both_classifiers_then_matches() {
    let w = Work::new();
    w.tabular(15);
    let n = 12 * 15;
    let mut args = vec![
        "match".to_string(),
        "--x1".into(),
        w.arg("data/x1.npy"),
        "--labels1".into(),
        w.arg("data/labels1.npy"),
        "--x2".into(),
        w.arg("data/x2.npy"),
        "--labels2".into(),
        w.arg("data/labels2.npy"),
        "--ids1".into(),
        w.arg("data/ids1.npy"),
        "--ids2".into(),
        w.arg("data/ids2.npy"),
        "--latents1".into(),
        w.arg("data/latents1.npy"),
        "--latents2".into(),
        w.arg("data/latents2.npy"),
        "--out".into(),
        w.arg("out"),
        "--tol".into(),
        "1e-4".into(),
    ];
    args.extend(FAST.iter().map(|s| s.to_string()));
    w.ok(&args.iter().map(String::as_str).collect::<Vec<_>>());

    for e in [1, 2] {
        let scores: Array2<f64> = read_npy(w.path(&format!("out/scores{e}.npy"))).unwrap();
        assert_eq!(
            scores.dim(),
            (n, 12),
            "scores{e}.npy: every row scored, T columns"
        );
        assert!(scores.iter().all(|v| v.is_finite()));
    }
    let csv = fs::read_to_string(w.path("out/training.csv")).unwrap();
    let mut lines = csv.lines();
    let header = lines.next().unwrap();
    assert!(header.contains("validation_cross_entropy"), "{header}");
    let rows: Vec<&str> = lines.collect();
    // 2 modalities × 2 folds × (1 to 3 epochs).
    assert!((4..=12).contains(&rows.len()), "{} rows", rows.len());
    assert_eq!(png_size(&w.path("out/training.png")), (900, 500));

    let summary: Value =
        serde_json::from_str(&fs::read_to_string(w.path("out/summary.json")).unwrap()).unwrap();
    let classifiers = &summary["classifiers"];
    assert_eq!(classifiers["classes"].as_array().unwrap().len(), 12);
    assert_eq!(
        classifiers["modalities"][0]["folds"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(summary["groups"].as_array().unwrap().len(), 12);
    let trace = summary["mean"]["trace"].as_f64().unwrap();
    let random = summary["mean"]["random_trace"].as_f64().unwrap();
    assert!(
        trace > random,
        "OT on learned scores beats random: {trace} vs {random}"
    );
    let topk: Array2<i64> = read_npy(w.path("out/topk_index.npy")).unwrap();
    assert_eq!(topk.nrows(), n);
}

#[test]
fn single_held_out_split_matches_only_the_scored_rows() {
    let w = Work::new();
    w.tabular(10);
    let mut args: Vec<String> = MATCH_GENERATED
        .iter()
        .chain(&["--tol", "1e-3"])
        .map(|s| s.to_string())
        .collect();
    args.extend(FAST.iter().map(|s| s.to_string()));
    let folds = args.iter().position(|a| a == "--folds").unwrap();
    args[folds + 1] = "1".into();
    w.ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let scores: Array2<f64> = read_npy(w.path("out/scores1.npy")).unwrap();
    let scored = scores
        .rows()
        .into_iter()
        .filter(|r| r[0].is_finite())
        .count();
    assert_eq!(scored, 24, "20% of 120 rows held out and scored");
    let topk: Array2<i64> = read_npy(w.path("out/topk_index.npy")).unwrap();
    let matched = topk.rows().into_iter().filter(|r| r[0] >= 0).count();
    assert_eq!(matched, 24, "only held-out rows are matched");
    for (i, row) in topk.rows().into_iter().enumerate() {
        if row[0] >= 0 {
            assert!(
                scores[[i, 0]].is_finite(),
                "row {i} matched without a score"
            );
        }
    }
}

#[test]
fn train_writes_a_model_that_score_reads() {
    let w = Work::new();
    w.tabular(8);
    w.ok(&[
        "train",
        "--x",
        "data/x1.npy",
        "--labels",
        "data/labels1.npy",
        "--out",
        "model",
        "--epochs",
        "2",
        "--lr",
        "1e-2",
        "--batch-size",
        "32",
        "--backend",
        "cpu",
    ]);
    for file in ["model.bpk", "model.json", "training.csv", "training.png"] {
        assert!(w.path("model").join(file).is_file(), "model/{file}");
    }
    let card: Value =
        serde_json::from_str(&fs::read_to_string(w.path("model/model.json")).unwrap()).unwrap();
    assert_eq!(card["classes"]["labels"].as_array().unwrap().len(), 12);
    assert_eq!(card["spec"]["encoder"]["kind"], "mlp");
    w.ok(&[
        "score",
        "--model",
        "model",
        "--x",
        "data/x1.npy",
        "--out",
        "s.npy",
        "--backend",
        "cpu",
    ]);
    let s: Array2<f64> = read_npy(w.path("s.npy")).unwrap();
    assert_eq!(s.dim(), (96, 12));
    // Scoring other data of the wrong width is refused.
    let err = w.fails(&[
        "score",
        "--model",
        "model",
        "--x",
        "data/x2.npy",
        "--out",
        "t.npy",
        "--backend",
        "cpu",
    ]);
    assert!(err.contains("x2.npy") && err.contains("shape"), "{err}");
    assert!(!w.path("t.npy").exists());
}

#[test]
fn image_stacks_train_a_cnn() {
    let w = Work::new();
    w.ok(&["generate", "images", "--n-per-group", "4", "--out", "data"]);
    let mut args = MATCH_GENERATED.to_vec();
    args.extend([
        "--conv-channels",
        "4,8",
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--folds",
        "2",
        "--backend",
        "cpu",
        "--tol",
        "1e-3",
    ]);
    w.ok(&args);
    let scores: Array2<f64> = read_npy(w.path("out/scores2.npy")).unwrap();
    assert_eq!(scores.dim(), (48, 12));
    let summary: Value =
        serde_json::from_str(&fs::read_to_string(w.path("out/summary.json")).unwrap()).unwrap();
    assert_eq!(
        summary["classifiers"]["modalities"][0]["spec"]["encoder"]["kind"],
        "cnn"
    );
}

#[test]
fn corrupt_or_mismatched_inputs_are_clear_errors_and_leave_nothing() {
    let w = Work::new();
    w.tabular(6);
    let labels: Array2<i64> = read_npy(w.path("data/labels1.npy")).unwrap();
    let n = labels.nrows();

    // NaN pixel: names the file, the row and the pixel.
    let mut images = Array4::<f32>::zeros((n, 3, 8, 8));
    images[[5, 1, 2, 3]] = f32::NAN;
    write_npy(w.path("nan.npy"), &images).unwrap();
    let err = w.fails(&[
        "train",
        "--x",
        "nan.npy",
        "--labels",
        "data/labels1.npy",
        "--out",
        "m1",
        "--backend",
        "cpu",
    ]);
    assert!(
        err.contains("nan.npy") && err.contains("row 5") && err.contains("channel 1"),
        "{err}"
    );

    // Channels-last stack given as channels-first.
    write_npy(w.path("nhwc.npy"), &Array4::<f32>::zeros((n, 8, 8, 3))).unwrap();
    let err = w.fails(&[
        "train",
        "--x",
        "nhwc.npy",
        "--labels",
        "data/labels1.npy",
        "--out",
        "m2",
        "--backend",
        "cpu",
    ]);
    assert!(err.contains("--channels-last"), "{err}");

    // A CNN asked for on flat features.
    let err = w.fails(&[
        "train",
        "--x",
        "data/x1.npy",
        "--labels",
        "data/labels1.npy",
        "--out",
        "m3",
        "--preset",
        "images",
        "--backend",
        "cpu",
    ]);
    assert!(err.contains("CNN needs images"), "{err}");

    // Labels file shorter than the data.
    let short: Vec<String> = labels.iter().take(n - 1).map(|v| v.to_string()).collect();
    fs::write(w.path("short.txt"), short.join("\n") + "\n").unwrap();
    let err = w.fails(&[
        "train",
        "--x",
        "data/x1.npy",
        "--labels",
        "short.txt",
        "--out",
        "m4",
        "--backend",
        "cpu",
    ]);
    assert!(
        err.contains("short.txt") && err.contains(&format!("{}", n - 1)),
        "{err}"
    );

    // A label in one modality only.
    let mut other: Vec<String> = labels.iter().map(|v| v.to_string()).collect();
    other[0] = "99".into();
    fs::write(w.path("other.txt"), other.join("\n") + "\n").unwrap();
    let err = w.fails(&[
        "match",
        "--x1",
        "data/x1.npy",
        "--labels1",
        "data/labels1.npy",
        "--x2",
        "data/x1.npy",
        "--labels2",
        "other.txt",
        "--out",
        "m5",
        "--backend",
        "cpu",
    ]);
    assert!(
        err.contains("99") && err.contains("--allow-missing-labels"),
        "{err}"
    );

    // Training that fails midway (diverges) leaves no model directory behind.
    let err = w.fails(&[
        "train",
        "--x",
        "data/x1.npy",
        "--labels",
        "data/labels1.npy",
        "--out",
        "m6",
        "--lr",
        "1e30",
        "--schedule",
        "constant",
        "--batch-size",
        "8",
        "--epochs",
        "3",
        "--backend",
        "cpu",
    ]);
    assert!(err.contains("diverged"), "{err}");

    for dir in ["m1", "m2", "m3", "m4", "m5", "m6"] {
        assert!(!w.path(dir).exists(), "{dir} left behind");
    }
    let leftovers: Vec<_> = fs::read_dir(w.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains("psa-tmp"))
        .collect();
    assert!(leftovers.is_empty(), "staging left behind: {leftovers:?}");
}

/// The real two-view digits fixture (`tests/fixtures/digits`) copied into the work directory,
/// optionally with modality 2's labels shuffled (a classifier that cannot learn).
fn digits(w: &Work, shuffle2: bool) {
    let dir = psa_testdata::digits_dir();
    fs::create_dir_all(w.path("digits")).unwrap();
    for f in ["x1", "x2", "labels1", "labels2", "ids1", "ids2"] {
        fs::copy(
            dir.join(format!("{f}.npy")),
            w.path(&format!("digits/{f}.npy")),
        )
        .unwrap();
    }
    if shuffle2 {
        let labels: ndarray::Array1<i64> = read_npy(w.path("digits/labels2.npy")).unwrap();
        // A fixed derangement of the rows: labels no longer follow the pixels.
        let n = labels.len();
        let shuffled = ndarray::Array1::from_shape_fn(n, |i| labels[(i * 7 + 3) % n]);
        write_npy(w.path("digits/labels2.npy"), &shuffled).unwrap();
    }
}

const MATCH_DIGITS: [&str; 17] = [
    "match",
    "--x1",
    "digits/x1.npy",
    "--labels1",
    "digits/labels1.npy",
    "--x2",
    "digits/x2.npy",
    "--labels2",
    "digits/labels2.npy",
    "--ids1",
    "digits/ids1.npy",
    "--ids2",
    "digits/ids2.npy",
    "--backend",
    "cpu",
    "--tol",
    "1e-4",
];

fn summary(w: &Work, dir: &str) -> Value {
    serde_json::from_str(&fs::read_to_string(w.path(&format!("{dir}/summary.json"))).unwrap())
        .unwrap()
}

/// psa's defaults on real two-view data (issue 10): every fold learns, the summary and the log
/// give each modality's out-of-sample cross-entropy, baseline and accuracy, and `training.csv`
/// marks exactly one kept epoch per modality and fold.
#[test]
fn defaults_learn_on_real_two_view_digits() {
    let w = Work::new();
    digits(&w, false);
    let mut args = MATCH_DIGITS.to_vec();
    args.extend(["--out", "out"]);
    let output = w.psa(&args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("modality 1: out-of-sample cross-entropy")
            && stderr.contains("label-frequency baseline"),
        "{stderr}"
    );
    assert!(!stderr.contains("learned nothing"), "{stderr}");

    let s = summary(&w, "out");
    let c = &s["classifiers"];
    assert_eq!(c["warnings"].as_array().unwrap().len(), 0);
    for m in c["modalities"].as_array().unwrap() {
        let q = &m["out_of_sample"];
        let (ce, base) = (
            q["cross_entropy"].as_f64().unwrap(),
            q["baseline_cross_entropy"].as_f64().unwrap(),
        );
        assert!(ce < 0.7 * base, "{ce} vs {base}");
        assert!(q["accuracy"].as_f64().unwrap() > 0.5, "{q}");
        for fold in m["folds"].as_array().unwrap() {
            assert_eq!(fold["learned"], true, "{fold}");
            assert!(fold["temperature"].as_f64().unwrap() > 0.0);
        }
    }
    let trace = s["mean"]["trace"].as_f64().unwrap();
    let random = s["mean"]["random_trace"].as_f64().unwrap();
    // Measured on this fixture (seeds 0, 1, 2): psa's defaults 1.99, 1.89, 2.14 × random; the
    // plain Python pipeline (sklearn MLP(128) + POT, benches/quality) 2.20, 2.55, 2.29 ×. At 50
    // units per label the seed noise is about ±0.4 ×; 1.5 × is far above what an untrained fold
    // gives (≈ 1 ×, issue 10).
    assert!(trace > 1.5 * random, "trace {trace} vs random {random}");

    let mut reader = csv_reader(&w.path("out/training.csv"));
    let header = reader.next().unwrap();
    assert!(header.ends_with(",best,trial"), "{header}");
    let mut kept = std::collections::BTreeMap::new();
    for row in reader {
        let cells: Vec<&str> = row.split(',').collect();
        if cells[8] == "true" {
            *kept
                .entry((cells[0].to_string(), cells[1].to_string()))
                .or_insert(0) += 1;
        }
    }
    assert_eq!(kept.len(), 10, "2 modalities × 5 folds: {kept:?}");
    assert!(kept.values().all(|&n| n == 1), "{kept:?}");
}

fn csv_reader(path: &Path) -> std::vec::IntoIter<String> {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect::<Vec<_>>()
        .into_iter()
}

/// A modality whose labels do not follow its features cannot learn: the run warns naming the
/// modality and fold and records it in summary.json; `--strict` makes it an error.
#[test]
fn a_classifier_that_learned_nothing_is_reported_and_strict_refuses_it() {
    let w = Work::new();
    digits(&w, true);
    let mut args = MATCH_DIGITS.to_vec();
    args.extend(["--folds", "2", "--out", "out"]);
    let output = w.psa(&args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "modality 2, fold 0: this classifier learned nothing; matching on its scores is random"
        ),
        "{stderr}"
    );
    let s = summary(&w, "out");
    let warnings = s["classifiers"]["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert_eq!(
        s["classifiers"]["modalities"][1]["folds"][1]["learned"],
        false
    );
    assert_eq!(
        s["classifiers"]["modalities"][0]["folds"][0]["learned"],
        true
    );

    let mut strict = MATCH_DIGITS.to_vec();
    strict.extend(["--folds", "2", "--strict", "--out", "strict-out"]);
    let err = w.fails(&strict);
    assert!(
        err.contains("modality 2") && err.contains("fold 0") && err.contains("learned nothing"),
        "{err}"
    );
    assert!(!w.path("strict-out").exists());
}

/// A diverging training (issue 11) is an error about the training, not about a scores file the
/// user never gave.
#[test]
fn a_diverging_training_names_the_training_not_a_scores_file() {
    let w = Work::new();
    digits(&w, false);
    let mut args = MATCH_DIGITS.to_vec();
    args.extend([
        "--lr", "1e10", "--folds", "2", "--epochs", "3", "--out", "out",
    ]);
    let err = w.fails(&args);
    assert!(!err.contains("scores1"), "{err}");
    assert!(
        err.contains("modality") && (err.contains("diverged") || err.contains("not finite")),
        "{err}"
    );
}

/// `psa score` checks a model card before scoring (issue 11): a standardiser shorter than the
/// features, or a zero scale, is an error naming model.json and the field.
#[test]
fn score_refuses_a_model_card_that_does_not_fit() {
    let w = Work::new();
    digits(&w, false);
    w.ok(&[
        "train",
        "--x",
        "digits/x1.npy",
        "--labels",
        "digits/labels1.npy",
        "--out",
        "model",
        "--epochs",
        "2",
        "--backend",
        "cpu",
    ]);
    let card_path = w.path("model/model.json");
    let card: Value = serde_json::from_str(&fs::read_to_string(&card_path).unwrap()).unwrap();
    let score = [
        "score",
        "--model",
        "model",
        "--x",
        "digits/x1.npy",
        "--out",
        "s.npy",
        "--backend",
        "cpu",
    ];

    let mut short = card.clone();
    short["standardizer"]["mean"].as_array_mut().unwrap().pop();
    short["standardizer"]["scale"].as_array_mut().unwrap().pop();
    fs::write(&card_path, short.to_string()).unwrap();
    let err = w.fails(&score);
    assert!(
        err.contains("model.json") && err.contains("standardizer"),
        "{err}"
    );

    let mut zero = card.clone();
    zero["standardizer"]["scale"][3] = serde_json::json!(0.0);
    fs::write(&card_path, zero.to_string()).unwrap();
    let err = w.fails(&score);
    assert!(
        err.contains("model.json") && err.contains("scale[3]"),
        "{err}"
    );
    assert!(!w.path("s.npy").exists());
}

/// `psa train` with one row per label names the labels file and the rule (issue 11).
#[test]
fn train_with_one_row_per_label_names_the_file_and_the_rule() {
    let w = Work::new();
    write_npy(
        w.path("x.npy"),
        &Array2::<f64>::from_shape_fn((4, 3), |(r, c)| (r * 3 + c) as f64),
    )
    .unwrap();
    fs::write(w.path("labels.txt"), "a\nb\nc\nd\n").unwrap();
    let err = w.fails(&[
        "train",
        "--x",
        "x.npy",
        "--labels",
        "labels.txt",
        "--out",
        "m",
        "--backend",
        "cpu",
    ]);
    assert!(err.contains("labels.txt"), "{err}");
    assert!(!err.contains("modality"), "{err}");
    assert!(err.contains("2 or more rows"), "{err}");
}

//! `summary.json`: its schema, labels seen in one modality only, and which files a run writes.

use super::*;

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

//! `psa export`: outputs again from a run directory, identical, without solving; `matches.h5ad`.

use super::*;

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

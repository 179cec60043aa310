//! POT's couplings through the CLI: psa match on the POT fixtures gives POT's coupling.

use super::*;

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

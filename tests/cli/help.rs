//! `--help` snapshots and headings, and output-directory naming edge cases.

use super::*;

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

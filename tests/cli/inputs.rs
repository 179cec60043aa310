//! Input formats that mean the same problem, and bad input: one `error:` line naming the culprit, and no output.

use super::*;

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

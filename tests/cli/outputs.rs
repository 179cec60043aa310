//! The outputs behind the seam: projections, pseudo-pairs, `--mass`, and `--scores-kind probs`.

use super::*;

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

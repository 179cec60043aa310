//! Metrics where the answer is known or recomputed from the dense coupling; SNN and random couplings; non-convergence reported honestly.

use super::*;

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

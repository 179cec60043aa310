//! Cross-modal prediction (issue 14, METHOD.md "Downstream cross-modal prediction"):
//!
//! * the unbiased loss's expectation over independent partners is Eq. 9 computed with the dense
//!   coupling, in value and in gradient (burn's autodiff against central finite differences of
//!   an f64 Eq. 9); and a Monte-Carlo mean over the real sampler's draws lands on it too;
//! * the sampler never crosses groups and follows `P(·|i)` (chi-square);
//! * a predictor trained on a good coupling beats one trained on the uniform coupling on held-out
//!   true pairs, and a saved predictor predicts as the one in memory.

use burn::tensor::{Tensor, TensorData};
use ndarray::{Array2, Axis, array};
use psa_core::synthetic::{TabularConfig, generate_tabular};
use psa_core::{CpuSolved, Metric, Problem, ScoresKind, SolveOptions, Solved};
use psa_learn::{
    CouplingPartners, Features, NoObserver, PartnerDraws, PredictorSpec, TrainedPredictor,
    TruePartners, cpu_device, train_predictor, unbiased_loss,
};

/// A coupling whose entries are multiples of 1/4, so that the expectation over two draws is an
/// exact finite enumeration (each pair `(j′, j″)` repeated `16 P(j′|i) P(j″|i)` times).
fn quarter_coupling() -> Array2<f64> {
    array![
        [0.5, 0.25, 0.25, 0.0],
        [0.0, 0.75, 0.0, 0.25],
        [0.25, 0.25, 0.25, 0.25],
    ]
}

/// Eq. 9 per row and column: `(1 / (n1 d)) Σ_i ‖x_i − Σ_j P(j|i) F_j‖²`, in f64.
fn eq9(p: &Array2<f64>, x: &Array2<f64>, f: &Array2<f64>) -> f64 {
    let projected = p.dot(f);
    let diff = x - &projected;
    diff.iter().map(|v| v * v).sum::<f64>() / x.len() as f64
}

fn tensor(values: &Array2<f64>, device: &psa_learn::Device) -> Tensor<2> {
    let data: Vec<f32> = values.iter().map(|&v| v as f32).collect();
    Tensor::from_data(
        TensorData::new(data, [values.nrows(), values.ncols()]),
        device,
    )
}

#[test]
fn the_unbiased_loss_has_eq9_as_its_expectation_in_value_and_gradient() {
    let device = cpu_device().autodiff();
    let p = quarter_coupling();
    let x = array![[1.0, -0.5], [0.2, 0.8], [-1.0, 0.3]];
    let f = array![[0.3, 0.1], [-0.4, 0.9], [1.2, -0.7], [0.0, 0.5]];
    // The batch of every (i, j′, j″) with multiplicity 16 P(j′|i) P(j″|i): its plain mean is the
    // expectation over independent draws.
    let (mut rows, mut a, mut b) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..p.nrows() {
        for j1 in 0..p.ncols() {
            for j2 in 0..p.ncols() {
                let copies = (16.0 * p[[i, j1]] * p[[i, j2]]).round() as usize;
                for _ in 0..copies {
                    rows.push(i);
                    a.push(j1);
                    b.push(j2);
                }
            }
        }
    }
    assert_eq!(rows.len(), 16 * p.nrows());
    let outputs = tensor(&f, &device).require_grad();
    let target = tensor(&x.select(Axis(0), &rows), &device);
    let gather = |index: &[usize]| {
        let index: Vec<i64> = index.iter().map(|&j| j as i64).collect();
        let n = index.len();
        outputs.clone().select(
            0,
            Tensor::<1, burn::tensor::Int>::from_data(TensorData::new(index, [n]), &device),
        )
    };
    let loss = unbiased_loss(target, gather(&a), gather(&b));
    let value = f64::from(loss.clone().into_scalar::<f32>());
    let expect = eq9(&p, &x, &f);
    assert!(
        (value - expect).abs() < 1e-6,
        "E[unbiased] {value} vs Eq. 9 {expect}"
    );
    let grads = loss.backward();
    let autodiff: Vec<f32> = outputs
        .grad(&grads)
        .expect("the outputs take part in the loss")
        .into_data()
        .try_to_vec()
        .unwrap();
    // Central differences of the f64 Eq. 9 in each output entry.
    let h = 1e-6;
    for (k, &g) in autodiff.iter().enumerate() {
        let (r, c) = (k / f.ncols(), k % f.ncols());
        let mut plus = f.clone();
        plus[[r, c]] += h;
        let mut minus = f.clone();
        minus[[r, c]] -= h;
        let numeric = (eq9(&p, &x, &plus) - eq9(&p, &x, &minus)) / (2.0 * h);
        assert!(
            (f64::from(g) - numeric).abs() < 1e-5,
            "∂/∂F[{r},{c}]: autodiff {g}, finite differences {numeric}"
        );
    }
}

/// Two groups with interleaved rows and a solved OT coupling on them.
fn two_group_solution() -> CpuSolved {
    let s1 = array![
        [2.0, 0.0, 0.1],
        [0.0, 2.0, 0.3],
        [1.0, 1.0, 0.0],
        [0.5, 0.0, 2.0],
        [0.0, 0.4, 1.9],
    ];
    let s2 = array![
        [0.1, 1.9, 0.2],
        [2.1, 0.1, 0.0],
        [0.0, 0.5, 2.1],
        [0.4, 0.0, 1.8],
        [1.5, 1.5, 0.0],
    ];
    let l = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let problem = Problem::from_scores(
        s1.view(),
        &l(&["a", "a", "a", "b", "b"]),
        s2.view(),
        &l(&["a", "a", "b", "b", "a"]),
        ScoresKind::Logits,
        Metric::Euclidean,
    )
    .unwrap();
    let options = SolveOptions {
        epsilon: 1.0,
        tol: 1e-12,
        ..SolveOptions::default()
    };
    psa_core::solved::solve_on_cpu(problem, &options).unwrap()
}

#[test]
fn partners_stay_in_their_group_and_follow_the_coupling() {
    let solved = two_group_solution();
    let draws = 20_000;
    let partners = CouplingPartners {
        solved: &solved,
        seed: 3,
    };
    let pairs = partners.draw(draws, 0).unwrap();
    assert_eq!(pairs.dim(), (5, draws));
    // Independent rounds differ; the same round repeats.
    assert_ne!(pairs, partners.draw(draws, 1).unwrap());
    assert_eq!(pairs, partners.draw(draws, 0).unwrap());
    let problem = solved.problem();
    for (g, group) in problem.groups.iter().enumerate() {
        let dense = solved.dense(g).unwrap();
        for (i, &row) in group.rows1.iter().enumerate() {
            let mut counts = vec![0usize; group.n2()];
            for &j in pairs.row(row) {
                let local = group
                    .rows2
                    .iter()
                    .position(|&r| r as i64 == j)
                    .unwrap_or_else(|| panic!("row {row} drew {j}, outside its group"));
                counts[local] += 1;
            }
            // Pearson's chi-square against P(·|i), cells with expected count ≥ 5.
            let (mut chi2, mut cells) = (0.0, 0usize);
            for (j, &c) in counts.iter().enumerate() {
                let expected = dense[[i, j]] * draws as f64;
                if expected >= 5.0 {
                    chi2 += (c as f64 - expected).powi(2) / expected;
                    cells += 1;
                } else {
                    assert!(c as f64 <= expected + 5.0 * expected.sqrt() + 5.0);
                }
            }
            // 0.999 quantiles of χ² with 1 and 2 degrees of freedom: 10.83, 13.82.
            let bound = [0.0, 10.83, 13.82][cells.saturating_sub(1).min(2)];
            assert!(
                cells < 2 || chi2 < bound,
                "row {row}: chi-square {chi2} over {cells} cells"
            );
        }
    }
}

#[test]
fn a_monte_carlo_mean_over_real_draws_is_eq9() {
    let solved = two_group_solution();
    let problem = solved.problem();
    let g = 0;
    let group = &problem.groups[g];
    let dense = solved.dense(g).unwrap();
    let x = Array2::from_shape_fn((group.n1(), 3), |(i, c)| (i * 3 + c) as f64 * 0.1 - 0.4);
    let f = Array2::from_shape_fn((group.n2(), 3), |(j, c)| {
        ((j + 2 * c) % 5) as f64 * 0.3 - 0.5
    });
    let partners = CouplingPartners {
        solved: &solved,
        seed: 11,
    };
    let draws = 40_000;
    let pairs = partners.draw(2 * draws, 0).unwrap();
    let local = |j: i64| group.rows2.iter().position(|&r| r as i64 == j).unwrap();
    let mut total = 0.0;
    for (i, &row) in group.rows1.iter().enumerate() {
        for k in 0..draws {
            let (a, b) = (local(pairs[[row, 2 * k]]), local(pairs[[row, 2 * k + 1]]));
            total += (0..3)
                .map(|c| (x[[i, c]] - f[[a, c]]) * (x[[i, c]] - f[[b, c]]))
                .sum::<f64>();
        }
    }
    let mean = total / (draws * group.n1() * 3) as f64;
    let expect = eq9(&dense, &x, &f);
    assert!(
        (mean - expect).abs() < 0.01,
        "mean over draws {mean} vs Eq. 9 {expect}"
    );
}

/// A tabular design: modality 1 and 2 are noisy views of shared latents; rows `i` of both are
/// the same unit (modality 2 put in modality 1's unit order).
fn tabular(seed: u64, n_per_group: usize) -> (Array2<f64>, Array2<f64>, Vec<String>) {
    let data = generate_tabular(&TabularConfig {
        n_per_group,
        seed,
        ..TabularConfig::default()
    });
    let (m1, m2) = (&data.modality1, &data.modality2);
    let position: std::collections::HashMap<&str, usize> = m2
        .ids
        .iter()
        .enumerate()
        .map(|(j, id)| (id.as_str(), j))
        .collect();
    let order: Vec<usize> = m1.ids.iter().map(|id| position[id.as_str()]).collect();
    let labels = m1.labels.iter().map(|l| l.to_string()).collect();
    (
        m1.x.mapv(f64::from),
        m2.x.mapv(f64::from).select(Axis(0), &order),
        labels,
    )
}

#[test]
fn a_good_coupling_predicts_better_than_the_uniform_one_and_reloads() {
    let device = cpu_device();
    let (x1, x2, labels) = tabular(0, 60);
    // The best coupling there is, the true pairs, against the uniform coupling within each label
    // group (the scores below only fix the groups).
    let truth = TruePartners((0..x1.nrows()).map(Some).collect());
    let zeros = Array2::<f64>::zeros((x1.nrows(), 2));
    let groups = Problem::from_scores(
        zeros.view(),
        &labels,
        zeros.view(),
        &labels,
        ScoresKind::Logits,
        Metric::Euclidean,
    )
    .unwrap();
    let uniform = CpuSolved::random(groups);
    let random = CouplingPartners {
        solved: &uniform,
        seed: 0,
    };
    let spec = PredictorSpec {
        epochs: 60,
        ..PredictorSpec::default()
    };
    let (f1, f2) = (
        Features::from_matrix(x1.view()),
        Features::from_matrix(x2.view()),
    );
    let good = train_predictor(&spec, &f1, &f2, &truth, 0, &device, &NoObserver).unwrap();
    let bad = train_predictor(&spec, &f1, &f2, &random, 1, &device, &NoObserver).unwrap();
    // Held-out units.
    let (t1, t2, _) = tabular(1, 30);
    let r2 = |model: &TrainedPredictor| {
        let pred = model
            .predict(Features::from_matrix(t2.view()), &device)
            .unwrap();
        psa_core::prediction::r2(pred.view(), t1.view()).unwrap()
    };
    let (r2_good, r2_bad) = (r2(&good.predictor), r2(&bad.predictor));
    assert!(
        r2_good > r2_bad + 0.05,
        "true pairs R² {r2_good} vs uniform coupling {r2_bad}"
    );
    // The uniform coupling's predictor is about the group mean: its pseudo-pair MSE on the
    // validation rows is worse than the true pairs', which is what the λ grid compares.
    assert!(
        good.predictor.card.best_validation_pair_mse < bad.predictor.card.best_validation_pair_mse
    );
    // Exactly one kept epoch per run.
    assert_eq!(good.records.iter().filter(|r| r.best).count(), 1);
    // Saved and loaded, it predicts the same.
    let dir = tempfile::tempdir().unwrap();
    good.predictor.save(dir.path()).unwrap();
    let loaded = TrainedPredictor::load(dir.path(), &device).unwrap();
    let a = good
        .predictor
        .predict(Features::from_matrix(t2.view()), &device)
        .unwrap();
    let b = loaded
        .predict(Features::from_matrix(t2.view()), &device)
        .unwrap();
    assert_eq!(a, b);
    // A predictor refuses rows of another width.
    assert!(
        loaded
            .predict(Features::from_matrix(t1.view()), &device)
            .is_err()
    );
}

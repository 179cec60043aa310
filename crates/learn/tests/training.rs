//! Behaviour of the classifiers on the synthetic tabular design: they learn (validation
//! cross-entropy well below log T), the CPU and wgpu backends agree, cross-fitting scores every
//! row out of sample, and a saved model scores exactly as the one in memory.

use psa_core::synthetic::{TabularConfig, generate_tabular};
use psa_learn::{
    Classes, CrossFitConfig, EncoderSpec, Features, Labelled, ModelSpec, NoObserver, RunTag,
    Schedule, Standardizer, TrainedModel, TrainingSpec, cpu_device, cross_fit, evaluate,
    stratified_split, train_model, train_run,
};

struct Tabular {
    features: Features,
    labels: Vec<String>,
    classes: Classes,
    class_of_row: Vec<usize>,
}

fn tabular(n_per_group: usize) -> Tabular {
    let data = generate_tabular(&TabularConfig {
        n_per_group,
        seed: 5,
        ..TabularConfig::default()
    });
    let m = data.modality1;
    let mut features = Features::from_matrix(m.x.mapv(f64::from).view());
    features.standardize(&Standardizer::fit(&features));
    let labels: Vec<String> = m.labels.iter().map(i64::to_string).collect();
    let classes = Classes::from_labels(&labels);
    let class_of_row = classes.indices(&labels).unwrap();
    Tabular {
        features,
        labels,
        classes,
        class_of_row,
    }
}

/// A small MLP with a fast schedule: seconds of work even on lavapipe.
fn small_spec(epochs: usize) -> ModelSpec {
    ModelSpec {
        encoder: EncoderSpec::Mlp {
            hidden: vec![64],
            batch_norm: true,
            dropout: 0.0,
            activation: Default::default(),
        },
        training: TrainingSpec {
            learning_rate: 1e-2,
            batch_size: Some(128),
            epochs,
            patience: epochs,
            schedule: Schedule::Constant,
            validation_fraction: 0.25,
            seed: 3,
            ..TrainingSpec::default()
        },
    }
}

/// Trains on 3/4 of the rows, returns (validation cross-entropy, validation accuracy).
fn train_and_validate(device: &psa_learn::Device, data: &Tabular, epochs: usize) -> (f64, f64) {
    let all: Vec<usize> = (0..data.features.rows()).collect();
    let (train, validation) = stratified_split(&all, &data.class_of_row, 0.25, 1);
    let labelled = Labelled {
        features: &data.features,
        classes: &data.class_of_row,
        n_classes: data.classes.len(),
    };
    let tag = RunTag {
        modality: "1".into(),
        fold: 0,
        trial: 0,
    };
    let run = train_run(
        &small_spec(epochs),
        &labelled,
        &train,
        &validation,
        device,
        &tag,
        &NoObserver,
    )
    .unwrap();
    evaluate(&run.model, &labelled, &validation, device).unwrap()
}

#[test]
fn mlp_learns_the_tabular_design_on_the_cpu() {
    let data = tabular(100);
    let log_t = (data.classes.len() as f64).ln();
    let (ce, acc) = train_and_validate(&cpu_device(), &data, 30);
    eprintln!("cpu: validation CE {ce:.3} (log T {log_t:.3}), accuracy {acc:.3}");
    assert!(
        ce < 0.6 * log_t,
        "validation CE {ce} not well below log T {log_t}"
    );
    assert!(acc > 3.0 / data.classes.len() as f64, "accuracy {acc}");
}

#[cfg(feature = "wgpu")]
#[test]
fn cpu_and_wgpu_backends_agree_on_accuracy() {
    let Some(context) = gpu() else { return };
    let wgpu = psa_learn::shared_wgpu_device(
        context.instance.clone(),
        context.adapter.clone(),
        context.device.clone(),
        context.queue.clone(),
    )
    .unwrap();
    let data = tabular(40);
    let log_t = (data.classes.len() as f64).ln();
    let (ce_cpu, acc_cpu) = train_and_validate(&cpu_device(), &data, 8);
    let (ce_gpu, acc_gpu) = train_and_validate(&wgpu, &data, 8);
    eprintln!(
        "cpu: CE {ce_cpu:.3} acc {acc_cpu:.3}; wgpu ({}): CE {ce_gpu:.3} acc {acc_gpu:.3}",
        context.describe()
    );
    // Eight epochs of 3 steps each (lavapipe is slow): enough to fall well below guessing.
    assert!(
        ce_gpu < 0.7 * log_t,
        "wgpu validation CE {ce_gpu} vs log T {log_t}"
    );
    assert!(
        (acc_cpu - acc_gpu).abs() <= 0.08,
        "backends disagree: cpu {acc_cpu:.3}, wgpu {acc_gpu:.3}"
    );
}

#[test]
fn cross_fitting_never_scores_a_row_with_a_model_that_saw_it() {
    let data = tabular(12);
    let labelled = Labelled {
        features: &data.features,
        classes: &data.class_of_row,
        n_classes: data.classes.len(),
    };
    let n = data.features.rows();
    let fitted = cross_fit(
        &small_spec(2),
        &labelled,
        CrossFitConfig {
            folds: 3,
            ..CrossFitConfig::default()
        },
        &cpu_device(),
        "1",
        &NoObserver,
    )
    .unwrap();
    assert_eq!(fitted.folds.len(), 3);
    let mut times_scored = vec![0; n];
    for fold in &fitted.folds {
        let mut seen = vec![false; n];
        for &r in fold.train_rows.iter().chain(&fold.validation_rows) {
            seen[r] = true;
        }
        for &r in &fold.scored_rows {
            assert!(
                !seen[r],
                "row {r} scored by a model that trained or validated on it"
            );
            times_scored[r] += 1;
        }
        // Everything not scored by this fold was available to it: nothing is wasted.
        assert_eq!(
            fold.train_rows.len() + fold.validation_rows.len() + fold.scored_rows.len(),
            n
        );
    }
    assert!(
        times_scored.iter().all(|&k| k == 1),
        "every row scored exactly once"
    );
    assert!(fitted.logits.iter().all(|v| v.is_finite()));
    assert_eq!(fitted.scored_rows, (0..n).collect::<Vec<_>>());
    // Epoch records name their fold, for training.csv.
    let folds_in_records: std::collections::BTreeSet<usize> =
        fitted.records.iter().map(|r| r.fold).collect();
    assert_eq!(folds_in_records.into_iter().collect::<Vec<_>>(), [0, 1, 2]);
}

#[test]
fn single_split_scores_only_the_held_out_rows() {
    let data = tabular(10);
    let labelled = Labelled {
        features: &data.features,
        classes: &data.class_of_row,
        n_classes: data.classes.len(),
    };
    let fitted = cross_fit(
        &small_spec(1),
        &labelled,
        CrossFitConfig {
            folds: 1,
            ..CrossFitConfig::default()
        },
        &cpu_device(),
        "1",
        &NoObserver,
    )
    .unwrap();
    assert_eq!(fitted.scored_rows.len(), 24);
    for r in 0..data.features.rows() {
        let scored = fitted.scored_rows.contains(&r);
        assert_eq!(fitted.logits[[r, 0]].is_finite(), scored, "row {r}");
    }
}

#[test]
fn a_saved_model_scores_as_the_one_in_memory() {
    let data = tabular(10);
    let device = cpu_device();
    let (model, run) = train_model(
        &small_spec(2),
        data.features.clone(),
        &data.classes,
        &data.class_of_row,
        &device,
        "1",
        &NoObserver,
    )
    .unwrap();
    assert_eq!(run.records.len(), 2);
    let dir = tempfile::tempdir().unwrap();
    model.save(dir.path()).unwrap();
    let loaded = TrainedModel::load(dir.path(), &device).unwrap();
    assert_eq!(loaded.card.classes, data.classes);
    let a = model.score(data.features.clone(), &device).unwrap();
    let b = loaded.score(data.features.clone(), &device).unwrap();
    assert_eq!(a.dim(), (data.labels.len(), data.classes.len()));
    let max_diff = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    assert!(max_diff < 1e-5, "loaded model differs by {max_diff}");
}

#[test]
fn a_missing_or_foreign_model_directory_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = TrainedModel::load(dir.path(), &cpu_device())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("model.json"), "{err}");
    std::fs::write(dir.path().join("model.json"), "{}").unwrap();
    let err = TrainedModel::load(dir.path(), &cpu_device())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("not a psa model card"), "{err}");
}

#[cfg(feature = "wgpu")]
/// The GPU context, or a loud skip (a failure when PSA_REQUIRE_GPU=1, as in CI).
fn gpu() -> Option<psa_gpu::GpuContext> {
    match psa_gpu::GpuContext::new(psa_gpu::AdapterChoice::AnyIncludingSoftware) {
        Ok(context) => Some(context),
        Err(err) if std::env::var("PSA_REQUIRE_GPU").as_deref() == Ok("1") => {
            panic!("PSA_REQUIRE_GPU=1 but no GPU adapter: {err}")
        }
        Err(err) => {
            eprintln!("SKIPPED: no GPU adapter ({err})");
            None
        }
    }
}

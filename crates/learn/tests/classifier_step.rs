//! The classifier step on real data and on data it cannot learn (issue 10): every fold of the
//! default classifier beats its label-frequency baseline on the real two-view digits fixture; a
//! fold trained on shuffled labels is reported as untrained (an error with `strict`); early
//! stopping waits for the minimum epochs and the one-cycle warm-up; a diverging run never keeps
//! a non-finite epoch. All on burn-ndarray (CPU), seconds each.

use psa_learn::{
    Classes, CrossFitConfig, Features, Labelled, LearnError, NoObserver, Preset, RunTag, Schedule,
    Stop, cpu_device, cross_fit, stratified_split, train_run,
};
use rand::SeedableRng;
use rand::seq::SliceRandom;

fn digits(modality: usize) -> (Features, Vec<usize>, usize) {
    let (x, labels) = psa_testdata::digits(modality);
    let classes = Classes::from_labels(&labels);
    let class_of_row = classes.indices(&labels).unwrap();
    (Features::from_matrix(x.view()), class_of_row, classes.len())
}

#[test]
fn every_fold_beats_its_baseline_on_real_digits() {
    let (features, classes, n_classes) = digits(1);
    let data = Labelled {
        features: &features,
        classes: &classes,
        n_classes,
    };
    let spec = Preset::Default.spec(features.shape());
    let fitted = cross_fit(
        &spec,
        &data,
        CrossFitConfig::default(),
        &cpu_device(),
        "top",
        &NoObserver,
    )
    .unwrap();
    assert_eq!(fitted.folds.len(), 5);
    for (k, fold) in fitted.folds.iter().enumerate() {
        assert!(
            fold.best_validation_cross_entropy < fold.validation_baseline_cross_entropy,
            "fold {k}: kept {} vs baseline {}",
            fold.best_validation_cross_entropy,
            fold.validation_baseline_cross_entropy
        );
        assert!(fold.learned, "fold {k}: {fold:?}");
        // Early stopping cannot end a run before the minimum number of epochs.
        assert!(fold.epochs_run >= spec.training.min_epochs, "fold {k}");
        assert!(fold.temperature.is_finite() && fold.temperature > 0.0);
        assert!(
            fold.calibrated_validation_cross_entropy <= fold.best_validation_cross_entropy + 1e-3,
            "calibration cannot make the validation rows it was fitted on worse"
        );
    }
    assert!(fitted.warnings.is_empty(), "{:?}", fitted.warnings);
    let q = fitted.out_of_sample;
    assert_eq!(q.rows, 500);
    assert!(
        q.cross_entropy < 0.6 * q.baseline_cross_entropy,
        "out-of-sample cross-entropy {} vs baseline {}",
        q.cross_entropy,
        q.baseline_cross_entropy
    );
    assert!(q.accuracy > 0.6, "accuracy {}", q.accuracy);
    assert!(fitted.logits.iter().all(|v| v.is_finite()));

    // The monitor: exactly one kept epoch per fold, finite, and the one the report names.
    for (k, fold) in fitted.folds.iter().enumerate() {
        let kept: Vec<_> = fitted
            .records
            .iter()
            .filter(|r| r.fold == k && r.best)
            .collect();
        assert_eq!(kept.len(), 1, "fold {k}");
        assert_eq!(kept[0].epoch, fold.best_epoch);
        assert_eq!(
            kept[0].validation_cross_entropy,
            fold.best_validation_cross_entropy
        );
    }
}

#[test]
fn shuffled_labels_are_reported_and_strict_makes_them_an_error() {
    let (features, mut classes, n_classes) = digits(2);
    classes.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(7));
    let data = Labelled {
        features: &features,
        classes: &classes,
        n_classes,
    };
    let spec = Preset::Default.spec(features.shape());
    let config = CrossFitConfig {
        folds: 3,
        ..CrossFitConfig::default()
    };
    let device = cpu_device();
    let fitted = cross_fit(&spec, &data, config.clone(), &device, "2", &NoObserver).unwrap();
    for (k, fold) in fitted.folds.iter().enumerate() {
        assert!(
            !fold.learned,
            "fold {k} trained on shuffled labels: {fold:?}"
        );
    }
    assert_eq!(fitted.warnings.len(), 3);
    assert!(
        fitted.warnings[1].contains("modality 2, fold 1: this classifier learned nothing"),
        "{}",
        fitted.warnings[1]
    );

    let strict = CrossFitConfig {
        strict: true,
        ..config
    };
    match cross_fit(&spec, &data, strict, &device, "2", &NoObserver) {
        Err(err @ LearnError::Untrained { .. }) => {
            let message = err.to_string();
            assert!(
                message.contains("modality 2, fold 0")
                    && message.contains("matching on its scores is random"),
                "{message}"
            );
        }
        Err(other) => panic!("expected Untrained, got {other}"),
        Ok(_) => panic!("strict accepted a classifier that learned nothing"),
    }
}

/// Rows of pure noise with 4 labels: nothing to learn, so validation never improves after the
/// first epochs and only the stopping rule decides how long a run lasts.
fn noise() -> (Features, Vec<usize>) {
    use rand_distr::{Distribution, StandardNormal};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let x = ndarray::Array2::from_shape_simple_fn((120, 5), || StandardNormal.sample(&mut rng));
    (
        Features::from_matrix(x.view()),
        (0..120).map(|i| i % 4).collect(),
    )
}

#[test]
fn early_stopping_waits_for_the_minimum_and_for_warm_up() {
    let (features, classes) = noise();
    let data = Labelled {
        features: &features,
        classes: &classes,
        n_classes: 4,
    };
    let all: Vec<usize> = (0..120).collect();
    let (train, validation) = stratified_split(&all, &classes, 0.2, 1);
    let device = cpu_device();
    let tag = RunTag {
        modality: "1".into(),
        fold: 0,
        trial: 0,
    };
    let mut spec = Preset::Default.spec(features.shape());
    spec.training.patience = 1;
    spec.training.min_epochs = 12;
    spec.training.epochs = 100;
    let run = train_run(
        &spec,
        &data,
        &train,
        &validation,
        &device,
        &tag,
        &NoObserver,
    )
    .unwrap();
    assert!(run.epochs_run >= 12, "stopped after {}", run.epochs_run);

    // One-cycle over 40 epochs warms up for 30% of its steps: no stop before epoch 12.
    spec.training.min_epochs = 0;
    spec.training.epochs = 40;
    spec.training.schedule = Schedule::OneCycle;
    let run = train_run(
        &spec,
        &data,
        &train,
        &validation,
        &device,
        &tag,
        &NoObserver,
    )
    .unwrap();
    assert!(run.epochs_run >= 12, "stopped after {}", run.epochs_run);
    let peak = run
        .records
        .iter()
        .map(|r| r.learning_rate)
        .fold(0.0, f64::max);
    assert!(
        // Steps are discrete: the step nearest the peak is within 1% of it.
        (peak - spec.training.learning_rate).abs() < 1e-2 * spec.training.learning_rate,
        "the run reached its peak learning rate: {peak}"
    );
    assert_eq!(run.records.iter().filter(|r| r.best).count(), 1);
}

#[test]
fn a_diverging_run_never_keeps_a_non_finite_epoch() {
    let (features, classes) = noise();
    let data = Labelled {
        features: &features,
        classes: &classes,
        n_classes: 4,
    };
    let all: Vec<usize> = (0..120).collect();
    let (train, validation) = stratified_split(&all, &classes, 0.2, 1);
    let tag = RunTag {
        modality: "1".into(),
        fold: 3,
        trial: 0,
    };
    let mut spec = Preset::Default.spec(features.shape());
    spec.training.learning_rate = 1e10;
    spec.training.epochs = 5;
    match train_run(
        &spec,
        &data,
        &train,
        &validation,
        &cpu_device(),
        &tag,
        &NoObserver,
    ) {
        Ok(run) => {
            // A finite first epoch may be kept; a later non-finite one never is.
            assert_eq!(run.stop, Stop::Diverged);
            let kept = run.records.iter().find(|r| r.best).unwrap();
            assert!(kept.validation_cross_entropy.is_finite());
            assert!(run.best_validation_cross_entropy.is_finite());
        }
        Err(err) => {
            let message = err.to_string();
            assert!(
                matches!(err, LearnError::Diverged { .. })
                    && message.contains("modality 1, fold 3")
                    && message.contains("1e10"),
                "{message}"
            );
        }
    }
}

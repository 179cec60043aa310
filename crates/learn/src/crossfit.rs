//! Out-of-sample propensity scores by K-fold cross-fitting (METHOD.md step 1).
//!
//! The scores that go into matching must come from a model that never trained on the row it
//! scores: an in-sample model is over-confident exactly on the rows it memorised, which would
//! distort the cost between them. With `K ≥ 2` folds (stratified by label) every row is scored
//! by the model trained on the other `K − 1`; each of those carves a stratified validation part
//! out of its own training rows for early stopping. `K = 1` is the paper's protocol: one
//! stratified held-out part is scored and the rest trains.
//!
//! The `K` models meet in one cost matrix, so they must score on one scale: every fold trains
//! with the same spec (schedule, epoch cap, minimum epochs before early stopping), and each
//! model's logits are divided by a temperature fitted on its own validation rows
//! ([`crate::calibrate`]). A fold whose model does not beat the label-frequency baseline is
//! reported (a warning naming modality and fold, or an error with `strict`): its scores carry
//! no information and matching on them is random.

use burn::tensor::Device;
use ndarray::{Array2, Axis};
use serde::{Serialize, Serializer};

use crate::calibrate::{Quality, fit_temperature, label_frequencies};
use crate::data::{Features, Standardizer, logits_matrix, stratified_folds, stratified_split};
use crate::monitor::EpochRecord;
use crate::spec::ModelSpec;
use crate::train::{Labelled, RunTag, Stop, epoch_seconds, predict_logits, train_run};
use crate::tune::{TrialReport, TuneGrid};
use crate::{LearnError, TrainObserver};

/// How rows are split into folds, and what happens around the training runs.
#[derive(Clone, Debug)]
pub struct CrossFitConfig {
    /// Number of folds `K`; 1 means a single held-out part.
    pub folds: usize,
    /// With `folds == 1`: the fraction of each label held out and scored.
    pub holdout_fraction: f64,
    /// A fold that learned nothing is an error ([`LearnError::Untrained`]) instead of a warning.
    pub strict: bool,
    /// Try every setting of this grid on the folds and keep the one with the lowest mean
    /// calibrated validation cross-entropy.
    pub tune: Option<TuneGrid>,
}

impl Default for CrossFitConfig {
    fn default() -> Self {
        CrossFitConfig {
            folds: 5,
            holdout_fraction: 0.2,
            strict: false,
            tune: None,
        }
    }
}

/// Serialises a list of rows as its length.
fn count<S: Serializer>(rows: &[usize], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_u64(rows.len() as u64)
}

/// Which rows one fold's model trained on, watched and scored, and how it did.
#[derive(Clone, Debug, Serialize)]
pub struct FoldReport {
    #[serde(serialize_with = "count")]
    pub train_rows: Vec<usize>,
    #[serde(serialize_with = "count")]
    pub validation_rows: Vec<usize>,
    #[serde(serialize_with = "count")]
    pub scored_rows: Vec<usize>,
    pub best_epoch: usize,
    pub epochs_run: usize,
    pub batch_size: usize,
    pub stop: Stop,
    /// Validation cross-entropy of the kept checkpoint, before calibration.
    pub best_validation_cross_entropy: f64,
    /// The label-frequency baseline on the validation rows.
    pub validation_baseline_cross_entropy: f64,
    /// The fitted temperature (1 without calibration); scores are logits / temperature.
    pub temperature: f64,
    /// Validation cross-entropy after calibration.
    pub calibrated_validation_cross_entropy: f64,
    /// The calibrated scores of the rows this fold scored, against their baseline.
    pub scored: Quality,
    /// Whether the fold learned anything: its kept validation cross-entropy is below the
    /// validation baseline, and its scores beat the baseline on the rows it scored
    /// ([`Quality::beats_baseline`]).
    pub learned: bool,
}

/// Out-of-sample logits for one modality. Serialised (without the logits and epochs), it is
/// what `summary.json` reports about the modality's classifiers.
#[derive(Clone, Debug, Serialize)]
pub struct CrossFitted {
    /// The modality's name in logs and `training.csv`.
    pub modality: String,
    /// `n × T`, calibrated; rows that were not scored (only with `folds == 1`) are NaN.
    #[serde(skip)]
    pub logits: Array2<f64>,
    /// The rows that have logits, ascending.
    #[serde(serialize_with = "count")]
    pub scored_rows: Vec<usize>,
    /// The folds of the kept setting.
    pub folds: Vec<FoldReport>,
    /// Every epoch of every trial; `best` marks the kept checkpoint of each fold of the kept
    /// trial, and nothing else.
    #[serde(skip)]
    pub records: Vec<EpochRecord>,
    /// The scored rows' cross-entropy, baseline and accuracy.
    pub out_of_sample: Quality,
    /// The setting that scored (the only one without tuning).
    pub spec: ModelSpec,
    /// With tuning: every setting tried and its mean validation cross-entropy.
    pub trials: Vec<TrialReport>,
    /// Index into `trials` of the kept setting.
    pub chosen_trial: usize,
    /// One line per fold that learned nothing.
    pub warnings: Vec<String>,
    /// The upper bound on training time logged before training (every run to the epoch cap).
    pub estimated_max_seconds: f64,
    /// Wall-clock seconds the training took.
    pub seconds: f64,
}

/// Trains `K` classifiers and scores every row (or the held-out part) out of sample.
///
/// Features are standardised first when the spec asks (fitted on every row: it uses no label,
/// so it leaks nothing into the out-of-sample scores). Each fold's model is the checkpoint at
/// its best validation cross-entropy, calibrated by temperature scaling on its own validation
/// rows; a fold that does not beat the label-frequency baseline is a warning (an error with
/// `strict`).
pub fn cross_fit(
    spec: &ModelSpec,
    data: &Labelled<'_>,
    config: CrossFitConfig,
    device: &Device,
    modality: &str,
    observer: &dyn TrainObserver,
) -> Result<CrossFitted, LearnError> {
    let mut standardised;
    let data = if spec.training.standardize {
        standardised = data.features.clone();
        standardised.standardize(&Standardizer::fit(&standardised));
        &Labelled {
            features: &standardised,
            classes: data.classes,
            n_classes: data.n_classes,
        }
    } else {
        data
    };
    let plan = fold_plan(data.classes, &config, spec.training.seed)?;
    let settings = match &config.tune {
        Some(grid) => grid.settings(spec),
        None => vec![spec.clone()],
    };
    let estimate = estimate_seconds(spec, data, &plan, settings.len(), device, modality)?;
    let started = std::time::Instant::now();
    let mut trials = Vec::new();
    let mut records = Vec::new();
    let mut kept: Option<(usize, Trial)> = None;
    for (index, setting) in settings.iter().enumerate() {
        let trial = run_trial(setting, data, &plan, device, modality, index, observer)?;
        records.extend(trial.records.iter().cloned());
        trials.push(TrialReport::new(setting, &trial.folds));
        let better = kept
            .as_ref()
            .is_none_or(|(_, k)| trial.mean_validation() < k.mean_validation());
        if better {
            kept = Some((index, trial));
        }
    }
    let (chosen, trial) = kept.expect("at least one setting");
    if settings.len() > 1 {
        tracing::info!(
            modality,
            "tuning: kept setting {} of {} (mean calibrated validation cross-entropy {:.4})",
            chosen + 1,
            settings.len(),
            trial.mean_validation()
        );
    }
    for r in &mut records {
        r.best &= r.trial == chosen;
    }
    let warnings = check_learned(&trial.folds, modality, config.strict)?;
    let out_of_sample = trial.out_of_sample(data);
    let mut scored_rows: Vec<usize> = plan.into_iter().flatten().collect();
    scored_rows.sort_unstable();
    Ok(CrossFitted {
        modality: modality.to_string(),
        logits: trial.logits,
        scored_rows,
        folds: trial.folds,
        records,
        out_of_sample,
        spec: settings[chosen].clone(),
        trials,
        chosen_trial: chosen,
        warnings,
        estimated_max_seconds: estimate,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Times a few optimiser steps and logs what the whole training may take: every run at the
/// epoch cap is the upper bound; early stopping usually ends runs well before it.
fn estimate_seconds(
    spec: &ModelSpec,
    data: &Labelled<'_>,
    plan: &[Vec<usize>],
    settings: usize,
    device: &Device,
    modality: &str,
) -> Result<f64, LearnError> {
    let rest = data.features.rows() - plan.first().map_or(0, Vec::len);
    let train_rows = (rest as f64 * (1.0 - spec.training.validation_fraction)).round() as usize;
    let epoch = epoch_seconds(spec, data, train_rows.max(2), device)?;
    let runs = plan.len() * settings;
    let most = epoch * (spec.training.epochs * runs) as f64;
    tracing::info!(
        "modality {modality}: training {runs} classifier(s) on about {train_rows} rows each: \
         about {} per epoch, at most {} in all ({} epochs each); early stopping usually ends \
         each run sooner",
        duration(epoch),
        duration(most),
        spec.training.epochs
    );
    Ok(most)
}

/// "0.4 s", "42 s", "3.5 min", "1.2 h".
fn duration(seconds: f64) -> String {
    match seconds {
        s if s < 10.0 => format!("{s:.1} s"),
        s if s < 120.0 => format!("{s:.0} s"),
        s if s < 7200.0 => format!("{:.1} min", s / 60.0),
        s => format!("{:.1} h", s / 3600.0),
    }
}

/// One setting cross-fitted: calibrated logits, fold reports, epochs.
struct Trial {
    logits: Array2<f64>,
    folds: Vec<FoldReport>,
    records: Vec<EpochRecord>,
    /// Per fold, its training frequencies (the baseline of the rows it scored).
    frequencies: Vec<Vec<f64>>,
}

impl Trial {
    fn mean_validation(&self) -> f64 {
        let sum: f64 = self
            .folds
            .iter()
            .map(|f| f.calibrated_validation_cross_entropy)
            .sum();
        sum / self.folds.len().max(1) as f64
    }

    /// Cross-entropy, baseline and accuracy over every scored row.
    fn out_of_sample(&self, data: &Labelled<'_>) -> Quality {
        let mut rows = Vec::new();
        let mut frequencies: Vec<&[f64]> = Vec::new();
        for (fold, f) in self.folds.iter().zip(&self.frequencies) {
            rows.extend_from_slice(&fold.scored_rows);
            frequencies.extend(std::iter::repeat_n(f.as_slice(), fold.scored_rows.len()));
        }
        let targets: Vec<usize> = rows.iter().map(|&r| data.classes[r]).collect();
        Quality::measure(
            self.logits.select(Axis(0), &rows).view(),
            &targets,
            &frequencies,
        )
    }
}

fn run_trial(
    spec: &ModelSpec,
    data: &Labelled<'_>,
    plan: &[Vec<usize>],
    device: &Device,
    modality: &str,
    trial: usize,
    observer: &dyn TrainObserver,
) -> Result<Trial, LearnError> {
    let n = data.features.rows();
    let t = data.n_classes;
    let mut logits = Array2::from_elem((n, t), f64::NAN);
    let mut folds = Vec::new();
    let mut records = Vec::new();
    let mut frequencies = Vec::new();
    for (fold, scored) in plan.iter().enumerate() {
        observer.fold_started(modality, fold, plan.len());
        let rest = complement(n, scored);
        let (train_rows, validation_rows) = stratified_split(
            &rest,
            data.classes,
            spec.training.validation_fraction,
            spec.training.seed.wrapping_add(17 + fold as u64),
        );
        let tag = RunTag {
            modality: modality.to_string(),
            fold,
            trial,
        };
        let run = train_run(
            spec,
            data,
            &train_rows,
            &validation_rows,
            device,
            &tag,
            observer,
        )?;
        let score = |rows: &[usize]| score_rows(&run.model, data.features, rows, t, device);
        let validation_logits = score(&validation_rows)?;
        let validation_targets: Vec<usize> =
            validation_rows.iter().map(|&r| data.classes[r]).collect();
        let temperature = if spec.training.calibrate {
            fit_temperature(validation_logits.view(), &validation_targets)
        } else {
            1.0
        };
        let fold_frequencies = label_frequencies(data.classes, &train_rows, t);
        let on_validation = |z: &Array2<f64>| {
            Quality::measure(
                z.view(),
                &validation_targets,
                &vec![fold_frequencies.as_slice(); validation_rows.len()],
            )
        };
        let validation = on_validation(&validation_logits);
        let calibrated = on_validation(&(&validation_logits / temperature));
        let scored_logits = score(scored)? / temperature;
        if let Some(position) = scored_logits.iter().position(|v| !v.is_finite()) {
            return Err(LearnError::NonFiniteScores {
                modality: modality.to_string(),
                fold,
                row: scored[position / t],
            });
        }
        for (k, &row) in scored.iter().enumerate() {
            logits.row_mut(row).assign(&scored_logits.row(k));
        }
        let scored_targets: Vec<usize> = scored.iter().map(|&r| data.classes[r]).collect();
        let scored_quality = Quality::measure(
            scored_logits.view(),
            &scored_targets,
            &vec![fold_frequencies.as_slice(); scored.len()],
        );
        let learned = run.best_validation_cross_entropy < validation.baseline_cross_entropy
            && scored_quality.beats_baseline();
        tracing::info!(
            modality,
            fold,
            trial,
            best_epoch = run.best_epoch,
            epochs = run.epochs_run,
            "fold {}/{}: trained on {} rows (batch {}), validation cross-entropy {:.4} \
             (baseline {:.4}, calibrated {:.4} at temperature {:.2}); scored {} rows",
            fold + 1,
            plan.len(),
            train_rows.len(),
            run.batch_size,
            run.best_validation_cross_entropy,
            validation.baseline_cross_entropy,
            calibrated.cross_entropy,
            temperature,
            scored.len()
        );
        records.extend(run.records);
        frequencies.push(fold_frequencies);
        folds.push(FoldReport {
            train_rows,
            validation_rows,
            scored_rows: scored.clone(),
            best_epoch: run.best_epoch,
            epochs_run: run.epochs_run,
            batch_size: run.batch_size,
            stop: run.stop,
            best_validation_cross_entropy: run.best_validation_cross_entropy,
            validation_baseline_cross_entropy: validation.baseline_cross_entropy,
            temperature,
            calibrated_validation_cross_entropy: calibrated.cross_entropy,
            scored: scored_quality,
            learned,
        });
    }
    Ok(Trial {
        logits,
        folds,
        records,
        frequencies,
    })
}

/// A loud warning for each fold that learned nothing, or the first as an error with `strict`.
fn check_learned(
    folds: &[FoldReport],
    modality: &str,
    strict: bool,
) -> Result<Vec<String>, LearnError> {
    let mut warnings = Vec::new();
    for (fold, report) in folds.iter().enumerate().filter(|(_, f)| !f.learned) {
        let error = LearnError::Untrained {
            modality: modality.to_string(),
            fold,
            cross_entropy: report.best_validation_cross_entropy,
            baseline: report.validation_baseline_cross_entropy,
        };
        if strict {
            return Err(error);
        }
        let message = format!(
            "{error}; on the {} rows it scored: cross-entropy {:.4} against {:.4}",
            report.scored.rows, report.scored.cross_entropy, report.scored.baseline_cross_entropy
        );
        tracing::warn!("{message}");
        warnings.push(message);
    }
    Ok(warnings)
}

/// The rows each fold scores.
fn fold_plan(
    classes: &[usize],
    config: &CrossFitConfig,
    seed: u64,
) -> Result<Vec<Vec<usize>>, LearnError> {
    let n = classes.len();
    match config.folds {
        0 => Err(LearnError::Input("--folds must be ≥ 1".into())),
        1 => {
            let all: Vec<usize> = (0..n).collect();
            if !(config.holdout_fraction > 0.0 && config.holdout_fraction < 1.0) {
                return Err(LearnError::Input(format!(
                    "the held-out fraction must be in (0, 1) (got {})",
                    config.holdout_fraction
                )));
            }
            let (_, held) = stratified_split(&all, classes, config.holdout_fraction, seed);
            Ok(vec![held])
        }
        k if k > n => Err(LearnError::Input(format!(
            "--folds {k} is more than the {n} rows of the modality"
        ))),
        k => {
            let fold = stratified_folds(classes, k, seed);
            Ok((0..k)
                .map(|f| (0..n).filter(|&r| fold[r] == f).collect())
                .collect())
        }
    }
}

fn complement(n: usize, rows: &[usize]) -> Vec<usize> {
    let mut taken = vec![false; n];
    for &r in rows {
        taken[r] = true;
    }
    (0..n).filter(|&r| !taken[r]).collect()
}

/// Scores `rows` of `features` with a trained network, `rows × T`.
pub fn score_rows(
    model: &crate::model::Classifier,
    features: &Features,
    rows: &[usize],
    n_classes: usize,
    device: &Device,
) -> Result<Array2<f64>, LearnError> {
    let values = predict_logits(model, features, rows, device)?;
    Ok(logits_matrix(values, rows.len(), n_classes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn k_fold_plan_scores_every_row_once() {
        let classes: Vec<usize> = (0..50).map(|i| i % 4).collect();
        let plan = fold_plan(
            &classes,
            &CrossFitConfig {
                folds: 5,
                ..CrossFitConfig::default()
            },
            3,
        )
        .unwrap();
        let mut all: Vec<usize> = plan.iter().flatten().copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..50).collect::<Vec<_>>());
    }

    #[test]
    fn single_split_scores_the_held_out_part_only() {
        let classes: Vec<usize> = (0..50).map(|i| i % 2).collect();
        let plan = fold_plan(
            &classes,
            &CrossFitConfig {
                folds: 1,
                ..CrossFitConfig::default()
            },
            3,
        )
        .unwrap();
        assert_eq!(plan.len(), 1);
        assert_eq!(plan[0].len(), 10);
    }
}

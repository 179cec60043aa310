//! Out-of-sample propensity scores by K-fold cross-fitting (METHOD.md step 1).
//!
//! The scores that go into matching must come from a model that never trained on the row it
//! scores: an in-sample model is over-confident exactly on the rows it memorised, which would
//! distort the cost between them. With `K ≥ 2` folds (stratified by label) every row is scored
//! by the model trained on the other `K − 1`; each of those carves a stratified validation part
//! out of its own training rows for early stopping. `K = 1` is the paper's protocol: one
//! stratified held-out part is scored and the rest trains.

use burn::tensor::Device;
use ndarray::Array2;
use psa_io::EpochRecord;

use crate::data::{Features, logits_matrix, stratified_folds, stratified_split};
use crate::spec::ModelSpec;
use crate::train::{Labelled, RunTag, predict_logits, train_run};
use crate::{LearnError, TrainObserver};

/// How rows are split into folds.
#[derive(Clone, Copy, Debug)]
pub struct CrossFitConfig {
    /// Number of folds `K`; 1 means a single held-out part.
    pub folds: usize,
    /// With `folds == 1`: the fraction of each label held out and scored.
    pub holdout_fraction: f64,
}

impl Default for CrossFitConfig {
    fn default() -> Self {
        CrossFitConfig {
            folds: 5,
            holdout_fraction: 0.2,
        }
    }
}

/// Which rows one fold's model trained on, watched and scored.
#[derive(Clone, Debug)]
pub struct FoldReport {
    pub train_rows: Vec<usize>,
    pub validation_rows: Vec<usize>,
    pub scored_rows: Vec<usize>,
    pub best_epoch: usize,
    pub best_validation_cross_entropy: f64,
    pub epochs_run: usize,
}

/// Out-of-sample logits for one modality.
#[derive(Clone, Debug)]
pub struct CrossFitted {
    /// `n × T`; rows that were not scored (only with `folds == 1`) are NaN.
    pub logits: Array2<f64>,
    /// The rows that have logits, ascending.
    pub scored_rows: Vec<usize>,
    pub folds: Vec<FoldReport>,
    pub records: Vec<EpochRecord>,
}

/// Trains `K` classifiers and scores every row (or the held-out part) out of sample.
pub fn cross_fit(
    spec: &ModelSpec,
    data: &Labelled<'_>,
    config: CrossFitConfig,
    device: &Device,
    modality: &str,
    observer: &dyn TrainObserver,
) -> Result<CrossFitted, LearnError> {
    let n = data.features.rows();
    let plan = fold_plan(data.classes, config, spec.training.seed)?;
    let t = data.n_classes;
    let mut logits = Array2::from_elem((n, t), f64::NAN);
    let mut folds = Vec::new();
    let mut records = Vec::new();
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
        let scores = predict_logits(&run.model, data.features, scored, device)?;
        for (k, &row) in scored.iter().enumerate() {
            for c in 0..t {
                logits[[row, c]] = scores[k * t + c] as f64;
            }
        }
        tracing::info!(
            modality,
            fold,
            best_epoch = run.best_epoch,
            epochs = run.epochs_run,
            validation_cross_entropy = format!("{:.4}", run.best_validation_cross_entropy),
            "fold {}/{} trained on {} rows, scored {}",
            fold + 1,
            plan.len(),
            train_rows.len(),
            scored.len()
        );
        records.extend(run.records);
        folds.push(FoldReport {
            train_rows,
            validation_rows,
            scored_rows: scored.clone(),
            best_epoch: run.best_epoch,
            best_validation_cross_entropy: run.best_validation_cross_entropy,
            epochs_run: run.epochs_run,
        });
    }
    let mut scored_rows: Vec<usize> = plan.into_iter().flatten().collect();
    scored_rows.sort_unstable();
    Ok(CrossFitted {
        logits,
        scored_rows,
        folds,
        records,
    })
}

/// The rows each fold scores.
fn fold_plan(
    classes: &[usize],
    config: CrossFitConfig,
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
            CrossFitConfig {
                folds: 5,
                holdout_fraction: 0.2,
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
            CrossFitConfig {
                folds: 1,
                holdout_fraction: 0.2,
            },
            3,
        )
        .unwrap();
        assert_eq!(plan.len(), 1);
        assert_eq!(plan[0].len(), 10);
    }
}

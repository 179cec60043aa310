//! One classifier's training run: Adam on cross-entropy (constant or one-cycle learning rate),
//! early stopping on the validation cross-entropy, and the checkpoint kept at its best finite
//! epoch (METHOD.md step 1).
//!
//! Written here rather than with burn's `Learner`: the run is one piece of a K-fold
//! cross-fitting loop whose progress, logs and `training.csv` psa owns, and leaving out burn's
//! `train` feature (Learner, terminal UI, metrics) keeps the build smaller. Optimiser, loss and
//! layers are burn's.

use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::TensorData;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use serde::Serialize;

use crate::calibrate::cross_entropy_and_hit;
use crate::data::Features;
use crate::model::Classifier;
use crate::monitor::EpochRecord;
use crate::spec::{ModelSpec, Schedule};
use crate::{LearnError, TrainObserver};

/// Rows scored per forward pass when no gradient is needed.
pub const SCORING_BATCH: usize = 1024;

/// What one run needs to know about the data: features and class index per row.
pub struct Labelled<'a> {
    pub features: &'a Features,
    pub classes: &'a [usize],
    pub n_classes: usize,
}

/// Which run this is, for records and logs.
#[derive(Clone, Debug)]
pub struct RunTag {
    pub modality: String,
    pub fold: usize,
    /// The setting of the `--tune` grid (0 without tuning).
    pub trial: usize,
}

/// Why a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stop {
    /// `patience` epochs without a better validation cross-entropy (after the minimum).
    EarlyStopping,
    /// The epoch cap was reached.
    EpochCap,
    /// An epoch's training or validation cross-entropy was not finite, or above
    /// [`DIVERGED_CROSS_ENTROPY`] times that of a uniform guess (logits blown up to where the
    /// matcher refuses them); the run kept its best earlier epoch.
    Diverged,
}

/// An epoch whose cross-entropy exceeds this many times `ln T` (a uniform guess) has diverged:
/// a model that learned anything, even one overfitted into confident mistakes, stays orders of
/// magnitude below it, while a learning rate far too large sends logits, and with them the
/// cross-entropy, towards 1e20 before they overflow.
pub const DIVERGED_CROSS_ENTROPY: f64 = 1000.0;

/// A finished run: the network at its best validation epoch, in inference mode.
pub struct TrainedRun {
    pub model: Classifier,
    pub best_epoch: usize,
    pub best_validation_cross_entropy: f64,
    pub epochs_run: usize,
    pub batch_size: usize,
    pub stop: Stop,
    /// One per epoch run; `best` marks only the kept epoch.
    pub records: Vec<EpochRecord>,
}

/// The checkpoint kept so far.
struct Best {
    cross_entropy: f64,
    epoch: usize,
    model: Classifier,
}

/// Trains on `train_rows`, monitoring `validation_rows`, and keeps the epoch with the lowest
/// finite validation cross-entropy. Early stopping waits for `min_epochs` and for a one-cycle
/// warm-up to end; an epoch whose cross-entropy is not finite ends the run and is never kept
/// (an error when no earlier epoch was finite).
pub fn train_run(
    spec: &ModelSpec,
    data: &Labelled<'_>,
    train_rows: &[usize],
    validation_rows: &[usize],
    device: &Device,
    tag: &RunTag,
    observer: &dyn TrainObserver,
) -> Result<TrainedRun, LearnError> {
    let t = &spec.training;
    if train_rows.len() < 2 || validation_rows.is_empty() {
        return Err(LearnError::TooFewRows(format!(
            "{} rows to train on and {} to validate; the rule: at least 2 rows to train on, and a \
             label with 2 or more rows so that one can be held out to validate",
            train_rows.len(),
            validation_rows.len()
        )));
    }
    let run_seed = t
        .seed
        .wrapping_add(1000 * tag.fold as u64)
        .wrapping_add(100_003 * tag.trial as u64);
    device.seed(run_seed);
    let train_device = device.clone().autodiff();
    let mut model = Classifier::new(
        &spec.encoder,
        data.features.shape(),
        data.n_classes,
        &train_device,
    )?;
    let mut optimizer = AdamConfig::new()
        .with_weight_decay(
            (t.weight_decay > 0.0).then(|| WeightDecayConfig::new(t.weight_decay as f32)),
        )
        .init();
    let loss_fn = CrossEntropyLossConfig::new().init(&train_device);
    let batch_size = t.batch_size_for(train_rows.len());
    let batches = batches_per_epoch(train_rows.len(), batch_size);
    let schedule = LearningRate {
        peak: t.learning_rate,
        schedule: t.schedule,
        total_steps: batches * t.epochs,
    };
    let earliest_stop = t.min_epochs.max(schedule.warm_up_steps().div_ceil(batches));

    let mut rng = ChaCha8Rng::seed_from_u64(run_seed);
    let mut order = train_rows.to_vec();
    let mut best: Option<Best> = None;
    let mut records = Vec::new();
    let mut step = 0;
    let mut since_best = 0;
    let mut stop = Stop::EpochCap;
    for epoch in 0..t.epochs {
        order.shuffle(&mut rng);
        // Summed on the device and read once per epoch: no read-back inside the batch loop.
        let mut loss_sum: Option<Tensor<1>> = None;
        let mut correct: Option<Tensor<1, Int>> = None;
        let mut seen = 0usize;
        let mut lr = schedule.at(step);
        for batch in order.chunks(batch_size) {
            // BatchNorm needs two rows; a lone leftover row waits for the next epoch.
            if batch.len() < 2 {
                continue;
            }
            lr = schedule.at(step);
            let (x, y) = batch_tensors(data, batch, &train_device);
            let logits = model.forward(x);
            let loss = loss_fn.forward(logits.clone(), y.clone());
            let batch_loss = loss.clone().detach().mul_scalar(batch.len() as f64);
            let hits = logits.argmax(1).flatten::<1>(0, 1).equal(y).int().sum();
            loss_sum = Some(match loss_sum {
                Some(sum) => sum + batch_loss,
                None => batch_loss,
            });
            correct = Some(match correct {
                Some(sum) => sum + hits,
                None => hits,
            });
            seen += batch.len();
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optimizer.step(lr, model, grads);
            step += 1;
        }
        let snapshot = model.valid();
        let (val_ce, val_acc) = evaluate(&snapshot, data, validation_rows, device)?;
        let loss_sum = loss_sum.map_or(0.0, |t| f64::from(t.into_scalar::<f32>()));
        let correct = correct.map_or(0, |t| t.into_scalar::<i64>()) as usize;
        let train_ce = loss_sum / seen.max(1) as f64;
        let ceiling = DIVERGED_CROSS_ENTROPY * (data.n_classes as f64).ln().max(1.0);
        let finite = train_ce.is_finite() && val_ce.is_finite() && train_ce.max(val_ce) < ceiling;
        let improved = finite && best.as_ref().is_none_or(|b| val_ce < b.cross_entropy);
        let record = EpochRecord {
            modality: tag.modality.clone(),
            fold: tag.fold,
            epoch,
            train_cross_entropy: train_ce,
            train_accuracy: correct as f64 / seen.max(1) as f64,
            validation_cross_entropy: val_ce,
            validation_accuracy: val_acc,
            learning_rate: lr,
            best: improved,
            trial: tag.trial,
        };
        observer.epoch_done(&record);
        records.push(record);
        if !finite {
            stop = Stop::Diverged;
            break;
        }
        if improved {
            best = Some(Best {
                cross_entropy: val_ce,
                epoch,
                model: snapshot,
            });
            since_best = 0;
        } else {
            since_best += 1;
            if since_best >= t.patience.max(1) && epoch + 1 >= earliest_stop {
                tracing::debug!(
                    modality = %tag.modality,
                    fold = tag.fold,
                    epoch,
                    "early stop: no better validation cross-entropy in {} epochs",
                    since_best
                );
                stop = Stop::EarlyStopping;
                break;
            }
        }
    }
    let epochs_run = records.len();
    let Some(best) = best else {
        return Err(LearnError::Diverged {
            modality: tag.modality.clone(),
            fold: tag.fold,
            epoch: epochs_run.saturating_sub(1),
            learning_rate: t.learning_rate,
        });
    };
    if stop == Stop::Diverged {
        tracing::warn!(
            "modality {}, fold {}: training diverged at epoch {} (cross-entropy not finite or blown up) at \
             learning rate {:e}; kept epoch {}",
            tag.modality,
            tag.fold,
            epochs_run - 1,
            t.learning_rate,
            best.epoch
        );
    }
    for r in &mut records {
        r.best = r.epoch == best.epoch;
    }
    Ok(TrainedRun {
        model: best.model,
        best_epoch: best.epoch,
        best_validation_cross_entropy: best.cross_entropy,
        epochs_run,
        batch_size,
        stop,
        records,
    })
}

/// Seconds one epoch over `train_rows` rows takes on `device`, measured on a throwaway model:
/// two optimiser steps to warm up (kernel compilation, allocation), then three timed. What
/// `cross_fit` multiplies into the training-time estimate it logs before a long training.
pub fn epoch_seconds(
    spec: &ModelSpec,
    data: &Labelled<'_>,
    train_rows: usize,
    device: &Device,
) -> Result<f64, LearnError> {
    let train_device = device.clone().autodiff();
    let mut model = Classifier::new(
        &spec.encoder,
        data.features.shape(),
        data.n_classes,
        &train_device,
    )?;
    let mut optimizer = AdamConfig::new().init();
    let loss_fn = CrossEntropyLossConfig::new().init(&train_device);
    let batch_size = spec.training.batch_size_for(train_rows);
    let rows: Vec<usize> = (0..batch_size.max(2))
        .map(|k| k % data.features.rows().max(1))
        .collect();
    let mut step = |model: Classifier| {
        let (x, y) = batch_tensors(data, &rows, &train_device);
        let loss = loss_fn.forward(model.forward(x), y);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        optimizer.step(spec.training.learning_rate, model, grads)
    };
    for _ in 0..2 {
        model = step(model);
    }
    let _ = evaluate(&model.valid(), data, &rows, device)?;
    let start = std::time::Instant::now();
    const TIMED: usize = 3;
    for _ in 0..TIMED {
        model = step(model);
    }
    // Reading the loss back waits for the device; a prediction does the same for the last step.
    let _ = evaluate(&model.valid(), data, &rows[..2], device)?;
    let per_step = start.elapsed().as_secs_f64() / TIMED as f64;
    Ok(per_step * batches_per_epoch(train_rows, batch_size) as f64)
}

fn batches_per_epoch(rows: usize, batch_size: usize) -> usize {
    rows.div_ceil(batch_size).max(1)
}

/// The learning rate at an optimiser step.
struct LearningRate {
    peak: f64,
    schedule: Schedule,
    total_steps: usize,
}

impl LearningRate {
    /// Optimiser steps until the peak learning rate (0 for a constant rate).
    fn warm_up_steps(&self) -> usize {
        match self.schedule {
            Schedule::Constant => 0,
            Schedule::OneCycle => (0.3 * self.total_steps.max(2) as f64).max(1.0).ceil() as usize,
        }
    }

    /// PyTorch's `OneCycleLR` defaults: `pct_start` 0.3, cosine annealing, `div_factor` 25,
    /// `final_div_factor` 1e4. burn has no one-cycle scheduler, hence this function.
    fn at(&self, step: usize) -> f64 {
        match self.schedule {
            Schedule::Constant => self.peak,
            Schedule::OneCycle => {
                let start = self.peak / 25.0;
                let end = start / 1e4;
                let total = self.total_steps.max(2) as f64;
                let warm = (0.3 * total).max(1.0);
                let s = step as f64;
                if s < warm {
                    cosine(start, self.peak, s / warm)
                } else {
                    cosine(
                        self.peak,
                        end,
                        ((s - warm) / (total - warm).max(1.0)).min(1.0),
                    )
                }
            }
        }
    }
}

fn cosine(from: f64, to: f64, progress: f64) -> f64 {
    to + (from - to) / 2.0 * (1.0 + (std::f64::consts::PI * progress).cos())
}

fn batch_tensors(
    data: &Labelled<'_>,
    rows: &[usize],
    device: &Device,
) -> (Tensor<2>, Tensor<1, Int>) {
    let d = data.features.shape().len();
    let x = Tensor::<2>::from_data(
        TensorData::new(data.features.gather(rows), [rows.len(), d]),
        device,
    );
    let y: Vec<i64> = rows.iter().map(|&r| data.classes[r] as i64).collect();
    let y = Tensor::<1, Int>::from_data(TensorData::new(y, [rows.len()]), device);
    (x, y)
}

/// Logits of `rows`, `rows.len() × T`, row-major, from a model in inference mode.
pub fn predict_logits(
    model: &Classifier,
    features: &Features,
    rows: &[usize],
    device: &Device,
) -> Result<Vec<f32>, LearnError> {
    let d = features.shape().len();
    let mut out = Vec::new();
    for batch in rows.chunks(SCORING_BATCH) {
        let x = Tensor::<2>::from_data(
            TensorData::new(features.gather(batch), [batch.len(), d]),
            device,
        );
        let logits = model.forward(x).into_data();
        let values = logits
            .try_to_vec::<f32>()
            .map_err(|e| LearnError::Backend(format!("reading logits back: {e:?}")))?;
        out.extend(values);
    }
    Ok(out)
}

/// Mean cross-entropy and accuracy of `rows`, computed in f64 from the logits.
pub fn evaluate(
    model: &Classifier,
    data: &Labelled<'_>,
    rows: &[usize],
    device: &Device,
) -> Result<(f64, f64), LearnError> {
    let logits = predict_logits(model, data.features, rows, device)?;
    let t = data.n_classes;
    let mut ce = 0.0;
    let mut correct = 0;
    for (k, &row) in rows.iter().enumerate() {
        let z: Vec<f64> = logits[k * t..(k + 1) * t]
            .iter()
            .map(|&v| f64::from(v))
            .collect();
        let (loss, hit) = cross_entropy_and_hit(&z, data.classes[row]);
        ce += loss;
        correct += usize::from(hit);
    }
    let n = rows.len().max(1) as f64;
    Ok((ce / n, correct as f64 / n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_cycle_matches_pytorch_shape() {
        let lr = LearningRate {
            peak: 1e-3,
            schedule: Schedule::OneCycle,
            total_steps: 100,
        };
        assert!((lr.at(0) - 1e-3 / 25.0).abs() < 1e-12);
        assert!((lr.at(30) - 1e-3).abs() < 1e-12);
        assert!(lr.at(15) > lr.at(0) && lr.at(15) < 1e-3);
        assert!(lr.at(99) < 1e-6);
        assert!((lr.at(100) - 1e-3 / 25.0 / 1e4).abs() < 1e-15);
    }
}

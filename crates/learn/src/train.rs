//! One classifier's training run: Adam on cross-entropy with a one-cycle schedule, early
//! stopping on the validation cross-entropy, and the checkpoint kept at its best epoch
//! (METHOD.md step 1).
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
use psa_io::EpochRecord;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::data::Features;
use crate::model::Classifier;
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
}

/// A finished run: the network at its best validation epoch, in inference mode.
pub struct TrainedRun {
    pub model: Classifier,
    pub best_epoch: usize,
    pub best_validation_cross_entropy: f64,
    pub epochs_run: usize,
    pub records: Vec<EpochRecord>,
}

/// Trains on `train_rows`, monitoring `validation_rows`.
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
        return Err(LearnError::Input(format!(
            "modality {}: too few rows to train ({} for training, {} for validation)",
            tag.modality,
            train_rows.len(),
            validation_rows.len()
        )));
    }
    let run_seed = t.seed.wrapping_add(1000 * tag.fold as u64);
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
    let batches = batches_per_epoch(train_rows.len(), t.batch_size);
    let schedule = LearningRate {
        peak: t.learning_rate,
        schedule: t.schedule,
        total_steps: batches * t.epochs,
    };

    let mut rng = ChaCha8Rng::seed_from_u64(run_seed);
    let mut order = train_rows.to_vec();
    let mut best: Option<(f64, usize, Classifier)> = None;
    let mut records = Vec::new();
    let mut step = 0;
    let mut since_best = 0;
    for epoch in 0..t.epochs {
        order.shuffle(&mut rng);
        // Summed on the device and read once per epoch: no read-back inside the batch loop.
        let mut loss_sum: Option<Tensor<1>> = None;
        let mut correct: Option<Tensor<1, Int>> = None;
        let mut seen = 0usize;
        let mut lr = schedule.at(step);
        for batch in order.chunks(t.batch_size) {
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
        if !train_ce.is_finite() {
            return Err(LearnError::Diverged {
                modality: tag.modality.clone(),
                fold: tag.fold,
                epoch,
            });
        }
        let improved = best.as_ref().is_none_or(|(ce, _, _)| val_ce < *ce);
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
        };
        observer.epoch_done(&record);
        records.push(record);
        if improved {
            best = Some((val_ce, epoch, snapshot));
            since_best = 0;
        } else {
            since_best += 1;
            if since_best >= t.patience.max(1) {
                tracing::debug!(
                    modality = %tag.modality,
                    fold = tag.fold,
                    epoch,
                    "early stop: no better validation cross-entropy in {} epochs",
                    since_best
                );
                break;
            }
        }
    }
    let epochs_run = records.len();
    let (best_ce, best_epoch, model) = best.expect("at least one epoch ran");
    Ok(TrainedRun {
        model,
        best_epoch,
        best_validation_cross_entropy: best_ce,
        epochs_run,
        records,
    })
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

/// Cross-entropy (nats) of one row of logits against its class, and whether the row's most
/// probable class is that class.
pub fn cross_entropy_and_hit(logits: &[f64], target: usize) -> (f64, bool) {
    let max = logits.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v));
    let lse = max + logits.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
    let argmax = (0..logits.len()).fold(0, |b, c| if logits[c] > logits[b] { c } else { b });
    (lse - logits[target], argmax == target)
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

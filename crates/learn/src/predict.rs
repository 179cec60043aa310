//! Cross-modal prediction from a matching (METHOD.md "Downstream cross-modal prediction", paper
//! Sec. 5): a network `f_θ : modality 2 → modality 1` trained on partners drawn from the
//! coupling, never on a dense `n1 × n2` matrix.
//!
//! The target is Eq. 9, `Σ_i ‖x_i − Σ_j P(j|i) f_θ(x_j)‖²`. Each epoch draws, for every
//! modality-1 row `i`, partners `j ~ P(·|i)` within its group ([`PartnerDraws`]):
//!
//! * [`PredictionLoss::Mse`]: one partner, `‖x_i − f(x_j)‖²`, an upper bound of Eq. 9 (it adds
//!   the spread of `f(x_j)` under `P(·|i)`);
//! * [`PredictionLoss::Unbiased`] (default): two independent partners, `⟨x_i − f(x_j′), x_i −
//!   f(x_j″)⟩`, whose expectation is exactly Eq. 9 and whose gradient is unbiased (Eq. 10).
//!
//! Validation uses `M` fixed draws per held-out modality-1 row, `r_k = x_i − f(x_{j_k})`, and
//! records two numbers each epoch: Eq. 9 itself, estimated without bias by the U-statistic
//! `(‖Σ_k r_k‖² − Σ_k ‖r_k‖²) / (M (M − 1))` ([`eq9_u_statistic`]), and the pseudo-pair MSE
//! `Σ_k ‖r_k‖² / M`, which is Eq. 9 plus the spread of single predictions under `P(·|i)`. The
//! checkpoint, early stopping and the choice between couplings follow the pseudo-pair MSE.
//! Why not Eq. 9: it only sees the `P(·|i)`-average of `f`, so where the coupling is blurred
//! (the uniform coupling most of all) `f` may grow any within-group variation that averages
//! out, and Eq. 9 does not object while every single prediction gets worse. Measured in
//! benches/RESULTS.md ("Cross-modal prediction"): on the demo's images the uniform coupling's
//! predictor kept by Eq. 9 scored R² −3.5 on held-out units, and on tabular designs Eq. 9
//! preferred 16× the run's λ where R² was lower than at 1×. Targets and inputs are standardised per column (the standardisers are kept with the
//! model, [`PredictorCard`]); losses are per target column, so 1 is the loss of predicting each
//! column's mean.
//!
//! The network is the classifiers' MLP ([`Classifier`] with `d1` outputs, no BatchNorm so any
//! batch size works); the training loop mirrors [`crate::train_run`] (Adam, constant rate,
//! early stopping after `min_epochs`, best finite checkpoint).

use std::path::Path;

use burn::optim::decay::WeightDecayConfig;
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::TensorData;
use ndarray::Array2;
use psa_core::Solved;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::LearnError;
use crate::data::{Features, InputShape, Standardizer};
use crate::model::Classifier;
use crate::persist::{load_network, read_card, save_network, write_card};
use crate::spec::{Activation, EncoderSpec};
use crate::train::predict_logits;

/// How a batch's loss uses the coupling.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PredictionLoss {
    /// `⟨x_i − f(x_j′), x_i − f(x_j″)⟩` with two independent partners: unbiased for Eq. 9.
    #[default]
    Unbiased,
    /// `‖x_i − f(x_j)‖²` with one partner (an upper bound of Eq. 9).
    Mse,
}

/// The predictor and how it is trained.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PredictorSpec {
    /// Hidden layer widths of the MLP.
    pub hidden: Vec<usize>,
    pub dropout: f64,
    pub loss: PredictionLoss,
    pub learning_rate: f64,
    pub weight_decay: f64,
    /// Mini-batch of modality-1 rows; `None`: about a sixteenth of the training rows as a power
    /// of two in `[32, 256]`, as for the classifiers.
    pub batch_size: Option<usize>,
    pub epochs: usize,
    /// Epochs without a better validation pseudo-pair MSE before stopping (after `min_epochs`).
    pub patience: usize,
    pub min_epochs: usize,
    /// Share of the matched modality-1 rows held out to validate.
    pub validation_fraction: f64,
    /// Partners per validation row for the Eq. 9 estimate (≥ 2).
    pub validation_draws: usize,
    pub seed: u64,
}

impl Default for PredictorSpec {
    fn default() -> Self {
        PredictorSpec {
            hidden: vec![256, 256],
            dropout: 0.0,
            loss: PredictionLoss::Unbiased,
            learning_rate: 1e-3,
            weight_decay: 0.0,
            batch_size: None,
            epochs: 200,
            patience: 15,
            min_epochs: 10,
            validation_fraction: 0.2,
            validation_draws: 16,
            seed: 0,
        }
    }
}

impl PredictorSpec {
    /// Checks every field; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.hidden.contains(&0) {
            return Err("hidden: layer widths must be ≥ 1".into());
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(format!("dropout: {} is outside [0, 1)", self.dropout));
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return Err(format!(
                "learning_rate: {} must be finite and > 0",
                self.learning_rate
            ));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(format!("weight_decay: {} must be ≥ 0", self.weight_decay));
        }
        if self.epochs == 0 {
            return Err("epochs: must be ≥ 1".into());
        }
        if self.batch_size == Some(0) {
            return Err("batch_size: must be ≥ 1".into());
        }
        if !(self.validation_fraction > 0.0 && self.validation_fraction < 1.0) {
            return Err(format!(
                "validation_fraction: {} is outside (0, 1)",
                self.validation_fraction
            ));
        }
        if self.validation_draws < 2 {
            return Err("validation_draws: must be ≥ 2 (the Eq. 9 estimate pairs draws)".into());
        }
        Ok(())
    }

    fn batch_size_for(&self, rows: usize) -> usize {
        self.batch_size
            .unwrap_or_else(|| (rows / 16).max(1).next_power_of_two().clamp(32, 256))
    }

    fn encoder(&self) -> EncoderSpec {
        EncoderSpec::Mlp {
            hidden: self.hidden.clone(),
            batch_norm: false,
            dropout: self.dropout,
            activation: Activation::Relu,
        }
    }
}

/// Where partners come from: a coupling (`P(·|i)` within the row's group) or true pairs.
pub trait PartnerDraws {
    /// `n1 × draws` modality-2 row indices, independent draws `j ~ P(·|i)` for every
    /// modality-1 row (−1 for a row without partners). Different `round`s give independent
    /// draws; the same round gives the same draws.
    fn draw(&self, draws: usize, round: u64) -> Result<Array2<i64>, LearnError>;
}

/// Each modality-1 row's one true partner (or none): every draw is that partner.
pub struct TruePartners(pub Vec<Option<usize>>);

impl PartnerDraws for TruePartners {
    fn draw(&self, draws: usize, _round: u64) -> Result<Array2<i64>, LearnError> {
        Ok(Array2::from_shape_fn((self.0.len(), draws), |(i, _)| {
            self.0[i].map_or(-1, |j| j as i64)
        }))
    }
}

/// Partners drawn from a solved matching: `j ~ P(·|i)` within `i`'s group, through
/// [`Solved::sample_pairs`] (rows of the lazy coupling, never a dense matrix), as modality-2
/// input rows. Round `r` draws with seed `seed ⊕ r·φ`, so rounds are independent and
/// reproducible.
pub struct CouplingPartners<'a> {
    pub solved: &'a dyn Solved,
    pub seed: u64,
}

impl PartnerDraws for CouplingPartners<'_> {
    fn draw(&self, draws: usize, round: u64) -> Result<Array2<i64>, LearnError> {
        let seed = self.seed ^ round.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let per_group = self
            .solved
            .sample_pairs(draws, seed)
            .map_err(|e| LearnError::Backend(format!("drawing partners: {e}")))?;
        Ok(psa_core::scatter::pairs1(
            self.solved.problem(),
            &per_group,
            draws,
        ))
    }
}

/// One epoch of a predictor: one row of its `training.csv`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PredictorEpoch {
    /// The candidate coupling this run trains on (0 without a λ grid).
    pub trial: usize,
    pub epoch: usize,
    /// Mean training loss per target column (the unbiased loss can be negative).
    pub train_loss: f64,
    /// Eq. 9 on the validation rows per target column (U-statistic).
    pub validation_loss: f64,
    /// `E_{j~P(·|i)} ‖x_i − f(x_j)‖²` on the validation rows per target column: Eq. 9 plus the
    /// spread of single predictions under `P(·|i)`. What the checkpoint, early stopping and the
    /// choice of coupling follow: a predictor that fits a blurred coupling by inflating its
    /// outputs (so that their average lands on `x_i`) scores well on Eq. 9 but badly here.
    pub validation_pair_mse: f64,
    pub learning_rate: f64,
    /// The kept checkpoint (exactly one row per trial in a finished log).
    pub best: bool,
}

/// Writes a predictor's epochs as CSV with a header row (the fields of [`PredictorEpoch`], in
/// order), as the classifiers' `training.csv` is written.
pub fn write_predictor_csv(
    writer: &mut dyn std::io::Write,
    records: &[PredictorEpoch],
) -> std::io::Result<()> {
    let mut csv = csv::Writer::from_writer(writer);
    for record in records {
        csv.serialize(record)?;
    }
    csv.flush()
}

/// Progress of a predictor's training.
pub trait PredictObserver {
    fn epoch_done(&self, _record: &PredictorEpoch) {}
}

impl PredictObserver for crate::NoObserver {}

/// What `predictor.json` holds: everything but the weights.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PredictorCard {
    pub format: u32,
    pub spec: PredictorSpec,
    /// The shape of a modality-2 row (the input).
    pub input: InputShape,
    /// Columns of a modality-1 row (the output).
    pub outputs: usize,
    pub input_standardizer: Standardizer,
    /// Mean and scale of each target column: predictions are `mean + scale · f(x)`.
    pub target_standardizer: Standardizer,
    pub best_epoch: usize,
    /// Eq. 9 per standardised target column on the validation rows.
    pub best_validation_loss: f64,
    /// The pseudo-pair MSE on the validation rows at the kept epoch ([`PredictorEpoch`]).
    pub best_validation_pair_mse: f64,
    pub epochs_run: usize,
    pub trained_rows: usize,
    pub validation_rows: usize,
    /// Free-form facts from the caller (the coupling it was trained on, the λ grid).
    #[serde(default)]
    pub provenance: serde_json::Value,
}

const PREDICTOR_FORMAT: u32 = 1;
/// The weights of a saved predictor.
pub const PREDICTOR_WEIGHTS_FILE: &str = "predictor.bpk";
/// Its card.
pub const PREDICTOR_CARD_FILE: &str = "predictor.json";

/// A trained predictor: the network in inference mode and its card.
pub struct TrainedPredictor {
    pub card: PredictorCard,
    pub network: Classifier,
}

/// A finished training: the predictor and one record per epoch.
pub struct PredictorRun {
    pub predictor: TrainedPredictor,
    pub records: Vec<PredictorEpoch>,
}

/// Epochs served by one call to [`PartnerDraws::draw`] (two partners each): the coupling's rows
/// are recomputed once per this many epochs, not every epoch.
const EPOCHS_PER_DRAW: usize = 8;

/// Trains `f : x2 → x1` on partners from `partners` (rows of `x1` are modality-1 rows, rows of
/// `x2` modality-2 rows; `x1` is used flattened). Rows without partners take no part.
pub fn train_predictor(
    spec: &PredictorSpec,
    x1: &Features,
    x2: &Features,
    partners: &dyn PartnerDraws,
    trial: usize,
    device: &Device,
    observer: &dyn PredictObserver,
) -> Result<PredictorRun, LearnError> {
    spec.validate()
        .map_err(|m| LearnError::Input(format!("predictor spec: {m}")))?;
    let prepared = Prepared::new(spec, x1, x2, partners)?;
    let run_seed = spec.seed.wrapping_add(7919 * trial as u64);
    device.seed(run_seed);
    let train_device = device.clone().autodiff();
    let mut model = Classifier::new(
        &spec.encoder(),
        prepared.x2.shape(),
        prepared.d1,
        &train_device,
    )?;
    let mut optimizer = AdamConfig::new()
        .with_weight_decay(
            (spec.weight_decay > 0.0).then(|| WeightDecayConfig::new(spec.weight_decay as f32)),
        )
        .init();
    let batch_size = spec.batch_size_for(prepared.train.len());
    let mut rng = ChaCha8Rng::seed_from_u64(run_seed);
    let mut order = prepared.train.clone();
    let mut best: Option<(f64, f64, usize, Classifier)> = None;
    let mut records = Vec::new();
    let mut since_best = 0;
    let mut pool = Array2::zeros((0, 0));
    for epoch in 0..spec.epochs {
        let slot = epoch % EPOCHS_PER_DRAW;
        if slot == 0 {
            pool = partners.draw(2 * EPOCHS_PER_DRAW, (epoch / EPOCHS_PER_DRAW) as u64)?;
        }
        order.shuffle(&mut rng);
        let mut loss_sum: Option<Tensor<1>> = None;
        for batch in order.chunks(batch_size) {
            let (a, b): (Vec<usize>, Vec<usize>) = batch
                .iter()
                .map(|&i| {
                    (
                        pool[[i, 2 * slot]] as usize,
                        pool[[i, 2 * slot + 1]] as usize,
                    )
                })
                .unzip();
            let loss = prepared.batch_loss(&model, batch, &a, &b, spec.loss, &train_device);
            let weighted = loss.clone().detach().mul_scalar(batch.len() as f64);
            loss_sum = Some(match loss_sum {
                Some(sum) => sum + weighted,
                None => weighted,
            });
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optimizer.step(spec.learning_rate, model, grads);
        }
        let snapshot = model.valid();
        let (validation_loss, validation_pair_mse) = prepared.validation_loss(&snapshot, device)?;
        let train_loss = loss_sum.map_or(f64::NAN, |t| f64::from(t.into_scalar::<f32>()))
            / prepared.train.len().max(1) as f64;
        let finite = train_loss.is_finite() && validation_loss.is_finite();
        let improved = finite && best.as_ref().is_none_or(|b| validation_pair_mse < b.1);
        let record = PredictorEpoch {
            trial,
            epoch,
            train_loss,
            validation_loss,
            validation_pair_mse,
            learning_rate: spec.learning_rate,
            best: improved,
        };
        observer.epoch_done(&record);
        records.push(record);
        if !finite {
            tracing::warn!(
                "predictor: training diverged at epoch {epoch} (loss not finite) at learning rate \
                 {:e}; keeping the best earlier epoch",
                spec.learning_rate
            );
            break;
        }
        if improved {
            best = Some((validation_loss, validation_pair_mse, epoch, snapshot));
            since_best = 0;
        } else {
            since_best += 1;
            if since_best >= spec.patience.max(1) && epoch + 1 >= spec.min_epochs {
                break;
            }
        }
    }
    let Some((best_loss, best_pair_mse, best_epoch, network)) = best else {
        return Err(LearnError::Input(format!(
            "predictor: the first epoch's loss is not finite at learning rate {:e}; lower it",
            spec.learning_rate
        )));
    };
    for r in &mut records {
        r.best = r.epoch == best_epoch;
    }
    let card = PredictorCard {
        format: PREDICTOR_FORMAT,
        spec: spec.clone(),
        input: prepared.x2.shape(),
        outputs: prepared.d1,
        input_standardizer: prepared.input_standardizer,
        target_standardizer: prepared.target_standardizer,
        best_epoch,
        best_validation_loss: best_loss,
        best_validation_pair_mse: best_pair_mse,
        epochs_run: records.len(),
        trained_rows: prepared.train.len(),
        validation_rows: prepared.validation.len(),
        provenance: serde_json::Value::Null,
    };
    Ok(PredictorRun {
        predictor: TrainedPredictor { card, network },
        records,
    })
}

/// Standardised data, the train/validation split and the fixed validation partners.
struct Prepared {
    x1: Features,
    x2: Features,
    d1: usize,
    input_standardizer: Standardizer,
    target_standardizer: Standardizer,
    train: Vec<usize>,
    validation: Vec<usize>,
    /// `validation.len() × M` partners of the validation rows.
    validation_partners: Array2<i64>,
}

impl Prepared {
    fn new(
        spec: &PredictorSpec,
        x1: &Features,
        x2: &Features,
        partners: &dyn PartnerDraws,
    ) -> Result<Prepared, LearnError> {
        let d1 = x1.shape().len();
        let mut x1 = Features::from_raw(
            x1.gather(&(0..x1.rows()).collect::<Vec<_>>()),
            x1.rows(),
            InputShape::Flat { features: d1 },
        )?;
        let mut x2 = x2.clone();
        // A fixed round far from the training rounds: the validation draws never change.
        let fixed = partners.draw(spec.validation_draws, u64::MAX)?;
        if fixed.nrows() != x1.rows() {
            return Err(LearnError::Input(format!(
                "the partner draws cover {} modality-1 rows, but x1 has {}",
                fixed.nrows(),
                x1.rows()
            )));
        }
        if let Some(&j) = fixed.iter().find(|&&j| j >= x2.rows() as i64) {
            return Err(LearnError::Input(format!(
                "a partner is modality-2 row {j}, but x2 has {} rows",
                x2.rows()
            )));
        }
        let mut matched: Vec<usize> = (0..x1.rows()).filter(|&i| fixed[[i, 0]] >= 0).collect();
        if matched.len() < 4 {
            return Err(LearnError::TooFewRows(format!(
                "{} modality-1 rows have partners; a predictor needs at least 4 (some to train, \
                 some to validate)",
                matched.len()
            )));
        }
        let input_standardizer = Standardizer::fit(&x2);
        x2.standardize(&input_standardizer);
        let target_standardizer = Standardizer::fit(&x1);
        x1.standardize(&target_standardizer);
        matched.shuffle(&mut ChaCha8Rng::seed_from_u64(spec.seed.wrapping_add(31)));
        let held = ((matched.len() as f64 * spec.validation_fraction).round() as usize)
            .clamp(1, matched.len() - 2);
        let validation = matched[..held].to_vec();
        let train = matched[held..].to_vec();
        let validation_partners = fixed.select(ndarray::Axis(0), &validation);
        Ok(Prepared {
            x1,
            x2,
            d1,
            input_standardizer,
            target_standardizer,
            train,
            validation,
            validation_partners,
        })
    }

    /// The batch's loss per target column, on the autodiff device.
    fn batch_loss(
        &self,
        model: &Classifier,
        rows: &[usize],
        a: &[usize],
        b: &[usize],
        loss: PredictionLoss,
        device: &Device,
    ) -> Tensor<1> {
        let n = rows.len();
        let target = self.tensor(&self.x1, rows, device);
        match loss {
            PredictionLoss::Mse => {
                mse_loss(target, model.forward(self.tensor(&self.x2, a, device)))
            }
            PredictionLoss::Unbiased => {
                let both: Vec<usize> = a.iter().chain(b).copied().collect();
                let out = model.forward(self.tensor(&self.x2, &both, device));
                let fa = out.clone().slice([0..n, 0..self.d1]);
                let fb = out.slice([n..2 * n, 0..self.d1]);
                unbiased_loss(target, fa, fb)
            }
        }
    }

    fn tensor(&self, features: &Features, rows: &[usize], device: &Device) -> Tensor<2> {
        let d = features.shape().len();
        Tensor::<2>::from_data(
            TensorData::new(features.gather(rows), [rows.len(), d]),
            device,
        )
    }

    /// Eq. 9 and the pseudo-pair MSE per target column on the validation rows, from their fixed
    /// draws.
    fn validation_loss(
        &self,
        model: &Classifier,
        device: &Device,
    ) -> Result<(f64, f64), LearnError> {
        let mut needed: Vec<usize> = self
            .validation_partners
            .iter()
            .map(|&j| j as usize)
            .collect();
        needed.sort_unstable();
        needed.dedup();
        let predicted = predict_logits(model, &self.x2, &needed, device)?;
        let d = self.d1;
        let row_of = |j: usize| {
            let k = needed
                .binary_search(&j)
                .expect("every partner was predicted");
            &predicted[k * d..(k + 1) * d]
        };
        let mut total = 0.0;
        let mut pair_mse = 0.0;
        for (v, &i) in self.validation.iter().enumerate() {
            let target = self.x1.row(i);
            let predictions: Vec<&[f32]> = self
                .validation_partners
                .row(v)
                .iter()
                .map(|&j| row_of(j as usize))
                .collect();
            total += eq9_u_statistic(target, &predictions);
            pair_mse += predictions
                .iter()
                .map(|p| {
                    target
                        .iter()
                        .zip(p.iter())
                        .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
                        .sum::<f64>()
                })
                .sum::<f64>()
                / predictions.len() as f64;
        }
        let per = (self.validation.len().max(1) * d) as f64;
        Ok((total / per, pair_mse / per))
    }
}

/// The unbiased loss of a batch: `⟨x_i − f(x_j′), x_i − f(x_j″)⟩` averaged over the `n` rows and
/// divided by the `d` columns (`target`, `fa`, `fb` are `n × d`). Its expectation over
/// independent `j′, j″ ~ P(·|i)` is Eq. 9 per column, and so is its gradient's (Eq. 10).
pub fn unbiased_loss(target: Tensor<2>, fa: Tensor<2>, fb: Tensor<2>) -> Tensor<1> {
    let [n, d] = target.dims();
    ((target.clone() - fa) * (target - fb))
        .sum()
        .mul_scalar(1.0 / (n * d).max(1) as f64)
}

/// The pseudo-pair loss `‖x_i − f(x_j)‖²` averaged over rows, divided by the columns.
pub fn mse_loss(target: Tensor<2>, fa: Tensor<2>) -> Tensor<1> {
    let [n, d] = target.dims();
    (target - fa)
        .powi_scalar(2)
        .sum()
        .mul_scalar(1.0 / (n * d).max(1) as f64)
}

/// The unbiased estimate of `‖x − E f(x_j)‖²` from `M ≥ 2` independent predictions
/// `f(x_{j_k})`: the mean of `⟨r_k, r_l⟩` over ordered pairs `k ≠ l`, `r_k = x − f(x_{j_k})`,
/// computed as `(‖Σ r_k‖² − Σ ‖r_k‖²) / (M (M − 1))`.
pub fn eq9_u_statistic(target: &[f32], predictions: &[&[f32]]) -> f64 {
    let m = predictions.len() as f64;
    let mut sum_sq_of_sum = 0.0;
    let mut sum_of_sq = 0.0;
    for (c, &x) in target.iter().enumerate() {
        let mut s = 0.0;
        for p in predictions {
            let r = f64::from(x) - f64::from(p[c]);
            s += r;
            sum_of_sq += r * r;
        }
        sum_sq_of_sum += s * s;
    }
    (sum_sq_of_sum - sum_of_sq) / (m * (m - 1.0))
}

impl TrainedPredictor {
    /// Predicted modality-1 rows (original units) for every row of `x2`.
    pub fn predict(&self, mut x2: Features, device: &Device) -> Result<Array2<f64>, LearnError> {
        if x2.shape() != self.card.input {
            return Err(LearnError::Input(format!(
                "the predictor takes modality-2 rows of shape {:?}, but the input has {:?}",
                self.card.input,
                x2.shape()
            )));
        }
        x2.standardize(&self.card.input_standardizer);
        let rows: Vec<usize> = (0..x2.rows()).collect();
        let values = predict_logits(&self.network, &x2, &rows, device)?;
        let d = self.card.outputs;
        let s = &self.card.target_standardizer;
        let out = Array2::from_shape_fn((rows.len(), d), |(i, c)| {
            f64::from(s.mean[c]) + f64::from(s.scale[c]) * f64::from(values[i * d + c])
        });
        if let Some(k) = out.iter().position(|v| !v.is_finite()) {
            return Err(LearnError::Input(format!(
                "row {}: the prediction is not finite; the predictor may have diverged",
                k / d.max(1)
            )));
        }
        Ok(out)
    }

    /// Writes `predictor.bpk` and `predictor.json` into `dir` (which must exist).
    pub fn save(&self, dir: &Path) -> Result<(), LearnError> {
        save_network(&self.network, &dir.join(PREDICTOR_WEIGHTS_FILE))?;
        write_card(&dir.join(PREDICTOR_CARD_FILE), &self.card)
    }

    /// Reads a directory written by [`TrainedPredictor::save`] onto `device`.
    pub fn load(dir: &Path, device: &Device) -> Result<TrainedPredictor, LearnError> {
        let card_path = dir.join(PREDICTOR_CARD_FILE);
        let card: PredictorCard = read_card(&card_path, "predictor")?;
        card.check().map_err(|message| LearnError::Model {
            path: card_path.clone(),
            message,
        })?;
        let network = Classifier::new(&card.spec.encoder(), card.input, card.outputs, device)?;
        let network = load_network(network, &dir.join(PREDICTOR_WEIGHTS_FILE))?;
        Ok(TrainedPredictor { card, network })
    }
}

impl PredictorCard {
    /// The card's own consistency, before any weights are read.
    pub fn check(&self) -> Result<(), String> {
        if self.format != PREDICTOR_FORMAT {
            return Err(format!(
                "predictor format {} is not supported (expected {PREDICTOR_FORMAT})",
                self.format
            ));
        }
        if self.outputs == 0 || self.input.is_empty() {
            return Err("input and outputs must have at least one column".into());
        }
        self.input_standardizer.check(self.input)?;
        self.target_standardizer
            .check(InputShape::Flat {
                features: self.outputs,
            })
            .map_err(|m| format!("target_standardizer: {m}"))?;
        self.spec.validate().map_err(|m| format!("spec: {m}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn u_statistic_is_the_mean_over_pairs_of_inner_products() {
        let target = [1.0f32, -2.0, 0.5];
        let preds: [&[f32]; 3] = [&[0.0, 0.0, 0.0], &[1.0, 1.0, 1.0], &[2.0, -1.0, 0.5]];
        let r: Vec<Vec<f64>> = preds
            .iter()
            .map(|p| {
                target
                    .iter()
                    .zip(p.iter())
                    .map(|(x, y)| f64::from(*x) - f64::from(*y))
                    .collect()
            })
            .collect();
        let mut pairs = 0.0;
        for k in 0..3 {
            for l in 0..3 {
                if k != l {
                    pairs += r[k].iter().zip(&r[l]).map(|(a, b)| a * b).sum::<f64>();
                }
            }
        }
        let expect = pairs / 6.0;
        assert!((eq9_u_statistic(&target, &preds) - expect).abs() < 1e-12);
    }
}

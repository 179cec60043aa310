//! The demo's prediction lines (paper Sec. 5, Table 2 in spirit): a predictor `f` from
//! modality-2 rows to a modality-1 readout trained on partners from the PS+OT coupling, from
//! the uniform coupling (random matching) and from the true pairs, all with the unbiased loss,
//! and their R² on held-out units drawn afresh.
//!
//! The readout is the modality-1 latent `z` (the objects' positions, what the images encode), so
//! R² says how much of modality 1's content a predictor recovers from modality 2. To stay within
//! the demo's two minutes on a CPU, each predictor trains on a random subset of the modality-1
//! rows (partners are still drawn from the whole coupling) for a short budget.

use anyhow::Result;
use ndarray::Array2;
use psa_core::synthetic::images::{ImageConfig, generate_images};
use psa_core::synthetic::tabular::{TabularConfig, generate_tabular};
use psa_core::{Method, Solved};
use psa_learn::{
    CouplingPartners, Features, LearnError, NoObserver, PartnerDraws, PredictorSpec, TruePartners,
};

use super::DemoArgs;

/// Modality-1 rows a demo predictor trains on (at most).
const TRAIN_ROWS: usize = 1800;
/// Held-out units per group for R².
const TEST_PER_GROUP: usize = 50;

/// One prediction line: what the predictor trained on, its held-out R², seconds.
pub struct Line {
    pub name: &'static str,
    pub r2: f64,
    pub seconds: f64,
}

/// Partners of the first `keep` modality-1 rows only (the rows are in random order).
struct FirstRows<'a> {
    inner: &'a dyn PartnerDraws,
    keep: usize,
}

impl PartnerDraws for FirstRows<'_> {
    fn draw(&self, draws: usize, round: u64) -> Result<Array2<i64>, LearnError> {
        let mut pairs = self.inner.draw(draws, round)?;
        let from = self.keep.min(pairs.nrows());
        pairs.slice_mut(ndarray::s![from.., ..]).fill(-1);
        Ok(pairs)
    }
}

/// Trains the three predictors and scores them on fresh units.
pub fn rows(
    args: &DemoArgs,
    couplings: &[(Method, Box<dyn Solved + '_>)],
    x2: &Features,
    latents1: &Array2<f64>,
    ids: &(Vec<String>, Vec<String>),
    device: &psa_learn::Device,
) -> Result<Vec<Line>> {
    let targets = Features::from_matrix(latents1.view());
    let position: std::collections::HashMap<&str, usize> = ids
        .1
        .iter()
        .enumerate()
        .map(|(j, id)| (id.as_str(), j))
        .collect();
    let truth = TruePartners(
        ids.0
            .iter()
            .map(|id| position.get(id.as_str()).copied())
            .collect(),
    );
    let spec = PredictorSpec {
        epochs: 20,
        patience: 5,
        seed: args.seed.seed,
        ..PredictorSpec::default()
    };
    let (test_x2, test_z) = held_out(args);
    let mut lines = Vec::new();
    let mut sources: Vec<(&'static str, Box<dyn PartnerDraws + '_>)> = Vec::new();
    for (method, solved) in couplings {
        let name = match method {
            Method::Random => "random",
            _ => "PS+OT",
        };
        sources.push((
            name,
            Box::new(CouplingPartners {
                solved: solved.as_ref(),
                seed: args.seed.seed,
            }),
        ));
    }
    sources.push(("true pairs", Box::new(truth)));
    let bar = crate::logging::progress_bar(sources.len() as u64, "training predictors");
    for (trial, (name, partners)) in sources.iter().enumerate() {
        let start = std::time::Instant::now();
        let subset = FirstRows {
            inner: partners.as_ref(),
            keep: TRAIN_ROWS,
        };
        let run =
            psa_learn::train_predictor(&spec, &targets, x2, &subset, trial, device, &NoObserver)?;
        let predicted = run.predictor.predict(test_x2.clone(), device)?;
        lines.push(Line {
            name,
            r2: psa_core::prediction::r2(predicted.view(), test_z.view())?,
            seconds: start.elapsed().as_secs_f64(),
        });
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(lines)
}

/// Fresh units of the same design (another seed): modality-2 rows and their units' latents.
fn held_out(args: &DemoArgs) -> (Features, Array2<f64>) {
    let seed = args.seed.seed.wrapping_add(1_000_003);
    if args.tabular {
        let data = generate_tabular(&TabularConfig {
            n_per_group: TEST_PER_GROUP,
            seed,
            ..TabularConfig::default()
        });
        let m = &data.modality2;
        (
            Features::from_matrix(m.x.mapv(f64::from).view()),
            m.latents.clone(),
        )
    } else {
        let data = generate_images(&ImageConfig {
            n_per_group: TEST_PER_GROUP,
            seed,
            ..ImageConfig::default()
        });
        let m = &data.modality2;
        (Features::from_images(m.x.view()), m.latents.clone())
    }
}

pub fn print(lines: &[Line]) {
    println!(
        "prediction: modality 2 → modality-1 latents z, MLP trained on partners (unbiased loss), \
         R² on {} held-out units per group",
        TEST_PER_GROUP
    );
    for line in lines {
        println!(
            "  R² {:>7.3}  trained on {} ({:.1} s)",
            line.r2, line.name, line.seconds
        );
    }
}

//! `psa bench-train`: classifier training throughput (samples/s), burn-ndarray on the CPU and
//! burn-wgpu on a GPU, in one process.
//!
//! Each backend trains the same model on the same data for `--epochs` epochs; the first epoch
//! (kernel compilation, autotuning, allocator warm-up) is reported apart, and throughput is
//! training rows over the mean time of the later epochs (each epoch also scores its validation
//! tenth once, without gradients). Measured here, never in tests.

use std::sync::Mutex;
use std::time::Instant;

use anyhow::Result;
use clap::{Args, ValueEnum};
use psa_core::synthetic::images::{ImageConfig, generate_images};
use psa_learn::{
    Classes, EncoderSpec, EpochRecord, Features, Labelled, ModelSpec, Preset, RunTag, Schedule,
    TrainObserver, stratified_split, train_run,
};
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

use crate::commands::bench::BenchBackend;
use crate::hardware::{Backend, Hardware};
use crate::logging;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BenchModel {
    /// MLP 2×64 (tabular preset) on 50 features.
    Mlp,
    /// MLP 5×1024 (CITE-seq preset) on 2000 features.
    Citeseq,
    /// The paper's CNN (32…512 channels) on 32×32 RGB synthetic images.
    Cnn,
}

#[derive(Debug, Args)]
pub struct BenchTrainArgs {
    #[arg(long, value_enum, default_value_t = BenchBackend::Both)]
    pub backend: BenchBackend,
    #[arg(long, value_enum, default_value_t = BenchModel::Mlp)]
    pub model: BenchModel,
    /// Training rows (a tenth more are drawn for validation).
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u64).range(24..))]
    pub n: u64,
    /// Epochs per backend; the first is the warm-up.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(2..))]
    pub epochs: u64,
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(2..))]
    pub batch_size: u64,
}

struct Timer {
    last: Mutex<Instant>,
    epochs: Mutex<Vec<f64>>,
}

impl TrainObserver for Timer {
    fn epoch_done(&self, _record: &EpochRecord) {
        let mut last = self.last.lock().expect("not poisoned");
        self.epochs
            .lock()
            .expect("not poisoned")
            .push(last.elapsed().as_secs_f64());
        *last = Instant::now();
    }
}

pub fn run(args: BenchTrainArgs) -> Result<()> {
    let (features, class_of_row, n_classes) = data(&args);
    let mut spec: ModelSpec = match args.model {
        BenchModel::Mlp => Preset::Tabular,
        BenchModel::Citeseq => Preset::CiteSeq,
        BenchModel::Cnn => Preset::Images,
    }
    .spec(features.shape());
    spec.training.batch_size = Some(args.batch_size as usize);
    spec.training.min_epochs = 0;
    spec.training.epochs = args.epochs as usize;
    spec.training.patience = usize::MAX;
    spec.training.schedule = Schedule::Constant;
    spec.training.learning_rate = 1e-3;
    let all: Vec<usize> = (0..features.rows()).collect();
    let (train, validation) = stratified_split(&all, &class_of_row, 0.0909, 1);
    let labelled = Labelled {
        features: &features,
        classes: &class_of_row,
        n_classes,
    };
    let backends: &[Backend] = match args.backend {
        BenchBackend::Cpu => &[Backend::Cpu],
        BenchBackend::Gpu => &[Backend::Gpu],
        BenchBackend::Both => &[Backend::Gpu, Backend::Cpu],
    };
    let mut rows = Vec::new();
    for &backend in backends {
        let hardware = Hardware::select(backend)?;
        let device = hardware.learn_device()?;
        let timer = Timer {
            last: Mutex::new(Instant::now()),
            epochs: Mutex::new(Vec::new()),
        };
        let tag = RunTag {
            modality: "bench".into(),
            fold: 0,
            trial: 0,
        };
        train_run(&spec, &labelled, &train, &validation, &device, &tag, &timer)?;
        let epochs = timer.epochs.into_inner().expect("not poisoned");
        let steady = &epochs[1..];
        let mean = steady.iter().sum::<f64>() / steady.len() as f64;
        rows.push((
            hardware.learn_name(),
            epochs[0],
            mean,
            train.len() as f64 / mean,
        ));
    }
    logging::suspend(|| {
        println!(
            "psa bench-train: {:?} ({}), {} training rows, batch {}, {} epochs per backend",
            args.model,
            describe(&spec.encoder),
            train.len(),
            args.batch_size,
            args.epochs
        );
        println!(
            "{:<44} {:>12} {:>12} {:>12}",
            "backend", "warm-up s", "s/epoch", "samples/s"
        );
        for (name, warm, mean, rate) in &rows {
            println!("{name:<44} {warm:>12.2} {mean:>12.3} {rate:>12.0}");
        }
        if let [gpu, cpu] = &rows[..] {
            println!("GPU vs CPU: {:.2}× the samples/s", gpu.3 / cpu.3);
        }
    });
    Ok(())
}

fn describe(encoder: &EncoderSpec) -> String {
    match encoder {
        EncoderSpec::Mlp { hidden, .. } => format!("MLP {hidden:?}"),
        EncoderSpec::Cnn { channels, .. } => format!("CNN {channels:?}"),
    }
}

/// Features, class per row and T: Gaussian rows with 12 random labels for the MLPs; the
/// synthetic images for the CNN.
fn data(args: &BenchTrainArgs) -> (Features, Vec<usize>, usize) {
    let n = (args.n as f64 * 1.1).ceil() as usize;
    match args.model {
        BenchModel::Cnn => {
            let images = generate_images(&ImageConfig {
                n_per_group: n.div_ceil(12),
                ..ImageConfig::default()
            });
            let m = images.modality1;
            let labels: Vec<String> = m.labels.iter().map(i64::to_string).collect();
            let classes = Classes::from_labels(&labels);
            let class_of_row = classes.indices(&labels).expect("labels are the classes");
            (
                Features::from_images(m.x.view()),
                class_of_row,
                classes.len(),
            )
        }
        BenchModel::Mlp | BenchModel::Citeseq => {
            let d = if args.model == BenchModel::Mlp {
                50
            } else {
                2000
            };
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
            let values: Vec<f64> = (0..n * d)
                .map(|_| StandardNormal.sample(&mut rng))
                .collect();
            let x = ndarray::Array2::from_shape_vec((n, d), values).expect("n × d values");
            let class_of_row = (0..n).map(|i| i % 12).collect();
            (Features::from_matrix(x.view()), class_of_row, 12)
        }
    }
}

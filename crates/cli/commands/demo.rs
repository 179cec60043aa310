//! `psa demo`: the whole method on a built-in synthetic data set, with no files.
//!
//! It draws the paper's synthetic images (Sec. 6.1: two objects at latent positions `z`,
//! circles in modality 1, squares at a transformation of `z` in modality 2, 12 groups of
//! do-interventions), trains one propensity classifier per modality with K-fold cross-fitting,
//! matches the out-of-sample scores with OT, SNN and random, and prints trace (also as a
//! multiple of random), FOSCTTM and latent MSE — what psa does and what good looks like.
//!
//! The default is sized to finish in minutes on a laptop CPU; `--full` is the paper's size.

use std::time::Instant;

use anyhow::Result;
use clap::Args;
use psa_core::metrics::{GroundTruth, evaluate};
use psa_core::synthetic::images::{ImageConfig, PairedImages, generate_images};
use psa_core::synthetic::tabular::{TabularConfig, generate_tabular};
use psa_core::{Method, Metric, Problem, ScoresKind};
use psa_io::{GroupSummary, Metrics};
use psa_learn::{Classes, CrossFitConfig, CrossFitted, Features, Quality};

use crate::classify::{self, Modality, ModelArgs, PresetArg};
use crate::commands::matching::solve_groups;
use crate::flags::{HardwareArgs, SeedArg, SinkhornArgs};
use crate::hardware::Hardware;
use crate::logging;

mod prediction;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The paper's size: 1700 units per group, its CNN (channels 32…512), 5 folds, up to 100
    /// epochs. Takes hours on a CPU; meant for a GPU.
    #[arg(long)]
    pub full: bool,
    /// Use the tabular analogue (an MLP on 50 and 30 features) instead of images.
    #[arg(long)]
    pub tabular: bool,
    /// Units per group (each measured once in each modality) [default: 600 images, 120
    /// tabular; --full 1700].
    #[arg(long, value_parser = clap::value_parser!(u64).range(4..))]
    pub n_per_group: Option<u64>,
    /// Cross-fitting folds [default: 2; --full 5].
    #[arg(long, value_parser = clap::value_parser!(u64).range(2..))]
    pub folds: Option<u64>,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub sinkhorn: SinkhornArgs,
    #[command(flatten)]
    pub seed: SeedArg,
    #[command(flatten)]
    pub hardware: HardwareArgs,
    /// Also write what was matched here, ready for `psa match --scores1 …`: the cross-fitted
    /// logits (scores{1,2}.npy), labels, ids (integers), latents, and features1.npy (the
    /// modality-1 latents the demo's FOSCTTM uses).
    #[arg(long, value_name = "DIR")]
    pub write_data: Option<std::path::PathBuf>,
    /// Replace the --write-data DIR even if it holds files psa did not write (they are deleted).
    #[arg(long, requires = "write_data")]
    pub force: bool,
}

/// The demo's classifier when no flag says otherwise.
///
/// psa's default classifier (on images, an MLP 512-256 on the pixels rather than a CNN: at
/// these sizes on a CPU its scores carry more of the latent positions than our CNNs', and it
/// trains in a minute; benches/RESULTS.md), with a shorter budget so the demo stays within
/// two minutes on a 2-core CPU: at most 40 epochs, patience 8, batch 128 on images. A CNN
/// (`--preset images`, `--conv-channels`) trains at the settings the CNN demo used: lr 3e-3,
/// batch 64, 12 epochs. `--full` is the paper's settings at the paper's size.
fn demo_defaults(args: &mut DemoArgs) {
    let m = &mut args.model;
    let custom_encoder = m.model_spec.is_some()
        || m.preset.is_some()
        || m.hidden.is_some()
        || m.conv_channels.is_some();
    if args.full {
        if !custom_encoder {
            m.preset = Some(PresetArg::Paper);
        }
        return;
    }
    let cnn = m.conv_channels.is_some() || m.preset == Some(PresetArg::Images);
    if cnn && !args.tabular {
        m.lr.get_or_insert(3e-3);
        m.batch_size.get_or_insert(64);
        m.epochs.get_or_insert(12);
        m.patience.get_or_insert(5);
        return;
    }
    if !args.tabular {
        m.batch_size.get_or_insert(128);
    }
    m.epochs.get_or_insert(40);
    m.patience.get_or_insert(8);
}

/// The demo's Sinkhorn tolerance: looser than `psa match`'s 1e-6 so its matching takes seconds;
/// the metrics do not change in their reported digits.
pub const DEMO_TOL: f64 = 1e-4;

pub fn run(mut args: DemoArgs) -> Result<()> {
    demo_defaults(&mut args);
    let n_per_group = args.n_per_group.unwrap_or(match (args.full, args.tabular) {
        (true, _) => 1700,
        (false, true) => 120,
        (false, false) => 600,
    }) as usize;
    let folds = args.folds.unwrap_or(if args.full { 5 } else { 2 }) as usize;
    let started = Instant::now();
    // Locked and checked now, not after the training: a busy or foreign DIR fails at once.
    let data_out = args
        .write_data
        .as_deref()
        .map(|dir| psa_io::OutputDir::create(dir, args.force))
        .transpose()?;
    let (m1, m2, ids, latents, description) = synthetic(&args, n_per_group);
    tracing::info!("synthetic data: {description}");

    let hardware = Hardware::select(args.hardware.backend)?;
    let device = hardware.learn_device()?;
    let classes = classify::classes_of(&m1, &m2, false)?;
    let cv = CrossFitConfig {
        folds,
        ..CrossFitConfig::default()
    };
    let train_start = Instant::now();
    let mut fitted: Vec<CrossFitted> = Vec::new();
    for m in [&m1, &m2] {
        let spec = args.model.spec(m.features.shape(), args.seed.seed)?;
        fitted.push(classify::cross_fit_modality(
            m,
            &classes,
            &spec,
            cv.clone(),
            &device,
        )?);
    }
    let train_seconds = train_start.elapsed().as_secs_f64();
    if let Some(out) = data_out {
        write_data(out, [&m1, &m2], &fitted, &ids, &latents)?;
    }

    let problem = Problem::from_scores(
        fitted[0].logits.view(),
        &m1.labels,
        fitted[1].logits.view(),
        &m2.labels,
        ScoresKind::Logits,
        Metric::Euclidean,
    )?;
    let truth = GroundTruth {
        ids: Some(ids),
        // FOSCTTM in the latent space: how close the projected partner lands to the true one.
        features1: Some(latents.0.clone()),
        latents: Some(latents),
    };
    let matcher = hardware.matcher(args.hardware.gpu_cost)?;
    let solve = args.sinkhorn.solve_options(DEMO_TOL);
    let mut rows = Vec::new();
    let mut couplings = Vec::new();
    for method in [Method::Ot, Method::Snn { k: 1 }, Method::Random] {
        let start = Instant::now();
        let solved = solve_groups(matcher.as_ref(), problem.clone(), method, &solve)?;
        let metrics = evaluate(solved.as_ref(), &truth)?;
        let groups = psa_io::group_summaries(solved.as_ref(), &metrics, &[]);
        rows.push((method, groups, start.elapsed().as_secs_f64()));
        if method != (Method::Snn { k: 1 }) {
            couplings.push((method, solved));
        }
    }
    let header = Header {
        description,
        classes: &classes,
        quality: fitted.iter().map(|f| f.out_of_sample).collect(),
        folds,
        train_seconds,
        learn_backend: hardware.learn_name(),
        match_backend: matcher.name().to_string(),
        epsilon: solve.epsilon,
        tol: solve.tol,
        total_seconds: started.elapsed().as_secs_f64(),
    };
    let truth_ids = truth.ids.as_ref().expect("the demo knows its units");
    let latents1 = &truth
        .latents
        .as_ref()
        .expect("the demo knows its latents")
        .0;
    let predictions = prediction::rows(
        &args,
        &couplings,
        &m2.features,
        latents1,
        truth_ids,
        &device,
    )?;
    logging::suspend(|| {
        print_table(&header, &rows);
        prediction::print(&predictions);
        println!("total {:.0} s", started.elapsed().as_secs_f64());
    });
    Ok(())
}

type Ground = (Vec<String>, Vec<String>);
type Latents = (ndarray::Array2<f64>, ndarray::Array2<f64>);

/// The two modalities, ids, latents and a one-line description of the data.
fn synthetic(args: &DemoArgs, n_per_group: usize) -> (Modality, Modality, Ground, Latents, String) {
    let as_modality = |name: &str, features: Features, labels: &[i64]| Modality {
        name: name.to_string(),
        source: format!("synthetic modality {name}").into(),
        features,
        labels: labels.iter().map(i64::to_string).collect(),
    };
    if args.tabular {
        let config = TabularConfig {
            n_per_group,
            seed: args.seed.seed,
            ..TabularConfig::default()
        };
        let data = generate_tabular(&config);
        let (a, b) = (&data.modality1, &data.modality2);
        let description = format!(
            "tabular, {} groups × {n_per_group} units, {} and {} features",
            data.interventions.len(),
            a.x.ncols(),
            b.x.ncols()
        );
        let f = |x: &ndarray::Array2<f32>| Features::from_matrix(x.mapv(f64::from).view());
        (
            as_modality("1", f(&a.x), &a.labels),
            as_modality("2", f(&b.x), &b.labels),
            (a.ids.clone(), b.ids.clone()),
            (a.latents.clone(), b.latents.clone()),
            description,
        )
    } else {
        let config = ImageConfig {
            n_per_group,
            seed: args.seed.seed,
            ..ImageConfig::default()
        };
        let data: PairedImages = generate_images(&config);
        let (a, b) = (&data.modality1, &data.modality2);
        let description = format!(
            "images, {} groups × {n_per_group} units, {}×{} RGB (circles vs squares)",
            data.interventions.len(),
            config.size,
            config.size
        );
        (
            as_modality("1", Features::from_images(a.x.view()), &a.labels),
            as_modality("2", Features::from_images(b.x.view()), &b.labels),
            (a.ids.clone(), b.ids.clone()),
            (a.latents.clone(), b.latents.clone()),
            description,
        )
    }
}

struct Header<'a> {
    description: String,
    classes: &'a Classes,
    quality: Vec<Quality>,
    folds: usize,
    train_seconds: f64,
    learn_backend: String,
    match_backend: String,
    epsilon: f64,
    tol: f64,
    total_seconds: f64,
}

fn print_table(h: &Header<'_>, rows: &[(Method, Vec<GroupSummary>, f64)]) {
    println!("psa demo: {}", h.description);
    println!(
        "classifiers: {}-fold cross-fitted on {} ({:.0} s); log T = {:.3}",
        h.folds,
        h.learn_backend,
        h.train_seconds,
        (h.classes.len() as f64).ln()
    );
    for (k, q) in h.quality.iter().enumerate() {
        println!(
            "  modality {}: out-of-sample cross-entropy {:.3} (label-frequency baseline {:.3}), \
             accuracy {:.3}",
            k + 1,
            q.cross_entropy,
            q.baseline_cross_entropy,
            q.accuracy
        );
    }
    println!(
        "matching: OT λ = {}, tol {:e}, on the {} backend",
        h.epsilon, h.tol, h.match_backend
    );
    println!(
        "{:<8} {:>10} {:>10} {:>9} {:>11} {:>9} {:>9}",
        "method", "trace", "× random", "FOSCTTM", "latent MSE", "pair MSE", "seconds"
    );
    for (method, groups, seconds) in rows {
        let mean = Metrics::mean_over(groups);
        let trace = mean.trace.unwrap_or(f64::NAN);
        let random = mean.random_trace.unwrap_or(f64::NAN);
        println!(
            "{:<8} {:>10.5} {:>10.2} {:>9.4} {:>11.4} {:>9.4} {:>9.2}",
            method.name(),
            trace,
            trace / random,
            mean.foscttm.unwrap_or(f64::NAN),
            mean.latent_mse.unwrap_or(f64::NAN),
            mean.latent_pair_mse.unwrap_or(f64::NAN),
            seconds
        );
    }
    println!(
        "trace: mean P(true partner | i), higher is better; FOSCTTM (latent space): 0 perfect, 0.5 random;\n\
         latent MSE: of the barycentric projection Σ_j P(j|i) z_j (random: the group mean); \
         pair MSE: of a partner drawn from P(·|i) (random: the paper's baseline); both lower is better"
    );
    println!("matched in {:.0} s", h.total_seconds);
}

/// What the demo matched, as `.npy` files `psa match` reads.
fn write_data(
    out: psa_io::OutputDir,
    modalities: [&Modality; 2],
    fitted: &[CrossFitted],
    ids: &Ground,
    latents: &Latents,
) -> Result<()> {
    let column = |values: &[String], prefix: &str| -> Result<ndarray::Array2<i64>> {
        let v = values
            .iter()
            .map(|s| s.trim_start_matches(prefix).parse::<i64>())
            .collect::<Result<Vec<i64>, _>>()?;
        Ok(ndarray::Array2::from_shape_vec((v.len(), 1), v)?)
    };
    let ids = [&ids.0, &ids.1];
    let latents = [&latents.0, &latents.1];
    for e in 0..2 {
        let name = |stem: &str| out.path(format!("{stem}{}.npy", e + 1));
        psa_io::write_npy_f64(&name("scores"), fitted[e].logits.view())?;
        psa_io::write_npy_i64(&name("labels"), column(&modalities[e].labels, "")?.view())?;
        psa_io::write_npy_i64(&name("ids"), column(ids[e], "u")?.view())?;
        psa_io::write_npy_f64(&name("latents"), latents[e].view())?;
    }
    psa_io::write_npy_f64(&out.path("features1.npy"), latents[0].view())?;
    let dir = out.final_dir().to_path_buf();
    out.commit()?;
    tracing::info!("wrote the demo's data to {}", dir.display());
    Ok(())
}

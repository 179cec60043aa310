//! Flag groups that several subcommands share, each declared once and flattened where used, so
//! `--epsilon` means the same thing (and has the same help) in `match`, `demo` and `bench`.
//!
//! Each group carries its `--help` heading; rare flags are hidden from `-h` and shown by `--help`.
//! The groups turn into the libraries' configuration (`SolveOptions`, `OutputRequest`, …); the
//! binary adds nothing else.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use ndarray::Array2;
use psa_core::{EpsilonMode, Method, Metric, ScoresKind, SolveOptions};
use psa_io::{H5adMatrix, OutputRequest};
use serde::Serialize;

/// Heading of the inputs every run needs.
pub const INPUTS: &str = "Inputs";
/// Heading of the `.h5ad`-specific flags.
pub const ANNDATA: &str = "AnnData";
/// Heading of the matching flags.
pub const TRANSPORT: &str = "Transport";
/// Heading of the ground-truth flags.
pub const EVALUATION: &str = "Evaluation";
/// Heading of the output flags.
pub const OUTPUTS: &str = "Outputs";
/// Heading of the hardware flags.
pub const HARDWARE: &str = "Hardware";

/// How rows are paired within a group (METHOD.md step 3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MethodArg {
    /// Entropic optimal transport (log-domain Sinkhorn).
    #[default]
    Ot,
    /// Shared nearest neighbours in propensity space (--snn-k).
    Snn,
    /// Uniform coupling within each group (the baseline).
    Random,
}

/// Cost between transformed scores.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricArg {
    /// ‖h_i − h_j‖₂, as in the paper.
    #[default]
    Euclidean,
    /// ‖h_i − h_j‖₂².
    Sqeuclidean,
}

impl From<MetricArg> for Metric {
    fn from(m: MetricArg) -> Self {
        match m {
            MetricArg::Euclidean => Metric::Euclidean,
            MetricArg::Sqeuclidean => Metric::SqEuclidean,
        }
    }
}

/// What score files hold.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ScoresKindArg {
    /// Unnormalised logits (any per-row offset).
    #[default]
    Logits,
    /// Probabilities (clamped to [1e-6, 1] before the log).
    Probs,
}

impl From<ScoresKindArg> for ScoresKind {
    fn from(k: ScoresKindArg) -> Self {
        match k {
            ScoresKindArg::Logits => ScoresKind::Logits,
            ScoresKindArg::Probs => ScoresKind::Probs,
        }
    }
}

/// Matching: the method, and the entropic OT solve.
#[derive(Clone, Debug, Args, Serialize)]
#[command(next_help_heading = TRANSPORT)]
pub struct TransportArgs {
    /// Matching method.
    #[arg(long, value_enum, default_value_t = MethodArg::Ot)]
    pub method: MethodArg,
    /// Neighbours per modality for --method snn (the paper uses 1).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..), allow_negative_numbers = true)]
    pub snn_k: u64,
    #[command(flatten)]
    #[serde(flatten)]
    pub sinkhorn: SinkhornArgs,
}

impl TransportArgs {
    pub fn method(&self) -> Method {
        match self.method {
            MethodArg::Ot => Method::Ot,
            MethodArg::Snn => Method::Snn {
                k: self.snn_k as usize,
            },
            MethodArg::Random => Method::Random,
        }
    }
}

/// The entropic OT solve (`SolveOptions`): `psa match`, `psa demo` and `psa bench`.
#[derive(Clone, Debug, Args, Serialize)]
#[command(next_help_heading = TRANSPORT)]
pub struct SinkhornArgs {
    /// Entropic regularisation λ on the raw cost (the paper uses 0.05); with
    /// --epsilon-relative, a fraction of each group's mean cost.
    #[arg(long, default_value_t = 0.05, value_parser = positive_f64, allow_negative_numbers = true)]
    pub epsilon: f64,
    /// Read --epsilon as a fraction of each group's mean cost (as OTT-JAX does).
    #[arg(long)]
    pub epsilon_relative: bool,
    /// Stop when the L1 marginal error of the coupling falls below this [default: 1e-6; psa
    /// demo: 1e-4].
    #[arg(long, value_parser = positive_f64, allow_negative_numbers = true)]
    pub tol: Option<f64>,
    /// Give up after this many Sinkhorn iterations (ε-scaling stages included).
    #[arg(long, value_name = "N", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..), allow_negative_numbers = true)]
    pub max_iter: u64,
    /// Turn off ε-scaling (same result, usually many more iterations).
    #[arg(long, hide_short_help = true)]
    pub no_eps_scaling: bool,
    /// Unbalanced OT: relax the marginals with KL strength τ (for groups whose composition
    /// differs between modalities).
    #[arg(long, value_name = "TAU", value_parser = positive_f64, allow_negative_numbers = true)]
    pub unbalanced: Option<f64>,
    /// Cost between transformed scores.
    #[arg(long, value_enum, default_value_t = MetricArg::Euclidean, hide_short_help = true)]
    pub metric: MetricArg,
    /// Plain Sinkhorn iterations, without the safeguarded acceleration (CPU: Anderson mixing;
    /// GPU: over-relaxation; same fixed point, several times fewer iterations).
    #[arg(long, hide_short_help = true)]
    pub no_acceleration: bool,
    /// CPU: arithmetic of the LSE passes. f32 hands over to f64 before the tolerance, so the
    /// result and its reported error are f64's.
    #[arg(long, value_enum, default_value_t = PrecisionArg::F32, hide_short_help = true)]
    pub precision: PrecisionArg,
    /// CPU: memory (MiB) the groups' cost matrices may take when kept between passes; groups
    /// that do not fit recompute their costs every pass. 0 never keeps them.
    #[arg(long, value_name = "MIB", default_value_t = psa_core::matcher::DEFAULT_COST_BUDGET >> 20, hide_short_help = true)]
    pub cost_budget: u64,
}

/// Arithmetic of the CPU matcher's LSE passes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PrecisionArg {
    /// f64 throughout (the reference).
    F64,
    /// f32 passes while the error is far above f32's resolution, then f64 to the tolerance.
    #[default]
    F32,
}

impl From<PrecisionArg> for psa_core::matcher::Precision {
    fn from(p: PrecisionArg) -> Self {
        match p {
            PrecisionArg::F64 => Self::F64,
            PrecisionArg::F32 => Self::F32,
        }
    }
}

impl SinkhornArgs {
    /// The solve options, with `default_tol` where `--tol` is not given.
    pub fn solve_options(&self, default_tol: f64) -> SolveOptions {
        SolveOptions {
            epsilon: self.epsilon,
            epsilon_mode: if self.epsilon_relative {
                EpsilonMode::Relative
            } else {
                EpsilonMode::Absolute
            },
            tol: self.tol.unwrap_or(default_tol),
            max_iter: self.max_iter as usize,
            eps_scaling: !self.no_eps_scaling,
            unbalanced: self.unbalanced,
            acceleration: !self.no_acceleration,
            precision: self.precision.into(),
            cost_budget: self.cost_budget << 20,
        }
    }
}

/// Where the work runs.
#[derive(Clone, Debug, Args, Serialize)]
#[command(next_help_heading = HARDWARE)]
pub struct HardwareArgs {
    /// Where to train and solve: the CPU (burn-ndarray, the f64 reference matcher), a GPU
    /// (burn-wgpu and the WGSL kernels, on one device), or a hardware GPU when present.
    #[arg(long, value_enum, default_value_t = crate::hardware::Backend::Auto)]
    pub backend: crate::hardware::Backend,
    /// GPU only: how the kernels get their costs (recomputed from the scores).
    #[arg(long, value_enum, default_value_t = crate::hardware::GpuCost::Auto, hide_short_help = true)]
    pub gpu_cost: crate::hardware::GpuCost,
}

/// Which matrix of an `.h5ad` holds the features (`psa train`, `psa score`; both modalities of
/// `psa match`).
#[derive(Clone, Debug, Default, Args, Serialize)]
#[command(next_help_heading = ANNDATA)]
pub struct H5adChoice {
    /// .h5ad: read this layer instead of X.
    #[arg(long, value_name = "NAME", conflicts_with = "obsm")]
    pub layer: Option<String>,
    /// .h5ad: read this obsm embedding (e.g. X_pca) instead of X.
    #[arg(long, value_name = "NAME")]
    pub obsm: Option<String>,
}

impl H5adChoice {
    pub fn matrix(&self) -> H5adMatrix {
        match (&self.layer, &self.obsm) {
            (Some(layer), _) => H5adMatrix::Layer(layer.clone()),
            (None, Some(obsm)) => H5adMatrix::Obsm(obsm.clone()),
            (None, None) => H5adMatrix::X,
        }
    }

    pub fn is_set(&self) -> bool {
        self.layer.is_some() || self.obsm.is_some()
    }
}

/// `.h5ad` choices of a two-modality command: one for both, or one per modality.
#[derive(Clone, Debug, Default, Args, Serialize)]
#[command(next_help_heading = ANNDATA)]
pub struct AnnDataArgs {
    #[command(flatten)]
    pub both: H5adChoice,
    /// Layer of X1.h5ad only.
    #[arg(long, value_name = "NAME", hide_short_help = true)]
    pub layer1: Option<String>,
    /// Layer of X2.h5ad only.
    #[arg(long, value_name = "NAME", hide_short_help = true)]
    pub layer2: Option<String>,
    /// obsm embedding of X1.h5ad only.
    #[arg(long, value_name = "NAME", hide_short_help = true)]
    pub obsm1: Option<String>,
    /// obsm embedding of X2.h5ad only.
    #[arg(long, value_name = "NAME", hide_short_help = true)]
    pub obsm2: Option<String>,
}

impl AnnDataArgs {
    /// The choice for modality 1 or 2: its own flags first, then the shared ones.
    pub fn modality(&self, modality: u8) -> H5adChoice {
        let (layer, obsm) = match modality {
            1 => (&self.layer1, &self.obsm1),
            _ => (&self.layer2, &self.obsm2),
        };
        if layer.is_some() || obsm.is_some() {
            H5adChoice {
                layer: layer.clone(),
                obsm: obsm.clone(),
            }
        } else {
            self.both.clone()
        }
    }
}

/// Ground truth, used only to evaluate, never by the matcher.
#[derive(Clone, Debug, Default, Args, Serialize)]
#[command(next_help_heading = EVALUATION)]
pub struct EvaluationArgs {
    /// Unit ids of modality 1 (rows with equal ids in both modalities are the same unit;
    /// FILE, FILE:COLUMN, obs:COLUMN or obs_names); gives trace and FOSCTTM.
    #[arg(long, value_name = "U1", requires = "ids2")]
    pub ids1: Option<String>,
    /// Unit ids of modality 2.
    #[arg(long, value_name = "U2", requires = "ids1")]
    pub ids2: Option<String>,
    /// Modality-1 features for FOSCTTM (default: the transformed scores), n1 × d.
    #[arg(long, value_name = "X1", hide_short_help = true)]
    pub eval_features1: Option<PathBuf>,
    /// Modality-1 latents, for the latent MSE (synthetic data).
    #[arg(long, value_name = "Z1", requires = "latents2", hide_short_help = true)]
    pub latents1: Option<PathBuf>,
    /// Modality-2 latents.
    #[arg(long, value_name = "Z2", requires = "latents1", hide_short_help = true)]
    pub latents2: Option<PathBuf>,
}

/// What to write besides `summary.json` and the reloadable run state.
#[derive(Clone, Debug, Args, Serialize)]
#[command(next_help_heading = OUTPUTS)]
pub struct OutputArgs {
    /// Partners kept per row in topk_index.npy / topk_weight.npy.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..), allow_negative_numbers = true)]
    pub topk: u64,
    /// Keep only the fewest partners holding this share of each row's mass (at most --topk).
    #[arg(long, value_name = "SHARE", value_parser = unit_interval, allow_negative_numbers = true)]
    pub mass: Option<f64>,
    /// Write coupling/<label>.npy (dense P(j|i), float64) for groups with n1·n2 ≤ this.
    #[arg(
        long,
        value_name = "PAIRS",
        default_value_t = 4_000_000,
        hide_short_help = true
    )]
    pub dense_max: u64,
    /// Modality-2 matrix Y (n2 × d) to project: writes projection.npy = Σ_j P(j|i) Y_j.
    #[arg(long, value_name = "Y")]
    pub project2: Option<PathBuf>,
    /// Draw this many pseudo-partners j ~ P(·|i) per row into pseudo_pairs.npy (seeded by
    /// --seed).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub pseudo_pairs: u64,
}

impl OutputArgs {
    /// The library's request, with the projection matrix already read.
    pub fn request(&self, project2: Option<Array2<f64>>, seed: u64) -> OutputRequest {
        OutputRequest {
            topk: self.topk as usize,
            mass: self.mass,
            dense_max: self.dense_max,
            project2,
            pseudo_pairs: self.pseudo_pairs as usize,
            seed,
            ..OutputRequest::default()
        }
    }
}

/// `--seed`: one flag for every source of randomness of a command.
#[derive(Clone, Copy, Debug, Default, Args, Serialize)]
pub struct SeedArg {
    /// Seed for everything random in the run (classifier initialisation, folds and batches,
    /// pseudo-pair draws, synthetic data).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// A number that must be finite and positive.
pub fn positive_f64(text: &str) -> Result<f64, String> {
    let v: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(format!("must be a finite number > 0, got {text}"))
    }
}

fn unit_interval(text: &str) -> Result<f64, String> {
    let v = positive_f64(text)?;
    if v <= 1.0 {
        Ok(v)
    } else {
        Err(format!("must be in (0, 1], got {text}"))
    }
}

/// The command-line flag of a library option field (`max_iter` → `--max-iter`): library
/// errors name fields; the binary reports flags.
pub fn flag_of_field(field: &str) -> String {
    let field = field.trim_start_matches('-');
    format!("--{}", field.replace('_', "-"))
}

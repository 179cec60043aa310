//! One group's Sinkhorn state: potentials, the LSE passes in each precision, and the measured
//! error of the current plan.

use std::sync::Arc;

use crate::fastexp::Real;
use crate::{Group, Metric, Precision};

use super::anderson::Anderson;
use super::kernel::{Columns, CostRows, LANES, soft_min_rows, soft_min_split, soft_min_stored};

/// Where a group's costs live, chosen per group within `SolveOptions::cost_budget`
/// ([`super::cost_storage`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CostStorage {
    /// Recomputed from the scores at every pass.
    Streamed,
    /// Materialised in the precision of the first passes (f64; or f32 with the f64 finish
    /// streamed).
    Stored,
    /// f32 solves: materialised as an f32 pair `hi + lo`; the f32 passes read `hi`, the f64
    /// finish reads both.
    Split,
}

impl CostStorage {
    /// Bytes per pair and per orientation.
    pub fn bytes_per_cost(self, precision: Precision) -> u64 {
        match (self, precision) {
            (CostStorage::Streamed, _) => 0,
            (CostStorage::Stored, Precision::F32) => 4,
            (CostStorage::Stored, Precision::F64) | (CostStorage::Split, _) => 8,
        }
    }
}

/// How one LSE pass gets its costs, in precision `R`.
enum Pass<R> {
    /// Rows `x` (row-major) against the other side's points, costs recomputed per pair.
    Streamed { x: Vec<R>, y: Columns<R> },
    /// Materialised costs.
    Stored(Arc<CostRows<R>>),
    /// Materialised costs as `hi + lo` (`hi` shared with the f32 pass).
    Split {
        hi: Arc<CostRows<f32>>,
        lo: CostRows<f32>,
    },
}

impl<R: Real> Pass<R> {
    fn streamed(x: &[f64], y: &[f64], dim: usize) -> Self {
        Pass::Streamed {
            x: x.iter().map(|&v| R::from_f64(v)).collect(),
            y: Columns::new(y, y.len() / dim, dim),
        }
    }

    fn lse(&self, h: &[R], inv_eps: R, metric: Metric, out: &mut [f64]) {
        match self {
            Pass::Streamed { x, y } => soft_min_rows(x, y, h, inv_eps, metric, out),
            Pass::Stored(costs) => soft_min_stored(costs, h, inv_eps, out),
            Pass::Split { hi, lo } => soft_min_split(hi, lo, h, inv_eps, out),
        }
    }
}

/// Both LSE passes of a group in one precision, with their weight buffers.
struct Passes<R> {
    /// Modality-1 rows against modality-2 points (gives the f-update).
    rows: Pass<R>,
    /// Modality-2 rows against modality-1 points (gives the g-update).
    cols: Pass<R>,
    /// `g/λ − log n2 − max`, padded with −∞.
    h2: Vec<R>,
    /// `f/λ − log n1 − max`, padded with −∞.
    h1: Vec<R>,
}

impl<R: Real> Passes<R> {
    fn new(rows: Pass<R>, cols: Pass<R>, n1_padded: usize, n2_padded: usize) -> Self {
        Passes {
            rows,
            cols,
            h2: vec![R::NEG_INFINITY; n2_padded],
            h1: vec![R::NEG_INFINITY; n1_padded],
        }
    }
}

/// The passes of a group: f64 always, f32 for `Precision::F32`, costs as `storage` says.
fn build_passes(
    group: &Group,
    metric: Metric,
    precision: Precision,
    storage: CostStorage,
) -> (Passes<f64>, Option<Passes<f32>>) {
    let (n1, n2, dim) = (group.n1(), group.n2(), group.dim());
    let x1 = group.x1.as_slice().expect("validated: standard layout");
    let x2 = group.x2.as_slice().expect("validated: standard layout");
    let (p1, p2) = (n1.div_ceil(LANES) * LANES, n2.div_ceil(LANES) * LANES);
    let streamed64 = || {
        Passes::new(
            Pass::streamed(x1, x2, dim),
            Pass::streamed(x2, x1, dim),
            p1,
            p2,
        )
    };
    let streamed32 = || {
        Passes::new(
            Pass::streamed(x1, x2, dim),
            Pass::streamed(x2, x1, dim),
            p1,
            p2,
        )
    };
    if storage == CostStorage::Streamed {
        let f32 = (precision == Precision::F32).then(streamed32);
        return (streamed64(), f32);
    }
    let cols1 = Columns::<f64>::new(x1, n1, dim);
    let cols2 = Columns::<f64>::new(x2, n2, dim);
    match (precision, storage) {
        (Precision::F64, _) => {
            let rows = Pass::Stored(Arc::new(CostRows::new(x1, &cols2, metric)));
            let cols = Pass::Stored(Arc::new(CostRows::new(x2, &cols1, metric)));
            (Passes::new(rows, cols, p1, p2), None)
        }
        (Precision::F32, CostStorage::Stored) => {
            let rows = Pass::Stored(Arc::new(CostRows::new(x1, &cols2, metric)));
            let cols = Pass::Stored(Arc::new(CostRows::new(x2, &cols1, metric)));
            (streamed64(), Some(Passes::new(rows, cols, p1, p2)))
        }
        (Precision::F32, _) => {
            let (hi1, lo1) = CostRows::split(x1, &cols2, metric);
            let (hi2, lo2) = CostRows::split(x2, &cols1, metric);
            let (hi1, hi2) = (Arc::new(hi1), Arc::new(hi2));
            let f64_passes = Passes::new(
                Pass::Split {
                    hi: hi1.clone(),
                    lo: lo1,
                },
                Pass::Split {
                    hi: hi2.clone(),
                    lo: lo2,
                },
                p1,
                p2,
            );
            let f32_passes = Passes::new(Pass::Stored(hi1), Pass::Stored(hi2), p1, p2);
            (f64_passes, Some(f32_passes))
        }
    }
}

/// `out = LSE over the other side`, with `h_c = p_c/λ − log n − m` shifted by its max `m` (so
/// that an f32 pass never overflows) and `m` added back in f64.
fn lse_pass<R: Real>(
    pass: &Pass<R>,
    h: &mut [R],
    potential: &[f64],
    eps: f64,
    metric: Metric,
    out: &mut [f64],
) {
    let log_weight = -(potential.len() as f64).ln();
    let max = potential.iter().fold(f64::NEG_INFINITY, |m, &p| m.max(p)) / eps;
    for (hc, p) in h.iter_mut().zip(potential) {
        *hc = R::from_f64(p / eps - max + log_weight);
    }
    pass.lse(h, R::from_f64(1.0 / eps), metric, out);
    for o in out.iter_mut() {
        *o += max;
    }
}

/// Potentials and the buffers one iteration needs, allocated once per group.
pub(super) struct SinkhornState {
    metric: Metric,
    tau: Option<f64>,
    /// The λ of the current stage.
    eps: f64,
    pub f: Vec<f64>,
    pub g: Vec<f64>,
    lse1: Vec<f64>,
    lse2: Vec<f64>,
    /// Plain image of f (the f-update's block maximiser), for the accelerator.
    f_hat: Vec<f64>,
    /// Error of the current plan's columns (∞ until a g-update at this λ measured it).
    column_error: f64,
    f64_passes: Passes<f64>,
    f32_passes: Option<Passes<f32>>,
    /// The f32 passes are in use.
    in_f32: bool,
}

impl SinkhornState {
    pub fn new(
        group: &Group,
        metric: Metric,
        tau: Option<f64>,
        precision: Precision,
        storage: CostStorage,
    ) -> Self {
        let (n1, n2) = (group.n1(), group.n2());
        let (f64_passes, f32_passes) = build_passes(group, metric, precision, storage);
        SinkhornState {
            metric,
            tau,
            eps: 1.0,
            f: vec![0.0; n1],
            g: vec![0.0; n2],
            lse1: vec![0.0; n1],
            lse2: vec![0.0; n2],
            f_hat: vec![0.0; n1],
            column_error: f64::INFINITY,
            f64_passes,
            in_f32: f32_passes.is_some(),
            f32_passes,
        }
    }

    pub fn begin_stage(&mut self, eps: f64) {
        self.eps = eps;
        self.column_error = f64::INFINITY;
    }

    /// Chooses the passes' precision (f32 only where built). Leaving f32 re-measures the
    /// columns in f64, so the next error is an f64 measurement.
    pub fn use_f32(&mut self, f32: bool) {
        let f32 = f32 && self.f32_passes.is_some();
        if self.in_f32 && !f32 {
            self.in_f32 = false;
            if self.column_error.is_finite() {
                self.measure_columns();
            }
        }
        self.in_f32 = f32;
    }

    pub fn in_f32(&self) -> bool {
        self.in_f32
    }

    fn rows_lse(&mut self) {
        let (eps, metric) = (self.eps, self.metric);
        match (&mut self.f32_passes, self.in_f32) {
            (Some(p), true) => lse_pass(&p.rows, &mut p.h2, &self.g, eps, metric, &mut self.lse1),
            _ => {
                let p = &mut self.f64_passes;
                lse_pass(&p.rows, &mut p.h2, &self.g, eps, metric, &mut self.lse1)
            }
        }
    }

    fn columns_lse(&mut self) {
        let (eps, metric) = (self.eps, self.metric);
        match (&mut self.f32_passes, self.in_f32) {
            (Some(p), true) => lse_pass(&p.cols, &mut p.h1, &self.f, eps, metric, &mut self.lse2),
            _ => {
                let p = &mut self.f64_passes;
                lse_pass(&p.cols, &mut p.h1, &self.f, eps, metric, &mut self.lse2)
            }
        }
    }

    /// The LSE over every row at the current g, and the error of the current plan: the
    /// larger of its row and column errors (see `SolveOptions::tol`).
    pub fn measure_rows(&mut self) -> f64 {
        self.rows_lse();
        block_error(&self.f, &self.lse1, self.eps, self.tau).max(self.column_error)
    }

    /// The LSE over every column at the current f, and the current plan's column error.
    pub fn measure_columns(&mut self) {
        self.columns_lse();
        self.column_error = block_error(&self.g, &self.lse2, self.eps, self.tau);
    }

    /// One iteration after [`Self::measure_rows`] found the current plan's error `error`:
    /// the f-update (plain, or Anderson-accelerated), then the exact g-update.
    pub fn step(&mut self, anderson: Option<&mut Anderson>, error: f64) {
        let rho = damping(self.eps, self.tau);
        for (target, l) in self.f_hat.iter_mut().zip(&self.lse1) {
            *target = -rho * self.eps * l;
        }
        match anderson {
            Some(anderson) => anderson.step(&mut self.f, &self.f_hat, error, self.eps),
            None => self.f.copy_from_slice(&self.f_hat),
        }
        self.columns_lse();
        for (g, l) in self.g.iter_mut().zip(&self.lse2) {
            *g = -rho * self.eps * l;
        }
        self.column_error = block_error(&self.g, &self.lse2, self.eps, self.tau);
    }
}

/// `ρ = τ/(τ + λ)`, the damping of KL-relaxed marginals (1 when balanced).
fn damping(eps: f64, tau: Option<f64>) -> f64 {
    tau.map_or(1.0, |tau| tau / (tau + eps))
}

/// The error of one side of the plan whose potential is `p`, given the LSE over the other
/// side. Balanced: that marginal's L1 error `Σ_i a_i |e^{p_i/λ + lse_i} − 1|` (the plan's
/// marginal is `a_i e^{p_i/λ + lse_i}`); unbalanced: the fixed-point residual
/// `max_i |p_i − p̂_i| / λ` with `p̂ = −ρ λ lse` the exact update.
fn block_error(p: &[f64], lse: &[f64], eps: f64, tau: Option<f64>) -> f64 {
    match tau {
        None => {
            p.iter()
                .zip(lse)
                .map(|(p, l)| (p / eps + l).exp_m1().abs())
                .sum::<f64>()
                / p.len() as f64
        }
        Some(_) => {
            let rho = damping(eps, tau);
            p.iter()
                .zip(lse)
                .map(|(p, l)| (p / eps + rho * l).abs())
                .fold(0.0, f64::max)
        }
    }
}

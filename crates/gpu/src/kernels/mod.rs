//! The WGSL kernels of METHOD.md steps 3 (Sinkhorn) and 4 (outputs of the coupling), one host
//! module per shader in `shaders/`: its typed `Params` (mirroring the WGSL uniform
//! field for field; `tests/shaders.rs` checks sizes and offsets with naga), its bind group
//! layout (created once per matcher) and its pipelines (created once per [`Specialisation`]
//! and cached).
//!
//! Every shader is loaded as `shaders/common.wgsl` followed by its own file ([`source`]), so
//! the structs and bindings both kernels use ([`GroupState`], scores, potentials) are written
//! once. The score dimension, the metric and the rows per invocation are WGSL `override`
//! constants rather than uniforms, so the driver sees constant trip counts: the per-row scores
//! stay in registers and the inner loops unroll, which a runtime bound would prevent.

pub mod coupling;
pub mod sinkhorn_lse;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use psa_core::Metric;

/// `shaders/common.wgsl`, prepended to every kernel.
pub const COMMON: &str = include_str!("../../../../shaders/common.wgsl");

/// The WGSL a kernel is compiled from: `common.wgsl`, then the kernel's own file.
pub fn source(own: &str) -> String {
    format!("{COMMON}\n{own}")
}

/// Largest number of score coordinates `T` the kernels hold per row (`MAX_DIM`).
pub const MAX_DIM: usize = 64;
/// Most rows one invocation of the LSE kernel holds (`MAX_ROWS`).
pub const MAX_ROWS: u32 = 8;

/// Mirrors `GroupState` in `common.wgsl`: a group's layout in the concatenated buffers and its
/// solver state, updated on the device by `control`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct GroupState {
    pub off1: u32,
    pub n1: u32,
    pub off2: u32,
    pub n2: u32,
    pub chunks1: u32,
    pub chunks2: u32,
    pub chunk_cols1: u32,
    pub chunk_cols2: u32,
    pub part1: u32,
    pub part2: u32,
    pub sched_off: u32,
    pub n_stages: u32,
    pub stage: u32,
    pub iterations: u32,
    pub max_iter: u32,
    pub is_active: u32,
    /// 1 once the error fell below `tol` at the target λ.
    pub converged: u32,
    /// Iterations at the target λ since the error last improved.
    pub stall: u32,
    /// 1 when the group stopped on the f32 plateau below `floor`, above `tol`.
    pub floored: u32,
    /// 1 when the group over-relaxes its updates (`SolveOptions::acceleration`).
    pub accel: u32,
    /// `κ = λ/(τ + λ) = 1 − ρ` of the current ε stage (0 when balanced): small where τ ≫ λ,
    /// so f32 keeps it to 6e-8 relative where `ρ` itself would lose the update's digits.
    pub kappa: f32,
    /// τ of the KL-relaxed marginals; 0 for balanced.
    pub tau: f32,
    /// Stopping tolerance of the last stage.
    pub tol: f32,
    /// Stopping tolerance of intermediate ε stages.
    pub stage_tol: f32,
    pub error: f32,
    /// Smallest error seen in the current stage.
    pub best: f32,
    /// Error below which a stalled solve counts as the f32 plateau ([`crate::f32_floor`]).
    pub floor: f32,
    /// Mean cost of the group: the exact path is on where `log2(e)/λ · mean_cost ≥ 32`.
    pub mean_cost: f32,
    /// `log2(e)/λ` as a double-f32: `s_hi + s_lo`.
    pub s_hi: f32,
    pub s_lo: f32,
    /// 1.0: a value the shader compiler cannot see through (`opaque` in `common.wgsl`).
    pub one: f32,
    /// ω − 1 of the over-relaxed updates (0: plain Sinkhorn).
    pub overrelax: f32,
    /// Iterations in the current ε stage (over-relaxation's windows count from its start).
    pub stage_iters: u32,
    /// Times the safeguard halved ω − 1 in this stage.
    pub fallbacks: u32,
    /// The error at the last window mark of the over-relaxation.
    pub mark_err: f32,
    /// The stage iteration of that mark.
    pub mark_iter: u32,
}

/// The kernel variant a pipeline is compiled for: the problem's shape and the switches the
/// ablations of `benches/gpu_device.sh` flip (the defaults are the production kernel).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Specialisation {
    /// Score coordinates `T` (`DIM`).
    pub dim: u32,
    pub euclidean: bool,
    /// Rows per invocation of the LSE kernel (`ROWS`, 1 to [`MAX_ROWS`]).
    pub rows: u32,
    /// `‖x‖² + ‖y‖² − 2x·y` (else `Σ (x − y)²`).
    pub expanded: bool,
    /// The row frame as a fixed shift (else a running max and rescale per pair).
    pub fixed_shift: bool,
    /// Recompute dominant and cancelled terms exactly (off: timing only, less accurate).
    pub exact: bool,
    /// Potentials as (frame, offset) pairs (off: one f32 each; accuracy ablation).
    pub hilo: bool,
    /// Kahan-compensated sum over column tiles (off: plain f32 sum; accuracy ablation).
    pub kahan: bool,
    /// Scores centred per group before rounding to f32 (off: accuracy ablation).
    pub centred: bool,
    /// Timing only: `exp2` replaced by an FMA (wrong results).
    pub stub_exp2: bool,
    /// Timing only: `sqrt` replaced by a multiply (wrong results).
    pub stub_sqrt: bool,
}

impl Specialisation {
    /// The production kernel for `dim` coordinates and `metric`.
    pub fn new(dim: usize, metric: Metric) -> Specialisation {
        Specialisation {
            dim: dim as u32,
            euclidean: metric == Metric::Euclidean,
            rows: default_rows(dim),
            expanded: true,
            fixed_shift: true,
            exact: true,
            hilo: true,
            kahan: true,
            centred: true,
            stub_exp2: false,
            stub_sqrt: false,
        }
    }

    /// Applies a kernel variant (`None` fields keep the production choice).
    pub fn with(self, variant: &KernelVariant) -> Specialisation {
        Specialisation {
            rows: variant.rows.unwrap_or(self.rows).clamp(1, MAX_ROWS),
            expanded: variant.expanded.unwrap_or(self.expanded),
            fixed_shift: variant.fixed_shift.unwrap_or(self.fixed_shift),
            exact: !variant.no_exact,
            hilo: !variant.no_hilo,
            kahan: !variant.no_kahan,
            centred: !variant.no_centre,
            stub_exp2: variant.stub_exp2,
            stub_sqrt: variant.stub_sqrt,
            ..self
        }
    }

    /// `rows=4 expanded fixed-shift` and the like, for logs and tables.
    pub fn describe(&self) -> String {
        let mut words = vec![
            format!("rows={}", self.rows),
            (if self.expanded { "expanded" } else { "direct" }).to_string(),
            (if self.fixed_shift {
                "fixed-shift"
            } else {
                "online-max"
            })
            .to_string(),
        ];
        for (on, word) in [
            (self.exact, "no-exact"),
            (self.hilo, "no-hilo"),
            (self.kahan, "no-kahan"),
            (self.centred, "no-centre"),
        ] {
            if !on {
                words.push(word.into());
            }
        }
        if self.stub_exp2 {
            words.push("stub-exp2".into());
        }
        if self.stub_sqrt {
            words.push("stub-sqrt".into());
        }
        words.join(" ")
    }

    /// Rows one LSE workgroup handles.
    pub fn rows_per_block(&self) -> u32 {
        crate::plan::WORKGROUP * self.rows
    }

    /// Override constants of `common.wgsl` (every kernel has them).
    pub fn common_constants(&self) -> Vec<(&'static str, f64)> {
        vec![
            ("DIM", f64::from(self.dim)),
            ("EUCLIDEAN", flag(self.euclidean)),
        ]
    }

    /// Override constants of `sinkhorn_lse.wgsl`.
    pub fn sinkhorn_constants(&self) -> Vec<(&'static str, f64)> {
        let mut constants = self.common_constants();
        constants.extend([
            ("ROWS", f64::from(self.rows)),
            ("EXPANDED", flag(self.expanded)),
            ("FIXED_SHIFT", flag(self.fixed_shift)),
            ("EXACT", flag(self.exact)),
            ("HILO", flag(self.hilo)),
            ("KAHAN", flag(self.kahan)),
            ("STUB_EXP2", flag(self.stub_exp2)),
            ("STUB_SQRT", flag(self.stub_sqrt)),
        ]);
        constants
    }
}

fn flag(on: bool) -> f64 {
    if on { 1.0 } else { 0.0 }
}

/// Rows per invocation by default: each column read from workgroup memory serves every row
/// held, but each row costs `T + 13` registers; four fit comfortably up to `T = 16`.
pub fn default_rows(dim: usize) -> u32 {
    match dim {
        0..=16 => 4,
        17..=40 => 2,
        _ => 1,
    }
}

/// A kernel variant for ablations (`benches/gpu_device.sh`, `tests/accuracy.rs`), read from
/// `PSA_GPU_KERNEL`: comma-separated `rows=N`, `direct`, `online-max`, `no-exact`, `no-hilo`,
/// `no-kahan`, `no-centre`, `stub-exp2`, `stub-sqrt`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelVariant {
    pub rows: Option<u32>,
    pub expanded: Option<bool>,
    pub fixed_shift: Option<bool>,
    pub no_exact: bool,
    pub no_hilo: bool,
    pub no_kahan: bool,
    pub no_centre: bool,
    pub stub_exp2: bool,
    pub stub_sqrt: bool,
}

impl KernelVariant {
    /// The variant `PSA_GPU_KERNEL` names (the production kernel when unset).
    pub fn from_env() -> Result<KernelVariant, crate::GpuError> {
        match std::env::var("PSA_GPU_KERNEL") {
            Ok(spec) => KernelVariant::parse(&spec),
            Err(_) => Ok(KernelVariant::default()),
        }
    }

    pub fn parse(spec: &str) -> Result<KernelVariant, crate::GpuError> {
        let mut variant = KernelVariant::default();
        for word in spec.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            match word {
                "direct" => variant.expanded = Some(false),
                "expanded" => variant.expanded = Some(true),
                "online-max" => variant.fixed_shift = Some(false),
                "fixed-shift" => variant.fixed_shift = Some(true),
                "no-exact" => variant.no_exact = true,
                "no-hilo" => variant.no_hilo = true,
                "no-kahan" => variant.no_kahan = true,
                "no-centre" => variant.no_centre = true,
                "stub-exp2" => variant.stub_exp2 = true,
                "stub-sqrt" => variant.stub_sqrt = true,
                _ => match word.strip_prefix("rows=").and_then(|n| n.parse().ok()) {
                    Some(rows @ 1..=MAX_ROWS) => variant.rows = Some(rows),
                    _ => {
                        return Err(crate::GpuError::Input {
                            what: "PSA_GPU_KERNEL",
                            message: format!(
                                "unknown item {word:?}; use rows=1..8, direct, online-max, \
                                 no-exact, no-hilo, no-kahan, no-centre, stub-exp2, stub-sqrt"
                            ),
                        });
                    }
                },
            }
        }
        Ok(variant)
    }

    /// Whether results are meaningless or less accurate (timing only).
    pub fn stubbed(&self) -> bool {
        self.stub_exp2
            || self.stub_sqrt
            || self.no_exact
            || self.no_hilo
            || self.no_kahan
            || self.no_centre
    }
}

/// Pipelines built on first use for each specialisation, then reused.
#[derive(Debug)]
pub(crate) struct Cache<V>(Mutex<HashMap<Specialisation, Arc<V>>>);

impl<V> Default for Cache<V> {
    fn default() -> Self {
        Cache(Mutex::new(HashMap::new()))
    }
}

impl<V> Cache<V> {
    pub fn get_or_build(&self, key: Specialisation, build: impl FnOnce() -> V) -> Arc<V> {
        // A poisoned lock only means another thread panicked while building; the map is intact.
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(key).or_insert_with(|| Arc::new(build())).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_parse_and_bad_items_name_the_variable() {
        let v = KernelVariant::parse("rows=2, direct,online-max,stub-exp2").unwrap();
        assert_eq!(v.rows, Some(2));
        assert_eq!(v.expanded, Some(false));
        assert_eq!(v.fixed_shift, Some(false));
        assert!(v.stub_exp2 && !v.stub_sqrt && v.stubbed());
        let spec = Specialisation::new(12, Metric::Euclidean).with(&v);
        assert_eq!(
            (spec.rows, spec.expanded, spec.fixed_shift),
            (2, false, false)
        );
        assert_eq!(spec.rows_per_block(), 256);
        let err = KernelVariant::parse("rows=9").unwrap_err().to_string();
        assert!(err.contains("PSA_GPU_KERNEL"), "{err}");
        assert_eq!(default_rows(12), 4);
        assert_eq!(default_rows(45), 1);
    }
}

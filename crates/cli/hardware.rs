//! Which hardware solves the OT problems: `--backend cpu|gpu|auto`.
//!
//! `auto` takes a wgpu adapter that is not a software rasteriser if there is one, else the CPU
//! reference, and logs which and why. `gpu` takes any adapter, the software Vulkan driver
//! (lavapipe) included, so CI exercises every kernel; it fails with a clear message when there is
//! none. SNN and random baselines always run on the CPU.

#[cfg(feature = "gpu")]
use anyhow::Context;
use anyhow::Result;
use clap::ValueEnum;
use ndarray::{Array2, ArrayView2};
use psa_core::{Coupling, Matcher, Problem, Progress, Solution, SolveOptions, TopK};
#[cfg(feature = "gpu")]
use psa_gpu::{AdapterChoice, CostMode, GpuContext, GpuMatcher, GpuOptions};
use serde::Serialize;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// The f64 CPU reference (rayon over groups and rows).
    Cpu,
    /// WGSL kernels on any wgpu adapter (Vulkan / Metal / DX12), software ones included.
    Gpu,
    /// A hardware GPU if one is found, else the CPU reference.
    #[default]
    Auto,
}

/// How the GPU kernels get their costs (`--gpu-cost`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GpuCost {
    /// Materialise the cost matrices when they fit and it pays off, else stream.
    #[default]
    Auto,
    /// Recompute every cost from the scores (device memory O((n1 + n2) · T)).
    Streaming,
    /// Keep each group's n1 × n2 cost matrix on the device.
    Materialised,
}

/// The chosen backend, ready to solve.
pub enum Engine {
    Cpu(psa_core::CpuMatcher),
    #[cfg(feature = "gpu")]
    Gpu(Box<GpuMatcher>),
}

/// The hardware chosen once per process by `--backend`: the GPU context, when there is one,
/// serves both the matcher's WGSL kernels and burn's classifiers (one device, one queue).
pub struct Hardware {
    #[cfg(feature = "gpu")]
    gpu: Option<std::sync::Arc<GpuContext>>,
    learn_device: std::sync::OnceLock<psa_learn::Device>,
}

impl Hardware {
    #[cfg(not(feature = "gpu"))]
    pub fn select(backend: Backend) -> Result<Hardware> {
        match backend {
            Backend::Cpu => {}
            Backend::Auto => {
                tracing::info!("--backend auto: using the CPU (built without the gpu feature)")
            }
            Backend::Gpu => anyhow::bail!(
                "--backend gpu: this psa was built without GPU support; rebuild with the default `gpu` feature"
            ),
        }
        Ok(Hardware {
            learn_device: std::sync::OnceLock::new(),
        })
    }

    #[cfg(feature = "gpu")]
    pub fn select(backend: Backend) -> Result<Hardware> {
        let gpu = match backend {
            Backend::Cpu => None,
            Backend::Gpu => {
                let context = GpuContext::new(AdapterChoice::AnyIncludingSoftware)
                    .context("--backend gpu")?;
                tracing::info!("--backend gpu: using {}", context.describe());
                Some(context)
            }
            Backend::Auto => match GpuContext::new(AdapterChoice::HardwareOnly) {
                Ok(context) => {
                    tracing::info!("--backend auto: using {}", context.describe());
                    Some(context)
                }
                Err(err) => {
                    tracing::info!("--backend auto: using the CPU ({err})");
                    None
                }
            },
        };
        Ok(Hardware {
            gpu: gpu.map(std::sync::Arc::new),
            learn_device: std::sync::OnceLock::new(),
        })
    }

    /// The OT matcher on this hardware.
    #[cfg(not(feature = "gpu"))]
    pub fn engine(&self, _cost: GpuCost) -> Result<Engine> {
        Ok(Engine::Cpu(psa_core::CpuMatcher))
    }

    /// The OT matcher on this hardware.
    #[cfg(feature = "gpu")]
    pub fn engine(&self, cost: GpuCost) -> Result<Engine> {
        let Some(context) = &self.gpu else {
            return Ok(Engine::Cpu(psa_core::CpuMatcher));
        };
        let options = GpuOptions {
            cost_mode: match cost {
                GpuCost::Auto => CostMode::Auto,
                GpuCost::Streaming => CostMode::Streaming,
                GpuCost::Materialised => CostMode::Materialised,
            },
            ..GpuOptions::default()
        };
        let matcher = GpuMatcher::new(context.clone(), options)?;
        Ok(Engine::Gpu(Box::new(matcher)))
    }

    /// burn's device for the classifiers: wgpu on the same device as the matcher, or NdArray.
    pub fn learn_device(&self) -> Result<psa_learn::Device> {
        if let Some(device) = self.learn_device.get() {
            return Ok(device.clone());
        }
        let device = self.open_learn_device()?;
        Ok(self.learn_device.get_or_init(|| device).clone())
    }

    #[cfg(feature = "gpu")]
    fn open_learn_device(&self) -> Result<psa_learn::Device> {
        match &self.gpu {
            Some(c) => Ok(psa_learn::shared_wgpu_device(
                c.instance.clone(),
                c.adapter.clone(),
                c.device.clone(),
                c.queue.clone(),
            )?),
            None => Ok(psa_learn::cpu_device()),
        }
    }

    #[cfg(not(feature = "gpu"))]
    fn open_learn_device(&self) -> Result<psa_learn::Device> {
        Ok(psa_learn::cpu_device())
    }

    /// "burn-wgpu on <adapter>" or "burn-ndarray (CPU)", for logs and summaries.
    pub fn learn_name(&self) -> String {
        #[cfg(feature = "gpu")]
        if let Some(c) = &self.gpu {
            return format!("burn-wgpu on {}", c.info.name);
        }
        "burn-ndarray (CPU)".to_string()
    }
}

impl Engine {
    /// A matcher for `--backend` (the hardware is chosen here; see [`Hardware`]).
    pub fn select(backend: Backend, cost: GpuCost) -> Result<Engine> {
        Hardware::select(backend)?.engine(cost)
    }

    pub fn name(&self) -> &str {
        match self {
            Engine::Cpu(m) => m.name(),
            #[cfg(feature = "gpu")]
            Engine::Gpu(m) => m.name(),
        }
    }

    pub fn solve(
        &self,
        problem: &Problem,
        options: &SolveOptions,
        progress: &dyn Progress,
    ) -> Result<Solution> {
        Ok(match self {
            Engine::Cpu(m) => m.solve(problem, options, progress)?,
            #[cfg(feature = "gpu")]
            Engine::Gpu(m) => m.solve(problem, options, progress)?,
        })
    }

    /// The GPU matcher when OT potentials came from it, so exports run on the GPU too.
    #[cfg(feature = "gpu")]
    fn gpu_for<'a>(
        &'a self,
        solution: Option<&'a Solution>,
    ) -> Option<(&'a GpuMatcher, &'a Solution)> {
        match (self, solution) {
            (Engine::Gpu(gpu), Some(solution)) => Some((gpu, solution)),
            _ => None,
        }
    }

    #[cfg(not(feature = "gpu"))]
    fn gpu_for<'a>(&'a self, _solution: Option<&'a Solution>) -> Option<(&'a Never, &'a Solution)> {
        None
    }

    /// Top-k of every group's rows (group-local column indices).
    pub fn top_k(
        &self,
        problem: &Problem,
        solution: Option<&Solution>,
        couplings: &[Coupling<'_>],
        k: usize,
        mass: Option<f64>,
    ) -> Result<Vec<TopK>> {
        match self.gpu_for(solution) {
            Some((gpu, solution)) => Ok(gpu.top_k_mass(problem, solution, k, mass)?),
            None => Ok(couplings.iter().map(|c| c.top_k(k, mass)).collect()),
        }
    }

    /// Barycentric projections `Σ_j P(j|i) y_j`, one matrix per group (group row order).
    pub fn project(
        &self,
        problem: &Problem,
        solution: Option<&Solution>,
        couplings: &[Coupling<'_>],
        ys: &[ArrayView2<'_, f64>],
    ) -> Result<Vec<Array2<f64>>> {
        match self.gpu_for(solution) {
            Some((gpu, solution)) => Ok(gpu.project(problem, solution, ys)?),
            None => Ok(couplings
                .iter()
                .zip(ys)
                .map(|(c, y)| c.project(*y))
                .collect()),
        }
    }

    /// `P(partner(i) | i)` for every row of the groups that have partners.
    pub fn diagonal(
        &self,
        problem: &Problem,
        solution: Option<&Solution>,
        couplings: &[Coupling<'_>],
        partners: &[Option<Vec<usize>>],
    ) -> Result<Vec<Option<Vec<f64>>>> {
        match self.gpu_for(solution) {
            Some((gpu, solution)) => Ok(gpu.diagonal(problem, solution, partners)?),
            None => Ok(couplings
                .iter()
                .zip(partners)
                .map(|(c, p)| p.as_ref().map(|p| c.for_each_row(|i, row| row[p[i]])))
                .collect()),
        }
    }
}

/// Stands in for the GPU matcher in builds without it: no value exists, so no call is made.
#[cfg(not(feature = "gpu"))]
pub enum Never {}

#[cfg(not(feature = "gpu"))]
impl Never {
    fn top_k_mass(&self, _: &Problem, _: &Solution, _: usize, _: Option<f64>) -> Result<Vec<TopK>> {
        match *self {}
    }
    fn project(
        &self,
        _: &Problem,
        _: &Solution,
        _: &[ArrayView2<'_, f64>],
    ) -> Result<Vec<Array2<f64>>> {
        match *self {}
    }
    fn diagonal(
        &self,
        _: &Problem,
        _: &Solution,
        _: &[Option<Vec<usize>>],
    ) -> Result<Vec<Option<Vec<f64>>>> {
        match *self {}
    }
}

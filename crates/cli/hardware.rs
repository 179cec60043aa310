//! Which hardware trains and solves: `--backend cpu|gpu|auto`, chosen once per process.
//!
//! `auto` takes a wgpu adapter that is not a software rasteriser if there is one, else the CPU
//! reference, and logs which and why. `gpu` takes any adapter, the software Vulkan driver
//! (lavapipe) included, so CI exercises every kernel; it fails with a clear message when there is
//! none. SNN and random baselines always run on the CPU.

#[cfg(feature = "gpu")]
use anyhow::Context;
use anyhow::Result;
use clap::ValueEnum;
use psa_core::Matcher;
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
    /// The matcher's choice (today: streaming).
    #[default]
    Auto,
    /// Recompute every cost from the scores (device memory O((n1 + n2) · T)); the kernel
    /// streams faster than a stored n1 × n2 cost matrix could be read.
    Streaming,
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

    /// The OT matcher on this hardware (outputs of its solutions run there too).
    #[cfg(not(feature = "gpu"))]
    pub fn matcher(&self, _cost: GpuCost) -> Result<Box<dyn Matcher>> {
        Ok(Box::new(psa_core::CpuMatcher))
    }

    /// The OT matcher on this hardware (outputs of its solutions run there too).
    #[cfg(feature = "gpu")]
    pub fn matcher(&self, cost: GpuCost) -> Result<Box<dyn Matcher>> {
        Ok(match self.gpu_matcher(cost)? {
            Some(gpu) => Box::new(gpu),
            None => Box::new(psa_core::CpuMatcher),
        })
    }

    /// The GPU matcher itself, when a GPU was chosen (`psa bench` times it on the device).
    #[cfg(feature = "gpu")]
    pub fn gpu_matcher(&self, cost: GpuCost) -> Result<Option<GpuMatcher>> {
        let Some(context) = &self.gpu else {
            return Ok(None);
        };
        let options = GpuOptions {
            cost_mode: match cost {
                GpuCost::Auto => CostMode::Auto,
                GpuCost::Streaming => CostMode::Streaming,
            },
            ..GpuOptions::default()
        };
        Ok(Some(GpuMatcher::new(context.clone(), options)?))
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

//! Errors of the GPU backend. Each says what the user can do about it.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum GpuError {
    #[error(
        "no GPU adapter found (Vulkan/Metal/DX12); install a driver, e.g. mesa-vulkan-drivers \
         for a software one, or use --backend cpu"
    )]
    NoAdapter,
    #[error(
        "no hardware GPU adapter found (only software ones: {found}); using it needs --backend gpu"
    )]
    OnlySoftware { found: String },
    #[error("GPU adapter {adapter}: could not open a device: {source}")]
    RequestDevice {
        adapter: String,
        #[source]
        source: wgpu::RequestDeviceError,
    },
    #[error("GPU adapter {adapter}: {message}")]
    Unsupported { adapter: String, message: String },
    #[error("GPU read-back failed: {0}")]
    Readback(String),
    #[error("GPU device error: {0}")]
    Device(String),
    #[error("{what}: {message}")]
    Input { what: &'static str, message: String },
    #[error(transparent)]
    Core(#[from] psa_core::CoreError),
}

impl From<GpuError> for psa_core::MatcherError {
    fn from(error: GpuError) -> Self {
        match error {
            GpuError::Core(core) => psa_core::MatcherError::Core(core),
            other => psa_core::MatcherError::Backend {
                backend: "gpu",
                message: other.to_string(),
            },
        }
    }
}

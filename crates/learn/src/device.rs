//! The burn device the classifiers train on.
//!
//! CPU is burn's NdArray backend (deterministic for a seed). GPU is burn's wgpu backend on the
//! very `wgpu::Device` and queue that psa's own kernels use: the caller opens one adapter and
//! hands its handles here, so the adapter choice is made once per process and logged once.

use burn::tensor::Device;
#[cfg(feature = "wgpu")]
use burn::tensor::wgpu::{WgpuSetup, wgpu};

#[cfg(feature = "wgpu")]
use crate::LearnError;

/// burn's NdArray CPU device.
// burn 0.22 deprecates NdArray in favour of its Flex backend; psa keeps NdArray, the CPU
// backend this project chose, until Flex has been measured against it here.
#[allow(deprecated)]
pub fn cpu_device() -> Device {
    Device::ndarray()
}

#[cfg(feature = "wgpu")]
/// burn's wgpu device on handles the caller already opened. Call once per process: burn keeps
/// the registration for the life of the process.
pub fn shared_wgpu_device(
    instance: wgpu::Instance,
    adapter: wgpu::Adapter,
    device: wgpu::Device,
    queue: wgpu::Queue,
) -> Result<Device, LearnError> {
    let backend = adapter.get_info().backend;
    let setup = WgpuSetup {
        instance,
        adapter,
        device,
        queue,
        backend,
    };
    Device::wgpu_options()
        .setup(setup)
        .init()
        .map_err(|e| LearnError::Backend(format!("registering the wgpu device with burn: {e}")))
}

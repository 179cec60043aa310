//! The wgpu instance, adapter, device and queue every kernel runs on, and how the adapter is
//! chosen.
//!
//! `--backend gpu` takes any adapter, software ones included, so that CI machines without a GPU
//! still run every kernel on lavapipe (Mesa's software Vulkan, device type `Cpu`); `--backend
//! auto` wants hardware and falls back to the CPU matcher otherwise. The device is requested the
//! way cubecl requests it (the adapter's features minus `MAPPABLE_PRIMARY_BUFFERS`, the
//! adapter's own limits), so the same device can be handed to burn through `WgpuSetup`.

use crate::GpuError;

/// Which adapters may be used.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AdapterChoice {
    /// Any adapter, software rasterisers (lavapipe, WARP) included: `--backend gpu`.
    #[default]
    AnyIncludingSoftware,
    /// Hardware only (`DeviceType::Cpu` adapters are skipped): `--backend auto`.
    HardwareOnly,
}

/// One opened GPU device with the handles that created it.
#[derive(Debug)]
pub struct GpuContext {
    pub instance: wgpu::Instance,
    pub adapter: wgpu::Adapter,
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
}

impl GpuContext {
    /// Picks the best allowed adapter (discrete > integrated > virtual > cpu) and opens it.
    pub fn new(choice: AdapterChoice) -> Result<GpuContext, GpuError> {
        let instance =
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
        let adapter = choose_adapter(adapters, choice)?;
        let (device, queue) = request_device(&adapter)?;
        Ok(GpuContext::from_parts(instance, adapter, device, queue))
    }

    /// Wraps handles opened elsewhere (e.g. taken out of burn's `WgpuSetup`).
    pub fn from_parts(
        instance: wgpu::Instance,
        adapter: wgpu::Adapter,
        device: wgpu::Device,
        queue: wgpu::Queue,
    ) -> GpuContext {
        let info = adapter.get_info();
        tracing::info!(
            adapter = %info.name,
            backend = ?info.backend,
            device_type = ?info.device_type,
            driver = %format!("{} {}", info.driver, info.driver_info).trim(),
            "GPU adapter chosen"
        );
        GpuContext {
            instance,
            adapter,
            device,
            queue,
            info,
        }
    }

    /// True for software adapters (lavapipe, WARP): correct but slow.
    pub fn is_software(&self) -> bool {
        self.info.device_type == wgpu::DeviceType::Cpu
    }

    /// Adapter name, backend and type, for logs and summaries.
    pub fn describe(&self) -> String {
        format!(
            "{} ({:?}, {:?})",
            self.info.name, self.info.backend, self.info.device_type
        )
    }

    /// Blocks until every submitted command has finished.
    pub fn wait(&self) -> Result<(), GpuError> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map(|_| ())
            .map_err(|e| GpuError::Device(e.to_string()))
    }
}

/// Ranks device types: lower is preferred.
fn preference(device_type: wgpu::DeviceType) -> u8 {
    match device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

fn choose_adapter(
    adapters: Vec<wgpu::Adapter>,
    choice: AdapterChoice,
) -> Result<wgpu::Adapter, GpuError> {
    if adapters.is_empty() {
        return Err(GpuError::NoAdapter);
    }
    let software: Vec<String> = adapters
        .iter()
        .map(|a| a.get_info())
        .filter(|i| i.device_type == wgpu::DeviceType::Cpu)
        .map(|i| i.name)
        .collect();
    let best = adapters
        .into_iter()
        .filter(|a| {
            choice == AdapterChoice::AnyIncludingSoftware
                || a.get_info().device_type != wgpu::DeviceType::Cpu
        })
        .min_by_key(|a| preference(a.get_info().device_type));
    best.ok_or_else(|| GpuError::OnlySoftware {
        found: software.join(", "),
    })
}

fn request_device(adapter: &wgpu::Adapter) -> Result<(wgpu::Device, wgpu::Queue), GpuError> {
    let descriptor = wgpu::DeviceDescriptor {
        label: Some("psa-gpu"),
        // Experimental features (mesh shaders, ray tracing on NVIDIA) cannot be requested
        // without opting into them, and no kernel here needs them.
        required_features: adapter.features()
            - wgpu::Features::MAPPABLE_PRIMARY_BUFFERS
            - wgpu::Features::all_experimental_mask(),
        required_limits: adapter.limits(),
        ..Default::default()
    };
    pollster::block_on(adapter.request_device(&descriptor)).map_err(|source| {
        GpuError::RequestDevice {
            adapter: adapter.get_info().name,
            source,
        }
    })
}

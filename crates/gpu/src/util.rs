//! Small wgpu helpers shared by the kernels: buffer creation with byte accounting, the
//! dispatch grid, bind group layout entries, and the one read-back helper.

use std::sync::atomic::{AtomicU64, Ordering};

use wgpu::util::DeviceExt;

use crate::{GpuContext, GpuError};

/// Workgroups per grid dimension that every adapter accepts (WebGPU's minimum limit).
pub const MAX_GRID_X: u32 = 65_535;

/// A 2-D grid with `count` workgroups or a few more (kernels skip the surplus): past 65535
/// workgroups, `y` rows of `x`.
pub fn grid(count: u32) -> (u32, u32) {
    let count = count.max(1);
    let x = count.min(MAX_GRID_X);
    (x, count.div_ceil(x))
}

/// Counts the bytes of every buffer a problem allocates (our own accounting of device memory).
#[derive(Debug, Default)]
pub struct ByteCounter(AtomicU64);

impl ByteCounter {
    pub fn add(&self, bytes: u64) {
        self.0.fetch_add(bytes, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A storage buffer holding `contents` (at least 16 bytes, so empty inputs still bind).
pub fn storage_init(
    ctx: &GpuContext,
    counter: &ByteCounter,
    label: &str,
    contents: &[u8],
    extra: wgpu::BufferUsages,
) -> wgpu::Buffer {
    let mut padded;
    let contents = if contents.len() < 16 {
        padded = contents.to_vec();
        padded.resize(16, 0);
        &padded[..]
    } else {
        contents
    };
    counter.add(contents.len() as u64);
    ctx.device
        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | extra,
        })
}

/// An uninitialised buffer of `size` bytes (rounded up to 16).
pub fn buffer(
    ctx: &GpuContext,
    counter: &ByteCounter,
    label: &str,
    size: u64,
    usage: wgpu::BufferUsages,
) -> wgpu::Buffer {
    let size = size.max(16).next_multiple_of(16);
    counter.add(size);
    ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size,
        usage,
        mapped_at_creation: false,
    })
}

/// A uniform buffer holding one `Params` value.
pub fn uniform<T: bytemuck::Pod>(ctx: &GpuContext, label: &str, value: &T) -> wgpu::Buffer {
    ctx.device
        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents: bytemuck::bytes_of(value),
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        })
}

/// Layout entry of a compute-stage buffer binding.
pub fn layout_entry(binding: u32, ty: wgpu::BufferBindingType) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty,
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    }
}

/// Storage binding, read-only or read-write.
pub fn storage_entry(binding: u32, read_only: bool) -> wgpu::BindGroupLayoutEntry {
    layout_entry(binding, wgpu::BufferBindingType::Storage { read_only })
}

/// Bind group entries binding whole buffers, numbered from 0.
/// The layout every kernel of ours uses: a uniform at binding 0, then one storage buffer per
/// entry of `read_only` at bindings 1, 2, … (read-only where the flag says so).
pub fn bind_group_layout(
    ctx: &GpuContext,
    label: &str,
    read_only: &[bool],
) -> wgpu::BindGroupLayout {
    let mut entries = vec![layout_entry(0, wgpu::BufferBindingType::Uniform)];
    entries.extend(
        read_only
            .iter()
            .enumerate()
            .map(|(i, &ro)| storage_entry(i as u32 + 1, ro)),
    );
    ctx.device
        .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some(label),
            entries: &entries,
        })
}

/// A bind group of whole buffers at bindings 0, 1, … in order.
pub fn bind_whole_buffers(
    ctx: &GpuContext,
    label: &str,
    layout: &wgpu::BindGroupLayout,
    buffers: &[&wgpu::Buffer],
) -> wgpu::BindGroup {
    let entries: Vec<wgpu::BindGroupEntry<'_>> = buffers
        .iter()
        .enumerate()
        .map(|(i, b)| wgpu::BindGroupEntry {
            binding: i as u32,
            resource: b.as_entire_binding(),
        })
        .collect();
    ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some(label),
        layout,
        entries: &entries,
    })
}

/// A staging buffer for [`read_back`], allocated once by whoever reads back repeatedly.
pub fn staging(ctx: &GpuContext, counter: &ByteCounter, label: &str, size: u64) -> wgpu::Buffer {
    buffer(
        ctx,
        counter,
        label,
        size,
        wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
    )
}

/// Copies the first `count` values of `source` to the host through `staging`, waiting for
/// every command submitted before. The only way data comes back from the device.
pub fn read_back<T: bytemuck::Pod>(
    ctx: &GpuContext,
    source: &wgpu::Buffer,
    staging: &wgpu::Buffer,
    count: usize,
) -> Result<Vec<T>, GpuError> {
    let bytes = (count * std::mem::size_of::<T>()) as u64;
    if bytes == 0 {
        return Ok(Vec::new());
    }
    let copy = bytes.next_multiple_of(wgpu::COPY_BUFFER_ALIGNMENT);
    let mut encoder = ctx.device.create_command_encoder(&Default::default());
    encoder.copy_buffer_to_buffer(source, 0, staging, 0, copy);
    ctx.queue.submit([encoder.finish()]);
    let slice = staging.slice(0..copy);
    let (sender, receiver) = std::sync::mpsc::channel();
    slice.map_async(wgpu::MapMode::Read, move |result| {
        // The receiver outlives the poll below; a failed send only means it was dropped.
        let _ = sender.send(result);
    });
    ctx.wait()?;
    receiver
        .recv()
        .map_err(|e| GpuError::Readback(e.to_string()))?
        .map_err(|e| GpuError::Readback(e.to_string()))?;
    let values = {
        let view = slice
            .get_mapped_range()
            .map_err(|e| GpuError::Readback(e.to_string()))?;
        let mut values = vec![T::zeroed(); count];
        bytemuck::cast_slice_mut::<T, u8>(&mut values).copy_from_slice(&view[..bytes as usize]);
        values
    };
    staging.unmap();
    Ok(values)
}

/// [`read_back`] through a staging buffer made for this one read.
pub fn read_back_once<T: bytemuck::Pod>(
    ctx: &GpuContext,
    source: &wgpu::Buffer,
    count: usize,
) -> Result<Vec<T>, GpuError> {
    let bytes = (count * std::mem::size_of::<T>()) as u64;
    let staging = staging(ctx, &ByteCounter::default(), "psa read-back", bytes);
    read_back(ctx, source, &staging, count)
}

/// Compiles one of our WGSL sources with wgpu's loop-bounding counters off (every loop of ours
/// has a bound; the counters cost instructions in the hot loops) and bounds checks on unless
/// `checked` is false.
pub fn shader_module(
    ctx: &GpuContext,
    label: &str,
    source: &str,
    checked: bool,
) -> wgpu::ShaderModule {
    let checks = runtime_checks(checked);
    let descriptor = wgpu::ShaderModuleDescriptor {
        label: Some(label),
        source: wgpu::ShaderSource::Wgsl(source.into()),
    };
    // SAFETY: loops are trusted to terminate (each runs to a bound read from the parameters or
    // a constant); where `checked` is false, every index is bounded by construction (the
    // kernel's host module says how), which is what unchecked access requires.
    unsafe { ctx.device.create_shader_module_trusted(descriptor, checks) }
}

/// The runtime checks our shader modules are compiled with (also what the counted proxy of
/// [`crate::stats`] compiles with).
pub fn runtime_checks(checked: bool) -> wgpu::ShaderRuntimeChecks {
    wgpu::ShaderRuntimeChecks {
        bounds_checks: checked,
        force_loop_bounding: false,
        ..wgpu::ShaderRuntimeChecks::checked()
    }
}

/// A compute pipeline for `entry` with the given override constants.
pub fn pipeline(
    ctx: &GpuContext,
    layout: &wgpu::PipelineLayout,
    module: &wgpu::ShaderModule,
    entry: &str,
    constants: &[(&str, f64)],
) -> wgpu::ComputePipeline {
    ctx.device
        .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(entry),
            layout: Some(layout),
            module,
            entry_point: Some(entry),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants,
                zero_initialize_workgroup_memory: false,
            },
            cache: None,
        })
}

/// A pipeline layout with one bind group.
pub fn pipeline_layout(ctx: &GpuContext, layout: &wgpu::BindGroupLayout) -> wgpu::PipelineLayout {
    ctx.device
        .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: None,
            bind_group_layouts: &[Some(layout)],
            immediate_size: 0,
        })
}

//! Host side of `shaders/pairwise_cost.wgsl`: the dense cost matrix of each group, computed once
//! for the materialised Sinkhorn mode. CPU twin: [`psa_core::Metric::cost`].

use crate::GpuContext;
use crate::kernels::{Cache, Specialisation};
use crate::util;

const SOURCE: &str = include_str!("../../../../shaders/pairwise_cost.wgsl");
/// Rows and columns of one workgroup tile (`TILE` in the shader).
pub const TILE: u32 = 16;
/// Dynamic-offset stride of the per-group parameter slots (WebGPU's minimum alignment).
pub const PARAMS_STRIDE: u64 = 256;

/// Mirrors `CostParams` in the shader.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct CostParams {
    pub n1: u32,
    pub n2: u32,
    /// First row of the group's modality-1 scores in the scores buffer.
    pub row1: u32,
    /// First row of the group's modality-2 scores there.
    pub row2: u32,
    /// First element of the group's `n1 × n2` matrix in the cost buffer.
    pub cost_off: u32,
    pub _pad: [u32; 3],
}

/// Buffers bound by the pairwise-cost kernel.
#[derive(Clone, Copy)]
pub struct CostBuffers<'a> {
    /// The per-group [`CostParams`] slots, [`PARAMS_STRIDE`] apart.
    pub params: &'a wgpu::Buffer,
    pub scores: &'a wgpu::Buffer,
    pub cost: &'a wgpu::Buffer,
}

/// Layout and pipelines of the pairwise-cost kernel.
#[derive(Debug)]
pub struct PairwiseCost {
    pub layout: wgpu::BindGroupLayout,
    pipeline_layout: wgpu::PipelineLayout,
    module: wgpu::ShaderModule,
    pipelines: Cache<wgpu::ComputePipeline>,
}

impl PairwiseCost {
    pub fn new(ctx: &GpuContext) -> PairwiseCost {
        let params = wgpu::BindGroupLayoutEntry {
            binding: 0,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Uniform,
                has_dynamic_offset: true,
                min_binding_size: wgpu::BufferSize::new(std::mem::size_of::<CostParams>() as u64),
            },
            count: None,
        };
        let layout = ctx
            .device
            .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some("pairwise_cost"),
                entries: &[
                    params,
                    util::storage_entry(1, true),
                    util::storage_entry(2, false),
                ],
            });
        PairwiseCost {
            pipeline_layout: util::pipeline_layout(ctx, &layout),
            module: util::shader_module(ctx, "pairwise_cost.wgsl", SOURCE),
            layout,
            pipelines: Cache::default(),
        }
    }

    pub fn pipeline(
        &self,
        ctx: &GpuContext,
        spec: Specialisation,
    ) -> std::sync::Arc<wgpu::ComputePipeline> {
        self.pipelines.get_or_build(spec, || {
            util::pipeline(
                ctx,
                &self.pipeline_layout,
                &self.module,
                "pairwise_cost",
                &spec.constants(),
            )
        })
    }

    /// Encodes the cost matrices of all groups: `params[g]` sits at `g · PARAMS_STRIDE` of
    /// `buffers.params`.
    pub fn encode(
        &self,
        ctx: &GpuContext,
        encoder: &mut wgpu::CommandEncoder,
        spec: Specialisation,
        params: &[CostParams],
        buffers: &CostBuffers<'_>,
    ) {
        let CostBuffers {
            params: params_buffer,
            scores,
            cost,
        } = *buffers;
        let pipeline = self.pipeline(ctx, spec);
        let bind_group = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("pairwise_cost"),
            layout: &self.layout,
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer: params_buffer,
                        offset: 0,
                        size: wgpu::BufferSize::new(std::mem::size_of::<CostParams>() as u64),
                    }),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: scores.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 2,
                    resource: cost.as_entire_binding(),
                },
            ],
        });
        let mut pass = encoder.begin_compute_pass(&Default::default());
        pass.set_pipeline(&pipeline);
        for (g, p) in params.iter().enumerate() {
            pass.set_bind_group(0, &bind_group, &[(g as u64 * PARAMS_STRIDE) as u32]);
            pass.dispatch_workgroups(p.n2.div_ceil(TILE), p.n1.div_ceil(TILE), 1);
        }
    }

    /// The per-group parameter slots, laid out for dynamic offsets.
    pub fn params_bytes(params: &[CostParams]) -> Vec<u8> {
        let mut bytes = vec![0u8; params.len().max(1) * PARAMS_STRIDE as usize];
        for (g, p) in params.iter().enumerate() {
            let at = g * PARAMS_STRIDE as usize;
            bytes[at..at + std::mem::size_of::<CostParams>()]
                .copy_from_slice(bytemuck::bytes_of(p));
        }
        bytes
    }
}

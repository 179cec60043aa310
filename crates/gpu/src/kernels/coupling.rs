//! Host side of `shaders/coupling.wgsl`: top-k, barycentric projection and the diagonal of the
//! lazy coupling `P(j|i)`, streamed per row. CPU twin: [`psa_core::Coupling`]
//! (`top_k`, `project`, `row`) and [`psa_core::coupling::select_top`].

use std::sync::Arc;

use crate::GpuContext;
use crate::kernels::{Cache, Specialisation};
use crate::util;

const SOURCE: &str = include_str!("../../../../shaders/coupling.wgsl");
/// Largest `k` the top-k kernel keeps per row (`MAX_K`).
pub const MAX_TOP_K: usize = 64;
/// vec4s of `y` one projection dispatch accumulates per row.
pub const PROJECT_BLOCK: u32 = 4;

/// Mirrors `CouplingParams` in the shader.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct CouplingParams {
    /// Modality-1 rows, all groups.
    pub n_rows: u32,
    /// First modality-2 row in the scores and potentials buffers.
    pub col_base: u32,
    pub k: u32,
    /// vec4s per row of `y`.
    pub y_width: u32,
    /// First vec4 of `y` handled by one `project` dispatch.
    pub y_block: u32,
    pub _pad: [u32; 3],
}

/// The three pipelines of one specialisation.
#[derive(Debug)]
pub struct CouplingPipelines {
    pub top_k: wgpu::ComputePipeline,
    pub project: wgpu::ComputePipeline,
    pub diagonal: wgpu::ComputePipeline,
}

/// Buffers bound by the coupling kernels, in binding order after the uniform.
pub struct CouplingBindings<'a> {
    pub scores: &'a wgpu::Buffer,
    pub pots: &'a wgpu::Buffer,
    pub groups: &'a wgpu::Buffer,
    pub row_lse: &'a wgpu::Buffer,
    pub row_group: &'a wgpu::Buffer,
    pub out_index: &'a wgpu::Buffer,
    pub out_value: &'a wgpu::Buffer,
    pub y: &'a wgpu::Buffer,
    pub partner: &'a wgpu::Buffer,
}

/// Layout and pipelines of the coupling kernels.
#[derive(Debug)]
pub struct CouplingKernels {
    pub layout: wgpu::BindGroupLayout,
    pipeline_layout: wgpu::PipelineLayout,
    module: wgpu::ShaderModule,
    pipelines: Cache<CouplingPipelines>,
}

impl CouplingKernels {
    pub fn new(ctx: &GpuContext) -> CouplingKernels {
        // scores, pots, groups, row_lse, row_group, out_index, out_value, y, partner
        let layout = util::bind_group_layout(
            ctx,
            "coupling",
            &[true, true, true, true, true, false, false, true, true],
        );
        CouplingKernels {
            pipeline_layout: util::pipeline_layout(ctx, &layout),
            module: util::shader_module(ctx, "coupling.wgsl", SOURCE),
            layout,
            pipelines: Cache::default(),
        }
    }

    pub fn pipelines(&self, ctx: &GpuContext, spec: Specialisation) -> Arc<CouplingPipelines> {
        self.pipelines.get_or_build(spec, || {
            let constants = spec.constants();
            let build =
                |entry| util::pipeline(ctx, &self.pipeline_layout, &self.module, entry, &constants);
            CouplingPipelines {
                top_k: build("top_k"),
                project: build("project"),
                diagonal: build("diagonal"),
            }
        })
    }

    pub fn bind_group(
        &self,
        ctx: &GpuContext,
        params: &wgpu::Buffer,
        b: &CouplingBindings<'_>,
    ) -> wgpu::BindGroup {
        let buffers = [
            params,
            b.scores,
            b.pots,
            b.groups,
            b.row_lse,
            b.row_group,
            b.out_index,
            b.out_value,
            b.y,
            b.partner,
        ];
        ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("coupling"),
            layout: &self.layout,
            entries: &util::whole_buffers(&buffers),
        })
    }
}

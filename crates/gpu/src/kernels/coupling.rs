//! Host side of `shaders/coupling.wgsl`: top-k, barycentric projection, the diagonal, dense
//! rows and pseudo-pair sampling of the lazy coupling `P(j|i)`, streamed per row. CPU twin:
//! [`psa_core::Coupling`] (`top_k`, `project`, `row_into`), [`psa_core::coupling::select_top`]
//! and [`psa_core::coupling::sample_pairs`].

use std::sync::Arc;

use crate::GpuContext;
use crate::kernels::{Cache, Specialisation, source};
use crate::util;

/// `shaders/coupling.wgsl` (without `common.wgsl`).
pub const OWN_SOURCE: &str = include_str!("../../../../shaders/coupling.wgsl");
/// Largest `k` the top-k kernel keeps per row (`MAX_K`).
pub const MAX_TOP_K: usize = 64;
/// vec4s of `y` one projection dispatch accumulates per row.
pub const PROJECT_BLOCK: u32 = 4;
/// Invocations per workgroup of the per-row entry points (`OUT_WG`).
pub const OUT_WORKGROUP: u32 = 128;
/// Columns per workgroup of `rows`.
pub const ROWS_WORKGROUP: u32 = 64;

/// Mirrors `CouplingParams` in the shader.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct CouplingParams {
    /// Padded modality-1 rows, all groups.
    pub n_rows: u32,
    /// First modality-2 row in the scores and potentials buffers.
    pub col_base: u32,
    pub k: u32,
    /// vec4s per row of `y`.
    pub y_width: u32,
    /// First vec4 of `y` handled by one `project` dispatch.
    pub y_block: u32,
    /// `rows`: the group.
    pub group: u32,
    /// `rows`: its first row.
    pub first_row: u32,
    /// `sample`: uniforms per row; `rows`: rows in this call.
    pub draws: u32,
}

/// Which coupling entry point to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    TopK,
    Project,
    Diagonal,
    Rows,
    Sample,
}

/// The pipelines of one specialisation.
#[derive(Debug)]
pub struct CouplingPipelines {
    pub top_k: wgpu::ComputePipeline,
    pub project: wgpu::ComputePipeline,
    pub diagonal: wgpu::ComputePipeline,
    pub rows: wgpu::ComputePipeline,
    pub sample: wgpu::ComputePipeline,
}

impl CouplingPipelines {
    pub fn get(&self, output: Output) -> &wgpu::ComputePipeline {
        match output {
            Output::TopK => &self.top_k,
            Output::Project => &self.project,
            Output::Diagonal => &self.diagonal,
            Output::Rows => &self.rows,
            Output::Sample => &self.sample,
        }
    }
}

/// Buffers bound by the coupling kernels, in binding order after the uniform.
pub struct CouplingBindings<'a> {
    pub scores: &'a wgpu::Buffer,
    pub scores_lo: &'a wgpu::Buffer,
    pub pots: &'a wgpu::Buffer,
    pub groups: &'a wgpu::Buffer,
    pub row_group: &'a wgpu::Buffer,
    pub row_lse: &'a wgpu::Buffer,
    pub out_index: &'a wgpu::Buffer,
    pub out_value: &'a wgpu::Buffer,
    pub aux: &'a wgpu::Buffer,
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
        // scores, scores_lo, pots, groups, row_group, row_lse, out_index, out_value, aux
        let layout = util::bind_group_layout(
            ctx,
            "coupling",
            &[true, true, false, false, true, true, false, false, true],
        );
        CouplingKernels {
            pipeline_layout: util::pipeline_layout(ctx, &layout),
            module: util::shader_module(ctx, "coupling.wgsl", &source(OWN_SOURCE), true),
            layout,
            pipelines: Cache::default(),
        }
    }

    pub fn pipelines(&self, ctx: &GpuContext, spec: Specialisation) -> Arc<CouplingPipelines> {
        self.pipelines.get_or_build(spec, || {
            let constants = spec.common_constants();
            let build =
                |entry| util::pipeline(ctx, &self.pipeline_layout, &self.module, entry, &constants);
            CouplingPipelines {
                top_k: build("top_k"),
                project: build("project"),
                diagonal: build("diagonal"),
                rows: build("rows"),
                sample: build("sample"),
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
            b.scores_lo,
            b.pots,
            b.groups,
            b.row_group,
            b.row_lse,
            b.out_index,
            b.out_value,
            b.aux,
        ];
        util::bind_whole_buffers(ctx, "coupling", &self.layout, &buffers)
    }
}

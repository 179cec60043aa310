//! Host side of `shaders/sinkhorn_lse.wgsl`: one log-domain Sinkhorn half-iteration for all
//! groups per dispatch, the merge of column-chunk partials, and the on-device ε-scaling and
//! stopping control. CPU twin: `psa_core::sinkhorn` (`soft_min_rows`, `SinkhornState::iterate`,
//! `solve_group`).

use std::sync::Arc;

use crate::GpuContext;
use crate::kernels::{Cache, Specialisation};
use crate::util;

const SOURCE: &str = include_str!("../../../../shaders/sinkhorn_lse.wgsl");
/// Invocations per workgroup (`WG`); also the rows of one block.
pub const WORKGROUP: u32 = 256;
/// vec4s of workgroup memory for one tile of column scores (`TILE_VEC4`).
pub const TILE_VEC4: u32 = 1792;
/// Columns of one materialised tile (`MAT_COLS`).
pub const MAT_COLS: u32 = 16;
/// Workgroup memory the streaming entry point needs, in bytes (tile + h + bookkeeping).
pub const WORKGROUP_BYTES: u32 = TILE_VEC4 * 16 + WORKGROUP * 4 + 16;

/// Columns per shared tile for a score width of `dim4` vec4s: as many as fit `TILE_VEC4`, at
/// most one per invocation, a multiple of [`MAT_COLS`] so chunks suit both LSE modes.
pub fn tile_cols(dim4: u32) -> u32 {
    (TILE_VEC4 / dim4.max(1)).min(WORKGROUP) / MAT_COLS * MAT_COLS
}

/// Mirrors `Params` in the shader (one per half-iteration).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    /// 0: rows are modality 1 (f-update); 1: rows are modality 2 (g-update).
    pub half: u32,
    pub n_blocks: u32,
    pub n_rows: u32,
    pub row_base: u32,
    pub col_base: u32,
    /// `combine`: 0 updates potentials, 1 stores each row's LSE (log2 units) in scratch.
    pub mode: u32,
    pub n_groups: u32,
    pub _pad: u32,
}

/// Mirrors `GroupState` in the shader: a group's layout in the concatenated buffers and its
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
    pub cost_off: u32,
    pub sched_off: u32,
    pub n_stages: u32,
    pub stage: u32,
    pub iterations: u32,
    pub max_iter: u32,
    pub is_active: u32,
    pub converged: u32,
    /// Iterations at the target λ since the error last improved.
    pub stall: u32,
    /// 1 when the group stopped on the f32 plateau below `floor` rather than below `tol`.
    pub floored: u32,
    pub lambda: f32,
    /// τ of the KL-relaxed marginals; 0 for balanced.
    pub tau: f32,
    /// Stopping tolerance of the last stage.
    pub tol: f32,
    /// Stopping tolerance of intermediate ε stages.
    pub stage_tol: f32,
    pub error: f32,
    /// Smallest error seen in the current stage.
    pub best: f32,
    /// Error below which a stalled solve counts as converged ([`crate::matcher::f32_floor`]).
    pub floor: f32,
    pub _pad: f32,
}

/// The four pipelines of one specialisation.
#[derive(Debug)]
pub struct SinkhornPipelines {
    pub lse_streaming: wgpu::ComputePipeline,
    pub lse_materialised: wgpu::ComputePipeline,
    pub combine: wgpu::ComputePipeline,
    pub control: wgpu::ComputePipeline,
    pub tile_cols: u32,
}

/// Layout and pipelines of the Sinkhorn kernel.
#[derive(Debug)]
pub struct SinkhornLse {
    pub layout: wgpu::BindGroupLayout,
    pipeline_layout: wgpu::PipelineLayout,
    module: wgpu::ShaderModule,
    pipelines: Cache<SinkhornPipelines>,
}

/// Buffers bound by the Sinkhorn kernel, in binding order after the uniform.
pub struct SinkhornBindings<'a> {
    pub scores: &'a wgpu::Buffer,
    pub pots: &'a wgpu::Buffer,
    pub blocks: &'a wgpu::Buffer,
    pub partials: &'a wgpu::Buffer,
    pub groups: &'a wgpu::Buffer,
    pub scratch: &'a wgpu::Buffer,
    pub row_group: &'a wgpu::Buffer,
    pub schedule: &'a wgpu::Buffer,
    pub cost: &'a wgpu::Buffer,
}

impl SinkhornLse {
    pub fn new(ctx: &GpuContext) -> SinkhornLse {
        // scores, pots, blocks, partials, groups, scratch, row_group, schedule, cost
        let layout = util::bind_group_layout(
            ctx,
            "sinkhorn_lse",
            &[true, false, true, false, false, false, true, true, true],
        );
        SinkhornLse {
            pipeline_layout: util::pipeline_layout(ctx, &layout),
            module: util::shader_module(ctx, "sinkhorn_lse.wgsl", SOURCE),
            layout,
            pipelines: Cache::default(),
        }
    }

    pub fn pipelines(&self, ctx: &GpuContext, spec: Specialisation) -> Arc<SinkhornPipelines> {
        self.pipelines.get_or_build(spec, || {
            let tile_cols = tile_cols(spec.dim4);
            let mut constants = spec.constants();
            constants.push(("TILE_COLS", f64::from(tile_cols)));
            let build =
                |entry| util::pipeline(ctx, &self.pipeline_layout, &self.module, entry, &constants);
            SinkhornPipelines {
                lse_streaming: build("lse_streaming"),
                lse_materialised: build("lse_materialised"),
                combine: build("combine"),
                control: build("control"),
                tile_cols,
            }
        })
    }

    pub fn bind_group(
        &self,
        ctx: &GpuContext,
        params: &wgpu::Buffer,
        b: &SinkhornBindings<'_>,
    ) -> wgpu::BindGroup {
        let buffers = [
            params,
            b.scores,
            b.pots,
            b.blocks,
            b.partials,
            b.groups,
            b.scratch,
            b.row_group,
            b.schedule,
            b.cost,
        ];
        ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("sinkhorn_lse"),
            layout: &self.layout,
            entries: &util::whole_buffers(&buffers),
        })
    }
}

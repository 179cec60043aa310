//! Host side of `shaders/sinkhorn_lse.wgsl`: one log-domain Sinkhorn half-iteration for all
//! groups per dispatch, the merge of column-chunk partials, and the on-device ε-scaling and
//! stopping control. CPU twin: `psa_core::sinkhorn` (`soft_min_rows`, `solve_group`).
//!
//! The LSE entry point is compiled without bounds checks (the hot loop would otherwise keep a
//! clamp on every workgroup-memory read): its every index is bounded by construction, from
//! [`crate::plan::Plan`] (unit-tested) and constant trip counts over override-sized arrays.
//! `combine` and `control` index with data read from buffers and stay checked.

use std::sync::Arc;

use crate::GpuContext;
use crate::kernels::{Cache, Specialisation, source};
use crate::util;

/// `shaders/sinkhorn_lse.wgsl` (without `common.wgsl`).
pub const OWN_SOURCE: &str = include_str!("../../../../shaders/sinkhorn_lse.wgsl");
/// Invocations per workgroup of `control` (`CONTROL_WG`).
pub const CONTROL_WORKGROUP: u32 = 256;
/// Workgroup memory the LSE entry point needs for `dim` score coordinates, in bytes: the
/// column tile (16 quads of `dim + 1` vec4s), its weights, the redo flags and bookkeeping.
pub fn workgroup_bytes(dim: u32) -> u32 {
    16 * (dim + 1) * 16 + 2 * 16 * 16 + crate::plan::WORKGROUP * 4 + 32
}

/// What `combine` does with each row's LSE (`Params::mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Mode {
    /// Update the potentials and write the stopping error terms.
    Update = 0,
    /// Store each row's Λ (log2, relative to its frame) for `coupling.wgsl`.
    RowLse = 1,
    /// Write each row's marginal error term only (the final check), for every group.
    Check = 2,
}

/// Mirrors `Params` in the shader (one per half-iteration).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    /// 0: rows are modality 1 (f-update); 1: rows are modality 2 (g-update).
    pub half: u32,
    pub n_blocks: u32,
    /// Padded rows of the row side, all groups.
    pub n_rows: u32,
    pub row_base: u32,
    pub col_base: u32,
    /// A [`Mode`].
    pub mode: u32,
    pub n_groups: u32,
    pub _pad: u32,
}

/// The three pipelines of one specialisation.
#[derive(Debug)]
pub struct SinkhornPipelines {
    pub lse: wgpu::ComputePipeline,
    pub combine: wgpu::ComputePipeline,
    pub control: wgpu::ComputePipeline,
}

/// Layout and pipelines of the Sinkhorn kernel.
#[derive(Debug)]
pub struct SinkhornLse {
    pub layout: wgpu::BindGroupLayout,
    pipeline_layout: wgpu::PipelineLayout,
    /// For `lse`: no bounds checks (see the module docs).
    hot: wgpu::ShaderModule,
    /// For `combine` and `control`.
    checked: wgpu::ShaderModule,
    pipelines: Cache<SinkhornPipelines>,
}

/// Buffers bound by the Sinkhorn kernel, in binding order after the uniform.
pub struct SinkhornBindings<'a> {
    pub scores: &'a wgpu::Buffer,
    pub scores_lo: &'a wgpu::Buffer,
    pub pots: &'a wgpu::Buffer,
    pub groups: &'a wgpu::Buffer,
    pub row_group: &'a wgpu::Buffer,
    pub blocks: &'a wgpu::Buffer,
    pub partials: &'a wgpu::Buffer,
    pub scratch: &'a wgpu::Buffer,
    pub schedule: &'a wgpu::Buffer,
}

impl SinkhornLse {
    pub fn new(ctx: &GpuContext) -> SinkhornLse {
        // scores, scores_lo, pots, groups, row_group, blocks, partials, scratch, schedule
        let layout = util::bind_group_layout(
            ctx,
            "sinkhorn_lse",
            &[true, true, false, false, true, true, false, false, true],
        );
        let source = source(OWN_SOURCE);
        SinkhornLse {
            pipeline_layout: util::pipeline_layout(ctx, &layout),
            hot: util::shader_module(ctx, "sinkhorn_lse.wgsl (lse)", &source, false),
            checked: util::shader_module(ctx, "sinkhorn_lse.wgsl", &source, true),
            layout,
            pipelines: Cache::default(),
        }
    }

    pub fn pipelines(&self, ctx: &GpuContext, spec: Specialisation) -> Arc<SinkhornPipelines> {
        self.pipelines.get_or_build(spec, || {
            let constants = spec.sinkhorn_constants();
            let build = |module, entry| {
                util::pipeline(ctx, &self.pipeline_layout, module, entry, &constants)
            };
            SinkhornPipelines {
                lse: build(&self.hot, "lse"),
                combine: build(&self.checked, "combine"),
                control: build(&self.checked, "control"),
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
            b.scores_lo,
            b.pots,
            b.groups,
            b.row_group,
            b.blocks,
            b.partials,
            b.scratch,
            b.schedule,
        ];
        util::bind_whole_buffers(ctx, "sinkhorn_lse", &self.layout, &buffers)
    }
}

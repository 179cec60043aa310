//! The device buffers of one problem, allocated once before the iteration loop.
//!
//! All label groups live in the same buffers so that one dispatch serves every group: rows of
//! modality 1 of every group, then rows of modality 2, each padded to whole vec4s of scores.
//! A block table maps each workgroup to (group, first row, column chunk); a group's columns are
//! split into chunks when there are too few row blocks to fill the GPU, and `combine` merges
//! the chunks' partial (max, sum) pairs. Memory is `O((n1 + n2) · T)` plus the partials
//! (`n · chunks`), plus the cost matrices in materialised mode.

use psa_core::{Problem, Solution};

use crate::kernels::pairwise_cost::{CostBuffers, CostParams, PairwiseCost};
use crate::kernels::sinkhorn_lse::{
    GroupState, Params, SinkhornBindings, SinkhornLse, SinkhornPipelines, WORKGROUP,
};
use crate::kernels::{Specialisation, sinkhorn_lse};
use crate::util::{self, ByteCounter};
use crate::{GpuContext, GpuError};

/// The column split aims at this many workgroups per half-iteration (an H100 holds ~1000
/// resident 256-invocation workgroups; twice that evens out the tail).
pub const TARGET_BLOCKS: u64 = 2048;
/// A column chunk spans at least this many tiles, so per-row partials stay few.
pub const MIN_TILES_PER_CHUNK: u32 = 4;

/// What the solver needs of one group besides its scores.
#[derive(Clone, Debug)]
pub struct GroupSetup {
    /// λ of each ε stage; the last is the group's target λ.
    pub stages: Vec<f64>,
    pub tol: f64,
    pub stage_tol: f64,
    /// Error below which a stalled last stage counts as converged (the f32 plateau).
    pub floor: f64,
    /// τ of the KL-relaxed marginals, 0 for balanced.
    pub tau: f64,
    pub max_iter: u32,
}

/// One half-iteration's view: its parameters, block count and bind group.
#[derive(Debug)]
struct Half {
    params: Params,
    params_buffer: wgpu::Buffer,
    bind_group: wgpu::BindGroup,
}

/// Every buffer of one problem and the pipelines that use them.
#[derive(Debug)]
pub struct Workspace {
    pub n1: u32,
    pub n2: u32,
    pub spec: Specialisation,
    pub materialised: bool,
    /// The groups' initial state (layout, schedule position, tolerances).
    pub initial: Vec<GroupState>,
    pub bytes: ByteCounter,
    pub pipelines: std::sync::Arc<SinkhornPipelines>,
    pub scores: wgpu::Buffer,
    pub pots: wgpu::Buffer,
    pub groups: wgpu::Buffer,
    pub scratch: wgpu::Buffer,
    pub row_group: wgpu::Buffer,
    /// The cost matrices (materialised mode; a 16-byte dummy otherwise).
    pub cost: wgpu::Buffer,
    halves: [Half; 2],
    staging: wgpu::Buffer,
}

/// Everything laid out on the host before upload.
struct Layout {
    states: Vec<GroupState>,
    blocks: [Vec<[u32; 4]>; 2],
    partials: u64,
    schedule: Vec<f32>,
    cost_elements: u64,
}

impl Workspace {
    /// Uploads `problem` (and `start` potentials, else zeros) and, in materialised mode,
    /// computes every group's cost matrix.
    pub fn new(
        ctx: &GpuContext,
        sinkhorn: &SinkhornLse,
        pairwise: &PairwiseCost,
        problem: &Problem,
        setups: &[GroupSetup],
        materialised: bool,
        start: Option<&Solution>,
    ) -> Result<Workspace, GpuError> {
        let spec = Specialisation::new(problem.dim(), problem.metric);
        let pipelines = sinkhorn.pipelines(ctx, spec);
        let layout = plan(problem, setups, pipelines.tile_cols)?;
        let (n1, n2) = side_totals(problem);
        let bytes = ByteCounter::default();
        let usage = wgpu::BufferUsages::COPY_SRC;
        let none = wgpu::BufferUsages::empty();
        let storage =
            |label: &str, data: &[u8], extra| util::storage_init(ctx, &bytes, label, data, extra);
        let scores = storage(
            "scores",
            bytemuck::cast_slice(&pack_scores(problem, spec.dim4)),
            none,
        );
        let pots = storage(
            "potentials",
            bytemuck::cast_slice(&initial_potentials(problem, start)),
            usage,
        );
        let groups = storage("groups", bytemuck::cast_slice(&layout.states), usage);
        let row_group = storage(
            "row_group",
            bytemuck::cast_slice(&row_groups(problem)),
            none,
        );
        let schedule = storage("schedule", bytemuck::cast_slice(&layout.schedule), none);
        let scratch = util::buffer(
            ctx,
            &bytes,
            "scratch",
            u64::from(n1 + n2) * 4,
            storage_usage() | usage,
        );
        let partials = util::buffer(
            ctx,
            &bytes,
            "partials",
            layout.partials * 8,
            storage_usage(),
        );
        let cost_bytes = if materialised {
            layout.cost_elements * 4
        } else {
            16
        };
        let cost = util::buffer(ctx, &bytes, "cost", cost_bytes, storage_usage() | usage);
        let staging = util::staging(
            ctx,
            &bytes,
            "groups read-back",
            std::mem::size_of_val(layout.states.as_slice()) as u64,
        );
        let n_groups = layout.states.len() as u32;
        let half_params = [
            Params {
                half: 0,
                n_rows: n1,
                row_base: 0,
                col_base: n1,
                n_groups,
                ..Params::default()
            },
            Params {
                half: 1,
                n_rows: n2,
                row_base: n1,
                col_base: 0,
                n_groups,
                ..Params::default()
            },
        ];
        let blocks: Vec<wgpu::Buffer> = layout
            .blocks
            .iter()
            .map(|b| storage("blocks", bytemuck::cast_slice(b), none))
            .collect();
        let halves = [0, 1].map(|h| {
            let params = Params {
                n_blocks: layout.blocks[h].len() as u32,
                ..half_params[h]
            };
            let params_buffer = util::uniform(ctx, "sinkhorn params", &params);
            let bind_group = sinkhorn.bind_group(
                ctx,
                &params_buffer,
                &SinkhornBindings {
                    scores: &scores,
                    pots: &pots,
                    blocks: &blocks[h],
                    partials: &partials,
                    groups: &groups,
                    scratch: &scratch,
                    row_group: &row_group,
                    schedule: &schedule,
                    cost: &cost,
                },
            );
            Half {
                params,
                params_buffer,
                bind_group,
            }
        });
        let workspace = Workspace {
            n1,
            n2,
            spec,
            materialised,
            initial: layout.states,
            bytes,
            pipelines,
            scores,
            pots,
            groups,
            scratch,
            row_group,
            cost,
            halves,
            staging,
        };
        if materialised {
            workspace.fill_costs(ctx, pairwise);
        }
        Ok(workspace)
    }

    /// Runs `pairwise_cost` once per group into the cost buffer.
    fn fill_costs(&self, ctx: &GpuContext, pairwise: &PairwiseCost) {
        let params: Vec<CostParams> = self
            .initial
            .iter()
            .map(|s| CostParams {
                n1: s.n1,
                n2: s.n2,
                row1: s.off1,
                row2: self.n1 + s.off2,
                cost_off: s.cost_off,
                _pad: [0; 3],
            })
            .collect();
        let params_buffer = util::storage_init(
            ctx,
            &ByteCounter::default(),
            "cost params",
            &PairwiseCost::params_bytes(&params),
            wgpu::BufferUsages::UNIFORM,
        );
        let mut encoder = ctx.device.create_command_encoder(&Default::default());
        let buffers = CostBuffers {
            params: &params_buffer,
            scores: &self.scores,
            cost: &self.cost,
        };
        pairwise.encode(ctx, &mut encoder, self.spec, &params, &buffers);
        ctx.queue.submit([encoder.finish()]);
    }

    /// Encodes one half-iteration: the LSE blocks, then the merge of chunks into potentials.
    pub fn encode_half(&self, pass: &mut wgpu::ComputePass<'_>, half: usize) {
        let h = &self.halves[half];
        pass.set_bind_group(0, &h.bind_group, &[]);
        let lse = if self.materialised {
            &self.pipelines.lse_materialised
        } else {
            &self.pipelines.lse_streaming
        };
        pass.set_pipeline(lse);
        let (x, y) = util::grid(h.params.n_blocks);
        pass.dispatch_workgroups(x, y, 1);
        pass.set_pipeline(&self.pipelines.combine);
        let (x, y) = util::grid(h.params.n_rows.div_ceil(WORKGROUP));
        pass.dispatch_workgroups(x, y, 1);
    }

    /// Encodes one full iteration (f-update, g-update, per-group control).
    pub fn encode_iteration(&self, pass: &mut wgpu::ComputePass<'_>) {
        self.encode_half(pass, 0);
        self.encode_half(pass, 1);
        pass.set_bind_group(0, &self.halves[0].bind_group, &[]);
        pass.set_pipeline(&self.pipelines.control);
        let (x, y) = util::grid(self.initial.len() as u32);
        pass.dispatch_workgroups(x, y, 1);
    }

    /// Submits `count` iterations in one command buffer (no host round trip in between).
    pub fn run_iterations(&self, ctx: &GpuContext, count: usize) {
        let mut encoder = ctx.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            for _ in 0..count {
                self.encode_iteration(&mut pass);
            }
        }
        ctx.queue.submit([encoder.finish()]);
    }

    /// Leaves each modality-1 row's `LSE_j(g_j/λ − log n2 − C_ij/λ)` (log2 units) in
    /// `scratch`, for the coupling outputs.
    pub fn compute_row_lse(&self, ctx: &GpuContext) {
        let params = Params {
            mode: 1,
            ..self.halves[0].params
        };
        ctx.queue.write_buffer(
            &self.halves[0].params_buffer,
            0,
            bytemuck::bytes_of(&params),
        );
        let mut encoder = ctx.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            self.encode_half(&mut pass, 0);
        }
        ctx.queue.submit([encoder.finish()]);
    }

    /// The groups' current state (the small read-back of the convergence check).
    pub fn read_states(&self, ctx: &GpuContext) -> Result<Vec<GroupState>, GpuError> {
        util::read_back(ctx, &self.groups, &self.staging, self.initial.len())
    }

    /// Potentials `f` (all groups) then `g`, as f32.
    pub fn read_potentials(&self, ctx: &GpuContext) -> Result<Vec<f32>, GpuError> {
        util::read_back_once(ctx, &self.pots, (self.n1 + self.n2) as usize)
    }

    /// Pairs of one iteration's half, all groups.
    pub fn pairs(&self) -> u64 {
        self.initial
            .iter()
            .map(|s| u64::from(s.n1) * u64::from(s.n2))
            .sum()
    }
}

fn storage_usage() -> wgpu::BufferUsages {
    wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST
}

/// Rows of each modality, all groups.
fn side_totals(problem: &Problem) -> (u32, u32) {
    let n1: usize = problem.groups.iter().map(|g| g.n1()).sum();
    let n2: usize = problem.groups.iter().map(|g| g.n2()).sum();
    (n1 as u32, n2 as u32)
}

/// Scores of all rows (modality 1 then 2) as f32, each row padded with zeros to `4 · dim4`.
fn pack_scores(problem: &Problem, dim4: u32) -> Vec<f32> {
    let width = 4 * dim4 as usize;
    let rows = problem
        .groups
        .iter()
        .flat_map(|g| g.x1.rows())
        .chain(problem.groups.iter().flat_map(|g| g.x2.rows()));
    let mut out = Vec::new();
    for row in rows {
        let start = out.len();
        out.extend(row.iter().map(|&v| v as f32));
        out.resize(start + width, 0.0);
    }
    out
}

fn initial_potentials(problem: &Problem, start: Option<&Solution>) -> Vec<f32> {
    match start {
        None => {
            let (n1, n2) = side_totals(problem);
            vec![0.0; (n1 + n2) as usize]
        }
        Some(s) => {
            let f = s.groups.iter().flat_map(|g| g.f.iter());
            let g = s.groups.iter().flat_map(|g| g.g.iter());
            f.chain(g).map(|&v| v as f32).collect()
        }
    }
}

fn row_groups(problem: &Problem) -> Vec<u32> {
    let side = |n: fn(&psa_core::Group) -> usize| {
        problem
            .groups
            .iter()
            .enumerate()
            .flat_map(move |(i, g)| std::iter::repeat_n(i as u32, n(g)))
    };
    side(psa_core::Group::n1)
        .chain(side(psa_core::Group::n2))
        .collect()
}

/// Column chunks of a side with `n_cols` columns: `(chunks, columns per chunk)`.
fn chunking(n_cols: u32, factor: u64, tile_cols: u32) -> (u32, u32) {
    let useful = n_cols.div_ceil(tile_cols * MIN_TILES_PER_CHUNK).max(1);
    let wanted = factor.min(u64::from(useful)) as u32;
    let chunk_cols = n_cols.div_ceil(wanted).next_multiple_of(tile_cols);
    (n_cols.div_ceil(chunk_cols), chunk_cols)
}

/// Lays out groups, blocks, partials, schedules and cost matrices.
fn plan(problem: &Problem, setups: &[GroupSetup], tile_cols: u32) -> Result<Layout, GpuError> {
    check_sizes(problem)?;
    let row_blocks = |n: fn(&psa_core::Group) -> usize| -> u64 {
        problem
            .groups
            .iter()
            .map(|g| (n(g) as u64).div_ceil(u64::from(WORKGROUP)))
            .sum()
    };
    let factors = [
        TARGET_BLOCKS.div_ceil(row_blocks(psa_core::Group::n1).max(1)),
        TARGET_BLOCKS.div_ceil(row_blocks(psa_core::Group::n2).max(1)),
    ];
    let mut layout = Layout {
        states: Vec::new(),
        blocks: [Vec::new(), Vec::new()],
        partials: 0,
        schedule: Vec::new(),
        cost_elements: 0,
    };
    let (mut off1, mut off2, mut part1, mut part2) = (0u32, 0u32, 0u64, 0u64);
    for (index, (group, setup)) in problem.groups.iter().zip(setups).enumerate() {
        let (n1, n2) = (group.n1() as u32, group.n2() as u32);
        let (chunks1, chunk_cols1) = chunking(n2, factors[0], tile_cols);
        let (chunks2, chunk_cols2) = chunking(n1, factors[1], tile_cols);
        push_blocks(&mut layout.blocks[0], index as u32, n1, chunks1);
        push_blocks(&mut layout.blocks[1], index as u32, n2, chunks2);
        layout.states.push(GroupState {
            off1,
            n1,
            off2,
            n2,
            chunks1,
            chunks2,
            chunk_cols1,
            chunk_cols2,
            part1: part1 as u32,
            part2: part2 as u32,
            cost_off: layout.cost_elements as u32,
            sched_off: layout.schedule.len() as u32,
            n_stages: setup.stages.len() as u32,
            max_iter: setup.max_iter,
            is_active: 1,
            lambda: setup.stages[0] as f32,
            tau: setup.tau as f32,
            tol: setup.tol as f32,
            stage_tol: setup.stage_tol as f32,
            error: f32::INFINITY,
            best: f32::MAX,
            floor: setup.floor as f32,
            ..GroupState::default()
        });
        layout
            .schedule
            .extend(setup.stages.iter().map(|&l| l as f32));
        off1 += n1;
        off2 += n2;
        part1 += u64::from(n1) * u64::from(chunks1);
        part2 += u64::from(n2) * u64::from(chunks2);
        layout.cost_elements += u64::from(n1) * u64::from(n2);
    }
    layout.partials = part1.max(part2);
    if layout.partials > u64::from(u32::MAX) {
        return Err(too_large("the column-chunk partials exceed 2^32 entries"));
    }
    Ok(layout)
}

fn push_blocks(blocks: &mut Vec<[u32; 4]>, group: u32, n_rows: u32, chunks: u32) {
    for first in (0..n_rows).step_by(WORKGROUP as usize) {
        for chunk in 0..chunks {
            blocks.push([group, first, chunk, 0]);
        }
    }
}

/// Every index the kernels compute must fit in u32.
fn check_sizes(problem: &Problem) -> Result<(), GpuError> {
    let dim = problem.dim();
    if dim > crate::kernels::MAX_DIM {
        return Err(GpuError::Input {
            what: "scores",
            message: format!(
                "{dim} columns; the GPU kernels handle T ≤ {} (use --backend cpu)",
                crate::kernels::MAX_DIM
            ),
        });
    }
    let (n1, n2) = (
        problem.groups.iter().map(|g| g.n1() as u64).sum::<u64>(),
        problem.groups.iter().map(|g| g.n2() as u64).sum::<u64>(),
    );
    if (n1 + n2) * dim.div_ceil(4) as u64 > u64::from(u32::MAX) {
        return Err(too_large("more score vec4s than 2^32"));
    }
    Ok(())
}

fn too_large(message: &str) -> GpuError {
    GpuError::Input {
        what: "problem",
        message: format!("{message}; split it with --shard"),
    }
}

/// Streaming LSE needs this much workgroup memory; checked once per matcher.
pub fn required_workgroup_bytes() -> u32 {
    sinkhorn_lse::WORKGROUP_BYTES
}

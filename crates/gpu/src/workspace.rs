//! The device buffers of one problem, uploaded once and kept for the solve and every output
//! (DESIGN.md "Seams": the GPU keeps its device state for the life of the result), and the
//! dispatches of the log-domain Sinkhorn iteration of METHOD.md step 3 over them.
//!
//! Where each row, block and partial lives is decided by [`crate::plan::Plan`]; this module
//! only creates the buffers, encodes the dispatches and reads back. Memory is
//! `O((n1 + n2) · T)` plus the chunk partials.

use std::sync::Arc;

use psa_core::{Problem, Solution};

use crate::kernels::sinkhorn_lse::{
    Mode, Params, SinkhornBindings, SinkhornLse, SinkhornPipelines,
};
use crate::kernels::{GroupState, Specialisation};
use crate::plan::{GroupSetup, Plan, WORKGROUP, scale_split};
use crate::util::{self, ByteCounter};
use crate::{GpuContext, GpuError};

/// One half-iteration's view: its parameters and bind group.
#[derive(Debug)]
struct Half {
    params: Params,
    params_buffer: wgpu::Buffer,
    bind_group: wgpu::BindGroup,
}

/// Every buffer of one problem and the pipelines that use them.
#[derive(Debug)]
pub struct Workspace {
    pub plan: Plan,
    pub spec: Specialisation,
    /// The groups' initial state (layout, schedule position, tolerances).
    pub initial: Vec<GroupState>,
    pub bytes: ByteCounter,
    pub pipelines: Arc<SinkhornPipelines>,
    pub scores: wgpu::Buffer,
    pub scores_lo: wgpu::Buffer,
    pub pots: wgpu::Buffer,
    pub groups: wgpu::Buffer,
    pub row_group: wgpu::Buffer,
    /// Per padded row: the error terms of the last half, or Λ after [`Workspace::row_lse`].
    pub scratch: wgpu::Buffer,
    halves: [Half; 2],
    staging: wgpu::Buffer,
}

impl Workspace {
    /// Uploads `problem` with `start` potentials (else zeros) for the given group setups.
    pub fn new(
        ctx: &GpuContext,
        sinkhorn: &SinkhornLse,
        spec: Specialisation,
        problem: &Problem,
        setups: &[GroupSetup],
        start: Option<&Solution>,
    ) -> Result<Workspace, GpuError> {
        let plan = Plan::for_problem(problem, spec.rows_per_block())?;
        let pipelines = sinkhorn.pipelines(ctx, spec);
        let (states, schedule) = plan.group_states(setups);
        let packed = plan.pack_scores(problem, spec.centred);
        let bytes = ByteCounter::default();
        let copy_src = wgpu::BufferUsages::COPY_SRC;
        let none = wgpu::BufferUsages::empty();
        let storage =
            |label: &str, data: &[u8], extra| util::storage_init(ctx, &bytes, label, data, extra);
        let scores = storage("scores", bytemuck::cast_slice(&packed.hi), none);
        let scores_lo = storage("scores_lo", bytemuck::cast_slice(&packed.lo), none);
        let pots = storage(
            "potentials",
            bytemuck::cast_slice(&plan.pack_potentials(start)),
            copy_src,
        );
        let groups = storage("groups", bytemuck::cast_slice(&states), copy_src);
        let row_group = storage("row_group", bytemuck::cast_slice(&plan.row_groups()), none);
        let schedule = storage("schedule", bytemuck::cast_slice(&schedule), none);
        let rows = u64::from(plan.total_rows());
        let scratch = util::buffer(ctx, &bytes, "scratch", rows * 4, storage_usage() | copy_src);
        let partials = util::buffer(ctx, &bytes, "partials", plan.partials * 8, storage_usage());
        let staging = util::staging(
            ctx,
            &bytes,
            "groups read-back",
            std::mem::size_of_val(states.as_slice()) as u64,
        );
        let blocks: Vec<wgpu::Buffer> = plan
            .blocks
            .iter()
            .map(|b| storage("blocks", bytemuck::cast_slice(b), none))
            .collect();
        let halves = [0, 1].map(|h| {
            let params = Params {
                half: h as u32,
                n_blocks: plan.blocks[h].len() as u32,
                n_rows: plan.padded[h],
                row_base: [0, plan.padded[0]][h],
                col_base: [plan.padded[0], 0][h],
                mode: Mode::Update as u32,
                n_groups: states.len() as u32,
                _pad: 0,
            };
            let params_buffer = util::uniform(ctx, "sinkhorn params", &params);
            let bind_group = sinkhorn.bind_group(
                ctx,
                &params_buffer,
                &SinkhornBindings {
                    scores: &scores,
                    scores_lo: &scores_lo,
                    pots: &pots,
                    groups: &groups,
                    row_group: &row_group,
                    blocks: &blocks[h],
                    partials: &partials,
                    scratch: &scratch,
                    schedule: &schedule,
                },
            );
            Half {
                params,
                params_buffer,
                bind_group,
            }
        });
        Ok(Workspace {
            plan,
            spec,
            initial: states,
            bytes,
            pipelines,
            scores,
            scores_lo,
            pots,
            groups,
            row_group,
            scratch,
            halves,
            staging,
        })
    }

    /// Encodes one half-iteration: the LSE blocks, then the merge of chunks.
    pub fn encode_half(&self, pass: &mut wgpu::ComputePass<'_>, half: usize) {
        let h = &self.halves[half];
        pass.set_bind_group(0, &h.bind_group, &[]);
        pass.set_pipeline(&self.pipelines.lse);
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
        self.submit(ctx, |pass| {
            for _ in 0..count {
                self.encode_iteration(pass);
            }
        });
    }

    fn submit(&self, ctx: &GpuContext, encode: impl FnOnce(&mut wgpu::ComputePass<'_>)) {
        let mut encoder = ctx.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            encode(&mut pass);
        }
        ctx.queue.submit([encoder.finish()]);
    }

    /// Sets what `combine` does in both halves from now on.
    fn set_mode(&self, ctx: &GpuContext, mode: Mode) {
        for h in &self.halves {
            let params = Params {
                mode: mode as u32,
                ..h.params
            };
            ctx.queue
                .write_buffer(&h.params_buffer, 0, bytemuck::bytes_of(&params));
        }
    }

    /// The final check of the plan of the current potentials, per group: its (row, column)
    /// errors ([`Plan::side_errors`]: balanced, the L1 marginal errors `‖M 1 − a‖₁`,
    /// `‖Mᵀ 1 − b‖₁`; KL-relaxed, the fixed-point residuals), from every term recomputed in
    /// double-f32 and finished in f64 on the host.
    pub fn marginal_errors(
        &self,
        ctx: &GpuContext,
        setups: &[GroupSetup],
    ) -> Result<Vec<(f64, f64)>, GpuError> {
        let pots = if setups.iter().any(|s| s.tau > 0.0) {
            self.read_potentials(ctx)?
        } else {
            Vec::new()
        };
        self.set_mode(ctx, Mode::Check);
        let scratch_rows = self.plan.total_rows() as usize;
        let mut sides = Vec::with_capacity(2);
        for half in 0..2 {
            self.submit(ctx, |pass| self.encode_half(pass, half));
            let scratch = util::read_back_once::<f32>(ctx, &self.scratch, scratch_rows)?;
            sides.push(self.plan.side_errors(&scratch, &pots, half, setups));
        }
        self.set_mode(ctx, Mode::Update);
        Ok(sides[0]
            .iter()
            .copied()
            .zip(sides[1].iter().copied())
            .collect())
    }

    /// Groups that ran out of iterations inside an earlier ε stage move to the target λ: their
    /// potentials are rescaled to its log2 units and their state to its stage, so that the
    /// final check and every output see the plan that is returned (the potentials at the
    /// target λ), as on the CPU.
    pub fn finish_schedules(
        &self,
        ctx: &GpuContext,
        states: &mut [GroupState],
        setups: &[GroupSetup],
    ) -> Result<(), GpuError> {
        let behind: Vec<usize> = (0..states.len())
            .filter(|&g| states[g].stage + 1 < states[g].n_stages)
            .collect();
        if behind.is_empty() {
            return Ok(());
        }
        let mut pots = self.read_potentials(ctx)?;
        for &g in &behind {
            let stages = &setups[g].stages;
            let (from, to) = (stages[states[g].stage as usize], stages[stages.len() - 1]);
            // u = p · log2(e)/λ: from the stage's λ to the target's.
            self.plan.rescale_potentials(&mut pots, g, from / to);
            let (s_hi, s_lo) = scale_split(to);
            let state = &mut states[g];
            state.stage = state.n_stages - 1;
            state.kappa = setups[g].kappa(to);
            state.s_hi = s_hi;
            state.s_lo = s_lo;
            self.write_state(ctx, g, state);
        }
        ctx.queue
            .write_buffer(&self.pots, 0, bytemuck::cast_slice(&pots));
        Ok(())
    }

    /// Leaves each modality-1 row's Λ (log2, relative to its frame) in `scratch`, for the
    /// coupling outputs.
    pub fn row_lse(&self, ctx: &GpuContext) {
        self.set_mode(ctx, Mode::RowLse);
        self.submit(ctx, |pass| self.encode_half(pass, 0));
        self.set_mode(ctx, Mode::Update);
    }

    /// The groups' current state (the small read-back of the convergence check).
    pub fn read_states(&self, ctx: &GpuContext) -> Result<Vec<GroupState>, GpuError> {
        util::read_back(ctx, &self.groups, &self.staging, self.initial.len())
    }

    /// Overwrites group `index`'s device state (to resume a group).
    pub fn write_state(&self, ctx: &GpuContext, index: usize, state: &GroupState) {
        let offset = (index * std::mem::size_of::<GroupState>()) as u64;
        ctx.queue
            .write_buffer(&self.groups, offset, bytemuck::bytes_of(state));
    }

    /// Potentials of every row as (hi, lo) pairs.
    pub fn read_potentials(&self, ctx: &GpuContext) -> Result<Vec<[f32; 2]>, GpuError> {
        util::read_back_once(ctx, &self.pots, self.plan.total_rows() as usize)
    }

    /// Pairs of one iteration's half, all groups.
    pub fn pairs(&self) -> u64 {
        self.plan.pairs()
    }
}

fn storage_usage() -> wgpu::BufferUsages {
    wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST
}

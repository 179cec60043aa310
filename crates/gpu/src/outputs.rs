//! Outputs of a solution computed on the GPU (METHOD.md "Outputs a user needs"): top-k rows of
//! `P(j|i)`, barycentric projections `Σ_j P(j|i) y_j` and the trace diagonal `P(partner_i|i)`.
//!
//! Each is two streamed passes over the pairs of every group: the row log-sum-exp (the
//! Sinkhorn f-update kernel in LSE mode), then the output kernel of `coupling.wgsl`. Any
//! solution works as input (from this matcher or the CPU one): its potentials are uploaded.

use ndarray::{Array2, ArrayView2};
use psa_core::{Problem, Solution, TopK};

use crate::kernels::coupling::{CouplingBindings, CouplingParams, MAX_TOP_K, PROJECT_BLOCK};
use crate::kernels::sinkhorn_lse::WORKGROUP;
use crate::util::{self, ByteCounter};
use crate::workspace::{GroupSetup, Workspace};
use crate::{GpuError, GpuMatcher};

/// Which coupling entry point to run.
#[derive(Clone, Copy)]
enum Output {
    TopK,
    Project,
    Diagonal,
}

/// Output buffers and inputs of one coupling call.
struct OutputBuffers<'a> {
    out_index: &'a wgpu::Buffer,
    out_value: &'a wgpu::Buffer,
    y: &'a wgpu::Buffer,
    partner: &'a wgpu::Buffer,
}

impl GpuMatcher {
    /// Each row's `k` largest `P(j|i)` per group (group-local indices, −1 padding), largest
    /// first, ties by lower index: [`psa_core::Coupling::top_k`] with no mass cut.
    pub fn top_k(
        &self,
        problem: &Problem,
        solution: &Solution,
        k: usize,
    ) -> Result<Vec<TopK>, GpuError> {
        self.top_k_mass(problem, solution, k, None)
    }

    /// [`GpuMatcher::top_k`] keeping, per row, only the fewest leading entries whose weights
    /// reach `mass` (as [`psa_core::coupling::select_top`]); the cut is applied on the host.
    pub fn top_k_mass(
        &self,
        problem: &Problem,
        solution: &Solution,
        k: usize,
        mass: Option<f64>,
    ) -> Result<Vec<TopK>, GpuError> {
        if k > MAX_TOP_K {
            return Err(GpuError::Input {
                what: "--top-k",
                message: format!("{k} is above the GPU limit of {MAX_TOP_K} (use --backend cpu)"),
            });
        }
        let ws = self.output_workspace(problem, solution)?;
        let n1 = ws.n1 as usize;
        let (index, value) = if k == 0 {
            (Vec::new(), Vec::new())
        } else {
            let bytes = ByteCounter::default();
            let out_index = util::buffer(
                &self.ctx,
                &bytes,
                "top-k index",
                (n1 * k * 4) as u64,
                out_usage(),
            );
            let out_value = util::buffer(
                &self.ctx,
                &bytes,
                "top-k weight",
                (n1 * k * 4) as u64,
                out_usage(),
            );
            let dummy = util::buffer(&self.ctx, &bytes, "unused", 16, out_usage());
            let buffers = OutputBuffers {
                out_index: &out_index,
                out_value: &out_value,
                y: &dummy,
                partner: &dummy,
            };
            let params = CouplingParams {
                k: k as u32,
                ..self.params(&ws)
            };
            self.run_output(&ws, Output::TopK, &buffers, &[params]);
            (
                util::read_back_once::<i32>(&self.ctx, &out_index, n1 * k)?,
                util::read_back_once::<f32>(&self.ctx, &out_value, n1 * k)?,
            )
        };
        Ok(ws
            .initial
            .iter()
            .map(|s| {
                let rows = s.off1 as usize * k..(s.off1 + s.n1) as usize * k;
                top_k_of_group(&index[rows.clone()], &value[rows], s.n1 as usize, k, mass)
            })
            .collect())
    }

    /// Barycentric projection `Σ_j P(j|i) y_j` of one modality-2 matrix per group (`n2 × d`,
    /// group order), as [`psa_core::Coupling::project`].
    pub fn project(
        &self,
        problem: &Problem,
        solution: &Solution,
        y: &[ArrayView2<'_, f64>],
    ) -> Result<Vec<Array2<f64>>, GpuError> {
        check_projection_inputs(problem, y)?;
        let width = y.iter().map(|m| m.ncols()).max().unwrap_or(0).div_ceil(4) as u32;
        let ws = self.output_workspace(problem, solution)?;
        if width == 0 {
            return Ok(problem
                .groups
                .iter()
                .map(|g| Array2::zeros((g.n1(), 0)))
                .collect());
        }
        let bytes = ByteCounter::default();
        let y_buffer = util::storage_init(
            &self.ctx,
            &bytes,
            "y",
            bytemuck::cast_slice(&pack_rows(y, width as usize * 4)),
            wgpu::BufferUsages::empty(),
        );
        let values = ws.n1 as usize * width as usize * 4;
        let out_value = util::buffer(
            &self.ctx,
            &bytes,
            "projection",
            (values * 4) as u64,
            out_usage(),
        );
        let unused_out = util::buffer(&self.ctx, &bytes, "unused output", 16, out_usage());
        let unused_in = util::buffer(&self.ctx, &bytes, "unused input", 16, out_usage());
        let buffers = OutputBuffers {
            out_index: &unused_out,
            out_value: &out_value,
            y: &y_buffer,
            partner: &unused_in,
        };
        let passes: Vec<CouplingParams> = (0..width)
            .step_by(PROJECT_BLOCK as usize)
            .map(|y_block| CouplingParams {
                y_width: width,
                y_block,
                ..self.params(&ws)
            })
            .collect();
        self.run_output(&ws, Output::Project, &buffers, &passes);
        let out = util::read_back_once::<f32>(&self.ctx, &out_value, values)?;
        Ok(ws
            .initial
            .iter()
            .zip(y)
            .map(|(s, ym)| {
                let stride = width as usize * 4;
                Array2::from_shape_fn((s.n1 as usize, ym.ncols()), |(i, c)| {
                    f64::from(out[(s.off1 as usize + i) * stride + c])
                })
            })
            .collect())
    }

    /// `P(partner_i | i)` for every row of the groups that have partners (the trace metric:
    /// partner `i ↔ i`), `None` for the others.
    pub fn diagonal(
        &self,
        problem: &Problem,
        solution: &Solution,
        partners: &[Option<Vec<usize>>],
    ) -> Result<Vec<Option<Vec<f64>>>, GpuError> {
        let partner = pack_partners(problem, partners)?;
        let ws = self.output_workspace(problem, solution)?;
        let bytes = ByteCounter::default();
        let partner_buffer = util::storage_init(
            &self.ctx,
            &bytes,
            "partners",
            bytemuck::cast_slice(&partner),
            wgpu::BufferUsages::empty(),
        );
        let out_value = util::buffer(
            &self.ctx,
            &bytes,
            "diagonal",
            u64::from(ws.n1) * 4,
            out_usage(),
        );
        let unused_out = util::buffer(&self.ctx, &bytes, "unused output", 16, out_usage());
        let unused_in = util::buffer(&self.ctx, &bytes, "unused input", 16, out_usage());
        let buffers = OutputBuffers {
            out_index: &unused_out,
            out_value: &out_value,
            y: &unused_in,
            partner: &partner_buffer,
        };
        self.run_output(&ws, Output::Diagonal, &buffers, &[self.params(&ws)]);
        let out = util::read_back_once::<f32>(&self.ctx, &out_value, ws.n1 as usize)?;
        Ok(ws
            .initial
            .iter()
            .zip(partners)
            .map(|(s, p)| {
                p.as_ref().map(|_| {
                    out[s.off1 as usize..(s.off1 + s.n1) as usize]
                        .iter()
                        .map(|&v| f64::from(v))
                        .collect()
                })
            })
            .collect())
    }

    /// Every group's dense cost matrix `C_ij` (`n1 × n2`), computed by `pairwise_cost.wgsl`
    /// as the materialised Sinkhorn mode uses it; only for groups small enough to hold.
    pub fn cost_matrices(&self, problem: &Problem) -> Result<Vec<Array2<f64>>, GpuError> {
        let elements: u64 = problem.groups.iter().map(psa_core::Group::pairs).sum();
        if elements > u64::from(u32::MAX) / 4 {
            return Err(GpuError::Input {
                what: "cost matrices",
                message: format!("{elements} entries are too many to materialise"),
            });
        }
        let setups: Vec<GroupSetup> = problem
            .groups
            .iter()
            .map(|_| GroupSetup {
                stages: vec![1.0],
                tol: 0.0,
                stage_tol: 0.0,
                floor: 0.0,
                tau: 0.0,
                max_iter: 1,
            })
            .collect();
        let ws = Workspace::new(
            &self.ctx,
            &self.sinkhorn,
            &self.pairwise,
            problem,
            &setups,
            true,
            None,
        )?;
        let cost = util::read_back_once::<f32>(&self.ctx, &ws.cost, elements as usize)?;
        Ok(ws
            .initial
            .iter()
            .map(|s| {
                let at = s.cost_off as usize;
                Array2::from_shape_fn((s.n1 as usize, s.n2 as usize), |(i, j)| {
                    f64::from(cost[at + i * s.n2 as usize + j])
                })
            })
            .collect())
    }

    /// Uploads a solution's potentials at its λ and leaves each row's LSE in `scratch`.
    fn output_workspace(
        &self,
        problem: &Problem,
        solution: &Solution,
    ) -> Result<Workspace, GpuError> {
        if solution.groups.len() != problem.groups.len() {
            return Err(GpuError::Input {
                what: "solution",
                message: format!(
                    "{} groups for a problem of {}",
                    solution.groups.len(),
                    problem.groups.len()
                ),
            });
        }
        let setups: Vec<GroupSetup> = solution
            .groups
            .iter()
            .map(|s| GroupSetup {
                stages: vec![s.epsilon],
                tol: 0.0,
                stage_tol: 0.0,
                floor: 0.0,
                tau: 0.0,
                max_iter: 1,
            })
            .collect();
        let ws = self.workspace(problem, &setups, Some(solution))?;
        ws.compute_row_lse(&self.ctx);
        Ok(ws)
    }

    fn params(&self, ws: &Workspace) -> CouplingParams {
        CouplingParams {
            n_rows: ws.n1,
            col_base: ws.n1,
            ..CouplingParams::default()
        }
    }

    /// Runs one coupling entry point once per parameter set (one submission each).
    fn run_output(
        &self,
        ws: &Workspace,
        which: Output,
        out: &OutputBuffers<'_>,
        passes: &[CouplingParams],
    ) {
        let pipelines = self.coupling.pipelines(&self.ctx, ws.spec);
        let pipeline = match which {
            Output::TopK => &pipelines.top_k,
            Output::Project => &pipelines.project,
            Output::Diagonal => &pipelines.diagonal,
        };
        let params_buffer = util::uniform(&self.ctx, "coupling params", &passes[0]);
        let bind_group = self.coupling.bind_group(
            &self.ctx,
            &params_buffer,
            &CouplingBindings {
                scores: &ws.scores,
                pots: &ws.pots,
                groups: &ws.groups,
                row_lse: &ws.scratch,
                row_group: &ws.row_group,
                out_index: out.out_index,
                out_value: out.out_value,
                y: out.y,
                partner: out.partner,
            },
        );
        let (x, y) = util::grid(ws.n1.div_ceil(WORKGROUP));
        for params in passes {
            self.ctx
                .queue
                .write_buffer(&params_buffer, 0, bytemuck::bytes_of(params));
            let mut encoder = self.ctx.device.create_command_encoder(&Default::default());
            {
                let mut pass = encoder.begin_compute_pass(&Default::default());
                pass.set_pipeline(pipeline);
                pass.set_bind_group(0, &bind_group, &[]);
                pass.dispatch_workgroups(x, y, 1);
            }
            self.ctx.queue.submit([encoder.finish()]);
        }
    }
}

fn out_usage() -> wgpu::BufferUsages {
    wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST
}

/// One group's top-k arrays, with the optional mass cut of `select_top`.
fn top_k_of_group(index: &[i32], value: &[f32], n1: usize, k: usize, mass: Option<f64>) -> TopK {
    let mut top = TopK {
        index: Array2::from_elem((n1, k), -1i64),
        weight: Array2::zeros((n1, k)),
    };
    for i in 0..n1 {
        let mut held = 0.0;
        for slot in 0..k {
            let j = index[i * k + slot];
            if j < 0 || mass.is_some_and(|m| held >= m) {
                break;
            }
            let w = f64::from(value[i * k + slot]);
            held += w;
            top.index[[i, slot]] = i64::from(j);
            top.weight[[i, slot]] = w;
        }
    }
    top
}

fn check_projection_inputs(problem: &Problem, y: &[ArrayView2<'_, f64>]) -> Result<(), GpuError> {
    if y.len() != problem.groups.len() {
        return Err(GpuError::Input {
            what: "projection",
            message: format!("{} matrices for {} groups", y.len(), problem.groups.len()),
        });
    }
    for (group, m) in problem.groups.iter().zip(y) {
        if m.nrows() != group.n2() {
            return Err(GpuError::Input {
                what: "projection",
                message: format!(
                    "group {}: {} rows of y for {} modality-2 rows",
                    group.label,
                    m.nrows(),
                    group.n2()
                ),
            });
        }
    }
    Ok(())
}

/// All groups' rows of `y` as f32, each padded with zeros to `width`.
fn pack_rows(y: &[ArrayView2<'_, f64>], width: usize) -> Vec<f32> {
    let mut out = Vec::new();
    for row in y.iter().flat_map(|m| m.rows()) {
        let start = out.len();
        out.extend(row.iter().map(|&v| v as f32));
        out.resize(start + width, 0.0);
    }
    out
}

/// Partners of all modality-1 rows (`u32::MAX` where a group has none).
fn pack_partners(problem: &Problem, partners: &[Option<Vec<usize>>]) -> Result<Vec<u32>, GpuError> {
    if partners.len() != problem.groups.len() {
        return Err(GpuError::Input {
            what: "partners",
            message: format!(
                "{} entries for {} groups",
                partners.len(),
                problem.groups.len()
            ),
        });
    }
    let mut out = Vec::new();
    for (group, p) in problem.groups.iter().zip(partners) {
        match p {
            None => out.extend(std::iter::repeat_n(u32::MAX, group.n1())),
            Some(p) => {
                if p.len() != group.n1() || p.iter().any(|&j| j >= group.n2()) {
                    return Err(GpuError::Input {
                        what: "partners",
                        message: format!(
                            "group {}: need {} partners, each below {}",
                            group.label,
                            group.n1(),
                            group.n2()
                        ),
                    });
                }
                out.extend(p.iter().map(|&j| j as u32));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mass_cut_keeps_the_fewest_leading_entries() {
        let index = [3, 1, 0, -1];
        let value = [0.5, 0.3, 0.2, 0.0];
        let top = top_k_of_group(&index, &value, 1, 4, Some(0.75));
        assert_eq!(top.index.row(0).to_vec(), vec![3, 1, -1, -1]);
        let all = top_k_of_group(&index, &value, 1, 4, None);
        assert_eq!(all.index.row(0).to_vec(), vec![3, 1, 0, -1]);
    }
}

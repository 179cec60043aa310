//! [`GpuSolved`]: a solved matching whose outputs the GPU computes from the device state it
//! keeps (DESIGN.md "Seams"; METHOD.md step 4 and "Outputs a user needs"): the scores and
//! potentials uploaded for the solve stay on the device for the life of the result, so a run
//! uploads its problem once whatever outputs it asks for.
//!
//! Every output streams over the pairs of each group with `coupling.wgsl`, after one pass that
//! leaves each row's log-normaliser Λ on the device (done once, when the result is made).
//! Pseudo-pairs are drawn on the GPU too, by inverting each row's cumulative `P(·|i)` at the
//! uniforms of [`psa_core::coupling::pair_uniforms`]: the same uniforms the CPU backend
//! inverts, so both backends draw the same pairs except where a uniform falls within f32
//! rounding (~1e-7) of a cumulative boundary. Sampling on the host from GPU row blocks would
//! move `n1 × n2` values over the bus; sampling from the exact f64 lazy coupling would cost the
//! CPU `O(n1 · n2 · T)`: both forfeit the GPU at the sizes it is for.

use std::ops::Range;

use ndarray::{Array2, ArrayView2};
use psa_core::matcher::MatcherError;
use psa_core::sinkhorn::mean_cost;
use psa_core::solved::{check_per_group, check_solution};
use psa_core::{Method, Problem, Solution, Solved, TopK};

use crate::kernels::coupling::{
    CouplingBindings, CouplingParams, MAX_TOP_K, OUT_WORKGROUP, Output, PROJECT_BLOCK,
    ROWS_WORKGROUP,
};
use crate::plan::GroupSetup;
use crate::util::{self, ByteCounter};
use crate::workspace::Workspace;
use crate::{GpuError, GpuMatcher};

/// Rows of the dense block written per dispatch (the grid's second dimension).
const ROWS_PER_DISPATCH: usize = 65_535;
/// Values of the dense block written per dispatch (256 MB).
const VALUES_PER_DISPATCH: usize = 1 << 26;
const NONE: u32 = u32::MAX;

/// A solution on the GPU with its problem and the device buffers that answer every output.
#[derive(Debug)]
pub struct GpuSolved<'m> {
    matcher: &'m GpuMatcher,
    problem: Problem,
    solution: Solution,
    /// `None` for a problem without groups.
    ws: Option<Workspace>,
}

/// Output buffers and inputs of one coupling dispatch sequence.
struct OutputBuffers<'a> {
    out_index: &'a wgpu::Buffer,
    out_value: &'a wgpu::Buffer,
    aux: &'a wgpu::Buffer,
}

impl<'m> GpuSolved<'m> {
    /// Wraps the workspace of a solve (its final potentials are on the device).
    pub(crate) fn new(
        matcher: &'m GpuMatcher,
        problem: Problem,
        solution: Solution,
        ws: Option<Workspace>,
    ) -> Result<GpuSolved<'m>, GpuError> {
        if let Some(ws) = &ws {
            ws.row_lse(&matcher.ctx);
        }
        Ok(GpuSolved {
            matcher,
            problem,
            solution,
            ws,
        })
    }

    /// Uploads `problem` and `solution` (from any backend, e.g. reloaded from disk) once.
    pub fn upload(
        matcher: &'m GpuMatcher,
        problem: Problem,
        solution: Solution,
    ) -> Result<GpuSolved<'m>, GpuError> {
        check_solution(&problem, &solution)?;
        let ws = if problem.groups.is_empty() {
            None
        } else {
            let setups: Vec<GroupSetup> = problem
                .groups
                .iter()
                .zip(&solution.groups)
                .map(|(g, s)| GroupSetup::outputs(s.epsilon, mean_cost(g, problem.metric)))
                .collect();
            Some(matcher.upload(&problem, &setups, Some(&solution))?)
        };
        GpuSolved::new(matcher, problem, solution, ws)
    }

    /// The solution (potentials widened to f64, reports).
    pub fn into_solution(self) -> Solution {
        self.solution
    }

    fn workspace(&self) -> Result<&Workspace, GpuError> {
        self.ws.as_ref().ok_or_else(|| GpuError::Input {
            what: "outputs",
            message: "the problem has no label group".into(),
        })
    }

    fn params(&self, ws: &Workspace) -> CouplingParams {
        CouplingParams {
            n_rows: ws.plan.padded[0],
            col_base: ws.plan.padded[0],
            ..CouplingParams::default()
        }
    }

    /// Runs one coupling entry point once per parameter set over `grid` workgroups.
    fn run(
        &self,
        ws: &Workspace,
        output: Output,
        out: &OutputBuffers<'_>,
        passes: &[(CouplingParams, (u32, u32))],
    ) {
        let ctx = &self.matcher.ctx;
        let pipelines = self.matcher.coupling.pipelines(ctx, ws.spec);
        let params_buffer = util::uniform(ctx, "coupling params", &passes[0].0);
        let bind_group = self.matcher.coupling.bind_group(
            ctx,
            &params_buffer,
            &CouplingBindings {
                scores: &ws.scores,
                scores_lo: &ws.scores_lo,
                pots: &ws.pots,
                groups: &ws.groups,
                row_group: &ws.row_group,
                row_lse: &ws.scratch,
                out_index: out.out_index,
                out_value: out.out_value,
                aux: out.aux,
            },
        );
        for (params, (x, y)) in passes {
            ctx.queue
                .write_buffer(&params_buffer, 0, bytemuck::bytes_of(params));
            let mut encoder = ctx.device.create_command_encoder(&Default::default());
            {
                let mut pass = encoder.begin_compute_pass(&Default::default());
                pass.set_pipeline(pipelines.get(output));
                pass.set_bind_group(0, &bind_group, &[]);
                pass.dispatch_workgroups(*x, *y, 1);
            }
            ctx.queue.submit([encoder.finish()]);
        }
    }

    /// The 1-D grid over every padded modality-1 row.
    fn row_grid(ws: &Workspace) -> (u32, u32) {
        util::grid(ws.plan.padded[0].div_ceil(OUT_WORKGROUP))
    }

    pub(crate) fn top_k_gpu(&self, k: usize, mass: Option<f64>) -> Result<Vec<TopK>, GpuError> {
        if k > MAX_TOP_K {
            return Err(GpuError::Input {
                what: "--top-k",
                message: format!("{k} is above the GPU limit of {MAX_TOP_K} (use --backend cpu)"),
            });
        }
        let Some(ws) = &self.ws else {
            return Ok(Vec::new());
        };
        let ctx = &self.matcher.ctx;
        let n1 = ws.plan.padded[0] as usize;
        let (index, value) = if k == 0 {
            (Vec::new(), Vec::new())
        } else {
            let bytes = ByteCounter::default();
            let size = (n1 * k * 4) as u64;
            let out_index = util::buffer(ctx, &bytes, "top-k index", size, out_usage());
            let out_value = util::buffer(ctx, &bytes, "top-k weight", size, out_usage());
            let aux = util::buffer(ctx, &bytes, "unused", 16, out_usage());
            let buffers = OutputBuffers {
                out_index: &out_index,
                out_value: &out_value,
                aux: &aux,
            };
            let params = CouplingParams {
                k: k as u32,
                ..self.params(ws)
            };
            self.run(ws, Output::TopK, &buffers, &[(params, Self::row_grid(ws))]);
            (
                util::read_back_once::<u32>(ctx, &out_index, n1 * k)?,
                util::read_back_once::<f32>(ctx, &out_value, n1 * k)?,
            )
        };
        Ok(ws
            .plan
            .groups
            .iter()
            .map(|g| {
                let rows = g.off1 as usize * k..(g.off1 + g.n1) as usize * k;
                top_k_of_group(&index[rows.clone()], &value[rows], g.n1 as usize, k, mass)
            })
            .collect())
    }

    pub(crate) fn project_gpu(
        &self,
        ys: &[ArrayView2<'_, f64>],
    ) -> Result<Vec<Array2<f64>>, GpuError> {
        check_per_group(&self.problem, ys.len(), "projection matrices")?;
        for (group, y) in self.problem.groups.iter().zip(ys) {
            if y.nrows() != group.n2() {
                return Err(GpuError::Input {
                    what: "projection",
                    message: format!(
                        "group {}: {} rows of y for {} modality-2 rows",
                        group.label,
                        y.nrows(),
                        group.n2()
                    ),
                });
            }
        }
        let width = ys.iter().map(|m| m.ncols()).max().unwrap_or(0).div_ceil(4) as u32;
        let Some(ws) = self.ws.as_ref().filter(|_| width > 0) else {
            return Ok(ys.iter().map(|y| Array2::zeros((y.nrows(), 0))).collect());
        };
        let ctx = &self.matcher.ctx;
        let bytes = ByteCounter::default();
        let stride = width as usize * 4;
        let y_buffer = util::storage_init(
            ctx,
            &bytes,
            "y",
            bytemuck::cast_slice(&pack_y(ws, ys, stride)),
            wgpu::BufferUsages::empty(),
        );
        let values = ws.plan.padded[0] as usize * stride;
        let out_value = util::buffer(ctx, &bytes, "projection", (values * 4) as u64, out_usage());
        let out_index = util::buffer(ctx, &bytes, "unused", 16, out_usage());
        let buffers = OutputBuffers {
            out_index: &out_index,
            out_value: &out_value,
            aux: &y_buffer,
        };
        let passes: Vec<_> = (0..width)
            .step_by(PROJECT_BLOCK as usize)
            .map(|y_block| {
                let params = CouplingParams {
                    y_width: width,
                    y_block,
                    ..self.params(ws)
                };
                (params, Self::row_grid(ws))
            })
            .collect();
        self.run(ws, Output::Project, &buffers, &passes);
        let out = util::read_back_once::<f32>(ctx, &out_value, values)?;
        Ok(ws
            .plan
            .groups
            .iter()
            .zip(ys)
            .map(|(g, y)| {
                Array2::from_shape_fn((g.n1 as usize, y.ncols()), |(i, c)| {
                    f64::from(out[(g.off1 as usize + i) * stride + c])
                })
            })
            .collect())
    }

    pub(crate) fn diagonal_gpu(
        &self,
        partners: &[Option<Vec<usize>>],
    ) -> Result<Vec<Option<Vec<f64>>>, GpuError> {
        check_per_group(&self.problem, partners.len(), "partner lists")?;
        let Some(ws) = &self.ws else {
            return Ok(Vec::new());
        };
        let ctx = &self.matcher.ctx;
        let bytes = ByteCounter::default();
        let partner = util::storage_init(
            ctx,
            &bytes,
            "partners",
            bytemuck::cast_slice(&pack_partners(ws, &self.problem, partners)?),
            wgpu::BufferUsages::empty(),
        );
        let n1 = ws.plan.padded[0] as usize;
        let out_value = util::buffer(ctx, &bytes, "diagonal", (n1 * 4) as u64, out_usage());
        let aux = util::buffer(ctx, &bytes, "unused", 16, out_usage());
        let buffers = OutputBuffers {
            out_index: &partner,
            out_value: &out_value,
            aux: &aux,
        };
        let params = self.params(ws);
        self.run(
            ws,
            Output::Diagonal,
            &buffers,
            &[(params, Self::row_grid(ws))],
        );
        let out = util::read_back_once::<f32>(ctx, &out_value, n1)?;
        Ok(ws
            .plan
            .groups
            .iter()
            .zip(partners)
            .map(|(g, p)| {
                p.as_ref().map(|_| {
                    out[g.off1 as usize..(g.off1 + g.n1) as usize]
                        .iter()
                        .map(|&v| f64::from(v))
                        .collect()
                })
            })
            .collect())
    }

    pub(crate) fn rows_gpu(
        &self,
        group: usize,
        rows: Range<usize>,
    ) -> Result<Array2<f64>, GpuError> {
        let ws = self.workspace()?;
        let g = *ws.plan.groups.get(group).ok_or_else(|| GpuError::Input {
            what: "rows",
            message: format!("group {group} of {}", ws.plan.groups.len()),
        })?;
        let (n1, n2) = (g.n1 as usize, g.n2 as usize);
        if rows.start > rows.end || rows.end > n1 {
            return Err(GpuError::Input {
                what: "rows",
                message: format!("rows {rows:?} of a group of {n1}"),
            });
        }
        let mut out = Array2::zeros((rows.len(), n2));
        let per_call = (VALUES_PER_DISPATCH / n2.max(1)).clamp(1, ROWS_PER_DISPATCH);
        let ctx = &self.matcher.ctx;
        for first in rows.clone().step_by(per_call) {
            let count = per_call.min(rows.end - first);
            let bytes = ByteCounter::default();
            let size = (count * n2 * 4) as u64;
            let out_value = util::buffer(ctx, &bytes, "dense rows", size, out_usage());
            // Two placeholders: one buffer bound both read-write (out_index) and read-only
            // (aux) in one dispatch is a usage conflict wgpu rejects.
            let unused_index = util::buffer(ctx, &bytes, "unused index", 16, out_usage());
            let unused_aux = util::buffer(ctx, &bytes, "unused aux", 16, out_usage());
            let buffers = OutputBuffers {
                out_index: &unused_index,
                out_value: &out_value,
                aux: &unused_aux,
            };
            let params = CouplingParams {
                group: group as u32,
                first_row: first as u32,
                draws: count as u32,
                ..self.params(ws)
            };
            let grid = ((n2 as u32).div_ceil(ROWS_WORKGROUP), count as u32);
            self.run(ws, Output::Rows, &buffers, &[(params, grid)]);
            let values = util::read_back_once::<f32>(ctx, &out_value, count * n2)?;
            for (r, chunk) in values.chunks_exact(n2.max(1)).enumerate() {
                for (j, &v) in chunk.iter().enumerate() {
                    out[[first - rows.start + r, j]] = f64::from(v);
                }
            }
        }
        Ok(out)
    }

    pub(crate) fn sample_gpu(&self, draws: usize, seed: u64) -> Result<Vec<Array2<i64>>, GpuError> {
        let Some(ws) = self.ws.as_ref().filter(|_| draws > 0) else {
            return Ok(self
                .problem
                .groups
                .iter()
                .map(|g| Array2::from_elem((g.n1(), 0), -1))
                .collect());
        };
        let ctx = &self.matcher.ctx;
        let (uniforms, order) = sorted_uniforms(ws, draws, seed);
        let bytes = ByteCounter::default();
        let aux = util::storage_init(
            ctx,
            &bytes,
            "uniforms",
            bytemuck::cast_slice(&uniforms),
            wgpu::BufferUsages::empty(),
        );
        let n = uniforms.len();
        let out_index = util::buffer(ctx, &bytes, "pairs", (n * 4) as u64, out_usage());
        let unused = util::buffer(ctx, &bytes, "unused", 16, out_usage());
        let buffers = OutputBuffers {
            out_index: &out_index,
            out_value: &unused,
            aux: &aux,
        };
        let params = CouplingParams {
            draws: draws as u32,
            ..self.params(ws)
        };
        self.run(
            ws,
            Output::Sample,
            &buffers,
            &[(params, Self::row_grid(ws))],
        );
        let picked = util::read_back_once::<u32>(ctx, &out_index, n)?;
        Ok(ws
            .plan
            .groups
            .iter()
            .map(|g| {
                let mut out = Array2::from_elem((g.n1 as usize, draws), -1i64);
                for i in 0..g.n1 as usize {
                    let at = (g.off1 as usize + i) * draws;
                    for slot in 0..draws {
                        out[[i, order[at + slot] as usize]] = i64::from(picked[at + slot]);
                    }
                }
                out
            })
            .collect())
    }
}

impl Solved for GpuSolved<'_> {
    fn problem(&self) -> &Problem {
        &self.problem
    }

    fn method(&self) -> Method {
        Method::Ot
    }

    fn backend(&self) -> &str {
        "gpu"
    }

    fn solution(&self) -> Option<&Solution> {
        Some(&self.solution)
    }

    fn seconds(&self) -> Vec<f64> {
        self.solution
            .groups
            .iter()
            .map(|g| g.report.seconds)
            .collect()
    }

    fn rows(&self, group: usize, rows: Range<usize>) -> Result<Array2<f64>, MatcherError> {
        Ok(self.rows_gpu(group, rows)?)
    }

    fn top_k(&self, k: usize, mass: Option<f64>) -> Result<Vec<TopK>, MatcherError> {
        Ok(self.top_k_gpu(k, mass)?)
    }

    fn project(&self, ys: &[ArrayView2<'_, f64>]) -> Result<Vec<Array2<f64>>, MatcherError> {
        Ok(self.project_gpu(ys)?)
    }

    fn diagonal(
        &self,
        partners: &[Option<Vec<usize>>],
    ) -> Result<Vec<Option<Vec<f64>>>, MatcherError> {
        Ok(self.diagonal_gpu(partners)?)
    }

    fn sample_pairs(&self, draws: usize, seed: u64) -> Result<Vec<Array2<i64>>, MatcherError> {
        Ok(self.sample_gpu(draws, seed)?)
    }
}

fn out_usage() -> wgpu::BufferUsages {
    wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST
}

/// One group's top-k arrays, with the optional mass cut of `select_top`.
pub(crate) fn top_k_of_group(
    index: &[u32],
    value: &[f32],
    n1: usize,
    k: usize,
    mass: Option<f64>,
) -> TopK {
    let mut top = TopK {
        index: Array2::from_elem((n1, k), -1i64),
        weight: Array2::zeros((n1, k)),
    };
    for i in 0..n1 {
        let mut held = 0.0;
        for slot in 0..k {
            let j = index[i * k + slot];
            if j == NONE || mass.is_some_and(|m| held >= m) {
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

/// All groups' rows of `y` at their padded modality-2 rows, as f32, each padded to `stride`.
fn pack_y(ws: &Workspace, ys: &[ArrayView2<'_, f64>], stride: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; ws.plan.padded[1] as usize * stride];
    for (g, y) in ws.plan.groups.iter().zip(ys) {
        for (j, row) in y.rows().into_iter().enumerate() {
            let at = (g.off2 as usize + j) * stride;
            for (o, &v) in out[at..at + row.len()].iter_mut().zip(row.iter()) {
                *o = v as f32;
            }
        }
    }
    out
}

/// Partners of every padded modality-1 row (`u32::MAX` where a group has none).
fn pack_partners(
    ws: &Workspace,
    problem: &Problem,
    partners: &[Option<Vec<usize>>],
) -> Result<Vec<u32>, GpuError> {
    let mut out = vec![NONE; ws.plan.padded[0] as usize];
    for ((g, group), p) in ws.plan.groups.iter().zip(&problem.groups).zip(partners) {
        let Some(p) = p else { continue };
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
        for (i, &j) in p.iter().enumerate() {
            out[g.off1 as usize + i] = j as u32;
        }
    }
    Ok(out)
}

/// Each padded modality-1 row's uniforms sorted ascending (as f32), and for each sorted slot
/// the draw it belongs to.
fn sorted_uniforms(ws: &Workspace, draws: usize, seed: u64) -> (Vec<f32>, Vec<u32>) {
    let rows = ws.plan.padded[0] as usize;
    let mut uniforms = vec![2.0f32; rows * draws];
    let mut order = vec![0u32; rows * draws];
    for g in &ws.plan.groups {
        for i in 0..g.n1 as usize {
            let u = psa_core::coupling::pair_uniforms(seed, i, draws);
            let mut slots: Vec<usize> = (0..draws).collect();
            slots.sort_by(|&a, &b| u[a].total_cmp(&u[b]));
            let at = (g.off1 as usize + i) * draws;
            for (s, &d) in slots.iter().enumerate() {
                uniforms[at + s] = u[d] as f32;
                order[at + s] = d as u32;
            }
        }
    }
    (uniforms, order)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mass_cut_keeps_the_fewest_leading_entries() {
        let index = [3, 1, 0, NONE];
        let value = [0.5, 0.3, 0.2, 0.0];
        let top = top_k_of_group(&index, &value, 1, 4, Some(0.75));
        assert_eq!(top.index.row(0).to_vec(), vec![3, 1, -1, -1]);
        let all = top_k_of_group(&index, &value, 1, 4, None);
        assert_eq!(all.index.row(0).to_vec(), vec![3, 1, 0, -1]);
    }
}

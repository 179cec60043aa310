//! Where every row, block and partial of a problem lives on the device: pure arithmetic on
//! sizes, unit-tested on the CPU (the kernels index with it and trust it, see
//! [`crate::kernels`]).
//!
//! All label groups share the same buffers so that one dispatch serves every group (METHOD.md
//! step 3 solves each group independently; the GPU solves them side by side): the rows of
//! modality 1 of every group, then of modality 2, each group's rows padded to a multiple of
//! [`TILE`] so that a column tile never needs a length test, then [`Plan::slack`] zero rows
//! that the last block of a side may read past its end. A block is one workgroup's work:
//! (group, first row, column chunk). A group's columns are split into chunks when there are too
//! few row blocks to fill the GPU in several waves (so that the last, partial wave is a small
//! share of the time); `combine` merges each row's chunk partials. Memory is
//! `O((n1 + n2) · T)` plus the partials (`n · chunks`).

use psa_core::{Problem, Solution};

use crate::GpuError;
use crate::kernels::GroupState;

/// Columns per workgroup tile, and the padding quantum of every group's rows.
pub const TILE: u32 = 64;
/// Invocations per workgroup of the LSE kernel (`WG` in `sinkhorn_lse.wgsl`).
pub const WORKGROUP: u32 = 128;
/// The column split aims at this many workgroups per half-iteration: about eight waves of a
/// large GPU (an H100 keeps ~1000 such workgroups resident), so the last wave is ≤ ~1/8.
pub const TARGET_BLOCKS: u64 = 8192;
/// A column chunk spans at least this many columns, so that per-row partials stay few.
pub const MIN_CHUNK_COLS: u32 = 512;

/// One group's place in the concatenated buffers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GroupLayout {
    /// True rows of modality 1 and 2.
    pub n1: u32,
    pub n2: u32,
    /// First padded row of the group within its side.
    pub off1: u32,
    pub off2: u32,
    /// Column chunks of the f-update (rows of side 1, columns of side 2) and their width.
    pub chunks1: u32,
    pub chunk_cols1: u32,
    /// The same for the g-update.
    pub chunks2: u32,
    pub chunk_cols2: u32,
    /// First partial of the group's rows in each half.
    pub part1: u32,
    pub part2: u32,
}

/// The layout of a whole problem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub groups: Vec<GroupLayout>,
    /// Padded rows of side 1 and of side 2, all groups.
    pub padded: [u32; 2],
    /// Zero rows after side 2: the last block of a side may read this far past its end.
    pub slack: u32,
    /// Rows one workgroup handles (`WORKGROUP · ROWS`).
    pub rows_per_block: u32,
    /// Blocks (group, first row, chunk, 0) of the f-update and of the g-update.
    pub blocks: [Vec<[u32; 4]>; 2],
    /// Partial entries the larger half needs.
    pub partials: u64,
}

/// `n` rounded up to whole tiles.
pub fn padded(n: u32) -> u32 {
    n.div_ceil(TILE) * TILE
}

/// Column chunks for `n_cols` columns when the half wants `factor` times more blocks than it
/// has row blocks: `(chunks, columns per chunk)`, chunks a whole number of tiles wide.
pub fn chunking(n_cols: u32, factor: u64) -> (u32, u32) {
    let cols = padded(n_cols.max(1));
    let useful = u64::from(cols.div_ceil(MIN_CHUNK_COLS)).max(1);
    let wanted = factor.clamp(1, useful) as u32;
    let chunk_cols = padded(cols.div_ceil(wanted));
    (cols.div_ceil(chunk_cols), chunk_cols)
}

impl Plan {
    /// Lays out groups of `(n1, n2)` rows for blocks of `rows_per_block` rows.
    pub fn new(sizes: &[(usize, usize)], rows_per_block: u32) -> Result<Plan, GpuError> {
        let sizes = checked_sizes(sizes)?;
        let row_blocks = |side: usize| -> u64 {
            sizes
                .iter()
                .map(|s| u64::from(s[side].div_ceil(rows_per_block)))
                .sum::<u64>()
                .max(1)
        };
        let factors = [
            TARGET_BLOCKS.div_ceil(row_blocks(0)),
            TARGET_BLOCKS.div_ceil(row_blocks(1)),
        ];
        let mut plan = Plan {
            groups: Vec::with_capacity(sizes.len()),
            padded: [0, 0],
            slack: rows_per_block,
            rows_per_block,
            blocks: [Vec::new(), Vec::new()],
            partials: 0,
        };
        let mut parts = [0u64; 2];
        for (index, &[n1, n2]) in sizes.iter().enumerate() {
            let (chunks1, chunk_cols1) = chunking(n2, factors[0]);
            let (chunks2, chunk_cols2) = chunking(n1, factors[1]);
            let layout = GroupLayout {
                n1,
                n2,
                off1: plan.padded[0],
                off2: plan.padded[1],
                chunks1,
                chunk_cols1,
                chunks2,
                chunk_cols2,
                part1: to_u32(parts[0], "column-chunk partials")?,
                part2: to_u32(parts[1], "column-chunk partials")?,
            };
            plan.push_blocks(0, index as u32, n1, chunks1);
            plan.push_blocks(1, index as u32, n2, chunks2);
            parts[0] += u64::from(n1) * u64::from(chunks1);
            parts[1] += u64::from(n2) * u64::from(chunks2);
            plan.padded[0] = to_u32(u64::from(plan.padded[0]) + u64::from(padded(n1)), "rows")?;
            plan.padded[1] = to_u32(u64::from(plan.padded[1]) + u64::from(padded(n2)), "rows")?;
            plan.groups.push(layout);
        }
        plan.partials = parts[0].max(parts[1]).max(1);
        to_u32(plan.partials, "column-chunk partials")?;
        to_u32(u64::from(plan.total_rows()) * 65, "score vec4s")?;
        Ok(plan)
    }

    /// [`Plan::new`] for the groups of `problem`.
    pub fn for_problem(problem: &Problem, rows_per_block: u32) -> Result<Plan, GpuError> {
        let sizes: Vec<(usize, usize)> = problem.groups.iter().map(|g| (g.n1(), g.n2())).collect();
        Plan::new(&sizes, rows_per_block)
    }

    fn push_blocks(&mut self, side: usize, group: u32, n_rows: u32, chunks: u32) {
        for first in (0..n_rows).step_by(self.rows_per_block as usize) {
            for chunk in 0..chunks {
                self.blocks[side].push([group, first, chunk, 0]);
            }
        }
    }

    /// Rows of every per-row buffer (both sides and the slack).
    pub fn total_rows(&self) -> u32 {
        self.padded[0] + self.padded[1] + self.slack
    }

    /// Global row index of row `local` of `group` on `side` (0 or 1).
    pub fn row(&self, side: usize, group: usize, local: u32) -> u32 {
        let g = &self.groups[group];
        match side {
            0 => g.off1 + local,
            _ => self.padded[0] + g.off2 + local,
        }
    }

    /// The group of every row of every per-row buffer (padding rows belong to their group;
    /// slack rows to group 0, and no kernel reads them as rows).
    pub fn row_groups(&self) -> Vec<u32> {
        let mut out = vec![0; self.total_rows() as usize];
        for (index, g) in self.groups.iter().enumerate() {
            let first = [g.off1, self.padded[0] + g.off2];
            for (start, n) in first.into_iter().zip([padded(g.n1), padded(g.n2)]) {
                out[start as usize..(start + n) as usize].fill(index as u32);
            }
        }
        out
    }

    /// Pairs of one half-iteration, all groups.
    pub fn pairs(&self) -> u64 {
        self.groups
            .iter()
            .map(|g| u64::from(g.n1) * u64::from(g.n2))
            .sum()
    }
}

/// What the solver needs of one group besides its scores.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupSetup {
    /// λ of each ε stage; the last is the group's target λ.
    pub stages: Vec<f64>,
    pub tol: f64,
    pub stage_tol: f64,
    /// Error below which a stalled last stage counts as the f32 plateau.
    pub floor: f64,
    /// τ of the KL-relaxed marginals, 0 for balanced.
    pub tau: f64,
    /// Over-relax the updates (`SolveOptions::acceleration`; `relax` in `sinkhorn_lse.wgsl`).
    pub accelerate: bool,
    pub max_iter: u32,
    /// Mean cost of the group (switches the exact path on at small λ).
    pub mean_cost: f64,
}

impl GroupSetup {
    /// `κ = λ/(τ + λ) = 1 − ρ` at stage λ `lambda`, for the device (0 when balanced).
    pub fn kappa(&self, lambda: f64) -> f32 {
        if self.tau > 0.0 {
            (lambda / (self.tau + lambda)) as f32
        } else {
            0.0
        }
    }

    /// A setup for outputs only: one stage at `lambda`, nothing to iterate.
    pub fn outputs(lambda: f64, mean_cost: f64) -> GroupSetup {
        GroupSetup {
            stages: vec![lambda],
            tol: 0.0,
            stage_tol: 0.0,
            floor: 0.0,
            tau: 0.0,
            accelerate: false,
            max_iter: 1,
            mean_cost,
        }
    }
}

/// The final check's per-row value for a row whose sum left f32's range (`BIG` in
/// `common.wgsl`).
const OVERFLOWED: f32 = 3.0e38;

/// `log2(e)/λ`, the scale of the potentials on the device (log2 units), in f64.
pub fn scale(lambda: f64) -> f64 {
    std::f64::consts::LOG2_E / lambda
}

/// [`scale`] as the double-f32 `(hi, lo)` the kernels use.
pub fn scale_split(lambda: f64) -> (f32, f32) {
    let s = scale(lambda);
    let hi = s as f32;
    (hi, (s - f64::from(hi)) as f32)
}

/// The scores as the kernels read them (`common.wgsl`, "Layout"): quads of `dim + 1` vec4s of
/// `−2·x_k` and `‖x‖²`, and quads of `dim` vec4s of the remainders `x_k − f32(x_k)`, flattened.
#[derive(Clone, Debug, PartialEq)]
pub struct PackedScores {
    pub hi: Vec<f32>,
    pub lo: Vec<f32>,
}

impl Plan {
    /// Every group's scores, centred on the group's mean (distances do not change; the
    /// expanded form and the f32 rounding lose less), in the padded quad layout.
    pub fn pack_scores(&self, problem: &Problem, centred: bool) -> PackedScores {
        let dim = problem.dim();
        let quads = self.total_rows() as usize / 4;
        let mut out = PackedScores {
            hi: vec![0.0; quads * (dim + 1) * 4],
            lo: vec![0.0; quads * dim * 4],
        };
        for (index, group) in problem.groups.iter().enumerate() {
            let centre = if centred {
                group_mean(group)
            } else {
                vec![0.0; dim]
            };
            for (side, x) in [&group.x1, &group.x2].into_iter().enumerate() {
                for (local, row) in x.rows().into_iter().enumerate() {
                    let at = self.row(side, index, local as u32) as usize;
                    let (q, lane) = (at / 4, at % 4);
                    let mut norm = 0.0;
                    for (k, (&v, &c)) in row.iter().zip(&centre).enumerate() {
                        let centred = v - c;
                        let hi = centred as f32;
                        norm += f64::from(hi) * f64::from(hi);
                        out.hi[(q * (dim + 1) + k) * 4 + lane] = -2.0 * hi;
                        out.lo[(q * dim + k) * 4 + lane] = (centred - f64::from(hi)) as f32;
                    }
                    out.hi[(q * (dim + 1) + dim) * 4 + lane] = norm as f32;
                }
            }
        }
        out
    }

    /// Potentials in log2 units (`p · log2(e)/λ` at the solution's λ) as (hi, lo) pairs per
    /// row: hi = f32(u), lo = f32(u − hi); zeros without `start`.
    pub fn pack_potentials(&self, start: Option<&Solution>) -> Vec<[f32; 2]> {
        let mut out = vec![[0.0f32; 2]; self.total_rows() as usize];
        if let Some(solution) = start {
            for (index, s) in solution.groups.iter().enumerate() {
                let scale = scale(s.epsilon);
                for (side, p) in [&s.f, &s.g].into_iter().enumerate() {
                    for (local, &v) in p.iter().enumerate() {
                        let u = v * scale;
                        let hi = u as f32;
                        out[self.row(side, index, local as u32) as usize] =
                            [hi, (u - f64::from(hi)) as f32];
                    }
                }
            }
        }
        out
    }

    /// Potentials `(f, g)` of group `index`, in cost units at `lambda`, from the device's
    /// (hi, lo) pairs in log2 units.
    pub fn unpack_potentials(
        &self,
        pots: &[[f32; 2]],
        index: usize,
        lambda: f64,
    ) -> (Vec<f64>, Vec<f64>) {
        let g = &self.groups[index];
        let scale = scale(lambda);
        let side = |s: usize, n: u32| {
            (0..n)
                .map(|r| {
                    let [hi, lo] = pots[self.row(s, index, r) as usize];
                    (f64::from(hi) + f64::from(lo)) / scale
                })
                .collect()
        };
        (side(0, g.n1), side(1, g.n2))
    }

    /// The groups' initial device state and the concatenated ε schedules: per stage κ
    /// ([`GroupSetup::kappa`]), `log2(e)/λ` as (hi, lo), and the factor from the previous
    /// stage's `log2(e)/λ`.
    pub fn group_states(&self, setups: &[GroupSetup]) -> (Vec<GroupState>, Vec<[f32; 4]>) {
        let mut schedule = Vec::new();
        let states = self
            .groups
            .iter()
            .zip(setups)
            .map(|(g, setup)| {
                let (s_hi, s_lo) = scale_split(setup.stages[0]);
                let state = GroupState {
                    off1: g.off1,
                    n1: g.n1,
                    off2: g.off2,
                    n2: g.n2,
                    chunks1: g.chunks1,
                    chunks2: g.chunks2,
                    chunk_cols1: g.chunk_cols1,
                    chunk_cols2: g.chunk_cols2,
                    part1: g.part1,
                    part2: g.part2,
                    sched_off: schedule.len() as u32,
                    n_stages: setup.stages.len() as u32,
                    max_iter: setup.max_iter,
                    is_active: 1,
                    accel: u32::from(setup.accelerate),
                    kappa: setup.kappa(setup.stages[0]),
                    tau: setup.tau as f32,
                    tol: setup.tol as f32,
                    stage_tol: setup.stage_tol as f32,
                    error: f32::INFINITY,
                    best: f32::MAX,
                    floor: setup.floor as f32,
                    mean_cost: setup.mean_cost as f32,
                    s_hi,
                    s_lo,
                    one: 1.0,
                    ..GroupState::default()
                };
                let mut previous = setup.stages[0];
                schedule.extend(setup.stages.iter().map(|&l| {
                    let (hi, lo) = scale_split(l);
                    let factor = (previous / l) as f32;
                    previous = l;
                    [setup.kappa(l), hi, lo, factor]
                }));
                state
            })
            .collect();
        (states, schedule)
    }

    /// Each group's error on `side` from the final check's per-row values in `scratch`
    /// (`combine`, mode 2), in f64. Balanced: the sum of the rows' L1 terms, the marginal's L1
    /// error. KL-relaxed: the largest fixed-point residual `|p − p̂| / λ`, formed from the
    /// row's exact log2 marginal ratio `L` and its whole potential `u` (log2 units, at the
    /// target λ): `ln 2 · |ρ L + (1 − ρ) u|`, ρ = τ/(τ + λ) — the CPU's measure
    /// (`psa_core::sinkhorn`), at f64's ρ. A NaN anywhere makes the group's error NaN.
    pub fn side_errors(
        &self,
        scratch: &[f32],
        pots: &[[f32; 2]],
        side: usize,
        setups: &[GroupSetup],
    ) -> Vec<f64> {
        (0..self.groups.len())
            .map(|index| {
                let n = [self.groups[index].n1, self.groups[index].n2][side];
                let rows = (0..n).map(|r| self.row(side, index, r) as usize);
                let setup = &setups[index];
                // The device writes f32's largest finite value where a row sum leaves f32's
                // range (a term past 2^96): an error that large is reported as infinite.
                if rows.clone().any(|row| scratch[row] >= OVERFLOWED) {
                    return f64::INFINITY;
                }
                if setup.tau > 0.0 {
                    let lambda = *setup.stages.last().expect("a schedule ends with λ");
                    let rho = setup.tau / (setup.tau + lambda);
                    rows.map(|row| {
                        let [hi, lo] = pots[row];
                        let u = f64::from(hi) + f64::from(lo);
                        let ratio = f64::from(scratch[row]);
                        std::f64::consts::LN_2 * (rho * ratio + (1.0 - rho) * u).abs()
                    })
                    .fold(0.0, |worst, e| {
                        if e.is_nan() || e > worst { e } else { worst }
                    })
                } else {
                    rows.map(|row| f64::from(scratch[row])).sum()
                }
            })
            .collect()
    }

    /// Rescales group `index`'s potentials (log2 units) by `factor`, as the device does when
    /// it moves to the next ε stage.
    pub fn rescale_potentials(&self, pots: &mut [[f32; 2]], index: usize, factor: f64) {
        let g = &self.groups[index];
        for (side, n) in [(0, g.n1), (1, g.n2)] {
            for r in 0..n {
                let p = &mut pots[self.row(side, index, r) as usize];
                let u = (f64::from(p[0]) + f64::from(p[1])) * factor;
                let hi = u as f32;
                *p = [hi, (u - f64::from(hi)) as f32];
            }
        }
    }
}

/// Mean score of a group over the rows of both modalities.
fn group_mean(group: &psa_core::Group) -> Vec<f64> {
    let rows = (group.n1() + group.n2()).max(1) as f64;
    let mut mean = vec![0.0; group.dim()];
    for row in group.x1.rows().into_iter().chain(group.x2.rows()) {
        for (m, &v) in mean.iter_mut().zip(row.iter()) {
            *m += v;
        }
    }
    mean.iter_mut().for_each(|m| *m /= rows);
    mean
}

fn checked_sizes(sizes: &[(usize, usize)]) -> Result<Vec<[u32; 2]>, GpuError> {
    sizes
        .iter()
        .map(|&(n1, n2)| Ok([to_u32(n1 as u64, "rows")?, to_u32(n2 as u64, "rows")?]))
        .collect()
}

/// Every index the kernels compute must fit in u32.
fn to_u32(value: u64, what: &str) -> Result<u32, GpuError> {
    u32::try_from(value).map_err(|_| GpuError::Input {
        what: "problem",
        message: format!("more {what} than the GPU kernels index (2^32); split it with --shard"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every (true row, column) pair of every group is covered by exactly one block of each
    /// half, and every chunk is whole tiles that stay inside the group's padded columns.
    fn assert_covers(plan: &Plan) {
        for (side, blocks) in plan.blocks.iter().enumerate() {
            for (index, g) in plan.groups.iter().enumerate() {
                let (n_rows, n_cols, chunks, chunk_cols) = match side {
                    0 => (g.n1, g.n2, g.chunks1, g.chunk_cols1),
                    _ => (g.n2, g.n1, g.chunks2, g.chunk_cols2),
                };
                assert_eq!(chunk_cols % TILE, 0);
                let cols = u64::from(padded(n_cols.max(1)));
                assert!(u64::from(chunks) * u64::from(chunk_cols) >= cols);
                assert!(u64::from(chunks - 1) * u64::from(chunk_cols) < cols);
                let mut seen = vec![0u32; (n_rows * chunks) as usize];
                for b in blocks.iter().filter(|b| b[0] == index as u32) {
                    assert!(b[2] < chunks);
                    for r in b[1]..(b[1] + plan.rows_per_block).min(n_rows) {
                        seen[(r * chunks + b[2]) as usize] += 1;
                    }
                }
                assert!(seen.iter().all(|&c| c == 1), "side {side} group {index}");
            }
        }
    }

    #[test]
    fn groups_are_padded_to_tiles_and_never_overlap() {
        let plan = Plan::new(&[(1, 2), (64, 65), (300, 1), (0, 5)], 512).unwrap();
        let offs1: Vec<u32> = plan.groups.iter().map(|g| g.off1).collect();
        let offs2: Vec<u32> = plan.groups.iter().map(|g| g.off2).collect();
        assert_eq!(offs1, vec![0, 64, 128, 448]);
        assert_eq!(offs2, vec![0, 64, 192, 256]);
        assert_eq!(plan.padded, [448, 320]);
        assert_eq!(plan.total_rows(), 448 + 320 + 512);
        assert_eq!(plan.row(1, 2, 0), 448 + 192);
        let groups = plan.row_groups();
        assert_eq!(groups[63], 0);
        assert_eq!(groups[64], 1);
        assert_eq!(groups[448 + 256], 3);
        assert_covers(&plan);
    }

    #[test]
    fn partials_of_groups_are_disjoint() {
        let plan = Plan::new(&[(5000, 3000), (700, 40_000), (3, 3)], 512).unwrap();
        let mut end = [0u64; 2];
        for g in &plan.groups {
            assert_eq!(u64::from(g.part1), end[0]);
            assert_eq!(u64::from(g.part2), end[1]);
            end[0] += u64::from(g.n1) * u64::from(g.chunks1);
            end[1] += u64::from(g.n2) * u64::from(g.chunks2);
        }
        assert_eq!(plan.partials, end[0].max(end[1]));
        assert_covers(&plan);
    }

    #[test]
    fn few_row_blocks_split_columns_into_chunks_of_whole_tiles() {
        // One group of 1e5: 196 row blocks of 512 rows want ~42 chunks per row block.
        let (chunks, cols) = chunking(100_000, TARGET_BLOCKS.div_ceil(196));
        assert!((40..=42).contains(&chunks), "{chunks}");
        assert_eq!(cols % TILE, 0);
        assert!(cols >= MIN_CHUNK_COLS);
        // Many blocks already: one chunk. Tiny groups: one chunk.
        assert_eq!(chunking(100_000, 1), (1, padded(100_000)));
        assert_eq!(chunking(3, 1000), (1, 64));
        // A million rows at 512 per block: about four waves' worth of chunks.
        let blocks = 1_000_000u64.div_ceil(512);
        let (chunks, _) = chunking(1_000_000, TARGET_BLOCKS.div_ceil(blocks));
        assert!(blocks * u64::from(chunks) >= TARGET_BLOCKS);
        assert!(blocks * u64::from(chunks) < 2 * TARGET_BLOCKS);
    }

    /// A two-group problem with awkward sizes and known scores.
    fn problem() -> Problem {
        let x1 = ndarray::Array2::from_shape_fn((7, 3), |(i, k)| 1e3 + i as f64 * 0.1 + k as f64);
        let x2 = ndarray::Array2::from_shape_fn((5, 3), |(i, k)| 1e3 - (i * k) as f64 / 3.0);
        let l1: Vec<String> = (0..7).map(|i| ["a", "b"][i % 2].to_string()).collect();
        let l2: Vec<String> = (0..5).map(|i| ["a", "b"][i % 2].to_string()).collect();
        Problem::from_transformed(x1.view(), &l1, x2.view(), &l2, psa_core::Metric::Euclidean)
            .unwrap()
    }

    #[test]
    fn packed_scores_give_back_every_distance_and_norm() {
        let problem = problem();
        let plan = Plan::for_problem(&problem, 512).unwrap();
        let packed = plan.pack_scores(&problem, true);
        let dim = problem.dim();
        // Coordinate k of a padded row as the kernels read it (hi and lo parts).
        let coord = |row: u32, k: usize| {
            let (q, lane) = (row as usize / 4, row as usize % 4);
            let hi = -0.5 * f64::from(packed.hi[(q * (dim + 1) + k) * 4 + lane]);
            hi + f64::from(packed.lo[(q * dim + k) * 4 + lane])
        };
        for (g, group) in problem.groups.iter().enumerate() {
            for i in 0..group.n1() {
                for j in 0..group.n2() {
                    let (a, b) = (plan.row(0, g, i as u32), plan.row(1, g, j as u32));
                    let d2: f64 = (0..dim).map(|k| (coord(a, k) - coord(b, k)).powi(2)).sum();
                    let expect = psa_core::cost::squared_distance(
                        group.x1.row(i).as_slice().unwrap(),
                        group.x2.row(j).as_slice().unwrap(),
                    );
                    assert!(
                        (d2 - expect).abs() < 1e-9 * expect.max(1.0),
                        "{d2} vs {expect}"
                    );
                }
            }
            // Centred: the norms are small although the raw scores sit near 1000.
            let at = plan.row(0, g, 0) as usize;
            let norm = packed.hi[((at / 4) * (dim + 1) + dim) * 4 + at % 4];
            assert!(norm < 20.0, "{norm}");
        }
        // Padding rows are zero.
        let pad = plan.row(0, 0, 5) as usize;
        assert_eq!(packed.hi[((pad / 4) * (dim + 1)) * 4 + pad % 4], 0.0);
    }

    #[test]
    fn potentials_split_and_join_exactly() {
        let problem = problem();
        let plan = Plan::for_problem(&problem, 512).unwrap();
        let solution = Solution {
            groups: problem
                .groups
                .iter()
                .map(|g| psa_core::GroupSolution {
                    f: (0..g.n1()).map(|i| 1.0 / 3.0 + i as f64 * 1e-9).collect(),
                    g: (0..g.n2()).map(|j| -7.1 - j as f64 / 7.0).collect(),
                    epsilon: 0.05,
                    report: Default::default(),
                })
                .collect(),
        };
        let pots = plan.pack_potentials(Some(&solution));
        for (index, s) in solution.groups.iter().enumerate() {
            let (f, g) = plan.unpack_potentials(&pots, index, s.epsilon);
            for (a, b) in f.iter().zip(&s.f).chain(g.iter().zip(&s.g)) {
                assert!((a - b).abs() < 1e-13 * b.abs().max(1.0), "{a} vs {b}");
            }
        }
        let (states, schedule) = plan.group_states(&[
            GroupSetup::outputs(0.05, 2.0),
            GroupSetup {
                stages: vec![4.0, 2.0, 1.0],
                tau: 4.0,
                ..GroupSetup::outputs(1.0, 3.0)
            },
        ]);
        // κ = λ/(τ + λ): 0 when balanced.
        let kappas: Vec<f32> = schedule.iter().map(|s| s[0]).collect();
        assert_eq!(kappas, vec![0.0, 0.5, 1.0 / 3.0, 0.2]);
        // Each stage rescales the log2-unit potentials by its λ ratio.
        let factors: Vec<f32> = schedule.iter().map(|s| s[3]).collect();
        assert_eq!(factors, vec![1.0, 1.0, 2.0, 2.0]);
        let (hi, lo) = scale_split(0.05);
        assert!((f64::from(hi) + f64::from(lo) - std::f64::consts::LOG2_E / 0.05).abs() < 1e-12);
        assert_eq!((states[1].sched_off, states[1].n_stages), (1, 3));
        assert_eq!(states[1].kappa, 0.5);
        assert_eq!(states[0].off1, plan.groups[0].off1);
    }

    #[test]
    fn sizes_past_u32_are_refused_with_advice() {
        let err = Plan::new(&[(1 << 33, 1)], 512).unwrap_err().to_string();
        assert!(err.contains("--shard"), "{err}");
    }
}

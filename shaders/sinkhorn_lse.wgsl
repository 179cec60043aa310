// sinkhorn_lse.wgsl — one log-domain Sinkhorn half-iteration for every label group at once.
//
// Computes, for each row r of one side (the "row side"; the other side is the "column side"),
//     lse_r = LSE_c( h_c − C(x_r, y_c) / λ_group ),   h_c = potential_c / λ + log(1 / n_cols),
// then the new potential p_r ← ρ · (−λ · lse_r) (ρ = τ/(τ+λ) unbalanced, else 1) and the
// group's stopping error, and advances each group through its ε-scaling schedule on the GPU.
// Values are kept in log2 units (pre-scaled by log2(e)) so each pair costs exactly one exp2.
//
// Entry points (workgroup size 256 each; the grid is 2-D past 65535 workgroups):
//   lse_streaming     one workgroup per block (group, 256 rows, column chunk): recomputes the
//                     cost from the T scores of each pair, streaming the column side through
//                     workgroup memory in tiles of TILE_COLS columns, online (max, sum) per
//                     row; writes a partial (max, sum) per row × chunk.
//   lse_materialised  the same, reading C from a precomputed cost buffer (pairwise_cost.wgsl).
//   combine           one thread per row: merges the chunk partials, writes the new potential
//                     (mode 0) or the row's LSE in log2 units into `scratch` (mode 1, used by
//                     the coupling outputs), and the row's error term into `scratch`.
//   control           one workgroup per group: reduces the error terms, counts the iteration,
//                     moves to the next ε stage or marks the group converged (below tol, or
//                     stalled below its f32 floor) / out of iterations (inactive groups
//                     early-exit in every kernel).
//
// Bindings (group 0): 0 uniform Params; 1 scores (vec4 rows, side 1 then side 2, T padded
// with zeros to DIM4 vec4s); 2 pots (f then g); 3 blocks (group, first row, chunk, 0);
// 4 partials (max, sum); 5 groups (GroupState); 6 scratch (per-row error term or LSE);
// 7 row_group (group of each row, side 1 then side 2); 8 schedule (λ of every ε stage);
// 9 cost (materialised cost matrices, a dummy in streaming mode).
// Overrides: DIM4 = ceil(T/4), EUCLIDEAN (else squared Euclidean), TILE_COLS.
//
// CPU twin: psa_core::sinkhorn::soft_min_rows / row_lse (the LSE), SinkhornState::iterate
// (update and error), psa_core::sinkhorn::solve_group (ε-scaling and stopping).

const WG: u32 = 256u;
// Workgroup memory for one tile of column scores: 1792 vec4 = 28 KiB (TILE_COLS × DIM4 ≤ this).
const TILE_VEC4: u32 = 1792u;
// Columns of the materialised tile: 256 rows × 16 columns, row stride 17 against bank conflicts.
const MAT_COLS: u32 = 16u;
const MAT_STRIDE: u32 = 17u;
const NEG_BIG: f32 = -3.0e38;
const LOG2E: f32 = 1.4426950408889634;
const LN2: f32 = 0.6931471805599453;
// Iterations without a new best error, below the floor, that count as the f32 plateau.
const STALL_ITERS: u32 = 50u;

override DIM4: u32 = 16u;
override EUCLIDEAN: bool = true;
override TILE_COLS: u32 = 112u;

struct Params {
    half: u32,      // 0: rows = side 1 (f-update); 1: rows = side 2 (g-update)
    n_blocks: u32,  // entries of `blocks` for this half
    n_rows: u32,    // rows of the row side, all groups
    row_base: u32,  // first row of the row side in scores / pots / scratch / row_group
    col_base: u32,  // first row of the column side there
    mode: u32,      // combine: 0 update potentials, 1 store the LSE in scratch
    n_groups: u32,
    _pad: u32,
}

struct GroupState {
    off1: u32, n1: u32, off2: u32, n2: u32,
    chunks1: u32, chunks2: u32, chunk_cols1: u32, chunk_cols2: u32,
    part1: u32, part2: u32, cost_off: u32, sched_off: u32,
    n_stages: u32, stage: u32, iterations: u32, max_iter: u32,
    is_active: u32, converged: u32, stall: u32, floored: u32,
    lambda: f32, tau: f32, tol: f32, stage_tol: f32,
    error: f32, best: f32, floor: f32, _pad: f32,
}

// One side of a group as seen by a half-iteration.
struct Side {
    row_off: u32, n_rows: u32, col_off: u32, n_cols: u32,
    chunks: u32, chunk_cols: u32, part: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> scores: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> pots: array<f32>;
@group(0) @binding(3) var<storage, read> blocks: array<vec4<u32>>;
@group(0) @binding(4) var<storage, read_write> partials: array<vec2<f32>>;
@group(0) @binding(5) var<storage, read_write> groups: array<GroupState>;
@group(0) @binding(6) var<storage, read_write> scratch: array<f32>;
@group(0) @binding(7) var<storage, read> row_group: array<u32>;
@group(0) @binding(8) var<storage, read> schedule: array<f32>;
@group(0) @binding(9) var<storage, read> cost: array<f32>;

var<workgroup> wg_info: vec4<u32>;
var<workgroup> tile_y: array<vec4<f32>, TILE_VEC4>;
var<workgroup> tile_h: array<f32, WG>;
var<workgroup> tile_c: array<f32, 4352>; // WG × MAT_STRIDE
var<workgroup> red: array<f32, WG>;

fn side_of(gs: GroupState) -> Side {
    if (params.half == 0u) {
        return Side(gs.off1, gs.n1, gs.off2, gs.n2, gs.chunks1, gs.chunk_cols1, gs.part1);
    }
    return Side(gs.off2, gs.n2, gs.off1, gs.n1, gs.chunks2, gs.chunk_cols2, gs.part2);
}

// (active, first column, end column, group) of a block; all zero when there is nothing to do.
fn block_setup(b: u32) -> vec4<u32> {
    if (b >= params.n_blocks) {
        return vec4<u32>(0u);
    }
    let blk = blocks[b];
    let gs = groups[blk.x];
    if (gs.is_active == 0u) {
        return vec4<u32>(0u);
    }
    let side = side_of(gs);
    let c0 = blk.z * side.chunk_cols;
    let c1 = min(side.n_cols, c0 + side.chunk_cols);
    return vec4<u32>(1u, c0, c1, blk.x);
}

// Online log-sum-exp step in log2 units: exactly one exp2 per value.
fn lse_push(state: vec2<f32>, v: f32) -> vec2<f32> {
    let hi = max(state.x, v);
    let e = exp2(min(state.x, v) - hi);
    let s = select(state.y + e, fma(state.y, e, 1.0), v > state.x);
    return vec2<f32>(hi, s);
}

fn from_squared(d2: f32) -> f32 {
    if (EUCLIDEAN) {
        return sqrt(d2);
    }
    return d2;
}

@compute @workgroup_size(256)
fn lse_streaming(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let b = wid.y * nwg.x + wid.x;
    if (lid == 0u) {
        wg_info = block_setup(b);
    }
    let info = workgroupUniformLoad(&wg_info);
    if (info.x == 0u) {
        return;
    }
    let blk = blocks[b];
    let gs = groups[info.w];
    let side = side_of(gs);
    let r = blk.y + lid;
    let valid = r < side.n_rows;

    var xr: array<vec4<f32>, 16>;
    if (valid) {
        let base = (params.row_base + side.row_off + r) * DIM4;
        for (var k = 0u; k < DIM4; k++) {
            xr[k] = scores[base + k];
        }
    }
    let scale = LOG2E / gs.lambda;
    let log2n = log2(f32(side.n_cols));
    var state = vec2<f32>(NEG_BIG, 0.0);
    for (var t0 = info.y; t0 < info.z; t0 += TILE_COLS) {
        let len = min(TILE_COLS, info.z - t0);
        let col0 = params.col_base + side.col_off + t0;
        workgroupBarrier();
        for (var i = lid; i < len * DIM4; i += WG) {
            tile_y[i] = scores[col0 * DIM4 + i];
        }
        if (lid < len) {
            tile_h[lid] = pots[col0 + lid] * scale - log2n;
        }
        workgroupBarrier();
        if (valid) {
            for (var j = 0u; j < len; j++) {
                var acc = vec4<f32>(0.0);
                for (var k = 0u; k < DIM4; k++) {
                    let d = xr[k] - tile_y[j * DIM4 + k];
                    acc = fma(d, d, acc);
                }
                let c = from_squared(acc.x + acc.y + acc.z + acc.w);
                state = lse_push(state, tile_h[j] - c * scale);
            }
        }
    }
    if (valid) {
        partials[side.part + r * side.chunks + blk.z] = state;
    }
}

@compute @workgroup_size(256)
fn lse_materialised(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let b = wid.y * nwg.x + wid.x;
    if (lid == 0u) {
        wg_info = block_setup(b);
    }
    let info = workgroupUniformLoad(&wg_info);
    if (info.x == 0u) {
        return;
    }
    let blk = blocks[b];
    let gs = groups[info.w];
    let side = side_of(gs);
    let r = blk.y + lid;
    let valid = r < side.n_rows;
    let scale = LOG2E / gs.lambda;
    let log2n = log2(f32(side.n_cols));
    var state = vec2<f32>(NEG_BIG, 0.0);
    for (var t0 = info.y; t0 < info.z; t0 += MAT_COLS) {
        let len = min(MAT_COLS, info.z - t0);
        let col0 = params.col_base + side.col_off + t0;
        workgroupBarrier();
        // Cooperative, coalesced load of C[rows blk.y.., cols t0..] into tile_c[row][col].
        for (var i = lid; i < WG * MAT_COLS; i += WG) {
            var rr: u32;
            var cc: u32;
            var index: u32;
            if (params.half == 0u) {
                // C is n1 × n2 row-major: consecutive threads read consecutive columns.
                rr = i / MAT_COLS;
                cc = i % MAT_COLS;
                index = gs.cost_off + (blk.y + rr) * side.n_cols + t0 + cc;
            } else {
                // Rows are side 2: C[col][row], consecutive threads read consecutive rows.
                rr = i % WG;
                cc = i / WG;
                index = gs.cost_off + (t0 + cc) * side.n_rows + blk.y + rr;
            }
            if (blk.y + rr < side.n_rows && cc < len) {
                tile_c[rr * MAT_STRIDE + cc] = cost[index];
            }
        }
        if (lid < len) {
            tile_h[lid] = pots[col0 + lid] * scale - log2n;
        }
        workgroupBarrier();
        if (valid) {
            for (var j = 0u; j < len; j++) {
                state = lse_push(state, tile_h[j] - tile_c[lid * MAT_STRIDE + j] * scale);
            }
        }
    }
    if (valid) {
        partials[side.part + r * side.chunks + blk.z] = state;
    }
}

@compute @workgroup_size(256)
fn combine(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let i = gid.y * nwg.x * WG + gid.x;
    if (i >= params.n_rows) {
        return;
    }
    let idx = params.row_base + i;
    let gs = groups[row_group[idx]];
    if (gs.is_active == 0u) {
        return;
    }
    let side = side_of(gs);
    let first = side.part + (i - side.row_off) * side.chunks;
    var hi = NEG_BIG;
    for (var c = 0u; c < side.chunks; c++) {
        hi = max(hi, partials[first + c].x);
    }
    var sum = 0.0;
    for (var c = 0u; c < side.chunks; c++) {
        let p = partials[first + c];
        sum += p.y * exp2(p.x - hi);
    }
    let lse2 = hi + log2(sum);
    if (params.mode == 1u) {
        scratch[idx] = lse2;
        return;
    }
    let old = pots[idx];
    let rho = select(1.0, gs.tau / (gs.tau + gs.lambda), gs.tau > 0.0);
    let new_pot = -rho * gs.lambda * LN2 * lse2;
    pots[idx] = new_pot;
    if (gs.tau > 0.0) {
        scratch[idx] = abs(new_pot - old) / gs.lambda;
    } else if (params.half == 0u) {
        // Row sum of the current plan over a_i is exp(f_old/λ + lse): its distance to 1.
        scratch[idx] = abs(exp2(old * LOG2E / gs.lambda + lse2) - 1.0) / f32(side.n_rows);
    }
}

@compute @workgroup_size(256)
fn control(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let g = wid.y * nwg.x + wid.x;
    if (lid == 0u) {
        var go = 0u;
        if (g < params.n_groups) {
            go = groups[g].is_active;
        }
        wg_info = vec4<u32>(go, 0u, 0u, 0u);
    }
    let info = workgroupUniformLoad(&wg_info);
    if (info.x == 0u) {
        return;
    }
    let gs = groups[g];
    let unbalanced = gs.tau > 0.0;
    var acc = 0.0;
    for (var r = lid; r < gs.n1; r += WG) {
        let e = scratch[gs.off1 + r];
        acc = select(acc + e, max(acc, e), unbalanced);
    }
    if (unbalanced) {
        // Side-2 rows start at params.col_base (control runs with the half-0 parameters).
        for (var r = lid; r < gs.n2; r += WG) {
            acc = max(acc, scratch[params.col_base + gs.off2 + r]);
        }
    }
    red[lid] = acc;
    for (var width = WG / 2u; width > 0u; width = width / 2u) {
        workgroupBarrier();
        if (lid < width) {
            red[lid] = select(red[lid] + red[lid + width], max(red[lid], red[lid + width]), unbalanced);
        }
    }
    workgroupBarrier();
    if (lid == 0u) {
        var st = gs;
        let err = red[0];
        st.iterations += 1u;
        st.error = err;
        let last = st.stage + 1u >= st.n_stages;
        let tol = select(st.stage_tol, st.tol, last);
        // At the target λ, an error that stops improving below the f32 floor is as far as
        // f32 goes: stop there rather than spin to max_iter (matcher.rs, "f32 precision").
        if (err < st.best) {
            st.best = err;
            st.stall = 0u;
        } else {
            st.stall += 1u;
        }
        if (last && err >= tol && st.stall >= STALL_ITERS && st.best < st.floor) {
            st.converged = 1u;
            st.floored = 1u;
            st.is_active = 0u;
        }
        if (err < tol) {
            if (last) {
                st.converged = 1u;
                st.is_active = 0u;
            } else {
                st.stage += 1u;
                st.lambda = schedule[st.sched_off + st.stage];
                st.best = 3.0e38;
                st.stall = 0u;
            }
        }
        if (st.iterations >= st.max_iter || err != err) {
            st.is_active = 0u;
        }
        groups[g] = st;
    }
}

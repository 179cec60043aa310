// sinkhorn_lse.wgsl — one log-domain Sinkhorn half-iteration for every label group at once
// (METHOD.md step 3, Eq. 8), in log2 units so that each pair costs one exp2.
//
// Potentials are kept in log2 units, u = p·s with s = log2(e)/λ, as a frame and an offset
// (hi, lo; common.wgsl). For each row r of one side (the other side's rows are the columns c),
//     Λ_r = log2( (1/n_cols) Σ_c 2^(a_rc) ),   a_rc = (V_c − s·C_rc) + U_r + v_c,
// with (V_c, v_c) the column's frame and offset and U_r the row's frame: Λ_r is the row's
// log-sum-exp relative to its frame, so the new potential is U_r − Λ_r (damped by
// ρ = τ/(τ + λ) for KL-relaxed marginals) and the row's marginal error is |2^(u_r + Λ_r) − 1|
// with its own offset u_r: small numbers, hence f32-precise.
//
// Entry points:
//   lse      one workgroup per block (group, WG·ROWS rows, column chunk). Each invocation keeps
//            ROWS rows' scores in registers; the chunk's columns stream through workgroup
//            memory 64 at a time (zero-score, −∞-weight padding columns, so every inner loop
//            has a constant trip count and no length test). Per pair: the expanded distance
//            ‖x‖² + ‖y‖² − 2x·y (T + 1 FMAs on vec4s of four columns), sqrt, the exponent
//            against the row frame (no running max: the frame is the shift), exp2, add. Pairs
//            whose squared distance lost its digits to cancellation, or whose term is within
//            2^K of the row's sum when λ is small (`exact_below`), are recomputed exactly
//            (`exact_arg`).
//            A row whose sum leaves [2^-100, 2^100] (a stale frame, e.g. the first iteration
//            at a small λ) makes the workgroup stream the chunk again with a running max.
//            Writes one partial (shift, sum) per row and chunk.
//            In mode 2 (the final check) it sums instead, per row and chunk, every term
//            exactly in double-f32 against the row's whole potential (`check_chunk`).
//   combine  one invocation per row: merges the chunk partials into Λ and, by `mode`, updates
//            the potential and writes the row's error term (0), writes Λ (1, for
//            coupling.wgsl), or writes only the error term from the double-f32 sums (2, the
//            final check).
//   control  one workgroup per group: reduces the error terms, counts the iteration, moves to
//            the next ε stage, or stops the group (below tol; stalled below its f32 floor;
//            out of iterations). Stopped groups early-exit in every kernel of mode 0.
//
// Bindings (group 0): common.wgsl's 1–5; 0 uniform Params; 6 blocks (group, first row,
// chunk, 0); 7 partials (shift, sum); 8 scratch (per padded row: error term, or the row's
// log-normaliser in mode 1); 9 schedule (per ε stage of every group: κ = λ/(τ + λ), log2(e)/λ as hi and lo,
// and the factor from the previous stage's log2(e)/λ to this one's).
// Workgroup size 128 (lse, combine; the grid is 2-D past 65535 workgroups), 256 (control).
// Overrides: common.wgsl's DIM, EUCLIDEAN; ROWS (rows per invocation, ≤ 8); and switches for
// `psa bench --kernel-stats` and benches/gpu_device.sh: EXPANDED (else direct differences),
// FIXED_SHIFT (else a running max per pair), EXACT (else no exact recomputation: timing
// only), STUB_EXP2, STUB_SQRT (timing only: wrong values); and for the accuracy ablations
// of tests/accuracy.rs: HILO (else one f32 per potential), KAHAN (else a plain tile sum).
//
// CPU twin: psa_core::sinkhorn::soft_min_rows (the LSE) and psa_core::sinkhorn::solve_group
// (updates, ε-scaling, stopping).

const WG: u32 = 128u;
const CONTROL_WG: u32 = 256u;
const TILE: u32 = 64u;
const TILE_Q: u32 = 16u;
const MAX_ROWS: u32 = 8u;
const MAX_DIM: u32 = 64u;
// The frame may drift this far (log2 units) before a row's sum is redone with a running max.
const SUM_LO: f32 = 7.888609e-31; // 2^-100
const SUM_HI: f32 = 1.2676506e30; // 2^100
// Iterations without a new best error, below the floor, that count as the f32 plateau.
const STALL_ITERS: u32 = 200u;
// An offset (log2 units) past which a potential's frame moves to it: small, so that the
// offset resolves updates to ~1e-9 (an offset of 16 resolves only 2e-6, where Sinkhorn at
// λ = 0.01 stalled short of its fixed point).
const REFRESH: f32 = 0.0625;
// Over-relaxation (`relax`): plain iterations of a stage before the first mark, the shortest
// and longest window between marks, the largest ω, and the ω − 1 below which a fallback
// returns to plain steps.
const RELAX_WARM: u32 = 8u;
const RELAX_MIN_SPAN: u32 = 8u;
const RELAX_MAX_SPAN: u32 = 128u;
const OMEGA_MAX: f32 = 1.98;
const RELAX_MIN: f32 = 0.05;
// Plain Sinkhorn converging faster than this per iteration is left alone: it is done within a
// few windows, where an overshoot of ω would cost more than relaxing saves (measured on the
// POT fixtures: one iteration more on a 16-iteration solve).
const RELAX_MIN_RATE: f32 = 0.8;

override ROWS: u32 = 4u;
override EXPANDED: bool = true;
override FIXED_SHIFT: bool = true;
override EXACT: bool = true;
override HILO: bool = true;
override KAHAN: bool = true;
override STUB_EXP2: bool = false;
override STUB_SQRT: bool = false;

// Rust twin: psa_gpu::kernels::sinkhorn_lse::Params.
struct Params {
    half: u32,     // 0: rows = side 1 (f-update); 1: rows = side 2 (g-update)
    n_blocks: u32, // entries of `blocks` for this half
    n_rows: u32,   // padded rows of the row side, all groups
    row_base: u32, // first row of the row side in scores / pots / scratch / row_group
    col_base: u32, // first row of the column side there
    mode: u32,     // combine: 0 update, 1 store Λ, 2 error term only (modes 1, 2: all groups)
    n_groups: u32,
    _pad: u32,
}

// One side of a group as seen by a half-iteration.
struct Side {
    row_off: u32, n_rows: u32, col_off: u32, n_cols: u32,
    chunks: u32, chunk_cols: u32, part: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(6) var<storage, read> blocks: array<vec4<u32>>;
@group(0) @binding(7) var<storage, read_write> partials: array<vec2<f32>>;
@group(0) @binding(8) var<storage, read_write> scratch: array<f32>;
@group(0) @binding(9) var<storage, read> schedule: array<vec4<f32>>;

var<workgroup> wg_info: vec4<u32>;
var<workgroup> wg_redo: u32;
var<workgroup> wg_flags: array<u32, WG>;
var<workgroup> tile_y: array<vec4<f32>, TILE_Q * (DIM + 1u)>;
var<workgroup> tile_g: array<vec4<f32>, TILE_Q>;
var<workgroup> tile_d: array<vec4<f32>, TILE_Q>;
var<workgroup> red: array<f32, CONTROL_WG>;
var<workgroup> wg_rescale: f32;

// The invocation's rows: coordinates, ‖x‖², frame, frame·s, guard and exact thresholds.
var<private> xs: array<array<f32, MAX_ROWS>, MAX_DIM>;
var<private> nx: array<f32, MAX_ROWS>;
var<private> frame: array<f32, MAX_ROWS>;
var<private> fs: array<f32, MAX_ROWS>;
var<private> kap: array<f32, MAX_ROWS>;
var<private> thr: array<f32, MAX_ROWS>;
var<private> row_at: array<u32, MAX_ROWS>;
// Squared distances of the invocation's rows to the four columns of one quad.
var<private> acc: array<vec4<f32>, MAX_ROWS>;
// What the current column tile needs besides workgroup memory.
var<private> tile_col: u32;
var<private> tile_local: u32;

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
    if (gs.is_active == 0u && params.mode == 0u) {
        return vec4<u32>(0u);
    }
    let side = side_of(gs);
    let padded_cols = (side.n_cols + TILE - 1u) / TILE * TILE;
    let c0 = blk.z * side.chunk_cols;
    return vec4<u32>(1u, c0, min(padded_cols, c0 + side.chunk_cols), blk.x);
}

fn load_rows(first: u32, lid: u32, side: Side, log2n: f32, gs: GroupState) {
    let exact = exact_on(gs);
    let below = exact_below(gs);
    for (var r = 0u; r < ROWS; r++) {
        let row = params.row_base + side.row_off + first + lid + r * WG;
        row_at[r] = row;
        let q = row >> 2u;
        let lane = row & 3u;
        for (var k = 0u; k < DIM; k++) {
            xs[k][r] = -0.5 * scores[q * dima() + k][lane];
        }
        let n = scores[q * dima() + DIM][lane];
        nx[r] = n;
        kap[r] = select(-1.0, n * GUARD, EXPANDED && EXACT);
        let p = pots[row];
        frame[r] = p.x;
        fs[r] = p.x;
        // The row's sum sits near 2^(log2 n − offset); terms within 2^K of it are recomputed.
        thr[r] = select(BIG, log2n - p.y + below, exact && EXACT);
    }
}

// Columns [col, col + 64) of the column side into workgroup memory; frames past the group's
// last column are −∞, so those columns weigh nothing.
fn fill_tile(col: u32, local: u32, n_cols: u32, lid: u32) {
    let q0 = col >> 2u;
    for (var i = lid; i < TILE_Q * dima(); i += WG) {
        tile_y[i] = scores[q0 * dima() + i];
    }
    if (lid < TILE_Q) {
        var g = vec4<f32>(0.0);
        var d = vec4<f32>(0.0);
        for (var l = 0u; l < 4u; l++) {
            let c = 4u * lid + l;
            let p = pots[col + c];
            g[l] = select(NEG_BIG, p.x, local + c < n_cols);
            d[l] = p.y;
        }
        tile_g[lid] = g;
        tile_d[lid] = d;
    }
    tile_col = col;
    tile_local = local;
}

// Squared distances of the invocation's rows to the columns of quad q of the tile, into `acc`.
fn quad_d2(q: u32) {
    let base = q * dima();
    if (EXPANDED) {
        let ny = tile_y[base + DIM];
        for (var r = 0u; r < ROWS; r++) {
            acc[r] = vec4<f32>(nx[r]) + ny;
        }
        for (var k = 0u; k < DIM; k++) {
            let yk = tile_y[base + k];
            for (var r = 0u; r < ROWS; r++) {
                acc[r] = fma(vec4<f32>(xs[k][r]), yk, acc[r]);
            }
        }
    } else {
        for (var r = 0u; r < ROWS; r++) {
            acc[r] = vec4<f32>(0.0);
        }
        for (var k = 0u; k < DIM; k++) {
            let yk = tile_y[base + k];
            for (var r = 0u; r < ROWS; r++) {
                let d = fma(yk, vec4<f32>(0.5), vec4<f32>(xs[k][r]));
                acc[r] = fma(d, d, acc[r]);
            }
        }
    }
}

fn distance(d2: vec4<f32>) -> vec4<f32> {
    if (!EUCLIDEAN) {
        return d2;
    }
    if (STUB_SQRT) {
        return d2 * 0.5;
    }
    return sqrt(d2);
}

fn pow2(x: vec4<f32>) -> vec4<f32> {
    if (STUB_EXP2) {
        return fma(x, vec4<f32>(1e-3), vec4<f32>(1.0));
    }
    return exp2(x);
}

// Exponents of row r against quad q (after `quad_d2(q)`), the flagged ones exact.
fn quad_arg(q: u32, r: u32, gs: GroupState, n_cols: u32, gq: vec4<f32>, dq: vec4<f32>) -> vec4<f32> {
    let d2 = acc[r];
    var arg = (fma(vec4<f32>(-gs.s_hi), distance(d2), gq) + vec4<f32>(fs[r])) + dq;
    let flagged = (d2 < vec4<f32>(kap[r])) | (arg > vec4<f32>(thr[r]));
    if (any(flagged)) {
        arg = exact_quad(arg, flagged, q, r, gs, n_cols);
    }
    return arg;
}

fn exact_quad(arg: vec4<f32>, flagged: vec4<bool>, q: u32, r: u32, gs: GroupState, n_cols: u32) -> vec4<f32> {
    var out = arg;
    for (var l = 0u; l < 4u; l++) {
        let c = 4u * q + l;
        if (flagged[l] && tile_local + c < n_cols) {
            out[l] = exact_arg(row_at[r], tile_col + c, frame[r], gs);
        }
    }
    return out;
}

// A running log-sum-exp on four lanes: the max so far and the sum relative to it.
struct Online {
    m: vec4<f32>,
    sum: vec4<f32>,
}

fn online_push(o: Online, arg: vec4<f32>) -> Online {
    let hi = max(o.m, arg);
    let e = pow2(min(o.m, arg) - hi);
    return Online(hi, select(o.sum + e, fma(o.sum, e, vec4<f32>(1.0)), arg > o.m));
}

fn lanes_partial(o: Online) -> vec2<f32> {
    let hi = max(max(o.m.x, o.m.y), max(o.m.z, o.m.w));
    return vec2<f32>(hi, dot(o.sum, exp2(o.m - vec4<f32>(hi))));
}

@compute @workgroup_size(128)
fn lse(
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
    if (params.mode == 2u) {
        check_chunk(info, blk, gs, side, lid);
        return;
    }
    load_rows(blk.y, lid, side, log2(f32(side.n_cols)), gs);
    let col0 = params.col_base + side.col_off;

    // The hot loop: a fixed shift (the row frame), or a running max per pair (FIXED_SHIFT off).
    // Per row: the sum over tiles with its Kahan compensation (the tile sums are small, so
    // the row sum's rounding does not grow with n).
    var total: array<vec4<f32>, MAX_ROWS>;
    var comp: array<vec4<f32>, MAX_ROWS>;
    var online: array<Online, MAX_ROWS>;
    for (var r = 0u; r < ROWS; r++) {
        total[r] = vec4<f32>(0.0);
        comp[r] = vec4<f32>(0.0);
        online[r] = Online(vec4<f32>(NEG_BIG), vec4<f32>(0.0));
    }
    for (var t0 = info.y; t0 < info.z; t0 += TILE) {
        workgroupBarrier();
        fill_tile(col0 + t0, t0, side.n_cols, lid);
        workgroupBarrier();
        var part: array<vec4<f32>, MAX_ROWS>;
        for (var r = 0u; r < ROWS; r++) {
            part[r] = vec4<f32>(0.0);
        }
        for (var q = 0u; q < TILE_Q; q++) {
            quad_d2(q);
            let gq = tile_g[q];
            let dq = tile_d[q];
            for (var r = 0u; r < ROWS; r++) {
                let arg = quad_arg(q, r, gs, side.n_cols, gq, dq);
                if (FIXED_SHIFT) {
                    part[r] += pow2(arg);
                } else {
                    online[r] = online_push(online[r], arg);
                }
            }
        }
        if (FIXED_SHIFT) {
            for (var r = 0u; r < ROWS; r++) {
                if (KAHAN) {
                    let y = part[r] - comp[r];
                    let t = (total[r] + y) * gs.one;
                    comp[r] = (t - total[r]) - y;
                    total[r] = t;
                } else {
                    total[r] += part[r];
                }
            }
        }
    }

    // Partials of the rows whose fixed-shift sum is in range; the others are redone below.
    var redo = 0u;
    for (var r = 0u; r < ROWS; r++) {
        let local = blk.y + lid + r * WG;
        var p: vec2<f32>;
        if (FIXED_SHIFT) {
            p = vec2<f32>(0.0, dot(total[r], vec4<f32>(1.0)));
        } else {
            p = lanes_partial(online[r]);
        }
        let in_range = p.y >= SUM_LO && p.y <= SUM_HI;
        if (local < side.n_rows) {
            if (in_range || !FIXED_SHIFT) {
                partials[side.part + local * side.chunks + blk.z] = p;
            } else {
                redo |= 1u << r;
            }
        }
    }
    wg_flags[lid] = redo;
    workgroupBarrier();
    if (lid == 0u) {
        var any_redo = 0u;
        for (var i = 0u; i < WG; i++) {
            any_redo |= wg_flags[i];
        }
        wg_redo = any_redo;
    }
    if (workgroupUniformLoad(&wg_redo) != 0u) {
        redo_chunk(info, blk, gs, side, lid, redo);
    }
}

// The chunk again with a running max for the rows flagged in `redo` (the whole workgroup
// streams the tiles; only flagged rows compute).
fn redo_chunk(info: vec4<u32>, blk: vec4<u32>, gs: GroupState, side: Side, lid: u32, redo: u32) {
    var online: array<Online, MAX_ROWS>;
    for (var r = 0u; r < ROWS; r++) {
        online[r] = Online(vec4<f32>(NEG_BIG), vec4<f32>(0.0));
    }
    let col0 = params.col_base + side.col_off;
    for (var t0 = info.y; t0 < info.z; t0 += TILE) {
        workgroupBarrier();
        fill_tile(col0 + t0, t0, side.n_cols, lid);
        workgroupBarrier();
        if (redo != 0u) {
            for (var q = 0u; q < TILE_Q; q++) {
                quad_d2(q);
                for (var r = 0u; r < ROWS; r++) {
                    if ((redo & (1u << r)) != 0u) {
                        let arg = quad_arg(q, r, gs, side.n_cols, tile_g[q], tile_d[q]);
                        online[r] = online_push(online[r], arg);
                    }
                }
            }
        }
    }
    for (var r = 0u; r < ROWS; r++) {
        if ((redo & (1u << r)) != 0u) {
            let local = blk.y + lid + r * WG;
            partials[side.part + local * side.chunks + blk.z] = lanes_partial(online[r]);
        }
    }
}

// Exponents (log2) past which the final check calls a row sum out of f32's range: 2^96 times
// the terms of a chunk stays finite.
const OVERFLOW_EXP: f32 = 96.0;

// The final check (mode 2): each row's sum over the chunk of 2^(a_rc + u_r) — every exponent
// against the row's whole potential, in double-f32, and summed in double-f32 — so that the
// row's marginal over its target, (1/n_cols)·Σ_c, is known to ~1e-10 and the reported error is
// the real one of the returned potentials even below f32's 6e-8 (`combine` finishes it).
// Writes (sum hi, sum lo) as the row's partial. Not a hot path: once per check.
fn check_chunk(info: vec4<u32>, blk: vec4<u32>, gs: GroupState, side: Side, lid: u32) {
    let col0 = params.col_base + side.col_off;
    let end = min(info.z, side.n_cols);
    for (var r = 0u; r < ROWS; r++) {
        let local = blk.y + lid + r * WG;
        if (local >= side.n_rows) {
            continue;
        }
        let row = params.row_base + side.row_off + local;
        let pot = pots[row];
        var sum = vec2<f32>(0.0);
        for (var c = info.y; c < end; c++) {
            let t = exact_arg_dd(row, col0 + c, pot, gs);
            if (t.x > OVERFLOW_EXP) {
                // The sum would leave f32's range (and inf − inf is NaN in double-f32): mark it.
                sum = vec2<f32>(BIG, 0.0);
                break;
            }
            sum = dd_add(sum, exp2_dd(t, gs.one), gs.one);
        }
        partials[side.part + local * side.chunks + blk.z] = sum;
    }
}

// The one place where a row's new potential is made from its old one and its LSE Λ (log2,
// relative to the frame old.x): Sinkhorn's U − Λ, damped by ρ = τ/(τ + λ) for KL-relaxed
// marginals, then over-relaxed: the step from `old` towards that target times ω (`relax`).
fn update_potential(old: vec2<f32>, lam: f32, gs: GroupState) -> vec2<f32> {
    var lo = -lam;
    if (gs.tau > 0.0) {
        // ρ·(U − Λ) − U = −κ·U − (1 − κ)·Λ, with κ = 1 − ρ from the host (small where τ ≫ λ:
        // ρ in f32 would err by 6e-8 of the whole potential, κ by 6e-8 of κ·U).
        let k = two_prod(gs.kappa, old.x, gs.one);
        lo = -k.x - (1.0 - gs.kappa) * lam - k.y;
    }
    if (gs.overrelax != 0.0) {
        lo += gs.overrelax * (lo - old.y);
    }
    return renormalise(old.x, lo, gs.one);
}

// Moves the frame to the offset once the offset outgrows REFRESH: hi + lo stays the same
// number, exactly.
fn renormalise(hi: f32, lo: f32, one: f32) -> vec2<f32> {
    if (!HILO) {
        return vec2<f32>(hi + lo, 0.0);
    }
    if (abs(lo) <= REFRESH) {
        return vec2<f32>(hi, lo);
    }
    return two_sum(hi, lo, one);
}

@compute @workgroup_size(128)
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
    if (gs.is_active == 0u && params.mode == 0u) {
        return;
    }
    let side = side_of(gs);
    let local = i - side.row_off;
    if (local >= side.n_rows) {
        return;
    }
    let first = side.part + local * side.chunks;
    if (params.mode == 2u) {
        // The chunks' double-f32 sums (`check_chunk`): the row's marginal over its target is
        // sum / n_cols; balanced, its error term is |sum − n_cols| / (n_cols · n_rows).
        var total = vec2<f32>(0.0);
        var overflow = false;
        for (var c = 0u; c < side.chunks; c++) {
            let p = partials[first + c];
            overflow = overflow || p.x >= BIG;
            total = dd_add(total, p, gs.one);
        }
        let n = f32(side.n_cols);
        if (overflow) {
            // A plan whose row sum leaves f32's range (e.g. stopped early in an ε stage): the
            // host reads an error this large as infinite.
            scratch[idx] = BIG;
        } else if (gs.tau > 0.0) {
            // KL-relaxed: log2 of the row's marginal over its target, from which the host
            // forms the fixed-point residual with the row's whole potential.
            scratch[idx] = log2(total.x / n) + total.y / total.x * LOG2E;
        } else {
            scratch[idx] = abs((total.x - n) + total.y) / n / f32(side.n_rows);
        }
        return;
    }
    var hi = NEG_BIG;
    for (var c = 0u; c < side.chunks; c++) {
        hi = max(hi, partials[first + c].x);
    }
    var sum = 0.0;
    for (var c = 0u; c < side.chunks; c++) {
        let p = partials[first + c];
        sum += p.y * exp2(p.x - hi);
    }
    if (params.mode == 1u) {
        // The coupling's row normaliser: log2 Σ_c 2^(a_rc).
        scratch[idx] = hi + log2(sum);
        return;
    }
    // Dividing by n_cols before the log keeps Λ accurate where it is small.
    let lam = hi + log2(sum / f32(side.n_cols));
    let old = pots[idx];
    // This row's marginal of the current plan over its target is 2^(offset + Λ).
    let term = abs(exp2m1(old.y + lam)) / f32(side.n_rows);
    let new_pot = update_potential(old, lam, gs);
    pots[idx] = new_pot;
    if (gs.tau > 0.0) {
        // The fixed-point residual |Δp| / λ of Sinkhorn's own step: |Δu| · ln 2 / ω.
        let step = abs((new_pot.x - old.x) + (new_pot.y - old.y));
        scratch[idx] = step * LN2 / (1.0 + gs.overrelax);
    } else {
        // Half 0: the row error of the plan before this iteration; half 1: the column error
        // of the plan between the halves (not zero once the g-update is over-relaxed).
        scratch[idx] = term;
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
    // Balanced: the larger of the row and column L1 errors; KL-relaxed: the largest residual.
    // Side-2 rows start at params.col_base (control runs with the half-0 parameters).
    let unbalanced = gs.tau > 0.0;
    let rows = reduce_rows(gs.off1, gs.n1, unbalanced, lid);
    let cols = reduce_rows(params.col_base + gs.off2, gs.n2, unbalanced, lid);
    if (lid == 0u) {
        // max() of a NaN is the other operand on some devices: a NaN must stop the group.
        let err = select(max(rows, cols), rows + cols, rows != rows || cols != cols);
        let st = advance(gs, err);
        groups[g] = st;
        // A new ε stage: potentials in log2 units scale with log2(e)/λ.
        wg_rescale = select(1.0, schedule[st.sched_off + st.stage].w, st.stage != gs.stage);
    }
    let factor = workgroupUniformLoad(&wg_rescale);
    if (factor != 1.0) {
        for (var r = lid; r < gs.n1 + gs.n2; r += CONTROL_WG) {
            var row = gs.off1 + r;
            if (r >= gs.n1) {
                row = params.col_base + gs.off2 + r - gs.n1;
            }
            let p = pots[row];
            let hi = two_prod(p.x, factor, gs.one);
            pots[row] = renormalise(hi.x, p.y * factor + hi.y, gs.one);
        }
    }
}

// The sum (or, with `use_max`, the maximum) of the scratch terms of n rows from `first`, over
// the control workgroup; every invocation gets the result.
fn reduce_rows(first: u32, n: u32, use_max: bool, lid: u32) -> f32 {
    var acc = 0.0;
    for (var r = lid; r < n; r += CONTROL_WG) {
        let e = scratch[first + r];
        acc = select(acc + e, max(acc, e), use_max);
    }
    // Every invocation has read the previous reduction's result before red is reused.
    workgroupBarrier();
    red[lid] = acc;
    for (var width = CONTROL_WG / 2u; width > 0u; width = width / 2u) {
        workgroupBarrier();
        if (lid < width) {
            red[lid] = select(red[lid] + red[lid + width], max(red[lid], red[lid + width]), use_max);
        }
    }
    workgroupBarrier();
    return red[0];
}

// Over-relaxation (issue 16): every update goes ω times Sinkhorn's step, with ω chosen as
// adaptive SOR does (Hageman & Young; for Sinkhorn, Lehmann, von Renesse, Sambale &
// Uschmajew 2021: ω* = 2 / (1 + √(1 − η)) for plain Sinkhorn's linear rate η). After
// RELAX_WARM plain iterations of an ε stage the error is marked; a window closes once it has
// halved (at least RELAX_MIN_SPAN iterations) or after RELAX_MAX_SPAN; its mean decay θ per
// iteration under the current ω gives η by SOR's eigenvalue relation (θ + ω − 1)² = θ ω² η
// (η = θ at ω = 1), and ω rises to ω*(η) once η ≥ RELAX_MIN_RATE — never falls on an
// estimate, since at ω ≥ ω* the relation returns ω* itself. Safeguard, in the spirit of Thibault, Chizat, Dossal &
// Papadakis (2017): a window that ends without progress, or an error 8× its mark, halves
// ω − 1 (to 0 below RELAX_MIN) and the cap on it; each window with progress restores one
// halving of the cap. A stage thus costs plain Sinkhorn's iterations at worst plus the windows
// spent finding that out.
// The CPU reference accelerates with safeguarded Anderson mixing instead (anderson.rs in
// psa_core::sinkhorn): it needs a small least-squares solve per iteration on the host.
fn relax(gs: GroupState, err: f32) -> GroupState {
    var st = gs;
    if (st.accel == 0u) {
        return st;
    }
    st.stage_iters += 1u;
    let k = st.stage_iters;
    if (k < RELAX_WARM) {
        return st;
    }
    if (k == RELAX_WARM) {
        st.mark_err = err;
        st.mark_iter = k;
        return st;
    }
    let span = k - st.mark_iter;
    let blown = err > 8.0 * st.mark_err;
    let closed = (span >= RELAX_MIN_SPAN && err < 0.5 * st.mark_err) || span >= RELAX_MAX_SPAN;
    if (!(blown || closed)) {
        return st;
    }
    let theta = pow(err / st.mark_err, 1.0 / f32(span));
    if (blown || !(theta < 1.0)) {
        if (st.overrelax > 0.0) {
            st.fallbacks += 1u;
            st.overrelax *= 0.5;
            if (st.overrelax < RELAX_MIN) {
                st.overrelax = 0.0;
            }
        }
    } else if (theta > 0.0) {
        // Progress: the cap recovers one halving.
        st.fallbacks = max(st.fallbacks, 1u) - 1u;
        let omega = 1.0 + st.overrelax;
        let eta = min((theta + omega - 1.0) * (theta + omega - 1.0) / (theta * omega * omega), 1.0);
        let cap = (OMEGA_MAX - 1.0) * exp2(-f32(st.fallbacks));
        if (eta >= RELAX_MIN_RATE) {
            st.overrelax = max(st.overrelax, min(2.0 / (1.0 + sqrt(1.0 - eta)) - 1.0, cap));
        }
    }
    st.mark_err = err;
    st.mark_iter = k;
    return st;
}

// A group's state after an iteration with stopping error `err`.
fn advance(gs: GroupState, err: f32) -> GroupState {
    var st = relax(gs, err);
    st.iterations += 1u;
    st.error = err;
    let last = st.stage + 1u >= st.n_stages;
    let tol = select(st.stage_tol, st.tol, last);
    if (err < st.best) {
        st.best = err;
        st.stall = 0u;
    } else {
        st.stall += 1u;
    }
    if (err < tol) {
        if (last) {
            st.converged = 1u;
            st.is_active = 0u;
        } else {
            st.stage += 1u;
            let next = schedule[st.sched_off + st.stage];
            st.kappa = next.x;
            st.s_hi = next.y;
            st.s_lo = next.z;
            st.best = BIG;
            st.stall = 0u;
            // A new λ has its own rate: measure it afresh.
            st.overrelax = 0.0;
            st.stage_iters = 0u;
            st.fallbacks = 0u;
        }
    } else if (last && st.stall >= STALL_ITERS && st.best < st.floor) {
        // At the target λ, an error that stopped falling below the f32 floor is as far as f32
        // goes: stop there (reported as the precision floor, not as converged).
        st.floored = 1u;
        st.is_active = 0u;
    }
    if (st.iterations >= st.max_iter || err != err) {
        st.is_active = 0u;
    }
    return st;
}

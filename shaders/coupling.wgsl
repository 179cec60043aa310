// coupling.wgsl — outputs of the lazy coupling P(j|i) = softmax_j((g_j − C_ij)/λ) (METHOD.md
// step 4, "Outputs a user needs"), streamed over the columns of each row's group, with no
// n1 × n2 matrix.
//
// Every entry point needs each modality-1 row's normaliser L_i = log2 Σ_j 2^(a_ij) as
// sinkhorn_lse.wgsl's `combine` (mode 1) leaves it: then P(j|i) = 2^(a_ij − L_i), with a_ij the
// exponent in log2 units relative to the row's frame (common.wgsl), computed as the Sinkhorn
// kernel does (f32, with the same exact recomputation of dominant and near-zero-distance pairs).
//   top_k     the k (≤ 64) largest P(j|i) per row, largest first, ties by lower j
//             (out_index: group-local j or −1; out_value: weights). One invocation per row.
//   project   16 columns (4 vec4, from vec4 `y_block`) of Σ_j P(j|i) y_j per dispatch.
//   diagonal  P(partner_i | i) per row; partner_i is read from out_index (u32::MAX: none, 0).
//   rows      P(j|i) of rows first_row.. of one group, n2 values per row (one invocation per
//             entry; x = column, y = row).
//   sample    for each row, `draws` indices j ~ P(·|i): aux holds each row's uniforms sorted
//             ascending; entry d gets the first j whose cumulative P exceeds u_d.
//
// Bindings (group 0): common.wgsl's 1–5; 0 uniform CouplingParams; 6 row_lse (Λ per padded
// row); 7 out_index; 8 out_value; 9 aux (y rows of y_width vec4 for project, uniforms for
// sample).
// Workgroup size 128 (1-D over rows, 2-D grid past 65535 workgroups; `rows`: 64 × 1 tiles of
// a 2-D grid). Overrides: common.wgsl's DIM, EUCLIDEAN.
//
// CPU twin: psa_core::coupling::Coupling::{top_k, project, row_into},
// psa_core::coupling::select_top and psa_core::coupling::sample_pairs.

const OUT_WG: u32 = 128u;
const MAX_K: u32 = 64u;
const MAX_ROW_DIM: u32 = 64u;
const NONE: u32 = 0xffffffffu;

// Rust twin: psa_gpu::kernels::coupling::CouplingParams.
struct CouplingParams {
    n_rows: u32,   // padded modality-1 rows, all groups
    col_base: u32, // first modality-2 row in scores / pots
    k: u32,
    y_width: u32,  // vec4s per row of y
    y_block: u32,  // first vec4 of y handled by this project dispatch
    group: u32,    // rows: the group
    first_row: u32, // rows: its first row; sample: unused
    draws: u32,    // sample: uniforms per row; rows: rows in this call
}

@group(0) @binding(0) var<uniform> params: CouplingParams;
@group(0) @binding(6) var<storage, read> row_lse: array<f32>;
@group(0) @binding(7) var<storage, read_write> out_index: array<u32>;
@group(0) @binding(8) var<storage, read_write> out_value: array<f32>;
@group(0) @binding(9) var<storage, read> aux: array<vec4<f32>>;

// The current row: its group, normaliser, ‖x‖², frame and exact threshold (coordinates in xr).
struct Row {
    at: u32,
    gs: GroupState,
    lse: f32,
    nx: f32,
    frame: f32,
    thr: f32,
}

var<private> xr: array<f32, MAX_ROW_DIM>;

fn row_index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.y * nwg.x * OUT_WG + gid.x;
}

// The row at padded index i, or none when i is padding or past the end.
fn load_row(i: u32) -> Row {
    var row: Row;
    row.at = NONE;
    if (i >= params.n_rows) {
        return row;
    }
    let gs = groups[row_group[i]];
    if (i - gs.off1 >= gs.n1) {
        return row;
    }
    row.at = i;
    row.gs = gs;
    row.lse = row_lse[i];
    let q = i >> 2u;
    let lane = i & 3u;
    for (var k = 0u; k < DIM; k++) {
        xr[k] = -0.5 * scores[q * dima() + k][lane];
    }
    row.nx = scores[q * dima() + DIM][lane];
    row.frame = pots[i].x;
    row.thr = select(BIG, row.lse + exact_below(gs), exact_on(gs));
    return row;
}

// log2 P(j|i) for group-local column j of `row`, as sinkhorn_lse.wgsl computes its exponents.
fn log_p(row: Row, j: u32) -> f32 {
    let col = params.col_base + row.gs.off2 + j;
    let q = col >> 2u;
    let lane = col & 3u;
    var d2 = row.nx + scores[q * dima() + DIM][lane];
    for (var k = 0u; k < DIM; k++) {
        d2 = fma(xr[k], scores[q * dima() + k][lane], d2);
    }
    var c = d2;
    if (EUCLIDEAN) {
        c = sqrt(max(d2, 0.0));
    }
    let v = pots[col];
    var a = (fma(-row.gs.s_hi, c, v.x) + row.frame) + v.y;
    if (d2 < row.nx * GUARD || a > row.thr) {
        a = exact_arg(row.at, col, row.frame, row.gs);
    }
    return a - row.lse;
}

@compute @workgroup_size(128)
fn top_k(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = row_index(gid, nwg);
    let row = load_row(i);
    if (row.at == NONE) {
        return;
    }
    let k = min(params.k, MAX_K);
    var best_v: array<f32, MAX_K>;
    var best_j: array<u32, MAX_K>;
    var count = 0u;
    for (var j = 0u; j < row.gs.n2; j++) {
        let v = log_p(row, j);
        if (count < k || v > best_v[k - 1u]) {
            // Insert below every entry ≥ v, so equal weights keep the lower index first.
            var pos = min(count, k - 1u);
            while (pos > 0u && best_v[pos - 1u] < v) {
                best_v[pos] = best_v[pos - 1u];
                best_j[pos] = best_j[pos - 1u];
                pos -= 1u;
            }
            best_v[pos] = v;
            best_j[pos] = j;
            count = min(count + 1u, k);
        }
    }
    for (var slot = 0u; slot < params.k; slot++) {
        let o = i * params.k + slot;
        if (slot < count) {
            out_index[o] = best_j[slot];
            out_value[o] = exp2(best_v[slot]);
        } else {
            out_index[o] = NONE;
            out_value[o] = 0.0;
        }
    }
}

@compute @workgroup_size(128)
fn project(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = row_index(gid, nwg);
    let row = load_row(i);
    if (row.at == NONE) {
        return;
    }
    let width = min(4u, params.y_width - params.y_block);
    var total: array<vec4<f32>, 4>;
    for (var j = 0u; j < row.gs.n2; j++) {
        let p = exp2(log_p(row, j));
        let yrow = (row.gs.off2 + j) * params.y_width + params.y_block;
        for (var q = 0u; q < width; q++) {
            total[q] = fma(vec4<f32>(p), aux[yrow + q], total[q]);
        }
    }
    for (var q = 0u; q < width; q++) {
        let o = (i * params.y_width + params.y_block + q) * 4u;
        out_value[o] = total[q].x;
        out_value[o + 1u] = total[q].y;
        out_value[o + 2u] = total[q].z;
        out_value[o + 3u] = total[q].w;
    }
}

@compute @workgroup_size(128)
fn diagonal(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = row_index(gid, nwg);
    let row = load_row(i);
    if (row.at == NONE) {
        return;
    }
    let j = out_index[i];
    if (j == NONE) {
        out_value[i] = 0.0;
        return;
    }
    out_value[i] = exp2(log_p(row, j));
}

@compute @workgroup_size(64)
fn rows(@builtin(global_invocation_id) gid: vec3<u32>) {
    let gs = groups[params.group];
    let j = gid.x;
    let r = gid.y;
    if (j >= gs.n2 || r >= params.draws) {
        return;
    }
    let row = load_row(gs.off1 + params.first_row + r);
    if (row.at == NONE) {
        return;
    }
    out_value[r * gs.n2 + j] = exp2(log_p(row, j));
}

fn uniform_at(e: u32) -> f32 {
    return aux[e >> 2u][e & 3u];
}

@compute @workgroup_size(128)
fn sample(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = row_index(gid, nwg);
    let row = load_row(i);
    if (row.at == NONE) {
        return;
    }
    let first = i * params.draws;
    var next = 0u;
    var cumulative = 0.0;
    for (var j = 0u; j < row.gs.n2 && next < params.draws; j++) {
        cumulative += exp2(log_p(row, j));
        while (next < params.draws && uniform_at(first + next) < cumulative) {
            out_index[first + next] = j;
            next += 1u;
        }
    }
    for (; next < params.draws; next++) {
        out_index[first + next] = row.gs.n2 - 1u;
    }
}

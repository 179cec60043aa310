// coupling.wgsl — outputs of the lazy coupling P(j|i) = softmax_j((g_j − C_ij)/λ), streamed
// over the columns of each row's group, with no n1 × n2 matrix.
//
// Every entry point runs one invocation per modality-1 row (all groups at once, row i of the
// concatenated side 1, group from row_group) and needs the row's log-sum-exp `row_lse` in log2
// units, as sinkhorn_lse.wgsl's `combine` (mode 1) leaves it in its scratch buffer, so that
// P(j|i) = exp2(v_j − row_lse_i) with v_j = g_j·log2(e)/λ − log2(n2) − C_ij·log2(e)/λ.
//   top_k     the k (≤ 64) largest P(j|i) per row, largest first, ties by lower j
//             (out_index: group-local j or −1; out_value: weights).
//   project   16 columns (4 vec4, starting at vec4 `y_block`) of Σ_j P(j|i) y_j per dispatch.
//   diagonal  P(partner_i | i) per row (partner u32::MAX: skipped, writes 0).
//
// Bindings (group 0): 0 uniform CouplingParams; 1 scores; 2 pots (f then g); 3 groups
// (GroupState, as in sinkhorn_lse.wgsl); 4 row_lse; 5 row_group; 6 out_index; 7 out_value;
// 8 y (modality-2 rows, y_width vec4 each); 9 partner.
// Workgroup size 256 (1-D rows, 2-D grid past 65535 workgroups). Overrides: DIM4, EUCLIDEAN.
//
// CPU twin: psa_core::coupling::Coupling::{top_k, project, row} and
// psa_core::coupling::select_top.

const WG: u32 = 256u;
const MAX_K: u32 = 64u;
const LOG2E: f32 = 1.4426950408889634;
const NEG_BIG: f32 = -3.0e38;

override DIM4: u32 = 16u;
override EUCLIDEAN: bool = true;

struct CouplingParams {
    n_rows: u32,   // modality-1 rows, all groups
    col_base: u32, // first modality-2 row in scores / pots (= n_rows)
    k: u32,
    y_width: u32,  // vec4s per row of y
    y_block: u32,  // first vec4 of y handled by this project dispatch
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
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

@group(0) @binding(0) var<uniform> params: CouplingParams;
@group(0) @binding(1) var<storage, read> scores: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> pots: array<f32>;
@group(0) @binding(3) var<storage, read> groups: array<GroupState>;
@group(0) @binding(4) var<storage, read> row_lse: array<f32>;
@group(0) @binding(5) var<storage, read> row_group: array<u32>;
@group(0) @binding(6) var<storage, read_write> out_index: array<i32>;
@group(0) @binding(7) var<storage, read_write> out_value: array<f32>;
@group(0) @binding(8) var<storage, read> y: array<vec4<f32>>;
@group(0) @binding(9) var<storage, read> partner: array<u32>;

fn row_index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.y * nwg.x * WG + gid.x;
}

// log2 of the unnormalised P(j|i) of row i (global) and column j (group-local).
fn log_weight(i: u32, gs: GroupState, j: u32) -> f32 {
    let scale = LOG2E / gs.lambda;
    let col = params.col_base + gs.off2 + j;
    var acc = vec4<f32>(0.0);
    for (var k = 0u; k < DIM4; k++) {
        let d = scores[i * DIM4 + k] - scores[col * DIM4 + k];
        acc = fma(d, d, acc);
    }
    var c = acc.x + acc.y + acc.z + acc.w;
    if (EUCLIDEAN) {
        c = sqrt(c);
    }
    return pots[col] * scale - log2(f32(gs.n2)) - c * scale;
}

@compute @workgroup_size(256)
fn top_k(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = row_index(gid, nwg);
    if (i >= params.n_rows) {
        return;
    }
    let gs = groups[row_group[i]];
    let k = min(params.k, MAX_K);
    var best_v: array<f32, MAX_K>;
    var best_j: array<i32, MAX_K>;
    var count = 0u;
    for (var j = 0u; j < gs.n2; j++) {
        let v = log_weight(i, gs, j);
        if (count < k || v > best_v[k - 1u]) {
            // Insert below every entry ≥ v, so equal weights keep the lower index first.
            var pos = min(count, k - 1u);
            while (pos > 0u && best_v[pos - 1u] < v) {
                best_v[pos] = best_v[pos - 1u];
                best_j[pos] = best_j[pos - 1u];
                pos -= 1u;
            }
            best_v[pos] = v;
            best_j[pos] = i32(j);
            count = min(count + 1u, k);
        }
    }
    let lse = row_lse[i];
    for (var s = 0u; s < params.k; s++) {
        let o = i * params.k + s;
        if (s < count) {
            out_index[o] = best_j[s];
            out_value[o] = exp2(best_v[s] - lse);
        } else {
            out_index[o] = -1;
            out_value[o] = 0.0;
        }
    }
}

@compute @workgroup_size(256)
fn project(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = row_index(gid, nwg);
    if (i >= params.n_rows) {
        return;
    }
    let gs = groups[row_group[i]];
    let lse = row_lse[i];
    let width = min(4u, params.y_width - params.y_block);
    var acc: array<vec4<f32>, 4>;
    for (var j = 0u; j < gs.n2; j++) {
        let p = exp2(log_weight(i, gs, j) - lse);
        let yrow = (gs.off2 + j) * params.y_width + params.y_block;
        for (var q = 0u; q < width; q++) {
            acc[q] = fma(vec4<f32>(p), y[yrow + q], acc[q]);
        }
    }
    for (var q = 0u; q < width; q++) {
        let o = (i * params.y_width + params.y_block + q) * 4u;
        out_value[o] = acc[q].x;
        out_value[o + 1u] = acc[q].y;
        out_value[o + 2u] = acc[q].z;
        out_value[o + 3u] = acc[q].w;
    }
}

@compute @workgroup_size(256)
fn diagonal(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = row_index(gid, nwg);
    if (i >= params.n_rows) {
        return;
    }
    let j = partner[i];
    if (j == 0xffffffffu) {
        out_value[i] = 0.0;
        return;
    }
    let gs = groups[row_group[i]];
    out_value[i] = exp2(log_weight(i, gs, j) - row_lse[i]);
}

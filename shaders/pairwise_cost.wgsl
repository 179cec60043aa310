// pairwise_cost.wgsl — the cost matrix of one label group, C_ij = ‖x_i − y_j‖₂ (or its
// square), between the transformed scores of modality 1 (x, n1 rows) and modality 2 (y, n2).
//
// Used by the materialised Sinkhorn mode: C is computed once per group and the LSE kernel
// (sinkhorn_lse.wgsl, lse_materialised) reads it instead of recomputing costs.
//
// Bindings (group 0): 0 uniform CostParams (bound with a dynamic offset, one slot per group);
// 1 scores (vec4 rows, side 1 then side 2, T padded with zeros to DIM4 vec4s); 2 cost
// (row-major n1 × n2 block of each group at cost_off).
// Workgroup size 16 × 16: the workgroup stages a tile of 16 rows of x and 16 rows of y in
// workgroup memory; each invocation writes one C_ij. Dispatch: (ceil(n2/16), ceil(n1/16)).
// Overrides: DIM4 = ceil(T/4), EUCLIDEAN (else squared Euclidean).
//
// CPU twin: psa_core::Metric::cost (psa_core::cost::squared_distance).

const TILE: u32 = 16u;

override DIM4: u32 = 16u;
override EUCLIDEAN: bool = true;

struct CostParams {
    n1: u32,
    n2: u32,
    row1: u32,     // first row of the group's x in `scores`
    row2: u32,     // first row of the group's y in `scores`
    cost_off: u32, // first element of the group's matrix in `cost`
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: CostParams;
@group(0) @binding(1) var<storage, read> scores: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> cost: array<f32>;

var<workgroup> tile_x: array<vec4<f32>, 256>; // TILE × max DIM4
var<workgroup> tile_y: array<vec4<f32>, 256>;

@compute @workgroup_size(16, 16)
fn pairwise_cost(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let i0 = wid.y * TILE;
    let j0 = wid.x * TILE;
    let flat = lid.y * TILE + lid.x;
    for (var e = flat; e < TILE * DIM4; e += TILE * TILE) {
        let r = e / DIM4;
        if (i0 + r < params.n1) {
            tile_x[e] = scores[(params.row1 + i0) * DIM4 + e];
        }
        if (j0 + r < params.n2) {
            tile_y[e] = scores[(params.row2 + j0) * DIM4 + e];
        }
    }
    workgroupBarrier();
    let i = i0 + lid.y;
    let j = j0 + lid.x;
    if (i >= params.n1 || j >= params.n2) {
        return;
    }
    var acc = vec4<f32>(0.0);
    for (var k = 0u; k < DIM4; k++) {
        let d = tile_x[lid.y * DIM4 + k] - tile_y[lid.x * DIM4 + k];
        acc = fma(d, d, acc);
    }
    let d2 = acc.x + acc.y + acc.z + acc.w;
    var c = d2;
    if (EUCLIDEAN) {
        c = sqrt(d2);
    }
    cost[params.cost_off + i * params.n2 + j] = c;
}

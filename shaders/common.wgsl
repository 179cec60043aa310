// common.wgsl — what every psa kernel shares; prepended to each shader when it is loaded
// (crates/gpu/src/kernels/mod.rs, `source`), so a struct or a binding is written once.
//
// Layout (crates/gpu/src/plan.rs): the rows of modality 1 of every group, then the rows of
// modality 2, each group's rows padded with zero rows to a multiple of 64. Four consecutive
// rows form a quad stored component-major, so one vec4 holds one score coordinate of four
// rows: a column tile is a straight copy and the distance loop needs no shuffles.
//   scores     quad q: DIM + 1 vec4s, −2·x_k for k < DIM, then ‖x‖² (centred per group)
//   scores_lo  quad q: DIM vec4s, x_k − f32(x_k) (read only by the exact path below)
//   pots       one (hi, lo) pair of f32 per row: the potential in log2 units, p·log2(e)/λ =
//              hi + lo; hi is the frame every exponent is centred on, lo the part that moves
//              between iterations (crates/gpu/src/matcher.rs, "f32 precision").
//
// Bindings (group 0, shared by sinkhorn_lse.wgsl and coupling.wgsl, which add theirs at 0
// and from 6 on): 1 scores, 2 scores_lo, 3 pots, 4 groups (GroupState), 5 row_group (the
// group of each padded row).
// Workgroup size: none here (helpers only; each kernel states its own).
// Overrides: DIM (score coordinates T), EUCLIDEAN (else squared Euclidean).
//
// CPU twin: psa_core::Metric::cost (the exact cost) and psa_core::coupling::Coupling::row_into
// (one exponent of P(j|i)).

const LOG2E: f32 = 1.4426950408889634;
const LN2: f32 = 0.6931471805599453;
// Log-weight of padding columns: exp2 of anything near it is 0, and sums with it stay finite.
const NEG_BIG: f32 = -3.0e38;
const BIG: f32 = 3.0e38;

override DIM: u32 = 12u;
override EUCLIDEAN: bool = true;

// vec4s per quad of `scores`.
fn dima() -> u32 {
    return DIM + 1u;
}

// A group's layout in the concatenated buffers and its solver state (updated on the device by
// `control` in sinkhorn_lse.wgsl). Rust twin: psa_gpu::kernels::GroupState.
struct GroupState {
    off1: u32, n1: u32, off2: u32, n2: u32,
    chunks1: u32, chunks2: u32, chunk_cols1: u32, chunk_cols2: u32,
    part1: u32, part2: u32, sched_off: u32, n_stages: u32,
    stage: u32, iterations: u32, max_iter: u32, is_active: u32,
    converged: u32, stall: u32, floored: u32, _pad0: u32,
    lambda: f32, tau: f32, tol: f32, stage_tol: f32,
    error: f32, best: f32, floor: f32, mean_cost: f32,
    // log2(e)/λ as a double-f32 (hi + lo): the exact path needs it to ~1e-14.
    s_hi: f32, s_lo: f32, _pad1: f32, _pad2: f32,
}

@group(0) @binding(1) var<storage, read> scores: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> scores_lo: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> pots: array<vec2<f32>>;
@group(0) @binding(4) var<storage, read_write> groups: array<GroupState>;
@group(0) @binding(5) var<storage, read> row_group: array<u32>;

// Terms within 2^4 of their row's sum (so at most 16 per row, whatever n) have their exponents
// recomputed exactly when a group's λ is small enough for f32 to matter (`exact_on`); measured:
// exact terms within 2^4 hold P(j|i) as well as within 2^12, within 2^1 do not.
const EXACT_BELOW: f32 = -4.0;
// ... which is when s · mean cost reaches this (s = log2(e)/λ): below, the f32 exponent of a
// dominant term is already good to ~1e-6.
const EXACT_MIN_SCALE: f32 = 32.0;
// A squared distance under this fraction of the row's ‖x‖² lost too many digits to the
// expanded form ‖x‖² + ‖y‖² − 2x·y and is recomputed exactly.
const GUARD: f32 = 0.00390625;

fn exact_on(gs: GroupState) -> bool {
    return gs.s_hi * gs.mean_cost >= EXACT_MIN_SCALE;
}

// Error-free transformations (Knuth's TwoSum, FMA TwoProd): the double-f32 arithmetic of the
// exact path. Plain additions only, so no driver may fuse them.
fn two_sum(a: f32, b: f32) -> vec2<f32> {
    let s = a + b;
    let bb = s - a;
    return vec2<f32>(s, (a - (s - bb)) + (b - bb));
}

fn fast_two_sum(a: f32, b: f32) -> vec2<f32> {
    let s = a + b;
    return vec2<f32>(s, b - (s - a));
}

fn two_prod(a: f32, b: f32) -> vec2<f32> {
    let p = a * b;
    return vec2<f32>(p, fma(a, b, -p));
}

fn dd_add(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
    let s = two_sum(a.x, b.x);
    return fast_two_sum(s.x, s.y + a.y + b.y);
}

fn dd_sqrt(a: vec2<f32>) -> vec2<f32> {
    if (a.x <= 0.0) {
        return vec2<f32>(0.0);
    }
    let r = sqrt(a.x);
    return fast_two_sum(r, (fma(-r, r, a.x) + a.y) / (2.0 * r));
}

// Coordinate k of padded row `row` as f32 (hi) and its remainder (lo).
fn coordinate(row: u32, k: u32) -> vec2<f32> {
    let q = row >> 2u;
    let lane = row & 3u;
    return vec2<f32>(-0.5 * scores[q * dima() + k][lane], scores_lo[q * DIM + k][lane]);
}

// The cost between two padded rows in double-f32, from their scores' hi and lo parts.
fn exact_cost(row: u32, col: u32) -> vec2<f32> {
    var d2 = vec2<f32>(0.0);
    for (var k = 0u; k < DIM; k++) {
        let x = coordinate(row, k);
        let y = coordinate(col, k);
        let d = two_sum(x.x, -y.x);
        let lo = d.y + (x.y - y.y);
        let sq = two_prod(d.x, d.x);
        d2 = dd_add(d2, vec2<f32>(sq.x, fma(2.0 * d.x, lo, sq.y)));
    }
    if (EUCLIDEAN) {
        return dd_sqrt(d2);
    }
    return d2;
}

// The exponent (log2 units) of pair (row, col): v_col + frame_row − s·C, where v_col is the
// column's whole potential (hi + lo), frame_row the row's hi and s = log2(e)/λ; exact to ~1e-7
// absolute wherever it is small, which the f32 evaluation of the same terms (sizes up to s·C)
// is not (matcher.rs, "f32 precision").
fn exact_arg(row: u32, col: u32, frame_row: f32, gs: GroupState) -> f32 {
    let v = pots[col];
    let c = exact_cost(row, col);
    let sc = two_prod(gs.s_hi, c.x);
    let cost = fast_two_sum(sc.x, sc.y + fma(gs.s_hi, c.y, gs.s_lo * c.x));
    var t = two_sum(v.x, frame_row);
    t = dd_add(t, vec2<f32>(v.y, 0.0));
    t = dd_add(t, -cost);
    return t.x + t.y;
}

// 2^x − 1 with relative accuracy for small x (the marginal-error terms).
fn exp2m1(x: f32) -> f32 {
    let y = x * LN2;
    if (abs(y) < 1e-3) {
        return y * (1.0 + y * (0.5 + y * 0.16666667));
    }
    return exp2(x) - 1.0;
}

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
// ln 2 as a double-f32: hi = f32(ln 2), lo = ln 2 − hi.
const LN2_HI: f32 = 0.693147182464599609375;
const LN2_LO: f32 = -1.904654323148236e-9;
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
    // kappa = λ/(τ + λ) = 1 − ρ of the current stage (0 when balanced, τ = 0).
    off1: u32, n1: u32, off2: u32, n2: u32,
    chunks1: u32, chunks2: u32, chunk_cols1: u32, chunk_cols2: u32,
    part1: u32, part2: u32, sched_off: u32, n_stages: u32,
    stage: u32, iterations: u32, max_iter: u32, is_active: u32,
    converged: u32, stall: u32, floored: u32, accel: u32,
    kappa: f32, tau: f32, tol: f32, stage_tol: f32,
    error: f32, best: f32, floor: f32, mean_cost: f32,
    // log2(e)/λ as a double-f32 (hi + lo): the exact path needs it to ~1e-14.
    s_hi: f32, s_lo: f32,
    // 1.0, read at run time: see `opaque`.
    one: f32,
    // Over-relaxation (sinkhorn_lse.wgsl `relax`): ω − 1, iterations in this ε stage, the
    // safeguard's fallbacks in this stage, and the error and stage iteration of the last mark.
    overrelax: f32, stage_iters: u32, fallbacks: u32, mark_err: f32, mark_iter: u32,
}

@group(0) @binding(1) var<storage, read> scores: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> scores_lo: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> pots: array<vec2<f32>>;
@group(0) @binding(4) var<storage, read_write> groups: array<GroupState>;
@group(0) @binding(5) var<storage, read> row_group: array<u32>;

// When a group's λ is small enough for f32 to matter (`exact_on`), terms within a factor 2^K of
// their row's sum have their exponents recomputed exactly, K = clamp(log2(s · C̄), 4, 20): an f32
// exponent errs by ~ε·s·C̄ (log2 units), so the terms left in f32 then carry at most ~1e-7 of
// the row's mass in error. At most 2^K terms per row, usually far fewer.
fn exact_below(gs: GroupState) -> f32 {
    return -clamp(log2(gs.s_hi * gs.mean_cost), 4.0, 20.0);
}
// ... which is when s · mean cost reaches this (s = log2(e)/λ): below, the f32 exponent of a
// dominant term is already good to ~1e-6.
const EXACT_MIN_SCALE: f32 = 32.0;
// A squared distance under this fraction of the row's ‖x‖² lost too many digits to the
// expanded form ‖x‖² + ‖y‖² − 2x·y and is recomputed exactly.
const GUARD: f32 = 0.00390625;

fn exact_on(gs: GroupState) -> bool {
    return gs.s_hi * gs.mean_cost >= EXACT_MIN_SCALE;
}

// Error-free transformations (Knuth's TwoSum, Dekker's TwoProduct): the double-f32 arithmetic
// of the exact path and of the potentials' frames. Compilers may simplify float expressions
// with real-number identities — Mesa's NIR folds (a + b) − a to b and fma(a, b, −a·b) to 0,
// and lavapipe does not fuse fma — which would zero every error term, so each intermediate
// passes through `opaque` and products are split instead of fused.
fn opaque(x: f32, one: f32) -> f32 {
    // x with its bits xor-ed with a run-time zero (the bits of `one` against those of 1.0):
    // integer operations stop the compiler from re-associating or contracting the float
    // operations on either side (a multiplication by `one` did not: LLVM fused a rounded
    // product into the following sum, and two_sum lost its error term).
    return bitcast<f32>(bitcast<u32>(x) ^ (bitcast<u32>(one) ^ 0x3f800000u));
}

fn two_sum(a: f32, b: f32, one: f32) -> vec2<f32> {
    let s = opaque(a + b, one);
    let bb = opaque(s - a, one);
    return vec2<f32>(s, (a - (s - bb)) + (b - bb));
}

fn fast_two_sum(a: f32, b: f32, one: f32) -> vec2<f32> {
    let s = opaque(a + b, one);
    return vec2<f32>(s, b - (s - a));
}

// `a` as hi + lo with hi holding the top 12 bits, so that products of halves are exact.
fn split(a: f32, one: f32) -> vec2<f32> {
    let t = opaque(4097.0 * a, one);
    let hi = t - opaque(t - a, one);
    return vec2<f32>(hi, a - hi);
}

fn two_prod(a: f32, b: f32, one: f32) -> vec2<f32> {
    let p = opaque(a * b, one);
    let x = split(a, one);
    let y = split(b, one);
    return vec2<f32>(p, ((x.x * y.x - p) + x.x * y.y + x.y * y.x) + x.y * y.y);
}

fn dd_add(a: vec2<f32>, b: vec2<f32>, one: f32) -> vec2<f32> {
    let s = two_sum(a.x, b.x, one);
    return fast_two_sum(s.x, s.y + a.y + b.y, one);
}

fn dd_mul(a: vec2<f32>, b: vec2<f32>, one: f32) -> vec2<f32> {
    let p = two_prod(a.x, b.x, one);
    return fast_two_sum(p.x, p.y + (a.x * b.y + a.y * b.x), one);
}

fn dd_sqrt(a: vec2<f32>, one: f32) -> vec2<f32> {
    if (a.x <= 0.0) {
        return vec2<f32>(0.0);
    }
    let r = sqrt(a.x);
    let rr = two_prod(r, r, one);
    return fast_two_sum(r, ((a.x - rr.x) - rr.y + a.y) / (2.0 * r), one);
}

// Coordinate k of padded row `row` as f32 (hi) and its remainder (lo).
fn coordinate(row: u32, k: u32) -> vec2<f32> {
    let q = row >> 2u;
    let lane = row & 3u;
    return vec2<f32>(-0.5 * scores[q * dima() + k][lane], scores_lo[q * DIM + k][lane]);
}

// The cost between two padded rows in double-f32, from their scores' hi and lo parts.
fn exact_cost(row: u32, col: u32, one: f32) -> vec2<f32> {
    var d2 = vec2<f32>(0.0);
    for (var k = 0u; k < DIM; k++) {
        let x = coordinate(row, k);
        let y = coordinate(col, k);
        let d = two_sum(x.x, -y.x, one);
        let lo = d.y + (x.y - y.y);
        let sq = two_prod(d.x, d.x, one);
        d2 = dd_add(d2, vec2<f32>(sq.x, sq.y + 2.0 * d.x * lo), one);
    }
    if (EUCLIDEAN) {
        return dd_sqrt(d2, one);
    }
    return d2;
}

// The exponent (log2 units) of pair (row, col): v_col + frame_row − s·C, where v_col is the
// column's whole potential (hi + lo), frame_row the row's hi and s = log2(e)/λ; exact to ~1e-7
// absolute wherever it is small, which the f32 evaluation of the same terms (sizes up to s·C)
// is not (matcher.rs, "f32 precision").
fn exact_arg(row: u32, col: u32, frame_row: f32, gs: GroupState) -> f32 {
    let t = exact_arg_dd(row, col, vec2<f32>(frame_row, 0.0), gs);
    return t.x + t.y;
}

// The same exponent in double-f32 against the row's potential `row_pot` (hi, lo).
fn exact_arg_dd(row: u32, col: u32, row_pot: vec2<f32>, gs: GroupState) -> vec2<f32> {
    let one = gs.one;
    let v = pots[col];
    let c = exact_cost(row, col, one);
    let sc = two_prod(gs.s_hi, c.x, one);
    let cost = fast_two_sum(sc.x, sc.y + gs.s_hi * c.y + gs.s_lo * c.x, one);
    var t = two_sum(v.x, row_pot.x, one);
    t = dd_add(t, vec2<f32>(v.y, 0.0), one);
    t = dd_add(t, vec2<f32>(row_pot.y, 0.0), one);
    return dd_add(t, -cost, one);
}

// 2^t for a double-f32 t, to ~2e-10 relative (the f32 bracket of the polynomial bounds it):
// the final marginal check needs sums good far below f32's 6e-8 (the built-in exp2 may err by
// several ulp, and lavapipe's is biased by +6e-8 on average, which would shift every measured
// marginal by that much). t = n + r with n an integer, |r| ≤ 1/2; e^(r·ln2 / 16) − 1 by a
// Taylor polynomial, squared four times as (1 + e)² − 1 = e·(e + 2), then scaled by 2^n.
fn exp2_dd(t: vec2<f32>, one: f32) -> vec2<f32> {
    if (t.x < -149.0) {
        return vec2<f32>(0.0);
    }
    let n = round(t.x);
    let r = two_sum(t.x - n, t.y, one);
    var z = dd_mul(r, vec2<f32>(LN2_HI, LN2_LO), one) * 0.0625;
    // e^z − 1 = z + z²·(1/2 + z/6 + z²/24 + z³/120 + z⁴/720): the bracket in f32 is enough,
    // since z² ≤ 5e-4 scales its rounding down to ~1e-11.
    let h = 0.5 + z.x * (0.16666667 + z.x * (0.041666668 + z.x * (0.008333334 + z.x * 0.0013888889)));
    var e = dd_add(z, dd_mul(dd_mul(z, z, one), vec2<f32>(h, 0.0), one), one);
    for (var k = 0u; k < 4u; k++) {
        e = dd_mul(e, dd_add(e, vec2<f32>(2.0, 0.0), one), one);
    }
    let y = fast_two_sum(1.0, e.x, one);
    let scaled = vec2<f32>(y.x, y.y + e.y);
    let k = i32(n);
    return vec2<f32>(ldexp(scaled.x, k), ldexp(scaled.y, k));
}

// 2^x − 1 with relative accuracy for small x (the marginal-error terms).
fn exp2m1(x: f32) -> f32 {
    let y = x * LN2;
    if (abs(y) < 1e-3) {
        return y * (1.0 + y * (0.5 + y * 0.16666667));
    }
    return exp2(x) - 1.0;
}

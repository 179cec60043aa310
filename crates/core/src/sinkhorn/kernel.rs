//! The hot loop of every half-iteration: a streaming log-sum-exp over one side's rows.
//!
//! For each row `r` of one side, `out[r] = LSE_c(h_c − C(x_r, y_c) / λ)`, where `h` carries the
//! other side's potentials. Two sources of costs, in either precision ([`Real`]: f64, the
//! reference, or f32):
//! * **streamed** ([`soft_min_rows`]): the cost is recomputed from the `T` scores of each pair,
//!   so memory stays `O((n1 + n2) · T)`;
//! * **materialised** ([`soft_min_stored`]): the costs were computed once (in f64, then rounded
//!   to the pass's precision) into a [`CostRows`] matrix, and each pass only reads them: no
//!   distance and no square root per pair, at the price of `n1 · n2` stored values per side.
//!
//! Speed comes from four choices (a plain f64 loop with libm `exp` runs ~1 s per iteration at
//! n = 8000 on 2 cores; this one is several times faster):
//! * the other side is stored transposed ([`Columns`], `T × n`), so for a fixed row the distance
//!   to [`LANES`] consecutive columns is a fixed-width loop LLVM turns into SIMD (f32 fills
//!   twice as many columns per vector register);
//! * `exp` is the branch-free [`crate::fastexp`] one, which vectorises;
//! * one pass per row over tiles of [`TILE`] columns, keeping a running max and a rescaled sum
//!   (online log-sum-exp), so each tile's values are produced once and consumed from L1;
//! * [`ROWS`] rows at a time, so each load of the other side serves several rows.
//!
//! Sums within a tile are in the pass's precision; across tiles in f64, and results are f64.
//! On x86-64 the loop is compiled twice, the second time with AVX2 + FMA enabled, and the
//! faster one is picked at run time.

use rayon::prelude::*;

use crate::Metric;
use crate::fastexp::{Fused, MulAdd, Real, Separate};

/// Columns processed together by the vectorised loops.
pub const LANES: usize = 8;
/// Rows processed together, so each load of the other side serves several rows.
pub const ROWS: usize = 4;
/// Columns per tile of the online log-sum-exp.
pub const TILE: usize = 256;

/// One side's scores in column chunks: for each chunk of [`LANES`] points, its `dim × LANES`
/// coordinates contiguous (`data[chunk][k][lane]`), padded with zero points to a whole chunk.
/// The distance loop then reads one sequential stream with no index arithmetic. Padding points
/// are masked by giving them `h = −∞`.
#[derive(Clone, Debug)]
pub struct Columns<R = f64> {
    pub dim: usize,
    pub n: usize,
    pub n_padded: usize,
    data: Vec<R>,
}

impl<R: Real> Columns<R> {
    /// Rearranges `x` (`n × dim`, row-major), rounding to `R`.
    pub fn new(x: &[f64], n: usize, dim: usize) -> Columns<R> {
        debug_assert_eq!(x.len(), n * dim);
        let n_padded = n.div_ceil(LANES) * LANES;
        let mut data = vec![R::ZERO; dim * n_padded];
        for (r, row) in x.chunks_exact(dim).enumerate() {
            let (chunk, lane) = (r / LANES, r % LANES);
            for (k, &v) in row.iter().enumerate() {
                data[chunk * dim * LANES + k * LANES + lane] = R::from_f64(v);
            }
        }
        Columns {
            dim,
            n,
            n_padded,
            data,
        }
    }

    /// The chunks of `len` columns starting at column `start` (both multiples of [`LANES`]).
    #[inline(always)]
    fn chunks(&self, start: usize, len: usize) -> std::slice::ChunksExact<'_, R> {
        self.data[start * self.dim..(start + len) * self.dim].chunks_exact(self.dim * LANES)
    }
}

/// The cost matrix between the rows of one side and the (padded) columns of the other,
/// row-major, computed in f64 and rounded to `R`. Padding columns hold 0 (masked by `h = −∞`).
#[derive(Clone, Debug)]
pub struct CostRows<R> {
    pub n_rows: usize,
    pub n_padded: usize,
    data: Vec<R>,
}

impl<R: Real> CostRows<R> {
    /// `C(x_r, y_c)` for the rows of `x` (row-major, `y.dim` columns) against `y`, computed by
    /// the streamed f64 loop and rounded to `R`.
    pub fn new(x: &[f64], y: &Columns<f64>, metric: Metric) -> CostRows<R> {
        let mut costs = CostRows::zeros(x.len() / y.dim, y.n_padded);
        compute_costs(x, y, metric, &mut costs.data, None);
        costs
    }

    fn zeros(n_rows: usize, n_padded: usize) -> CostRows<R> {
        CostRows {
            n_rows,
            n_padded,
            data: vec![R::ZERO; n_rows * n_padded],
        }
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.data.len() * std::mem::size_of::<R>()
    }

    #[inline(always)]
    fn row(&self, r: usize) -> &[R] {
        &self.data[r * self.n_padded..(r + 1) * self.n_padded]
    }
}

impl CostRows<f32> {
    /// The costs as an f32 pair `hi + lo` (`hi` the costs rounded to f32, `lo` the rest): f32
    /// passes read `hi`, f64 passes read both, and `hi + lo` is the f64 cost to about 2⁻⁴⁸
    /// relative, in the memory of one f64 matrix.
    pub fn split(x: &[f64], y: &Columns<f64>, metric: Metric) -> (CostRows<f32>, CostRows<f32>) {
        let mut hi = CostRows::zeros(x.len() / y.dim, y.n_padded);
        let mut lo = CostRows::zeros(x.len() / y.dim, y.n_padded);
        compute_costs(x, y, metric, &mut hi.data, Some(&mut lo.data));
        (hi, lo)
    }
}

/// Fills `out` (row-major, `y.n_padded` per row) with the costs between the rows of `x` and
/// `y`, computed by the streamed f64 loop; with `rest`, the f64 cost is `out + rest`.
fn compute_costs<R: Real>(
    x: &[f64],
    y: &Columns<f64>,
    metric: Metric,
    out: &mut [R],
    rest: Option<&mut [f32]>,
) {
    let (dim, n_padded) = (y.dim, y.n_padded);
    let block = ROWS * n_padded;
    let rests: Vec<Option<&mut [f32]>> = match rest {
        Some(rest) => rest.chunks_mut(block).map(Some).collect(),
        None => out.chunks(block).map(|_| None).collect(),
    };
    let zeros = vec![0.0; n_padded];
    out.par_chunks_mut(block)
        .zip(rests)
        .enumerate()
        .for_each(|(index, (out, mut rest))| {
            let start = index * ROWS;
            let count = out.len() / n_padded;
            let rows = RowBlock::new(&x[start * dim..(start + count) * dim], dim);
            let source = Streamed {
                rows: &rows,
                y,
                metric,
            };
            let mut tiles = vec![0.0; ROWS * TILE];
            let mut tile_start = 0;
            while tile_start < n_padded {
                let len = TILE.min(n_padded - tile_start);
                // With h = 0 and 1/λ = −1 the exponents are the costs themselves.
                fill_dispatch(
                    &source,
                    &zeros,
                    -1.0,
                    tile_start,
                    len,
                    &mut tiles[..ROWS * len],
                );
                for r in 0..count {
                    let span = r * n_padded + tile_start..r * n_padded + tile_start + len;
                    let costs = &tiles[r * len..(r + 1) * len];
                    for (o, &c) in out[span.clone()].iter_mut().zip(costs) {
                        *o = R::from_f64(c);
                    }
                    if let Some(rest) = rest.as_deref_mut() {
                        for ((l, o), &c) in rest[span.clone()]
                            .iter_mut()
                            .zip(&out[span.clone()])
                            .zip(costs)
                        {
                            *l = (c - o.to_f64()) as f32;
                        }
                    }
                }
                tile_start += len;
            }
        });
}

/// `out[r] = LSE_c(h[c] − C(x_r, y_c) · inv_eps)` for every row of `x` (`out.len() × dim`,
/// row-major, in the pass's precision). `h` has `y.n_padded` entries, `−∞` on padding.
pub fn soft_min_rows<R: Real>(
    x: &[R],
    y: &Columns<R>,
    h: &[R],
    inv_eps: R,
    metric: Metric,
    out: &mut [f64],
) {
    assert_eq!(h.len(), y.n_padded, "h must cover the padded columns");
    assert_eq!(x.len(), out.len() * y.dim, "x must hold one row per output");
    for_row_blocks(out, |start, buf| {
        let count = ROWS.min(out_len(x, y.dim) - start);
        let rows = RowBlock::new(&x[start * y.dim..(start + count) * y.dim], y.dim);
        rows_lse(
            &Streamed {
                rows: &rows,
                y,
                metric,
            },
            h,
            inv_eps,
            buf,
        )
    });
}

/// [`soft_min_rows`] over materialised costs: `out[r] = LSE_c(h[c] − costs[r][c] · inv_eps)`.
pub fn soft_min_stored<R: Real>(costs: &CostRows<R>, h: &[R], inv_eps: R, out: &mut [f64]) {
    assert_eq!(h.len(), costs.n_padded, "h must cover the padded columns");
    assert_eq!(out.len(), costs.n_rows, "one output per cost row");
    for_row_blocks(out, |start, buf| {
        let rows = std::array::from_fn(|r| costs.row((start + r).min(costs.n_rows - 1)));
        rows_lse(&Stored { rows }, h, inv_eps, buf)
    });
}

/// [`soft_min_stored`] over split costs `hi + lo` ([`CostRows::split`]), in precision `R`.
pub fn soft_min_split<R: Real>(
    hi: &CostRows<f32>,
    lo: &CostRows<f32>,
    h: &[R],
    inv_eps: R,
    out: &mut [f64],
) {
    assert_eq!(h.len(), hi.n_padded, "h must cover the padded columns");
    assert_eq!(out.len(), hi.n_rows, "one output per cost row");
    for_row_blocks(out, |start, buf| {
        let at = |r: usize| (start + r).min(hi.n_rows - 1);
        let source = Split {
            hi: std::array::from_fn(|r| hi.row(at(r))),
            lo: std::array::from_fn(|r| lo.row(at(r))),
        };
        rows_lse(&source, h, inv_eps, buf)
    });
}

fn out_len<R>(x: &[R], dim: usize) -> usize {
    x.len() / dim
}

/// Runs `block(first_row, tile_buffer)` over blocks of [`ROWS`] outputs in parallel, writing
/// each block's results.
fn for_row_blocks<R: Real>(out: &mut [f64], block: impl Fn(usize, &mut [R]) -> [f64; ROWS] + Sync) {
    const ROWS_PER_TASK: usize = 4 * ROWS;
    out.par_chunks_mut(ROWS_PER_TASK)
        .enumerate()
        .for_each(|(task, chunk)| {
            let first = task * ROWS_PER_TASK;
            let mut buf = vec![R::ZERO; ROWS * TILE];
            for (index, outs) in chunk.chunks_mut(ROWS).enumerate() {
                let lse = block(first + index * ROWS, &mut buf);
                outs.copy_from_slice(&lse[..outs.len()]);
            }
        });
}

/// Up to [`ROWS`] rows; missing rows repeat the last one (computed, then discarded).
pub struct RowBlock<R = f64> {
    coords: Vec<[R; ROWS]>,
}

impl<R: Real> RowBlock<R> {
    pub fn new(rows: &[R], dim: usize) -> RowBlock<R> {
        let count = rows.len() / dim;
        assert!(
            (1..=ROWS).contains(&count),
            "a block holds 1 to {ROWS} rows"
        );
        let coords = (0..dim)
            .map(|k| std::array::from_fn(|r| rows[r.min(count - 1) * dim + k]))
            .collect();
        RowBlock { coords }
    }
}

/// Where a block of rows gets the exponents `h_c − C_rc · inv_eps` of one tile.
pub trait TileSource<R: Real>: Sync {
    /// Writes row `r`'s exponents for columns `tile_start..tile_start + len` at
    /// `tiles[r * len ..]` and returns each row's max.
    fn fill<M: MulAdd>(
        &self,
        h: &[R],
        inv_eps: R,
        tile_start: usize,
        len: usize,
        tiles: &mut [R],
    ) -> [R; ROWS];
    /// Columns to cover (a multiple of [`LANES`]).
    fn n_padded(&self) -> usize;
}

/// Costs recomputed from the scores.
pub struct Streamed<'a, R> {
    pub rows: &'a RowBlock<R>,
    pub y: &'a Columns<R>,
    pub metric: Metric,
}

impl<R: Real> TileSource<R> for Streamed<'_, R> {
    #[inline(always)]
    fn fill<M: MulAdd>(
        &self,
        h: &[R],
        inv_eps: R,
        tile_start: usize,
        len: usize,
        tiles: &mut [R],
    ) -> [R; ROWS] {
        // Squared distances, register-blocked over ROWS × LANES pairs.
        for (chunk_index, chunk) in self.y.chunks(tile_start, len).enumerate() {
            let mut d2 = [[R::ZERO; LANES]; ROWS];
            for (xk, yk) in self.rows.coords.iter().zip(chunk.chunks_exact(LANES)) {
                for r in 0..ROWS {
                    for l in 0..LANES {
                        let d = xk[r] - yk[l];
                        d2[r][l] = d.mul_add_with::<M>(d, d2[r][l]);
                    }
                }
            }
            for (r, row) in d2.iter().enumerate() {
                let at = r * len + chunk_index * LANES;
                tiles[at..at + LANES].copy_from_slice(row);
            }
        }
        // Then the exponents, one simple loop per row (vectorised at the full width).
        let h_tile = &h[tile_start..tile_start + len];
        let mut maxima = [R::NEG_INFINITY; ROWS];
        for (max, row) in maxima.iter_mut().zip(tiles.chunks_exact_mut(len)) {
            match self.metric {
                Metric::Euclidean => {
                    for (v, &hk) in row.iter_mut().zip(h_tile) {
                        *v = (-v.sqrt()).mul_add_with::<M>(inv_eps, hk);
                    }
                }
                Metric::SqEuclidean => {
                    for (v, &hk) in row.iter_mut().zip(h_tile) {
                        *v = (-*v).mul_add_with::<M>(inv_eps, hk);
                    }
                }
            }
            *max = lane_max(row);
        }
        maxima
    }

    fn n_padded(&self) -> usize {
        self.y.n_padded
    }
}

/// Costs read from a [`CostRows`] matrix.
pub struct Stored<'a, R> {
    pub rows: [&'a [R]; ROWS],
}

impl<R: Real> TileSource<R> for Stored<'_, R> {
    #[inline(always)]
    fn fill<M: MulAdd>(
        &self,
        h: &[R],
        inv_eps: R,
        tile_start: usize,
        len: usize,
        tiles: &mut [R],
    ) -> [R; ROWS] {
        let h_tile = &h[tile_start..tile_start + len];
        let mut maxima = [R::NEG_INFINITY; ROWS];
        for ((max, costs), out) in maxima
            .iter_mut()
            .zip(&self.rows)
            .zip(tiles.chunks_exact_mut(len))
        {
            let costs = &costs[tile_start..tile_start + len];
            for ((v, &c), &hk) in out.iter_mut().zip(costs).zip(h_tile) {
                *v = (-c).mul_add_with::<M>(inv_eps, hk);
            }
            *max = lane_max(out);
        }
        maxima
    }

    fn n_padded(&self) -> usize {
        self.rows[0].len()
    }
}

/// Costs read from an f32 `hi + lo` pair.
pub struct Split<'a> {
    pub hi: [&'a [f32]; ROWS],
    pub lo: [&'a [f32]; ROWS],
}

impl<R: Real> TileSource<R> for Split<'_> {
    #[inline(always)]
    fn fill<M: MulAdd>(
        &self,
        h: &[R],
        inv_eps: R,
        tile_start: usize,
        len: usize,
        tiles: &mut [R],
    ) -> [R; ROWS] {
        let h_tile = &h[tile_start..tile_start + len];
        let span = tile_start..tile_start + len;
        let mut maxima = [R::NEG_INFINITY; ROWS];
        for (r, out) in tiles.chunks_exact_mut(len).enumerate() {
            let (hi, lo) = (&self.hi[r][span.clone()], &self.lo[r][span.clone()]);
            for (((v, &a), &b), &hk) in out.iter_mut().zip(hi).zip(lo).zip(h_tile) {
                let cost = R::from_f32(a) + R::from_f32(b);
                *v = (-cost).mul_add_with::<M>(inv_eps, hk);
            }
            maxima[r] = lane_max(out);
        }
        maxima
    }

    fn n_padded(&self) -> usize {
        self.hi[0].len()
    }
}

/// The largest value of a slice whose length is a multiple of [`LANES`].
#[inline(always)]
fn lane_max<R: Real>(values: &[R]) -> R {
    let mut lanes = [R::NEG_INFINITY; LANES];
    for chunk in values.chunks_exact(LANES) {
        for l in 0..LANES {
            lanes[l] = if chunk[l] > lanes[l] {
                chunk[l]
            } else {
                lanes[l]
            };
        }
    }
    max_of(&lanes)
}

#[inline(always)]
fn max_of<R: Real>(values: &[R]) -> R {
    values
        .iter()
        .fold(R::NEG_INFINITY, |m, &v| if v > m { v } else { m })
}

/// [`TileSource::fill`], dispatched to the widest SIMD the CPU has.
fn fill_dispatch<R: Real, S: TileSource<R>>(
    source: &S,
    h: &[R],
    inv_eps: R,
    tile_start: usize,
    len: usize,
    tiles: &mut [R],
) -> [R; ROWS] {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU supports the features the function is compiled for (checked above).
        return unsafe { fill_avx2(source, h, inv_eps, tile_start, len, tiles) };
    }
    source.fill::<Separate>(h, inv_eps, tile_start, len, tiles)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn fill_avx2<R: Real, S: TileSource<R>>(
    source: &S,
    h: &[R],
    inv_eps: R,
    tile_start: usize,
    len: usize,
    tiles: &mut [R],
) -> [R; ROWS] {
    source.fill::<Fused>(h, inv_eps, tile_start, len, tiles)
}

/// Streaming log-sum-exp of a block of rows, dispatched to the widest SIMD the CPU has.
#[inline]
pub fn rows_lse<R: Real, S: TileSource<R>>(
    source: &S,
    h: &[R],
    inv_eps: R,
    buf: &mut [R],
) -> [f64; ROWS] {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU supports the features the function is compiled for (checked above).
        return unsafe { rows_lse_avx2(source, h, inv_eps, buf) };
    }
    rows_lse_portable::<R, S, Separate>(source, h, inv_eps, buf)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn rows_lse_avx2<R: Real, S: TileSource<R>>(
    source: &S,
    h: &[R],
    inv_eps: R,
    buf: &mut [R],
) -> [f64; ROWS] {
    rows_lse_portable::<R, S, Fused>(source, h, inv_eps, buf)
}

#[inline(always)]
fn rows_lse_portable<R: Real, S: TileSource<R>, M: MulAdd>(
    source: &S,
    h: &[R],
    inv_eps: R,
    buf: &mut [R],
) -> [f64; ROWS] {
    let mut running_max = [f64::NEG_INFINITY; ROWS];
    let mut running_sum = [0.0; ROWS];
    let n_padded = source.n_padded();
    let mut tile_start = 0;
    while tile_start < n_padded {
        let len = TILE.min(n_padded - tile_start);
        let tiles = &mut buf[..ROWS * len];
        let tile_max = source.fill::<M>(h, inv_eps, tile_start, len, tiles);
        for r in 0..ROWS {
            let max = tile_max[r].to_f64();
            if max > running_max[r] {
                running_sum[r] *= (running_max[r] - max).exp_with::<M>();
                running_max[r] = max;
            }
            let shift = R::from_f64(running_max[r]);
            running_sum[r] += sum_exp::<R, M>(&mut tiles[r * len..(r + 1) * len], shift);
        }
        tile_start += len;
    }
    std::array::from_fn(|r| running_max[r] + running_sum[r].ln())
}

/// `Σ e^{v − max}` over a tile (overwritten with the terms): a plain map loop, which LLVM
/// vectorises at the full width (the f32 `exp` written over `[R; LANES]` lanes did not), then a
/// lane-wise sum, returned in f64.
#[inline(always)]
fn sum_exp<R: Real, M: MulAdd>(tile: &mut [R], max: R) -> f64 {
    for v in tile.iter_mut() {
        *v = (*v - max).exp_with::<M>();
    }
    let mut sums = [R::ZERO; LANES];
    for chunk in tile.chunks_exact(LANES) {
        for l in 0..LANES {
            sums[l] = sums[l] + chunk[l];
        }
    }
    sums.iter().map(|s| s.to_f64()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(
        x: &[f64],
        y: &[f64],
        dim: usize,
        h: &[f64],
        inv_eps: f64,
        metric: Metric,
    ) -> Vec<f64> {
        x.chunks(dim)
            .map(|xr| {
                let v: Vec<f64> = y
                    .chunks(dim)
                    .zip(h)
                    .map(|(yr, &hc)| hc - metric.cost(xr, yr) * inv_eps)
                    .collect();
                let m = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                m + v.iter().map(|vi| (vi - m).exp()).sum::<f64>().ln()
            })
            .collect()
    }

    /// Streamed and materialised passes, in f64 and f32, against a plain f64 log-sum-exp.
    #[test]
    fn matches_a_naive_log_sum_exp_across_tiles_and_padding() {
        let dim = 3;
        for &n in &[1usize, 7, 8, 9, 513, 1100] {
            let x: Vec<f64> = (0..5 * dim)
                .map(|i| ((i * 37) % 11) as f64 * 0.3 - 1.5)
                .collect();
            let y: Vec<f64> = (0..n * dim)
                .map(|i| ((i * 53) % 17) as f64 * 0.2 - 1.7)
                .collect();
            let h: Vec<f64> = (0..n).map(|c| (c % 5) as f64 * 0.1).collect();
            let cols = Columns::<f64>::new(&y, n, dim);
            for metric in [Metric::Euclidean, Metric::SqEuclidean] {
                let stored64 = CostRows::<f64>::new(&x, &cols, metric);
                let stored32 = CostRows::<f32>::new(&x, &cols, metric);
                let (hi, lo) = CostRows::split(&x, &cols, metric);
                for inv_eps in [0.1, 20.0, 1000.0] {
                    let expect = naive(&x, &y, dim, &h, inv_eps, metric);
                    let results = [
                        (
                            "f64 streamed",
                            run_streamed::<f64>(&x, &y, dim, &h, inv_eps, metric),
                        ),
                        (
                            "f32 streamed",
                            run_streamed::<f32>(&x, &y, dim, &h, inv_eps, metric),
                        ),
                        ("f64 stored", run_stored(&stored64, &h, inv_eps)),
                        ("f32 stored", run_stored(&stored32, &h, inv_eps)),
                        ("f64 split", run_split(&hi, &lo, &h, inv_eps)),
                    ];
                    for (name, out) in results {
                        // f32: exponents up to ~100 · 1000 carry a relative 6e-8 each; the
                        // split costs are exact to ~2⁻⁴⁸ relative.
                        let tolerance = if name.starts_with("f32") { 3e-7 } else { 1e-10 };
                        for (a, b) in out.iter().zip(&expect) {
                            let scale = b.abs().max(1.0) + inv_eps;
                            assert!(
                                (a - b).abs() < tolerance * scale,
                                "{name} n={n} {metric:?} 1/λ={inv_eps}: {a} vs {b}"
                            );
                        }
                    }
                }
            }
        }
    }

    fn padded_h<R: Real>(h: &[f64], n_padded: usize) -> Vec<R> {
        let mut out: Vec<R> = h.iter().map(|&v| R::from_f64(v)).collect();
        out.resize(n_padded, R::NEG_INFINITY);
        out
    }

    fn run_streamed<R: Real>(
        x: &[f64],
        y: &[f64],
        dim: usize,
        h: &[f64],
        inv_eps: f64,
        metric: Metric,
    ) -> Vec<f64> {
        let cols = Columns::<R>::new(y, y.len() / dim, dim);
        let xr: Vec<R> = x.iter().map(|&v| R::from_f64(v)).collect();
        let mut out = vec![0.0; x.len() / dim];
        let hp = padded_h::<R>(h, cols.n_padded);
        soft_min_rows(&xr, &cols, &hp, R::from_f64(inv_eps), metric, &mut out);
        out
    }

    fn run_split(hi: &CostRows<f32>, lo: &CostRows<f32>, h: &[f64], inv_eps: f64) -> Vec<f64> {
        let mut out = vec![0.0; hi.n_rows];
        let hp = padded_h::<f64>(h, hi.n_padded);
        soft_min_split(hi, lo, &hp, inv_eps, &mut out);
        out
    }

    fn run_stored<R: Real>(costs: &CostRows<R>, h: &[f64], inv_eps: f64) -> Vec<f64> {
        let mut out = vec![0.0; costs.n_rows];
        let hp = padded_h::<R>(h, costs.n_padded);
        soft_min_stored(costs, &hp, R::from_f64(inv_eps), &mut out);
        out
    }
}

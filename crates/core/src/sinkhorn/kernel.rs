//! The hot loop of every half-iteration: a streaming log-sum-exp over recomputed costs.
//!
//! For each row `r` of one side, `out[r] = LSE_c(h_c − C(x_r, y_c) / λ)`, where `h` carries the
//! other side's potentials. The cost is recomputed from the `T` scores of each pair instead of
//! being read from an `n1 × n2` matrix, so memory stays `O((n1 + n2) · T)`.
//!
//! Speed comes from three choices (a plain loop with libm `exp` runs ~1 s per iteration at
//! n = 8000 on 2 cores; this one is several times faster):
//! * the other side is stored transposed ([`Columns`], `T × n`), so for a fixed row the distance
//!   to [`LANES`] consecutive columns is a fixed-width loop LLVM turns into SIMD;
//! * `exp` is the branch-free [`crate::fastexp::exp`], which vectorises;
//! * one pass per row over tiles of [`TILE`] columns, keeping a running max and a rescaled sum
//!   (online log-sum-exp), so each tile's values are produced once and consumed from L1;
//! * [`ROWS`] rows at a time, so each load of the other side's scores serves several rows.
//!
//! On x86-64 the loop is compiled twice, the second time with AVX2 + FMA enabled, and the
//! faster one is picked at run time.

use rayon::prelude::*;

use crate::Metric;
use crate::fastexp::{self, Fused, MulAdd, Separate};

/// Columns processed together by the vectorised distance loop.
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
pub struct Columns {
    pub dim: usize,
    pub n: usize,
    pub n_padded: usize,
    data: Vec<f64>,
}

impl Columns {
    /// Rearranges `x` (`n × dim`, row-major).
    pub fn new(x: &[f64], n: usize, dim: usize) -> Columns {
        debug_assert_eq!(x.len(), n * dim);
        let n_padded = n.div_ceil(LANES) * LANES;
        let mut data = vec![0.0; dim * n_padded];
        for (r, row) in x.chunks_exact(dim).enumerate() {
            let (chunk, lane) = (r / LANES, r % LANES);
            for (k, &v) in row.iter().enumerate() {
                data[chunk * dim * LANES + k * LANES + lane] = v;
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
    fn chunks(&self, start: usize, len: usize) -> std::slice::ChunksExact<'_, f64> {
        self.data[start * self.dim..(start + len) * self.dim].chunks_exact(self.dim * LANES)
    }
}

/// `out[r] = LSE_c(h[c] − C(x_r, y_c) · inv_eps)` for every row of `x` (`out.len() × dim`,
/// row-major). `h` has `y.n_padded` entries, `−∞` on padding.
pub fn soft_min_rows(
    x: &[f64],
    y: &Columns,
    h: &[f64],
    inv_eps: f64,
    metric: Metric,
    out: &mut [f64],
) {
    assert_eq!(h.len(), y.n_padded, "h must cover the padded columns");
    assert_eq!(x.len(), out.len() * y.dim, "x must hold one row per output");
    const ROWS_PER_TASK: usize = 4 * ROWS;
    out.par_chunks_mut(ROWS_PER_TASK)
        .enumerate()
        .for_each(|(task, chunk)| {
            let first = task * ROWS_PER_TASK;
            let mut buf = vec![0.0; ROWS * TILE];
            for (block, outs) in chunk.chunks_mut(ROWS).enumerate() {
                let start = first + block * ROWS;
                let rows = RowBlock::new(&x[start * y.dim..(start + outs.len()) * y.dim], y.dim);
                let lse = rows_lse(&rows, y, h, inv_eps, metric, &mut buf);
                outs.copy_from_slice(&lse[..outs.len()]);
            }
        });
}

/// Up to [`ROWS`] rows; missing rows repeat the last one (computed, then discarded).
pub struct RowBlock {
    coords: Vec<[f64; ROWS]>,
}

impl RowBlock {
    pub fn new(rows: &[f64], dim: usize) -> RowBlock {
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

/// Streaming log-sum-exp of a block of rows, dispatched to the widest SIMD the CPU has.
#[inline]
pub fn rows_lse(
    rows: &RowBlock,
    y: &Columns,
    h: &[f64],
    inv_eps: f64,
    metric: Metric,
    buf: &mut [f64],
) -> [f64; ROWS] {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU supports the features the function is compiled for (checked above).
        return unsafe { rows_lse_avx2(rows, y, h, inv_eps, metric, buf) };
    }
    rows_lse_portable::<Separate>(rows, y, h, inv_eps, metric, buf)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn rows_lse_avx2(
    rows: &RowBlock,
    y: &Columns,
    h: &[f64],
    inv_eps: f64,
    metric: Metric,
    buf: &mut [f64],
) -> [f64; ROWS] {
    rows_lse_portable::<Fused>(rows, y, h, inv_eps, metric, buf)
}

#[inline(always)]
fn rows_lse_portable<M: MulAdd>(
    rows: &RowBlock,
    y: &Columns,
    h: &[f64],
    inv_eps: f64,
    metric: Metric,
    buf: &mut [f64],
) -> [f64; ROWS] {
    let mut running_max = [f64::NEG_INFINITY; ROWS];
    let mut running_sum = [0.0; ROWS];
    let mut tile_start = 0;
    while tile_start < y.n_padded {
        let len = TILE.min(y.n_padded - tile_start);
        let tiles = &mut buf[..ROWS * len];
        let tile_max = fill_tiles::<M>(rows, y, h, inv_eps, metric, tile_start, len, tiles);
        for r in 0..ROWS {
            if tile_max[r] > running_max[r] {
                running_sum[r] *= fastexp::exp(running_max[r] - tile_max[r]);
                running_max[r] = tile_max[r];
            }
            running_sum[r] += sum_exp::<M>(&tiles[r * len..(r + 1) * len], running_max[r]);
        }
        tile_start += len;
    }
    std::array::from_fn(|r| running_max[r] + running_sum[r].ln())
}

/// Writes `h_c − C(row_r, y_c) · inv_eps` for the tile's columns, row `r` at
/// `tiles[r * len ..]`, and returns each row's max.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn fill_tiles<M: MulAdd>(
    rows: &RowBlock,
    y: &Columns,
    h: &[f64],
    inv_eps: f64,
    metric: Metric,
    tile_start: usize,
    len: usize,
    tiles: &mut [f64],
) -> [f64; ROWS] {
    let mut lane_max = [[f64::NEG_INFINITY; LANES]; ROWS];
    let h_tile = &h[tile_start..tile_start + len];
    for (chunk_index, (chunk, hk)) in y
        .chunks(tile_start, len)
        .zip(h_tile.chunks_exact(LANES))
        .enumerate()
    {
        let mut d2 = [[0.0; LANES]; ROWS];
        for (xk, yk) in rows.coords.iter().zip(chunk.chunks_exact(LANES)) {
            for r in 0..ROWS {
                for l in 0..LANES {
                    let d = xk[r] - yk[l];
                    d2[r][l] = M::mul_add(d, d, d2[r][l]);
                }
            }
        }
        for r in 0..ROWS {
            let out =
                &mut tiles[r * len + chunk_index * LANES..r * len + (chunk_index + 1) * LANES];
            for l in 0..LANES {
                let v = M::mul_add(-metric.from_squared(d2[r][l]), inv_eps, hk[l]);
                out[l] = v;
                lane_max[r][l] = if v > lane_max[r][l] {
                    v
                } else {
                    lane_max[r][l]
                };
            }
        }
    }
    std::array::from_fn(|r| {
        lane_max[r]
            .iter()
            .fold(f64::NEG_INFINITY, |m, &v| if v > m { v } else { m })
    })
}

#[inline(always)]
fn sum_exp<M: MulAdd>(tile: &[f64], max: f64) -> f64 {
    let mut sums = [0.0; LANES];
    for chunk in tile.chunks_exact(LANES) {
        for l in 0..LANES {
            sums[l] += fastexp::exp_with::<M>(chunk[l] - max);
        }
    }
    sums.iter().sum()
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
            let cols = Columns::new(&y, n, dim);
            let mut hp = h.clone();
            hp.resize(cols.n_padded, f64::NEG_INFINITY);
            for metric in [Metric::Euclidean, Metric::SqEuclidean] {
                for inv_eps in [0.1, 20.0, 1000.0] {
                    let mut out = vec![0.0; 5];
                    soft_min_rows(&x, &cols, &hp, inv_eps, metric, &mut out);
                    let expect = naive(&x, &y, dim, &h, inv_eps, metric);
                    for (a, b) in out.iter().zip(&expect) {
                        assert!(
                            (a - b).abs() < 1e-10 * b.abs().max(1.0),
                            "n={n}: {a} vs {b}"
                        );
                    }
                }
            }
        }
    }
}

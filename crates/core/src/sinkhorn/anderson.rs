//! Anderson acceleration of the Sinkhorn iteration (`SolveOptions::acceleration`, on by
//! default): same fixed point, an order of magnitude fewer iterations on clustered scores.
//!
//! # Why not (only) over-relaxation
//! Issue 16 asked for over-relaxed potential updates `f ← f + ω (f̂ − f)` with an automatic ω
//! (Lehmann, von Renesse, Sambale and Uschmajew 2021: `ω* = 2 / (1 + √(1 − η))` from the plain
//! rate η) kept safe by a Lyapunov test (Thibault, Chizat, Dossal and Papadakis 2017). We built
//! that rule and measured it against Anderson acceleration on the benchmark problems and POT's
//! fixtures (`benches/RESULTS.md`, "Acceleration"): it saved 1.5–6× on most problems but
//! *nothing* on the clustered benchmark problem at λ = 0.05 (n = 300 and 1000, seed 0), where
//! plain Sinkhorn spends thousands of iterations on a handful of slow directions: the relative
//! offsets ("gauges") of clusters of points that exchange almost no mass (e^{−70} between
//! clusters). The marginal error, dominated by that tiny exchange, falls like a power of the
//! iteration count. Over-relaxation speeds each slow mode up by at most `ω/(2 − ω)`, and the
//! large ω those modes would need overshoot far from the solution (a fixed ω = 1.7 diverges on
//! the n = 1000 problem; the safeguarded rule falls back to ω ≈ 1). Anderson acceleration
//! extrapolates along the few directions the recent iterates moved in, which is exactly where
//! those modes live: 40× fewer iterations on that problem, and the fewest on every problem we
//! measured.
//!
//! # The method (Anderson 1965; Walker and Ni 2011, "type II")
//! One Sinkhorn iteration is a map of the row potentials, `u ↦ F(u)` (u = f/λ; the column
//! potentials are the exact g-update of u, so the column marginal is always exact). With the
//! residuals `r_k = F(u_k) − u_k` (balanced: minus the log row-marginal ratios) of the last
//! `m + 1` iterates, the next iterate is
//! ```text
//! γ = argmin ‖r_k − ΔR γ‖₂,     u_{k+1} = u_k + r_k − (ΔU + ΔR) γ,
//! ```
//! with `ΔU`, `ΔR` the differences of consecutive iterates and residuals (`m` columns). If F
//! were affine this is GMRES on `u = F(u)` (Walker and Ni); here it is a multisecant
//! quasi-Newton step. `γ` comes from the `m × m` normal equations with a small ridge
//! ([`RIDGE`] × their trace), solved by Gaussian elimination with partial pivoting. Cost per
//! iteration: `O(m · n)` for the Gram matrix (updated incrementally) and the step, against the
//! `O(n1 · n2 · T)` of the two LSE passes.
//!
//! # Safeguards (after Zhang, O'Donoghue and Boyd 2020)
//! Anderson steps are not monotone. Every iterate's marginal error is measured anyway (the
//! stopping test), and:
//! * if it exceeds [`RESTART_FACTOR`] × the best error since the last restart, the step is
//!   undone: the iteration continues from the plain Sinkhorn image of the previous iterate, with
//!   an empty history;
//! * if the best error has not halved for [`STALL_ITERATIONS`], the history is cleared (a fresh
//!   secant model);
//! * a singular or non-finite least-squares solution gives the plain step.
//!
//! Each ε-scaling stage starts with an empty history (the map changes with λ). Unbalanced
//! marginals need nothing special: the damping ρ = τ/(τ + λ) is part of F.
//!
//! # For the GPU port
//! Per group: `2 (m + 1)` history vectors of length n1, `m` dot products per iteration (one
//! reduction), an `m × m` solve (one thread), and the update `u + r − (ΔU + ΔR) γ`. The history
//! must hold f/λ and the residual in f32 with care: residuals near the f32 floor are noise, and
//! Anderson would extrapolate noise; stop accelerating (clear the history for good) once the
//! error is within a small factor of the floor.

use std::collections::VecDeque;

/// Iterates kept (the number of secant directions).
pub const MEMORY: usize = 20;
/// Tikhonov ridge of the normal equations, relative to their trace.
pub const RIDGE: f64 = 1e-10;
/// An iterate whose error exceeds this multiple of the best since the last restart is undone.
pub const RESTART_FACTOR: f64 = 10.0;
/// Iterations without halving the best error after which the history is cleared.
pub const STALL_ITERATIONS: usize = 50;

/// Anderson acceleration state of one group's solve.
#[derive(Clone, Debug, Default)]
pub struct Anderson {
    /// The last iterate `u_k` and its residual `r_k`.
    last: Option<(Vec<f64>, Vec<f64>)>,
    /// The buffers of the iterate before it, reused for the next one (no allocation per
    /// iteration once the history is full).
    spare: Option<(Vec<f64>, Vec<f64>)>,
    /// Differences `ΔU_j`, `ΔR_j` of consecutive iterates and residuals, oldest first.
    du: VecDeque<Vec<f64>>,
    dr: VecDeque<Vec<f64>>,
    /// `gram[i][j] = ⟨ΔR_i, ΔR_j⟩`.
    gram: VecDeque<VecDeque<f64>>,
    /// Plain image of the last iterate (potential units), to undo a bad step.
    fallback: Vec<f64>,
    best: f64,
    best_since_halving: f64,
    stalled_for: usize,
    last_omega: f64,
}

impl Anderson {
    pub fn new() -> Self {
        Anderson {
            best: f64::INFINITY,
            best_since_halving: f64::INFINITY,
            last_omega: 1.0,
            ..Anderson::default()
        }
    }

    /// Forgets every iterate (a new λ, or a restart).
    pub fn reset(&mut self) {
        self.forget_history();
        self.fallback.clear();
        self.best = f64::INFINITY;
        self.best_since_halving = f64::INFINITY;
        self.stalled_for = 0;
    }

    fn forget_history(&mut self) {
        self.last = None;
        self.du.clear();
        self.dr.clear();
        self.gram.clear();
    }

    /// The effective over-relaxation of the last step: how far it went along the plain
    /// Sinkhorn step, `⟨u_{k+1} − u_k, r_k⟩ / ‖r_k‖²` (plain Sinkhorn: 1).
    pub fn omega(&self) -> f64 {
        self.last_omega
    }

    /// Replaces `f` (the current row potentials, whose marginal error is `error`) by the next
    /// iterate, given its plain Sinkhorn image `f_hat`; `eps` is the stage's λ.
    pub fn step(&mut self, f: &mut [f64], f_hat: &[f64], error: f64, eps: f64) {
        if error > RESTART_FACTOR * self.best && !self.fallback.is_empty() {
            f.copy_from_slice(&self.fallback);
            self.reset();
            self.last_omega = 1.0;
            return;
        }
        self.track_stall(error);
        let (mut u, mut r) = self.spare.take().unwrap_or_default();
        u.clear();
        u.extend(f.iter().map(|v| v / eps));
        r.clear();
        r.extend(f_hat.iter().zip(f.iter()).map(|(h, v)| (h - v) / eps));
        self.fallback.clear();
        self.fallback.extend_from_slice(f_hat);
        self.push(u, r);
        match self.coefficients() {
            Some(gamma) => self.extrapolate(&gamma, f, eps),
            None => {
                f.copy_from_slice(f_hat);
                self.last_omega = 1.0;
            }
        }
    }

    fn track_stall(&mut self, error: f64) {
        self.best = self.best.min(error);
        if error < 0.5 * self.best_since_halving {
            self.best_since_halving = error;
            self.stalled_for = 0;
        } else {
            self.stalled_for += 1;
            if self.stalled_for >= STALL_ITERATIONS {
                self.forget_history();
                self.stalled_for = 0;
                self.best_since_halving = error;
            }
        }
    }

    /// Records an iterate: its differences with the previous one join the history (the oldest
    /// leave beyond [`MEMORY`]) and the Gram matrix gains a row and a column.
    fn push(&mut self, u: Vec<f64>, r: Vec<f64>) {
        if let Some((last_u, last_r)) = &self.last {
            // The oldest differences leave beyond MEMORY; their buffers take the newest.
            let (mut du, mut dr) = if self.dr.len() == MEMORY {
                self.gram.pop_front();
                for row in &mut self.gram {
                    row.pop_front();
                }
                let du = self.du.pop_front().unwrap_or_default();
                (du, self.dr.pop_front().unwrap_or_default())
            } else {
                (Vec::with_capacity(u.len()), Vec::with_capacity(r.len()))
            };
            du.clear();
            du.extend(u.iter().zip(last_u).map(|(a, b)| a - b));
            dr.clear();
            dr.extend(r.iter().zip(last_r).map(|(a, b)| a - b));
            let row: VecDeque<f64> = self
                .dr
                .iter()
                .map(|old| dot(old, &dr))
                .chain(std::iter::once(dot(&dr, &dr)))
                .collect();
            for (old, &value) in self.gram.iter_mut().zip(&row) {
                old.push_back(value);
            }
            self.gram.push_back(row);
            self.du.push_back(du);
            self.dr.push_back(dr);
        }
        self.spare = self.last.replace((u, r));
    }

    /// `γ = argmin ‖r_k − ΔR γ‖` by the ridge-regularised normal equations; `None` when there is
    /// no difference yet or the system is singular.
    fn coefficients(&self) -> Option<Vec<f64>> {
        let m = self.dr.len();
        let (_, last_r) = self.last.as_ref()?;
        if m == 0 {
            return None;
        }
        let rhs: Vec<f64> = self.dr.iter().map(|d| dot(d, last_r)).collect();
        let ridge = RIDGE * (0..m).map(|i| self.gram[i][i]).sum::<f64>();
        let matrix: Vec<Vec<f64>> = (0..m)
            .map(|i| {
                (0..m)
                    .map(|j| self.gram[i][j] + if i == j { ridge } else { 0.0 })
                    .collect()
            })
            .collect();
        solve_linear(matrix, rhs)
    }

    /// `f = λ (u_k + r_k − (ΔU + ΔR) γ)`, recording the step's effective ω.
    fn extrapolate(&mut self, gamma: &[f64], f: &mut [f64], eps: f64) {
        let Some((u, r)) = &self.last else {
            return;
        };
        let (mut along, mut norm) = (0.0, 0.0);
        for (i, fi) in f.iter_mut().enumerate() {
            let mut next = u[i] + r[i];
            for ((g, du), dr) in gamma.iter().zip(&self.du).zip(&self.dr) {
                next -= g * (du[i] + dr[i]);
            }
            along += (next - u[i]) * r[i];
            norm += r[i] * r[i];
            *fi = next * eps;
        }
        self.last_omega = if norm > 0.0 { along / norm } else { 1.0 };
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Solves `a x = b` by Gaussian elimination with partial pivoting; `None` if singular or the
/// solution is not finite.
fn solve_linear(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Option<Vec<f64>> {
    let n = b.len();
    for col in 0..n {
        let pivot = (col..n).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[pivot][col] == 0.0 {
            return None;
        }
        a.swap(col, pivot);
        b.swap(col, pivot);
        let (top, rest) = a.split_at_mut(col + 1);
        let (b_top, b_rest) = b.split_at_mut(col + 1);
        let pivot_row = &top[col];
        for (row, b_row) in rest.iter_mut().zip(b_rest.iter_mut()) {
            let factor = row[col] / pivot_row[col];
            for (x, p) in row[col..].iter_mut().zip(&pivot_row[col..]) {
                *x -= factor * p;
            }
            *b_row -= factor * b_top[col];
        }
    }
    let mut x = vec![0.0; n];
    for row in (0..n).rev() {
        let tail: f64 = (row + 1..n).map(|c| a[row][c] * x[c]).sum();
        x[row] = (b[row] - tail) / a[row][row];
    }
    x.iter().all(|v| v.is_finite()).then_some(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solves_a_small_system() {
        let x = solve_linear(
            vec![
                vec![2.0, 1.0, 0.0],
                vec![1.0, 3.0, 1.0],
                vec![0.0, 1.0, 4.0],
            ],
            vec![3.0, 5.0, 5.0],
        )
        .unwrap();
        for (v, e) in x.iter().zip([1.0, 1.0, 1.0]) {
            assert!((v - e).abs() < 1e-12);
        }
        assert!(solve_linear(vec![vec![0.0]], vec![1.0]).is_none());
    }

    /// On an affine contraction `F(u) = A u + c` with a few slow directions, Anderson with
    /// enough memory reaches the fixed point in about as many steps as there are directions,
    /// while the plain iteration needs thousands.
    #[test]
    fn solves_an_affine_fixed_point_in_few_steps() {
        let n = 6;
        let rates = [0.999, 0.99, 0.9, 0.5, 0.1, 0.0];
        let fixed: Vec<f64> = (0..n).map(|i| i as f64 - 2.0).collect();
        let map = |u: &[f64]| -> Vec<f64> {
            u.iter()
                .zip(&fixed)
                .zip(&rates)
                .map(|((x, s), a)| s + a * (x - s))
                .collect()
        };
        let mut aa = Anderson::new();
        let mut u = vec![0.0; n];
        let mut steps = 0;
        loop {
            let image = map(&u);
            let error: f64 = image.iter().zip(&u).map(|(a, b)| (a - b).abs()).sum();
            if error < 1e-10 {
                break;
            }
            aa.step(&mut u, &image, error, 1.0);
            steps += 1;
            assert!(
                steps < 20,
                "not converged after {steps} steps: error {error}"
            );
        }
        let distance: f64 = u.iter().zip(&fixed).map(|(a, b)| (a - b).abs()).sum();
        assert!(distance < 1e-8, "{distance}");
    }

    #[test]
    fn a_step_that_blows_up_is_undone() {
        let mut aa = Anderson::new();
        let mut f = vec![0.0, 0.0];
        aa.step(&mut f, &[1.0, 1.0], 1.0, 1.0);
        assert_eq!(f, vec![1.0, 1.0]);
        let mut g = vec![5.0, 5.0];
        aa.step(&mut g, &[4.0, 4.0], 100.0, 1.0);
        // Back to the plain image of the previous iterate.
        assert_eq!(g, vec![1.0, 1.0]);
        assert_eq!(aa.omega(), 1.0);
    }
}

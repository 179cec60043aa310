//! One-shot outputs of a solution on the GPU, for callers that hold a [`Solution`] rather than
//! a [`crate::GpuSolved`]: each call uploads the problem and potentials once and answers one
//! question. A run that wants several outputs should keep a [`crate::GpuSolved`] (from
//! [`psa_core::Matcher::solve_into`] or [`psa_core::Matcher::outputs`]) and upload once.

use ndarray::{Array2, ArrayView2};
use psa_core::{Problem, Solution, TopK};

use crate::solved::GpuSolved;
use crate::{GpuError, GpuMatcher};

impl GpuMatcher {
    /// Each row's `k` largest `P(j|i)` per group (group-local indices, −1 padding), largest
    /// first, ties by lower index: [`psa_core::Coupling::top_k`] with no mass cut.
    pub fn top_k(
        &self,
        problem: &Problem,
        solution: &Solution,
        k: usize,
    ) -> Result<Vec<TopK>, GpuError> {
        self.top_k_mass(problem, solution, k, None)
    }

    /// [`GpuMatcher::top_k`] keeping, per row, only the fewest leading entries whose weights
    /// reach `mass` (as [`psa_core::coupling::select_top`]).
    pub fn top_k_mass(
        &self,
        problem: &Problem,
        solution: &Solution,
        k: usize,
        mass: Option<f64>,
    ) -> Result<Vec<TopK>, GpuError> {
        self.once(problem, solution, |s| s.top_k_gpu(k, mass))
    }

    /// Barycentric projection `Σ_j P(j|i) y_j` of one modality-2 matrix per group (`n2 × d`,
    /// group order), as [`psa_core::Coupling::project`].
    pub fn project(
        &self,
        problem: &Problem,
        solution: &Solution,
        y: &[ArrayView2<'_, f64>],
    ) -> Result<Vec<Array2<f64>>, GpuError> {
        self.once(problem, solution, |s| s.project_gpu(y))
    }

    /// `P(partner_i | i)` for every row of the groups that have partners (the trace metric:
    /// partner `i ↔ i`), `None` for the others.
    pub fn diagonal(
        &self,
        problem: &Problem,
        solution: &Solution,
        partners: &[Option<Vec<usize>>],
    ) -> Result<Vec<Option<Vec<f64>>>, GpuError> {
        self.once(problem, solution, |s| s.diagonal_gpu(partners))
    }

    fn once<T>(
        &self,
        problem: &Problem,
        solution: &Solution,
        output: impl FnOnce(&GpuSolved<'_>) -> Result<T, GpuError>,
    ) -> Result<T, GpuError> {
        output(&GpuSolved::upload(self, problem.clone(), solution.clone())?)
    }
}

//! The seam after the solve (DESIGN.md "Seams"): a [`Solved`] matching answers every question a
//! user asks of its coupling — rows of `P(j|i)`, top-k, barycentric projections, the diagonal
//! `P(partner(i)|i)`, dense blocks, pseudo-pairs (METHOD.md step 4 and "Outputs a user needs") —
//! through one interface that every backend implements.
//!
//! Why one interface: the binary, `psa export`, the metrics and cross-modal prediction all need
//! the same outputs, and each backend computes them its own way (the CPU from the lazy
//! [`Coupling`], the GPU with its own kernels on the device state it kept from solving). Nothing
//! after the solve dispatches on the backend; everything holds a `&dyn Solved`.
//!
//! Every output is per group, in group row order (the order of [`crate::Group::rows1`] /
//! [`crate::Group::rows2`]); [`crate::scatter`] maps them back to input rows.

use std::ops::Range;

use ndarray::{Array2, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

use crate::coupling::{Coupling, CouplingKind, TopK, sample_pairs};
use crate::matcher::{MatcherError, NoProgress, Progress};
use crate::snn::{SnnCoupling, snn};
use crate::{CoreError, Matcher, Problem, Solution, SolveOptions};

/// How rows are paired within a group (METHOD.md step 3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "method")]
pub enum Method {
    /// Entropic optimal transport (log-domain Sinkhorn).
    #[default]
    Ot,
    /// Shared nearest neighbours with `k` neighbours per modality (App. B).
    Snn { k: usize },
    /// The uniform coupling within each group (the baseline).
    Random,
}

impl Method {
    /// `"ot"`, `"snn"` or `"random"`, as summaries name it.
    pub fn name(self) -> &'static str {
        match self {
            Method::Ot => "ot",
            Method::Snn { .. } => "snn",
            Method::Random => "random",
        }
    }
}

/// A solved matching: the problem, how it was matched, and every output of its coupling.
///
/// Implementations keep whatever state makes outputs cheap for as long as the value lives (the
/// GPU keeps its uploaded scores and potentials on the device). Group indices follow
/// `problem().groups`.
pub trait Solved: Send + Sync {
    /// The problem that was matched.
    fn problem(&self) -> &Problem;
    /// How it was matched.
    fn method(&self) -> Method;
    /// Which backend computes the outputs ("cpu", "gpu").
    fn backend(&self) -> &str;
    /// The OT potentials and solve reports; `None` for SNN and random.
    fn solution(&self) -> Option<&Solution>;
    /// Seconds spent matching each group.
    fn seconds(&self) -> Vec<f64>;

    /// Rows `rows` of `P(j|i)` of group `group`, `rows.len() × n2` (a dense block).
    fn rows(&self, group: usize, rows: Range<usize>) -> Result<Array2<f64>, MatcherError>;

    /// Each row's `k` largest `P(j|i)` per group (group-local columns, −1 padding), largest
    /// first, ties by lower index; with `mass`, only the fewest leading entries holding that
    /// share of the row (see [`crate::coupling::select_top`]).
    fn top_k(&self, k: usize, mass: Option<f64>) -> Result<Vec<TopK>, MatcherError>;

    /// Barycentric projections `Σ_j P(j|i) y_j`, one `n1 × d` matrix per group, of one
    /// `n2 × d` matrix per group.
    fn project(&self, ys: &[ArrayView2<'_, f64>]) -> Result<Vec<Array2<f64>>, MatcherError>;

    /// `P(partner[i] | i)` for every row of each group that has partners.
    fn diagonal(
        &self,
        partners: &[Option<Vec<usize>>],
    ) -> Result<Vec<Option<Vec<f64>>>, MatcherError>;

    /// For each row `i` of each group, `draws` independent indices `j ~ P(·|i)`. Row `i` of a
    /// group uses its own generator seeded from `(seed, i)`, so the draws do not depend on the
    /// backend's thread count or scheduling.
    fn sample_pairs(&self, draws: usize, seed: u64) -> Result<Vec<Array2<i64>>, MatcherError>;

    /// The dense `n1 × n2` matrix `P(j|i)` of one group.
    fn dense(&self, group: usize) -> Result<Array2<f64>, MatcherError> {
        let n1 = self.problem().groups[group].n1();
        self.rows(group, 0..n1)
    }
}

/// Matches a problem by `method`: OT on `matcher` (which keeps its state for the outputs), SNN
/// and random on the CPU.
pub fn match_problem<'m>(
    matcher: &'m dyn Matcher,
    problem: Problem,
    method: Method,
    options: &SolveOptions,
    progress: &dyn Progress,
) -> Result<Box<dyn Solved + 'm>, MatcherError> {
    match method {
        Method::Ot => matcher.solve_into(problem, options, progress),
        Method::Snn { k } => Ok(Box::new(CpuSolved::snn(problem, k, progress)?)),
        Method::Random => {
            for index in 0..problem.groups.len() {
                progress.group_done(index, &Default::default());
            }
            Ok(Box::new(CpuSolved::random(problem)))
        }
    }
}

/// What a [`CpuSolved`] derives its rows from.
#[derive(Clone, Debug)]
enum Couplings {
    Ot(Solution),
    Snn(Vec<SnnCoupling>, Vec<f64>),
    Random,
}

/// The CPU's solved matching: every output from the exact lazy [`Coupling`] of each group, in
/// f64, whichever backend produced the potentials.
#[derive(Clone, Debug)]
pub struct CpuSolved {
    problem: Problem,
    couplings: Couplings,
}

impl CpuSolved {
    /// Outputs of OT potentials (from any backend).
    pub fn ot(problem: Problem, solution: Solution) -> Result<CpuSolved, MatcherError> {
        check_solution(&problem, &solution)?;
        Ok(CpuSolved {
            problem,
            couplings: Couplings::Ot(solution),
        })
    }

    /// Shared nearest neighbours with `k` neighbours per modality.
    pub fn snn(
        problem: Problem,
        k: usize,
        progress: &dyn Progress,
    ) -> Result<CpuSolved, MatcherError> {
        use rayon::prelude::*;
        let solved: Vec<(SnnCoupling, f64)> = problem
            .groups
            .par_iter()
            .enumerate()
            .map(|(index, group)| {
                let start = std::time::Instant::now();
                let coupling = snn(group, k)?;
                progress.group_done(index, &Default::default());
                Ok((coupling, start.elapsed().as_secs_f64()))
            })
            .collect::<Result<_, CoreError>>()?;
        let (couplings, seconds) = solved.into_iter().unzip();
        Ok(CpuSolved {
            problem,
            couplings: Couplings::Snn(couplings, seconds),
        })
    }

    /// The uniform coupling.
    pub fn random(problem: Problem) -> CpuSolved {
        CpuSolved {
            problem,
            couplings: Couplings::Random,
        }
    }

    /// The lazy coupling of one group.
    pub fn coupling(&self, group: usize) -> Coupling<'_> {
        let g = &self.problem.groups[group];
        let kind = match &self.couplings {
            Couplings::Ot(solution) => CouplingKind::Ot {
                g: &solution.groups[group].g,
                epsilon: solution.groups[group].epsilon,
            },
            Couplings::Snn(snn, _) => CouplingKind::Snn(&snn[group]),
            Couplings::Random => CouplingKind::Random,
        };
        Coupling::new(g, self.problem.metric, kind)
    }

    fn couplings(&self) -> impl Iterator<Item = Coupling<'_>> {
        (0..self.problem.groups.len()).map(|g| self.coupling(g))
    }
}

/// A solution must have one group solution per group, with potentials of the group's sizes
/// (checked by every backend before it computes outputs from a solution).
pub fn check_solution(problem: &Problem, solution: &Solution) -> Result<(), CoreError> {
    check_per_group(problem, solution.groups.len(), "group solutions")?;
    for (group, s) in problem.groups.iter().zip(&solution.groups) {
        if s.f.len() != group.n1() || s.g.len() != group.n2() {
            return Err(CoreError::Shape {
                what: "solution",
                message: format!(
                    "group {:?}: potentials of {} × {} for a group of {} × {}",
                    group.label,
                    s.f.len(),
                    s.g.len(),
                    group.n1(),
                    group.n2()
                ),
            });
        }
    }
    Ok(())
}

impl Solved for CpuSolved {
    fn problem(&self) -> &Problem {
        &self.problem
    }

    fn method(&self) -> Method {
        match &self.couplings {
            Couplings::Ot(_) => Method::Ot,
            Couplings::Snn(snn, _) => Method::Snn {
                k: snn.first().map_or(1, SnnCoupling::k),
            },
            Couplings::Random => Method::Random,
        }
    }

    fn backend(&self) -> &str {
        "cpu"
    }

    fn solution(&self) -> Option<&Solution> {
        match &self.couplings {
            Couplings::Ot(solution) => Some(solution),
            _ => None,
        }
    }

    fn seconds(&self) -> Vec<f64> {
        match &self.couplings {
            Couplings::Ot(solution) => solution.groups.iter().map(|g| g.report.seconds).collect(),
            Couplings::Snn(_, seconds) => seconds.clone(),
            Couplings::Random => vec![0.0; self.problem.groups.len()],
        }
    }

    fn rows(&self, group: usize, rows: Range<usize>) -> Result<Array2<f64>, MatcherError> {
        let coupling = self.coupling(group);
        let mut out = Array2::zeros((rows.len(), coupling.n2()));
        for (mut row, i) in out.axis_iter_mut(Axis(0)).zip(rows) {
            coupling.row_into(i, row.as_slice_mut().expect("standard layout"));
        }
        Ok(out)
    }

    fn top_k(&self, k: usize, mass: Option<f64>) -> Result<Vec<TopK>, MatcherError> {
        Ok(self.couplings().map(|c| c.top_k(k, mass)).collect())
    }

    fn project(&self, ys: &[ArrayView2<'_, f64>]) -> Result<Vec<Array2<f64>>, MatcherError> {
        check_per_group(&self.problem, ys.len(), "projection matrices")?;
        Ok(self
            .couplings()
            .zip(ys)
            .map(|(c, y)| c.project(*y))
            .collect())
    }

    fn diagonal(
        &self,
        partners: &[Option<Vec<usize>>],
    ) -> Result<Vec<Option<Vec<f64>>>, MatcherError> {
        check_per_group(&self.problem, partners.len(), "partner lists")?;
        Ok(self
            .couplings()
            .zip(partners)
            .map(|(c, p)| p.as_ref().map(|p| c.for_each_row(|i, row| row[p[i]])))
            .collect())
    }

    fn sample_pairs(&self, draws: usize, seed: u64) -> Result<Vec<Array2<i64>>, MatcherError> {
        Ok(self
            .couplings()
            .map(|c| sample_pairs(&c, draws, seed))
            .collect())
    }
}

/// One value per group was given (`given` of them, `what` they are), or an error that says so.
pub fn check_per_group(problem: &Problem, given: usize, what: &str) -> Result<(), CoreError> {
    if given == problem.groups.len() {
        Ok(())
    } else {
        Err(CoreError::Shape {
            what: "outputs",
            message: format!("{given} {what} for {} groups", problem.groups.len()),
        })
    }
}

/// Solves with the CPU reference and returns its outputs (a shorthand for tests and examples).
pub fn solve_on_cpu(problem: Problem, options: &SolveOptions) -> Result<CpuSolved, MatcherError> {
    let solution = crate::CpuMatcher.solve(&problem, options, &NoProgress)?;
    CpuSolved::ot(problem, solution)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{GroundTruth, evaluate};
    use crate::scatter::{pairs1, rows1, split2, top_k_rows, views};
    use crate::{Metric, ScoresKind};
    use ndarray::array;

    /// Two groups (labels a, b) plus a label only in modality 1 (c); rows interleaved.
    fn problem() -> Problem {
        let s1 = array![
            [2.0, 0.0, 0.1],
            [0.0, 2.0, 0.3],
            [1.0, 1.0, 0.0],
            [0.5, 0.0, 2.0],
            [0.0, 0.4, 1.9],
        ];
        let s2 = array![
            [0.1, 1.9, 0.2],
            [2.1, 0.1, 0.0],
            [0.0, 0.5, 2.1],
            [0.4, 0.0, 1.8]
        ];
        let l = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Problem::from_scores(
            s1.view(),
            &l(&["a", "a", "c", "b", "b"]),
            s2.view(),
            &l(&["a", "a", "b", "b"]),
            ScoresKind::Logits,
            Metric::Euclidean,
        )
        .unwrap()
    }

    #[test]
    fn outputs_agree_with_the_dense_coupling_and_land_on_input_rows() {
        let options = SolveOptions {
            epsilon: 0.5,
            tol: 1e-12,
            ..SolveOptions::default()
        };
        let solved = solve_on_cpu(problem(), &options).unwrap();
        let p = solved.problem();
        let dense: Vec<Array2<f64>> = (0..2).map(|g| solved.dense(g).unwrap()).collect();
        // Rows of the dense coupling are distributions.
        for d in &dense {
            for row in d.rows() {
                assert!((row.sum() - 1.0).abs() < 1e-12);
            }
        }
        // Top-1 in input rows: row 2 (label c) is unmatched; the others point at their group.
        let top = top_k_rows(p, &solved.top_k(1, None).unwrap(), 1);
        assert_eq!(top.index[[2, 0]], -1);
        for (g, group) in p.groups.iter().enumerate() {
            for (i, &r) in group.rows1.iter().enumerate() {
                let best = (0..group.n2())
                    .max_by(|&a, &b| dense[g][[i, a]].total_cmp(&dense[g][[i, b]]))
                    .unwrap();
                assert_eq!(top.index[[r, 0]], group.rows2[best] as i64);
                assert!((f64::from(top.weight[[r, 0]]) - dense[g][[i, best]]).abs() < 1e-6);
            }
        }
        // Projection of modality-2 input rows = dense P times Y, scattered to input rows.
        let y = array![[1.0, 0.0], [0.0, 1.0], [2.0, 2.0], [4.0, -1.0]];
        let projected = solved.project(&views(&split2(p, y.view()))).unwrap();
        let all = rows1(p, &projected, 2);
        assert!(all.row(2).iter().all(|v| v.is_nan()));
        for (g, group) in p.groups.iter().enumerate() {
            let yg = y.select(Axis(0), &group.rows2);
            let expect = dense[g].dot(&yg);
            for (i, &r) in group.rows1.iter().enumerate() {
                for k in 0..2 {
                    assert!((all[[r, k]] - expect[[i, k]]).abs() < 1e-12);
                }
            }
        }
        // Pseudo-pairs stay within the row's group and are seeded.
        let draws = solved.sample_pairs(50, 7).unwrap();
        assert_eq!(draws, solved.sample_pairs(50, 7).unwrap());
        let pairs = pairs1(p, &draws, 50);
        assert!(pairs.row(2).iter().all(|&j| j == -1));
        for group in &p.groups {
            for &r in &group.rows1 {
                assert!(
                    pairs
                        .row(r)
                        .iter()
                        .all(|&j| group.rows2.contains(&(j as usize)))
                );
            }
        }
    }

    #[test]
    fn evaluation_matches_the_definitions_on_the_dense_coupling() {
        let solved = solve_on_cpu(problem(), &SolveOptions::default()).unwrap();
        let p = solved.problem();
        let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // Unit u1 ↔ row 0 of s2, u0 ↔ row 1; group b pairs rows 3,4 with 2,3.
        let truth = GroundTruth {
            ids: Some((
                ids(&["u0", "u1", "u2", "u3", "u4"]),
                ids(&["u1", "u0", "u3", "u4"]),
            )),
            ..GroundTruth::default()
        };
        let metrics = evaluate(&solved, &truth).unwrap();
        let d0 = solved.dense(0).unwrap();
        let expect_trace0 = (d0[[0, 1]] + d0[[1, 0]]) / 2.0;
        assert!((metrics[0].trace.unwrap() - expect_trace0).abs() < 1e-12);
        assert_eq!(metrics[0].random_trace, Some(0.5));
        let d1 = solved.dense(1).unwrap();
        let expect_trace1 = (d1[[0, 0]] + d1[[1, 1]]) / 2.0;
        assert!((metrics[1].trace.unwrap() - expect_trace1).abs() < 1e-12);
        assert!(metrics.iter().all(|m| m.latent_mse.is_none()));
        assert_eq!(solved.method(), Method::Ot);
        let random = CpuSolved::random(p.clone());
        let m = evaluate(&random, &truth).unwrap();
        assert!((m[0].trace.unwrap() - 0.5).abs() < 1e-12);
        assert!((m[0].foscttm.unwrap() - 0.5).abs() < 1e-12);
    }
}

//! The seam every matcher solves: rows grouped by label, as centred log-ratio scores.
//!
//! Matching happens only within a label group (METHOD.md step 3). A [`Problem`] holds, per group,
//! the two transformed score matrices (row-major, contiguous) and the rows' positions in the
//! input files, so outputs can be written back in input order. Labels seen in only one modality
//! cannot be matched; their rows are listed in [`Problem::unmatched`] rather than failing the run.

use std::collections::BTreeMap;

use ndarray::{Array2, ArrayView2, Axis};

use crate::transform::{check_finite, check_scores, clr};
use crate::{CoreError, Metric, ScoresKind};

/// One label group: the rows of each modality carrying that label.
#[derive(Clone, Debug)]
pub struct Group {
    pub label: String,
    /// Input row index (modality 1) of each group row, in input order.
    pub rows1: Vec<usize>,
    /// Input row index (modality 2) of each group row, in input order.
    pub rows2: Vec<usize>,
    /// Transformed scores of modality 1, `n1 × T`, standard layout.
    pub x1: Array2<f64>,
    /// Transformed scores of modality 2, `n2 × T`, standard layout.
    pub x2: Array2<f64>,
}

impl Group {
    pub fn n1(&self) -> usize {
        self.x1.nrows()
    }
    pub fn n2(&self) -> usize {
        self.x2.nrows()
    }
    /// Number of score coordinates `T`.
    pub fn dim(&self) -> usize {
        self.x1.ncols()
    }
    /// Pairs in the group, `n1 · n2`.
    pub fn pairs(&self) -> u64 {
        self.n1() as u64 * self.n2() as u64
    }
}

/// A label present in one modality only: its rows are left unmatched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unmatched {
    pub label: String,
    /// 1 or 2.
    pub modality: u8,
    pub rows: usize,
}

/// Everything a matcher needs: the groups, the cost metric, and what could not be matched.
#[derive(Clone, Debug)]
pub struct Problem {
    pub groups: Vec<Group>,
    pub metric: Metric,
    pub unmatched: Vec<Unmatched>,
    /// Rows in the modality-1 and modality-2 inputs (matched or not).
    pub n1_total: usize,
    pub n2_total: usize,
}

impl Problem {
    /// Groups raw classifier outputs by label and applies the centred log-ratio.
    ///
    /// Groups are ordered by label: numerically when every label is an integer, else
    /// lexicographically, so outputs do not depend on row order. Fails, naming the input, row
    /// and column, on a non-finite entry or a score beyond ±[`crate::transform::MAX_SCORE`].
    pub fn from_scores(
        scores1: ArrayView2<'_, f64>,
        labels1: &[String],
        scores2: ArrayView2<'_, f64>,
        labels2: &[String],
        kind: ScoresKind,
        metric: Metric,
    ) -> Result<Problem, CoreError> {
        check_finite("scores1", scores1)?;
        check_finite("scores2", scores2)?;
        let x1 = clr(scores1, kind);
        let x2 = clr(scores2, kind);
        check_scores("scores1", x1.view(), scores1)?;
        check_scores("scores2", x2.view(), scores2)?;
        Problem::from_transformed(x1.view(), labels1, x2.view(), labels2, metric)
    }

    /// Groups already-transformed scores by label (same checks as [`Problem::from_scores`]).
    pub fn from_transformed(
        x1: ArrayView2<'_, f64>,
        labels1: &[String],
        x2: ArrayView2<'_, f64>,
        labels2: &[String],
        metric: Metric,
    ) -> Result<Problem, CoreError> {
        check_shapes(x1, labels1, x2, labels2)?;
        check_finite("scores1", x1)?;
        check_finite("scores2", x2)?;
        check_scores("scores1", x1, x1)?;
        check_scores("scores2", x2, x2)?;
        let index1 = rows_by_label(labels1);
        let index2 = rows_by_label(labels2);
        let mut groups = Vec::new();
        let mut unmatched = Vec::new();
        for label in sorted_labels(index1.keys().chain(index2.keys())) {
            match (index1.get(label), index2.get(label)) {
                (Some(r1), Some(r2)) => groups.push(Group {
                    label: label.clone(),
                    x1: x1.select(Axis(0), r1),
                    x2: x2.select(Axis(0), r2),
                    rows1: r1.clone(),
                    rows2: r2.clone(),
                }),
                (Some(r1), None) => unmatched.push(Unmatched {
                    label: label.clone(),
                    modality: 1,
                    rows: r1.len(),
                }),
                (None, Some(r2)) => unmatched.push(Unmatched {
                    label: label.clone(),
                    modality: 2,
                    rows: r2.len(),
                }),
                (None, None) => unreachable!("label comes from one of the two indexes"),
            }
        }
        Ok(Problem {
            groups,
            metric,
            unmatched,
            n1_total: x1.nrows(),
            n2_total: x2.nrows(),
        })
    }

    /// For a problem built from a subset of each input's rows (the held-out part that
    /// `--folds 1` scores): maps its row indices through `rows1` / `rows2` (the input row of
    /// each subset row) and records the inputs' full sizes, so outputs index the inputs.
    pub fn map_rows(&mut self, rows1: &[usize], rows2: &[usize], n1_total: usize, n2_total: usize) {
        for group in &mut self.groups {
            for r in &mut group.rows1 {
                *r = rows1[*r];
            }
            for r in &mut group.rows2 {
                *r = rows2[*r];
            }
        }
        self.n1_total = n1_total;
        self.n2_total = n2_total;
    }

    /// Number of score coordinates `T`.
    pub fn dim(&self) -> usize {
        self.groups.first().map_or(0, Group::dim)
    }

    /// What every matcher relies on, for a problem that may have been assembled by hand rather
    /// than by [`Problem::from_scores`]: every group's scores finite and within
    /// ±[`crate::transform::MAX_SCORE`], in standard layout, with the same `T` on both sides.
    pub fn validate(&self) -> Result<(), CoreError> {
        for group in &self.groups {
            if group.x1.ncols() != group.x2.ncols()
                || !group.x1.is_standard_layout()
                || !group.x2.is_standard_layout()
            {
                return Err(CoreError::Shape {
                    what: "problem",
                    message: format!(
                        "group {}: scores must be standard-layout matrices with the same T",
                        group.label
                    ),
                });
            }
            for (what, x, rows) in [
                ("scores1", &group.x1, &group.rows1),
                ("scores2", &group.x2, &group.rows2),
            ] {
                check_finite(what, x.view())
                    .and_then(|()| check_scores(what, x.view(), x.view()))
                    .map_err(|e| e.at_input_row(rows))?;
            }
        }
        Ok(())
    }
}

fn check_shapes(
    x1: ArrayView2<'_, f64>,
    labels1: &[String],
    x2: ArrayView2<'_, f64>,
    labels2: &[String],
) -> Result<(), CoreError> {
    if x1.nrows() != labels1.len() {
        return Err(CoreError::Shape {
            what: "labels1",
            message: format!(
                "{} labels for {} rows of scores1",
                labels1.len(),
                x1.nrows()
            ),
        });
    }
    if x2.nrows() != labels2.len() {
        return Err(CoreError::Shape {
            what: "labels2",
            message: format!(
                "{} labels for {} rows of scores2",
                labels2.len(),
                x2.nrows()
            ),
        });
    }
    if x1.ncols() != x2.ncols() {
        return Err(CoreError::Shape {
            what: "scores2",
            message: format!(
                "{} columns but scores1 has {}: both classifiers must score the same T labels",
                x2.ncols(),
                x1.ncols()
            ),
        });
    }
    if x1.ncols() < 2 {
        return Err(CoreError::Shape {
            what: "scores1",
            message: format!(
                "{} column(s): propensity scores need T ≥ 2 labels",
                x1.ncols()
            ),
        });
    }
    Ok(())
}

fn rows_by_label(labels: &[String]) -> BTreeMap<&String, Vec<usize>> {
    let mut index: BTreeMap<&String, Vec<usize>> = BTreeMap::new();
    for (row, label) in labels.iter().enumerate() {
        index.entry(label).or_default().push(row);
    }
    index
}

fn sorted_labels<'a>(labels: impl Iterator<Item = &'a &'a String>) -> Vec<&'a String> {
    let mut all: Vec<&String> = labels.copied().collect();
    all.sort();
    all.dedup();
    if all.iter().all(|l| l.parse::<i64>().is_ok()) {
        all.sort_by_key(|l| l.parse::<i64>().unwrap_or_default());
    }
    all
}

/// A one-group problem (label `g`) whose two modalities have the same logits `scores`: the
/// unit tests' smallest case with known pairs (row i ↔ row i).
#[cfg(test)]
pub(crate) fn twin_problem(scores: ArrayView2<'_, f64>) -> Problem {
    let labels = vec!["g".to_string(); scores.nrows()];
    Problem::from_scores(
        scores,
        &labels,
        scores,
        &labels,
        ScoresKind::Logits,
        Metric::Euclidean,
    )
    .expect("finite scores")
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn groups_follow_labels_and_keep_input_rows() {
        let s1 = array![[0.0, 1.0], [1.0, 0.0], [2.0, 0.0]];
        let s2 = array![[0.0, 1.0], [1.0, 0.0]];
        let p = Problem::from_scores(
            s1.view(),
            &strings(&["10", "2", "10"]),
            s2.view(),
            &strings(&["2", "7"]),
            ScoresKind::Logits,
            Metric::Euclidean,
        )
        .unwrap();
        assert_eq!(p.groups.len(), 1);
        assert_eq!(p.groups[0].label, "2");
        assert_eq!(p.groups[0].rows1, vec![1]);
        assert_eq!(p.groups[0].rows2, vec![0]);
        let mut mapped = p.clone();
        mapped.map_rows(&[5, 7, 9], &[4, 6], 10, 8);
        assert_eq!(mapped.groups[0].rows1, vec![7]);
        assert_eq!(mapped.groups[0].rows2, vec![4]);
        assert_eq!((mapped.n1_total, mapped.n2_total), (10, 8));
        assert_eq!(
            p.unmatched,
            vec![
                Unmatched {
                    label: "7".into(),
                    modality: 2,
                    rows: 1
                },
                Unmatched {
                    label: "10".into(),
                    modality: 1,
                    rows: 2
                },
            ]
        );
    }

    #[test]
    fn mismatched_lengths_name_the_input() {
        let s = array![[0.0, 1.0]];
        let err = Problem::from_scores(
            s.view(),
            &strings(&["a", "b"]),
            s.view(),
            &strings(&["a"]),
            ScoresKind::Logits,
            Metric::Euclidean,
        )
        .unwrap_err();
        assert!(err.to_string().contains("labels1"), "{err}");
    }
}

//! A modality's inputs as the classifiers see them: rows of `f32` features, either flat vectors
//! or `C × H × W` images, plus their class indices, standardisation and stratified splits.

use ndarray::{Array2, ArrayView2, ArrayView4};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::LearnError;

/// The shape of one row: what the encoder expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum InputShape {
    Flat {
        features: usize,
    },
    Image {
        channels: usize,
        height: usize,
        width: usize,
    },
}

impl InputShape {
    /// Values per row.
    pub fn len(&self) -> usize {
        match *self {
            InputShape::Flat { features } => features,
            InputShape::Image {
                channels,
                height,
                width,
            } => channels * height * width,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Groups of values that share one standardisation: features, or image channels.
    fn standardisation_groups(&self) -> (usize, usize) {
        match *self {
            InputShape::Flat { features } => (features, 1),
            InputShape::Image {
                channels,
                height,
                width,
            } => (channels, height * width),
        }
    }
}

/// `n` rows of one modality, row-major, `f32` (what the networks compute in).
#[derive(Clone, Debug)]
pub struct Features {
    values: Vec<f32>,
    rows: usize,
    shape: InputShape,
}

impl Features {
    /// A feature matrix, `n × d`.
    pub fn from_matrix(x: ArrayView2<'_, f64>) -> Features {
        Features {
            values: x.iter().map(|&v| v as f32).collect(),
            rows: x.nrows(),
            shape: InputShape::Flat {
                features: x.ncols(),
            },
        }
    }

    /// An image stack, `n × C × H × W` (channels first, as PyTorch).
    pub fn from_images(x: ArrayView4<'_, f32>) -> Features {
        let (rows, channels, height, width) = x.dim();
        Features {
            values: x.iter().copied().collect(),
            rows,
            shape: InputShape::Image {
                channels,
                height,
                width,
            },
        }
    }

    /// Rows as they are, with an explicit shape (`values.len() == rows × shape.len()`).
    pub fn from_raw(
        values: Vec<f32>,
        rows: usize,
        shape: InputShape,
    ) -> Result<Features, LearnError> {
        if values.len() != rows * shape.len() {
            return Err(LearnError::Input(format!(
                "{} values do not make {rows} rows of {:?}",
                values.len(),
                shape
            )));
        }
        Ok(Features {
            values,
            rows,
            shape,
        })
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn shape(&self) -> InputShape {
        self.shape
    }

    pub fn row(&self, i: usize) -> &[f32] {
        let d = self.shape.len();
        &self.values[i * d..(i + 1) * d]
    }

    /// The chosen rows, concatenated (one mini-batch).
    pub fn gather(&self, rows: &[usize]) -> Vec<f32> {
        let mut out = Vec::with_capacity(rows.len() * self.shape.len());
        for &i in rows {
            out.extend_from_slice(self.row(i));
        }
        out
    }

    /// The first non-finite value, as (row, column), for an error message.
    pub fn first_non_finite(&self) -> Option<(usize, usize)> {
        let d = self.shape.len().max(1);
        self.values
            .iter()
            .position(|v| !v.is_finite())
            .map(|k| (k / d, k % d))
    }

    /// Applies a standardisation in place.
    pub fn standardize(&mut self, s: &Standardizer) {
        let (groups, per_group) = self.shape.standardisation_groups();
        for row in self.values.chunks_mut(self.shape.len().max(1)) {
            for g in 0..groups {
                let (mean, scale) = (s.mean[g], s.scale[g]);
                for v in &mut row[g * per_group..(g + 1) * per_group] {
                    *v = (*v - mean) / scale;
                }
            }
        }
    }
}

/// Per-feature (per-channel for images) mean and standard deviation, saved with the model so
/// that scoring new data applies exactly what training did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Standardizer {
    pub mean: Vec<f32>,
    pub scale: Vec<f32>,
}

impl Standardizer {
    /// Fitted on all rows given. A constant feature keeps scale 1 (it only shifts to 0).
    pub fn fit(x: &Features) -> Standardizer {
        let (groups, per_group) = x.shape.standardisation_groups();
        let mut sum = vec![0.0f64; groups];
        let mut sum_sq = vec![0.0f64; groups];
        for row in x.values.chunks(x.shape.len().max(1)) {
            for g in 0..groups {
                for &v in &row[g * per_group..(g + 1) * per_group] {
                    sum[g] += v as f64;
                    sum_sq[g] += (v as f64) * (v as f64);
                }
            }
        }
        let count = (x.rows * per_group).max(1) as f64;
        let mean: Vec<f64> = sum.iter().map(|s| s / count).collect();
        let scale = sum_sq
            .iter()
            .zip(&mean)
            .map(|(sq, m)| {
                let sd = (sq / count - m * m).max(0.0).sqrt();
                if sd > 1e-8 { sd as f32 } else { 1.0 }
            })
            .collect();
        Standardizer {
            mean: mean.into_iter().map(|m| m as f32).collect(),
            scale,
        }
    }

    /// Checks that this standardisation fits rows of `shape`: one mean and one positive,
    /// finite scale per feature (per channel for images). A saved model's card is checked so
    /// before it scores anything.
    pub fn check(&self, shape: InputShape) -> Result<(), String> {
        let (groups, _) = shape.standardisation_groups();
        let unit = match shape {
            InputShape::Flat { .. } => "feature",
            InputShape::Image { .. } => "channel",
        };
        if self.mean.len() != groups || self.scale.len() != groups {
            return Err(format!(
                "the standardizer has {} means and {} scales, but the input has {groups} {unit}s",
                self.mean.len(),
                self.scale.len()
            ));
        }
        if let Some(k) = self.mean.iter().position(|m| !m.is_finite()) {
            return Err(format!(
                "standardizer.mean[{k}] is {}; it must be finite",
                self.mean[k]
            ));
        }
        if let Some(k) = self.scale.iter().position(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(format!(
                "standardizer.scale[{k}] is {}; it must be finite and > 0",
                self.scale[k]
            ));
        }
        Ok(())
    }

    /// Leaves values as they are.
    pub fn identity(shape: InputShape) -> Standardizer {
        let (groups, _) = shape.standardisation_groups();
        Standardizer {
            mean: vec![0.0; groups],
            scale: vec![1.0; groups],
        }
    }
}

/// The label set shared by both modalities (the classifiers' `T` outputs), in the order
/// psa-core sorts groups: numerically when every label is an integer, else as text.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Classes {
    pub labels: Vec<String>,
}

impl Classes {
    pub fn from_labels<'a>(labels: impl IntoIterator<Item = &'a String>) -> Classes {
        let mut unique: Vec<String> = labels.into_iter().cloned().collect();
        unique.sort();
        unique.dedup();
        if unique.iter().all(|l| l.parse::<i64>().is_ok()) {
            unique.sort_by_key(|l| l.parse::<i64>().unwrap_or_default());
        }
        Classes { labels: unique }
    }

    /// The label set of two modalities (named `name1`, `name2` in errors). A label seen in one
    /// modality only is an error naming it, unless `allow_missing` (then it is a class of both
    /// classifiers, and its rows are left unmatched). Fewer than 2 labels is an error.
    pub fn shared(
        (name1, labels1): (&str, &[String]),
        (name2, labels2): (&str, &[String]),
        allow_missing: bool,
    ) -> Result<Classes, LearnError> {
        let classes = Classes::from_labels(labels1.iter().chain(labels2));
        let only_in = |a: &[String], b: &[String]| -> Vec<String> {
            let mut only: Vec<String> = Classes::from_labels(a)
                .labels
                .into_iter()
                .filter(|l| !b.contains(l))
                .collect();
            only.truncate(10);
            only
        };
        let (only1, only2) = (only_in(labels1, labels2), only_in(labels2, labels1));
        let any_missing = !only1.is_empty() || !only2.is_empty();
        if any_missing && !allow_missing {
            let parts: Vec<String> = [(1, name1, only1), (2, name2, only2)]
                .into_iter()
                .filter(|(_, _, only)| !only.is_empty())
                .map(|(e, name, only)| {
                    format!("only in modality {e} ({name}): {}", only.join(", "))
                })
                .collect();
            return Err(LearnError::Input(format!(
                "labels {}; the classifiers need the same labels in both modalities \
                 (set allow_missing to train on the union and leave those unmatched)",
                parts.join("; ")
            )));
        }
        if classes.len() < 2 {
            return Err(LearnError::Input(format!(
                "a propensity classifier needs at least 2 labels; found {}",
                classes.len()
            )));
        }
        Ok(classes)
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Class index of every label; a label outside the set is an error naming its row.
    pub fn indices(&self, labels: &[String]) -> Result<Vec<usize>, LearnError> {
        labels
            .iter()
            .enumerate()
            .map(|(row, l)| {
                self.labels.iter().position(|c| c == l).ok_or_else(|| {
                    LearnError::Input(format!(
                        "row {row}: label {l:?} is not one of the model's classes"
                    ))
                })
            })
            .collect()
    }
}

/// Splits `rows` into (kept, held out) with `fraction` of each class held out: at least one
/// row of every class with two or more rows, and never all of a class.
pub fn stratified_split(
    rows: &[usize],
    classes: &[usize],
    fraction: f64,
    seed: u64,
) -> (Vec<usize>, Vec<usize>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut kept = Vec::new();
    let mut held = Vec::new();
    for mut members in rows_per_class(rows, classes) {
        members.shuffle(&mut rng);
        let n = members.len();
        let take = if n < 2 {
            0
        } else {
            ((n as f64 * fraction).round() as usize).clamp(1, n - 1)
        };
        held.extend_from_slice(&members[..take]);
        kept.extend_from_slice(&members[take..]);
    }
    kept.sort_unstable();
    held.sort_unstable();
    (kept, held)
}

/// Assigns every row a fold in `0..k`, stratified: within each class the rows are shuffled and
/// dealt round-robin, so every fold holds each class in proportion.
pub fn stratified_folds(classes: &[usize], k: usize, seed: u64) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut fold = vec![0; classes.len()];
    let all: Vec<usize> = (0..classes.len()).collect();
    let mut offset = 0;
    for mut members in rows_per_class(&all, classes) {
        members.shuffle(&mut rng);
        for (position, &row) in members.iter().enumerate() {
            fold[row] = (position + offset) % k;
        }
        // Rotate the start so that small classes do not all land in fold 0.
        offset += members.len();
    }
    fold
}

fn rows_per_class(rows: &[usize], classes: &[usize]) -> Vec<Vec<usize>> {
    let n_classes = rows.iter().map(|&r| classes[r] + 1).max().unwrap_or(0);
    let mut per_class = vec![Vec::new(); n_classes];
    for &r in rows {
        per_class[classes[r]].push(r);
    }
    per_class
}

/// Logits as an ndarray matrix, `rows × T`.
pub fn logits_matrix(values: Vec<f32>, rows: usize, classes: usize) -> Array2<f64> {
    Array2::from_shape_vec((rows, classes), values.into_iter().map(f64::from).collect())
        .expect("logits buffer holds rows × classes values")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_are_stratified_and_cover_every_row() {
        let classes: Vec<usize> = (0..103).map(|i| i % 3).collect();
        let folds = stratified_folds(&classes, 5, 7);
        for k in 0..5 {
            for c in 0..3 {
                let count = (0..103)
                    .filter(|&r| folds[r] == k && classes[r] == c)
                    .count();
                assert!((6..=7).contains(&count), "fold {k} class {c}: {count}");
            }
        }
    }

    #[test]
    fn split_holds_out_a_fraction_of_each_class_and_never_all() {
        let classes = vec![0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 2];
        let rows: Vec<usize> = (0..classes.len()).collect();
        let (kept, held) = stratified_split(&rows, &classes, 0.2, 1);
        assert_eq!(kept.len() + held.len(), rows.len());
        assert_eq!(held.iter().filter(|&&r| classes[r] == 0).count(), 2);
        assert_eq!(held.iter().filter(|&&r| classes[r] == 1).count(), 1);
        assert_eq!(held.iter().filter(|&&r| classes[r] == 2).count(), 0);
    }

    #[test]
    fn standardizer_centres_and_scales_per_channel() {
        let values: Vec<f32> = (0..2 * 2 * 4).map(|v| v as f32).collect();
        let shape = InputShape::Image {
            channels: 2,
            height: 2,
            width: 2,
        };
        let mut x = Features::from_raw(values, 2, shape).unwrap();
        let s = Standardizer::fit(&x);
        x.standardize(&s);
        for c in 0..2 {
            let vals: Vec<f32> = (0..2)
                .flat_map(|r| x.row(r)[c * 4..c * 4 + 4].to_vec())
                .collect();
            let mean = vals.iter().sum::<f32>() / 8.0;
            let var = vals.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / 8.0;
            assert!(
                mean.abs() < 1e-5 && (var - 1.0).abs() < 1e-4,
                "{mean} {var}"
            );
        }
    }

    #[test]
    fn a_standardizer_that_does_not_fit_the_input_is_refused() {
        let shape = InputShape::Flat { features: 3 };
        let short = Standardizer {
            mean: vec![0.0; 2],
            scale: vec![1.0; 2],
        };
        assert!(short.check(shape).unwrap_err().contains("3 features"));
        let zero = Standardizer {
            mean: vec![0.0; 3],
            scale: vec![1.0, 0.0, 1.0],
        };
        assert!(zero.check(shape).unwrap_err().contains("scale[1]"));
        assert!(Standardizer::identity(shape).check(shape).is_ok());
    }

    #[test]
    fn one_sided_labels_are_named() {
        let a: Vec<String> = ["x", "y", "z"].map(String::from).to_vec();
        let b: Vec<String> = ["x", "y"].map(String::from).to_vec();
        let err = Classes::shared(("a.npy", &a), ("b.npy", &b), false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("only in modality 1 (a.npy): z"), "{err}");
        assert_eq!(
            Classes::shared(("a", &a), ("b", &b), true).unwrap().len(),
            3
        );
    }

    #[test]
    fn classes_sort_numerically() {
        let labels: Vec<String> = ["10", "2", "1", "2"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let classes = Classes::from_labels(&labels);
        assert_eq!(classes.labels, ["1", "2", "10"]);
        assert_eq!(classes.indices(&labels).unwrap(), [2, 1, 0, 1]);
    }
}

//! The cost between two transformed scores (METHOD.md Eq. 6): Euclidean, as in the paper, or
//! its square.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    /// `‖h_i − h_j‖₂` (the paper's choice).
    #[default]
    Euclidean,
    /// `‖h_i − h_j‖₂²`.
    SqEuclidean,
}

impl Metric {
    /// Cost from a squared distance.
    #[inline(always)]
    pub fn from_squared(self, d2: f64) -> f64 {
        match self {
            Metric::Euclidean => d2.sqrt(),
            Metric::SqEuclidean => d2,
        }
    }

    /// Cost between two score rows.
    #[inline]
    pub fn cost(self, x: &[f64], y: &[f64]) -> f64 {
        self.from_squared(squared_distance(x, y))
    }

    pub fn name(self) -> &'static str {
        match self {
            Metric::Euclidean => "euclidean",
            Metric::SqEuclidean => "sqeuclidean",
        }
    }
}

#[inline]
pub fn squared_distance(x: &[f64], y: &[f64]) -> f64 {
    x.iter().zip(y).map(|(a, b)| (a - b) * (a - b)).sum()
}

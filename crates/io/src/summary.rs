//! The schema of `summary.json`, the one file a user or script reads to see how a run went.
//!
//! Plain serde structs so the CLI writes it, `psa merge` reads shards of it back, and Python
//! reads it with `json.load`. Missing values are written as `null`, never omitted, so every key
//! is always present; NaN or infinite values are never written (JSON has no such numbers): they
//! are a bug upstream, caught by a debug assertion, and written as `null` in release builds.

use serde::{Deserialize, Serialize, Serializer};

/// `summary.json`: the options of a run and, per label group, how the matching went and how good
/// it is.
///
/// ```json
/// {"psa_version": "0.1.0", "options": {"epsilon": 0.05},
///  "groups": [{"label": "B", "n1": 120, "n2": 131, "method": "ot", "epsilon": 0.05,
///              "iterations": 87, "converged": true, "stopped": "tolerance",
///              "marginal_error": 8.1e-10, "omega": 1.62, "seconds": 0.012,
///              "coupling": "coupling/B.npy",
///              "trace": 0.021, "foscttm": 0.31, "latent_mse": null, "latent_pair_mse": null,
///              "random_trace": 0.0083}],
///  "mean": {"trace": 0.021, "foscttm": 0.31, "latent_mse": null, "latent_pair_mse": null,
///           "random_trace": 0.0083},
///  "unmatched": [{"label": "Plasma", "modality": 2, "rows": 4}],
///  "classifiers": null}
/// ```
///
/// * `psa_version`: the version of psa that wrote the file.
/// * `options`: the run's settings as key → value (free form, as the CLI resolved them), so the
///   file alone says how its numbers were obtained.
/// * `groups`: one [`GroupSummary`] per label present in both modalities.
/// * `mean`: [`Metrics`], each metric averaged over the groups that have it (unweighted).
/// * `unmatched`: one [`UnmatchedSummary`] per label present in only one modality; its rows were
///   not matched.
/// * `classifiers`: when psa trained the propensity classifiers (`--x1/--x2`), how they did
///   (psa-learn's report: per modality the out-of-sample cross-entropy, its label-frequency
///   baseline and accuracy, per fold the kept epoch and calibration, and warnings); `null` when
///   the scores came from files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub psa_version: String,
    pub options: serde_json::Map<String, serde_json::Value>,
    pub groups: Vec<GroupSummary>,
    pub mean: Metrics,
    pub unmatched: Vec<UnmatchedSummary>,
    #[serde(default)]
    pub classifiers: Option<serde_json::Value>,
}

/// One label group: its size, how its matching was solved, and its metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupSummary {
    /// The label `t` shared by the group's rows, as text.
    pub label: String,
    /// Rows of modality 1 in the group.
    pub n1: usize,
    /// Rows of modality 2 in the group.
    pub n2: usize,
    /// The matching method, as psa-core names it: `"ot"` (entropic OT, balanced or unbalanced),
    /// `"snn"` (shared nearest neighbours) or `"random"`.
    pub method: String,
    /// The entropic regularisation λ (ε) in the units of the cost; `null` for methods without one.
    #[serde(serialize_with = "finite_or_null")]
    pub epsilon: Option<f64>,
    /// Sinkhorn iterations run (over all ε-scaling stages); `null` for non-iterative methods.
    pub iterations: Option<usize>,
    /// Whether the marginal error of the returned coupling fell below the tolerance (`stopped` is
    /// `"tolerance"`); `null` for non-iterative methods.
    pub converged: Option<bool>,
    /// Why the solve stopped: `"tolerance"` (converged), `"max_iter"` (iteration limit) or
    /// `"precision_floor"` (the error stopped falling above the tolerance, at the resolution of
    /// the arithmetic); `null` for non-iterative methods.
    pub stopped: Option<String>,
    /// The marginal error of the returned coupling: the larger of the row and column L1 errors
    /// `‖M 1 − a‖₁`, `‖Mᵀ 1 − b‖₁` (unbalanced: the fixed-point residual); `null` for
    /// non-iterative methods.
    #[serde(serialize_with = "finite_or_null")]
    pub marginal_error: Option<f64>,
    /// Over-relaxation factor ω of the Sinkhorn updates at the final λ; `null` without
    /// acceleration or for non-iterative methods.
    #[serde(serialize_with = "finite_or_null")]
    pub omega: Option<f64>,
    /// Wall-clock seconds spent solving this group.
    #[serde(serialize_with = "finite")]
    pub seconds: f64,
    /// The file of this group's dense coupling, relative to the run directory
    /// (`coupling/<name>.npy`); `null` when the group exceeds `--dense-max`.
    pub coupling: Option<String>,
    /// The group's quality metrics, as keys of the group's own object.
    #[serde(flatten)]
    pub metrics: Metrics,
}

/// The quality metrics of a matching (METHOD.md, Metrics): of one group in
/// [`GroupSummary`], averaged over groups in `mean`; `null` where not computable.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Trace `(1/n) Σ_i P(i|i)` (METHOD.md, Metrics): higher is better; `null` without known
    /// pairs (ids absent or `n1 ≠ n2`).
    #[serde(serialize_with = "finite_or_null")]
    pub trace: Option<f64>,
    /// FOSCTTM, the fraction of samples closer than the true match, in [0, 1]: 0 perfect, 0.5
    /// random; `null` without known pairs or without features to project.
    #[serde(serialize_with = "finite_or_null")]
    pub foscttm: Option<f64>,
    /// Latent MSE `(1/n) Σ_i ‖z_i − Σ_j P(j|i) z_j‖²` in squared latent units; `null` without
    /// latents (only synthetic data has them).
    #[serde(serialize_with = "finite_or_null")]
    pub latent_mse: Option<f64>,
    /// Latent MSE of pseudo-pairs `(1/n) Σ_i Σ_j P(j|i) ‖z_i − z_j‖²`, the expected error of a
    /// partner drawn from `P(·|i)`; for the random coupling twice the within-group variance (the
    /// paper's Table 1 "random" figure, summed over coordinates); `null` without latents.
    #[serde(serialize_with = "finite_or_null")]
    pub latent_pair_mse: Option<f64>,
    /// The trace of the random coupling for comparison, `1/n`; `null` when `trace` is.
    #[serde(serialize_with = "finite_or_null")]
    pub random_trace: Option<f64>,
}

impl From<psa_core::metrics::GroupMetrics> for Metrics {
    fn from(m: psa_core::metrics::GroupMetrics) -> Self {
        Metrics {
            trace: m.trace,
            foscttm: m.foscttm,
            latent_mse: m.latent_mse,
            latent_pair_mse: m.latent_pair_mse,
            random_trace: m.random_trace,
        }
    }
}

impl Metrics {
    /// Each metric's unweighted mean over the groups where it is `Some`; `None` when no group
    /// has it.
    pub fn mean_over(groups: &[GroupSummary]) -> Self {
        let mean_of = |get: fn(&Metrics) -> Option<f64>| {
            let values = groups.iter().filter_map(|g| get(&g.metrics));
            let (sum, count) = values.fold((0.0, 0usize), |(s, c), v| (s + v, c + 1));
            (count > 0).then(|| sum / count as f64)
        };
        Metrics {
            trace: mean_of(|m| m.trace),
            foscttm: mean_of(|m| m.foscttm),
            latent_mse: mean_of(|m| m.latent_mse),
            latent_pair_mse: mean_of(|m| m.latent_pair_mse),
            random_trace: mean_of(|m| m.random_trace),
        }
    }
}

/// Rows of a label found in one modality only, which therefore could not be matched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnmatchedSummary {
    pub label: String,
    /// The modality that has the rows: 1 or 2.
    pub modality: u8,
    /// How many rows carry the label.
    pub rows: usize,
}

impl From<&psa_core::Unmatched> for UnmatchedSummary {
    fn from(u: &psa_core::Unmatched) -> Self {
        UnmatchedSummary {
            label: u.label.clone(),
            modality: u.modality,
            rows: u.rows,
        }
    }
}

/// One [`GroupSummary`] per group of a solved matching, with its metrics and the file its dense
/// coupling went to (see [`crate::write_results`]; empty: none written).
pub fn group_summaries(
    solved: &dyn psa_core::Solved,
    metrics: &[psa_core::metrics::GroupMetrics],
    coupling_files: &[Option<String>],
) -> Vec<GroupSummary> {
    let seconds = solved.seconds();
    let method = solved.method().name();
    solved
        .problem()
        .groups
        .iter()
        .enumerate()
        .map(|(index, group)| {
            let ot = solved.solution().map(|s| &s.groups[index]);
            let m = metrics.get(index).cloned().unwrap_or_default();
            GroupSummary {
                label: group.label.clone(),
                n1: group.n1(),
                n2: group.n2(),
                method: method.to_string(),
                epsilon: ot.map(|s| s.epsilon),
                iterations: ot.map(|s| s.report.iterations),
                converged: ot.map(|s| s.report.converged),
                stopped: ot.map(|s| s.report.stopped.as_str().to_string()),
                marginal_error: ot.map(|s| s.report.marginal_error),
                omega: ot.and_then(|s| s.report.omega),
                seconds: seconds.get(index).copied().unwrap_or(0.0),
                coupling: coupling_files.get(index).cloned().flatten(),
                metrics: m.into(),
            }
        })
        .collect()
}

fn finite<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
    debug_assert!(
        value.is_finite(),
        "summary.json would get a non-finite number: {value}"
    );
    if value.is_finite() {
        serializer.serialize_f64(*value)
    } else {
        serializer.serialize_none()
    }
}

fn finite_or_null<S: Serializer>(value: &Option<f64>, serializer: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(value) => finite(value, serializer),
        None => serializer.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn group(label: &str, trace: Option<f64>, latent_mse: Option<f64>) -> GroupSummary {
        GroupSummary {
            label: label.to_owned(),
            n1: 10,
            n2: 12,
            method: "ot".to_owned(),
            epsilon: Some(0.05),
            iterations: Some(40),
            converged: Some(true),
            stopped: Some("tolerance".to_owned()),
            marginal_error: Some(1e-9),
            omega: None,
            seconds: 0.5,
            coupling: None,
            metrics: Metrics {
                trace,
                foscttm: None,
                latent_mse,
                latent_pair_mse: latent_mse.map(|v| 2.0 * v),
                random_trace: trace.map(|_| 0.1),
            },
        }
    }

    fn summary() -> Summary {
        let groups = vec![
            group("B", Some(0.2), None),
            group("NK", Some(0.4), Some(1.5)),
        ];
        let mut options = serde_json::Map::new();
        options.insert("epsilon".to_owned(), json!(0.05));
        Summary {
            psa_version: "0.1.0".to_owned(),
            options,
            mean: Metrics::mean_over(&groups),
            groups,
            unmatched: vec![UnmatchedSummary {
                label: "Plasma".to_owned(),
                modality: 2,
                rows: 4,
            }],
            classifiers: None,
        }
    }

    fn keys(value: &Value) -> Vec<&str> {
        let mut keys: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        keys
    }

    #[test]
    fn serializes_to_the_documented_keys_with_nulls() {
        let value = serde_json::to_value(summary()).unwrap();
        assert_eq!(
            keys(&value),
            [
                "classifiers",
                "groups",
                "mean",
                "options",
                "psa_version",
                "unmatched"
            ]
        );
        let group = &value["groups"][0];
        let mut expected = vec![
            "label",
            "n1",
            "n2",
            "method",
            "epsilon",
            "iterations",
            "converged",
            "stopped",
            "marginal_error",
            "omega",
            "seconds",
            "coupling",
            "trace",
            "foscttm",
            "latent_mse",
            "latent_pair_mse",
            "random_trace",
        ];
        expected.sort_unstable();
        assert_eq!(keys(group), expected);
        assert_eq!(group["foscttm"], Value::Null);
        assert_eq!(group["n1"], json!(10));
        assert_eq!(
            keys(&value["mean"]),
            [
                "foscttm",
                "latent_mse",
                "latent_pair_mse",
                "random_trace",
                "trace"
            ]
        );
        assert_eq!(keys(&value["unmatched"][0]), ["label", "modality", "rows"]);
        assert_eq!(value["unmatched"][0]["modality"], json!(2));
        assert_eq!(value["options"], json!({"epsilon": 0.05}));
    }

    #[test]
    fn round_trips_through_json_text() {
        let text = serde_json::to_string_pretty(&summary()).unwrap();
        let back: Summary = serde_json::from_str(&text).unwrap();
        assert_eq!(back, summary());
    }

    #[test]
    fn means_skip_missing_metrics() {
        let mean = summary().mean;
        assert!((mean.trace.unwrap() - 0.3).abs() < 1e-12);
        assert_eq!(mean.latent_mse, Some(1.5));
        assert_eq!(mean.foscttm, None);
        assert!((mean.random_trace.unwrap() - 0.1).abs() < 1e-12);
        assert_eq!(Metrics::mean_over(&[]), Metrics::default());
    }
}

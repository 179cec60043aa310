//! Library use: train propensity classifiers with cross-fitting, then match their out-of-sample
//! scores with the CPU reference matcher.
//!
//! ```sh
//! cargo run --release --example train_and_match
//! ```

use psa_core::metrics::{GroundTruth, evaluate};
use psa_core::synthetic::{TabularConfig, generate_tabular};
use psa_core::{
    CpuMatcher, Method, Metric, NoProgress, Problem, ScoresKind, SolveOptions, match_problem,
};
use psa_learn::{
    Classes, CrossFitConfig, Features, Labelled, NoObserver, Preset, cpu_device, cross_fit,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let data = generate_tabular(&TabularConfig {
        n_per_group: 100,
        ..TabularConfig::default()
    });
    let (m1, m2) = (&data.modality1, &data.modality2);
    let labels1: Vec<String> = m1.labels.iter().map(i64::to_string).collect();
    let labels2: Vec<String> = m2.labels.iter().map(i64::to_string).collect();
    let classes = Classes::from_labels(labels1.iter().chain(&labels2));

    let device = cpu_device();
    let mut scores = Vec::new();
    for (name, x, labels) in [("1", &m1.x, &labels1), ("2", &m2.x, &labels2)] {
        // cross_fit standardises the features, trains, calibrates and checks each fold.
        let features = Features::from_matrix(x.mapv(f64::from).view());
        let spec = Preset::Default.spec(features.shape());
        let class_of_row = classes.indices(labels)?;
        let data = Labelled {
            features: &features,
            classes: &class_of_row,
            n_classes: classes.len(),
        };
        let fitted = cross_fit(
            &spec,
            &data,
            CrossFitConfig::default(),
            &device,
            name,
            &NoObserver,
        )?;
        let q = fitted.out_of_sample;
        println!(
            "modality {name}: out-of-sample cross-entropy {:.3} (label-frequency baseline {:.3}), \
             accuracy {:.3}",
            q.cross_entropy, q.baseline_cross_entropy, q.accuracy
        );
        scores.push(fitted.logits);
    }

    let problem = Problem::from_scores(
        scores[0].view(),
        &labels1,
        scores[1].view(),
        &labels2,
        ScoresKind::Logits,
        Metric::Euclidean,
    )?;
    let solved = match_problem(
        &CpuMatcher,
        problem,
        Method::Ot,
        &SolveOptions::default(),
        &NoProgress,
    )?;
    let truth = GroundTruth {
        ids: Some((m1.ids.clone(), m2.ids.clone())),
        ..GroundTruth::default()
    };
    let metrics = evaluate(solved.as_ref(), &truth)?;
    for (group, m) in solved.problem().groups.iter().zip(metrics) {
        println!(
            "group {}: trace {:.4} (random {:.4}), FOSCTTM {:.3}",
            group.label,
            m.trace.unwrap_or(f64::NAN),
            m.random_trace.unwrap_or(f64::NAN),
            m.foscttm.unwrap_or(f64::NAN)
        );
    }
    Ok(())
}

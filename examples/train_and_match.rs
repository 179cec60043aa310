//! Library use: train propensity classifiers with cross-fitting, then match their out-of-sample
//! scores with the CPU reference matcher.
//!
//! ```sh
//! cargo run --release --example train_and_match
//! ```

use psa_core::metrics::{partners_from_ids, trace};
use psa_core::synthetic::{TabularConfig, generate_tabular};
use psa_core::{CpuMatcher, Matcher, Metric, NoProgress, Problem, ScoresKind, SolveOptions};
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
    let solution = CpuMatcher.solve(&problem, &SolveOptions::default(), &NoProgress)?;
    for (index, group) in problem.groups.iter().enumerate() {
        let ids1: Vec<&str> = group.rows1.iter().map(|&r| m1.ids[r].as_str()).collect();
        let ids2: Vec<&str> = group.rows2.iter().map(|&r| m2.ids[r].as_str()).collect();
        let partners = partners_from_ids(&ids1, &ids2).ok_or("ids do not pair up")?;
        let coupling = solution.coupling(&problem, index);
        println!(
            "group {}: trace {:.4} (random {:.4})",
            group.label,
            trace(&coupling, &partners),
            1.0 / group.rows2.len() as f64
        );
    }
    Ok(())
}

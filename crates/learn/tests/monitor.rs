//! The validation monitor's files, read back independently: `training.csv` with the csv crate
//! (as pandas would, by header name), the plot with the `png` decoder.

use std::collections::HashSet;
use std::fs;
use std::path::Path;

use psa_learn::{EpochRecord, PLOT_HEIGHT, PLOT_WIDTH};

/// `training.csv` written to a file, as the binary does (through psa-io's atomic writer).
fn write_training_csv(path: &Path, records: &[EpochRecord]) -> std::io::Result<()> {
    psa_learn::write_training_csv(&mut fs::File::create(path)?, records)
}

/// The plot written to a file, with one baseline for every modality.
fn plot_validation_cross_entropy(
    path: &Path,
    records: &[EpochRecord],
    baseline: Option<f64>,
) -> std::io::Result<()> {
    let mut names: Vec<&str> = records.iter().map(|r| r.modality.as_str()).collect();
    names.dedup();
    let baselines: Vec<(&str, f64)> = baseline
        .map(|b| names.iter().map(|&n| (n, b)).collect())
        .unwrap_or_default();
    let mut bytes = Vec::new();
    psa_learn::plot_validation_cross_entropy(&mut bytes, records, &baselines)?;
    fs::write(path, bytes)
}

/// A plausible training log: cross-entropy falling from `ln T` towards a floor, the best-so-far
/// epochs marked, a learning rate that halves.
fn training_log(
    modalities: &[&str],
    folds: usize,
    epochs: usize,
    groups: usize,
) -> Vec<EpochRecord> {
    let log_t = (groups as f64).ln();
    let mut records = Vec::new();
    for (m, modality) in modalities.iter().enumerate() {
        for fold in 0..folds {
            let floor = log_t * (0.35 + 0.08 * fold as f64 + 0.15 * m as f64);
            let mut best = f64::INFINITY;
            for epoch in 0..epochs {
                let decay = (-(epoch as f64) / 6.0).exp();
                let overfit = 0.004 * (epoch as f64 - 20.0).max(0.0).powi(2) / log_t;
                let validation = floor + (log_t - floor) * decay + overfit;
                let train = validation * (0.95 - 0.01 * epoch as f64).max(0.5);
                records.push(EpochRecord {
                    modality: modality.to_string(),
                    fold,
                    epoch,
                    train_cross_entropy: train,
                    train_accuracy: 1.0 - train / log_t * 0.9,
                    validation_cross_entropy: validation,
                    validation_accuracy: 1.0 - validation / log_t * 0.9,
                    learning_rate: 1e-3 * 0.5f64.powi((epoch / 10) as i32),
                    best: validation < best,
                    trial: 0,
                });
                best = best.min(validation);
            }
        }
    }
    records
}

/// Width, height and the distinct RGB colours of a PNG, decoded by the `png` crate.
fn decode(path: &Path) -> (u32, u32, HashSet<[u8; 3]>) {
    let decoder = png::Decoder::new(std::io::BufReader::new(fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let frame = reader.next_frame(&mut pixels).unwrap();
    assert_eq!(frame.color_type, png::ColorType::Rgb);
    assert_eq!(frame.bit_depth, png::BitDepth::Eight);
    let colours = pixels[..frame.buffer_size()]
        .chunks_exact(3)
        .map(|rgb| [rgb[0], rgb[1], rgb[2]])
        .collect();
    (frame.width, frame.height, colours)
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn training_csv_round_trips_by_header_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("training.csv");
    let mut records = training_log(&["1", "2"], 3, 12, 45);
    records[5].modality = "RNA, counts".to_string(); // needs quoting
    records[6].learning_rate = 1e-7;
    records[7].validation_cross_entropy = f64::INFINITY;
    write_training_csv(&path, &records).unwrap();

    let text = fs::read_to_string(&path).unwrap();
    assert_eq!(
        text.lines().next().unwrap(),
        "modality,fold,epoch,train_cross_entropy,train_accuracy,validation_cross_entropy,\
         validation_accuracy,learning_rate,best,trial"
    );
    assert_eq!(text.lines().count(), records.len() + 1);

    let mut reader = csv::Reader::from_path(&path).unwrap();
    let read: Vec<EpochRecord> = reader.deserialize().map(Result::unwrap).collect();
    assert_eq!(read, records);
    assert_eq!(entries(dir.path()), ["training.csv"]);
}

#[test]
fn training_csv_numbers_are_plain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("training.csv");
    let record = EpochRecord {
        modality: "2".to_string(),
        fold: 4,
        epoch: 17,
        train_cross_entropy: 0.5,
        train_accuracy: 0.75,
        validation_cross_entropy: 2.0f64.ln(),
        validation_accuracy: 0.25,
        learning_rate: 0.001,
        best: true,
        trial: 3,
    };
    write_training_csv(&path, &[record]).unwrap();
    let text = fs::read_to_string(&path).unwrap();
    assert_eq!(
        text.lines().nth(1).unwrap(),
        "2,4,17,0.5,0.75,0.6931471805599453,0.25,0.001,true,3"
    );
}

#[test]
fn plot_of_one_modality_is_a_png_of_the_stated_size() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("validation_cross_entropy.png");
    let records = training_log(&["1"], 5, 40, 45);
    plot_validation_cross_entropy(&path, &records, Some(45f64.ln())).unwrap();
    let (width, height, colours) = decode(&path);
    assert_eq!((width, height), (PLOT_WIDTH, PLOT_HEIGHT));
    assert_eq!((width, height), (900, 500));
    // Five fold colours, the grey reference, black text and their anti-aliased edges.
    assert!(colours.len() > 20, "{} colours", colours.len());
    for fold_blue_orange in [[31, 119, 180], [255, 127, 14]] {
        assert!(colours.contains(&fold_blue_orange), "{fold_blue_orange:?}");
    }
    assert!(colours.contains(&[255, 255, 255]));
    assert_eq!(entries(dir.path()), ["validation_cross_entropy.png"]);
}

#[test]
fn plot_of_two_modalities_and_of_a_single_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let two = dir.path().join("two.png");
    let mut records = training_log(&["1", "2"], 3, 30, 12);
    records[40].validation_cross_entropy = f64::NAN; // a diverged epoch breaks the line
    plot_validation_cross_entropy(&two, &records, Some(12f64.ln())).unwrap();
    let (width, height, colours) = decode(&two);
    assert_eq!((width, height), (PLOT_WIDTH, PLOT_HEIGHT));
    assert!(colours.len() > 20, "{} colours", colours.len());

    // Degenerate but valid: one epoch, no reference line.
    let one = dir.path().join("one.png");
    plot_validation_cross_entropy(&one, &training_log(&["RNA"], 1, 1, 2), None).unwrap();
    let (width, height, colours) = decode(&one);
    assert_eq!((width, height), (PLOT_WIDTH, PLOT_HEIGHT));
    assert!(colours.len() > 5, "{} colours", colours.len());

    // Ten folds: the legend wraps onto a second row, colours repeat after nine.
    let many = dir.path().join("many.png");
    let records = training_log(&["RNA", "protein"], 10, 25, 45);
    plot_validation_cross_entropy(&many, &records, Some(45f64.ln())).unwrap();
    assert_eq!(decode(&many).0, PLOT_WIDTH);

    // Kept for a human to look at: PSA_MONITOR_PNG_DIR=/some/dir cargo test ...
    if let Some(keep) = std::env::var_os("PSA_MONITOR_PNG_DIR") {
        let keep = Path::new(&keep);
        for (name, file) in [
            ("two_modalities", &two),
            ("one_epoch", &one),
            ("ten_folds", &many),
        ] {
            fs::copy(file, keep.join(format!("{name}.png"))).unwrap();
        }
        let single = keep.join("one_modality.png");
        let records = training_log(&["1"], 5, 40, 45);
        plot_validation_cross_entropy(&single, &records, Some(45f64.ln())).unwrap();
    }
}

#[test]
fn empty_records_are_an_error() {
    let mut sink = Vec::new();
    let err = psa_learn::write_training_csv(&mut sink, &[]).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(
        err.to_string().contains("no epoch records to write"),
        "{err}"
    );
    let err = psa_learn::plot_validation_cross_entropy(&mut sink, &[], &[("1", 1.0)]).unwrap_err();
    assert!(
        err.to_string().contains("no epoch records to plot"),
        "{err}"
    );
    assert!(sink.is_empty());
}

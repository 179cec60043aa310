//! The validation monitor of METHOD.md (paper Sec. 6.4): the propensity classifiers' train and
//! validation cross-entropy and accuracy, per modality, fold, trial and epoch ([`EpochRecord`]),
//! written as `training.csv` for pandas, and a PNG of the validation cross-entropy per modality
//! so a user can tune without ground truth (lower validation cross-entropy goes with better
//! matching, within one model family).
//!
//! Both are written to any [`io::Write`]: the caller decides where, and psa's binary goes
//! through psa-io's atomic writer, so this crate needs no file-system code of its own (and no
//! psa-io, whose HDF5 reader would come with it). The plot is drawn with plotters into an
//! in-memory RGB buffer and encoded with `png`. Its text uses DejaVu Sans embedded in the binary
//! (registered with plotters' `ab_glyph` font table): no system fonts, fontconfig or freetype are
//! needed, and the image is the same on every machine.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{FontStyle, register_font};
use serde::{Deserialize, Serialize};

/// Width of the plot written by [`plot_validation_cross_entropy`], in pixels.
pub const PLOT_WIDTH: u32 = 900;
/// Height of the plot written by [`plot_validation_cross_entropy`], in pixels.
pub const PLOT_HEIGHT: u32 = 500;

/// One epoch of one propensity classifier: one row of `training.csv`.
///
/// Cross-entropies are in nats (natural log), averaged over the units of the split; accuracies
/// are fractions in `[0, 1]`. A classifier that predicts each label's training frequency scores
/// the label-frequency baseline (`ln T` for balanced labels), the reference line of the plot.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EpochRecord {
    /// The modality whose classifier this is: `"1"`, `"2"` or a user's name for it.
    pub modality: String,
    /// The cross-fitting fold, as the training loop numbers them.
    pub fold: usize,
    /// The epoch within this fold's training.
    pub epoch: usize,
    /// Mean cross-entropy on the fold's training units (nats).
    pub train_cross_entropy: f64,
    /// Fraction of training units whose most probable group is their own.
    pub train_accuracy: f64,
    /// Mean cross-entropy on the fold's held-out units (nats).
    pub validation_cross_entropy: f64,
    /// Fraction of held-out units whose most probable group is their own.
    pub validation_accuracy: f64,
    /// The optimiser's learning rate during this epoch.
    pub learning_rate: f64,
    /// This epoch's checkpoint is the one that scored: exactly one row per modality and fold
    /// (in the trial that was kept) is `true` in a finished log. While a run is in progress (as a
    /// [`crate::TrainObserver`] sees it) it means "best so far".
    pub best: bool,
    /// The setting of the `--tune` grid this run belongs to (0 without tuning).
    #[serde(default)]
    pub trial: usize,
}

/// Writes `records` as CSV with a header row, one row per record in the given order.
///
/// Columns are the fields of [`EpochRecord`], in order; numbers are written in the shortest form
/// that reads back exactly (`0.6931471805599453`, `1e-5`, `NaN`, `inf`) and `best` as
/// `true`/`false`, so `pandas.read_csv` gives float, int and bool columns. An empty `records` is
/// an error (`InvalidInput`): a training log without epochs points to a bug upstream.
pub fn write_training_csv(writer: &mut dyn io::Write, records: &[EpochRecord]) -> io::Result<()> {
    if records.is_empty() {
        return Err(no_epochs("write"));
    }
    let mut csv = csv::Writer::from_writer(writer);
    for record in records {
        csv.serialize(record)?;
    }
    csv.flush()
}

/// Draws the validation cross-entropy of `records` against the epoch as a
/// [`PLOT_WIDTH`] × [`PLOT_HEIGHT`] PNG into `writer`.
///
/// One panel per modality (in order of first appearance), one line per fold (the trial that
/// scored, when `--tune` ran several), a ring on each fold's kept checkpoint (its row marked
/// `best`), and, for each modality in `baselines`, a dashed line at that cross-entropy: the
/// label-frequency baseline, what predicting each label's training frequency scores. Non-finite
/// values (a diverged epoch) are left out and break the line. Panels share the y-axis so
/// modalities compare at a glance. An empty `records` is an error (`InvalidInput`).
pub fn plot_validation_cross_entropy(
    writer: &mut dyn io::Write,
    records: &[EpochRecord],
    baselines: &[(&str, f64)],
) -> io::Result<()> {
    if records.is_empty() {
        return Err(no_epochs("plot"));
    }
    if !embedded_font_registered() {
        return Err(io::Error::other(
            "could not draw the plot: the embedded DejaVu Sans font could not be loaded",
        ));
    }
    let records = scored_trials(records);
    let baselines: Vec<(&str, f64)> = baselines
        .iter()
        .copied()
        .filter(|(_, value)| value.is_finite())
        .collect();
    let mut pixels = vec![0u8; PLOT_WIDTH as usize * PLOT_HEIGHT as usize * 3];
    draw(&mut pixels, &records, &baselines)
        .map_err(|message| io::Error::other(format!("could not draw the plot: {message}")))?;
    encode_png(writer, &pixels)
}

fn no_epochs(action: &'static str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("no epoch records to {action}; the training loop logged no epochs"),
    )
}

/// The records of the trial that scored, per modality and fold: the trial holding the fold's
/// `best` row, or its last trial when none is marked.
fn scored_trials(records: &[EpochRecord]) -> Vec<EpochRecord> {
    let mut kept: BTreeMap<(&str, usize), usize> = BTreeMap::new();
    for r in records {
        let trial = kept.entry((r.modality.as_str(), r.fold)).or_insert(r.trial);
        *trial = (*trial).max(r.trial);
    }
    for r in records.iter().filter(|r| r.best) {
        kept.insert((r.modality.as_str(), r.fold), r.trial);
    }
    records
        .iter()
        .filter(|r| kept.get(&(r.modality.as_str(), r.fold)) == Some(&r.trial))
        .cloned()
        .collect()
}

/// The family plotters' default text style asks for; registered once per process.
const FONT_FAMILY: &str = "sans-serif";

fn embedded_font_registered() -> bool {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    *REGISTERED.get_or_init(|| {
        register_font(FONT_FAMILY, FontStyle::Normal, dejavu::sans::regular()).is_ok()
    })
}

/// Tableau's qualitative colours without its grey, which the reference line uses.
const FOLD_COLOURS: [RGBColor; 9] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];
const REFERENCE_COLOUR: RGBColor = RGBColor(90, 90, 90);
/// The ring on a kept checkpoint; with a 2-pixel stroke a smaller one looks like a dot.
const RING_RADIUS: i32 = 6;

/// One fold's validation curve: `(epoch, cross-entropy)` sorted by epoch, and its kept checkpoint.
struct Curve {
    fold: usize,
    points: Vec<(usize, f64)>,
    kept: Option<(usize, f64)>,
}

/// The curves of each modality, modalities in order of first appearance, folds ascending.
fn curves_by_modality(records: &[EpochRecord]) -> Vec<(&str, Vec<Curve>)> {
    let mut modalities: Vec<(&str, BTreeMap<usize, Vec<&EpochRecord>>)> = Vec::new();
    for record in records {
        let index = match modalities
            .iter()
            .position(|(name, _)| *name == record.modality)
        {
            Some(index) => index,
            None => {
                modalities.push((&record.modality, BTreeMap::new()));
                modalities.len() - 1
            }
        };
        modalities[index]
            .1
            .entry(record.fold)
            .or_default()
            .push(record);
    }
    modalities
        .into_iter()
        .map(|(name, folds)| {
            let curves = folds
                .into_iter()
                .map(|(fold, mut epochs)| {
                    epochs.sort_by_key(|record| record.epoch);
                    let kept = epochs
                        .iter()
                        .rev()
                        .find(|record| record.best && record.validation_cross_entropy.is_finite())
                        .map(|record| (record.epoch, record.validation_cross_entropy));
                    let points = epochs
                        .iter()
                        .map(|record| (record.epoch, record.validation_cross_entropy))
                        .collect();
                    Curve { fold, points, kept }
                })
                .collect();
            (name, curves)
        })
        .collect()
}

/// Runs of consecutive finite points, so a non-finite epoch breaks the line instead of
/// poisoning the axis range.
fn finite_runs(points: &[(usize, f64)]) -> impl Iterator<Item = &[(usize, f64)]> {
    points
        .split(|(_, value)| !value.is_finite())
        .filter(|run| !run.is_empty())
}

/// The epoch axis: every epoch recorded, widened to two epochs when there is only one.
fn epoch_range(records: &[EpochRecord]) -> std::ops::Range<usize> {
    let first = records.iter().map(|r| r.epoch).min().unwrap_or(0);
    let last = records.iter().map(|r| r.epoch).max().unwrap_or(0);
    if first == last {
        first.saturating_sub(1)..last + 1
    } else {
        first..last
    }
}

/// The cross-entropy axis: every finite value and the references, padded by 5%, never below 0
/// when the data are not (a cross-entropy is non-negative).
fn cross_entropy_range(records: &[EpochRecord], references: &[f64]) -> std::ops::Range<f64> {
    let values = records
        .iter()
        .map(|r| r.validation_cross_entropy)
        .chain(references.iter().copied())
        .filter(|value| value.is_finite());
    let (low, high) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(low, high), value| {
        (low.min(value), high.max(value))
    });
    if low > high {
        return 0.0..1.0; // nothing finite to show
    }
    let span = high - low;
    let pad = if span > 0.0 {
        0.05 * span
    } else {
        0.1 * low.abs().max(1.0)
    };
    let bottom = if low >= 0.0 {
        (low - pad).max(0.0)
    } else {
        low - pad
    };
    bottom..high + pad
}

fn draw(
    pixels: &mut [u8],
    records: &[EpochRecord],
    baselines: &[(&str, f64)],
) -> Result<(), String> {
    let root = BitMapBackend::with_buffer(pixels, (PLOT_WIDTH, PLOT_HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(|err| err.to_string())?;
    let modalities = curves_by_modality(records);
    let legend = legend_entries(&modalities, !baselines.is_empty());
    let body = root
        .titled("Validation cross-entropy per epoch", (FONT_FAMILY, 24))
        .map_err(|err| err.to_string())?;
    let rows = legend_rows(&body, &legend).map_err(|err| err.to_string())?;
    let (strip, charts) = body.split_vertically(LEGEND_ROW_HEIGHT * rows.len() as i32 + 4);
    draw_legend(&strip, &rows).map_err(|err| err.to_string())?;
    let epochs = epoch_range(records);
    let levels: Vec<f64> = baselines.iter().map(|(_, level)| *level).collect();
    let cross_entropy = cross_entropy_range(records, &levels);
    let panels = charts.split_evenly((1, modalities.len()));
    for (panel, (modality, curves)) in panels.iter().zip(&modalities) {
        draw_panel(
            panel,
            modality,
            curves,
            epochs.clone(),
            cross_entropy.clone(),
            baselines
                .iter()
                .find(|(name, _)| name == modality)
                .map(|(_, level)| *level),
        )
        .map_err(|err| err.to_string())?;
    }
    root.present().map_err(|err| err.to_string())
}

fn draw_panel<DB: DrawingBackend>(
    panel: &DrawingArea<DB, Shift>,
    modality: &str,
    curves: &[Curve],
    epochs: std::ops::Range<usize>,
    cross_entropy: std::ops::Range<f64>,
    reference: Option<f64>,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let mut chart = ChartBuilder::on(panel)
        .caption(format!("modality {modality}"), (FONT_FAMILY, 18))
        .margin(12)
        .x_label_area_size(42)
        .y_label_area_size(58)
        .build_cartesian_2d(epochs.clone(), cross_entropy)?;
    chart
        .configure_mesh()
        .light_line_style(WHITE.mix(0.0))
        .bold_line_style(BLACK.mix(0.08))
        .x_desc("epoch")
        .y_desc("validation cross-entropy (nats)")
        .x_labels(8)
        .y_labels(8)
        .y_label_formatter(&|value| format!("{value:.2}"))
        .label_style((FONT_FAMILY, 13))
        .axis_desc_style((FONT_FAMILY, 14))
        .draw()?;
    if let Some(level) = reference {
        chart.draw_series(DashedLineSeries::new(
            [(epochs.start, level), (epochs.end, level)],
            8,
            6,
            REFERENCE_COLOUR.stroke_width(2),
        ))?;
    }
    for curve in curves {
        let style = fold_colour(curve.fold).stroke_width(2);
        for run in finite_runs(&curve.points) {
            chart.draw_series(LineSeries::new(run.iter().copied(), style))?;
            if let [point] = run {
                // A line through one point draws nothing.
                chart.draw_series([Circle::new(*point, 3, style.filled())])?;
            }
        }
        if let Some(kept) = curve.kept {
            chart.draw_series([Circle::new(kept, RING_RADIUS, style)])?;
        }
    }
    Ok(())
}

fn fold_colour(fold: usize) -> RGBColor {
    FOLD_COLOURS[fold % FOLD_COLOURS.len()]
}

/// What a legend entry draws before its text.
#[derive(Clone, Copy)]
enum Mark {
    Line(RGBColor),
    Dashed,
    Ring,
}

/// The legend, shared by all panels (a fold has one colour everywhere): the folds, the
/// baseline line when drawn, and the ring when some fold has a kept checkpoint. It sits in its
/// own strip under the title so it never hides a curve.
fn legend_entries(modalities: &[(&str, Vec<Curve>)], reference: bool) -> Vec<(Mark, String)> {
    let curves = || modalities.iter().flat_map(|(_, curves)| curves);
    let folds: BTreeSet<usize> = curves().map(|curve| curve.fold).collect();
    let mut entries: Vec<_> = folds
        .into_iter()
        .map(|fold| (Mark::Line(fold_colour(fold)), format!("fold {fold}")))
        .collect();
    if reference {
        entries.push((Mark::Dashed, "label-frequency baseline".to_string()));
    }
    if curves().any(|curve| curve.kept.is_some()) {
        entries.push((Mark::Ring, "kept checkpoint".to_string()));
    }
    entries
}

const LEGEND_ROW_HEIGHT: i32 = 22;
const LEGEND_FONT_SIZE: f64 = 14.0;
const LEGEND_MARK_WIDTH: i32 = 24;
const LEGEND_GAP: i32 = 24;

/// One legend row: its entries with their widths, and the row's total width.
type LegendRow<'a> = (Vec<(&'a (Mark, String), i32)>, i32);

/// Breaks the legend into rows that fit the image's width.
fn legend_rows<'a, DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &'a [(Mark, String)],
) -> Result<Vec<LegendRow<'a>>, DrawingAreaErrorKind<DB::ErrorType>> {
    let font = TextStyle::from((FONT_FAMILY, LEGEND_FONT_SIZE).into_font());
    let available = area.dim_in_pixel().0 as i32 - 2 * LEGEND_GAP;
    let mut rows: Vec<LegendRow<'a>> = Vec::new();
    for entry in entries {
        let (text_width, _) = area.estimate_text_size(&entry.1, &font)?;
        let width = LEGEND_MARK_WIDTH + 6 + text_width as i32;
        match rows.last_mut() {
            Some((row, used)) if *used + LEGEND_GAP + width <= available => {
                row.push((entry, width));
                *used += LEGEND_GAP + width;
            }
            _ => rows.push((vec![(entry, width)], width)),
        }
    }
    Ok(rows)
}

/// Draws the legend rows, each centred.
fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    rows: &[LegendRow<'_>],
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let text = TextStyle::from((FONT_FAMILY, LEGEND_FONT_SIZE).into_font())
        .pos(Pos::new(HPos::Left, VPos::Center));
    let width = area.dim_in_pixel().0 as i32;
    for (index, (entries, used)) in rows.iter().enumerate() {
        let y = LEGEND_ROW_HEIGHT * index as i32 + LEGEND_ROW_HEIGHT / 2;
        let mut x = (width - used) / 2;
        for ((mark, label), entry_width) in entries {
            let end = x + LEGEND_MARK_WIDTH;
            match *mark {
                Mark::Line(colour) => area.draw(&PathElement::new(
                    [(x, y), (end, y)],
                    colour.stroke_width(2),
                ))?,
                Mark::Dashed => {
                    let style = REFERENCE_COLOUR.stroke_width(2);
                    area.draw(&PathElement::new([(x, y), (x + 9, y)], style))?;
                    area.draw(&PathElement::new([(end - 9, y), (end, y)], style))?;
                }
                Mark::Ring => area.draw(&Circle::new(
                    (x + LEGEND_MARK_WIDTH / 2, y),
                    RING_RADIUS,
                    BLACK.stroke_width(2),
                ))?,
            }
            // ab_glyph's centring sits a little high next to a 2-pixel line.
            area.draw(&Text::new(label.as_str(), (end + 6, y + 2), &text))?;
            x += entry_width + LEGEND_GAP;
        }
    }
    Ok(())
}

fn encode_png(writer: &mut dyn io::Write, pixels: &[u8]) -> io::Result<()> {
    let mut encoder = png::Encoder::new(writer, PLOT_WIDTH, PLOT_HEIGHT);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut png = encoder.write_header().map_err(io::Error::other)?;
    png.write_image_data(pixels).map_err(io::Error::other)?;
    png.finish().map_err(io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(fold: usize, epoch: usize, validation: f64) -> EpochRecord {
        EpochRecord {
            modality: "1".to_string(),
            fold,
            epoch,
            train_cross_entropy: validation,
            train_accuracy: 0.5,
            validation_cross_entropy: validation,
            validation_accuracy: 0.5,
            learning_rate: 1e-3,
            best: false,
            trial: 0,
        }
    }

    #[test]
    fn non_finite_values_break_the_line_and_stay_out_of_the_range() {
        let points = [
            (0, 1.0),
            (1, f64::NAN),
            (2, 0.5),
            (3, 0.4),
            (4, f64::INFINITY),
        ];
        let runs: Vec<_> = finite_runs(&points).collect();
        assert_eq!(runs, [&points[..1], &points[2..4]]);

        let records = [record(0, 0, 2.0), record(0, 1, f64::NAN), record(0, 2, 1.0)];
        let range = cross_entropy_range(&records, &[]);
        assert!((range.start - 0.95).abs() < 1e-12 && (range.end - 2.05).abs() < 1e-12);
        assert_eq!(cross_entropy_range(&records[1..2], &[]), 0.0..1.0);
    }

    #[test]
    fn the_reference_widens_the_range_which_stays_non_negative() {
        let records = [record(0, 0, 0.1), record(0, 1, 0.2)];
        let log_t = 2.0f64.ln();
        let pad = 0.05 * (log_t - 0.1);
        let range = cross_entropy_range(&records, &[log_t]);
        assert!((range.start - (0.1 - pad)).abs() < 1e-12, "{range:?}");
        assert!((range.end - (log_t + pad)).abs() < 1e-12, "{range:?}");

        let near_zero = [record(0, 0, 0.0), record(0, 1, 1.0)];
        assert_eq!(cross_entropy_range(&near_zero, &[]).start, 0.0);
        let constant = cross_entropy_range(&records[..1], &[]);
        assert!(constant.start < 0.1 && constant.end > 0.1, "{constant:?}");
    }

    #[test]
    fn a_single_epoch_still_spans_the_axis() {
        assert_eq!(epoch_range(&[record(0, 0, 1.0)]), 0..1);
        assert_eq!(epoch_range(&[record(0, 5, 1.0)]), 4..6);
        assert_eq!(epoch_range(&[record(0, 1, 1.0), record(1, 9, 1.0)]), 1..9);
    }

    #[test]
    fn the_kept_checkpoint_is_the_last_best_epoch_of_each_fold() {
        let mut records = vec![record(1, 2, 0.8), record(1, 0, 1.0), record(1, 1, 0.9)];
        records[1].best = true;
        records[2].best = true;
        let mut other = record(0, 0, 1.2);
        other.modality = "RNA".to_string();
        records.push(other);
        let modalities = curves_by_modality(&records);
        assert_eq!(modalities.len(), 2);
        assert_eq!(modalities[0].0, "1");
        let curve = &modalities[0].1[0];
        assert_eq!(curve.fold, 1);
        assert_eq!(curve.points, [(0, 1.0), (1, 0.9), (2, 0.8)]);
        assert_eq!(curve.kept, Some((1, 0.9)));
        assert_eq!(modalities[1].0, "RNA");
        assert_eq!(modalities[1].1[0].kept, None);
    }

    #[test]
    fn only_the_trial_that_scored_is_drawn() {
        let mut records = Vec::new();
        for trial in 0..3 {
            for epoch in 0..2 {
                let mut r = record(0, epoch, 1.0 + trial as f64);
                r.trial = trial;
                records.push(r);
            }
        }
        records[3].best = true; // trial 1, epoch 1
        let drawn = scored_trials(&records);
        assert_eq!(drawn.len(), 2);
        assert!(drawn.iter().all(|r| r.trial == 1));
        records[3].best = false;
        assert!(scored_trials(&records).iter().all(|r| r.trial == 2));
    }
}

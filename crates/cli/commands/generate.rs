//! `psa generate`: the paper's synthetic interventional images (Sec. 6.1, App. D.3), or their
//! fast tabular analogue, written as files NumPy and `psa match` read, ground truth included.
//!
//! `DIR` receives, for each modality `E` = 1, 2, rows in that modality's own random order:
//!
//! * `xE.npy`: float32 observations — images `n × 3 × H × W` in [0, 1], tables `n × d`;
//! * `labelsE.npy`: int64 `n × 1`, the group `t` (`--labels1` of `psa match`);
//! * `idsE.npy`: the unit ids as NumPy strings (`u000123`); equal ids are the same unit
//!   (`--ids1`);
//! * `latentsE.npy`: float64 `n × 4`, the objects' positions `z` (`--latents1`);
//!
//! and `generate.json`: the settings and the intervention behind each label. The directory
//! appears complete or not at all ([`OutputDir`]), and a data set too large for the machine's
//! memory is refused before it is drawn. The generators are `psa_core::synthetic`'s; this file
//! parses flags and writes files.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Result;
use clap::{Args, Subcommand};
use ndarray::{Array, Array2, Dimension};
use psa_core::synthetic::{ImageConfig, Paired, TabularConfig, generate_images, generate_tabular};
use psa_io::{IoError, OutputDir};
use serde::Serialize;
use serde_json::json;

use crate::logging;

#[derive(Debug, Args)]
pub struct GenerateArgs {
    #[command(subcommand)]
    pub data: DataSet,
}

#[derive(Debug, Subcommand)]
pub enum DataSet {
    /// The paper's images: two objects at positions z ∈ R⁴, 12 groups (do(z_k = v) for each
    /// coordinate k and v ∈ {0.25, 0.5, 0.75}); circles at z in modality 1, squares at a fixed
    /// transformation of z in modality 2, each over its own random background.
    Images(ImagesArgs),
    /// The same latents and groups, each modality a fixed random tanh network of z plus
    /// Gaussian noise: a tabular analogue that needs no image model.
    Tabular(TabularArgs),
}

/// Flags both data sets take.
#[derive(Debug, Args)]
pub struct CommonArgs {
    /// Units per group; each unit is observed once in each modality (12 groups).
    #[arg(long, value_name = "N", default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..))]
    pub n_per_group: u64,
    /// Output directory, replaced as a whole when the data are written.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Replace DIR even if it holds files psa did not write (they are deleted).
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub seed: crate::flags::SeedArg,
}

#[derive(Debug, Args)]
pub struct ImagesArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Image height and width in pixels.
    #[arg(long, value_name = "PIXELS", default_value_t = 32, value_parser = clap::value_parser!(u64).range(4..=512))]
    pub size: u64,
    /// Strength of the background distortion: the opacity of the random background discs, from
    /// 0 (blank white background) to 1 (the paper's opaque discs).
    #[arg(long, value_name = "X", default_value_t = 1.0, value_parser = fraction)]
    pub noise: f64,
    /// Background discs per image.
    #[arg(long, value_name = "K", default_value_t = 25)]
    pub blobs: u64,
}

#[derive(Debug, Args)]
pub struct TabularArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Features of modality 1.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..))]
    pub d1: u64,
    /// Features of modality 2.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub d2: u64,
    /// Hidden units of each modality's random network.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..))]
    pub hidden: u64,
    /// Standard deviation of the Gaussian modality noise (features have variance ≈ 0.5).
    #[arg(long, value_name = "SD", default_value_t = 0.1, value_parser = non_negative)]
    pub noise: f64,
    /// Seed of the two fixed networks (kept apart from --seed, so that data sets drawn with
    /// different seeds are measured the same way).
    #[arg(long, default_value_t = 0)]
    pub map_seed: u64,
}

pub fn run(args: GenerateArgs) -> Result<()> {
    let start = Instant::now();
    match args.data {
        DataSet::Images(args) => {
            let pixels = u128::from(3 * args.size * args.size);
            let option = format!("--n-per-group {}", args.common.n_per_group);
            ensure_memory(&option, args.common.n_per_group, 2 * pixels * 4, 0)?;
            let out = OutputDir::create(&args.common.out, args.common.force)?;
            let config = ImageConfig {
                n_per_group: args.common.n_per_group as usize,
                size: args.size as usize,
                noise: args.noise,
                blobs: args.blobs as usize,
                seed: args.common.seed.seed,
                ..ImageConfig::default()
            };
            let data = generate_images(&config);
            log_generated(&data, start);
            write(out, "images", &config, &data, write_npy_f32)?;
            report(&args.common.out, "images", &data, start, |x| x.shape());
        }
        DataSet::Tabular(args) => {
            // x1 and x2 as float32, and while a modality is drawn, its hidden layer and x in f64;
            // the maps' weights (4 × hidden, hidden × d) do not grow with the units.
            let (d1, d2, hidden) = (
                u128::from(args.d1),
                u128::from(args.d2),
                u128::from(args.hidden),
            );
            let x_bytes = (d1 + d2) * 4 + (hidden + d1.max(d2)) * 8;
            let maps = hidden.saturating_mul(5 + d1 + d2).saturating_mul(8);
            let option = format!(
                "--n-per-group {} (with --d1 {}, --d2 {}, --hidden {})",
                args.common.n_per_group, args.d1, args.d2, args.hidden
            );
            ensure_memory(&option, args.common.n_per_group, x_bytes, maps)?;
            let out = OutputDir::create(&args.common.out, args.common.force)?;
            let config = TabularConfig {
                n_per_group: args.common.n_per_group as usize,
                d1: args.d1 as usize,
                d2: args.d2 as usize,
                hidden: args.hidden as usize,
                noise: args.noise,
                seed: args.common.seed.seed,
                map_seed: args.map_seed,
                ..TabularConfig::default()
            };
            let data = generate_tabular(&config);
            log_generated(&data, start);
            let write_x = |path: &Path, x: &Array2<f32>| psa_io::write_npy_f32(path, x.view());
            write(out, "tabular", &config, &data, write_x)?;
            report(&args.common.out, "tabular", &data, start, |x| x.shape());
        }
    }
    Ok(())
}

/// Refuses a data set that would not fit in memory, before anything is drawn or allocated:
/// `x_bytes` per unit for x1 and x2 (and what drawing them holds) plus the latents, labels and
/// ids every unit has, for `n_per_group` units in each group, and `fixed` bytes besides.
/// `option` names the flags that decide the size. (u128: flags are u64, their products are not.)
fn ensure_memory(option: &str, n_per_group: u64, x_bytes: u128, fixed: u128) -> Result<()> {
    // Per unit: z and each modality's latents (3 × 4 f64), two int64 labels, two ids (a String
    // of 7 characters: 24 bytes + 8 on the heap).
    const OTHER_BYTES: u128 = 3 * 4 * 8 + 2 * 8 + 2 * 32;
    let groups = (4 * psa_core::synthetic::interventions::DO_VALUES.len()) as u128;
    let needed = u128::from(n_per_group)
        .checked_mul(groups * (x_bytes + OTHER_BYTES))
        .and_then(|bytes| bytes.checked_add(fixed))
        .and_then(|bytes| u64::try_from(bytes).ok());
    psa_io::ensure_memory(
        option,
        "x1.npy and x2.npy (with labels, ids and latents)",
        needed,
    )?;
    Ok(())
}

fn log_generated<X>(data: &Paired<X>, start: Instant) {
    tracing::info!(
        "generated {} units in each modality in {:.2} s",
        data.modality1.len(),
        start.elapsed().as_secs_f64()
    );
}

/// Writes both modalities and `generate.json` into `out` and commits it: all or nothing.
fn write<X>(
    out: OutputDir,
    kind: &str,
    config: &impl Serialize,
    data: &Paired<X>,
    write_x: impl Fn(&Path, &X) -> Result<(), IoError>,
) -> Result<()> {
    for (e, m) in [(1, &data.modality1), (2, &data.modality2)] {
        write_x(&out.path(format!("x{e}.npy")), &m.x)?;
        let labels = Array2::from_shape_vec((m.len(), 1), m.labels.clone())?;
        psa_io::write_npy_i64(&out.path(format!("labels{e}.npy")), labels.view())?;
        write_npy_strings(&out.path(format!("ids{e}.npy")), &m.ids)?;
        psa_io::write_npy_f64(&out.path(format!("latents{e}.npy")), m.latents.view())?;
    }
    let groups: Vec<_> = data
        .interventions
        .iter()
        .enumerate()
        .map(|(label, i)| json!({"label": label, "coordinate": i.coordinate, "value": i.value}))
        .collect();
    let settings = json!({
        "psa_version": env!("CARGO_PKG_VERSION"),
        "data": kind,
        "config": config,
        "latents": ["x1", "y1", "x2", "y2"],
        "groups": groups,
    });
    psa_io::write_json(&out.path("generate.json"), &settings)?;
    out.commit()?;
    Ok(())
}

fn report<X>(
    dir: &Path,
    kind: &str,
    data: &Paired<X>,
    start: Instant,
    shape: impl Fn(&X) -> &[usize],
) {
    let dims = |x: &X| {
        let text: Vec<String> = shape(x).iter().map(usize::to_string).collect();
        text.join(" × ")
    };
    logging::suspend(|| {
        println!(
            "psa generate {kind}: {} groups × {} units; x1 {}, x2 {} (float32) with labels, ids \
             and latents written to {} in {:.2} s",
            data.interventions.len(),
            data.modality1.len() / data.interventions.len().max(1),
            dims(&data.modality1.x),
            dims(&data.modality2.x),
            dir.display(),
            start.elapsed().as_secs_f64()
        )
    });
}

/// Writes a float32 array of any dimension as `.npy` (psa-io's writers take matrices only).
fn write_npy_f32<D: Dimension>(path: &Path, x: &Array<f32, D>) -> Result<(), IoError> {
    let x = x.as_standard_layout();
    let data = x
        .as_slice()
        .expect("a standard-layout array is one contiguous slice");
    psa_io::write_atomic(path, |writer| {
        writer.write_all(&npy_header("<f4", x.shape())?)?;
        let mut bytes = Vec::with_capacity(1 << 16);
        for chunk in data.chunks(1 << 14) {
            bytes.clear();
            bytes.extend(chunk.iter().flat_map(|v| v.to_le_bytes()));
            writer.write_all(&bytes)?;
        }
        Ok(())
    })
}

/// Writes strings as a 1-D `.npy` array of NumPy's fixed-width unicode (`<U…`, UTF-32), which
/// `numpy.load` reads without pickling and `psa match --ids1` reads as ids.
fn write_npy_strings(path: &Path, values: &[String]) -> Result<(), IoError> {
    let width = values
        .iter()
        .map(|v| v.chars().count())
        .max()
        .unwrap_or(0)
        .max(1);
    psa_io::write_atomic(path, |writer| {
        writer.write_all(&npy_header(&format!("<U{width}"), &[values.len()])?)?;
        for value in values {
            let mut item = vec![0u8; 4 * width];
            for (slot, c) in item.chunks_exact_mut(4).zip(value.chars()) {
                slot.copy_from_slice(&(c as u32).to_le_bytes());
            }
            writer.write_all(&item)?;
        }
        Ok(())
    })
}

/// A version 1.0 `.npy` header: magic, length, and a dict literal padded with spaces to a
/// 64-byte boundary and ended by a newline; the data follow in C order.
fn npy_header(descr: &str, shape: &[usize]) -> io::Result<Vec<u8>> {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let shape = match dims.as_slice() {
        [one] => format!("({one},)"),
        _ => format!("({})", dims.join(", ")),
    };
    let mut dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    const PREFIX: usize = 10; // magic (6), version (2), header length (2)
    let unpadded = PREFIX + dict.len() + 1;
    dict.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    dict.push('\n');
    let length = u16::try_from(dict.len()).map_err(io::Error::other)?;
    let mut header = b"\x93NUMPY\x01\x00".to_vec();
    header.extend(length.to_le_bytes());
    header.extend(dict.bytes());
    Ok(header)
}

fn non_negative(text: &str) -> Result<f64, String> {
    let v: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(format!("must be a finite number ≥ 0, got {text}"))
    }
}

fn fraction(text: &str) -> Result<f64, String> {
    let v = non_negative(text)?;
    if v <= 1.0 {
        Ok(v)
    } else {
        Err(format!("must be in [0, 1], got {text}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_headers_are_aligned_and_name_the_shape() {
        for shape in [&[3][..], &[2, 3], &[20400, 3, 32, 32]] {
            let header = npy_header("<f4", shape).unwrap();
            assert_eq!(header.len() % 64, 0);
            assert_eq!(*header.last().unwrap(), b'\n');
            let text = String::from_utf8_lossy(&header[10..]).into_owned();
            let want = match shape {
                [n] => format!("({n},)"),
                _ => format!(
                    "({})",
                    shape
                        .iter()
                        .map(|d| d.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            assert!(text.contains(&format!("'shape': {want}")), "{text}");
        }
    }
}

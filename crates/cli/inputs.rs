//! Reading one modality's raw inputs for the classifiers: a feature matrix (`.npy`, `.csv`,
//! AnnData `.h5ad`) or an image stack (`.npy`, `n × C × H × W`, or `n × H × W × C` with
//! `--channels-last`), plus labels and unit ids that may live in the `.h5ad`'s `obs`.

use std::path::Path;

use anyhow::{Context, Result, bail};
use ndarray::{ArrayD, Axis, Ix2, Ix3, Ix4};
use psa_io::LabelSource;
use psa_learn::Features;

use crate::flags::H5adChoice;

/// Reads features or images, checked finite; the error names the file and the row.
pub fn read_features(path: &Path, h5ad: &H5adChoice, channels_last: bool) -> Result<Features> {
    let features = if psa_io::is_h5ad(path) {
        let x = psa_io::read_h5ad_matrix(path, &h5ad.matrix())?;
        Features::from_matrix(x.view())
    } else {
        if h5ad.is_set() {
            bail!(
                "{}: --layer and --obsm apply to .h5ad files only",
                path.display()
            );
        }
        if path.extension().and_then(|e| e.to_str()) == Some("npy") {
            read_npy_features(path, channels_last)?
        } else {
            Features::from_matrix(psa_io::read_matrix(path)?.view())
        }
    };
    if let Some((row, column)) = features.first_non_finite() {
        bail!(
            "{}: row {row}: value {} is not finite (NaN or ±inf); remove or impute it",
            path.display(),
            describe_position(&features, column)
        );
    }
    if features.rows() == 0 {
        bail!("{}: no rows", path.display());
    }
    Ok(features)
}

fn describe_position(features: &Features, column: usize) -> String {
    match features.shape() {
        psa_learn::InputShape::Flat { .. } => format!("in column {column}"),
        psa_learn::InputShape::Image { height, width, .. } => {
            let (c, rest) = (column / (height * width), column % (height * width));
            format!("at channel {c}, y {}, x {}", rest / width, rest % width)
        }
    }
}

/// An `.npy` of 2 (features), 3 (`n × H × W`, one channel) or 4 (images) dimensions.
fn read_npy_features(path: &Path, channels_last: bool) -> Result<Features> {
    let array = read_npy_any(path)?;
    let shape = array.shape().to_vec();
    match shape.len() {
        2 => {
            let x = array
                .into_dimensionality::<Ix2>()
                .expect("checked: two dimensions");
            Ok(Features::from_matrix(x.mapv(f64::from).view()))
        }
        3 => {
            let x = array
                .into_dimensionality::<Ix3>()
                .expect("checked: three dimensions")
                .insert_axis(Axis(1));
            Ok(Features::from_images(x.view()))
        }
        4 => {
            let mut x = array
                .into_dimensionality::<Ix4>()
                .expect("checked: four dimensions");
            if channels_last {
                x = x.permuted_axes([0, 3, 1, 2]);
            } else if shape[3] <= 4 && shape[1] > 4 && shape[2] != shape[3] {
                // n × H × W × C with few channels, read as n × C × H × W, has many "channels"
                // and non-square "images".
                bail!(
                    "{}: image stack of shape {:?} looks channels-last (n × H × W × C); \
                     pass --channels-last, or transpose it to n × C × H × W",
                    path.display(),
                    shape
                );
            }
            let x = x.as_standard_layout();
            Ok(Features::from_images(x.view()))
        }
        d => bail!(
            "{}: expected a matrix (n × d) or an image stack (n × C × H × W), found {d} dimensions {:?}",
            path.display(),
            shape
        ),
    }
}

fn read_npy_any(path: &Path) -> Result<ArrayD<f32>> {
    use ndarray_npy::ReadNpyExt;
    let open =
        || std::fs::File::open(path).with_context(|| format!("{}: cannot open", path.display()));
    if let Ok(x) = ArrayD::<f32>::read_npy(open()?) {
        return Ok(x);
    }
    match ArrayD::<f64>::read_npy(open()?) {
        Ok(x) => Ok(x.mapv(|v| v as f32)),
        Err(err) => bail!(
            "{}: not a float32/float64 .npy array ({err})",
            path.display()
        ),
    }
}

/// Labels from `obs:COLUMN` of the modality's `.h5ad`, or from a file (`FILE[:COLUMN]`).
pub fn read_labels(spec: &str, data: &Path) -> Result<Vec<String>> {
    match spec.strip_prefix("obs:") {
        Some(column) => {
            require_h5ad(spec, data)?;
            Ok(psa_io::read_h5ad_obs_column(data, column)?)
        }
        None => Ok(LabelSource::parse(spec).read_labels()?),
    }
}

/// Unit ids from `obs_names` or `obs:COLUMN` of the `.h5ad`, or from a file.
pub fn read_ids(spec: &str, data: &Path) -> Result<Vec<String>> {
    if spec == "obs_names" {
        require_h5ad(spec, data)?;
        return Ok(psa_io::read_h5ad_obs_names(data)?);
    }
    match spec.strip_prefix("obs:") {
        Some(column) => {
            require_h5ad(spec, data)?;
            Ok(psa_io::read_h5ad_obs_column(data, column)?)
        }
        None => Ok(LabelSource::parse(spec).read_ids()?),
    }
}

/// The file a label or id spec reads (`None` for `obs:…` and `obs_names`, which read the
/// modality's `.h5ad`).
pub fn file_of_spec(spec: &str) -> Option<std::path::PathBuf> {
    if spec == "obs_names" || spec.starts_with("obs:") {
        None
    } else {
        Some(LabelSource::parse(spec).path)
    }
}

fn require_h5ad(spec: &str, data: &Path) -> Result<()> {
    if psa_io::is_h5ad(data) {
        Ok(())
    } else {
        bail!(
            "{spec:?} refers to an AnnData obs table, but {} is not an .h5ad file",
            data.display()
        )
    }
}

//! psa's matches as an AnnData file, `matches.h5ad`: one `obs` row per modality-1 row, so that a
//! scanpy user attaches the results to their own AnnData by name, in one line:
//!
//! ```python
//! m = anndata.read_h5ad("out/matches.h5ad")
//! adata.obsm["psa"] = m[adata.obs_names].obsm["psa_projection"]
//! ```
//!
//! The file is laid out as anndata 0.12 writes one (its "on-disk format" page, encoding versions
//! included): a `dataframe` group for `obs` (`psa_label` categorical, `psa_partner` strings,
//! `psa_partner_weight` float32) and an empty `var` (no genes: the matches describe cells), `obsm`
//! arrays (gzip-compressed, chunked by rows), `uns/psa` a JSON string, empty `layers`, `obsp`,
//! `varm`, `varp`, and no `X` (anndata reads it as `X = None`, an `n × 0` AnnData). The bytes are
//! streamed into a temporary file beside the target and renamed over it, like every writer of
//! psa-io.

use std::io;
use std::path::Path;

use hdf5_pure::{AttrValue, DatasetBuilder, FileBuilder, GroupBuilder};
use ndarray::ArrayView2;

use crate::error::IoError;
use crate::write::write_atomic;

/// Rows of an `obsm` chunk aim at this many bytes (anndata leaves chunking to h5py, which aims at
/// a few hundred KB).
const CHUNK_BYTES: usize = 256 << 10;
/// gzip level of the `obsm` arrays: most of the size gain of level 9 at a fraction of the time.
const GZIP_LEVEL: u32 = 4;

/// The results of one matching, row by row for modality 1, as [`write_matches_h5ad`] writes them.
#[derive(Debug, Clone, Copy)]
pub struct Matches<'a> {
    /// `obs_names`: the ids of the modality-1 rows, in input order (`n1`).
    pub obs_names: &'a [String],
    /// The label `t` of each modality-1 row: `obs["psa_label"]`, categorical.
    pub labels: &'a [String],
    /// The ids of the modality-2 rows, which `topk_index` indexes: `obs["psa_partner"]` is the id
    /// of each row's top partner.
    pub partner_names: &'a [String],
    /// `n1 × k` modality-2 rows of the `k` largest `P(j|i)`, largest first, −1 padded (also for
    /// unmatched rows): `obsm["psa_topk_index"]`, int64.
    pub topk_index: ArrayView2<'a, i64>,
    /// The matching `P(j|i)`: `obsm["psa_topk_weight"]`, float32.
    pub topk_weight: ArrayView2<'a, f32>,
    /// `n1 × d` barycentric projection of modality-2 features: `obsm["psa_projection"]`, float64.
    pub projection: Option<ArrayView2<'a, f64>>,
    /// psa's options, written with psa's version as `uns["psa"]`, a JSON string
    /// `{"psa_version": ..., "options": ...}`.
    pub options: &'a serde_json::Value,
}

/// Writes `matches` as an AnnData file at `path`, atomically (a temporary file beside it, renamed
/// over it when complete).
///
/// `obs["psa_partner"]` is the id of the top modality-2 partner (`topk_index[i, 0]`), empty for a
/// row without one; `obs["psa_partner_weight"]` its `P(j|i)` (0 for a row without one). Inputs
/// whose sizes disagree, or a `topk_index` entry outside `−1 .. n2`, are an error naming the
/// array, before anything is written.
pub fn write_matches_h5ad(path: &Path, matches: &Matches) -> Result<(), IoError> {
    check(path, matches)?;
    let builder = build(matches);
    write_atomic(path, |writer| {
        builder.finish_to(writer).map_err(io::Error::other)
    })?;
    let (rows, path) = (matches.obs_names.len(), path.display());
    tracing::debug!(%path, rows, "wrote matches.h5ad");
    Ok(())
}

/// Writes cross-modal predictions as an AnnData file at `path` (atomically): `obs_names` of the
/// rows they were predicted for, `obsm["psa_prediction"]` (float64, `n × d`), `uns["psa"]` with
/// psa's version and `options`, no `X` — what `psa apply` writes beside its `.npy` when the rows
/// came from an `.h5ad`, so the predictions attach by name like `matches.h5ad`.
pub fn write_predictions_h5ad(
    path: &Path,
    obs_names: &[String],
    prediction: ArrayView2<'_, f64>,
    options: &serde_json::Value,
) -> Result<(), IoError> {
    if prediction.nrows() != obs_names.len() {
        return Err(IoError::H5ad {
            path: path.to_path_buf(),
            key: "obsm/psa_prediction".into(),
            message: format!(
                "{} rows for {} obs names",
                prediction.nrows(),
                obs_names.len()
            ),
        });
    }
    let mut file = FileBuilder::new();
    file.set_attr("encoding-type", text("anndata"));
    file.set_attr("encoding-version", text("0.1.0"));
    let group = frame(&mut file, "obs", obs_names.iter().map(String::as_str), &[]).finish();
    file.add_group(group);
    let group = var(&mut file).finish();
    file.add_group(group);
    let mut group = dict(&mut file, "obsm");
    let values = prediction.as_standard_layout();
    let dataset = group.create_dataset("psa_prediction");
    let dataset = chunked(dataset.with_f64_data(slice(&values)), values.dim(), 8);
    encode(dataset, "array", "0.2.0");
    file.add_group(group.finish());
    for name in ["layers", "obsp", "varm", "varp"] {
        let group = dict(&mut file, name).finish();
        file.add_group(group);
    }
    let group = uns_json(&mut file, options).finish();
    file.add_group(group);
    write_atomic(path, |writer| {
        file.finish_to(writer).map_err(io::Error::other)
    })
}

fn check(path: &Path, m: &Matches) -> Result<(), IoError> {
    let error = |key: &str, message: String| IoError::H5ad {
        path: path.to_path_buf(),
        key: key.to_owned(),
        message,
    };
    let n1 = m.obs_names.len();
    let rows = |key: &str, found: usize| {
        if found == n1 {
            Ok(())
        } else {
            Err(error(key, format!("{found} rows for {n1} obs names")))
        }
    };
    rows("obs/psa_label", m.labels.len())?;
    rows("obsm/psa_topk_index", m.topk_index.nrows())?;
    rows("obsm/psa_topk_weight", m.topk_weight.nrows())?;
    if let Some(projection) = m.projection {
        rows("obsm/psa_projection", projection.nrows())?;
    }
    if m.topk_weight.dim() != m.topk_index.dim() {
        let (index, weight) = (m.topk_index.dim(), m.topk_weight.dim());
        let message = format!("shape {weight:?}, but psa_topk_index has {index:?}");
        return Err(error("obsm/psa_topk_weight", message));
    }
    let n2 = m.partner_names.len() as i64;
    if let Some(((row, column), &index)) = m
        .topk_index
        .indexed_iter()
        .find(|(_, index)| !(-1..n2).contains(*index))
    {
        let message = format!("row {row}, column {column} is {index}, outside -1..{n2}");
        return Err(error("obsm/psa_topk_index", message));
    }
    Ok(())
}

fn build(m: &Matches) -> FileBuilder {
    let mut file = FileBuilder::new();
    file.set_attr("encoding-type", text("anndata"));
    file.set_attr("encoding-version", text("0.1.0"));
    let group = obs(&mut file, m).finish();
    file.add_group(group);
    let group = var(&mut file).finish();
    file.add_group(group);
    let group = obsm(&mut file, m).finish();
    file.add_group(group);
    for name in ["layers", "obsp", "varm", "varp"] {
        let group = dict(&mut file, name).finish();
        file.add_group(group);
    }
    let group = uns(&mut file, m).finish();
    file.add_group(group);
    file
}

fn text(value: &str) -> AttrValue {
    AttrValue::VarLenString(value.to_owned())
}

fn encode(dataset: &mut DatasetBuilder, kind: &str, version: &str) {
    dataset.set_attr("encoding-type", text(kind));
    dataset.set_attr("encoding-version", text(version));
}

fn encode_group(group: &mut GroupBuilder, kind: &str, version: &str) {
    group.set_attr("encoding-type", text(kind));
    group.set_attr("encoding-version", text(version));
}

/// An empty `dict` group (`layers`, `obsp`, ...), as anndata writes one.
fn dict(file: &mut FileBuilder, name: &str) -> GroupBuilder {
    let mut group = file.create_group(name);
    encode_group(&mut group, "dict", "0.1.0");
    group
}

fn strings<'a>(group: &mut GroupBuilder, name: &str, values: impl Iterator<Item = &'a str>) {
    let values: Vec<&str> = values.collect();
    let dataset = group.create_dataset(name).with_vlen_strings(&values);
    encode(dataset, "string-array", "0.2.0");
}

/// A `dataframe` group with an `_index` column, as anndata writes one.
fn frame<'a>(
    file: &mut FileBuilder,
    name: &str,
    index: impl Iterator<Item = &'a str>,
    columns: &[&str],
) -> GroupBuilder {
    let mut group = file.create_group(name);
    encode_group(&mut group, "dataframe", "0.2.0");
    group.set_attr("_index", text("_index"));
    let order = if columns.is_empty() {
        // What anndata writes for a frame without columns: an empty float64 array.
        AttrValue::F64Array(Vec::new())
    } else {
        AttrValue::VarLenStringArray(columns.iter().map(|c| (*c).to_owned()).collect())
    };
    group.set_attr("column-order", order);
    strings(&mut group, "_index", index);
    group
}

fn obs(file: &mut FileBuilder, m: &Matches) -> GroupBuilder {
    let columns = ["psa_label", "psa_partner", "psa_partner_weight"];
    let names = m.obs_names.iter().map(String::as_str);
    let mut group = frame(file, "obs", names, &columns);
    let label = categorical(&mut group, "psa_label", m.labels).finish();
    group.add_group(label);
    let top = |row: usize| match m.topk_index.ncols() {
        0 => None,
        _ => usize::try_from(m.topk_index[[row, 0]]).ok(),
    };
    let partners = (0..m.obs_names.len()).map(|row| top(row).map_or("", |j| &m.partner_names[j]));
    strings(&mut group, "psa_partner", partners);
    let weights: Vec<f32> = (0..m.obs_names.len())
        .map(|row| top(row).map_or(0.0, |_| m.topk_weight[[row, 0]]))
        .collect();
    let dataset = group
        .create_dataset("psa_partner_weight")
        .with_f32_data(&weights);
    encode(dataset, "array", "0.2.0");
    group
}

/// A pandas categorical: sorted unique categories and the smallest integer codes that hold them.
fn categorical(parent: &mut GroupBuilder, name: &str, values: &[String]) -> GroupBuilder {
    let mut categories: Vec<&str> = values.iter().map(String::as_str).collect();
    categories.sort_unstable();
    categories.dedup();
    let code = |value: &String| categories.binary_search(&value.as_str()).unwrap_or(0);
    let mut group = parent.create_group(name);
    encode_group(&mut group, "categorical", "0.2.0");
    // pandas' `ordered=False`; anndata writes a NumPy bool and reads it back with `bool()`.
    group.set_attr("ordered", AttrValue::I8(0));
    strings(&mut group, "categories", categories.iter().copied());
    let codes = group.create_dataset("codes");
    let codes = if categories.len() <= i8::MAX as usize {
        codes.with_i8_data(&values.iter().map(|v| code(v) as i8).collect::<Vec<_>>())
    } else if categories.len() <= i16::MAX as usize {
        codes.with_i16_data(&values.iter().map(|v| code(v) as i16).collect::<Vec<_>>())
    } else {
        codes.with_i32_data(&values.iter().map(|v| code(v) as i32).collect::<Vec<_>>())
    };
    encode(codes, "array", "0.2.0");
    group
}

fn var(file: &mut FileBuilder) -> GroupBuilder {
    frame(file, "var", std::iter::empty(), &[])
}

fn obsm(file: &mut FileBuilder, m: &Matches) -> GroupBuilder {
    let mut group = dict(file, "obsm");
    let index = m.topk_index.as_standard_layout();
    let dataset = group.create_dataset("psa_topk_index");
    let dataset = chunked(dataset.with_i64_data(slice(&index)), index.dim(), 8);
    encode(dataset, "array", "0.2.0");
    let weight = m.topk_weight.as_standard_layout();
    let dataset = group.create_dataset("psa_topk_weight");
    let dataset = chunked(dataset.with_f32_data(slice(&weight)), weight.dim(), 4);
    encode(dataset, "array", "0.2.0");
    if let Some(projection) = m.projection {
        let projection = projection.as_standard_layout();
        let dataset = group.create_dataset("psa_projection");
        let dataset = chunked(
            dataset.with_f64_data(slice(&projection)),
            projection.dim(),
            8,
        );
        encode(dataset, "array", "0.2.0");
    }
    group
}

/// The values of a standard-layout array, in order.
fn slice<'a, T>(array: &'a ndarray::CowArray<'_, T, ndarray::Ix2>) -> &'a [T] {
    // `as_standard_layout` gives a contiguous row-major array.
    array.as_slice().expect("standard layout")
}

/// Shapes a 2-D dataset and, when it has any values, chunks it by rows and compresses it.
fn chunked(
    dataset: &mut DatasetBuilder,
    (rows, columns): (usize, usize),
    element: usize,
) -> &mut DatasetBuilder {
    dataset.with_shape(&[rows as u64, columns as u64]);
    if rows == 0 || columns == 0 {
        return dataset;
    }
    let chunk_rows = (CHUNK_BYTES / (columns * element)).clamp(1, rows);
    dataset
        .with_chunks(&[chunk_rows as u64, columns as u64])
        .with_deflate(GZIP_LEVEL)
}

fn uns(file: &mut FileBuilder, m: &Matches) -> GroupBuilder {
    uns_json(file, m.options)
}

/// `uns["psa"]`: `{"psa_version": ..., "options": ...}` as a JSON string.
fn uns_json(file: &mut FileBuilder, options: &serde_json::Value) -> GroupBuilder {
    let mut group = dict(file, "uns");
    let psa = serde_json::json!({
        "psa_version": env!("CARGO_PKG_VERSION"),
        "options": options,
    });
    // A scalar string, as anndata writes a Python `str` in `uns`.
    let dataset = group
        .create_dataset("psa")
        .with_vlen_strings(&[&psa.to_string()])
        .with_shape(&[]);
    encode(dataset, "string", "0.2.0");
    group
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h5ad::{H5adFile, H5adMatrix};
    use crate::testutil::entries;
    use ndarray::{Array2, array};

    fn strings(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| (*v).to_owned()).collect()
    }

    struct Fixture {
        names: Vec<String>,
        labels: Vec<String>,
        partners: Vec<String>,
        index: Array2<i64>,
        weight: Array2<f32>,
        options: serde_json::Value,
    }

    fn fixture() -> Fixture {
        Fixture {
            names: strings(&["c1", "c2", "c3"]),
            labels: strings(&["b", "a", "b"]),
            partners: strings(&["p0", "p1"]),
            index: array![[1, 0], [0, -1], [-1, -1]],
            weight: array![[0.75, 0.25], [1.0, 0.0], [0.0, 0.0]],
            options: serde_json::json!({"epsilon": 0.05}),
        }
    }

    fn matches(f: &Fixture) -> Matches<'_> {
        Matches {
            obs_names: &f.names,
            labels: &f.labels,
            partner_names: &f.partners,
            topk_index: f.index.view(),
            topk_weight: f.weight.view(),
            projection: None,
            options: &f.options,
        }
    }

    #[test]
    fn matches_read_back_row_by_row_and_leave_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("matches.h5ad");
        std::fs::write(&path, "an older run").unwrap();
        let f = fixture();
        write_matches_h5ad(&path, &matches(&f)).unwrap();
        assert_eq!(entries(dir.path()), ["matches.h5ad"]);
        let file = H5adFile::open(&path).unwrap();
        assert_eq!(file.obs_names().unwrap(), f.names);
        assert_eq!(file.obs_column("psa_label").unwrap(), f.labels);
        let partner = file.obs_column("psa_partner").unwrap_err().to_string();
        assert!(partner.ends_with("obs/psa_partner: row 2 (0-based) is an empty string"));
        let index = file
            .matrix(&H5adMatrix::Obsm("psa_topk_index".into()))
            .unwrap();
        assert_eq!(index, f.index.mapv(|i| i as f64));
        let weight = file
            .matrix(&H5adMatrix::Obsm("psa_topk_weight".into()))
            .unwrap();
        assert_eq!(weight, f.weight.mapv(f64::from));
        assert_eq!(file.obsm().unwrap(), ["psa_topk_index", "psa_topk_weight"]);
    }

    #[test]
    fn inconsistent_inputs_are_refused_naming_the_array_and_write_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("matches.h5ad");
        let mut f = fixture();
        f.index[[1, 1]] = 2;
        let err = write_matches_h5ad(&path, &matches(&f))
            .unwrap_err()
            .to_string();
        assert!(
            err.ends_with("obsm/psa_topk_index: row 1, column 1 is 2, outside -1..2"),
            "{err}"
        );
        let mut f = fixture();
        f.labels.pop();
        let err = write_matches_h5ad(&path, &matches(&f))
            .unwrap_err()
            .to_string();
        assert!(
            err.ends_with("obs/psa_label: 2 rows for 3 obs names"),
            "{err}"
        );
        let f = fixture();
        let projection = Array2::<f64>::zeros((2, 4));
        let m = Matches {
            projection: Some(projection.view()),
            ..matches(&f)
        };
        let err = write_matches_h5ad(&path, &m).unwrap_err().to_string();
        assert!(
            err.ends_with("obsm/psa_projection: 2 rows for 3 obs names"),
            "{err}"
        );
        assert!(entries(dir.path()).is_empty());
    }

    #[test]
    fn categories_are_sorted_and_codes_as_narrow_as_pandas_makes_them() {
        let many: Vec<String> = (0..200).map(|i| format!("t{i:03}")).collect();
        let mut group = FileBuilder::new().create_group("obs");
        // 200 categories do not fit int8: the codes widen to int16.
        let finished = categorical(&mut group, "psa_label", &many).finish();
        let mut file = FileBuilder::new();
        let mut obs = file.create_group("obs");
        obs.add_group(finished);
        file.add_group(obs.finish());
        let bytes = file.finish().unwrap();
        let read = hdf5_pure::File::from_bytes(bytes).unwrap();
        let codes = read.dataset("obs/psa_label/codes").unwrap();
        assert_eq!(codes.dtype().unwrap(), hdf5_pure::DType::I16);
        assert_eq!(codes.read_i64().unwrap(), (0..200).collect::<Vec<i64>>());
    }
}

//! The `obs` table of an AnnData file, one text value per row: a column as labels, the index as
//! unit ids. Three layouts are read:
//!
//! * anndata ≥ 0.8: `obs` is a group (`encoding-type` = `dataframe`) whose attribute `_index`
//!   names the index column; a column is a dataset (strings, integers, booleans), a `categorical`
//!   group (`categories` and `codes`, code −1 = missing) or a `nullable-*` group (`values` and
//!   `mask`);
//! * anndata 0.7: the same, except that a categorical column is its codes, with an attribute
//!   `categories` referring to `obs/__categories/COLUMN`;
//! * anndata < 0.7 (scanpy's bundled `pbmc68k_reduced.h5ad`): `obs` is a compound dataset, one
//!   record per row, the first field the index; an integer column whose categories are stored as
//!   `uns/COLUMN_categories` is categorical, under anndata's own rule (every code below the
//!   number of categories; otherwise the integers are the values).

use hdf5_pure::Dataset;

use crate::error::{IoError, numpy_shape};
use crate::h5ad::file::{Element, H5ad, Kind};
use crate::h5ad::records::{Records, Scalar};

/// The `obs` table, in one of its layouts.
pub(crate) enum Obs {
    /// A group of columns and the name of its index column.
    Frame { index: String },
    /// A compound dataset (anndata < 0.7).
    Records(Records),
}

impl Obs {
    pub(crate) fn open(h5: &H5ad) -> Result<Self, IoError> {
        match h5.kind("obs") {
            Some(Kind::Group) => {
                let index = h5.string_attr("obs", "_index")?.ok_or_else(|| {
                    h5.error("obs", "no _index attribute naming the column of obs names")
                })?;
                Ok(Obs::Frame { index })
            }
            Some(Kind::Dataset) => match Records::open(h5, "obs")? {
                Some(records) if !records.names().is_empty() => Ok(Obs::Records(records)),
                _ => Err(h5.error("obs", "a dataset that is not a table of records")),
            },
            None => Err(h5.error("obs", "not in the file")),
        }
    }

    /// The columns a user can choose: all but the index (and anndata 0.7's `__categories`).
    pub(crate) fn columns(&self, h5: &H5ad) -> Vec<String> {
        match self {
            Obs::Frame { index } => {
                let mut names = h5.members("obs");
                names.retain(|name| name != index && !name.starts_with("__"));
                names
            }
            Obs::Records(records) => records.names().into_iter().skip(1).collect(),
        }
    }

    /// `adata.obs_names`.
    pub(crate) fn names(&self, h5: &H5ad) -> Result<Vec<String>, IoError> {
        match self {
            Obs::Frame { index } => nonempty(h5, &format!("obs/{index}"), read_column(h5, index)?),
            Obs::Records(records) => {
                let index = &records.names()[0];
                nonempty(h5, "obs", read_record_column(h5, records, index, None)?)
            }
        }
    }

    /// One column; `None` when `obs` has no such column.
    pub(crate) fn column(&self, h5: &H5ad, column: &str) -> Result<Option<Vec<String>>, IoError> {
        if column.is_empty()
            || column.contains('/')
            || !self.columns(h5).iter().any(|c| c == column)
        {
            return Ok(None);
        }
        let values = match self {
            Obs::Frame { .. } => {
                let values = read_column(h5, column)?;
                nonempty(h5, &format!("obs/{column}"), values)?
            }
            Obs::Records(records) => {
                let categories = legacy_categories(h5, column)?;
                let values = read_record_column(h5, records, column, categories)?;
                nonempty(h5, "obs", values)?
            }
        };
        Ok(Some(values))
    }
}

/// Fails on the first empty value, naming its row: labels and ids must be non-empty.
fn nonempty(h5: &H5ad, key: &str, values: Vec<String>) -> Result<Vec<String>, IoError> {
    if let Some(row) = values.iter().position(String::is_empty) {
        return Err(h5.error(key, format!("row {row} (0-based) is an empty string")));
    }
    tracing::debug!(path = %h5.path().display(), %key, rows = values.len(), "read h5ad obs column");
    Ok(values)
}

/// A column of an `obs` group, by its layout.
fn read_column(h5: &H5ad, column: &str) -> Result<Vec<String>, IoError> {
    let key = format!("obs/{column}");
    if h5.kind(&key) != Some(Kind::Group) {
        let dataset = h5.dataset(&key)?;
        let has_categories = dataset
            .attr_datatypes()
            .map_err(h5.hdf5(&key))?
            .contains_key("categories");
        if has_categories {
            let categories = read_text(h5, &format!("obs/__categories/{column}"))?;
            let codes = h5.read_integers(&key)?;
            return decode_categories(h5, &key, &categories, codes);
        }
        return read_text(h5, &key);
    }
    match h5.string_attr(&key, "encoding-type")?.as_deref() {
        Some("categorical") => {
            let categories = read_text(h5, &format!("{key}/categories"))?;
            let codes = h5.read_integers(&format!("{key}/codes"))?;
            decode_categories(h5, &key, &categories, codes)
        }
        Some(encoding) if encoding.starts_with("nullable-") => read_nullable(h5, &key),
        Some(other) => Err(h5.error(&key, format!("encoding-type {other:?} is not a column"))),
        None => Err(h5.error(&key, "a group without an encoding-type; not a column")),
    }
}

/// A 1-D dataset of strings, integers or booleans, as text (booleans as pandas prints them).
pub(crate) fn read_text(h5: &H5ad, key: &str) -> Result<Vec<String>, IoError> {
    let dataset = h5.dataset(key)?;
    let shape = h5.shape(key, &dataset)?;
    if shape.len() != 1 {
        let shape = numpy_shape(&shape);
        return Err(h5.error(key, format!("array has shape {shape}; a column is 1-D")));
    }
    match h5.element(key, &dataset)? {
        Element::Text => {
            h5.check_budget(key, shape[0], size_of::<String>())?;
            h5.read_all(key, &dataset, Dataset::read_string_rows)
        }
        Element::Signed => Ok(to_text(h5.read_all(
            key,
            &dataset,
            Dataset::read_i64_rows,
        )?)),
        Element::Unsigned => Ok(to_text(h5.read_all(
            key,
            &dataset,
            Dataset::read_u64_rows,
        )?)),
        Element::Bool => Ok(h5
            .read_all(key, &dataset, Dataset::read_i64_rows)?
            .into_iter()
            .map(|value| python_bool(value != 0))
            .collect()),
        other => {
            let allowed = "strings, categories, integers or booleans";
            let message = format!("holds {}; labels and ids must be {allowed}", other.name());
            Err(h5.error(key, message))
        }
    }
}

/// Each row's category, by its code (−1: missing, an error naming the row).
fn decode_categories(
    h5: &H5ad,
    key: &str,
    categories: &[String],
    codes: Vec<i64>,
) -> Result<Vec<String>, IoError> {
    let category = |(row, code): (usize, i64)| match code {
        -1 => Err(h5.error(
            key,
            format!("row {row} (0-based) is missing (categorical code -1)"),
        )),
        _ => usize::try_from(code)
            .ok()
            .and_then(|code| categories.get(code))
            .cloned()
            .ok_or_else(|| {
                let n = categories.len();
                h5.error(
                    key,
                    format!("row {row}: code {code} is not one of {n} categories"),
                )
            }),
    };
    codes.into_iter().enumerate().map(category).collect()
}

/// A nullable column (`nullable-integer`, `nullable-boolean`, `nullable-string-array`): its
/// values, provided none is masked.
fn read_nullable(h5: &H5ad, key: &str) -> Result<Vec<String>, IoError> {
    let values = read_text(h5, &format!("{key}/values"))?;
    let mask = h5.read_integers(&format!("{key}/mask"))?;
    if mask.len() != values.len() {
        let (n_mask, n_values) = (mask.len(), values.len());
        return Err(h5.error(key, format!("{n_mask} mask entries for {n_values} values")));
    }
    match mask.iter().position(|&missing| missing != 0) {
        Some(row) => Err(h5.error(key, format!("row {row} (0-based) is missing (masked)"))),
        None => Ok(values),
    }
}

/// `uns/COLUMN_categories`, where a pre-0.7 file keeps a categorical column's categories.
fn legacy_categories(h5: &H5ad, column: &str) -> Result<Option<Vec<String>>, IoError> {
    let key = format!("uns/{column}_categories");
    match h5.kind(&key) {
        Some(Kind::Dataset) => read_text(h5, &key).map(Some),
        _ => Ok(None),
    }
}

/// A field of the compound `obs` as text; an integer field with `categories` becomes categorical
/// when every code is below their number (anndata's rule), as anndata reads it.
fn read_record_column(
    h5: &H5ad,
    records: &Records,
    name: &str,
    categories: Option<Vec<String>>,
) -> Result<Vec<String>, IoError> {
    let field = records
        .field(h5, name)?
        .ok_or_else(|| h5.error("obs", format!("no field {name:?}")))?;
    if field.count != 1 {
        return Err(h5.error("obs", format!("field {name:?} is an array, not a column")));
    }
    let rows = records.len(h5)?;
    let mut values = h5.vec_with_capacity::<Scalar>("obs", rows)?;
    records.for_each(h5, &field, |_, value| {
        values.push(value);
        Ok(())
    })?;
    if values.len() != rows {
        let found = values.len();
        return Err(h5.error("obs", format!("{found} values of {name:?} for {rows} rows")));
    }
    let codes: Option<Vec<i64>> = values
        .iter()
        .map(|value| match *value {
            Scalar::Signed(code) => Some(code),
            Scalar::Unsigned(code) => i64::try_from(code).ok(),
            _ => None,
        })
        .collect();
    if let (Some(categories), Some(codes)) = (categories, codes) {
        let fits = codes.iter().all(|&code| code < categories.len() as i64);
        if fits {
            let key = format!("obs/{name}");
            return decode_categories(h5, &key, &categories, codes);
        }
    }
    values
        .into_iter()
        .enumerate()
        .map(|(row, value)| match value {
            Scalar::Signed(v) => Ok(v.to_string()),
            Scalar::Unsigned(v) => Ok(v.to_string()),
            Scalar::Bool(v) => Ok(python_bool(v)),
            Scalar::Text(text) => Ok(text),
            Scalar::Float(_) => Err(h5.error(
                "obs",
                format!(
                    "field {name:?} (row {row}) holds floats; labels and ids must be strings, \
                     categories, integers or booleans"
                ),
            )),
        })
        .collect()
}

fn python_bool(value: bool) -> String {
    if value { "True" } else { "False" }.to_owned()
}

fn to_text<T: ToString>(values: Vec<T>) -> Vec<String> {
    values.iter().map(T::to_string).collect()
}

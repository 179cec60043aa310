//! Reading an `n × d` matrix (scores, logits, features) from whatever a user saved it as, and
//! refusing NaN or infinite values at the door, with the row and column (`format::check_finite`).

use std::path::Path;

use ndarray::Array2;

use crate::error::IoError;
use crate::format::{Format, check_finite, ensure_not_empty};
use crate::h5ad::{H5adMatrix, read_h5ad_matrix};
use crate::npy;
use crate::text::{Comments, Delimiter, Fields, Records};

const EXPECTED: &str = "an n × d matrix";

/// Reads an `n × d` matrix of finite numbers, in standard (row-major) layout.
///
/// * `.npy`: float32 or float64 (widened to f64), either byte order, C or Fortran order, 2-D.
///   Other dtypes are refused with the dtype in the message.
/// * `.csv` (comma), `.tsv` (tab) and `.txt` (tab, comma or whitespace, sniffed from the first
///   data line): one row per line; blank lines and, for matrices, lines starting with `#` are
///   skipped. The first row is a header, and skipped, when any of its fields is not a number.
/// * `.h5ad`: the AnnData file's `X`, dense or sparse, as [`read_h5ad_matrix`] reads it.
///
/// Errors name the file, and the line and column (1-based, text) or the row and column (0-based,
/// for NaN or infinite values) at fault.
pub fn read_matrix(path: &Path) -> Result<Array2<f64>, IoError> {
    let format = Format::of(path)?;
    if format != Format::H5ad {
        ensure_not_empty(path, EXPECTED)?;
    }
    let matrix = match format {
        // Its own reader says what an empty .h5ad should have been, and checks finiteness.
        Format::H5ad => return read_h5ad_matrix(path, &H5adMatrix::X),
        Format::Npy => npy::read_matrix(path)?,
        Format::Csv => read_text(path, Delimiter::Comma)?,
        Format::Tsv => read_text(path, Delimiter::Tab)?,
        Format::Txt => read_text(path, Delimiter::sniff(path)?)?,
    };
    check_finite(path, matrix.view())?;
    tracing::debug!(path = %path.display(), rows = matrix.nrows(), columns = matrix.ncols(), "read matrix");
    Ok(matrix)
}

fn read_text(path: &Path, delimiter: Delimiter) -> Result<Array2<f64>, IoError> {
    let mut records = Records::open(path, delimiter, Comments::Skip)?;
    let mut record = Fields::default();
    let mut width = None;
    let mut values = Vec::new();
    while let Some(at) = records.next_into(&mut record)? {
        let line = at.line;
        let first = width.is_none();
        let expected = *width.get_or_insert(record.len());
        if record.len() != expected {
            let found = record.len();
            return Err(IoError::Ragged {
                path: path.to_path_buf(),
                line,
                expected,
                found,
            });
        }
        if first && record.iter().any(|field| field.parse::<f64>().is_err()) {
            continue; // a header row
        }
        for (index, field) in record.iter().enumerate() {
            let value = field.parse::<f64>().map_err(|_| IoError::NotNumeric {
                path: path.to_path_buf(),
                line,
                column: index + 1,
                text: field.to_owned(),
            })?;
            values.push(value);
        }
    }
    let columns = width.unwrap_or(0);
    if values.is_empty() || columns == 0 {
        return Err(IoError::Empty {
            path: path.to_path_buf(),
            expected: EXPECTED,
        });
    }
    let rows = values.len() / columns;
    // Every accepted record pushed exactly `columns` values.
    Ok(Array2::from_shape_vec((rows, columns), values).expect("rows × columns values"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{npy_bytes, write_file};
    use crate::write::{write_npy_f32, write_npy_f64};
    use ndarray::{Array2, ShapeBuilder, array};
    use ndarray_npy::WriteNpyExt;

    fn sample() -> Array2<f64> {
        array![[1.0, -2.5, 3.0], [4.0, 5.0, 6.25]]
    }

    #[test]
    fn npy_f64_and_f32_round_trip_in_c_order() {
        let dir = tempfile::tempdir().unwrap();
        let path64 = dir.path().join("m64.npy");
        write_npy_f64(&path64, sample().view()).unwrap();
        assert_eq!(read_matrix(&path64).unwrap(), sample());

        let path32 = dir.path().join("m32.npy");
        write_npy_f32(&path32, sample().mapv(|v| v as f32).view()).unwrap();
        assert_eq!(read_matrix(&path32).unwrap(), sample());
    }

    #[test]
    fn npy_fortran_order_reads_as_the_same_matrix() {
        let dir = tempfile::tempdir().unwrap();
        // ndarray-npy writes a column-major array as Fortran order: check that it did.
        let column_major: Vec<f64> = sample().t().iter().copied().collect();
        let fortran = Array2::from_shape_vec((2, 3).f(), column_major).unwrap();
        assert!(!fortran.is_standard_layout());
        let path = dir.path().join("f64.npy");
        fortran
            .write_npy(std::fs::File::create(&path).unwrap())
            .unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert!(String::from_utf8_lossy(&bytes[..128]).contains("'fortran_order': True"));
        let read = read_matrix(&path).unwrap();
        assert_eq!(read, sample());
        assert!(read.is_standard_layout());

        // f32, Fortran order, header built by hand: column-major data of the 2 × 3 sample.
        let column_major: Vec<u8> = sample()
            .t()
            .iter()
            .flat_map(|&v| (v as f32).to_le_bytes())
            .collect();
        let bytes = npy_bytes("<f4", true, &[2, 3], &column_major);
        let path = write_file(dir.path(), "f32.npy", &bytes);
        assert_eq!(read_matrix(&path).unwrap(), sample());
    }

    #[test]
    fn int64_npy_is_refused_naming_the_dtype() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ints.npy");
        array![[1i64, 2], [3, 4]]
            .write_npy(std::fs::File::create(&path).unwrap())
            .unwrap();
        let err = read_matrix(&path).unwrap_err().to_string();
        let expected = "dtype <i8 not supported; save as float32 or float64";
        assert!(err.contains("ints.npy") && err.contains(expected), "{err}");
    }

    #[test]
    fn csv_with_and_without_header() {
        let dir = tempfile::tempdir().unwrap();
        let plain = write_file(dir.path(), "plain.csv", b"1,-2.5,3\n4,5,6.25\n");
        assert_eq!(read_matrix(&plain).unwrap(), sample());
        let header = write_file(
            dir.path(),
            "header.csv",
            b"a,b,c\n1, -2.5, 3\r\n4,5,6.25\n\n",
        );
        assert_eq!(read_matrix(&header).unwrap(), sample());
    }

    #[test]
    fn tsv_and_txt_forms() {
        let dir = tempfile::tempdir().unwrap();
        let tsv = write_file(dir.path(), "m.tsv", b"x\ty\tz\n1\t-2.5\t3\n4\t5\t6.25\n");
        assert_eq!(read_matrix(&tsv).unwrap(), sample());
        let savetxt = b"# a b c\n1.0e+00 -2.5e+00 3.0e+00\n4   5 6.25\n";
        let txt = write_file(dir.path(), "m.txt", savetxt);
        assert_eq!(read_matrix(&txt).unwrap(), sample());
        let comma_txt = write_file(dir.path(), "c.txt", b"1,-2.5,3\n4,5,6.25\n");
        assert_eq!(read_matrix(&comma_txt).unwrap(), sample());
    }

    #[test]
    fn ragged_csv_names_file_line_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_file(dir.path(), "ragged.csv", b"a,b,c\n1,2,3\n4,5\n");
        let err = read_matrix(&path).unwrap_err().to_string();
        let expected = format!("{}: line 3: expected 3 columns, found 2", path.display());
        assert_eq!(err, expected);
    }

    #[test]
    fn non_numeric_field_names_line_column_and_text() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_file(dir.path(), "bad.csv", b"1,2\n3,x7\n");
        let err = read_matrix(&path).unwrap_err().to_string();
        let expected = format!(
            "{}: line 2, column 2: \"x7\" is not a number",
            path.display()
        );
        assert_eq!(err, expected);
        // Only the first row can be a header.
        let path = write_file(dir.path(), "two_headers.csv", b"a,b\nc,d\n1,2\n");
        let err = read_matrix(&path).unwrap_err().to_string();
        let expected = format!(
            "{}: line 2, column 1: \"c\" is not a number",
            path.display()
        );
        assert_eq!(err, expected);
    }

    #[test]
    fn nan_and_inf_name_row_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_file(dir.path(), "nan.csv", b"a,b\n1,2\n3,4\n5,NaN\n");
        let err = read_matrix(&path).unwrap_err().to_string();
        assert!(err.starts_with(&path.display().to_string()), "{err}");
        assert!(
            err.contains("row 2, column 1") && err.contains("NaN"),
            "{err}"
        );

        let mut values = sample();
        values[[1, 0]] = f64::INFINITY;
        let npy = dir.path().join("inf.npy");
        write_npy_f64(&npy, values.view()).unwrap();
        let err = read_matrix(&npy).unwrap_err().to_string();
        assert!(
            err.contains("inf.npy: row 1, column 0 (0-based) is inf"),
            "{err}"
        );
    }

    #[test]
    fn empty_inputs_say_what_was_expected() {
        let dir = tempfile::tempdir().unwrap();
        for (name, bytes) in [
            ("zero.csv", &b""[..]),
            ("zero.npy", &b""[..]),
            ("header_only.csv", &b"a,b\n"[..]),
            ("blank.txt", &b"\n\n"[..]),
        ] {
            let path = write_file(dir.path(), name, bytes);
            let err = read_matrix(&path).unwrap_err().to_string();
            let expected = format!("{}: empty, expected an n × d matrix", path.display());
            assert_eq!(err, expected);
        }
        let no_rows = npy_bytes("<f8", false, &[0, 3], &[]);
        let path = write_file(dir.path(), "no_rows.npy", &no_rows);
        assert!(
            read_matrix(&path)
                .unwrap_err()
                .to_string()
                .contains("empty")
        );
    }

    #[test]
    fn missing_file_names_the_file() {
        let err = read_matrix(Path::new("/nonexistent/scores1.npy"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("/nonexistent/scores1.npy: "), "{err}");
    }
}

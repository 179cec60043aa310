//! Reading `.npy` files (NumPy's format, `numpy.lib.format`).
//!
//! ndarray-npy parses the header and decodes numbers. This module adds what users' files need on
//! top: dispatch on the dtype with an error that names it ("dtype <i8 not supported"), shape
//! checks with the shape in the message, a size check before any allocation (a corrupt header
//! must not ask for terabytes), and NumPy's fixed-width strings (`<U`, `|S`) for labels and ids.

use std::fmt::Display;
use std::fs::File;
use std::io::{BufReader, Read, Seek};
use std::path::{Path, PathBuf};

use ndarray::{Array2, ArrayD, Ix2, IxDyn, ShapeBuilder};
use ndarray_npy::ReadableElement;
use ndarray_npy::npy::header::{Header, ReadHeaderError};

use crate::error::{IoError, Location, WithPath, numpy_shape};

const MATRIX_SHAPE: &str = "2-D, n × d (one row per unit)";
const COLUMN_SHAPE: &str = "1-D (n) or n × 1 (one value per row)";
const MATRIX_DTYPES: &str = "save as float32 or float64";
const COLUMN_DTYPES: &str = "save as integers or as fixed-width strings (e.g. `arr.astype(str)`)";

/// A dtype descriptor such as `<f8`: byte order, kind and item size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Dtype {
    big_endian: bool,
    kind: char,
    /// Bytes per item, except for `U` where NumPy counts 4-byte characters.
    size: usize,
}

impl Dtype {
    /// Parses simple descriptors (`<f8`, `|u1`, `<U12`); `None` for anything else (`|O`, records).
    fn parse(descr: &str) -> Option<Self> {
        let (big_endian, rest) = match descr.as_bytes().first()? {
            b'>' => (true, &descr[1..]),
            b'<' | b'|' | b'=' => (false, &descr[1..]),
            _ => (false, descr),
        };
        let mut chars = rest.chars();
        let kind = chars.next()?;
        let size = chars.as_str().parse().ok()?;
        Some(Dtype {
            big_endian,
            kind,
            size,
        })
    }

    fn item_bytes(self) -> Option<usize> {
        if self.kind == 'U' {
            self.size.checked_mul(4)
        } else {
            Some(self.size)
        }
    }
}

/// An open `.npy` file whose header has been read; the reader sits at the first data byte.
struct NpyFile {
    path: PathBuf,
    header: Header,
    /// The dtype descriptor as NumPy wrote it, for messages.
    descr: String,
    reader: BufReader<File>,
    data_bytes: u64,
}

impl NpyFile {
    fn open(path: &Path) -> Result<Self, IoError> {
        let file = File::open(path).with_path(path)?;
        let file_bytes = file.metadata().with_path(path)?.len();
        let mut reader = BufReader::new(file);
        check_header_length(path, &mut reader, file_bytes)?;
        let header = Header::from_reader(&mut reader).map_err(|err| match err {
            ReadHeaderError::Io(source) => IoError::io(path, source),
            ReadHeaderError::Parse(cause) => IoError::NpyHeader {
                path: path.to_path_buf(),
                cause,
            },
        })?;
        let data_start = reader.stream_position().with_path(path)?;
        let descr = match header.type_descriptor.as_string() {
            Some(text) => text.clone(),
            None => header.type_descriptor.to_string(),
        };
        let path = path.to_path_buf();
        Ok(NpyFile {
            path,
            header,
            descr,
            reader,
            data_bytes: file_bytes.saturating_sub(data_start),
        })
    }

    fn shape(&self) -> &[usize] {
        &self.header.shape
    }

    fn dtype(&self) -> Option<Dtype> {
        Dtype::parse(&self.descr)
    }

    fn unsupported_dtype(&self, hint: &'static str) -> IoError {
        IoError::NpyDtype {
            path: self.path.clone(),
            descr: self.descr.clone(),
            hint,
        }
    }

    fn wrong_shape(&self, expected: &'static str) -> IoError {
        IoError::NpyShape {
            path: self.path.clone(),
            shape: self.shape().to_vec(),
            expected,
        }
    }

    fn data_error(&self, message: impl Into<String>) -> IoError {
        IoError::NpyData {
            path: self.path.clone(),
            message: message.into(),
        }
    }

    /// The number of elements, after checking that the file holds exactly their bytes.
    fn checked_len(&self, item_bytes: usize) -> Result<usize, IoError> {
        let len = self
            .shape()
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d));
        let bytes = len.and_then(|len| len.checked_mul(item_bytes));
        match (len, bytes) {
            (Some(len), Some(bytes)) if bytes as u64 == self.data_bytes => Ok(len),
            _ => Err(self.data_error(format!(
                "header describes shape {} of dtype {}, but the file holds {} bytes of data \
                 (truncated or corrupt)",
                numpy_shape(self.shape()),
                self.descr,
                self.data_bytes
            ))),
        }
    }

    /// Decodes numbers with ndarray-npy, in the file's layout (C or Fortran order).
    fn read_numbers<T: ReadableElement>(mut self) -> Result<ArrayD<T>, IoError> {
        let len = self.checked_len(std::mem::size_of::<T>())?;
        let data = T::read_to_end_exact_vec(&mut self.reader, &self.header.type_descriptor, len)
            .map_err(|err| self.data_error(err.to_string()))?;
        let shape = IxDyn(&self.header.shape).set_f(self.header.layout.is_fortran());
        ArrayD::from_shape_vec(shape, data).map_err(|err| self.data_error(err.to_string()))
    }

    /// The raw bytes of every item, in file order.
    fn read_items(mut self, item_bytes: usize) -> Result<(Self, Vec<u8>), IoError> {
        let len = self.checked_len(item_bytes)?;
        let mut bytes = Vec::with_capacity(len * item_bytes);
        self.reader.read_to_end(&mut bytes).with_path(&self.path)?;
        Ok((self, bytes))
    }
}

/// Fails with a message that says what is wrong when the header length in the preamble (magic,
/// version, length) points past the end of the file; ndarray-npy would only say "failed to fill
/// whole buffer". Leaves the reader at the start of the file. Other defects (wrong magic,
/// unknown version, a bad dictionary) are left to the parser, whose messages name them.
fn check_header_length(
    path: &Path,
    reader: &mut BufReader<File>,
    file_bytes: u64,
) -> Result<(), IoError> {
    let mut preamble = Vec::with_capacity(12);
    reader
        .by_ref()
        .take(12)
        .read_to_end(&mut preamble)
        .with_path(path)?;
    reader.rewind().with_path(path)?;
    let problem = header_length_problem(&preamble, file_bytes);
    match problem {
        None => Ok(()),
        Some(message) => Err(IoError::NpyData {
            path: path.to_path_buf(),
            message: format!("not a valid .npy file: {message} (truncated or corrupt)"),
        }),
    }
}

/// What is wrong with the header length of a file that starts with `preamble` (its first 12
/// bytes, or fewer) and holds `file_bytes` bytes.
fn header_length_problem(preamble: &[u8], file_bytes: u64) -> Option<String> {
    const MAGIC: &[u8] = b"\x93NUMPY";
    if !preamble.starts_with(MAGIC) {
        return None;
    }
    // Version 1 stores the header length in 2 bytes, versions 2 and 3 in 4.
    let width = match preamble.get(6) {
        Some(1) => 2,
        Some(2 | 3) => 4,
        Some(_) => return None,
        None => {
            return Some(format!(
                "the file ends after {file_bytes} bytes, inside the preamble"
            ));
        }
    };
    let prefix = MAGIC.len() + 2 + width;
    let Some(length) = preamble.get(MAGIC.len() + 2..prefix) else {
        return Some(format!(
            "the file ends after {file_bytes} bytes, inside the preamble"
        ));
    };
    let claimed = length
        .iter()
        .rev()
        .fold(0u64, |value, &byte| (value << 8) | u64::from(byte));
    let left = file_bytes.saturating_sub(prefix as u64);
    (claimed > left).then(|| {
        format!(
            "the header claims {claimed} bytes but the file has {left} after the {prefix}-byte \
             preamble"
        )
    })
}

/// Reads a float32 or float64 `n × d` array as f64 in standard (row-major) layout.
pub(crate) fn read_matrix(path: &Path) -> Result<Array2<f64>, IoError> {
    let file = NpyFile::open(path)?;
    let &[rows, columns] = file.shape() else {
        return Err(file.wrong_shape(MATRIX_SHAPE));
    };
    if rows == 0 || columns == 0 {
        return Err(IoError::Empty {
            path: path.to_path_buf(),
            expected: "an n × d matrix",
        });
    }
    let matrix = match file.dtype().map(|dtype| (dtype.kind, dtype.size)) {
        Some(('f', 8)) => file.read_numbers::<f64>()?,
        Some(('f', 4)) => file.read_numbers::<f32>()?.mapv(f64::from),
        _ => return Err(file.unsupported_dtype(MATRIX_DTYPES)),
    };
    let matrix = matrix
        .into_dimensionality::<Ix2>()
        .map_err(|err| IoError::NpyData {
            path: path.to_path_buf(),
            message: err.to_string(),
        })?;
    Ok(if matrix.is_standard_layout() {
        matrix
    } else {
        matrix.as_standard_layout().into_owned()
    })
}

/// Reads a 1-D or `n × 1` array of integers or strings as text, one entry per row.
///
/// `what` names an entry in messages ("label", "id") and `expected` says what an empty array
/// should have held ("one label per row"). Every entry must be non-empty.
pub(crate) fn read_column(
    path: &Path,
    what: &'static str,
    expected: &'static str,
) -> Result<Vec<String>, IoError> {
    let file = NpyFile::open(path)?;
    let rows = match *file.shape() {
        [rows] | [rows, 1] => rows,
        _ => return Err(file.wrong_shape(COLUMN_SHAPE)),
    };
    if rows == 0 {
        return Err(IoError::Empty {
            path: path.to_path_buf(),
            expected,
        });
    }
    // A column has the same order in C and Fortran layout, so items are taken in file order.
    let Some(dtype) = file.dtype() else {
        return Err(file.unsupported_dtype(COLUMN_DTYPES));
    };
    let values = match (dtype.kind, dtype.size) {
        ('i', 1) => integers::<i8>(file)?,
        ('i', 2) => integers::<i16>(file)?,
        ('i', 4) => integers::<i32>(file)?,
        ('i', 8) => integers::<i64>(file)?,
        ('u', 1) => integers::<u8>(file)?,
        ('u', 2) => integers::<u16>(file)?,
        ('u', 4) => integers::<u32>(file)?,
        ('u', 8) => integers::<u64>(file)?,
        // NumPy allows zero-width strings; every label would be empty.
        ('U' | 'S', 0) => vec![String::new(); rows],
        ('U', _) => unicode_strings(file, dtype)?,
        ('S', _) => byte_strings(file, dtype)?,
        _ => return Err(file.unsupported_dtype(COLUMN_DTYPES)),
    };
    if let Some(row) = values.iter().position(String::is_empty) {
        let path = path.to_path_buf();
        return Err(IoError::EmptyField {
            path,
            location: Location::Row(row),
            what,
        });
    }
    Ok(values)
}

fn integers<T: ReadableElement + Display>(file: NpyFile) -> Result<Vec<String>, IoError> {
    Ok(file.read_numbers::<T>()?.iter().map(T::to_string).collect())
}

/// NumPy's `U` strings: UTF-32 code points, padded with NULs to a fixed width.
fn unicode_strings(file: NpyFile, dtype: Dtype) -> Result<Vec<String>, IoError> {
    let item_bytes = dtype
        .item_bytes()
        .ok_or_else(|| file.unsupported_dtype(COLUMN_DTYPES))?;
    let (file, bytes) = file.read_items(item_bytes)?;
    let decode_char = |unit: &[u8]| {
        let unit = [unit[0], unit[1], unit[2], unit[3]]; // chunks_exact(4) gives 4 bytes
        let code = if dtype.big_endian {
            u32::from_be_bytes(unit)
        } else {
            u32::from_le_bytes(unit)
        };
        char::from_u32(code)
    };
    bytes
        .chunks_exact(item_bytes)
        .enumerate()
        .map(|(row, item)| {
            let text: Option<String> = item.chunks_exact(4).map(decode_char).collect();
            let text = text.ok_or_else(|| file.data_error(format!("row {row}: invalid UTF-32")))?;
            Ok(text.trim_end_matches('\0').to_owned())
        })
        .collect()
}

/// NumPy's `S` strings: bytes padded with NULs, read as UTF-8.
fn byte_strings(file: NpyFile, dtype: Dtype) -> Result<Vec<String>, IoError> {
    let (file, bytes) = file.read_items(dtype.size)?;
    bytes
        .chunks_exact(dtype.size)
        .enumerate()
        .map(|(row, item)| {
            let end = item
                .iter()
                .rposition(|&b| b != 0)
                .map_or(0, |last| last + 1);
            String::from_utf8(item[..end].to_vec())
                .map_err(|_| file.data_error(format!("row {row}: invalid UTF-8")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{npy_bytes, write_file};

    #[test]
    fn dtype_descriptors_parse() {
        let f8 = Dtype {
            big_endian: false,
            kind: 'f',
            size: 8,
        };
        assert_eq!(Dtype::parse("<f8"), Some(f8));
        assert_eq!(
            Dtype::parse(">f4"),
            Some(Dtype {
                big_endian: true,
                kind: 'f',
                size: 4
            })
        );
        assert_eq!(Dtype::parse("<U12").and_then(Dtype::item_bytes), Some(48));
        assert_eq!(Dtype::parse("|O"), None);
    }

    #[test]
    fn big_endian_float64_reads() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = [1.5f64, -2.0]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect();
        let path = write_file(
            dir.path(),
            "be.npy",
            &npy_bytes(">f8", false, &[1, 2], &data),
        );
        assert_eq!(read_matrix(&path).unwrap(), ndarray::array![[1.5, -2.0]]);
    }

    #[test]
    fn truncated_data_is_reported_before_allocating() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = npy_bytes("<f8", false, &[1_000_000_000, 1_000], &[0; 16]);
        let path = write_file(dir.path(), "huge.npy", &bytes);
        let err = read_matrix(&path).unwrap_err().to_string();
        assert!(
            err.contains("huge.npy") && err.contains("16 bytes of data"),
            "{err}"
        );
    }

    #[test]
    fn a_corrupt_header_length_says_what_it_claims_and_what_the_file_has() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = [1.0f64, 2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut bytes = npy_bytes("<f8", false, &[1, 2], &data);
        bytes[8..10].copy_from_slice(&60_000u16.to_le_bytes());
        let path = write_file(dir.path(), "corrupt.npy", &bytes);
        let err = read_matrix(&path).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "{}: not a valid .npy file: the header claims 60000 bytes but the file has 134 \
                 after the 10-byte preamble (truncated or corrupt)",
                path.display()
            )
        );
        // Version 2 (4-byte length), and a file that ends inside the preamble.
        let mut v2 = b"\x93NUMPY\x02\x00".to_vec();
        v2.extend(0x0100_0000u32.to_le_bytes());
        v2.extend(b"{'descr'");
        let path = write_file(dir.path(), "v2.npy", &v2);
        let err = read_column(&path, "label", "one label per row")
            .unwrap_err()
            .to_string();
        assert!(
            err.ends_with(
                "the header claims 16777216 bytes but the file has 8 after the 12-byte \
                 preamble (truncated or corrupt)"
            ),
            "{err}"
        );
        let path = write_file(dir.path(), "short.npy", b"\x93NUMPY\x01\x00\x10");
        let err = read_matrix(&path).unwrap_err().to_string();
        assert!(
            err.ends_with(
                "not a valid .npy file: the file ends after 9 bytes, inside the preamble \
                 (truncated or corrupt)"
            ),
            "{err}"
        );
    }

    #[test]
    fn one_dimensional_matrix_is_rejected_with_its_shape() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = [1.0f64, 2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        let path = write_file(dir.path(), "v.npy", &npy_bytes("<f8", false, &[2], &data));
        let err = read_matrix(&path).unwrap_err().to_string();
        assert!(
            err.contains("v.npy") && err.contains("shape (2,); it must be 2-D, n × d"),
            "{err}"
        );
    }

    #[test]
    fn unicode_and_byte_strings_read_without_padding() {
        let dir = tempfile::tempdir().unwrap();
        let mut data = Vec::new();
        for word in ["B", "NK", "Mono"] {
            let mut units: Vec<u32> = word.chars().map(u32::from).collect();
            units.resize(4, 0);
            data.extend(units.iter().flat_map(|u| u.to_le_bytes()));
        }
        let path = write_file(dir.path(), "u.npy", &npy_bytes("<U4", false, &[3], &data));
        assert_eq!(
            read_column(&path, "label", "one label per row").unwrap(),
            ["B", "NK", "Mono"]
        );

        let path = write_file(
            dir.path(),
            "s.npy",
            &npy_bytes("|S3", false, &[2, 1], b"ab\0xyz"),
        );
        assert_eq!(
            read_column(&path, "label", "one label per row").unwrap(),
            ["ab", "xyz"]
        );
    }

    #[test]
    fn object_arrays_are_rejected_with_their_dtype() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_file(dir.path(), "o.npy", &npy_bytes("|O", false, &[2], &[0; 16]));
        let err = read_column(&path, "label", "one label per row")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("o.npy") && err.contains("dtype |O not supported"),
            "{err}"
        );
    }

    #[test]
    fn empty_string_label_names_its_row() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_file(dir.path(), "s.npy", &npy_bytes("|S1", false, &[3], b"a\0b"));
        let err = read_column(&path, "label", "one label per row")
            .unwrap_err()
            .to_string();
        assert_eq!(err, format!("{}: row 1: empty label", path.display()));

        let path = write_file(dir.path(), "u0.npy", &npy_bytes("<U0", false, &[2], b""));
        let err = read_column(&path, "id", "one id per row")
            .unwrap_err()
            .to_string();
        assert_eq!(err, format!("{}: row 0: empty id", path.display()));
    }
}

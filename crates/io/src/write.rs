//! Writing result files so that each appears complete or not at all: the bytes go to a hidden
//! temporary file in the target's directory (the same file system, so the final rename is
//! atomic), are flushed and synced, and the file is then renamed over the target. A crash leaves
//! at worst a `.NAME.psa-tmp-*` file, never a truncated `NAME` that NumPy would half-read.

use std::io::{self, BufWriter, Write};
use std::path::Path;

use ndarray::{ArrayView, ArrayView1, ArrayView2, Dimension};
use ndarray_npy::{WritableElement, WriteNpyExt};
use serde::Serialize;
use tempfile::NamedTempFile;

use crate::error::{IoError, WithPath};

/// Writes `path` atomically with `write`, which receives a buffered writer.
///
/// The temporary file is created beside `path`; on any error it is removed and `path` is left as
/// it was. On success `path` is replaced, with the permissions a newly created file would get.
pub fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<(), IoError> {
    let mut temporary = temporary_beside(path).with_path(path)?;
    let mut writer = BufWriter::new(temporary.as_file_mut());
    write(&mut writer).with_path(path)?;
    writer.flush().with_path(path)?;
    drop(writer);
    temporary.as_file().sync_all().with_path(path)?;
    temporary
        .persist(path)
        .map_err(|err| IoError::io(path, err.error))?;
    Ok(())
}

/// Writes a float64 matrix as `.npy`, C order (`numpy.load` gives a `(n, d)` float64 array).
pub fn write_npy_f64(path: &Path, array: ArrayView2<f64>) -> Result<(), IoError> {
    write_npy(path, array)
}

/// Writes a float32 matrix as `.npy`, C order.
pub fn write_npy_f32(path: &Path, array: ArrayView2<f32>) -> Result<(), IoError> {
    write_npy(path, array)
}

/// Writes an int64 matrix as `.npy`, C order (for row indices such as top-k partners).
pub fn write_npy_i64(path: &Path, array: ArrayView2<i64>) -> Result<(), IoError> {
    write_npy(path, array)
}

/// Writes a float64 vector as a 1-d `.npy`.
pub fn write_npy_vec_f64(path: &Path, values: &[f64]) -> Result<(), IoError> {
    write_npy(path, ArrayView1::from(values))
}

/// Writes an int64 vector as a 1-d `.npy`.
pub fn write_npy_vec_i64(path: &Path, values: &[i64]) -> Result<(), IoError> {
    write_npy(path, ArrayView1::from(values))
}

fn write_npy<T: WritableElement + Clone, D: Dimension>(
    path: &Path,
    array: ArrayView<T, D>,
) -> Result<(), IoError> {
    write_atomic(path, |writer| {
        // A view with other strides is copied to row-major so the file is always C order.
        array
            .as_standard_layout()
            .write_npy(writer)
            .map_err(io::Error::other)
    })
}

/// Writes `value` as pretty-printed JSON followed by a newline.
pub fn write_json(path: &Path, value: &impl Serialize) -> Result<(), IoError> {
    write_atomic(path, |writer| {
        serde_json::to_writer_pretty(&mut *writer, value)?;
        writer.write_all(b"\n")
    })
}

/// A hidden temporary file in `path`'s directory, named after `path` so a leftover is traceable.
fn temporary_beside(path: &Path) -> io::Result<NamedTempFile> {
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let prefix = format!(".{name}.psa-tmp-");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix);
    // tempfile creates files readable by the owner only; results should get the usual mode.
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
    builder.tempfile_in(directory)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::entries;
    use ndarray::{Array2, array};
    use ndarray_npy::ReadNpyExt;
    use std::fs;

    fn read_back<T: ndarray_npy::ReadableElement>(path: &Path) -> Array2<T> {
        Array2::<T>::read_npy(fs::File::open(path).unwrap()).unwrap()
    }

    fn header(path: &Path) -> String {
        String::from_utf8_lossy(&fs::read(path).unwrap()[..64]).into_owned()
    }

    #[test]
    fn npy_writers_round_trip_in_c_order_and_leave_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let f64s = array![[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]];
        let transposed = f64s.t(); // not standard layout: must still be written as C order
        write_npy_f64(&dir.path().join("a.npy"), transposed).unwrap();
        assert_eq!(read_back::<f64>(&dir.path().join("a.npy")), transposed);
        assert!(header(&dir.path().join("a.npy")).contains("'fortran_order': False"));

        write_npy_f32(&dir.path().join("b.npy"), f64s.mapv(|v| v as f32).view()).unwrap();
        assert_eq!(
            read_back::<f32>(&dir.path().join("b.npy")),
            f64s.mapv(|v| v as f32)
        );
        assert!(header(&dir.path().join("b.npy")).contains("'<f4'"));

        let ints = array![[0i64, -7], [1 << 40, 3]];
        write_npy_i64(&dir.path().join("c.npy"), ints.view()).unwrap();
        assert_eq!(read_back::<i64>(&dir.path().join("c.npy")), ints);

        assert_eq!(entries(dir.path()), ["a.npy", "b.npy", "c.npy"]);
    }

    #[test]
    fn json_is_pretty_and_replaces_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        fs::write(&path, "old").unwrap();
        write_json(&path, &serde_json::json!({"a": [1, 2]})).unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "{\n  \"a\": [\n    1,\n    2\n  ]\n}\n"
        );
        assert_eq!(entries(dir.path()), ["s.json"]);
    }

    #[test]
    fn a_failed_write_leaves_the_target_and_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keep.json");
        fs::write(&path, "old").unwrap();
        let err = write_atomic(&path, |writer| {
            writer.write_all(b"partial")?;
            Err(io::Error::other("disk on fire"))
        })
        .unwrap_err();
        assert!(err.to_string().contains("keep.json: disk on fire"), "{err}");
        assert_eq!(fs::read_to_string(&path).unwrap(), "old");
        assert_eq!(entries(dir.path()), ["keep.json"]);
    }

    #[cfg(unix)]
    #[test]
    fn written_files_are_not_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.npy");
        write_npy_f64(&path, array![[1.0]].view()).unwrap();
        let plain = dir.path().join("plain");
        fs::File::create(&plain).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(
            mode(&path),
            mode(&plain),
            "as a plainly created file under this umask"
        );
    }
}

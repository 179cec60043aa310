//! A run's output directory, staged so that a failed or interrupted run leaves the user's
//! directory as it was: results are written into a hidden sibling directory and moved into
//! place only when the run has succeeded.

use std::fs;
use std::path::{Component, Path, PathBuf};

use tempfile::TempDir;

use crate::error::{IoError, WithPath};

/// A staged output directory.
///
/// * [`OutputDir::create`]`("out/run1")` makes a hidden staging directory beside the final one,
///   `out/.run1.psa-tmp-XXXXXX` (creating `out/` if it is missing, and nothing else).
/// * [`OutputDir::path`] and [`OutputDir::subdir`] say where to write inside the staging
///   directory; writers such as [`crate::write_npy_f64`] are atomic inside it too.
/// * [`OutputDir::commit`] moves every staged file to the same relative path under the final
///   directory, creating it and its subdirectories as needed. Each file is renamed into place
///   (atomic per file, same file system), replacing a file of the same name; files already in
///   the final directory that the run did not write are left alone. Files are moved in sorted
///   order of their relative paths. The staging directory is then removed. If a rename fails,
///   the error names the file, files moved before it stay moved and the rest are discarded.
/// * Dropping an `OutputDir` without committing (an error, a panic that unwinds) deletes the
///   staging directory and everything in it; the final directory is untouched. A killed process
///   can leave a staging directory behind, recognisable by its `.psa-tmp-` name.
#[derive(Debug)]
pub struct OutputDir {
    staging: TempDir,
    final_dir: PathBuf,
}

impl OutputDir {
    /// Starts a run whose results go to `final_dir`: creates the staging directory beside it
    /// (and `final_dir`'s parent if missing). `final_dir` itself is not touched until commit.
    pub fn create(final_dir: &Path) -> Result<Self, IoError> {
        let Some(name) = final_dir.file_name() else {
            return Err(IoError::NotADirectoryPath {
                path: final_dir.to_path_buf(),
            });
        };
        let parent = match final_dir.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        if final_dir.exists() && !final_dir.is_dir() {
            return Err(IoError::NotADirectoryPath {
                path: final_dir.to_path_buf(),
            });
        }
        fs::create_dir_all(parent).with_path(parent)?;
        let prefix = format!(".{}.psa-tmp-", name.to_string_lossy());
        let staging = tempfile::Builder::new()
            .prefix(&prefix)
            .tempdir_in(parent)
            .with_path(parent)?;
        Ok(OutputDir {
            staging,
            final_dir: final_dir.to_path_buf(),
        })
    }

    /// Where the run writes `relative` (e.g. `"summary.json"`, `"coupling/B.npy"`) before commit.
    /// Parent directories are not created; use [`OutputDir::subdir`] for them.
    ///
    /// # Panics
    /// If `relative` is absolute or contains `..`: every output must stay inside the directory.
    pub fn path(&self, relative: impl AsRef<Path>) -> PathBuf {
        let relative = relative.as_ref();
        let inside = relative
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
        assert!(
            inside,
            "output path {} must be relative, without ..",
            relative.display()
        );
        self.staging.path().join(relative)
    }

    /// Creates the subdirectory `relative` (and its parents) in the staging directory and
    /// returns its path.
    ///
    /// # Panics
    /// As [`OutputDir::path`].
    pub fn subdir(&self, relative: impl AsRef<Path>) -> Result<PathBuf, IoError> {
        let path = self.path(relative);
        fs::create_dir_all(&path).with_path(&path)?;
        Ok(path)
    }

    /// The directory the results go to on [`OutputDir::commit`].
    pub fn final_dir(&self) -> &Path {
        &self.final_dir
    }

    /// The hidden staging directory the run is writing into.
    pub fn staging_dir(&self) -> &Path {
        self.staging.path()
    }

    /// Moves every staged file into the final directory and removes the staging directory.
    pub fn commit(self) -> Result<(), IoError> {
        move_tree(self.staging.path(), &self.final_dir)?;
        let staging = self.staging.path().to_path_buf();
        self.staging.close().with_path(&staging)?;
        tracing::debug!(dir = %self.final_dir.display(), "committed output directory");
        Ok(())
    }
}

/// Renames each file under `from` to the same relative path under `to`, creating directories.
fn move_tree(from: &Path, to: &Path) -> Result<(), IoError> {
    fs::create_dir_all(to).with_path(to)?;
    let mut entries = fs::read_dir(from)
        .with_path(from)?
        .collect::<Result<Vec<_>, _>>()
        .with_path(from)?;
    entries.sort_by_key(fs::DirEntry::file_name);
    for entry in entries {
        let target = to.join(entry.file_name());
        if entry.file_type().with_path(&entry.path())?.is_dir() {
            move_tree(&entry.path(), &target)?;
        } else {
            fs::rename(entry.path(), &target).with_path(&target)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::entries;
    use crate::write::{write_json, write_npy_f64};
    use ndarray::array;

    #[test]
    fn dropped_output_leaves_no_trace() {
        let root = tempfile::tempdir().unwrap();
        let final_dir = root.path().join("run");
        {
            let out = OutputDir::create(&final_dir).unwrap();
            let name = out
                .staging_dir()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            assert!(name.starts_with(".run.psa-tmp-"), "{name}");
            write_json(&out.path("summary.json"), &1).unwrap();
            write_npy_f64(
                &out.subdir("coupling").unwrap().join("a.npy"),
                array![[1.0]].view(),
            )
            .unwrap();
        }
        assert!(
            entries(root.path()).is_empty(),
            "{:?}",
            entries(root.path())
        );
    }

    #[test]
    fn dropped_output_leaves_an_existing_directory_untouched() {
        let root = tempfile::tempdir().unwrap();
        let final_dir = root.path().join("run");
        fs::create_dir(&final_dir).unwrap();
        fs::write(final_dir.join("summary.json"), "old").unwrap();
        let out = OutputDir::create(&final_dir).unwrap();
        write_json(&out.path("summary.json"), &2).unwrap();
        drop(out);
        assert_eq!(entries(root.path()), ["run"]);
        assert_eq!(entries(&final_dir), ["summary.json"]);
        assert_eq!(
            fs::read_to_string(final_dir.join("summary.json")).unwrap(),
            "old"
        );
    }

    #[test]
    fn commit_moves_files_replaces_same_names_and_keeps_others() {
        let root = tempfile::tempdir().unwrap();
        let final_dir = root.path().join("results").join("run");
        fs::create_dir_all(final_dir.join("coupling")).unwrap();
        fs::write(final_dir.join("notes.txt"), "mine").unwrap();
        fs::write(final_dir.join("coupling").join("old.npy"), "mine too").unwrap();
        fs::write(final_dir.join("summary.json"), "stale").unwrap();

        let out = OutputDir::create(&final_dir).unwrap();
        write_json(&out.path("summary.json"), &serde_json::json!({"ok": true})).unwrap();
        let coupling = out.subdir("coupling/B").unwrap();
        write_npy_f64(&coupling.join("f.npy"), array![[1.0, 2.0]].view()).unwrap();
        out.commit().unwrap();

        assert_eq!(entries(final_dir.parent().unwrap()), ["run"]);
        assert_eq!(
            entries(&final_dir),
            ["coupling", "notes.txt", "summary.json"]
        );
        assert_eq!(entries(&final_dir.join("coupling")), ["B", "old.npy"]);
        assert_eq!(
            fs::read_to_string(final_dir.join("notes.txt")).unwrap(),
            "mine"
        );
        let summary = fs::read_to_string(final_dir.join("summary.json")).unwrap();
        assert_eq!(summary, "{\n  \"ok\": true\n}\n");
        let matrix = crate::read_matrix(&final_dir.join("coupling/B/f.npy")).unwrap();
        assert_eq!(matrix, array![[1.0, 2.0]]);
    }

    #[test]
    fn commit_creates_a_missing_final_directory() {
        let root = tempfile::tempdir().unwrap();
        let final_dir = root.path().join("new");
        let out = OutputDir::create(&final_dir).unwrap();
        write_json(&out.path("a.json"), &[1, 2]).unwrap();
        out.commit().unwrap();
        assert_eq!(entries(root.path()), ["new"]);
        assert_eq!(entries(&final_dir), ["a.json"]);
    }

    #[test]
    #[should_panic(expected = "must be relative")]
    fn paths_cannot_escape_the_directory() {
        let root = tempfile::tempdir().unwrap();
        let out = OutputDir::create(&root.path().join("run")).unwrap();
        let _ = out.path("../elsewhere.json");
    }
}

//! A run's output directory, which holds exactly one run: the run writes a complete directory
//! beside the final one, and only when it has succeeded is that directory swapped in for the old
//! one, as a whole. No file of an older run survives beside the new `summary.json`, and a run
//! that fails, is interrupted or is killed leaves the previous run as it was.
//!
//! For `DIR = out/run`:
//!
//! * `out/.run.psa-lock` is locked (`flock`) for the whole run, so a second run on `DIR` fails at
//!   once with a message naming the first (its pid, start time and command, which the lock file
//!   holds). The kernel drops the lock when the process ends, however it ends.
//! * `out/.run.psa-tmp-XXXXXX` is the staging directory the run writes into. On success it
//!   receives [`RUN_MARKER`] (which run wrote it, and the files it holds) and is renamed to `DIR`;
//!   the old `DIR` is first renamed to `out/.run.psa-old-XXXXXX`, moved back if the second
//!   rename fails, and deleted once the new run is in place.
//! * A `DIR` that psa did not write (it holds files but no [`RUN_MARKER`]) is refused unless the
//!   caller forces it: replacing the directory as a whole would delete the user's files.
//! * Leftovers of a killed run (`.run.psa-tmp-*`, `.run.psa-old-*`) are removed by the next run
//!   on `DIR`, once it holds the lock (a `.psa-old-` directory with no `DIR` beside it is the
//!   previous run, caught between the two renames, and is moved back instead).
//! * SIGINT and SIGTERM: the binary's handler calls [`abandon_unfinished_outputs`], which deletes
//!   every staging directory of this process and keeps any from being swapped in.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::{IoError, WithPath};

/// The file, inside an output directory, that marks it as a psa run's and lists what the run
/// wrote: `{"psa_version", "pid", "command", "started", "finished", "files"}` (JSON; times in
/// seconds since 1970 UTC). A directory without it is not replaced unless forced.
pub const RUN_MARKER: &str = ".psa-run.json";

const STAGING_TAG: &str = ".psa-tmp-";
const ASIDE_TAG: &str = ".psa-old-";
const LOCK_TAG: &str = ".psa-lock";

/// A staged output directory.
///
/// * [`OutputDir::create`]`("out/run", force)` locks `out/run`, checks that it may replace it,
///   removes what a killed run left, and makes the staging directory `out/.run.psa-tmp-XXXXXX`
///   (creating `out/` if missing).
/// * [`OutputDir::path`] and [`OutputDir::subdir`] say where to write inside the staging
///   directory; writers such as [`crate::write_npy_f64`] are atomic inside it too.
/// * [`OutputDir::commit`] writes [`RUN_MARKER`] and swaps the staging directory in for
///   `out/run`: afterwards `out/run` holds this run's files and nothing else.
/// * Dropping an `OutputDir` without committing (an error, a panic that unwinds) deletes the
///   staging directory; `out/run` is untouched.
///
/// If `out/run` is a symbolic link to a directory, the directory it points to is replaced and
/// the link kept.
#[derive(Debug)]
pub struct OutputDir {
    // Fields drop in this order: the staging directory goes before the lock is released.
    staging: Staging,
    _lock: RunLock,
    final_dir: PathBuf,
    /// `final_dir` with a symbolic link resolved: the path that is renamed.
    target: PathBuf,
    run: RunInfo,
}

impl OutputDir {
    /// Starts a run whose results go to `final_dir`. `final_dir` itself is not touched until
    /// [`OutputDir::commit`].
    ///
    /// Fails if `final_dir` is a file; if it is a non-empty directory without [`RUN_MARKER`]
    /// and `force` is false ([`IoError::NotPsaOutput`]); or if another run holds its lock
    /// ([`IoError::Busy`], naming that run).
    pub fn create(final_dir: &Path, force: bool) -> Result<Self, IoError> {
        let target = resolve(final_dir)?;
        let (parent, name) = split(&target)?;
        fs::create_dir_all(&parent).with_path(&parent)?;
        let run = RunInfo::now();
        let lock = RunLock::acquire(&parent.join(format!(".{name}{LOCK_TAG}")), final_dir, &run)?;
        check_replaceable(&target, final_dir, force)?;
        remove_leftovers(&parent, &name, &target);
        let staging = Staging::create(&parent, &name, final_dir, &lock.path)?;
        Ok(OutputDir {
            staging,
            _lock: lock,
            final_dir: final_dir.to_path_buf(),
            target,
            run,
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
        self.staging.path.join(relative)
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
        &self.staging.path
    }

    /// Writes [`RUN_MARKER`] and replaces the final directory with the staging directory.
    ///
    /// On error the final directory is as it was before the run (or, if even moving it back
    /// failed, kept whole under the name [`IoError::PreviousRunKept`] gives).
    pub fn commit(self) -> Result<(), IoError> {
        self.write_marker()?;
        let aside = self.staging.sibling(ASIDE_TAG);
        let moved_aside = {
            let mut active = registry();
            let moved_aside = swap_in(&self.staging.path, &self.target, &aside, &|from, to| {
                fs::rename(from, to)
            })?;
            self.staging.unregister(&mut active);
            moved_aside
        };
        if moved_aside && let Err(err) = fs::remove_dir_all(&aside) {
            tracing::warn!(
                "could not remove the previous run, moved to {}: {err}; the next run on {} removes it",
                aside.display(),
                self.final_dir.display()
            );
        }
        tracing::debug!(dir = %self.final_dir.display(), "committed output directory");
        Ok(())
    }

    fn write_marker(&self) -> Result<(), IoError> {
        let mut files = Vec::new();
        list_files(&self.staging.path, Path::new(""), &mut files)?;
        files.sort();
        let marker = Marker {
            psa_version: env!("CARGO_PKG_VERSION"),
            pid: self.run.pid,
            command: &self.run.command,
            started: self.run.started,
            finished: unix_seconds(SystemTime::now()),
            files,
        };
        crate::write_json(&self.path(RUN_MARKER), &marker)
    }
}

/// What [`abandon_unfinished_outputs`] did; while it lives, no output directory of this process
/// is created, committed or dropped (they wait), so the caller can report and exit.
#[derive(Debug)]
pub struct Abandoned {
    _active: MutexGuard<'static, Vec<Active>>,
    /// The final directories whose runs were abandoned; each is as it was before its run.
    pub dirs: Vec<PathBuf>,
}

/// Deletes the staging directory (and releases the lock file) of every uncommitted
/// [`OutputDir`] of this process, for a signal handler that then exits: the final directories
/// stay as they were. Blocks while a commit is swapping its directory in, so a run is either
/// wholly in place or not at all.
pub fn abandon_unfinished_outputs() -> Abandoned {
    let mut active = registry();
    let dirs = active
        .drain(..)
        .map(|entry| {
            remove_all(&entry.staging);
            let _ = fs::remove_file(&entry.lock);
            entry.final_dir
        })
        .collect();
    Abandoned {
        _active: active,
        dirs,
    }
}

/// An uncommitted staging directory, as the signal handler needs to know it.
#[derive(Debug)]
struct Active {
    staging: PathBuf,
    lock: PathBuf,
    final_dir: PathBuf,
}

static ACTIVE: Mutex<Vec<Active>> = Mutex::new(Vec::new());

fn registry() -> MutexGuard<'static, Vec<Active>> {
    // A panic while holding the registry leaves it consistent (each update is one push or
    // remove), so a poisoned lock is used as it is.
    ACTIVE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The staging directory: registered while it may still be abandoned, deleted on drop unless
/// it has been moved into place (or abandoned) and so unregistered.
#[derive(Debug)]
struct Staging {
    path: PathBuf,
}

impl Staging {
    fn create(parent: &Path, name: &str, final_dir: &Path, lock: &Path) -> Result<Self, IoError> {
        let mut active = registry();
        let path = tempfile::Builder::new()
            .prefix(&format!(".{name}{STAGING_TAG}"))
            .tempdir_in(parent)
            .with_path(parent)?
            .keep();
        active.push(Active {
            staging: path.clone(),
            lock: lock.to_path_buf(),
            final_dir: final_dir.to_path_buf(),
        });
        Ok(Staging { path })
    }

    /// `.NAME.psa-old-XXXXXX` for the staging directory `.NAME.psa-tmp-XXXXXX`.
    fn sibling(&self, tag: &str) -> PathBuf {
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().replacen(STAGING_TAG, tag, 1))
            .unwrap_or_default();
        self.path.with_file_name(name)
    }

    fn unregister(&self, active: &mut Vec<Active>) {
        active.retain(|entry| entry.staging != self.path);
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let mut active = registry();
        // Unregistered: moved into place by commit, or already removed by
        // abandon_unfinished_outputs.
        if active.iter().any(|entry| entry.staging == self.path) {
            self.unregister(&mut active);
            remove_all(&self.path);
        }
    }
}

/// Removes a directory tree, retrying while another thread may still be creating files in it.
fn remove_all(path: &Path) {
    for _ in 0..3 {
        match fs::remove_dir_all(path) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => continue,
            _ => return,
        }
    }
    tracing::warn!("could not remove {}", path.display());
}

/// Puts `staging` at `target`, moving an existing `target` to `aside` first and back if the
/// second rename fails. Returns whether `aside` now holds the previous run.
fn swap_in(
    staging: &Path,
    target: &Path,
    aside: &Path,
    rename: &dyn Fn(&Path, &Path) -> io::Result<()>,
) -> Result<bool, IoError> {
    let had_previous = match fs::symlink_metadata(target) {
        Ok(_) => true,
        Err(err) if err.kind() == io::ErrorKind::NotFound => false,
        Err(err) => return Err(IoError::io(target, err)),
    };
    if had_previous {
        rename(target, aside).with_path(target)?;
    }
    if let Err(cause) = rename(staging, target) {
        if had_previous && rename(aside, target).is_err() {
            return Err(IoError::PreviousRunKept {
                path: target.to_path_buf(),
                kept: aside.to_path_buf(),
                cause,
            });
        }
        return Err(IoError::io(target, cause));
    }
    Ok(had_previous)
}

/// The path to replace: `dir` itself, or the directory a symbolic link `dir` points to.
fn resolve(dir: &Path) -> Result<PathBuf, IoError> {
    match fs::symlink_metadata(dir) {
        Ok(meta) if meta.file_type().is_symlink() => fs::canonicalize(dir).with_path(dir),
        _ => Ok(dir.to_path_buf()),
    }
}

/// The parent directory (`.` for a bare name) and the final name of `dir`.
fn split(dir: &Path) -> Result<(PathBuf, String), IoError> {
    let Some(name) = dir.file_name() else {
        return Err(IoError::NotADirectoryPath {
            path: dir.to_path_buf(),
        });
    };
    let parent = match dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((parent, name.to_string_lossy().into_owned()))
}

/// Whether the run may replace `target`: missing, an empty directory, a psa run's directory, or
/// any directory if forced. `shown` is the path as the user gave it, for messages.
fn check_replaceable(target: &Path, shown: &Path, force: bool) -> Result<(), IoError> {
    let meta = match fs::metadata(target) {
        Ok(meta) => meta,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(IoError::io(shown, err)),
    };
    if !meta.is_dir() {
        return Err(IoError::NotADirectory {
            path: shown.to_path_buf(),
        });
    }
    if force || target.join(RUN_MARKER).is_file() {
        return Ok(());
    }
    let mut names: Vec<String> = fs::read_dir(target)
        .with_path(shown)?
        .map(|entry| entry.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()
        .with_path(shown)?;
    if names.is_empty() {
        return Ok(());
    }
    names.sort();
    let count = names.len();
    names.truncate(3);
    Err(IoError::NotPsaOutput {
        path: shown.to_path_buf(),
        count,
        examples: names,
    })
}

/// Removes what killed runs on `target` left in `parent`: staging directories, and previous runs
/// moved aside (or moves one back if the kill came between the two renames of a commit).
/// Called with the lock held, so no live run owns them. Failures are warnings: they do not
/// concern this run's results.
fn remove_leftovers(parent: &Path, name: &str, target: &Path) {
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    let leftover = |file_name: &str, tag: &str| {
        file_name
            .strip_prefix(&format!(".{name}{tag}"))
            .is_some_and(|suffix| !suffix.is_empty() && suffix.chars().all(char::is_alphanumeric))
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if leftover(&file_name, ASIDE_TAG) && fs::symlink_metadata(target).is_err() {
            match fs::rename(&path, target) {
                Ok(()) => tracing::warn!(
                    "moved the previous run back from {} to {} (a run was killed while replacing it)",
                    path.display(),
                    target.display()
                ),
                Err(err) => tracing::warn!("could not move {} back: {err}", path.display()),
            }
        } else if leftover(&file_name, STAGING_TAG) || leftover(&file_name, ASIDE_TAG) {
            tracing::info!("removing {}, left by a run that was killed", path.display());
            remove_all(&path);
        }
    }
}

/// Appends the paths of the files under `dir` (relative to the staging root, `/`-separated).
fn list_files(dir: &Path, relative: &Path, files: &mut Vec<String>) -> Result<(), IoError> {
    for entry in fs::read_dir(dir).with_path(dir)? {
        let entry = entry.with_path(dir)?;
        let path = relative.join(entry.file_name());
        if entry.file_type().with_path(&entry.path())?.is_dir() {
            list_files(&entry.path(), &path, files)?;
        } else {
            let components: Vec<_> = path.iter().map(|c| c.to_string_lossy()).collect();
            files.push(components.join("/"));
        }
    }
    Ok(())
}

/// Which process is running, for the lock file and the marker.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RunInfo {
    pid: u32,
    /// Seconds since 1970 UTC.
    started: u64,
    command: Vec<String>,
}

impl RunInfo {
    fn now() -> Self {
        let mut command: Vec<String> = std::env::args_os()
            .map(|arg| arg.to_string_lossy().into_owned())
            .collect();
        // The program by its name, not the path it was started from.
        if let Some(program) = command.first_mut()
            && let Some(name) = Path::new(program.as_str()).file_name()
        {
            *program = name.to_string_lossy().into_owned();
        }
        RunInfo {
            pid: std::process::id(),
            started: unix_seconds(SystemTime::now()),
            command,
        }
    }

    /// "pid 4242, started 2026-05-01 09:30:00 UTC: psa match --out res"
    fn describe(&self) -> String {
        format!(
            "pid {}, started {}: {}",
            self.pid,
            utc(self.started),
            self.command.join(" ")
        )
    }
}

#[derive(Serialize)]
struct Marker<'a> {
    psa_version: &'static str,
    pid: u32,
    command: &'a [String],
    started: u64,
    finished: u64,
    files: Vec<String>,
}

/// The lock on one output directory: an exclusive `flock` on `.NAME.psa-lock` beside it, which
/// holds the [`RunInfo`] of the run that has it. The file is removed, still locked, when the run
/// ends.
#[derive(Debug)]
struct RunLock {
    path: PathBuf,
    _file: File,
}

impl RunLock {
    fn acquire(path: &Path, dir: &Path, run: &RunInfo) -> Result<Self, IoError> {
        // A run that ends removes the file and then unlocks it: a run that opened the file just
        // before may then lock a file that is no longer there. It notices and tries again.
        for _ in 0..16 {
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
                .with_path(path)?;
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => {
                    return Err(IoError::Busy {
                        path: dir.to_path_buf(),
                        holder: holder(&mut file, path),
                    });
                }
                Err(TryLockError::Error(err)) => return Err(IoError::io(path, err)),
            }
            if !is_same_file(&file, path) {
                continue;
            }
            file.set_len(0).with_path(path)?;
            serde_json::to_writer(&mut file, run).map_err(|err| IoError::io(path, err.into()))?;
            file.flush().with_path(path)?;
            return Ok(RunLock {
                path: path.to_path_buf(),
                _file: file,
            });
        }
        Err(IoError::Busy {
            path: dir.to_path_buf(),
            holder: "other runs keep taking the lock".to_owned(),
        })
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // Removed while still locked; the lock goes with the file handle, dropped after this.
        let _ = fs::remove_file(&self.path);
    }
}

/// Who holds a lock, from the lock file's contents.
fn holder(file: &mut File, path: &Path) -> String {
    let mut text = String::new();
    let _ = file.read_to_string(&mut text);
    match serde_json::from_str::<RunInfo>(&text) {
        Ok(run) => run.describe(),
        Err(_) => format!("it is starting; its lock is {}", path.display()),
    }
}

/// Whether the open `file` is still the file at `path`.
#[cfg(unix)]
fn is_same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), fs::metadata(path)) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    }
}

/// Elsewhere files in use cannot be removed, so the file at `path` is the one opened.
#[cfg(not(unix))]
fn is_same_file(_file: &File, path: &Path) -> bool {
    path.exists()
}

fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// `2026-05-01 09:30:00 UTC` for seconds since 1970 (the proleptic Gregorian calendar).
fn utc(seconds: u64) -> String {
    let (days, rest) = (seconds / 86_400, seconds % 86_400);
    // Howard Hinnant's civil_from_days, for days since 1970-01-01.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::entries;
    use crate::write::{write_json, write_npy_f64};
    use ndarray::array;
    use std::cell::Cell;

    fn staging_name(out: &OutputDir) -> String {
        out.staging_dir()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned()
    }

    /// A directory holding a previous psa run: `summary.json`, `coupling/old.npy`, the marker.
    fn previous_run(final_dir: &Path) {
        let out = OutputDir::create(final_dir, false).unwrap();
        write_json(&out.path("summary.json"), &"old").unwrap();
        write_json(&out.subdir("coupling").unwrap().join("old.npy"), &0).unwrap();
        out.commit().unwrap();
    }

    fn read(path: &Path) -> String {
        fs::read_to_string(path).unwrap()
    }

    #[test]
    fn dropped_output_leaves_no_trace() {
        let root = tempfile::tempdir().unwrap();
        let final_dir = root.path().join("run");
        {
            let out = OutputDir::create(&final_dir, false).unwrap();
            assert!(staging_name(&out).starts_with(".run.psa-tmp-"));
            assert_eq!(
                entries(root.path()),
                [".run.psa-lock".to_owned(), staging_name(&out)]
            );
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
        previous_run(&final_dir);
        let before = entries(&final_dir);
        let out = OutputDir::create(&final_dir, false).unwrap();
        write_json(&out.path("summary.json"), &2).unwrap();
        drop(out);
        assert_eq!(entries(root.path()), ["run"]);
        assert_eq!(entries(&final_dir), before);
        assert_eq!(read(&final_dir.join("summary.json")), "\"old\"\n");
    }

    #[test]
    fn commit_replaces_the_previous_run_as_a_whole() {
        let root = tempfile::tempdir().unwrap();
        let final_dir = root.path().join("results").join("run");
        previous_run(&final_dir);
        assert_eq!(
            entries(&final_dir),
            [RUN_MARKER, "coupling", "summary.json"]
        );

        let out = OutputDir::create(&final_dir, false).unwrap();
        write_json(&out.path("summary.json"), &serde_json::json!({"ok": true})).unwrap();
        let coupling = out.subdir("coupling/B").unwrap();
        write_npy_f64(&coupling.join("f.npy"), array![[1.0, 2.0]].view()).unwrap();
        out.commit().unwrap();

        assert_eq!(entries(final_dir.parent().unwrap()), ["run"]);
        assert_eq!(
            entries(&final_dir),
            [RUN_MARKER, "coupling", "summary.json"]
        );
        assert_eq!(
            entries(&final_dir.join("coupling")),
            ["B"],
            "old.npy is gone"
        );
        assert_eq!(
            read(&final_dir.join("summary.json")),
            "{\n  \"ok\": true\n}\n"
        );
        let matrix = crate::read_matrix(&final_dir.join("coupling/B/f.npy")).unwrap();
        assert_eq!(matrix, array![[1.0, 2.0]]);

        let marker: serde_json::Value =
            serde_json::from_str(&read(&final_dir.join(RUN_MARKER))).unwrap();
        assert_eq!(
            marker["files"],
            serde_json::json!(["coupling/B/f.npy", "summary.json"])
        );
        assert_eq!(marker["pid"], std::process::id());
        let (started, finished) = (marker["started"].as_u64(), marker["finished"].as_u64());
        assert!(started.unwrap() <= finished.unwrap());
    }

    #[test]
    fn commit_creates_a_missing_final_directory_and_fills_an_empty_one() {
        let root = tempfile::tempdir().unwrap();
        for (name, exists) in [("new", false), ("empty", true)] {
            let final_dir = root.path().join(name);
            if exists {
                fs::create_dir(&final_dir).unwrap();
            }
            let out = OutputDir::create(&final_dir, false).unwrap();
            write_json(&out.path("a.json"), &[1, 2]).unwrap();
            out.commit().unwrap();
            assert_eq!(entries(&final_dir), [RUN_MARKER, "a.json"]);
        }
        assert_eq!(entries(root.path()), ["empty", "new"]);
    }

    #[test]
    fn a_directory_psa_did_not_write_is_refused_unless_forced() {
        let root = tempfile::tempdir().unwrap();
        let final_dir = root.path().join("mine");
        fs::create_dir(&final_dir).unwrap();
        for name in ["a.txt", "b.txt", "c.txt", "d.txt"] {
            fs::write(final_dir.join(name), name).unwrap();
        }
        let err = OutputDir::create(&final_dir, false)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            format!(
                "{}: holds 4 entries that psa did not write (a.txt, b.txt, c.txt, …) and no \
                 .psa-run.json; psa replaces its output directory as a whole, so choose a new or \
                 empty directory, or pass --force to replace this one",
                final_dir.display()
            )
        );
        assert_eq!(entries(root.path()), ["mine"], "no lock or staging left");

        let out = OutputDir::create(&final_dir, true).unwrap();
        write_json(&out.path("summary.json"), &3).unwrap();
        out.commit().unwrap();
        assert_eq!(entries(&final_dir), [RUN_MARKER, "summary.json"]);
    }

    #[test]
    fn a_file_in_place_of_the_directory_is_named_plainly() {
        let root = tempfile::tempdir().unwrap();
        let file = root.path().join("results.txt");
        fs::write(&file, "data").unwrap();
        for force in [false, true] {
            let err = OutputDir::create(&file, force).unwrap_err().to_string();
            assert_eq!(
                err,
                format!(
                    "{}: exists and is a file, not a directory; psa writes a directory of results \
                     there, so choose another output directory",
                    file.display()
                )
            );
        }
        assert_eq!(read(&file), "data");
        assert_eq!(entries(root.path()), ["results.txt"]);
    }

    #[test]
    fn a_second_run_on_the_same_directory_is_refused_and_told_who_holds_it() {
        let root = tempfile::tempdir().unwrap();
        let final_dir = root.path().join("run");
        let first = OutputDir::create(&final_dir, false).unwrap();
        let err = OutputDir::create(&final_dir, false)
            .unwrap_err()
            .to_string();
        let prefix = format!(
            "{}: another psa run is writing here (pid {}, started 20",
            final_dir.display(),
            std::process::id()
        );
        assert!(err.starts_with(&prefix), "{err}");
        assert!(err.ends_with("; wait for it to finish or choose another output directory"));
        // The refused run took nothing from the first: its staging directory is still there.
        assert!(first.staging_dir().is_dir());
        write_json(&first.path("summary.json"), &1).unwrap();
        first.commit().unwrap();
        assert_eq!(entries(root.path()), ["run"]);
        // Released: the next run goes ahead.
        drop(OutputDir::create(&final_dir, false).unwrap());
    }

    #[test]
    fn leftovers_of_killed_runs_are_removed_by_the_next_run() {
        let root = tempfile::tempdir().unwrap();
        let final_dir = root.path().join("run");
        previous_run(&final_dir);
        for leftover in [".run.psa-tmp-Ab12Cd", ".run.psa-old-Zz9", ".run.psa-tmp-x1"] {
            fs::create_dir_all(root.path().join(leftover).join("coupling")).unwrap();
            fs::write(root.path().join(leftover).join("summary.json"), "x").unwrap();
        }
        // Not leftovers of this directory: another directory's, and a user's look-alike name.
        fs::create_dir(root.path().join(".runs.psa-tmp-abc")).unwrap();
        fs::create_dir(root.path().join(".run.psa-tmp-a.b")).unwrap();
        fs::write(root.path().join(".run.psa-lock"), "").unwrap(); // unlocked: its run died

        let out = OutputDir::create(&final_dir, false).unwrap();
        let mut want = vec![
            ".run.psa-lock".to_owned(),
            staging_name(&out),
            ".run.psa-tmp-a.b".to_owned(),
            ".runs.psa-tmp-abc".to_owned(),
            "run".to_owned(),
        ];
        want.sort();
        assert_eq!(entries(root.path()), want);
        out.commit().unwrap();
        assert_eq!(
            entries(root.path()),
            [".run.psa-tmp-a.b", ".runs.psa-tmp-abc", "run"]
        );
    }

    #[test]
    fn a_run_killed_between_the_two_renames_gets_its_previous_run_back() {
        let root = tempfile::tempdir().unwrap();
        let final_dir = root.path().join("run");
        previous_run(&final_dir);
        let before = entries(&final_dir);
        fs::rename(&final_dir, root.path().join(".run.psa-old-k1ll3d")).unwrap();
        drop(OutputDir::create(&final_dir, false).unwrap());
        assert_eq!(entries(root.path()), ["run"]);
        assert_eq!(entries(&final_dir), before);
    }

    #[test]
    fn a_failed_swap_puts_the_previous_run_back() {
        let root = tempfile::tempdir().unwrap();
        let (target, staging, aside) = (
            root.path().join("run"),
            root.path().join(".run.psa-tmp-1"),
            root.path().join(".run.psa-old-1"),
        );
        fs::create_dir(&target).unwrap();
        fs::write(target.join("summary.json"), "old").unwrap();
        fs::create_dir(&staging).unwrap();
        fs::write(staging.join("summary.json"), "new").unwrap();

        // The second rename (staging into place) fails, as it would on a full or read-only disk.
        let calls = Cell::new(0);
        let failing_second = |from: &Path, to: &Path| {
            calls.set(calls.get() + 1);
            if calls.get() == 2 {
                Err(io::Error::other("no space left on device"))
            } else {
                fs::rename(from, to)
            }
        };
        let err = swap_in(&staging, &target, &aside, &failing_second).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{}: no space left on device", target.display())
        );
        assert_eq!(read(&target.join("summary.json")), "old");
        assert!(!aside.exists());
        assert_eq!(read(&staging.join("summary.json")), "new");

        // If moving it back fails too, the error says where the previous run is kept.
        calls.set(0);
        let failing_after_first = |from: &Path, to: &Path| {
            calls.set(calls.get() + 1);
            if calls.get() >= 2 {
                Err(io::Error::other("I/O error"))
            } else {
                fs::rename(from, to)
            }
        };
        let err = swap_in(&staging, &target, &aside, &failing_after_first).unwrap_err();
        assert!(
            err.to_string()
                .ends_with(&format!("is kept whole in {}", aside.display())),
            "{err}"
        );
        assert_eq!(read(&aside.join("summary.json")), "old");
    }

    #[cfg(unix)]
    #[test]
    fn a_symbolic_link_keeps_pointing_at_the_replaced_directory() {
        let root = tempfile::tempdir().unwrap();
        let real = root.path().join("real");
        previous_run(&real);
        let link = root.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let out = OutputDir::create(&link, false).unwrap();
        write_json(&out.path("new.json"), &1).unwrap();
        out.commit().unwrap();
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(entries(&link), [RUN_MARKER, "new.json"]);
        assert_eq!(entries(root.path()), ["link", "real"]);
    }

    #[test]
    fn utc_dates_follow_the_calendar() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_777_628_096), "2026-05-01 09:34:56 UTC");
    }

    #[test]
    #[should_panic(expected = "must be relative")]
    fn paths_cannot_escape_the_directory() {
        let root = tempfile::tempdir().unwrap();
        let out = OutputDir::create(&root.path().join("run"), false).unwrap();
        let _ = out.path("../elsewhere.json");
    }
}

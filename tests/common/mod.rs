//! The scratch-directory harness shared by the binary's end-to-end tests: a temporary
//! directory, `psa` run inside it, and success/failure helpers.
// Each test crate compiles this module on its own and uses only part of it.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::Output;

use assert_cmd::Command;
use tempfile::TempDir;

/// A scratch directory in which `psa` runs.
pub struct Work {
    pub dir: TempDir,
}

impl Work {
    pub fn new() -> Self {
        Work {
            dir: tempfile::tempdir().expect("a temporary directory"),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `path(name)` as a command-line argument.
    pub fn arg(&self, name: &str) -> String {
        self.path(name).to_string_lossy().into_owned()
    }

    pub fn psa<S: AsRef<OsStr>>(&self, args: impl IntoIterator<Item = S>) -> Output {
        Command::cargo_bin("psa")
            .expect("the psa binary is built")
            .current_dir(self.dir.path())
            .env("XDG_RUNTIME_DIR", self.dir.path())
            .env_remove("RUST_LOG")
            .args(args)
            .output()
            .expect("psa starts")
    }

    /// Runs `psa ARGS`, which must succeed, and returns its standard output.
    pub fn ok(&self, args: &[&str]) -> String {
        let output = self.psa(args);
        assert!(
            output.status.success(),
            "psa {args:?} failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Runs `psa ARGS`, which must fail, and returns its `error:` line.
    pub fn fails(&self, args: &[&str]) -> String {
        let output = self.psa(args);
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(
            !output.status.success(),
            "psa {args:?} should have failed:\n{stderr}"
        );
        stderr
            .lines()
            .find(|l| l.starts_with("error:"))
            .unwrap_or_else(|| panic!("no error line in:\n{stderr}"))
            .to_string()
    }
}

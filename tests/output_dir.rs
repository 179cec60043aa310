//! The output directory holds exactly one run, end to end: the real `psa` binary, real files,
//! real processes and real signals (`kill`). A run replaces DIR as a whole; a directory psa did
//! not write is refused unless `--force`; a second run on a busy DIR fails at once naming the
//! first; SIGINT and SIGTERM leave DIR as it was and no staging directory; what a SIGKILL leaves
//! is removed by the next run; an oversized request is one line, not an abort.
//!
//! The long runs to interrupt are `psa generate images` on a data set that takes many seconds to
//! draw; each is stopped as soon as its staging directory appears, so it costs a fraction of a
//! second.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use ndarray::{Array2, array};
use serde_json::Value;

mod common;
use common::Work;

/// `psa generate tabular` with 2 units per group into `out`: a quick, complete run.
fn quick(out: &str) -> Vec<String> {
    ["generate", "tabular", "--n-per-group", "2", "--out", out]
        .map(str::to_owned)
        .to_vec()
}

/// `psa generate images` that would run for many seconds (12 × 6000 images of 32 × 32 per
/// modality, on one thread; its memory check asks for 1.8 GB).
fn long(out: &str) -> Vec<String> {
    [
        "--threads",
        "1",
        "generate",
        "images",
        "--n-per-group",
        "6000",
        "--size",
        "32",
        "--out",
        out,
    ]
    .map(str::to_owned)
    .to_vec()
}

use psa_testdata::sorted_entries as listing;

/// Every file under `dir`, relative and sorted, with its contents.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(dir: &Path, prefix: &str, out: &mut Vec<(String, Vec<u8>)>) {
        for name in listing(dir) {
            let path = dir.join(&name);
            let relative = format!("{prefix}{name}");
            if path.is_dir() {
                walk(&path, &format!("{relative}/"), out);
            } else {
                out.push((relative, fs::read(&path).unwrap()));
            }
        }
    }
    let mut files = Vec::new();
    walk(dir, "", &mut files);
    files
}

/// The files a run lists in its marker, which must be exactly the files in `dir` besides it.
fn marker_files(dir: &Path) -> Vec<String> {
    let marker: Value =
        serde_json::from_str(&fs::read_to_string(dir.join(".psa-run.json")).unwrap()).unwrap();
    let listed: Vec<String> = marker["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_owned())
        .collect();
    let present: Vec<String> = snapshot(dir)
        .into_iter()
        .map(|(name, _)| name)
        .filter(|name| name != ".psa-run.json")
        .collect();
    assert_eq!(
        listed,
        present,
        "{}: marker and contents differ",
        dir.display()
    );
    listed
}

fn spawn(work: &Work, args: &[String]) -> Child {
    Command::new(assert_cmd::cargo::cargo_bin("psa"))
        .current_dir(work.dir.path())
        .env("XDG_RUNTIME_DIR", work.dir.path())
        .env_remove("RUST_LOG")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("psa starts")
}

/// Waits until `child` has made its staging directory `.NAME.psa-tmp-*` in `parent`.
fn wait_for_staging(child: &mut Child, parent: &Path, name: &str) -> PathBuf {
    let prefix = format!(".{name}.psa-tmp-");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let staging = fs::read_dir(parent)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(&prefix)
            });
        if let Some(staging) = staging {
            return staging;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("psa ended ({status}) before making its staging directory");
        }
        assert!(Instant::now() < deadline, "no staging directory appeared");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn send(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .args(["-s", signal, &child.id().to_string()])
        .status()
        .expect("kill(1) runs");
    assert!(status.success(), "kill -s {signal} failed");
}

fn finish(child: Child) -> (ExitStatus, String) {
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status, stderr)
}

fn error_line(stderr: &str) -> &str {
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "want one error line:\n{stderr}");
    errors[0]
}

/// Scores and labels for `psa match` with the given labels, written into `work`.
fn match_inputs(work: &Work, tag: &str, labels: [&str; 2]) -> Vec<String> {
    let scores: Array2<f64> = array![[2.0, 0.1], [1.5, 0.3], [0.2, 1.9], [0.1, 2.2]];
    let names = |stem: &str| work.arg(&format!("{tag}-{stem}"));
    for e in 1..=2 {
        let scores = if e == 1 {
            scores.clone()
        } else {
            &scores + 0.05
        };
        ndarray_npy::write_npy(work.path(&format!("{tag}-s{e}.npy")), &scores).unwrap();
        let column = format!("{0}\n{0}\n{1}\n{1}\n", labels[0], labels[1]);
        fs::write(work.path(&format!("{tag}-l{e}.txt")), column).unwrap();
    }
    [
        "match".to_owned(),
        "--scores1".to_owned(),
        names("s1.npy"),
        "--labels1".to_owned(),
        names("l1.txt"),
        "--scores2".to_owned(),
        names("s2.npy"),
        "--labels2".to_owned(),
        names("l2.txt"),
        "--backend".to_owned(),
        "cpu".to_owned(),
        "--out".to_owned(),
    ]
    .to_vec()
}

fn run_ok(work: &Work, args: &[String]) {
    let output = work.psa(args);
    assert!(
        output.status.success(),
        "psa {args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn run_fails(work: &Work, args: &[String]) -> String {
    let output = work.psa(args);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "{args:?}:\n{stderr}");
    error_line(&stderr).to_owned()
}

#[test]
fn a_run_replaces_the_previous_run_as_a_whole() {
    let work = Work::new();
    run_ok(&work, &quick("res"));
    assert!(work.path("res/x1.npy").is_file());

    // A match into the directory of a generate run: none of generate's files stay.
    let mut first = match_inputs(&work, "ab", ["a", "b"]);
    first.push("res".into());
    run_ok(&work, &first);
    let files = marker_files(&work.path("res"));
    assert!(files.contains(&"summary.json".to_owned()), "{files:?}");
    assert!(
        !files
            .iter()
            .any(|f| f.starts_with("x1") || f.starts_with("generate"))
    );
    assert_eq!(listing(&work.path("res/coupling")), ["a.npy", "b.npy"]);

    // A match with other labels: the coupling of label b goes with its run.
    let mut second = match_inputs(&work, "ac", ["a", "c"]);
    second.push("res".into());
    run_ok(&work, &second);
    marker_files(&work.path("res"));
    assert_eq!(listing(&work.path("res/coupling")), ["a.npy", "c.npy"]);
    let summary = fs::read_to_string(work.path("res/summary.json")).unwrap();
    assert!(
        summary.contains("ac-s1.npy"),
        "the summary is the second run's"
    );
    // Nothing beside the directory: no lock, no staging, no previous run moved aside.
    let hidden: Vec<String> = listing(work.dir.path())
        .into_iter()
        .filter(|name| name.starts_with('.'))
        .collect();
    assert!(hidden.is_empty(), "{hidden:?}");
}

#[test]
fn an_output_replaced_by_a_directory_in_the_previous_run_does_not_block_the_next() {
    let work = Work::new();
    let mut args = match_inputs(&work, "ab", ["a", "b"]);
    args.push("res".into());
    run_ok(&work, &args);
    // topk_weight.npy is now a non-empty directory: a file cannot be renamed over it.
    let weight = work.path("res/topk_weight.npy");
    fs::remove_file(&weight).unwrap();
    fs::create_dir(&weight).unwrap();
    fs::write(weight.join("keep.txt"), "x").unwrap();

    run_ok(&work, &args);
    let weights: Array2<f32> = ndarray_npy::read_npy(&weight).expect("a .npy file again");
    assert_eq!(weights.nrows(), 4);
    marker_files(&work.path("res"));
}

#[test]
fn a_directory_psa_did_not_write_is_refused_unless_forced() {
    let work = Work::new();
    let mine = work.path("mine");
    fs::create_dir(&mine).unwrap();
    fs::write(mine.join("notes.txt"), "my notes").unwrap();
    let before = listing(work.dir.path());

    let error = run_fails(&work, &quick("mine"));
    assert!(
        error.contains("mine: holds 1 entry that psa did not write (notes.txt)")
            && error.contains("pass --force to replace this one"),
        "{error}"
    );
    assert_eq!(listing(work.dir.path()), before);
    assert_eq!(listing(&mine), ["notes.txt"]);

    let mut forced = quick("mine");
    forced.push("--force".into());
    run_ok(&work, &forced);
    assert!(!mine.join("notes.txt").exists());
    assert!(marker_files(&mine).contains(&"x1.npy".to_owned()));

    // An empty directory is no one's: no --force needed.
    fs::create_dir(work.path("empty")).unwrap();
    run_ok(&work, &quick("empty"));
}

#[test]
fn out_naming_an_existing_file_says_so() {
    let work = Work::new();
    fs::write(work.path("results.txt"), "data").unwrap();
    let error = run_fails(&work, &quick("results.txt"));
    assert_eq!(
        error,
        "error: results.txt: exists and is a file, not a directory; psa writes a directory of \
         results there, so choose another output directory"
    );
    assert_eq!(
        fs::read_to_string(work.path("results.txt")).unwrap(),
        "data"
    );
}

#[test]
fn a_corrupt_npy_header_length_is_named() {
    let work = Work::new();
    let mut args = match_inputs(&work, "ab", ["a", "b"]);
    args.push("res".into());
    let scores = work.path("ab-s1.npy");
    let mut bytes = fs::read(&scores).unwrap();
    bytes[8..10].copy_from_slice(&u16::MAX.to_le_bytes());
    fs::write(&scores, &bytes).unwrap();
    let error = run_fails(&work, &args);
    assert!(
        error.contains(
            "ab-s1.npy: not a valid .npy file: the header claims 65535 bytes but the file has"
        ) && !error.contains("fill whole buffer"),
        "{error}"
    );
}

#[test]
fn interrupts_leave_the_previous_run_and_no_staging() {
    for (signal, code) in [("INT", 130), ("TERM", 143)] {
        let work = Work::new();
        run_ok(&work, &quick("res"));
        let previous = snapshot(&work.path("res"));

        let mut child = spawn(&work, &long("res"));
        let staging = wait_for_staging(&mut child, work.dir.path(), "res");
        send(&child, signal);
        let (status, stderr) = finish(child);
        assert_eq!(status.code(), Some(code), "SIG{signal}: {stderr}");
        assert_eq!(
            error_line(&stderr),
            format!("error: interrupted by SIG{signal}; res is as it was before this run")
        );
        assert!(
            !staging.exists(),
            "SIG{signal}: {} is left",
            staging.display()
        );
        assert_eq!(listing(work.dir.path()), ["res"], "SIG{signal}");
        assert!(snapshot(&work.path("res")) == previous, "SIG{signal}");
    }
}

#[test]
fn what_a_killed_run_leaves_is_removed_by_the_next_run() {
    let work = Work::new();
    run_ok(&work, &quick("res"));
    let mut child = spawn(&work, &long("res"));
    let staging = wait_for_staging(&mut child, work.dir.path(), "res");
    child.kill().unwrap(); // SIGKILL: no handler runs
    let (status, _) = finish(child);
    assert_eq!(status.code(), None, "killed by a signal");
    assert!(staging.is_dir(), "SIGKILL leaves the staging directory");
    assert!(marker_files(&work.path("res")).contains(&"x1.npy".to_owned()));

    let mut next = quick("res");
    next.extend(["--seed".into(), "7".into()]);
    run_ok(&work, &next);
    assert_eq!(listing(work.dir.path()), ["res"], "the leftover is gone");
    let settings = fs::read_to_string(work.path("res/generate.json")).unwrap();
    assert!(settings.contains("\"seed\": 7"), "{settings}");
}

#[test]
fn a_second_run_on_a_busy_directory_fails_at_once_naming_the_first() {
    let work = Work::new();
    let mut first = spawn(&work, &long("res"));
    wait_for_staging(&mut first, work.dir.path(), "res");

    let error = run_fails(&work, &quick("res"));
    assert!(
        first.try_wait().unwrap().is_none(),
        "the second run ended while the first still runs"
    );
    let holder = format!(
        "error: res: another psa run is writing here (pid {}, started ",
        first.id()
    );
    assert!(error.starts_with(&holder), "{error}");
    assert!(
        error.contains(" UTC: psa --threads 1 generate images --n-per-group 6000")
            && error.ends_with("wait for it to finish or choose another output directory"),
        "{error}"
    );

    send(&first, "TERM");
    let (status, stderr) = finish(first);
    assert_eq!(status.code(), Some(143), "{stderr}");
    assert!(listing(work.dir.path()).is_empty(), "nothing was written");
    run_ok(&work, &quick("res"));
}

#[test]
fn a_data_set_larger_than_memory_is_one_line_before_any_work() {
    let work = Work::new();
    for (args, needs) in [
        (
            vec!["generate", "tabular", "--n-per-group", "1000000000"],
            "error: --n-per-group 1000000000 (with --d1 50, --d2 30, --hidden 64) needs 15 TiB \
             for x1.npy and x2.npy (with labels, ids and latents); this machine has ",
        ),
        (
            vec!["generate", "images", "--n-per-group", "1000000000"],
            "error: --n-per-group 1000000000 needs 270 TiB for x1.npy and x2.npy (with labels, \
             ids and latents); this machine has ",
        ),
        (
            vec![
                "generate",
                "images",
                "--n-per-group",
                "18446744073709551615",
            ],
            "error: --n-per-group 18446744073709551615 needs more than 16 EiB for x1.npy and \
             x2.npy (with labels, ids and latents); this machine has ",
        ),
        (
            vec![
                "generate",
                "tabular",
                "--n-per-group",
                "1",
                "--d1",
                "18446744073709551615",
            ],
            "needs more than 16 EiB",
        ),
    ] {
        let mut args: Vec<String> = args.into_iter().map(str::to_owned).collect();
        args.extend(["--out".into(), "big".into()]);
        let error = run_fails(&work, &args);
        assert!(error.contains(needs), "{error}\nwant: {needs}");
        assert!(error.ends_with(" available"), "{error}");
    }
    assert!(listing(work.dir.path()).is_empty());
}

//! `abandon_unfinished_outputs`, as a signal handler calls it. In its own test binary: it acts
//! on every output directory of the process, which would disturb other tests running beside it.

use std::fs;

use psa_io::{OutputDir, RUN_MARKER, abandon_unfinished_outputs, write_json};
use psa_testdata::sorted_entries as entries;

#[test]
fn abandoning_removes_every_staging_directory_and_keeps_previous_runs() {
    let root = tempfile::tempdir().unwrap();
    let (old, new, done) = (
        root.path().join("old"),
        root.path().join("new"),
        root.path().join("done"),
    );
    let previous = OutputDir::create(&old, false).unwrap();
    write_json(&previous.path("summary.json"), &"previous").unwrap();
    previous.commit().unwrap();

    let running_old = OutputDir::create(&old, false).unwrap();
    write_json(&running_old.path("summary.json"), &"unfinished").unwrap();
    let running_new = OutputDir::create(&new, false).unwrap();
    running_new.subdir("coupling").unwrap();
    let committed = OutputDir::create(&done, false).unwrap();
    committed.commit().unwrap();

    let abandoned = abandon_unfinished_outputs();
    let mut dirs = abandoned.dirs.clone();
    dirs.sort();
    assert_eq!(dirs, [new.clone(), old.clone()]);
    drop(abandoned);

    assert_eq!(entries(root.path()), ["done", "old"], "no staging, no lock");
    assert_eq!(entries(&old), [RUN_MARKER, "summary.json"]);
    assert_eq!(
        fs::read_to_string(old.join("summary.json")).unwrap(),
        "\"previous\"\n"
    );
    // Dropping abandoned runs afterwards is harmless, and their directories are free again.
    drop(running_old);
    drop(running_new);
    assert_eq!(entries(root.path()), ["done", "old"]);
    drop(OutputDir::create(&old, false).unwrap());
}

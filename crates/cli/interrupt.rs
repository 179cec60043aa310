//! SIGINT and SIGTERM (Ctrl-C, `kill`, a batch scheduler's time limit): psa deletes the output it
//! was staging, so the output directory stays as it was before the run ([`psa_io::OutputDir`]),
//! says "interrupted", and exits with 128 + the signal's number, the status a shell gives a
//! process that the signal ended. Without this, the process would end at once and leave its
//! `.DIR.psa-tmp-*` staging directory behind.
//!
//! The handler runs on its own thread (signal-hook's iterator), not inside the signal handler,
//! so it may take locks, delete files and print. A second signal while it works ends psa at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::logging;

/// Installs the handler; call once, before any output directory is created.
pub fn install() -> std::io::Result<()> {
    let handling = Arc::new(AtomicBool::new(false));
    for signal in [SIGINT, SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(signal, 128 + signal, handling.clone())?;
    }
    let mut signals = Signals::new([SIGINT, SIGTERM])?;
    std::thread::Builder::new()
        .name("psa-signals".into())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                handling.store(true, Ordering::SeqCst);
                interrupted(signal);
            }
        })?;
    Ok(())
}

/// Abandons every unfinished output directory, reports, and exits.
fn interrupted(signal: i32) -> ! {
    let name = if signal == SIGINT {
        "SIGINT"
    } else {
        "SIGTERM"
    };
    // Held until the process exits: no output directory can be committed after this.
    let abandoned = psa_io::abandon_unfinished_outputs();
    let dirs: Vec<String> = abandoned
        .dirs
        .iter()
        .map(|dir| dir.display().to_string())
        .collect();
    let left = match dirs.len() {
        0 => String::new(),
        1 => format!("; {} is as it was before this run", dirs[0]),
        _ => format!("; {} are as they were before this run", dirs.join(", ")),
    };
    logging::suspend(|| eprintln!("error: interrupted by {name}{left}"));
    std::process::exit(128 + signal)
}

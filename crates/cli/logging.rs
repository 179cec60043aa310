//! Logs through `tracing` to stderr, drawn around the progress bars so neither garbles the other.
//!
//! Default level: `info` for psa's own crates, `warn` for dependencies; `-v`/`-vv` raise it,
//! `-q` lowers it to errors, `RUST_LOG` overrides all of them. Colour only when stderr is a
//! terminal (and `NO_COLOR` is unset), so logs redirected to a file or a pipe stay plain text.

use std::io::{IsTerminal, Write};
use std::sync::OnceLock;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

static BARS: OnceLock<MultiProgress> = OnceLock::new();

fn bars() -> &'static MultiProgress {
    BARS.get_or_init(MultiProgress::new)
}

pub fn init(verbose: u8, quiet: bool) {
    let ours = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    let default = format!(
        "{},psa={ours},psa_core={ours},psa_io={ours},psa_gpu={ours},psa_learn={ours}",
        if quiet { "error" } else { "warn" }
    );
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(BarAwareStderr)
        .with_target(verbose > 0)
        .with_ansi(colour())
        .init();
}

/// Colour codes only for a person at a terminal.
fn colour() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Runs `f` with the progress bars hidden (for printing to the terminal).
pub fn suspend<R>(f: impl FnOnce() -> R) -> R {
    bars().suspend(f)
}

/// A progress bar over `len` items, hidden when stderr is not a terminal.
pub fn progress_bar(len: u64, what: &str) -> ProgressBar {
    let bar = bars().add(ProgressBar::new(len));
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {elapsed_precise} (eta {eta})")
            .expect("static template")
            .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

#[derive(Clone, Copy)]
struct BarAwareStderr;

struct SuspendedWriter;

impl Write for SuspendedWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        suspend(|| std::io::stderr().write_all(buf))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> MakeWriter<'a> for BarAwareStderr {
    type Writer = SuspendedWriter;
    fn make_writer(&'a self) -> Self::Writer {
        SuspendedWriter
    }
}

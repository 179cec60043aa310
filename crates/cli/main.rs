//! `psa` — propensity score alignment of unpaired multimodal data.
//!
//! The binary is thin (ripgrep's rule): it parses flags into the libraries' configuration,
//! calls them, and reports errors. One module per subcommand under `commands/`; flag groups that
//! several subcommands share are declared once in `flags`; `hardware` picks the backend once per
//! process.

mod classify;
mod commands;
mod flags;
mod hardware;
mod inputs;
mod interrupt;
mod logging;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Align cells measured by different, destructive assays, via propensity scores and entropic
/// optimal transport (Xi et al., NeurIPS 2024).
#[derive(Debug, Parser)]
#[command(name = "psa", version, about, long_about = None, propagate_version = true)]
struct Cli {
    /// More log output (-v debug, -vv trace). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Only errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    /// Worker threads for the CPU backend (default: all cores).
    #[arg(long, global = true, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    threads: Option<u64>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Match two modalities within label groups: from classifier scores, or training the
    /// propensity classifiers first (--x1/--x2).
    Match(Box<commands::matching::MatchArgs>),
    /// Write any output of a finished run again (top-k, projection, pseudo-pairs, dense
    /// couplings) from its run directory, without solving.
    Export(Box<commands::export::ExportArgs>),
    /// Train one modality's propensity classifier and save it (burn weights + model.json).
    Train(Box<commands::train::TrainArgs>),
    /// Write a saved classifier's logits for new rows.
    Score(commands::train::ScoreArgs),
    /// Run the whole method on a built-in synthetic data set and print its metrics.
    Demo(Box<commands::demo::DemoArgs>),
    /// Time the Sinkhorn kernels on a generated problem, GPU against the CPU reference.
    Bench(commands::bench::BenchArgs),
    /// Time classifier training (samples/s), burn-wgpu against burn-ndarray.
    BenchTrain(commands::bench_train::BenchTrainArgs),
    /// Write the paper's synthetic data (images, or a tabular analogue) with its ground truth.
    Generate(commands::generate::GenerateArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.verbose, cli.quiet);
    if let Err(err) = interrupt::install() {
        tracing::warn!(
            "cannot handle SIGINT/SIGTERM ({err}); an interrupted run leaves its staging directory"
        );
    }
    if let Some(threads) = cli.threads
        && let Err(err) = rayon::ThreadPoolBuilder::new()
            .num_threads(threads as usize)
            .build_global()
    {
        eprintln!("error: --threads: {err}");
        return ExitCode::from(2);
    }
    let result = match cli.command {
        Command::Match(args) => commands::matching::run(*args),
        Command::Export(args) => commands::export::run(*args),
        Command::Train(args) => commands::train::run_train(*args),
        Command::Score(args) => commands::train::run_score(args),
        Command::Demo(args) => commands::demo::run(*args),
        Command::Bench(args) => commands::bench::run(args),
        Command::BenchTrain(args) => commands::bench_train::run(args),
        Command::Generate(args) => commands::generate::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let message = user_message(&err);
            logging::suspend(|| eprintln!("error: {message}"));
            ExitCode::from(1)
        }
    }
}

/// The error as the user should read it: the libraries name option fields (`max_iter`), the
/// user typed flags (`--max-iter`).
fn user_message(err: &anyhow::Error) -> String {
    let option = err.chain().find_map(|cause| {
        let core = cause.downcast_ref::<psa_core::CoreError>().or_else(|| {
            match cause.downcast_ref::<psa_core::MatcherError>() {
                Some(psa_core::MatcherError::Core(core)) => Some(core),
                _ => None,
            }
        });
        match core {
            Some(psa_core::CoreError::InvalidOption { option, message }) => {
                Some(format!("{}: {message}", flags::flag_of_field(option)))
            }
            _ => None,
        }
    });
    option.unwrap_or_else(|| format!("{err:#}"))
}

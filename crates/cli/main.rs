//! `psa` — propensity score alignment of unpaired multimodal data.
//!
//! The binary is thin: it parses flags, reads files through `psa-io`, hands a `Problem` to a
//! matcher from `psa-core` (CPU) or `psa-gpu`, and writes results. One file per subcommand.

mod bench;
mod bench_train;
mod classify;
mod demo;
mod engine;
mod generate;
mod inputs;
mod interrupt;
mod logging;
mod match_cmd;
mod pipeline;
mod train_cmd;

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
    Match(Box<match_cmd::MatchArgs>),
    /// Train one modality's propensity classifier and save it (burn weights + model.json).
    Train(Box<train_cmd::TrainArgs>),
    /// Write a saved classifier's logits for new rows.
    Score(train_cmd::ScoreArgs),
    /// Run the whole method on a built-in synthetic data set and print its metrics.
    Demo(demo::DemoArgs),
    /// Time the Sinkhorn kernels on a generated problem, GPU against the CPU reference.
    Bench(bench::BenchArgs),
    /// Time classifier training (samples/s), burn-wgpu against burn-ndarray.
    BenchTrain(bench_train::BenchTrainArgs),
    /// Write the paper's synthetic data (images, or a tabular analogue) with its ground truth.
    Generate(generate::GenerateArgs),
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
        Command::Match(args) => match_cmd::run(*args),
        Command::Train(args) => train_cmd::run_train(*args),
        Command::Score(args) => train_cmd::run_score(args),
        Command::Demo(args) => demo::run(args),
        Command::Bench(args) => bench::run(args),
        Command::BenchTrain(args) => bench_train::run(args),
        Command::Generate(args) => generate::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            logging::suspend(|| eprintln!("error: {err:#}"));
            ExitCode::from(1)
        }
    }
}

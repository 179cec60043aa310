//! `psa export`: any output of a finished run again, from its run directory, without solving.
//!
//! `psa match` leaves under `DIR/run/` the scores it solved on, the group membership and the
//! potentials ([`psa_io::run`]); `psa export --run DIR --out DIR2` reloads them and writes the
//! outputs asked for now (`--topk`, `--mass`, `--project2`, `--pseudo-pairs`, `--dense-max`),
//! identical to what `psa match` would have written with those flags, with no Sinkhorn
//! iteration. `DIR2` is itself a complete run directory.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use psa_io::OutputDir;
use serde::Serialize;

use crate::commands::matching::{report, summary_of};
use crate::flags::{HardwareArgs, INPUTS, OutputArgs, SeedArg};
use crate::hardware::Hardware;

#[derive(Debug, Args, Serialize)]
pub struct ExportArgs {
    /// A run directory written by `psa match` (or by `psa export`).
    #[arg(long, value_name = "DIR", help_heading = INPUTS)]
    pub run: PathBuf,
    /// Where to write the outputs, replaced as a whole when the export succeeds.
    #[arg(long, value_name = "DIR2", help_heading = INPUTS)]
    pub out: PathBuf,
    /// Replace DIR2 even if it holds files psa did not write (they are deleted).
    #[arg(long, help_heading = INPUTS)]
    pub force: bool,
    #[command(flatten)]
    #[serde(flatten)]
    pub outputs: OutputArgs,
    #[command(flatten)]
    #[serde(flatten)]
    pub seed: SeedArg,
    #[command(flatten)]
    #[serde(flatten)]
    pub hardware: HardwareArgs,
}

pub fn run(args: ExportArgs) -> Result<()> {
    let loaded = psa_io::read_run(&args.run)?;
    let manifest = loaded.manifest.clone();
    let project2 = match &args.outputs.project2 {
        Some(path) => {
            let y = psa_io::read_matrix(path)?;
            if y.nrows() != manifest.n2_total {
                anyhow::bail!(
                    "{} has {} rows but the run's modality 2 has {}",
                    path.display(),
                    y.nrows(),
                    manifest.n2_total
                );
            }
            Some(y)
        }
        None => None,
    };
    let out = OutputDir::create(&args.out, args.force)?;
    let hardware = Hardware::select(args.hardware.backend)?;
    let matcher = hardware.matcher(args.hardware.gpu_cost)?;
    tracing::info!(
        "reloaded {} ({} groups, {}); computing outputs on {} without solving",
        args.run.display(),
        manifest.groups.len(),
        manifest.method.name(),
        matcher.name()
    );
    let names = loaded.names.clone();
    let solved = loaded.solved(matcher.as_ref())?;
    let mut request = args.outputs.request(project2, args.seed.seed);
    // matches.h5ad records the options of the run that solved the coupling.
    request.options = manifest.options.clone().into();
    request.names = names;
    let files = psa_io::write_results(solved.as_ref(), &request, &out)?;
    psa_io::write_run(
        solved.as_ref(),
        manifest.options.clone(),
        manifest.inputs.clone(),
        request.names.as_ref(),
        &out,
    )?;
    let mut options = serde_json::to_value(&args)?
        .as_object()
        .cloned()
        .expect("ExportArgs serialises to an object");
    options.insert("exported_from".into(), manifest.options.into());
    let summary = summary_of(solved.as_ref(), &[], &files, options);
    psa_io::write_json(&out.path("summary.json"), &summary)?;
    out.commit()?;
    report(&summary, &args.out);
    Ok(())
}

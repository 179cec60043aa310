//! What psa sees in an AnnData file: its matrices, `obs` columns and obs names, and the time to
//! read each matrix.
//!
//! ```sh
//! cargo run --release -p psa-io --example h5ad_info -- rna.h5ad
//! ```

use std::path::PathBuf;
use std::time::Instant;

use psa_io::{H5adFile, H5adMatrix, IoError};

fn main() -> Result<(), IoError> {
    let Some(path) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: h5ad_info FILE.h5ad");
        std::process::exit(2);
    };
    let file = H5adFile::open(&path)?;
    let mut matrices = vec![H5adMatrix::X];
    matrices.extend(file.layers()?.into_iter().map(H5adMatrix::Layer));
    matrices.extend(file.obsm()?.into_iter().map(H5adMatrix::Obsm));
    for which in &matrices {
        let started = Instant::now();
        match file.matrix(which) {
            Ok(matrix) => {
                let seconds = started.elapsed().as_secs_f64();
                let (rows, columns) = matrix.dim();
                println!("{which}: {rows} × {columns}, read in {seconds:.3} s");
            }
            Err(err) => println!("{which}: {err}"),
        }
    }
    let names = file.obs_names()?;
    let first: Vec<&str> = names.iter().take(3).map(String::as_str).collect();
    println!("obs_names: {} ({}, ...)", names.len(), first.join(", "));
    for column in file.obs_columns()? {
        match file.obs_column(&column) {
            Ok(values) => {
                let mut distinct = values.clone();
                distinct.sort();
                distinct.dedup();
                println!("obs/{column}: {} distinct values", distinct.len());
            }
            Err(err) => println!("obs/{column}: {err}"),
        }
    }
    Ok(())
}

//! One module per subcommand: each parses its flags into the libraries' configuration, calls
//! them, and reports.

pub mod bench;
pub mod bench_train;
pub mod demo;
pub mod export;
pub mod generate;
pub mod matching;
pub mod predict;
pub mod train;

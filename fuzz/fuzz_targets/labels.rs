//! Labels or ids from a text column, optionally named as `FILE:COLUMN`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| psa_io::fuzzing::labels(psa_io::fuzzing::scratch_dir(), data));

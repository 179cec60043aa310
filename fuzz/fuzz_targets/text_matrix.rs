//! A `.csv`, `.tsv` or `.txt` matrix (the first byte picks the extension).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| psa_io::fuzzing::text_matrix(psa_io::fuzzing::scratch_dir(), data));

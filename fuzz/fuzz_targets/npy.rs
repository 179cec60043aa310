//! A `.npy` file read as a matrix, as labels and as ids.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| psa_io::fuzzing::npy(psa_io::fuzzing::scratch_dir(), data));

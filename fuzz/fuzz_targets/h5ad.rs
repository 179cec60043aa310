//! Arbitrary bytes as an `.h5ad` file: psa-io's reader must return a value or an error for every
//! input, within its memory budget, and never panic or abort. `read_h5ad_everything` reads every
//! matrix (X, layers, obsm), every obs column and the obs names; `tests/fuzz_corpus.rs` of psa-io
//! replays this target's corpus through the same function.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    psa_io::read_h5ad_everything(data);
});

//! Fuzzes the election manifest (signed by the authority): decode, verify, batch verify and re-sign (see `edgevote_fuzz::jws_doc`).
#![no_main]

use edgevote_shared::manifest::ElectionManifest;

libfuzzer_sys::fuzz_target!(|data: &[u8]| edgevote_fuzz::jws_doc::fuzz::<ElectionManifest>(data));

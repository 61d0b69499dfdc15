//! Fuzzes the receipt (signed by an edge): decode, verify, batch verify and re-sign (see `edgevote_fuzz::jws_doc`).
#![no_main]

use edgevote_shared::Receipt;

libfuzzer_sys::fuzz_target!(|data: &[u8]| edgevote_fuzz::jws_doc::fuzz::<Receipt>(data));

//! Fuzzes the vote token (a JWT signed by the authority): decode, verify, batch verify and re-sign (see `edgevote_fuzz::jws_doc`).
#![no_main]

use edgevote_shared::VoteToken;

libfuzzer_sys::fuzz_target!(|data: &[u8]| edgevote_fuzz::jws_doc::fuzz::<VoteToken>(data));

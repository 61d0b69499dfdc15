//! Fuzzes the published tally (signed by the log key): decode, verify, batch verify and re-sign (see `edgevote_fuzz::jws_doc`).
#![no_main]

use edgevote_shared::tally::PublishedTally;

libfuzzer_sys::fuzz_target!(|data: &[u8]| edgevote_fuzz::jws_doc::fuzz::<PublishedTally>(data));

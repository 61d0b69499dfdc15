//! Fuzzes the queue envelope (a batch of ballots signed by an edge): decode, verify, batch verify and re-sign (see `edgevote_fuzz::jws_doc`).
#![no_main]

use edgevote_shared::envelope::QueueEnvelope;

libfuzzer_sys::fuzz_target!(|data: &[u8]| edgevote_fuzz::jws_doc::fuzz::<QueueEnvelope>(data));

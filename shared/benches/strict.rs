//! What one strict Ed25519 verification costs: `ed25519_dalek`'s `verify_strict`, then
//! `strict::verify` (the same answer without decompressing `R`), then a `StrictKey` that holds
//! its table of multiples (what an edge's or collector's authority key gets after
//! `TABLE_AFTER_USES` verifications), and what building that table costs.
//!
//! `cargo bench -p edgevote-shared --bench strict`: medians of interleaved rounds, microseconds
//! per verification.

// A benchmark panics on a broken setup by design.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::time::Instant;

use ed25519_dalek::{Signer, SigningKey};
use edgevote_shared::strict::{StrictKey, TABLE_AFTER_USES, verify};

const SIGNATURES: usize = 200;
const ROUNDS: usize = 21;

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// Microseconds per signature of `check` over every (message, signature).
fn per_signature(signed: &[(Vec<u8>, [u8; 64])], check: impl Fn(&[u8], &[u8; 64]) -> bool) -> f64 {
    let start = Instant::now();
    for (message, signature) in signed {
        assert!(check(message, signature));
    }
    start.elapsed().as_secs_f64() * 1e6 / signed.len() as f64
}

fn main() {
    let signer = SigningKey::from_bytes(&[3; 32]);
    let key = signer.verifying_key();
    let signed: Vec<(Vec<u8>, [u8; 64])> = (0..SIGNATURES)
        .map(|i| {
            let message = format!("{{\"jti\":\"t{i}\",\"sub\":\"voter-{i}\",\"aud\":\"bench\"}}");
            let signature = signer.sign(message.as_bytes()).to_bytes();
            (message.into_bytes(), signature)
        })
        .collect();
    let start = Instant::now();
    let tabled = StrictKey::new(key);
    for _ in 0..TABLE_AFTER_USES {
        assert!(tabled.verify(&signed[0].0, &signed[0].1));
    }
    assert!(tabled.has_table());
    let warm_up_ms = start.elapsed().as_secs_f64() * 1e3;
    let (mut reference, mut uncached, mut with_table) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        reference.push(per_signature(&signed, |m, s| {
            key.verify_strict(m, &ed25519_dalek::Signature::from_bytes(s))
                .is_ok()
        }));
        uncached.push(per_signature(&signed, |m, s| verify(&key, m, s)));
        with_table.push(per_signature(&signed, |m, s| tabled.verify(m, s)));
    }
    let reference = median(reference);
    let rows = [
        ("ed25519_dalek verify_strict", reference),
        ("strict::verify (R not decompressed)", median(uncached)),
        ("StrictKey with its table", median(with_table)),
    ];
    for (name, micros) in rows {
        println!(
            "{name:<40} {micros:7.1} us/signature ({:.2}x verify_strict's time)",
            micros / reference
        );
    }
    println!("a key's first {TABLE_AFTER_USES} verifications and its table: {warm_up_ms:.1} ms");
}

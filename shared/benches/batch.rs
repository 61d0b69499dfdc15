//! What one forged token costs a group commit of 256 votes: token verification with
//! `verify_many` when every token is good, when one is forged (its payload changed under a
//! valid signature, so the batch fails and is halved), and the fallback `verify_many` used
//! before halving (the failed batch, then strict verification of each of the 256).
//!
//! `cargo bench -p edgevote-shared --bench batch`: medians of interleaved rounds, microseconds
//! per group commit, and the signature checks each path made.

// A benchmark panics on a broken setup by design.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::time::Instant;

use edgevote_shared::jws::verify_many_counted;
use edgevote_shared::{
    KeySet, Role, SigningIdentity, VoteToken, b64, decode_unverified, sign, verify_many,
};

const VOTES: usize = 256;
const ROUNDS: usize = 31;

/// The fallback before halving: one batch over all (it fails), then strict verification of
/// each signature (what `verify_many` did for a failed batch), timed on the raw signatures.
fn strict_fallback(tokens: &[&str], authority: &ed25519_dalek::VerifyingKey) -> usize {
    let parts: Vec<(&[u8], ed25519_dalek::Signature)> = tokens
        .iter()
        .map(|t| {
            let (input, signature) = t.rsplit_once('.').unwrap();
            let bytes: [u8; 64] = b64::decode("signature", signature)
                .unwrap()
                .try_into()
                .unwrap();
            (
                input.as_bytes(),
                ed25519_dalek::Signature::from_bytes(&bytes),
            )
        })
        .collect();
    let messages: Vec<&[u8]> = parts.iter().map(|(m, _)| *m).collect();
    let signatures: Vec<_> = parts.iter().map(|(_, s)| *s).collect();
    let batch_keys = vec![*authority; parts.len()];
    assert!(ed25519_dalek::verify_batch(&messages, &signatures, &batch_keys).is_err());
    let valid = parts
        .iter()
        .filter(|(m, s)| authority.verify_strict(m, s).is_ok())
        .count();
    // Parsing and field checks, as verify_many does them once per token either way.
    let parsed = tokens
        .iter()
        .filter(|t| decode_unverified::<VoteToken>(t).is_ok())
        .count();
    assert_eq!(parsed, tokens.len());
    valid
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn main() {
    let authority = SigningIdentity::from_seed(&[1; 32], Role::Authority);
    let keys = KeySet::from_jwks(vec![authority.public_jwk(0)]).unwrap();
    let good: Vec<String> = (0..VOTES)
        .map(|i| {
            let claims = VoteToken {
                jti: format!("t{i}"),
                sub: format!("v{i}"),
                aud: "bench".into(),
                iat: 1_000,
                nbf: 1_000,
                exp: 2_000,
            };
            sign(&authority, &claims).unwrap()
        })
        .collect();
    let culprit = VOTES / 3;
    let forged = {
        let parts: Vec<&str> = good[culprit].split('.').collect();
        let payload =
            br#"{"jti":"forged","sub":"mallory","aud":"bench","iat":1000,"nbf":1000,"exp":2000}"#;
        format!("{}.{}.{}", parts[0], b64::encode(payload), parts[2])
    };
    let clean: Vec<&str> = good.iter().map(String::as_str).collect();
    let mut mixed = clean.clone();
    mixed[culprit] = &forged;
    // The attacker's worst case for halving: culprits spread all over (every 16th).
    let spread_forged: Vec<String> = (0..VOTES)
        .step_by(16)
        .map(|i| {
            let parts: Vec<&str> = good[i].split('.').collect();
            let payload = format!(
                r#"{{"jti":"forged{i}","sub":"mallory","aud":"bench","iat":1000,"nbf":1000,"exp":2000}}"#
            );
            format!("{}.{}.{}", parts[0], b64::encode(payload), parts[2])
        })
        .collect();
    let mut spread = clean.clone();
    for (n, token) in spread_forged.iter().enumerate() {
        spread[n * 16] = token;
    }
    let spread_bad = spread_forged.len();
    let (_, spread_count) = verify_many_counted::<VoteToken>(&spread, &keys);

    let (_, clean_count) = verify_many_counted::<VoteToken>(&clean, &keys);
    let (results, forged_count) = verify_many_counted::<VoteToken>(&mixed, &keys);
    assert_eq!(results.iter().filter(|r| r.is_err()).count(), 1);
    let verifying = authority.verifying_key();

    let (mut t_clean, mut t_halving, mut t_fallback) = (Vec::new(), Vec::new(), Vec::new());
    let (mut t_spread, mut t_spread_fallback) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let start = Instant::now();
        assert!(
            verify_many::<VoteToken>(&clean, &keys)
                .iter()
                .all(Result::is_ok)
        );
        t_clean.push(start.elapsed().as_secs_f64() * 1e6);
        let start = Instant::now();
        assert_eq!(
            verify_many::<VoteToken>(&mixed, &keys)
                .iter()
                .filter(|r| r.is_ok())
                .count(),
            VOTES - 1
        );
        t_halving.push(start.elapsed().as_secs_f64() * 1e6);
        let start = Instant::now();
        assert_eq!(strict_fallback(&mixed, &verifying), VOTES - 1);
        t_fallback.push(start.elapsed().as_secs_f64() * 1e6);
        let start = Instant::now();
        let ok = verify_many::<VoteToken>(&spread, &keys);
        assert_eq!(ok.iter().filter(|r| r.is_ok()).count(), VOTES - spread_bad);
        t_spread.push(start.elapsed().as_secs_f64() * 1e6);
        let start = Instant::now();
        assert_eq!(strict_fallback(&spread, &verifying), VOTES - spread_bad);
        t_spread_fallback.push(start.elapsed().as_secs_f64() * 1e6);
    }
    let (clean, halving, fallback) = (median(t_clean), median(t_halving), median(t_fallback));
    println!("token verification of a group commit of {VOTES} votes (median of {ROUNDS} rounds):");
    println!(
        "  all good:                    {clean:8.0} us  ({:.1} us/vote)  {clean_count:?}",
        clean / VOTES as f64
    );
    println!(
        "  one forged, halving:         {halving:8.0} us  ({:.2}x all good)  {forged_count:?}",
        halving / clean
    );
    println!(
        "  one forged, strict fallback: {fallback:8.0} us  ({:.2}x all good)  1 batch of {VOTES} + {VOTES} strict",
        fallback / clean
    );
    let (spread, spread_fallback) = (median(t_spread), median(t_spread_fallback));
    println!(
        "  {spread_bad} forged, halving:          {spread:8.0} us  ({:.2}x all good)  {spread_count:?}",
        spread / clean
    );
    println!(
        "  {spread_bad} forged, strict fallback:  {spread_fallback:8.0} us  ({:.2}x all good)",
        spread_fallback / clean
    );
}

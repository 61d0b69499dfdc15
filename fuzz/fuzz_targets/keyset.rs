//! Fuzzes the JWK Set parser (`KeySet::parse`) and the single JWK checks.
//!
//! Properties:
//! - a parsed key set holds at most `MAX_KEYS_PER_SET` keys, each a valid Ed25519 point whose
//!   `kid` is its RFC 7638 thumbprint and whose validity window is not empty;
//! - its published JSON parses back to the same set;
//! - a document signed by a fixture key verifies against a fuzzed set only through a key with the
//!   same public key and role (a `kid` cannot be bound to another key);
//! - the same holds for one JWK parsed on its own: it loads into a set, and a second insert of it
//!   is refused as a duplicate;
//! - every refusal carries a stable code.
#![no_main]

use edgevote_fuzz::assert_stable_code;
use edgevote_fuzz::fixture::{Sample, fixture, signed_sample};
use edgevote_shared::bundle::BundleManifest;
use edgevote_shared::keys::{KeySet, MAX_KEYS_PER_SET, PublicJwk, thumbprint};
use edgevote_shared::tally::PublishedTally;
use edgevote_shared::{Receipt, VoteToken, json, verify};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    match KeySet::parse(data) {
        Ok(keys) => check_set(&keys),
        Err(error) => assert_stable_code(error.code()),
    }

    // One JWK on its own (what key files and `insert` handle).
    match json::parse_bounded::<PublicJwk>("JWK", data, 4096) {
        Ok(jwk) => match jwk.verifying_key() {
            Ok(key) => {
                assert_eq!(thumbprint(&key), jwk.kid);
                let mut keys = KeySet::from_jwks(vec![jwk.clone()]).expect("a valid JWK loads");
                let duplicate = keys.insert(jwk).unwrap_err();
                assert_eq!(duplicate.code(), "duplicate_key_id");
                check_set(&keys);
            }
            Err(error) => {
                assert_stable_code(error.code());
                assert!(KeySet::from_jwks(vec![jwk]).is_err());
            }
        },
        Err(error) => assert_stable_code(error.code()),
    }
});

fn check_set(keys: &KeySet) {
    assert!(keys.len() <= MAX_KEYS_PER_SET);
    for jwk in keys.iter() {
        let key = jwk
            .verifying_key()
            .expect("every key of a parsed set is valid");
        assert_eq!(thumbprint(&key), jwk.kid);
        if let Some(until) = jwk.valid_until {
            assert!(jwk.valid_from < until);
            assert!(!jwk.valid_at(until));
        }
        assert!(jwk.valid_at(jwk.valid_from));
        let (found, found_key) = keys.get(&jwk.kid).expect("listed keys can be looked up");
        assert_eq!(found, jwk);
        assert_eq!(found_key, &key);
    }
    let published = keys.to_json_pretty();
    let reparsed = KeySet::parse(published.as_bytes()).expect("a published key set parses");
    assert_eq!(&reparsed, keys, "key set JSON round trip changed the set");
    let doc = keys.to_doc();
    assert_eq!(doc.keys.len(), keys.len());
    assert!(
        doc.keys
            .windows(2)
            .all(|w| (w[0].valid_from, &w[0].kid) < (w[1].valid_from, &w[1].kid))
    );

    verifies_only_through_its_key::<VoteToken>(keys);
    verifies_only_through_its_key::<Receipt>(keys);
    verifies_only_through_its_key::<BundleManifest>(keys);
    verifies_only_through_its_key::<PublishedTally>(keys);
}

/// Verifies a fixture-signed document against `keys`: if that succeeds, the key used must be
/// the fixture key that signed it, with the document's role.
fn verifies_only_through_its_key<T: Sample>(keys: &KeySet) {
    let fx = fixture();
    let compact = signed_sample::<T>();
    match verify::<T>(&compact, keys) {
        Ok(verified) => {
            let signer = fx.current(T::SIGNER);
            assert_eq!(verified.kid, signer.kid());
            let (jwk, key) = keys
                .get(&verified.kid)
                .expect("verify used a key of the set");
            assert_eq!(
                key,
                &signer.verifying_key(),
                "a kid verified with another key"
            );
            assert_eq!(jwk.edgevote_role, T::SIGNER);
        }
        Err(error) => assert_stable_code(error.code()),
    }
}

//! Every way a document can be wrong, each refused with its own stable code.

use edgevote_shared::keys::{parse_public_key, thumbprint, verify_message};
use edgevote_shared::{
    AdmissionError, Ballot, ElectionManifest, KeySet, PublicJwk, Receipt, Role, VoteToken,
    WireError, admit, b64, sign, verify,
};

use crate::common::*;

fn token_code(compact: &str) -> &'static str {
    verify::<VoteToken>(compact, &keyset()).unwrap_err().code()
}

fn admit_code(ballot: Ballot, now: u64) -> &'static str {
    admit(&manifest(), &keyset(), ballot, now)
        .unwrap_err()
        .code()
}

#[test]
fn tampered_payload_is_bad_signature() {
    let mut claims = token_claims("ref-2026");
    claims.sub = "someone-else".into();
    let forged = with_payload(
        &token("ref-2026"),
        serde_json::to_vec(&claims).unwrap().as_slice(),
    );
    assert_eq!(token_code(&forged), "bad_signature");
}

#[test]
fn tampered_signature_is_bad_signature() {
    let compact = token("ref-2026");
    let (rest, sig) = compact.rsplit_once('.').unwrap();
    let mut bytes = b64::decode("sig", sig).unwrap();
    bytes[10] ^= 1;
    assert_eq!(
        token_code(&format!("{rest}.{}", b64::encode(bytes))),
        "bad_signature"
    );
}

#[test]
fn every_single_byte_flip_is_refused() {
    let compact = token("ref-2026");
    for i in 0..compact.len() {
        let mut bytes = compact.clone().into_bytes();
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        let Ok(text) = String::from_utf8(bytes) else {
            continue;
        };
        if text == compact {
            continue;
        }
        assert!(
            verify::<VoteToken>(&text, &keyset()).is_err(),
            "flip at {i} accepted"
        );
    }
}

#[test]
fn unknown_key_id() {
    let stranger = identity(42, Role::Authority);
    let compact = sign(&stranger, &token_claims("ref-2026")).unwrap();
    assert_eq!(token_code(&compact), "unknown_key_id");
}

#[test]
fn header_naming_another_kid_is_refused() {
    let header = format!(
        r#"{{"alg":"EdDSA","kid":"{}","typ":"edgevote-token+jwt"}}"#,
        edge().kid()
    );
    let payload = serde_json::to_vec(&token_claims("ref-2026")).unwrap();
    // Signed by the authority but claiming the edge key: role check fires before the signature.
    let compact = raw_jws(&authority(), &header, &payload);
    assert_eq!(token_code(&compact), "key_role_mismatch");
}

#[test]
fn expired_and_not_yet_valid_tokens() {
    let claims = token_claims("ref-2026");
    assert_eq!(
        claims
            .check_usable("ref-2026", claims.exp)
            .unwrap_err()
            .code(),
        "token_expired"
    );
    assert_eq!(
        claims
            .check_usable("ref-2026", claims.nbf - 1)
            .unwrap_err()
            .code(),
        "token_not_yet_valid"
    );
    let mut expired = token_claims("ref-2026");
    expired.exp = NOW - 1;
    expired.nbf = NOW - 50;
    let mut b = ballot("yes");
    b.token = sign(&authority(), &expired).unwrap();
    assert_eq!(admit_code(b, NOW), "token_expired");
}

#[test]
fn token_for_another_election() {
    let mut b = ballot("yes");
    b.token = token("other-election");
    assert_eq!(admit_code(b, NOW), "wrong_election");
    let mut b = ballot("yes");
    b.election = "other-election".into();
    assert_eq!(admit_code(b, NOW), "wrong_election");
}

#[test]
fn token_presented_as_receipt_and_receipt_as_token() {
    let keys = keyset();
    let err = verify::<Receipt>(&token("ref-2026"), &keys).unwrap_err();
    assert_eq!(err.code(), "wrong_document_type");
    let receipt = admit(&manifest(), &keys, ballot("yes"), NOW)
        .unwrap()
        .receipt("e", "r", NOW * 1000);
    let compact = sign(&edge(), &receipt).unwrap();
    assert_eq!(token_code(&compact), "wrong_document_type");
    let err = verify::<ElectionManifest>(&token("ref-2026"), &keys).unwrap_err();
    assert_eq!(err.code(), "wrong_document_type");
}

#[test]
fn signing_with_a_key_of_the_wrong_role_is_refused() {
    let err = sign(&edge(), &token_claims("ref-2026")).unwrap_err();
    assert_eq!(err.code(), "key_role_mismatch");
}

/// The encoding of the identity point, a small-order point.
const SMALL_ORDER_POINT: [u8; 32] = {
    let mut p = [0u8; 32];
    p[0] = 1;
    p
};

#[test]
fn small_order_public_key_is_refused_in_key_sets() {
    let weak = ed25519_dalek::VerifyingKey::from_bytes(&SMALL_ORDER_POINT).unwrap();
    let mut jwk = PublicJwk::new(&weak, Role::Edge, 0);
    jwk.kid = thumbprint(&weak);
    assert_eq!(KeySet::from_jwks(vec![jwk]).unwrap_err().code(), "weak_key");
    assert_eq!(
        parse_public_key("k", &SMALL_ORDER_POINT)
            .unwrap_err()
            .code(),
        "weak_key"
    );
}

#[test]
fn small_order_forgery_passes_lax_but_not_strict_verification() {
    // With A and R the identity and S = 0, the cofactorless equation [S]B = R + [k]A holds for
    // every message: a "signature" anyone can make. Strict verification must refuse it.
    let weak = ed25519_dalek::VerifyingKey::from_bytes(&SMALL_ORDER_POINT).unwrap();
    let mut forged = [0u8; 64];
    forged[..32].copy_from_slice(&SMALL_ORDER_POINT);
    let signature = ed25519_dalek::Signature::from_bytes(&forged);
    use ed25519_dalek::Verifier;
    assert!(
        weak.verify(b"any message", &signature).is_ok(),
        "lax verify accepts"
    );
    assert!(!verify_message(&weak, b"any message", &forged));
}

#[test]
fn non_canonical_s_is_refused() {
    // S + L verifies under a lax check of the equation but is not the canonical encoding.
    let forged = edgevote_shared::forgery::with_non_canonical_s(&token("ref-2026"));
    assert_eq!(token_code(&forged), "bad_signature");
}

#[test]
fn header_rules() {
    let payload = serde_json::to_vec(&token_claims("ref-2026")).unwrap();
    let kid = authority().kid().to_owned();
    let none = format!(r#"{{"alg":"none","kid":"{kid}","typ":"edgevote-token+jwt"}}"#);
    assert_eq!(
        token_code(&raw_jws(&authority(), &none, &payload)),
        "unsupported_alg"
    );
    let hs = format!(r#"{{"alg":"HS256","kid":"{kid}","typ":"edgevote-token+jwt"}}"#);
    assert_eq!(
        token_code(&raw_jws(&authority(), &hs, &payload)),
        "unsupported_alg"
    );
    let crit =
        format!(r#"{{"alg":"EdDSA","kid":"{kid}","typ":"edgevote-token+jwt","crit":["x"]}}"#);
    assert_eq!(
        token_code(&raw_jws(&authority(), &crit, &payload)),
        "unsupported_header"
    );
    let no_typ = format!(r#"{{"alg":"EdDSA","kid":"{kid}"}}"#);
    assert_eq!(
        token_code(&raw_jws(&authority(), &no_typ, &payload)),
        "malformed_json"
    );
}

#[test]
fn shape_and_size_bounds() {
    assert_eq!(token_code("abc"), "malformed_jws");
    assert_eq!(token_code("a.b.c.d"), "malformed_jws");
    assert_eq!(token_code("a..c"), "malformed_jws");
    assert_eq!(token_code("a=.b.c"), "malformed_base64");
    assert_eq!(token_code(&"a".repeat(5000)), "too_large");
    let deep = format!("{}{}", "[".repeat(50), "]".repeat(50));
    let err = Ballot::parse(deep.as_bytes(), 4096).unwrap_err();
    assert_eq!(err, WireError::TooDeep { max: 6 });
    assert_eq!(
        Ballot::parse(b"{", 4096).unwrap_err().code(),
        "malformed_json"
    );
    assert_eq!(
        Ballot::parse(&[b' '; 5000], 4096).unwrap_err().code(),
        "too_large"
    );
    assert_eq!(
        Ballot::parse(&[0xff, 0xfe], 4096).unwrap_err().code(),
        "malformed_json"
    );
}

#[test]
fn ballot_field_rules() {
    let mut b = ballot("yes");
    b.nonce = b64::encode([1u8; 8]);
    assert_eq!(b.validate().unwrap_err().code(), "invalid_field");
    let json = br#"{"election":"ref-2026","token":"a.b.c","choice":"yes","nonce":"AAAAAAAAAAAAAAAAAAAAAA","extra":1}"#;
    assert_eq!(
        Ballot::parse(json, 4096).unwrap_err().code(),
        "malformed_json"
    );
    let dup = br#"{"election":"a","election":"b","token":"a.b.c","choice":"yes","nonce":"AAAAAAAAAAAAAAAAAAAAAA"}"#;
    assert_eq!(
        Ballot::parse(dup, 4096).unwrap_err().code(),
        "malformed_json"
    );
    let huge = br#"{"election":"a","token":"a.b.c","choice":"yes","nonce":"AAAAAAAAAAAAAAAAAAAAAA","n":1e999999}"#;
    assert!(Ballot::parse(huge, 4096).is_err());
}

#[test]
fn admission_rules() {
    assert!(matches!(
        admit(&manifest(), &keyset(), ballot("yes"), NOW + 7200),
        Err(AdmissionError::ElectionClosed { .. })
    ));
    assert_eq!(admit_code(ballot("yes"), NOW + 7200), "election_closed");
    assert_eq!(admit_code(ballot("maybe"), NOW), "invalid_choice");
}

#[test]
fn key_not_valid_before_its_window() {
    let mut claims = token_claims("ref-2026");
    claims.iat = NOW - 7200; // before the key's valid_from (NOW - 3600)
    claims.nbf = NOW - 7200;
    let compact = sign(&authority(), &claims).unwrap();
    assert_eq!(token_code(&compact), "key_not_valid_at_time");
}

#[test]
fn key_set_rules() {
    let mut jwk = authority().public_jwk(0);
    jwk.kid = "not-the-thumbprint".into();
    assert_eq!(
        KeySet::from_jwks(vec![jwk]).unwrap_err().code(),
        "invalid_field"
    );
    let twice = vec![authority().public_jwk(0), authority().public_jwk(5)];
    assert_eq!(
        KeySet::from_jwks(twice).unwrap_err().code(),
        "duplicate_key_id"
    );
    let mut rsa = authority().public_jwk(0);
    rsa.kty = "RSA".into();
    assert_eq!(
        KeySet::from_jwks(vec![rsa]).unwrap_err().code(),
        "invalid_field"
    );
    assert_eq!(
        KeySet::parse(br#"{"keys":[],"x":1}"#).unwrap_err().code(),
        "malformed_json"
    );
}

#[test]
fn codes_are_distinct_for_the_required_cases() {
    let codes = [
        "bad_signature",
        "unknown_key_id",
        "token_expired",
        "wrong_election",
        "wrong_document_type",
        "weak_key",
    ];
    let unique: std::collections::BTreeSet<_> = codes.iter().collect();
    assert_eq!(unique.len(), codes.len());
    for code in codes {
        assert!(edgevote_shared::error::ALL_CODES.contains(&code));
    }
}

/// An attacker holding one edge's key signs for another edge, or with an unbound edge key:
/// receipts and envelopes name their edge and region, and the key set binds each edge key.
#[test]
fn an_edge_key_signs_only_for_its_own_edge_and_region() {
    use edgevote_shared::{EnvelopeVote, QueueEnvelope};
    let admitted = admit(&manifest(), &keyset(), ballot("yes"), NOW).unwrap();
    let code_of = |edge_id: &str, region: &str, keys: &KeySet| {
        let receipt = admitted.receipt(edge_id, region, NOW * 1000);
        match verify::<Receipt>(&sign(&edge(), &receipt).unwrap(), keys) {
            Ok(_) => "ok",
            Err(e) => e.code(),
        }
    };
    assert_eq!(code_of(EDGE_ID, REGION, &keyset()), "ok");
    assert_eq!(code_of("edge-2", REGION, &keyset()), "key_binding_mismatch");
    assert_eq!(code_of(EDGE_ID, "r2", &keyset()), "key_binding_mismatch");
    let unbound = KeySet::from_jwks(vec![
        authority().public_jwk(NOW - 3600),
        edge().public_jwk(NOW - 3600),
    ])
    .unwrap();
    assert_eq!(code_of(EDGE_ID, REGION, &unbound), "key_binding_mismatch");
    // Envelopes too, in a batch.
    let envelope = |edge_id: &str| QueueEnvelope {
        v: 1,
        batch_id: "b.1".into(),
        edge: edge_id.into(),
        region: REGION.into(),
        created_at_ms: NOW * 1000,
        votes: vec![EnvelopeVote {
            ballot: ballot("no"),
            received_at_ms: NOW * 1000,
        }],
    };
    let signed: Vec<String> = [EDGE_ID, "edge-2"]
        .iter()
        .map(|e| sign(&edge(), &envelope(e)).unwrap())
        .collect();
    let refs: Vec<&str> = signed.iter().map(String::as_str).collect();
    let codes: Vec<&str> = edgevote_shared::verify_many::<QueueEnvelope>(&refs, &keyset())
        .iter()
        .map(|r| r.as_ref().map_or_else(|e| e.code(), |_| "ok"))
        .collect();
    assert_eq!(codes, ["ok", "key_binding_mismatch"]);
}

#[test]
fn key_bindings_are_whole_and_on_edge_keys_only() {
    let half = PublicJwk {
        edgevote_region: None,
        ..edge().public_jwk(0).bound_to("e", "r")
    };
    assert_eq!(
        KeySet::from_jwks(vec![half]).unwrap_err().code(),
        "invalid_field"
    );
    let on_authority = authority().public_jwk(0).bound_to("e", "r");
    assert_eq!(
        KeySet::from_jwks(vec![on_authority]).unwrap_err().code(),
        "invalid_field"
    );
    let bad_id = edge().public_jwk(0).bound_to("no spaces", "r");
    assert_eq!(
        KeySet::from_jwks(vec![bad_id]).unwrap_err().code(),
        "invalid_field"
    );
}

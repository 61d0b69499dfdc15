//! Signatures made and checked by Ed25519 held outside this code (a platform's WebCrypto):
//! `sign_external` must produce exactly what `sign` does, and `ExternalCheck::finish` must
//! accept exactly what `verify` accepts, whatever a lax platform says.

use edgevote_shared::admission::check;
use edgevote_shared::envelope::{MAX_ENVELOPE_JWS_BYTES, MAX_ENVELOPE_VOTES};
use edgevote_shared::forgery::{with_non_canonical_s, with_signature, with_small_order_signature};
use edgevote_shared::jws::{
    ExternalCheck, is_small_order_encoding, sign_external, verify_external,
};
use edgevote_shared::token::MAX_TOKEN_BYTES;
use edgevote_shared::{
    EnvelopeVote, QueueEnvelope, Receipt, Role, VoteToken, WireError, b64, sign, verify,
};

use crate::common::{EDGE_ID, NOW, REGION, authority, ballot, edge, keyset, manifest, token};

/// What the platform's Ed25519 says of a check: RFC 8032 verification (ed25519-dalek's
/// non-strict `verify`, as a platform's would be).
fn platform_verdict(check: &ExternalCheck<VoteToken>) -> bool {
    let key = ed25519_dalek::VerifyingKey::from_bytes(check.public_key()).unwrap();
    let signature = ed25519_dalek::Signature::from_bytes(check.signature());
    key.verify_strict(check.message(), &signature).is_ok()
        || ed25519_dalek::Verifier::verify(&key, check.message(), &signature).is_ok()
}

fn receipt() -> Receipt {
    let admitted = check(&manifest(), ballot("yes"), NOW)
        .unwrap()
        .verify(&keyset())
        .unwrap();
    admitted.receipt(EDGE_ID, REGION, NOW * 1000)
}

#[test]
fn an_external_signature_is_the_jws_sign_makes() {
    let identity = edge();
    let doc = receipt();
    let unsigned = sign_external(identity.kid(), identity.role(), &doc).unwrap();
    let signature = identity.sign_message(unsigned.message());
    let signing_input_len = unsigned.message().len();
    let compact = unsigned.finish(&signature).unwrap();
    assert_eq!(compact, sign(&identity, &doc).unwrap());
    // What `sign_external` counts the signature as before it exists: 86 characters and a dot.
    assert_eq!(compact.len(), signing_input_len + 1 + 86);
    assert_eq!(verify::<Receipt>(&compact, &keyset()).unwrap().doc, doc);
    // The same refusals as sign: a key of the wrong role.
    assert!(matches!(
        sign_external(authority().kid(), Role::Authority, &doc),
        Err(WireError::KeyRoleMismatch { .. })
    ));
}

#[test]
fn a_document_too_large_for_its_jws_is_refused_before_anything_is_signed() {
    let identity = edge();
    // Every field valid (256 votes, tokens of the largest size a ballot may carry), the
    // whole over the envelope's byte bound.
    let mut big = ballot("yes");
    big.token = "t".repeat(MAX_TOKEN_BYTES);
    let vote = EnvelopeVote {
        ballot: big,
        received_at_ms: NOW * 1000,
    };
    let envelope = QueueEnvelope {
        v: 1,
        batch_id: "edge-1.big".into(),
        edge: EDGE_ID.into(),
        region: REGION.into(),
        created_at_ms: NOW * 1000,
        votes: vec![vote; MAX_ENVELOPE_VOTES],
    };
    let refused = sign_external(identity.kid(), identity.role(), &envelope).unwrap_err();
    assert!(
        matches!(refused, WireError::TooLarge { max, .. } if max == MAX_ENVELOPE_JWS_BYTES),
        "{refused:?}"
    );
    // `sign` refuses it the same way; halving the votes (as group commit does) twice, it fits.
    assert_eq!(sign(&identity, &envelope).unwrap_err(), refused);
    let quarter = QueueEnvelope {
        votes: envelope.votes[..MAX_ENVELOPE_VOTES / 4].to_vec(),
        ..envelope.clone()
    };
    assert!(sign_external(identity.kid(), identity.role(), &quarter).is_ok());
}

#[test]
fn an_external_check_accepts_what_verify_accepts() {
    let genuine = token(&manifest().id);
    let check = verify_external::<VoteToken>(&genuine, &keyset()).unwrap();
    assert!(platform_verdict(&check));
    assert_eq!(
        check.finish(true).unwrap(),
        verify::<VoteToken>(&genuine, &keyset()).unwrap()
    );
    // The platform's "no" is final.
    let check = verify_external::<VoteToken>(&genuine, &keyset()).unwrap();
    assert_eq!(check.finish(false), Err(WireError::BadSignature));
}

#[test]
fn a_lax_platform_cannot_make_a_non_strict_signature_pass() {
    let genuine = token(&manifest().id);
    for (name, forged) in [
        ("non-canonical S", with_non_canonical_s(&genuine)),
        ("small-order R, S = 0", with_small_order_signature(&genuine)),
    ] {
        assert!(verify::<VoteToken>(&forged, &keyset()).is_err(), "{name}");
        // A platform that says yes to anything.
        let check = verify_external::<VoteToken>(&forged, &keyset()).unwrap();
        assert_eq!(check.finish(true), Err(WireError::BadSignature), "{name}");
    }
    // Every small-order R encoding, canonical or not, either sign bit, with a canonical S.
    let sig = genuine.rsplit_once('.').unwrap().1;
    let genuine_sig: [u8; 64] = b64::decode_array("signature", sig).unwrap();
    for point in curve25519_dalek::constants::EIGHT_TORSION {
        for sign_bit in [0u8, 0x80] {
            let mut r = point.compress().to_bytes();
            r[31] = (r[31] & 0x7f) | sign_bit;
            let mut forged = genuine_sig;
            forged[..32].copy_from_slice(&r);
            let check =
                verify_external::<VoteToken>(&with_signature(&genuine, forged), &keyset()).unwrap();
            assert_eq!(check.finish(true), Err(WireError::BadSignature));
        }
    }
}

#[test]
fn the_small_order_list_is_exactly_the_small_order_encodings() {
    use curve25519_dalek::edwards::CompressedEdwardsY;
    let mut p = [0xff_u8; 32];
    p[0] = 0xed;
    p[31] = 0x7f;
    let mut p_plus_1 = p;
    p_plus_1[0] = 0xee;
    for encoding in [p, p_plus_1] {
        assert!(is_small_order_encoding(&encoding));
        let point = CompressedEdwardsY(encoding).decompress().unwrap();
        assert!(point.is_small_order());
    }
    for point in curve25519_dalek::constants::EIGHT_TORSION {
        assert!(is_small_order_encoding(&point.compress().to_bytes()));
    }
    // Points of large order are not on it: keys and the R of genuine signatures.
    for seed in 0..64u8 {
        let key = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
        assert!(!is_small_order_encoding(key.verifying_key().as_bytes()));
        let r = ed25519_dalek::Signer::sign(&key, b"m").to_bytes();
        assert!(!is_small_order_encoding(&r[..32]));
    }
    assert!(!is_small_order_encoding(&[1; 31]), "not 32 bytes");
}

//! The generic target for every JWS document type (token, receipt, envelope, manifests,
//! tally).
//!
//! The first input byte picks how the rest becomes a compact JWS, so that both the outer layers
//! (shape, base64url, header) and the inner ones (payload, field rules, key windows, which sit
//! behind a valid signature) get fuzzed:
//!
//! | first byte % 4 (seed prefix) | the rest is                    | signed by the target with      |
//! |------------------------------|--------------------------------|--------------------------------|
//! | 0 (`'0'`)                    | the compact JWS itself         | (whatever the input carries)   |
//! | 1 (`'1'`)                    | the payload JSON               | current key, canonical header  |
//! | 2 (`'2'`)                    | the payload JSON               | retired key, canonical header  |
//! | 3 (`'3'`)                    | header JSON, NUL, payload JSON | current key                    |
//!
//! Properties checked on every input:
//! - `verify` accepts only what `decode_unverified` also accepts, with the same document, and
//!   `peek_header` reads the header `verify` used; the key has the document's role and was valid
//!   at the document's signing time;
//! - a decoded document passes `validate`, survives a JSON round trip, and passes its
//!   type-specific checks ([`Sample::extra_checks`]);
//! - a verified document re-signs (`sign` refuses nothing `verify` accepts), deterministically,
//!   and the result verifies to the same document;
//! - mode 0: a verifying input is byte for byte the canonical encoding of its document (no
//!   second encoding of a signed document verifies);
//! - modes 1 and 2: with our own signature over a canonical header, `verify` and
//!   `decode_unverified` fail with the same error, or `verify` fails only because the key was
//!   not valid at the signing time;
//! - `verify_many` returns exactly what `verify` returns, also when a good document shares the
//!   batch (and that one still verifies);
//! - every error carries a stable code.

use edgevote_shared::jws::{ALG, Header, peek_header};
use edgevote_shared::{
    Verified, WireError, b64, decode_unverified, json, sign, verify, verify_many,
};

use crate::assert_stable_code;
use crate::fixture::{Sample, fixture, signed_sample};

/// How the compact JWS under test was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Taken from the input as it is.
    Given,
    /// Payload from the input, canonical header, signed here.
    SignedPayload,
    /// Header and payload from the input, signed here.
    SignedHeaderAndPayload,
}

/// Runs one fuzz input against document type `T`.
pub fn fuzz<T: Sample>(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let fx = fixture();
    match selector % 4 {
        0 => {
            if let Some(compact) = crate::text(rest) {
                check::<T>(compact, Mode::Given);
            }
        }
        mode @ (1 | 2) => {
            let identity = if mode == 1 {
                fx.current(T::SIGNER)
            } else {
                fx.retired(T::SIGNER)
            };
            let header = canonical_header::<T>(identity.kid());
            let compact = compact_signed(identity, &header, rest);
            check::<T>(&compact, Mode::SignedPayload);
        }
        _ => {
            let (header, payload) = match rest.iter().position(|&b| b == 0) {
                Some(nul) => (&rest[..nul], &rest[nul + 1..]),
                None => (&rest[..0], rest),
            };
            let compact = compact_signed(fx.current(T::SIGNER), header, payload);
            check::<T>(&compact, Mode::SignedHeaderAndPayload);
        }
    }
}

/// The header `sign` writes for `T` and `kid`, as JSON bytes.
pub fn canonical_header<T: Sample>(kid: &str) -> Vec<u8> {
    json::to_vec(&Header {
        alg: ALG.into(),
        kid: kid.into(),
        typ: T::TYP.into(),
    })
}

/// `b64(header).b64(payload).b64(signature)` with a real signature by `identity`, whatever the
/// header and payload bytes are.
pub fn compact_signed(
    identity: &edgevote_shared::SigningIdentity,
    header: &[u8],
    payload: &[u8],
) -> String {
    let mut compact = b64::encode(header);
    compact.push('.');
    compact.push_str(&b64::encode(payload));
    let signature = fixture().sign_fast(identity, compact.as_bytes());
    compact.push('.');
    compact.push_str(&b64::encode(signature));
    compact
}

fn check<T: Sample>(compact: &str, mode: Mode) {
    let fx = fixture();
    let unverified = decode_unverified::<T>(compact);
    let verified = verify::<T>(compact, &fx.keys);
    for error in [unverified.as_ref().err(), verified.as_ref().err()]
        .into_iter()
        .flatten()
    {
        assert_stable_code(error.code());
    }

    if let Ok(doc) = &unverified {
        check_document(doc);
    }

    if let Ok(v) = &verified {
        assert_eq!(
            unverified.as_ref().ok(),
            Some(&v.doc),
            "verify accepted a document decode_unverified refuses or reads differently"
        );
        check_verified(compact, v, mode);
    }

    if mode == Mode::SignedPayload {
        match (&unverified, &verified) {
            (Ok(_), Ok(_)) => {}
            (Ok(doc), Err(error)) => {
                // Our own signature is refused only for a reason the document itself gives: it
                // is dated outside the key's window, or names an edge the key is not bound to.
                let kid = peek_header(compact).expect("header was just written").kid;
                let (jwk, _) = fx.keys.get(&kid).expect("one of the fixture keys");
                match error {
                    WireError::KeyNotValidAtTime { .. } => {
                        assert!(!jwk.valid_at(doc.signed_at_secs()))
                    }
                    WireError::KeyBindingMismatch { .. } => {
                        let (edge, region) = doc.signing_edge().expect("only edge documents");
                        assert!(jwk.check_binding(edge, region).is_err());
                    }
                    _ => panic!(
                        "our own signature over a valid {} was refused: {error:?}",
                        T::NAME
                    ),
                }
            }
            (Err(a), Err(b)) => assert_eq!(a, b, "verify and decode_unverified disagree"),
            (Err(_), Ok(_)) => unreachable!("checked above"),
        }
    }

    check_batch::<T>(compact, &verified);
}

/// Properties of any document that decoded and passed its field rules.
fn check_document<T: Sample>(doc: &T) {
    assert_eq!(doc.validate(), Ok(()), "decoded document fails validate");
    let encoded = json::to_vec(doc);
    let decoded: T = json::parse_bounded(T::NAME, &encoded, usize::MAX)
        .expect("the JSON encoding of a valid document parses back");
    assert_eq!(&decoded, doc, "JSON round trip changed the document");
    assert_eq!(decoded.validate(), Ok(()));
    doc.extra_checks();
}

fn check_verified<T: Sample>(compact: &str, v: &Verified<T>, mode: Mode) {
    let fx = fixture();
    let header = peek_header(compact).expect("peek_header refuses a JWS that verifies");
    assert_eq!(header.alg, ALG);
    assert_eq!(header.kid, v.kid);
    assert_eq!(header.typ, T::TYP);
    let (jwk, _) = fx.keys.get(&v.kid).expect("verify names a key of the set");
    assert_eq!(
        jwk.edgevote_role,
        T::SIGNER,
        "document verified with a key of another role"
    );
    assert!(
        jwk.valid_at(v.doc.signed_at_secs()),
        "document verified outside its key's validity window"
    );

    let identity = fx
        .identity(&v.kid)
        .expect("every key in the set is a fixture key");
    let resigned = sign(identity, &v.doc).expect("sign refuses a document verify accepts");
    if resigned != compact {
        // (When equal, `verify` above already covered it.)
        let again = verify::<T>(&resigned, &fx.keys).expect("a re-signed document does not verify");
        assert_eq!(&again, v, "re-signing changed the document");
        assert_eq!(decode_unverified::<T>(&resigned).as_ref(), Ok(&v.doc));
    }
    if mode == Mode::Given {
        assert_eq!(
            compact,
            resigned,
            "a non-canonical encoding of a signed {} verifies",
            T::NAME
        );
    }
}

/// `verify_many` must agree with `verify` one by one, alone and next to a good document.
fn check_batch<T: Sample>(compact: &str, verified: &Result<Verified<T>, WireError>) {
    let fx = fixture();
    // Batches with real signatures cost curve operations: pair the input with a good document
    // only when it names a key of the set (else it fails before any signature work).
    let names_our_key = peek_header(compact).is_ok_and(|h| fx.keys.get(&h.kid).is_some());
    if !names_our_key {
        let alone = verify_many::<T>(&[compact], &fx.keys);
        assert_eq!(alone.len(), 1);
        assert_eq!(&alone[0], verified, "verify_many disagrees with verify");
        return;
    }
    let good = signed_sample::<T>();
    let mixed = verify_many::<T>(&[compact, &good], &fx.keys);
    assert_eq!(mixed.len(), 2);
    assert_eq!(
        &mixed[0], verified,
        "verify_many disagrees with verify in a batch"
    );
    assert_eq!(
        mixed[1].as_ref().map(|v| &v.doc).ok(),
        decode_unverified::<T>(&good).as_ref().ok(),
        "a bad document in the batch changed a good one"
    );
}

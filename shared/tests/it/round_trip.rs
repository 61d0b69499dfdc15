//! Issue → verify round trips for every signed document type.

use edgevote_shared::{
    BundleManifest, ConfigVar, Digest32, ElectionManifest, EnvelopeVote, Platform, QueueEnvelope,
    Receipt, Role, VoteToken, admit, sign, verify,
};

use crate::common::*;

#[test]
fn token_issue_then_validate() {
    let compact = token("ref-2026");
    let verified = verify::<VoteToken>(&compact, &keyset()).unwrap();
    assert_eq!(verified.doc, token_claims("ref-2026"));
    assert_eq!(verified.kid, authority().kid());
    verified.doc.check_usable("ref-2026", NOW).unwrap();
}

#[test]
fn manifest_sign_then_verify() {
    let compact = sign(&authority(), &manifest()).unwrap();
    assert_eq!(
        verify::<ElectionManifest>(&compact, &keyset()).unwrap().doc,
        manifest()
    );
}

#[test]
fn ballot_admitted_and_receipt_verifies() {
    let admitted = admit(&manifest(), &keyset(), ballot("yes"), NOW).unwrap();
    assert_eq!(admitted.vote_id, ballot("yes").vote_id("tok-1"));
    let receipt = admitted.receipt("edge-1", "r1", NOW * 1000 + 5);
    let compact = sign(&edge(), &receipt).unwrap();
    let verified = verify::<Receipt>(&compact, &keyset()).unwrap();
    assert_eq!(verified.doc, receipt);
    verified.doc.check_election("ref-2026").unwrap();
}

#[test]
fn vote_id_is_stable_for_retries_and_differs_per_choice() {
    assert_eq!(ballot("yes").vote_id("t"), ballot("yes").vote_id("t"));
    assert_ne!(ballot("yes").vote_id("t"), ballot("no").vote_id("t"));
    assert_ne!(ballot("yes").vote_id("t"), ballot("yes").vote_id("u"));
}

#[test]
fn envelope_sign_then_verify() {
    let envelope = QueueEnvelope {
        v: 1,
        batch_id: "edge-1.42".into(),
        edge: "edge-1".into(),
        region: "r1".into(),
        created_at_ms: NOW * 1000,
        votes: vec![EnvelopeVote {
            ballot: ballot("no"),
            received_at_ms: NOW * 1000 - 3,
        }],
    };
    let compact = sign(&edge(), &envelope).unwrap();
    assert_eq!(
        verify::<QueueEnvelope>(&compact, &keyset()).unwrap().doc,
        envelope
    );
}

#[test]
fn bundle_sign_then_verify() {
    let ops = identity(3, Role::Ops);
    let mut keys = keyset();
    keys.insert(ops.public_jwk(NOW - 10)).unwrap();
    let bundle = BundleManifest {
        v: 1,
        name: "edge-handler".into(),
        version: "1.0.0".into(),
        serial: 7,
        platform: Platform::WasiHttp,
        wasm_sha256: Digest32::of(b"\0asm"),
        wasm_bytes: 4,
        config_schema: vec![ConfigVar {
            name: "EDGEVOTE_QUEUE_URL".into(),
            description: "Regional queue URL".into(),
            required: true,
            secret: false,
        }],
        created_at: NOW,
    };
    let compact = sign(&ops, &bundle).unwrap();
    assert_eq!(
        verify::<BundleManifest>(&compact, &keys).unwrap().doc,
        bundle
    );
}

/// A manifest signed before bundles carried a serial still verifies, as serial 0: any
/// serialled bundle deployed after it is newer.
#[test]
fn bundle_manifest_without_a_serial_reads_as_serial_0() {
    let ops = identity(3, Role::Ops);
    let mut keys = keyset();
    keys.insert(ops.public_jwk(NOW - 10)).unwrap();
    let header = format!(
        r#"{{"alg":"EdDSA","kid":"{}","typ":"edgevote-bundle+jws"}}"#,
        ops.kid()
    );
    let payload = format!(
        r#"{{"v":1,"name":"edge","version":"1.0.0","platform":"wasi_http","wasm_sha256":"{}","wasm_bytes":4,"config_schema":[],"created_at":{NOW}}}"#,
        Digest32::of(b"\0asm").to_b64()
    );
    let input = format!(
        "{}.{}",
        edgevote_shared::b64::encode(header),
        edgevote_shared::b64::encode(payload)
    );
    let signature = edgevote_shared::b64::encode(ops.sign_message(input.as_bytes()));
    let old = verify::<BundleManifest>(&format!("{input}.{signature}"), &keys).unwrap();
    assert_eq!(old.doc.serial, 0);
    assert_eq!(old.doc.version, "1.0.0");
}

#[test]
fn archived_key_still_verifies_old_receipts_after_rotation() {
    let mut keys = keyset();
    let old_receipt = admit(&manifest(), &keys, ballot("yes"), NOW)
        .unwrap()
        .receipt("edge-1", "r1", NOW * 1000);
    let old = sign(&edge(), &old_receipt).unwrap();
    // Rotate: the old edge key ends at NOW + 10, a new one starts.
    let new_edge = identity(9, Role::Edge);
    keys.retire(edge().kid(), NOW + 10).unwrap();
    keys.insert(new_edge.public_jwk(NOW + 10).bound_to("edge-1", "r1"))
        .unwrap();
    let reparsed = edgevote_shared::KeySet::parse(keys.to_json_pretty().as_bytes()).unwrap();
    assert!(verify::<Receipt>(&old, &reparsed).is_ok());
    let mut later = old_receipt.clone();
    later.received_at_ms = (NOW + 20) * 1000;
    let new = sign(&new_edge, &later).unwrap();
    assert!(verify::<Receipt>(&new, &reparsed).is_ok());
    // The old key cannot sign receipts dated after its retirement.
    let late_with_old_key = sign(&edge(), &later).unwrap();
    assert_eq!(
        verify::<Receipt>(&late_with_old_key, &reparsed)
            .unwrap_err()
            .code(),
        "key_not_valid_at_time"
    );
}

#[test]
fn key_set_json_round_trips() {
    let keys = keyset();
    let parsed = edgevote_shared::KeySet::parse(keys.to_json_pretty().as_bytes()).unwrap();
    assert_eq!(parsed, keys);
}

#[test]
fn batch_verification_finds_the_culprit_and_keeps_the_rest() {
    let good: Vec<String> = (0..5)
        .map(|i| {
            let mut claims = token_claims("ref-2026");
            claims.jti = format!("t{i}");
            sign(&authority(), &claims).unwrap()
        })
        .collect();
    let all_good: Vec<&str> = good.iter().map(String::as_str).collect();
    assert!(
        edgevote_shared::verify_many::<VoteToken>(&all_good, &keyset())
            .iter()
            .all(Result::is_ok)
    );
    let forged = crate::common::with_payload(
        &good[2],
        br#"{"jti":"x","sub":"y","aud":"ref-2026","iat":1,"nbf":1,"exp":2}"#,
    );
    let mixed = [
        good[0].as_str(),
        good[1].as_str(),
        forged.as_str(),
        "junk",
        good[4].as_str(),
    ];
    let results = edgevote_shared::verify_many::<VoteToken>(&mixed, &keyset());
    let codes: Vec<&str> = results
        .iter()
        .map(|r| r.as_ref().map_or_else(|e| e.code(), |_| "ok"))
        .collect();
    assert_eq!(codes, ["ok", "ok", "bad_signature", "malformed_jws", "ok"]);
}

/// One forged token in a group commit of 256 (an attacker holding no key, sending one junk
/// signature to slow the edge down): only it is refused, with the code strict verification
/// gives it, and it costs a few halving batches, not 256 strict verifications.
#[test]
fn one_forged_token_among_256_costs_log_n_batches_not_n_singles() {
    let good: Vec<String> = (0..256)
        .map(|i| {
            let mut claims = token_claims("ref-2026");
            claims.jti = format!("t{i}");
            sign(&authority(), &claims).unwrap()
        })
        .collect();
    for culprit in [0, 137, 255] {
        let forged = crate::common::with_payload(
            &good[culprit],
            br#"{"jti":"x","sub":"y","aud":"ref-2026","iat":1,"nbf":1,"exp":2}"#,
        );
        let mut batch: Vec<&str> = good.iter().map(String::as_str).collect();
        batch[culprit] = &forged;
        let (results, count) =
            edgevote_shared::jws::verify_many_counted::<VoteToken>(&batch, &keyset());
        for (i, (result, compact)) in results.iter().zip(&batch).enumerate() {
            let strict = verify::<VoteToken>(compact, &keyset());
            assert_eq!(
                result, &strict,
                "vote {i}: same outcome as strict verification"
            );
            assert_eq!(result.is_ok(), i != culprit, "vote {i}");
        }
        println!("one forged token at {culprit} among 256: {count:?}");
        assert!(count.batches <= 1 + 2 * 8, "{count:?}");
        assert!(count.singles <= 2, "{count:?}");
        assert!(count.batched <= 3 * 256, "{count:?}");
    }
}

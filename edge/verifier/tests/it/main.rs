//! The page verifier's operations, natively: what the receipt page is told for a valid, a
//! tampered, a foreign and a mismatched receipt, and for live and published logs that prove,
//! do not include, or lie.

// Test helpers panic on failure by design.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use edgevote_audit::tiles::{FolderSource, TileLog, TileSource};
use edgevote_page_verifier::{Operation, call};
use edgevote_shared::checkpoint::Checkpoint;
use edgevote_shared::{
    Ballot, Digest32, KeySet, Receipt, Role, SigningIdentity, VoteToken, b64, merkle, sign,
};
use serde_json::{Value, json};

const AT_MS: u64 = 1_800_000_000_000;

fn authority() -> SigningIdentity {
    SigningIdentity::from_seed(&[1; 32], Role::Authority)
}

fn edge_key() -> SigningIdentity {
    SigningIdentity::from_seed(&[2; 32], Role::Edge)
}

fn log_key() -> SigningIdentity {
    SigningIdentity::from_seed(&[3; 32], Role::Log)
}

fn keys() -> KeySet {
    KeySet::from_jwks(vec![
        authority().public_jwk(0),
        edge_key().public_jwk(0).bound_to("edge-1", "r1"),
        log_key().public_jwk(0),
    ])
    .unwrap()
}

fn keyset() -> String {
    keys().to_json_pretty()
}

fn ballot(choice: &str) -> Ballot {
    let token = VoteToken {
        jti: "t1".into(),
        sub: "v1".into(),
        aud: "e1".into(),
        iat: 0,
        nbf: 0,
        exp: u64::MAX / 2,
    };
    Ballot {
        election: "e1".into(),
        token: sign(&authority(), &token).unwrap(),
        choice: choice.into(),
        nonce: b64::encode([7u8; 16]),
    }
}

fn receipt_for(ballot: &Ballot) -> String {
    let receipt = Receipt {
        v: 1,
        election: "e1".into(),
        vote_id: ballot.vote_id("t1"),
        token_id: "t1".into(),
        edge: "edge-1".into(),
        region: "r1".into(),
        received_at_ms: AT_MS,
        bundle_sha256: None,
    };
    sign(&edge_key(), &receipt).unwrap()
}

fn run(operation: Operation, request: &Value) -> Value {
    call(operation, request.to_string().as_bytes())
}

#[test]
fn a_valid_receipt_is_valid_with_its_claims_key_and_key_set_fingerprint() {
    let receipt = receipt_for(&ballot("yes"));
    let answer = run(
        Operation::VerifyReceipt,
        &json!({"receipt": receipt, "keyset": keyset()}),
    );
    assert_eq!(answer["status"], "valid", "{answer}");
    assert_eq!(answer["receipt"]["edge"], "edge-1");
    assert_eq!(answer["kid"], edge_key().kid());
    assert_eq!(answer["keyset_fingerprint"], keys().fingerprint());
    let described = run(Operation::KeySet, &json!({"keyset": keyset()}));
    assert_eq!(described["fingerprint"], keys().fingerprint());
    assert_eq!(described["keys"].as_array().unwrap().len(), 3);
}

#[test]
fn a_receipt_changed_in_one_character_is_invalid_with_its_code() {
    let receipt = receipt_for(&ballot("yes"));
    let (head, rest) = receipt.split_once('.').unwrap();
    let (payload, signature) = rest.split_once('.').unwrap();
    for at in [3, payload.len() / 2, payload.len() - 2] {
        let mut flipped = payload.to_owned().into_bytes();
        flipped[at] = if flipped[at] == b'A' { b'B' } else { b'A' };
        let tampered = format!("{head}.{}.{signature}", String::from_utf8(flipped).unwrap());
        let answer = run(
            Operation::VerifyReceipt,
            &json!({"receipt": tampered, "keyset": keyset()}),
        );
        assert_eq!(answer["status"], "invalid", "{answer}");
        let code = answer["code"].as_str().unwrap();
        assert!(
            ["bad_signature", "malformed_base64", "malformed_json"].contains(&code),
            "{code}"
        );
    }
}

#[test]
fn a_receipt_is_refused_by_a_key_set_without_its_key_and_for_another_ballot() {
    let receipt = receipt_for(&ballot("yes"));
    let without_edge = KeySet::from_jwks(vec![authority().public_jwk(0)]).unwrap();
    let answer = run(
        Operation::VerifyReceipt,
        &json!({"receipt": receipt, "keyset": without_edge.to_json_pretty()}),
    );
    assert_eq!(answer["code"], "unknown_key_id", "{answer}");
    let sent = serde_json::to_string(&ballot("no")).unwrap();
    let answer = run(
        Operation::VerifyReceipt,
        &json!({"receipt": receipt, "keyset": keyset(), "ballot": sent}),
    );
    assert_eq!(answer["code"], "ballot_mismatch", "{answer}");
    let sent = serde_json::to_string(&ballot("yes")).unwrap();
    let answer = run(
        Operation::VerifyReceipt,
        &json!({"receipt": receipt, "keyset": keyset(), "ballot": sent}),
    );
    assert_eq!(answer["status"], "valid", "{answer}");
}

#[test]
fn bad_requests_get_a_code() {
    for (operation, request) in [
        (Operation::VerifyReceipt, "not json"),
        (Operation::KeySet, "{\"keyset\": 1}"),
        (Operation::ProveLive, "{}"),
    ] {
        let answer = call(operation, request.as_bytes());
        assert_eq!(answer["code"], "malformed_json", "{answer}");
    }
    let answer = run(Operation::KeySet, &json!({"keyset": "{\"keys\": 3}"}));
    assert_eq!(answer["status"], "invalid", "{answer}");
    let answer = run(
        Operation::VerifyReceipt,
        &json!({"receipt": receipt_for(&ballot("yes")), "keyset": "[]"}),
    );
    assert_eq!(answer["code"], "bad_keyset", "{answer}");
}

fn vote_ids(count: u32) -> Vec<String> {
    let mut ids: Vec<String> = (0..count)
        .map(|i| Digest32::of(&i.to_be_bytes()).to_b64())
        .collect();
    ids.sort();
    ids
}

/// A live log of `count` vote ids in a folder, and its checkpoint signed by `signer`.
fn live_log(dir: &std::path::Path, count: u32, origin: &str, signer: &SigningIdentity) -> String {
    let mut log = TileLog::open(dir).unwrap();
    let ids = vote_ids(count);
    let entries: Vec<&[u8]> = ids.iter().map(|id| id.as_bytes()).collect();
    log.append(&entries).unwrap();
    Checkpoint {
        origin: origin.into(),
        size: u64::from(count),
        root: log.root().unwrap(),
    }
    .sign(signer)
    .unwrap()
}

/// Runs `prove_live` as the page does: fetching the tiles it asks for, round after round.
fn prove_live(dir: &std::path::Path, checkpoint: &str, vote_id: &str, index: u64) -> Value {
    let source = FolderSource(dir.to_owned());
    let mut tiles: BTreeMap<String, Option<String>> = BTreeMap::new();
    for _ in 0..16 {
        let answer = run(
            Operation::ProveLive,
            &json!({"keyset": keyset(), "election": "e1", "vote_id": vote_id,
                    "checkpoint": checkpoint, "index": index, "tiles": tiles}),
        );
        if answer["status"] != "need" {
            return answer;
        }
        for path in answer["paths"].as_array().unwrap() {
            let path = path.as_str().unwrap();
            tiles.insert(path.into(), source.read(path).ok().map(b64::encode_std));
        }
    }
    panic!("more rounds than a proof takes");
}

#[test]
fn a_live_log_proves_a_vote_from_its_tiles_and_refuses_a_lie() {
    let dir = tempfile::tempdir().unwrap();
    let note = live_log(dir.path(), 700, "edgevote/e1/live/r1", &log_key());
    let ids = vote_ids(700);
    for index in [0, 255, 256, 511, 699] {
        let answer = prove_live(dir.path(), &note, &ids[index], index as u64);
        assert_eq!(answer["status"], "included", "{index}: {answer}");
        assert_eq!(answer["size"], 700);
    }
    // The server names the wrong leaf: the proof fails.
    let answer = prove_live(dir.path(), &note, &ids[3], 4);
    assert_eq!(answer["code"], "bad_proof", "{answer}");
    // A leaf beyond the signed tree.
    let answer = prove_live(dir.path(), &note, &ids[3], 700);
    assert_eq!(answer["status"], "not_included", "{answer}");
    // A tile rewritten under the signed root.
    let tile = dir.path().join("tile/0/000");
    let mut bytes = std::fs::read(&tile).unwrap();
    bytes[40] ^= 1;
    std::fs::write(&tile, bytes).unwrap();
    let answer = prove_live(dir.path(), &note, &ids[3], 3);
    assert_eq!(answer["code"], "bad_proof", "{answer}");
}

#[test]
fn a_live_checkpoint_must_be_signed_by_a_log_key_for_this_election() {
    let dir = tempfile::tempdir().unwrap();
    let rogue = SigningIdentity::from_seed(&[9; 32], Role::Log);
    let note = live_log(dir.path(), 3, "edgevote/e1/live/r1", &rogue);
    let answer = prove_live(dir.path(), &note, &vote_ids(3)[0], 0);
    assert_eq!(answer["code"], "bad_checkpoint", "{answer}");
    let other = tempfile::tempdir().unwrap();
    let note = live_log(other.path(), 3, "edgevote/e2/live/r1", &log_key());
    let answer = prove_live(other.path(), &note, &vote_ids(3)[0], 0);
    assert_eq!(answer["code"], "bad_checkpoint", "{answer}");
}

fn published(ids: &[String], origin: &str) -> (String, String) {
    let leaves: Vec<merkle::Hash> = ids
        .iter()
        .map(|i| merkle::leaf_hash(i.as_bytes()))
        .collect();
    let note = Checkpoint {
        origin: origin.into(),
        size: ids.len() as u64,
        root: merkle::root(&leaves),
    }
    .sign(&log_key())
    .unwrap();
    let log: String = ids.iter().map(|i| format!("{i}\n")).collect();
    (note, log)
}

fn prove_published(note: &str, log: &str, vote_id: &str) -> Value {
    run(
        Operation::ProvePublished,
        &json!({"keyset": keyset(), "election": "e1", "vote_id": vote_id,
                "checkpoint": note, "log": log}),
    )
}

#[test]
fn a_published_log_proves_its_votes_and_refuses_a_log_that_differs_from_its_checkpoint() {
    let ids = vote_ids(50);
    let (note, log) = published(&ids, "edgevote/e1/receipts");
    let answer = prove_published(&note, &log, &ids[17]);
    assert_eq!(answer["status"], "included", "{answer}");
    assert_eq!(answer["index"], 17);
    let absent = Digest32::of(b"absent").to_b64();
    assert_eq!(
        prove_published(&note, &log, &absent)["status"],
        "not_included"
    );
    let dropped: String = log.lines().skip(1).map(|l| format!("{l}\n")).collect();
    assert_eq!(
        prove_published(&note, &dropped, &ids[17])["code"],
        "bad_proof"
    );
    let (choices, _) = published(&ids, "edgevote/e1/choices");
    assert_eq!(
        prove_published(&choices, &log, &ids[17])["code"],
        "bad_checkpoint"
    );
}

//! keys → election → token → receipt → verify, and the failure paths a user meets.

use std::os::unix::fs::PermissionsExt;

use crate::{edgevote, election_dir, ok};

#[test]
fn issue_and_verify_round_trip() {
    let dir = election_dir();
    let d = dir.path();
    let token = ok(d, &["token", "issue", "--voter", "v-1"]);
    let token = token.trim();
    let receipt = ok(
        d,
        &["receipt", "issue", "--token", token, "--choice", "yes"],
    );
    std::fs::write(d.join("r.jws"), &receipt).unwrap();
    let out = ok(d, &["verify", "receipt", "r.jws", "--election", "ref"]);
    assert!(out.starts_with("VALID receipt"), "{out}");
    let json = ok(d, &["verify", "receipt", "r.jws", "--json"]);
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["valid"], true);
    assert_eq!(value["claims"]["election"], "ref");
    ok(d, &["verify", "token", token, "--election", "ref"]);
}

#[test]
fn refusals_exit_nonzero_with_a_code() {
    let dir = election_dir();
    let d = dir.path();
    let token = ok(d, &["token", "issue"]);
    let out = edgevote(d, &["verify", "receipt", token.trim(), "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(value["code"], "wrong_document_type");
    let out = edgevote(d, &["verify", "token", token.trim(), "--election", "other"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("code=wrong_election"));
    let out = edgevote(
        d,
        &[
            "receipt",
            "issue",
            "--token",
            token.trim(),
            "--choice",
            "maybe",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid_choice"));
}

#[test]
fn bulk_tokens_with_progress() {
    let dir = election_dir();
    let d = dir.path();
    let out = ok(
        d,
        &["token", "issue", "--count", "2500", "--out", "tokens.txt"],
    );
    assert!(out.contains("issued 2500 tokens"), "{out}");
    let text = std::fs::read_to_string(d.join("tokens.txt")).unwrap();
    assert_eq!(text.lines().count(), 2500);
    let last = text.lines().last().unwrap();
    ok(d, &["verify", "token", last, "--election", "ref"]);
}

#[test]
fn rotation_keeps_old_receipts_verifiable() {
    let dir = election_dir();
    let d = dir.path();
    let token = ok(d, &["token", "issue"]);
    let before = ok(
        d,
        &[
            "receipt",
            "issue",
            "--token",
            token.trim(),
            "--choice",
            "no",
        ],
    );
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let out = ok(d, &["keys", "rotate", "--role", "edge"]);
    assert!(out.contains("archived"), "{out}");
    let token2 = ok(d, &["token", "issue"]);
    let after = ok(
        d,
        &[
            "receipt",
            "issue",
            "--token",
            token2.trim(),
            "--choice",
            "yes",
        ],
    );
    for receipt in [before, after] {
        ok(d, &["verify", "receipt", receipt.trim()]);
    }
    let table = ok(d, &["keys", "show"]);
    assert!(
        table.contains("archived") || table.contains("retiring"),
        "{table}"
    );
}

#[test]
fn unsafe_key_file_is_refused_with_advice() {
    let dir = election_dir();
    let d = dir.path();
    for entry in std::fs::read_dir(d.join("edgevote-keys/private")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let out = edgevote(d, &["token", "issue"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("must be 0600"), "{stderr}");
}

#[test]
fn missing_key_store_and_bad_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let out = edgevote(dir.path(), &["token", "issue"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no key store"));
    let out = edgevote(dir.path(), &["keys", "gen", "--role", "king"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("authority, edge, ops, log"));
}

//! `verify` on a good log, and on each kind of tampering, failing with its stable code.

use std::collections::BTreeMap;

use edgevote_audit::LogKind;
use edgevote_audit::verify::{ReceiptOutcome, code};
use edgevote_shared::checkpoint::Checkpoint;
use edgevote_shared::merkle;
use edgevote_shared::tally::PublishedTally;
use edgevote_shared::{Role, SigningIdentity, decode_unverified, sign};

use crate::fixture::{self, Files};

/// The signed tally of `files`, without checking it.
pub(crate) fn tally(files: &Files) -> PublishedTally {
    decode_unverified::<PublishedTally>(files.tally.trim()).unwrap()
}

/// A checkpoint for `text` (a log of `kind`), signed by `key`: what a log-key holder can sign.
pub(crate) fn checkpoint(kind: LogKind, text: &str, key: &SigningIdentity) -> String {
    let leaves: Vec<_> = text
        .lines()
        .map(|l| merkle::leaf_hash(l.as_bytes()))
        .collect();
    Checkpoint {
        origin: kind.origin(fixture::ELECTION),
        size: leaves.len() as u64,
        root: merkle::root(&leaves),
    }
    .sign(key)
    .unwrap()
}

/// Swaps lines `a` and `b` of a log's text.
fn swap_lines(text: &str, a: usize, b: usize) -> String {
    let mut lines: Vec<&str> = text.lines().collect();
    lines.swap(a, b);
    lines.iter().map(|l| format!("{l}\n")).collect()
}

/// Repeats line `a` of a log's text after itself.
fn repeat_line(text: &str, a: usize) -> String {
    let mut lines: Vec<&str> = text.lines().collect();
    lines.insert(a, lines[a]);
    lines.iter().map(|l| format!("{l}\n")).collect()
}

/// Asserts that `files` fail with exactly one failure: `code`, about `file`.
fn assert_refused(files: &Files, code: &str, file: &str) -> edgevote_audit::Report {
    let report = files.verify(&[]);
    assert_eq!(report.codes(), [code], "{report:?}");
    assert_eq!(report.failures[0].file, file, "{report:?}");
    report
}

#[tokio::test]
async fn a_good_log_and_its_receipts_verify() {
    let files = Files::of(&fixture::published().await);
    let receipts: Vec<String> = fixture::ballots().iter().map(fixture::receipt).collect();
    let refs: Vec<&str> = receipts.iter().map(String::as_str).collect();
    let report = files.verify(&refs);
    assert!(report.is_valid(), "{report:?}");
    assert!(report.codes().is_empty());
    let summary = report.summary.unwrap();
    assert_eq!(summary.election, fixture::ELECTION);
    assert_eq!((summary.ballots, summary.counted), (5, 4));
    assert_eq!(
        summary.recomputed,
        BTreeMap::from([("no".to_owned(), 2), ("yes".to_owned(), 2)])
    );
    assert!(summary.tally_matches);
    assert_eq!(report.receipts.len(), 5);
    assert!(
        report
            .receipts
            .iter()
            .all(|r| matches!(r.outcome, ReceiptOutcome::Included { .. }))
    );
}

#[tokio::test]
async fn a_tally_edited_after_signing_is_refused() {
    let mut files = Files::of(&fixture::published().await);
    let mut tally = tally(&files);
    tally.counts = BTreeMap::from([("no".to_owned(), 1), ("yes".to_owned(), 3)]);
    // The edited claims under the original header and signature.
    let original: Vec<&str> = files.tally.trim().split('.').collect();
    let claims = edgevote_shared::b64::encode(serde_json::to_vec(&tally).unwrap());
    files.tally = format!("{}.{claims}.{}\n", original[0], original[2]);
    let report = assert_refused(&files, "bad_signature", "tally.jws");
    assert!(report.summary.is_none());
}

#[tokio::test]
async fn a_signed_tally_that_differs_from_the_logs_is_refused() {
    let mut files = Files::of(&fixture::published().await);
    let mut tally = tally(&files);
    // Signed by the log key itself: the counts add up, but not to what the choices log says.
    tally.counts = BTreeMap::from([("no".to_owned(), 1), ("yes".to_owned(), 3)]);
    files.tally = sign(&fixture::key(Role::Log), &tally).unwrap();
    let report = assert_refused(&files, code::TALLY_MISMATCH, "tally.jws");
    assert!(report.failures[0].detail.contains("counts"));
    assert!(!report.summary.unwrap().tally_matches);

    // The same for a tally naming another number of ballots.
    let mut files = Files::of(&fixture::published().await);
    let mut tally = self::tally(&files);
    tally.ballots += 1;
    files.tally = sign(&fixture::key(Role::Log), &tally).unwrap();
    let report = assert_refused(&files, code::TALLY_MISMATCH, "tally.jws");
    assert!(report.failures[0].detail.contains("6 ballots signed"));
}

#[tokio::test]
async fn a_tampered_choices_log_is_refused() {
    let mut files = Files::of(&fixture::published().await);
    files.choices_log = files.choices_log.replacen("no\n", "yes\n", 1);
    assert_refused(&files, code::LOG_CHECKPOINT_MISMATCH, "choices.log");
}

#[tokio::test]
async fn a_reordered_or_duplicated_receipts_log_is_refused() {
    let published = Files::of(&fixture::published().await);
    let log_key = fixture::key(Role::Log);
    for text in [
        swap_lines(&published.receipts_log, 0, 1),
        repeat_line(&published.receipts_log, 2),
    ] {
        // Against the published checkpoint.
        let mut files = published.clone();
        files.receipts_log = text.clone();
        assert_refused(&files, code::LOG_CHECKPOINT_MISMATCH, "receipts.log");
        // Even with a checkpoint the log key signed over it, a log out of order or with a vote
        // id twice is refused.
        files.receipts_checkpoint = checkpoint(LogKind::Receipts, &text, &log_key);
        assert_refused(&files, code::LOG_NOT_SORTED, "receipts.log");
    }
}

#[tokio::test]
async fn signatures_by_the_wrong_key_are_refused() {
    let published = Files::of(&fixture::published().await);
    let rogue = fixture::rogue(Role::Log);

    // A tally signed by a log key that is not in the key set.
    let mut files = published.clone();
    files.tally = sign(&rogue, &tally(&files)).unwrap();
    assert_refused(&files, "unknown_key_id", "tally.jws");

    // A checkpoint signed by another key than the tally's.
    let mut files = published.clone();
    files.choices_checkpoint = checkpoint(LogKind::Choices, &files.choices_log, &rogue);
    assert_refused(&files, "bad_signature", "choices.checkpoint");

    // A receipt signed by a key that is not the edge's: invalid, the others still included.
    let ballots = fixture::ballots();
    let forged = fixture::receipt_signed_by(&fixture::rogue(Role::Edge), &ballots[0]);
    let good = fixture::receipt(&ballots[1]);
    let report = published.verify(&[&forged, &good]);
    assert_eq!(report.codes(), ["unknown_key_id"], "{report:?}");
    assert!(report.failures.is_empty());
    assert!(matches!(
        report.receipts[1].outcome,
        ReceiptOutcome::Included { .. }
    ));
}

#[tokio::test]
async fn a_receipt_of_a_ballot_not_in_the_log_is_not_included() {
    let files = Files::of(&fixture::published().await);
    let stray = fixture::ballot("v9", "yes", (fixture::NOW - 4000) * 1000);
    let report = files.verify(&[&fixture::receipt(&stray)]);
    assert_eq!(report.codes(), [code::NOT_INCLUDED], "{report:?}");
    assert!(!report.is_valid());
    assert_eq!(
        report.receipts[0].outcome,
        ReceiptOutcome::NotIncluded {
            vote_id: stray.vote_id.to_b64()
        }
    );

    // A receipt of another election is invalid, whatever the log holds.
    let mut other = fixture::ballots().remove(0);
    other.election = "other".into();
    let report = files.verify(&[&fixture::receipt(&other)]);
    assert_eq!(report.codes(), ["wrong_election"], "{report:?}");
}

#[tokio::test]
async fn a_tally_published_with_votes_pending_is_not_the_result() {
    let store = fixture::store(fixture::ballots()).await;
    let (manifest, log_key, keys) = (
        fixture::manifest(),
        fixture::key(Role::Log),
        fixture::keyset(),
    );
    let params = edgevote_audit::PublishParams {
        manifest: &manifest,
        log_key: &log_key,
        keys: &keys,
        now_secs: fixture::NOW,
        before_close: false,
        incomplete: Some("r1: 3 messages in the queue, not yet stored"),
    };
    let published = edgevote_audit::publish(&store, &params).await.unwrap();
    let report = Files::of(&published).verify(&[]);
    assert_eq!(report.codes(), [code::INCOMPLETE_TALLY], "{report:?}");
    assert!(
        report.failures[0]
            .detail
            .contains("3 messages in the queue")
    );
    // The logs themselves are consistent: only the tally's own word makes it not the result.
    assert!(report.summary.unwrap().tally_matches);
}

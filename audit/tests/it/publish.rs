//! `publish` from a store: the files, the tally, the folder, and an election still open.

use std::collections::BTreeMap;

use edgevote_audit::{LogKind, PublishError};
use edgevote_shared::Role;
use edgevote_shared::checkpoint::verifier_key;

use crate::fixture::{self, Files};

#[tokio::test]
async fn the_log_holds_every_ballot_and_the_counted_choices_sorted() {
    let published = fixture::published().await;
    let tally = &published.tally;
    assert_eq!(tally.election, fixture::ELECTION);
    assert_eq!((tally.ballots, tally.voters), (5, 4));
    assert_eq!(tally.created_at, fixture::NOW);
    assert_eq!(
        tally.counts,
        BTreeMap::from([("no".to_owned(), 2), ("yes".to_owned(), 2)])
    );

    let mut vote_ids: Vec<String> = fixture::ballots()
        .iter()
        .map(|b| b.vote_id.to_b64())
        .collect();
    vote_ids.sort();
    let expected: String = vote_ids.iter().map(|v| format!("{v}\n")).collect();
    assert_eq!(
        published.file(LogKind::Receipts.log_file()),
        Some(expected.as_str())
    );
    // v3's first ballot (yes) counts, not its second.
    assert_eq!(
        published.file(LogKind::Choices.log_file()),
        Some("no\nno\nyes\nyes\n")
    );
    let vkey = verifier_key(
        &LogKind::Receipts.origin(fixture::ELECTION),
        &fixture::key(Role::Log).verifying_key(),
    );
    assert_eq!(
        published.file("log.vkey"),
        Some(format!("{vkey}\n").as_str())
    );
    assert_eq!(
        published.file("keyset.json"),
        Some(format!("{}\n", fixture::keyset().to_json_pretty()).as_str())
    );
    let names: Vec<&str> = published.files.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names,
        [
            "receipts.log",
            "receipts.checkpoint",
            "choices.log",
            "choices.checkpoint",
            "tally.jws",
            "keyset.json",
            "log.vkey"
        ]
    );
}

#[tokio::test]
async fn every_store_order_publishes_the_same_log() {
    let mut reversed = fixture::ballots();
    reversed.reverse();
    let store = fixture::store(reversed).await;
    let again = fixture::publish(&store, fixture::NOW, false).await.unwrap();
    assert_eq!(again.files, fixture::published().await.files);
}

#[tokio::test]
async fn an_empty_store_publishes_an_empty_log_that_verifies() {
    let store = fixture::store(Vec::new()).await;
    let published = fixture::publish(&store, fixture::NOW, false).await.unwrap();
    assert_eq!(published.file("receipts.log"), Some(""));
    let report = Files::of(&published).verify(&[]);
    assert!(report.is_valid(), "{report:?}");
}

#[tokio::test]
async fn an_open_election_is_published_only_before_close() {
    let store = fixture::store(fixture::ballots()).await;
    let closes = fixture::manifest().closes_at;
    let refused = fixture::publish(&store, closes - 1, false)
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, PublishError::ElectionOpen { election, closes_at }
            if election == fixture::ELECTION && *closes_at == closes),
        "{refused}"
    );
    let provisional = fixture::publish(&store, closes - 1, true).await.unwrap();
    assert_eq!(provisional.tally.ballots, 5);
}

#[tokio::test]
async fn write_to_writes_every_file_and_names_the_failing_path() {
    let published = fixture::published().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("audit");
    published.write_to(&out).unwrap();
    for (name, text) in &published.files {
        assert_eq!(&std::fs::read_to_string(out.join(name)).unwrap(), text);
    }
    // A file where the folder should be.
    let blocked = dir.path().join("file");
    std::fs::write(&blocked, "").unwrap();
    let error = published.write_to(&blocked.join("audit")).unwrap_err();
    assert!(
        matches!(&error, PublishError::Write { action: "creating", path, .. } if path.ends_with("file/audit")),
        "{error}"
    );
}

//! The trust roots come from outside the folder. A publisher controls every file in it, its key
//! set included, and may hold a log key: none of that makes a forged or inflated log verify.

use edgevote_audit::LogKind;
use edgevote_audit::verify::{Inputs, LogFiles, TrustRoots, code};
use edgevote_shared::{Digest32, KeySet, Role, SigningIdentity, merkle, sign};

use crate::fixture::{self, Files, Pin};
use crate::verify::{checkpoint, tally};

/// Inserts `entry` into a sorted log's text, keeping it sorted.
fn insert_sorted(text: &str, entry: &str) -> String {
    let mut lines: Vec<&str> = text.lines().collect();
    lines.push(entry);
    lines.sort_unstable();
    lines.iter().map(|l| format!("{l}\n")).collect()
}

fn root(text: &str) -> Digest32 {
    let leaves: Vec<_> = text
        .lines()
        .map(|l| merkle::leaf_hash(l.as_bytes()))
        .collect();
    Digest32(merkle::root(&leaves))
}

/// What a publisher holding `signer` can produce: one more ballot (a ghost vote id) and one more
/// counted voter choosing `choice`, with the checkpoints and the tally re-signed to match.
fn inflated(files: &Files, signer: &SigningIdentity, choice: &str, add_ballot: bool) -> Files {
    let mut forged = files.clone();
    if add_ballot {
        let ghost = Digest32::of(b"a ballot nobody cast").to_b64();
        forged.receipts_log = insert_sorted(&files.receipts_log, &ghost);
    }
    forged.choices_log = insert_sorted(&files.choices_log, choice);
    forged.receipts_checkpoint = checkpoint(LogKind::Receipts, &forged.receipts_log, signer);
    forged.choices_checkpoint = checkpoint(LogKind::Choices, &forged.choices_log, signer);
    let mut t = tally(files);
    *t.counts.entry(choice.to_owned()).or_default() += 1;
    t.voters += 1;
    t.ballots = forged.receipts_log.lines().count() as u64;
    t.receipts_root = root(&forged.receipts_log);
    t.choices_root = root(&forged.choices_log);
    forged.tally = sign(signer, &t).unwrap();
    forged
}

/// `files` verified trusting the folder's own key set: what the verifier did before it took
/// its trust roots from outside.
fn verify_trusting_the_folder(files: &Files) -> edgevote_audit::Report {
    let manifest = fixture::signed_manifest();
    edgevote_audit::verify(&Inputs {
        files: LogFiles {
            tally: &files.tally,
            receipts_log: &files.receipts_log,
            receipts_checkpoint: &files.receipts_checkpoint,
            choices_log: &files.choices_log,
            choices_checkpoint: &files.choices_checkpoint,
        },
        folder_keys: &files.keyset,
        trust: TrustRoots {
            manifest: &manifest,
            keyset: Some(&files.keyset),
            log_key: None,
            witnesses: &[],
            min_witnesses: 0,
        },
        receipts: &[],
    })
}

fn codes(files: &Files, pin: Pin) -> Vec<&'static str> {
    files.verify_pinned(pin, &[]).codes()
}

#[tokio::test]
async fn a_publisher_who_adds_a_log_key_to_the_folder_is_caught() {
    let honest = Files::of(&fixture::published().await);
    let rogue = fixture::rogue(Role::Log);
    let mut forged = inflated(&honest, &rogue, "yes", true);
    let mut jwks: Vec<_> = forged.keyset.iter().cloned().collect();
    jwks.push(rogue.public_jwk(0));
    forged.keyset = KeySet::from_jwks(jwks).unwrap();
    // The attack works against a verifier that trusts the folder's keys...
    let report = verify_trusting_the_folder(&forged);
    assert!(report.is_valid(), "the forgery is consistent: {report:?}");
    assert_eq!(report.summary.unwrap().recomputed["yes"], 3);
    // ...and fails against every pinned root, with a stable code.
    assert_eq!(codes(&forged, Pin::KeySet), [code::KEYSET_MISMATCH]);
    assert_eq!(codes(&forged, Pin::LogKey), [code::LOG_KEY_MISMATCH]);
    assert_eq!(codes(&forged, Pin::Nothing), [code::NO_TRUST_ROOT]);
    // Signed by a key the folder does not even list: unknown to the pinned key set.
    let mut unlisted = inflated(&honest, &rogue, "yes", true);
    unlisted.keyset = honest.keyset.clone();
    assert_eq!(codes(&unlisted, Pin::KeySet), ["unknown_key_id"]);
    // The honest log verifies under either pin.
    for pin in [Pin::KeySet, Pin::LogKey] {
        assert!(honest.verify_pinned(pin, &[]).is_valid(), "{pin:?}");
    }
}

#[tokio::test]
async fn a_folder_whose_other_keys_differ_is_refused() {
    let honest = Files::of(&fixture::published().await);
    // The publisher swaps in its own edge key (to vouch for receipts it forges).
    let mut swapped = honest.clone();
    let jwks = honest.keyset.iter().map(|jwk| {
        if jwk.edgevote_role == Role::Edge {
            fixture::rogue(Role::Edge)
                .public_jwk(0)
                .bound_to(fixture::EDGE, fixture::REGION)
        } else {
            jwk.clone()
        }
    });
    swapped.keyset = KeySet::from_jwks(jwks.collect()).unwrap();
    assert_eq!(codes(&swapped, Pin::KeySet), [code::KEYSET_MISMATCH]);
}

#[tokio::test]
async fn a_log_key_holder_cannot_count_more_voters_than_ballots_or_a_choice_not_offered() {
    let honest = Files::of(&fixture::published().await);
    let log_key = fixture::key(Role::Log);
    // Four voters cast five ballots (one re-voted). Counting a fifth voter with no ballot of its
    // own stays within the ballots (a limit of what the log alone can show: the receipts held by
    // voters and the witnesses are the check there); a sixth is more voters than ballots.
    let stuffed = inflated(&honest, &log_key, "yes", false);
    assert_eq!(stuffed.choices_log.lines().count(), 5);
    let more = inflated(&stuffed, &log_key, "yes", false);
    assert_eq!(codes(&more, Pin::KeySet), [code::MORE_CHOICES_THAN_BALLOTS]);
    // A choice the manifest does not offer, with a ballot behind it.
    let invented = inflated(&honest, &log_key, "maybe", true);
    assert_eq!(codes(&invented, Pin::KeySet), [code::UNKNOWN_CHOICE]);
}

#[tokio::test]
async fn a_log_of_another_election_or_origin_is_refused() {
    let honest = Files::of(&fixture::published().await);
    let log_key = fixture::key(Role::Log);
    let mut other = honest.clone();
    let mut t = tally(&honest);
    t.election = "another-election".into();
    other.tally = sign(&log_key, &t).unwrap();
    assert_eq!(codes(&other, Pin::KeySet), [code::WRONG_ELECTION]);

    // A checkpoint whose origin names another log of the same election.
    let mut crossed = honest.clone();
    crossed.receipts_checkpoint = crossed
        .choices_checkpoint
        .clone()
        .replace("/choices", "/receipts");
    assert_eq!(codes(&crossed, Pin::KeySet), ["bad_signature"]);
    let leaves: Vec<_> = honest
        .receipts_log
        .lines()
        .map(|l| merkle::leaf_hash(l.as_bytes()))
        .collect();
    let note = edgevote_shared::checkpoint::Checkpoint {
        origin: LogKind::Receipts.origin("another-election"),
        size: leaves.len() as u64,
        root: merkle::root(&leaves),
    }
    .sign(&log_key)
    .unwrap();
    crossed.receipts_checkpoint = note;
    assert_eq!(codes(&crossed, Pin::KeySet), [code::BAD_ORIGIN]);
}

#[tokio::test]
async fn a_tally_naming_more_voters_than_the_choices_log_is_refused() {
    let honest = Files::of(&fixture::published().await);
    let mut files = honest.clone();
    let mut t = tally(&honest);
    // A tally must add up (voters = the sum of the counts), so the extra voter comes with a vote.
    t.voters += 1;
    *t.counts.entry("yes".to_owned()).or_default() += 1;
    files.tally = sign(&fixture::key(Role::Log), &t).unwrap();
    assert_eq!(codes(&files, Pin::KeySet), [code::TALLY_MISMATCH]);
    let report = files.verify(&[]);
    assert!(report.failures[0].detail.contains("voters"), "{report:?}");
}

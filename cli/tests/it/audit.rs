//! `edgevote audit publish|verify|serve` on a store written here, without running `up`: what
//! each prints and its exit code (0 ok, 1 INVALID with a code, 2 usage or I/O).

use std::path::Path;

use edgevote_shared::{Digest32, Policy};
use edgevote_store::embedded::{EmbeddedStore, EmbeddedStoreConfig};
use edgevote_store::{ElectionRules, Store, StoredBallot};

use crate::{audit_verify, edgevote, election_dir, ok};

/// Three voters' ballots of election `ref` in `data/r1/store.redb`.
fn write_store(data: &Path) {
    let ballots: Vec<StoredBallot> = [("v1", "yes"), ("v2", "no"), ("v3", "yes")]
        .iter()
        .enumerate()
        .map(|(i, (voter, choice))| StoredBallot {
            election: "ref".into(),
            voter: (*voter).into(),
            vote_id: Digest32::of(voter.as_bytes()),
            choice: (*choice).into(),
            token_id: format!("tok-{voter}"),
            nonce: format!("nonce-{i}"),
            received_at_ms: 1_000 + i as u64,
            edge: "offline".into(),
            region: "local".into(),
            batch_id: format!("batch-{i}"),
        })
        .collect();
    let rules = ElectionRules {
        id: "ref".into(),
        policy: Policy::FirstVoteWins,
        max_votes_per_voter: 10,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = EmbeddedStore::open(&EmbeddedStoreConfig {
            path: data.join("r1").join("store.redb"),
        })
        .unwrap();
        store.record(&rules, "r1", ballots).await.unwrap();
    });
}

/// A stopped stack in `dir/stack`: keys (with a log key), election `ref` (open) and a store.
pub(crate) fn stack(dir: &Path) -> std::path::PathBuf {
    ok(dir, &["keys", "gen", "--role", "log"]);
    let data = dir.join("stack");
    write_store(&data);
    let info = serde_json::json!({
        "election": "ref",
        "keys_dir": dir.join("edgevote-keys"),
        "election_path": dir.join("election.jws"),
        "regions": [{"name": "r1", "edge_url": "http://127.0.0.1:1", "collector_url": "http://127.0.0.1:1"}],
    });
    std::fs::write(data.join("stack.json"), info.to_string()).unwrap();
    data
}

#[test]
fn audit_publish_verify_and_tampering() {
    let dir = election_dir();
    let d = dir.path();
    let data = stack(d);
    let (data_arg, out) = (data.to_str().unwrap(), d.join("audit"));
    let out_arg = out.to_str().unwrap();

    let publish = |extra: &[&str]| {
        let args = [
            &["audit", "publish", "--up", data_arg, "--out", out_arg],
            extra,
        ]
        .concat();
        edgevote(d, &args)
    };
    let open = publish(&[]);
    assert_eq!(open.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&open.stderr);
    assert!(
        stderr.contains("election ref is open until") && stderr.contains("--before-close"),
        "{stderr}"
    );

    let published = publish(&["--before-close"]);
    assert!(published.status.success());
    let published = String::from_utf8_lossy(&published.stdout);
    assert!(
        published.starts_with("published ref from r1: 3 ballots, 3 counted voters"),
        "{published}"
    );
    let verified = audit_verify(d, &data, &out, &[]);
    assert!(verified.status.success());
    let verified = String::from_utf8_lossy(&verified.stdout);
    assert_eq!(
        verified,
        "log: 3 ballots, 3 counted; tally recomputed from the choices log {\"no\": 1, \"yes\": 2}: matches the signed tally\n"
    );

    // A receipt that is not one: INVALID with its code, exit 1.
    std::fs::write(d.join("junk.jws"), "not a receipt").unwrap();
    let junk = d.join("junk.jws");
    let out1 = audit_verify(d, &data, &out, &["--receipts", junk.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out1.stdout);
    assert_eq!(out1.status.code(), Some(1), "{text}");
    assert!(text.contains("(malformed_jws)"), "{text}");
    assert!(text.contains("1 checked, 0 verified and included, 0 not included, 1 invalid"));

    // A tampered log is INVALID (exit 1, with its code), not an I/O error.
    let log = std::fs::read_to_string(out.join("choices.log")).unwrap();
    std::fs::write(out.join("choices.log"), log.replacen("no\n", "yes\n", 1)).unwrap();
    let tampered = audit_verify(d, &data, &out, &[]);
    let text = String::from_utf8_lossy(&tampered.stdout);
    assert_eq!(tampered.status.code(), Some(1), "{text}");
    assert!(
        text.starts_with("INVALID choices.log (log_checkpoint_mismatch)"),
        "{text}"
    );

    // A missing file is an I/O error: exit 2.
    std::fs::remove_file(out.join("tally.jws")).unwrap();
    let missing = audit_verify(d, &data, &out, &[]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("reading tally.jws"));
}

/// A vote still in a queue keeps `publish` from signing a tally; `--force` signs one marked
/// incomplete, which `verify` then refuses as the result.
#[test]
fn publish_refuses_while_votes_are_pending_unless_forced() {
    let dir = election_dir();
    let d = dir.path();
    let data = stack(d);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        use edgevote_queue::Queue;
        let queue = edgevote_queue::embedded::EmbeddedQueue::open(
            &edgevote_queue::embedded::EmbeddedQueueConfig {
                path: data.join("r1").join("queue.redb"),
                max_receives: 5,
            },
        )
        .unwrap();
        queue.send_batch(vec!["a message".into()]).await.unwrap();
    });
    let (data_arg, out) = (data.to_str().unwrap(), d.join("audit"));
    let out_arg = out.to_str().unwrap();
    let publish = |extra: &[&str]| {
        let args = [
            &[
                "audit",
                "publish",
                "--up",
                data_arg,
                "--out",
                out_arg,
                "--before-close",
            ],
            extra,
        ]
        .concat();
        edgevote(d, &args)
    };
    let refused = publish(&[]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("still pending") && stderr.contains("r1: 1 messages in the queue"),
        "{stderr}"
    );
    assert!(!out.exists(), "a refused publish writes nothing");

    let forced = publish(&["--force"]);
    let stderr = String::from_utf8_lossy(&forced.stderr);
    assert!(forced.status.success(), "{stderr}");
    assert!(stderr.contains("INCOMPLETE"), "{stderr}");
    let verified = audit_verify(d, &data, &out, &[]);
    let text = String::from_utf8_lossy(&verified.stdout);
    assert_eq!(verified.status.code(), Some(1), "{text}");
    assert!(
        text.contains("INVALID tally.jws (incomplete_tally)")
            && text.contains("1 messages in the queue"),
        "{text}"
    );
}

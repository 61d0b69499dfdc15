//! Witnesses, attacked: a witness cosigns only a history consistent with what it cosigned
//! before, and keeps that across restarts; a log that shows two histories of one size to two
//! witnesses gets each cosigned once, but an auditor requiring both witnesses refuses both, and
//! comparing the two checkpoints proves the fork.

use std::path::Path;
use std::sync::Arc;

use edgevote_audit::LogKind;
use edgevote_audit::witness::{
    ClientError, Submitted, WitnessConfig, WitnessParts, WitnessService, client, code,
    compare_cosigned, witness_folder,
};
use edgevote_shared::checkpoint::{Checkpoint, verifier_key};
use edgevote_shared::cosignature::{Witness, WitnessKey, verify_cosignature};
use edgevote_shared::merkle;
use edgevote_shared::{Role, SigningIdentity};

use crate::fixture::{self, ELECTION, Files, NOW, Pin};

/// A witness serving on 127.0.0.1 until stopped.
struct Running {
    url: String,
    key: WitnessKey,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    async fn stop(self) {
        self.stop.send(()).unwrap();
        self.task.await.unwrap().unwrap();
    }
}

/// The witness named `w<seed>`, configured (from its TOML file) for both logs of the fixture's
/// election, its state in `state`.
async fn start(state: &Path, seed: u8) -> Running {
    let witness = Witness::from_seed(&format!("witness.test/w{seed}"), &[seed; 32]).unwrap();
    let log_vkey = verifier_key(
        &LogKind::Receipts.origin(ELECTION),
        &fixture::key(Role::Log).verifying_key(),
    );
    let logs: String = [LogKind::Receipts, LogKind::Choices]
        .iter()
        .map(|k| {
            format!(
                "[[log]]\norigin = {:?}\nvkey = {log_vkey:?}\n",
                k.origin(ELECTION)
            )
        })
        .collect();
    let config = format!(
        "key_path = \"unused\"\nstate_path = {:?}\n{logs}",
        state.display().to_string()
    );
    let config = WitnessConfig::parse(&config).unwrap();
    let parts =
        WitnessParts::from_config(&config, &witness.private_key(), Arc::new(|| NOW)).unwrap();
    let service = Arc::new(WitnessService::open(parts).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move { stopped.await.unwrap_or(()) };
    let task = tokio::spawn(edgevote_audit::witness::serve(listener, service, shutdown));
    Running {
        url,
        key: witness.public(),
        stop,
        task,
    }
}

/// The receipts log of `entries`: its signed checkpoint, by `log`.
fn checkpoint(entries: &[&str], log: &SigningIdentity) -> String {
    let leaves: Vec<_> = entries
        .iter()
        .map(|e| merkle::leaf_hash(e.as_bytes()))
        .collect();
    Checkpoint {
        origin: LogKind::Receipts.origin(ELECTION),
        size: entries.len() as u64,
        root: merkle::root(&leaves),
    }
    .sign(log)
    .unwrap()
}

fn proof(old: usize, entries: &[&str]) -> Vec<merkle::Hash> {
    let leaves: Vec<_> = entries
        .iter()
        .map(|e| merkle::leaf_hash(e.as_bytes()))
        .collect();
    merkle::consistency_proof(old, &leaves).unwrap()
}

/// The HTTP status of a refusal, and its body.
fn refusal(result: Result<Submitted, ClientError>) -> (u16, String) {
    match result {
        Err(ClientError::Refused { status, body, .. }) => (status, body),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn a_witness_cosigns_only_a_consistent_history_and_remembers_it() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("witness.state");
    let witness = start(&state, 1).await;
    let url = witness.url.as_str();
    let log = fixture::key(Role::Log);
    let history = ["a", "b", "c", "d", "e", "f", "g"];

    // The first checkpoint: from nothing.
    let first = checkpoint(&history[..3], &log);
    let Submitted::Cosigned(line) = client::add_checkpoint(url, 0, &[], &first).await.unwrap()
    else {
        panic!("the first checkpoint was not cosigned");
    };
    let cosigned = format!("{first}{line}");
    assert_eq!(verify_cosignature(&cosigned, &witness.key), Ok(NOW));

    // Grown, with a valid proof from size 3.
    let grown = checkpoint(&history[..5], &log);
    let answer = client::add_checkpoint(url, 3, &proof(3, &history[..5]), &grown).await;
    assert!(matches!(answer, Ok(Submitted::Cosigned(_))), "{answer:?}");

    // A stale old size gets the witness's size back.
    let answer = client::add_checkpoint(url, 0, &[], &grown).await.unwrap();
    assert_eq!(answer, Submitted::Conflict(5));

    // A split view shown after the witness saw the other: same size, another root.
    let forked: Vec<&str> = ["a", "b", "c", "d", "X"].to_vec();
    let fork = checkpoint(&forked, &log);
    let (status, body) = refusal(client::add_checkpoint(url, 5, &[], &fork).await);
    assert_eq!(status, 409);
    assert!(body.contains(code::SPLIT_VIEW), "{body}");
    // The fork grown, with its own (valid) proof: not consistent with what the witness holds.
    let fork_grown = ["a", "b", "c", "d", "X", "f", "g"];
    let fork7 = checkpoint(&fork_grown, &log);
    let (status, body) =
        refusal(client::add_checkpoint(url, 5, &proof(5, &fork_grown), &fork7).await);
    assert_eq!(status, 422);
    assert!(body.contains(code::NOT_CONSISTENT), "{body}");
    // A proof for the honest history with one hash flipped.
    let honest7 = checkpoint(&history, &log);
    let mut tampered = proof(5, &history);
    tampered[0][0] ^= 1;
    let (status, _) = refusal(client::add_checkpoint(url, 5, &tampered, &honest7).await);
    assert_eq!(status, 422);

    // Not the log's key, not a known log, not a request.
    let rogue = checkpoint(&history, &fixture::rogue(Role::Log));
    assert_eq!(
        refusal(client::add_checkpoint(url, 5, &[], &rogue).await).0,
        403
    );
    let other = Checkpoint {
        origin: "edgevote/other/receipts".into(),
        size: 1,
        root: [0; 32],
    }
    .sign(&log)
    .unwrap();
    assert_eq!(
        refusal(client::add_checkpoint(url, 0, &[], &other).await).0,
        404
    );
    let (status, body) = refusal(client::add_checkpoint(url, 9, &[], &grown).await);
    assert_eq!(status, 400, "old size above the checkpoint's: {body}");

    // The state survives a restart: nothing refused was stored.
    witness.stop().await;
    let witness = start(&state, 1).await;
    let answer = client::add_checkpoint(&witness.url, 0, &[], &grown)
        .await
        .unwrap();
    assert_eq!(answer, Submitted::Conflict(5));
    let answer = client::add_checkpoint(&witness.url, 5, &proof(5, &history), &honest7).await;
    assert!(matches!(answer, Ok(Submitted::Cosigned(_))), "{answer:?}");
    witness.stop().await;
}

#[tokio::test]
async fn oversized_and_malformed_requests_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let witness = start(&dir.path().join("state"), 1).await;
    let note = checkpoint(&["a"], &fixture::key(Role::Log));
    let too_long = vec![[0u8; 32]; 64];
    let (status, _) = refusal(client::add_checkpoint(&witness.url, 0, &too_long, &note).await);
    assert_eq!(status, 400);
    let huge = format!("{note}{}", "x".repeat(80 * 1024));
    let (status, body) = refusal(client::add_checkpoint(&witness.url, 0, &[], &huge).await);
    assert_eq!(status, 413, "{body}");
    witness.stop().await;
}

/// Reads a published folder's files back (after a witness wrote into it).
fn files_in(dir: &Path) -> Files {
    Files::read_with(|name| std::fs::read_to_string(dir.join(name)).unwrap())
}

/// Two witnesses, `w1` and `w2`, their state under `dir`.
async fn start_two(dir: &Path) -> (Running, Running) {
    (
        start(&dir.join("w1"), 1).await,
        start(&dir.join("w2"), 2).await,
    )
}

/// Publishes `ballots` into a new folder under `root`.
async fn publish_into(
    root: &Path,
    name: &str,
    ballots: Vec<edgevote_store::StoredBallot>,
) -> std::path::PathBuf {
    let published = fixture::publish(&fixture::store(ballots).await, NOW, false)
        .await
        .unwrap();
    let dir = root.join(name);
    published.write_to(&dir).unwrap();
    dir
}

#[tokio::test]
async fn an_honest_log_cosigned_by_both_witnesses_verifies_with_two_of_two() {
    let dir = tempfile::tempdir().unwrap();
    let (w1, w2) = start_two(dir.path()).await;
    let folder = publish_into(dir.path(), "log", fixture::ballots()).await;
    let keys = [w1.key.clone(), w2.key.clone()];
    assert_eq!(
        files_in(&folder)
            .verify_witnessed(Pin::KeySet, &[], &keys, 1)
            .codes(),
        [code::TOO_FEW_WITNESSES],
        "not cosigned yet"
    );
    witness_folder(&folder, &w1.url).await.unwrap();
    witness_folder(&folder, &w2.url).await.unwrap();
    let files = files_in(&folder);
    assert!(
        files
            .verify_witnessed(Pin::KeySet, &[], &keys, 2)
            .is_valid()
    );
    assert!(
        files
            .verify_witnessed(Pin::LogKey, &[], &keys, 2)
            .is_valid()
    );
    // One witness pinned twice is still one witness.
    let twice = [w1.key.clone(), w1.key.clone()];
    assert_eq!(
        files.verify_witnessed(Pin::KeySet, &[], &twice, 2).codes(),
        [code::TOO_FEW_WITNESSES]
    );
    // Submitting again is idempotent (409, then from the witness's size, same tree).
    witness_folder(&folder, &w1.url).await.unwrap();
    assert!(
        files_in(&folder)
            .verify_witnessed(Pin::KeySet, &[], &keys, 2)
            .is_valid()
    );
    w1.stop().await;
    w2.stop().await;
}

#[tokio::test]
async fn a_split_view_is_refused_by_two_of_two_and_caught_by_comparison() {
    let dir = tempfile::tempdir().unwrap();
    let (w1, w2) = start_two(dir.path()).await;
    // Two logs of the same size: in the second, v4's ballot says yes.
    let honest = publish_into(dir.path(), "a", fixture::ballots()).await;
    let mut other = fixture::ballots();
    let last = other.len() - 1;
    other[last] = fixture::ballot("v4", "yes", other[last].received_at_ms);
    let forked = publish_into(dir.path(), "b", other).await;

    // Each witness sees one of them, and cosigns it.
    witness_folder(&honest, &w1.url).await.unwrap();
    witness_folder(&forked, &w2.url).await.unwrap();
    let (a, b) = (files_in(&honest), files_in(&forked));
    let keys = [w1.key.clone(), w2.key.clone()];
    for files in [&a, &b] {
        assert!(
            files
                .verify_witnessed(Pin::KeySet, &[], &keys, 1)
                .is_valid()
        );
        assert_eq!(
            files.verify_witnessed(Pin::KeySet, &[], &keys, 2).codes(),
            [code::TOO_FEW_WITNESSES]
        );
    }

    // Side by side, the two cosigned checkpoints prove the fork.
    let log_key = fixture::key(Role::Log).verifying_key();
    let failure = compare_cosigned(
        LogKind::Receipts,
        &a.receipts_checkpoint,
        &b.receipts_checkpoint,
        &log_key,
    )
    .unwrap_err();
    assert_eq!(failure.code, code::SPLIT_VIEW);
    assert!(
        compare_cosigned(
            LogKind::Receipts,
            &a.receipts_checkpoint,
            &a.receipts_checkpoint,
            &log_key
        )
        .is_ok()
    );

    // Shown the other history afterwards, a witness refuses it and cosigns nothing.
    let before = std::fs::read_to_string(forked.join("receipts.checkpoint")).unwrap();
    let refused = witness_folder(&forked, &w1.url).await.unwrap_err();
    assert!(
        matches!(
            refused,
            ClientError::Refused {
                status: 409 | 422,
                ..
            }
        ),
        "{refused:?}"
    );
    let after = std::fs::read_to_string(forked.join("receipts.checkpoint")).unwrap();
    assert_eq!(before, after);
    assert!(verify_cosignature(&after, &w1.key).is_err());
    w1.stop().await;
    w2.stop().await;
}

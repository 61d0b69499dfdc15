//! The region's live log holds every vote id the collector stored, also one whose message was
//! stored but abandoned before its append (a crash): redelivered, it is appended then. Its
//! checkpoints verify with the log key, and its routes serve it and nothing else.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use edgevote_audit::tiles::{FolderSource, TiledTree, bundle_entries, tile_path};
use edgevote_collector::live_log::{LiveLog, LiveLogConfig, origin};
use edgevote_queue::Queue;
use edgevote_queue::embedded::{EmbeddedQueue, EmbeddedQueueConfig};
use edgevote_shared::checkpoint::Checkpoint;
use edgevote_shared::{Role, SigningIdentity, merkle};
use edgevote_store::embedded::{EmbeddedStore, EmbeddedStoreConfig};
use edgevote_store::{Store, scan_all};

use crate::fixture::{self, FIRST};
use crate::http::{Served, get};

fn log_key() -> SigningIdentity {
    SigningIdentity::from_seed(&[8; 32], Role::Log)
}

/// An embedded queue (messages dead-lettered after `max_receives`) and store in `dir`.
fn backends(dir: &std::path::Path, max_receives: u32) -> (Arc<dyn Queue>, Arc<dyn Store>) {
    let queue = EmbeddedQueue::open(&EmbeddedQueueConfig {
        path: dir.join("q.redb"),
        max_receives,
    })
    .unwrap();
    let store = EmbeddedStore::open(&EmbeddedStoreConfig {
        path: dir.join("s.redb"),
    })
    .unwrap();
    (Arc::new(queue), Arc::new(store))
}

fn live_log(dir: &std::path::Path) -> Arc<LiveLog> {
    let key_path = dir.join("log.jwk");
    edgevote_signer::keyfile::write(&key_path, &log_key()).unwrap();
    let config = LiveLogConfig {
        dir: dir.join("live"),
        log_key_path: key_path,
        checkpoint_interval_ms: 100,
    };
    Arc::new(LiveLog::open(config, fixture::REGION).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_stored_vote_is_in_the_live_log_even_after_a_crash_before_its_append() {
    let dir = tempfile::tempdir().unwrap();
    let (queue, store) = backends(dir.path(), 5);
    let now = fixture::now_ms();
    let first = fixture::envelope(
        "b1",
        vec![
            (fixture::ballot(FIRST, "v1", "yes", 1), now),
            (fixture::ballot(FIRST, "v2", "no", 2), now),
        ],
    );
    queue.send_batch(vec![first]).await.unwrap();
    // A collector without the log stores the ballots and dies before deleting the message.
    let crashed = fixture::collector(Arc::clone(&queue), Arc::clone(&store));
    crashed.faults.crash_after_store.store(1, Ordering::SeqCst);
    let received = queue
        .receive(10, Duration::ZERO, Duration::from_secs(1))
        .await
        .unwrap();
    crashed.process(received).await;
    // The restarted collector, with its live log: the message comes back, its ballots are
    // duplicates, and they are appended; a new message is appended as it is stored.
    let collector = fixture::collector(Arc::clone(&queue), Arc::clone(&store));
    let log = live_log(dir.path());
    collector.attach_live_log(Arc::clone(&log)).unwrap();
    let second = fixture::envelope("b2", vec![(fixture::ballot(FIRST, "v3", "yes", 3), now)]);
    queue.send_batch(vec![second]).await.unwrap();
    fixture::drain(&collector, Duration::from_secs(30)).await;

    let mut stored = Vec::new();
    scan_all(store.as_ref(), FIRST, |b| {
        stored.push(b.vote_id.to_b64());
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(stored.len(), 3);
    let folder = log.election_dir(FIRST);
    let mut entries =
        bundle_entries(&std::fs::read(folder.join(tile_path(None, 0, 3))).unwrap()).unwrap();
    let leaves: Vec<merkle::Hash> = entries.iter().map(|e| merkle::leaf_hash(e)).collect();
    entries.sort();
    let mut expected: Vec<Vec<u8>> = stored.iter().map(|s| s.clone().into_bytes()).collect();
    expected.sort();
    assert_eq!(entries, expected, "every stored vote id, once");

    // The checkpoint written at shutdown verifies with the log key and names the tree.
    let note = std::fs::read_to_string(folder.join("checkpoint")).unwrap();
    let checkpoint = Checkpoint::verify(&note, &log_key().verifying_key()).unwrap();
    assert_eq!(checkpoint.origin, origin(FIRST, fixture::REGION));
    assert_eq!(
        (checkpoint.size, checkpoint.root),
        (3, merkle::root(&leaves))
    );
    let source = FolderSource(folder.clone());
    assert_eq!(TiledTree::new(&source, 3).root().unwrap(), checkpoint.root);

    // Served: the checkpoint, the index of a vote id; nothing outside the log's folder.
    let served = Served::start(edgevote_collector::http::router(Arc::clone(&collector))).await;
    let (status, body) = get(served.addr, &format!("/v1/log/{FIRST}/checkpoint")).await;
    assert_eq!((status, body.as_str()), (200, note.as_str()));
    let (status, body) = get(served.addr, &format!("/v1/log/{FIRST}/index/{}", stored[0])).await;
    assert_eq!(status, 200, "{body}");
    let index: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(index["index"].as_u64().unwrap() < 3);
    for path in [
        format!("/v1/log/{FIRST}/tile/../../q.redb"),
        format!("/v1/log/{FIRST}/tile/..%2F..%2Fq.redb"),
        "/v1/log/..%2F/checkpoint".to_owned(),
        format!("/v1/log/{FIRST}/index/not-a-vote-id"),
    ] {
        let (status, _) = get(served.addr, &path).await;
        assert_eq!(status, 404, "{path}");
    }
    served.stop().await;
}

#[test]
fn a_key_that_is_not_a_log_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("edge.jwk");
    edgevote_signer::keyfile::write(&key_path, &fixture::edge()).unwrap();
    let config = LiveLogConfig {
        dir: dir.path().join("live"),
        log_key_path: key_path,
        checkpoint_interval_ms: 100,
    };
    let error = LiveLog::open(config, fixture::REGION).unwrap_err();
    assert!(error.to_string().contains("not a log key"), "{error}");
}

/// While the live log cannot be written, nothing is deleted and the failure is counted; once it
/// can, the redelivered messages are appended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_live_log_keeps_the_messages_until_it_appends_them() {
    let dir = tempfile::tempdir().unwrap();
    let (queue, store) = backends(dir.path(), 50);
    let collector = fixture::collector(Arc::clone(&queue), Arc::clone(&store));
    let log = live_log(dir.path());
    collector.attach_live_log(Arc::clone(&log)).unwrap();
    // The election's log folder cannot be created: a file stands in its place.
    std::fs::create_dir_all(dir.path().join("live")).unwrap();
    std::fs::write(log.election_dir(FIRST), b"in the way").unwrap();
    let now = fixture::now_ms();
    let body = fixture::envelope("b1", vec![(fixture::ballot(FIRST, "v1", "yes", 1), now)]);
    queue.send_batch(vec![body]).await.unwrap();
    let received = queue
        .receive(10, Duration::ZERO, Duration::from_secs(1))
        .await
        .unwrap();
    collector.process(received).await;
    assert_eq!(collector.metrics.live_log_errors.load(Ordering::Relaxed), 1);
    let stats = queue.stats().await.unwrap();
    assert_eq!(stats.visible + stats.in_flight, 1, "the message is kept");
    // Repaired: the message comes back and its (now duplicate) ballot is appended.
    std::fs::remove_file(log.election_dir(FIRST)).unwrap();
    fixture::drain(&collector, Duration::from_secs(30)).await;
    let note = std::fs::read_to_string(log.election_dir(FIRST).join("checkpoint")).unwrap();
    let checkpoint = Checkpoint::verify(&note, &log_key().verifying_key()).unwrap();
    assert_eq!(checkpoint.size, 1);
}

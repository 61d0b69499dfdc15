//! The suite on the embedded backends (redb queue and store).

use std::sync::Arc;

use edgevote_queue::Queue;
use edgevote_queue::embedded::{EmbeddedQueue, EmbeddedQueueConfig};
use edgevote_store::Store;
use edgevote_store::embedded::{EmbeddedStore, EmbeddedStoreConfig};

use crate::suite;

fn backends(dir: &tempfile::TempDir) -> (Arc<dyn Queue>, Arc<dyn Store>) {
    let queue = EmbeddedQueue::open(&EmbeddedQueueConfig {
        path: dir.path().join("queue.redb"),
        max_receives: 5,
    })
    .unwrap();
    let store = EmbeddedStore::open(&EmbeddedStoreConfig {
        path: dir.path().join("store.redb"),
    })
    .unwrap();
    (Arc::new(queue), Arc::new(store))
}

macro_rules! embedded_suite {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let dir = tempfile::tempdir().unwrap();
            let (queue, store) = backends(&dir);
            suite::$name(queue, store).await;
        }
    )*};
}

embedded_suite!(
    same_ballot_five_times_counts_once,
    two_ballots_of_one_voter_follow_the_policy,
    crash_after_store_before_delete_counts_once,
    poison_messages_are_dead_lettered,
    packed_envelopes_count_whole_or_not_at_all,
);

#[tokio::test]
async fn queue_survives_reopen_and_redelivers_unacknowledged_messages() {
    let dir = tempfile::tempdir().unwrap();
    let config = EmbeddedQueueConfig {
        path: dir.path().join("q.redb"),
        max_receives: 2,
    };
    let queue = EmbeddedQueue::open(&config).unwrap();
    queue
        .send_batch(vec!["a".into(), "b".into()])
        .await
        .unwrap();
    let got = queue
        .receive(
            10,
            std::time::Duration::ZERO,
            std::time::Duration::from_millis(100),
        )
        .await
        .unwrap();
    assert_eq!(got.len(), 2);
    queue
        .delete_batch(vec![got[0].handle.clone()])
        .await
        .unwrap();
    drop(queue);
    // "Crash": reopen; the undeleted message comes back after its visibility timeout.
    let queue = EmbeddedQueue::open(&config).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    let again = queue
        .receive(
            10,
            std::time::Duration::from_secs(1),
            std::time::Duration::from_millis(50),
        )
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].body, "b");
    assert_eq!(again[0].receive_count, 2);
    // A stale handle (from the first receive) deletes nothing.
    queue
        .delete_batch(vec![got[1].handle.clone()])
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(80)).await;
    // Third receive exceeds max_receives = 2: the message moves to the dead-letter queue.
    let third = queue
        .receive(
            10,
            std::time::Duration::from_millis(200),
            std::time::Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert!(third.is_empty());
    let letters = queue.peek_dead_letters(10).await.unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].reason, "max_receives_exceeded");
    assert_eq!(queue.stats().await.unwrap().dead_letters, 1);
}

#[tokio::test]
async fn queue_refuses_out_of_bound_requests() {
    let dir = tempfile::tempdir().unwrap();
    let queue = EmbeddedQueue::open(&EmbeddedQueueConfig {
        path: dir.path().join("q.redb"),
        max_receives: 2,
    })
    .unwrap();
    assert!(queue.send_batch(vec![]).await.is_err());
    assert!(queue.send_batch(vec!["x".into(); 11]).await.is_err());
    assert!(
        queue
            .send_batch(vec!["x".repeat(300 * 1024)])
            .await
            .is_err()
    );
    assert_eq!(
        queue.stats().await.unwrap().visible,
        0,
        "refused sends change nothing"
    );
    let zero = std::time::Duration::ZERO;
    assert!(queue.receive(0, zero, zero).await.is_err());
    assert!(queue.receive(11, zero, zero).await.is_err());
    assert!(queue.delete_batch(vec!["garbage".into()]).await.is_err());
}

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
    hostile_messages_are_dead_lettered_and_count_nothing,
    packed_envelopes_count_whole_or_not_at_all,
    ballots_beyond_the_voter_limit_are_refused,
    retried_vote_keeps_its_earliest_copy,
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

/// Set in the environment of the child process of
/// [`a_crash_keeps_every_send_delete_dead_letter_and_receive_count`]: it turns
/// [`queue_work_then_abort_in_a_child_process`] from a no-op into that crashing child.
const CRASH_CHILD_QUEUE: &str = "EDGEVOTE_TEST_CRASH_CHILD_QUEUE";

/// The crash test's child (a no-op unless [`CRASH_CHILD_QUEUE`] names a queue file): sends
/// a, b, c; receives a and b, deletes a, dead-letters b; sends d; receives c and d (hidden for
/// 1 s), deletes c; then aborts without closing the queue.
#[tokio::test]
async fn queue_work_then_abort_in_a_child_process() {
    let Some(path) = std::env::var_os(CRASH_CHILD_QUEUE) else {
        return;
    };
    let queue = EmbeddedQueue::open(&EmbeddedQueueConfig {
        path: path.into(),
        max_receives: 5,
    })
    .unwrap();
    let receive = |max, hidden_secs| {
        queue.receive(
            max,
            std::time::Duration::ZERO,
            std::time::Duration::from_secs(hidden_secs),
        )
    };
    queue
        .send_batch(vec!["a".into(), "b".into(), "c".into()])
        .await
        .unwrap();
    let first = receive(2, 600).await.unwrap();
    assert_eq!(bodies(&first), ["a", "b"]);
    queue
        .delete_batch(vec![first[0].handle.clone()])
        .await
        .unwrap();
    queue.dead_letter(&first[1], "poison").await.unwrap();
    queue.send_batch(vec!["d".into()]).await.unwrap();
    let second = receive(2, 1).await.unwrap();
    assert_eq!(bodies(&second), ["c", "d"]);
    queue
        .delete_batch(vec![second[0].handle.clone()])
        .await
        .unwrap();
    std::process::abort();
}

fn bodies(messages: &[edgevote_queue::Received]) -> Vec<&str> {
    messages.iter().map(|m| m.body.as_str()).collect()
}

/// Every call of the embedded queue is durable when it returns: a crash (a child process
/// aborting mid-work) loses no send, undoes no delete or dead letter, and keeps the receive
/// count, so a message that crashes its consumer still reaches `max_receives` and the
/// dead-letter queue instead of looping forever.
#[tokio::test]
async fn a_crash_keeps_every_send_delete_dead_letter_and_receive_count() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.redb");
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "embedded::queue_work_then_abort_in_a_child_process",
            "--test-threads",
            "1",
        ])
        .env(CRASH_CHILD_QUEUE, &path)
        .output()
        .unwrap();
    assert!(
        child.status.code().is_none(),
        "the child must die by its abort, not exit: {:?}\n{}",
        child.status,
        String::from_utf8_lossy(&child.stdout)
    );

    let queue = EmbeddedQueue::open(&EmbeddedQueueConfig {
        path,
        max_receives: 5,
    })
    .unwrap();
    let stats = queue.stats().await.unwrap();
    assert_eq!(
        stats.visible + stats.in_flight,
        1,
        "only d is left: {stats:?}"
    );
    let dead = queue.peek_dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (dead[0].body.as_str(), dead[0].reason.as_str()),
        ("b", "poison")
    );
    let back = queue
        .receive(
            10,
            std::time::Duration::from_secs(5),
            std::time::Duration::from_secs(60),
        )
        .await
        .unwrap();
    assert_eq!(
        bodies(&back),
        ["d"],
        "d comes back once its visibility runs out"
    );
    assert_eq!(back[0].receive_count, 2, "the child's receive was counted");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regions_replicate_and_converge_on_one_final_tally() {
    use edgevote_store::replication::{Replica, converged, ship_once};
    use edgevote_store::{ElectionRules, PutOutcome, final_tally};
    let dir = tempfile::tempdir().unwrap();
    let replicas: Vec<Replica> = ["a", "b", "c"]
        .iter()
        .map(|r| Replica {
            region: (*r).into(),
            store: Arc::new(
                EmbeddedStore::open(&EmbeddedStoreConfig {
                    path: dir.path().join(format!("{r}.redb")),
                })
                .unwrap(),
            ),
        })
        .collect();
    let rules = ElectionRules {
        id: crate::fixture::FIRST.into(),
        policy: edgevote_shared::Policy::FirstVoteWins,
        max_votes_per_voter: 10,
    };
    // One voter votes in two regions at once (a cross-region race); another votes in one.
    let ballot = |voter: &str, choice: &str, ts: u64, region: &str| edgevote_store::StoredBallot {
        election: rules.id.clone(),
        voter: voter.into(),
        vote_id: edgevote_shared::Digest32::of(format!("{voter}{choice}{ts}").as_bytes()),
        choice: choice.into(),
        token_id: format!("t-{voter}"),
        nonce: "n".into(),
        received_at_ms: ts,
        edge: format!("edge-{region}"),
        region: region.into(),
        batch_id: "b".into(),
    };
    let a = replicas[0]
        .store
        .record(&rules, "a", vec![ballot("v1", "yes", 200, "a")])
        .await
        .unwrap();
    let b = replicas[1]
        .store
        .record(
            &rules,
            "b",
            vec![ballot("v1", "no", 100, "b"), ballot("v2", "no", 50, "b")],
        )
        .await
        .unwrap();
    assert_eq!((a, b.len()), (vec![PutOutcome::Stored], 2));
    assert!(!converged(&replicas).await.unwrap());
    for from in &replicas {
        for to in replicas.iter().filter(|r| r.region != from.region) {
            ship_once(from, to, std::time::Duration::ZERO)
                .await
                .unwrap();
        }
    }
    assert!(converged(&replicas).await.unwrap());
    for replica in &replicas {
        let tally = final_tally(replica.store.as_ref(), &rules).await.unwrap();
        assert_eq!(
            (tally.voters, tally.ballots),
            (2, 3),
            "region {}",
            replica.region
        );
        // v1's earliest ballot (no, in b) counts everywhere; v2 votes no.
        assert_eq!(
            tally.counts.get("no"),
            Some(&2),
            "region {}",
            replica.region
        );
    }
    // Shipping again changes nothing (idempotent).
    assert_eq!(
        ship_once(&replicas[0], &replicas[1], std::time::Duration::ZERO)
            .await
            .unwrap(),
        0
    );
}

/// Processing settings built in code get the configuration file's check: `Collector::new`
/// refuses them with the setting's name (with `max_in_flight_messages` below the batch, a
/// receive loop would wait forever for its permits; with no receiver, nothing is drained), and
/// valid ones pass.
#[test]
fn a_bad_processing_config_is_refused_by_the_collector() {
    use edgevote_collector::Collector;
    use edgevote_collector::config::ProcessingConfig;
    use edgevote_collector::service::CollectorParts;

    let dir = tempfile::tempdir().unwrap();
    let (queue, store) = backends(&dir);
    let new = |processing: ProcessingConfig| {
        Collector::new(CollectorParts {
            region: "r1".into(),
            queue: Arc::clone(&queue),
            store: Arc::clone(&store),
            checker: crate::fixture::checker(),
            processing,
        })
    };
    let starved = ProcessingConfig {
        receive_batch_messages: 10,
        max_in_flight_messages: 5,
        ..crate::fixture::processing()
    };
    let refused = new(starved).expect_err("a batch that never gets its permits");
    assert_eq!(refused.field, "max_in_flight_messages");
    assert_eq!(
        refused.to_string(),
        "max_in_flight_messages must be at least receive_batch_messages"
    );
    let idle = ProcessingConfig {
        receivers: 0,
        ..crate::fixture::processing()
    };
    assert_eq!(new(idle).expect_err("no receive loop").field, "receivers");
    let refused_field = |processing: ProcessingConfig| processing.validate().unwrap_err().field;
    let too_long_a_wait = ProcessingConfig {
        wait_time_secs: 21,
        ..ProcessingConfig::default()
    };
    assert_eq!(refused_field(too_long_a_wait), "wait_time_secs");
    let too_long_a_gather = ProcessingConfig {
        receive_gather_ms: 1001,
        ..ProcessingConfig::default()
    };
    assert_eq!(refused_field(too_long_a_gather), "receive_gather_ms");
    new(crate::fixture::processing()).expect("the test settings are valid");
}

/// Changes that wait for a commit under way share the next one (one fsync for many), and each
/// is still its own: 40 concurrent sends and 10 concurrent deletes get distinct ids, every
/// message is there, and the deleted ones are gone, after a reopen too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_changes_share_commits_and_each_is_made() {
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let config = EmbeddedQueueConfig {
        path: dir.path().join("q.redb"),
        max_receives: 5,
    };
    let queue = EmbeddedQueue::open(&config).unwrap();
    let sends: Vec<_> = (0..40)
        .map(|i| {
            let queue = queue.clone();
            tokio::spawn(async move { queue.send_batch(vec![format!("m{i}")]).await })
        })
        .collect();
    let mut ids = std::collections::BTreeSet::new();
    for send in sends {
        ids.extend(send.await.unwrap().unwrap());
    }
    assert_eq!(ids.len(), 40, "every send got its own id");
    let sent_in = queue.commits();
    assert!(sent_in < 40, "40 concurrent sends took {sent_in} commits");
    let hidden = Duration::from_secs(60);
    let mut taken = Vec::new();
    for _ in 0..4 {
        taken.extend(queue.receive(10, Duration::ZERO, hidden).await.unwrap());
    }
    assert_eq!(taken.len(), 40);
    let deletes: Vec<_> = taken
        .chunks(4)
        .map(|chunk| {
            let queue = queue.clone();
            let handles = chunk.iter().map(|m| m.handle.clone()).collect();
            tokio::spawn(async move { queue.delete_batch(handles).await })
        })
        .collect();
    for delete in deletes {
        delete.await.unwrap().unwrap();
    }
    drop(queue);
    let reopened = EmbeddedQueue::open(&config).expect("the last handle's drop closed the file");
    let stats = reopened.stats().await.unwrap();
    assert_eq!((stats.visible, stats.in_flight), (0, 0), "{stats:?}");
}

/// A receive that finds nothing due writes nothing (no commit, so no fsync): receivers woken by
/// every send mostly find nothing, and each empty commit cost an fsync.
#[tokio::test]
async fn an_empty_receive_writes_nothing_and_a_due_message_is_still_received() {
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.redb");
    let config = EmbeddedQueueConfig {
        path: path.clone(),
        max_receives: 3,
    };
    let queue = EmbeddedQueue::open(&config).unwrap();
    queue.send_batch(vec!["a".into()]).await.unwrap();
    let hidden = Duration::from_secs(30);
    let got = queue.receive(10, Duration::ZERO, hidden).await.unwrap();
    assert_eq!(bodies(&got), ["a"]);
    let written = std::fs::metadata(&path).unwrap().modified().unwrap();
    // "a" is invisible now: nothing is due.
    for _ in 0..5 {
        let empty = queue.receive(10, Duration::ZERO, hidden).await.unwrap();
        assert!(empty.is_empty());
    }
    assert_eq!(
        std::fs::metadata(&path).unwrap().modified().unwrap(),
        written,
        "empty receives committed"
    );
    // Once due again it comes back, with its receive counted.
    queue
        .change_visibility(vec![got[0].handle.clone()], Duration::ZERO)
        .await
        .unwrap();
    let again = queue.receive(10, Duration::ZERO, hidden).await.unwrap();
    assert_eq!((bodies(&again), again[0].receive_count), (vec!["a"], 2));
}

/// Light traffic: one message every 5 ms for 200 ms to a collector with four receive loops.
/// Returns the store calls it took to store all 40 votes, with receives spaced `gather_ms`.
async fn store_calls_for_a_trickle(gather_ms: u64) -> u64 {
    use edgevote_collector::config::ProcessingConfig;
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let (queue, store) = backends(&dir);
    let processing = ProcessingConfig {
        receivers: 4,
        receive_gather_ms: gather_ms,
        ..crate::fixture::processing()
    };
    let collector = crate::fixture::collector_with(Arc::clone(&queue), store, processing);
    const MESSAGES: u8 = 40;
    let queue_view = Arc::clone(&queue);
    let sender = tokio::spawn(async move {
        for i in 0..MESSAGES {
            let ballot = crate::fixture::ballot(crate::fixture::FIRST, &format!("v{i}"), "yes", i);
            let body = crate::fixture::envelope(
                &format!("e1.{i}"),
                vec![(ballot, crate::fixture::now_ms())],
            );
            queue.send_batch(vec![body]).await.unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    // The collector runs while the trickle arrives, until every message is taken and deleted.
    let drained = async {
        sender.await.unwrap();
        for _ in 0..200 {
            let stats = queue_view.stats().await.unwrap();
            if stats.visible == 0 && stats.in_flight == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the queue did not drain within 20 s");
    };
    Arc::clone(&collector).run(drained).await;
    let metrics = &collector.metrics;
    assert_eq!(
        metrics
            .votes_stored
            .load(std::sync::atomic::Ordering::Relaxed),
        u64::from(MESSAGES),
        "every vote is stored whatever the spacing"
    );
    metrics.store_calls()
}

/// Spacing the receives gathers a trickle into fuller batches: fewer store calls (and with
/// them queue commits and live-log appends) for the same votes, all of them stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn light_traffic_gathers_into_fuller_batches_and_every_vote_is_stored() {
    let ungathered = store_calls_for_a_trickle(0).await;
    let gathered = store_calls_for_a_trickle(100).await;
    assert!(
        gathered * 2 < ungathered,
        "receives 100 ms apart took {gathered} store calls, unspaced {ungathered}"
    );
}

/// A backlog is not held back by the spacing: full receives let the next start at once, so
/// 300 messages drain with a one-second gather interval in far less than the 30 s that
/// spaced receives (10 messages each) would take.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_drains_at_full_speed_whatever_the_gather_interval() {
    use edgevote_collector::config::ProcessingConfig;
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let (queue, store) = backends(&dir);
    for chunk in 0..30u16 {
        let bodies = (0..10u8)
            .map(|i| {
                let n = chunk * 10 + u16::from(i);
                let ballot =
                    crate::fixture::ballot(crate::fixture::FIRST, &format!("v{n}"), "yes", i);
                crate::fixture::envelope(
                    &format!("e1.{n}"),
                    vec![(ballot, crate::fixture::now_ms())],
                )
            })
            .collect();
        queue.send_batch(bodies).await.unwrap();
    }
    let processing = ProcessingConfig {
        receive_gather_ms: 1000,
        ..crate::fixture::processing()
    };
    let collector = crate::fixture::collector_with(queue, store, processing);
    // Panics if the queue is not empty within 10 s.
    crate::fixture::drain(&collector, Duration::from_secs(10)).await;
    assert_eq!(
        collector
            .metrics
            .votes_stored
            .load(std::sync::atomic::Ordering::Relaxed),
        300
    );
}

/// Shutdown does not wait for turns reserved far ahead: eight loops with a one-second gather
/// interval hold turns up to 7 s away, and the collector still stops within its long-poll wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_does_not_wait_for_a_reserved_turn() {
    use edgevote_collector::config::ProcessingConfig;
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let (queue, store) = backends(&dir);
    let processing = ProcessingConfig {
        receivers: 8,
        max_in_flight_messages: 80,
        receive_gather_ms: 1000,
        ..crate::fixture::processing()
    };
    let collector = crate::fixture::collector_with(queue, store, processing);
    let started = Instant::now();
    collector
        .run(tokio::time::sleep(Duration::from_millis(200)))
        .await;
    // A bound on liveness, not speed: the last loop's turn is 7 s away.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "stopping took {:?}",
        started.elapsed()
    );
}

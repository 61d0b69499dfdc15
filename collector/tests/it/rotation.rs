//! Key rotation seen from a collector: it follows its key set file, so an envelope signed with a
//! successor key published moments after the collector last read the file is stored, not
//! dead-lettered; a key that never appears still is, after a bounded number of receives.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use edgevote_collector::{Collector, CollectorParts};
use edgevote_queue::Queue;
use edgevote_queue::embedded::{EmbeddedQueue, EmbeddedQueueConfig};
use edgevote_shared::{KeySet, Policy, Role, SigningIdentity};
use edgevote_store::embedded::{EmbeddedStore, EmbeddedStoreConfig};
use edgevote_store::{ElectionRules, Store, final_tally};

use crate::fixture::{
    EDGE_ID, FIRST, REGION, authority, ballot, checker, drain, edge, envelope_signed_by, keyset,
    now_ms, processing, rogue_edge,
};

/// Writes a key set file whole (temp file and rename), as `KeyStore` publishes it.
fn publish(path: &std::path::Path, keys: &KeySet) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, keys.to_json_pretty()).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envelope_of_a_key_published_after_the_collector_read_its_key_set_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let keyset_path = dir.path().join("keyset.json");
    publish(&keyset_path, &keyset());
    let queue: Arc<dyn Queue> = Arc::new(
        EmbeddedQueue::open(&EmbeddedQueueConfig {
            path: dir.path().join("queue.redb"),
            max_receives: 5,
        })
        .unwrap(),
    );
    let store: Arc<dyn Store> = Arc::new(
        EmbeddedStore::open(&EmbeddedStoreConfig {
            path: dir.path().join("store.redb"),
        })
        .unwrap(),
    );
    let collector = Collector::new(CollectorParts {
        region: REGION.into(),
        queue: Arc::clone(&queue),
        store: Arc::clone(&store),
        checker: checker().following(&keyset_path),
        processing: processing(),
    })
    .unwrap();
    // The edge's successor key: it seals before this collector has re-read the key set.
    let successor = SigningIdentity::from_seed(&[7; 32], Role::Edge);
    let t = now_ms();
    let fresh = envelope_signed_by(
        &successor,
        "fresh.1",
        vec![(ballot(FIRST, "f1", "yes", 1), t)],
    );
    let forged = envelope_signed_by(
        &rogue_edge(),
        "forged.1",
        vec![(ballot(FIRST, "f2", "no", 1), t)],
    );
    queue.send_batch(vec![fresh, forged.clone()]).await.unwrap();
    let publishing = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        let rotated = KeySet::from_jwks(vec![
            authority().public_jwk(0),
            edge().public_jwk(0).bound_to(EDGE_ID, REGION),
            successor.public_jwk(t / 1000).bound_to(EDGE_ID, REGION),
        ])
        .unwrap();
        publish(&keyset_path, &rotated);
    });
    drain(&collector, Duration::from_secs(30)).await;
    publishing.await.unwrap();

    let letters = queue.peek_dead_letters(10).await.unwrap();
    let rules = ElectionRules {
        id: FIRST.into(),
        policy: Policy::FirstVoteWins,
        max_votes_per_voter: edgevote_shared::manifest::MAX_VOTES_PER_VOTER,
    };
    let tally = final_tally(store.as_ref(), &rules).await.unwrap();
    let m = &collector.metrics;
    println!(
        "key published 1.5 s late: {} stored, {} dead-lettered, {} deferrals, {} key set reloads",
        tally.ballots,
        letters.len(),
        m.messages_deferred.load(Ordering::Relaxed),
        m.keyset_reloads.load(Ordering::Relaxed)
    );
    // The successor's envelope is counted; only the forgery is dead-lettered, and only after
    // its bounded redeliveries.
    assert_eq!(
        (tally.voters, tally.counts.get("yes").copied()),
        (1, Some(1))
    );
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].body, forged);
    assert!(
        letters[0].reason.starts_with("unknown_key_id"),
        "{}",
        letters[0].reason
    );
    assert!(m.messages_deferred.load(Ordering::Relaxed) >= 3);
    assert_eq!(m.keyset_reloads.load(Ordering::Relaxed), 1);
}

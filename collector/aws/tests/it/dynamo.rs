//! DynamoStore on moto (SdkDynamo) and in memory (SimDynamo): the same checks on both.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use edgevote_aws::dynamo::{DynamoApi, create_table, item};
use edgevote_aws::moto::MotoServer;
use edgevote_aws::{DynamoStore, SdkDynamo, SimDynamo};
use edgevote_shared::{Digest32, Policy};
use edgevote_store::{ElectionRules, PutOutcome, Store, StoredBallot, final_tally, live_overall};

use crate::moto;

const REGION: &str = "eu-west-1";

fn ballot(election: &str, voter: &str, id: u8, choice: &str, at_ms: u64) -> StoredBallot {
    StoredBallot {
        election: election.into(),
        voter: voter.into(),
        vote_id: Digest32([id; 32]),
        choice: choice.into(),
        token_id: format!("tok-{voter}"),
        nonce: "bm9uY2Utbm9uY2Utbm9uY2U".into(),
        received_at_ms: at_ms,
        edge: "edge-1".into(),
        region: REGION.into(),
        batch_id: "batch-1".into(),
    }
}

fn rules(id: &str, policy: Policy) -> ElectionRules {
    ElectionRules {
        id: id.into(),
        policy,
    }
}

async fn sdk_store(server: &MotoServer) -> DynamoStore<SdkDynamo> {
    let client = server.dynamo_client();
    let table = MotoServer::unique_name("ballots");
    create_table(&client, &table).await.unwrap();
    create_table(&client, &table).await.unwrap(); // idempotent
    DynamoStore::new(SdkDynamo::new(client, &table), 8)
}

fn sim_store() -> DynamoStore<SimDynamo> {
    DynamoStore::new(SimDynamo::new(Duration::ZERO), 8)
}

/// Live counts with zero entries dropped.
async fn overall(store: &dyn Store, election: &str) -> BTreeMap<String, i64> {
    let mut counts = live_overall(&store.live_tally(election).await.unwrap());
    counts.retain(|_, n| *n != 0);
    counts
}

async fn put_twice<A: DynamoApi>(store: &DynamoStore<A>) {
    let rules = rules("put-twice", Policy::FirstVoteWins);
    let b = ballot(&rules.id, "v1", 1, "yes", 1_000);
    assert_eq!(
        store.api().put_ballot_if_absent(&b).await.unwrap(),
        PutOutcome::Stored
    );
    assert_eq!(
        store.api().put_ballot_if_absent(&b).await.unwrap(),
        PutOutcome::Duplicate
    );

    let b2 = ballot(&rules.id, "v2", 2, "no", 1_000);
    let first = store
        .record(&rules, REGION, vec![b2.clone()])
        .await
        .unwrap();
    assert_eq!(first, vec![PutOutcome::Stored]);
    let again = store
        .record(&rules, REGION, vec![b2.clone()])
        .await
        .unwrap();
    assert_eq!(again, vec![PutOutcome::Duplicate]);
    assert_eq!(
        store.voter_ballots(&rules.id, "v2").await.unwrap(),
        vec![b2]
    );
    // v1 went in through the API directly, so only v2 is in the live tally.
    assert_eq!(
        overall(store, &rules.id).await,
        BTreeMap::from([("no".into(), 1)])
    );
}

#[tokio::test]
async fn put_twice_is_stored_then_duplicate() {
    let server = moto();
    put_twice(&sdk_store(&server).await).await;
    put_twice(&sim_store()).await;
}

/// Two ballots of one voter, arriving in `batches`; the live and final tallies count one.
async fn one_voter_counts_once<A: DynamoApi>(
    store: &DynamoStore<A>,
    policy: Policy,
    batches: &[&[usize]],
    case: &str,
) {
    let rules = rules(&format!("{case}-{}", policy.as_str()), policy);
    let ballots = [
        ballot(&rules.id, "v", 7, "early", 100),
        ballot(&rules.id, "v", 3, "late", 200),
    ];
    for batch in batches {
        let batch: Vec<StoredBallot> = batch.iter().map(|i| ballots[*i].clone()).collect();
        store.record(&rules, REGION, batch).await.unwrap();
    }
    let winner = match policy {
        Policy::FirstVoteWins => "early",
        Policy::LastVoteWins => "late",
    };
    let expected = BTreeMap::from([(winner.to_string(), 1)]);
    assert_eq!(
        overall(store, &rules.id).await,
        expected,
        "{case} {policy:?}"
    );
    let tally = store.live_tally(&rules.id).await.unwrap();
    assert_eq!(tally.keys().collect::<Vec<_>>(), vec![REGION]);
    let exact = final_tally(store, &rules).await.unwrap();
    assert_eq!((exact.voters, exact.ballots), (1, 2));
    assert_eq!(exact.counts, BTreeMap::from([(winner.to_string(), 1)]));
}

async fn two_ballots_one_voter<A: DynamoApi>(store: &DynamoStore<A>) {
    for policy in [Policy::FirstVoteWins, Policy::LastVoteWins] {
        one_voter_counts_once(store, policy, &[&[0], &[1]], "in-order").await;
        one_voter_counts_once(store, policy, &[&[1], &[0]], "reversed").await;
        one_voter_counts_once(store, policy, &[&[0, 1]], "one-batch").await;
        one_voter_counts_once(store, policy, &[&[1, 0], &[0, 1]], "redelivered").await;
    }
}

#[tokio::test]
async fn two_ballots_of_one_voter_count_once_under_each_policy() {
    let server = moto();
    two_ballots_one_voter(&sdk_store(&server).await).await;
    two_ballots_one_voter(&sim_store()).await;
}

async fn scan_covers_everything<A: DynamoApi>(store: &DynamoStore<A>) {
    let rules = rules("scanned", Policy::LastVoteWins);
    let other = rules_other();
    let ours: Vec<StoredBallot> = (0..25u8)
        .map(|i| ballot(&rules.id, &format!("v{}", i % 10), i, "yes", u64::from(i)))
        .collect();
    let theirs: Vec<StoredBallot> = (0..5u8)
        .map(|i| ballot(&other.id, &format!("v{i}"), 100 + i, "no", 1))
        .collect();
    store.record(&rules, REGION, ours.clone()).await.unwrap();
    store.record(&other, REGION, theirs).await.unwrap();

    let mut seen = Vec::new();
    let mut cursor = None;
    for _ in 0..100 {
        let page = store.scan(&rules.id, cursor, 7).await.unwrap();
        assert!(page.ballots.len() <= 7);
        seen.extend(page.ballots);
        cursor = page.next;
        if cursor.is_none() {
            break;
        }
    }
    assert!(cursor.is_none(), "scan did not end");
    let seen_ids: BTreeSet<Digest32> = seen.iter().map(|b| b.vote_id).collect();
    assert_eq!(seen.len(), 25, "every ballot exactly once");
    assert_eq!(seen_ids, ours.iter().map(|b| b.vote_id).collect());
    assert!(seen.iter().all(|b| ours.contains(b)));
    assert_eq!(
        overall(store, &rules.id).await,
        BTreeMap::from([("yes".into(), 10)])
    );
}

fn rules_other() -> ElectionRules {
    rules("other", Policy::FirstVoteWins)
}

#[tokio::test]
async fn scan_pages_cover_every_ballot() {
    let server = moto();
    scan_covers_everything(&sdk_store(&server).await).await;
    scan_covers_everything(&sim_store()).await;
}

#[tokio::test]
async fn record_refuses_bad_batches() {
    let store = sim_store();
    let rules = rules("e", Policy::FirstVoteWins);
    let foreign = ballot("other", "v", 1, "yes", 1);
    assert!(store.record(&rules, REGION, vec![foreign]).await.is_err());
    let bad_voter = ballot("e", "a#b", 1, "yes", 1);
    assert!(store.record(&rules, REGION, vec![bad_voter]).await.is_err());
    assert!(store.scan("e", Some("no-slash".into()), 10).await.is_err());
}

#[tokio::test]
async fn sim_dynamo_bills_one_wcu_per_small_ballot() {
    let store = sim_store();
    let costs = store.api().costs();
    let rules = rules("billed", Policy::FirstVoteWins);
    let ballots: Vec<StoredBallot> = (0..100u8)
        .map(|i| {
            ballot(
                &rules.id,
                &format!("voter-{i}"),
                i,
                if i % 2 == 0 { "a" } else { "b" },
                5,
            )
        })
        .collect();
    assert!(ballots.iter().all(|b| item::ballot_size(b) < 1024));

    store.record(&rules, REGION, ballots.clone()).await.unwrap();
    let after_first = costs.snapshot();
    // 100 puts + 1 counter update; 100 strongly consistent voter queries.
    assert_eq!(after_first.write_units, 101);
    assert_eq!(after_first.requests, 201);
    assert_eq!(after_first.read_units, 100.0);

    // A redelivery: the failed conditional puts are billed too; nothing else happens.
    store.record(&rules, REGION, ballots).await.unwrap();
    let after_second = costs.snapshot();
    assert_eq!(after_second.write_units, 201);
    assert_eq!(after_second.requests, 301);
    assert_eq!(
        overall(&store, &rules.id).await,
        BTreeMap::from([("a".into(), 50), ("b".into(), 50)])
    );
}

#[tokio::test]
async fn sim_dynamo_overlaps_requests_up_to_the_limit() {
    let store = DynamoStore::new(SimDynamo::new(Duration::from_millis(50)), 64);
    let rules = rules("fast", Policy::FirstVoteWins);
    let ballots: Vec<StoredBallot> = (0..128u8)
        .map(|i| ballot(&rules.id, &format!("v{i}"), i, "a", 1))
        .collect();
    let started = std::time::Instant::now();
    store.record(&rules, REGION, ballots).await.unwrap();
    // Sequential would be 257 × 50 ms ≈ 13 s; 64 at a time is 2 + 2 + 1 rounds.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

//! DynamoStore on moto (SdkDynamo) and in memory (SimDynamo): the same checks on both.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use edgevote_aws::dynamo::{BallotWrite, DynamoApi, MAX_VOTER_BALLOTS, create_table, item};
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
        max_votes_per_voter: edgevote_shared::manifest::MAX_VOTES_PER_VOTER,
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
        store.api().put_ballot(&b).await.unwrap(),
        BallotWrite::Stored
    );
    assert_eq!(store.api().put_ballot(&b).await.unwrap(), BallotWrite::Kept);

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
    // 100 strongly consistent voter queries, then 100 puts + 1 counter update.
    assert_eq!(after_first.write_units, 101);
    assert_eq!(after_first.requests, 201);
    assert_eq!(after_first.read_units, 100.0);

    // A redelivery: the queries find every ballot, so nothing is written.
    store.record(&rules, REGION, ballots).await.unwrap();
    let after_second = costs.snapshot();
    assert_eq!(after_second.write_units, 101);
    assert_eq!(after_second.requests, 301);
    assert_eq!(after_second.read_units, 200.0);
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

/// `ballot` as a copy accepted at `at_ms` by `edge` in `batch`.
fn copy_of(ballot: &StoredBallot, at_ms: u64, edge: &str, batch: &str) -> StoredBallot {
    StoredBallot {
        received_at_ms: at_ms,
        edge: edge.into(),
        batch_id: batch.into(),
        ..ballot.clone()
    }
}

/// Two copies of one vote, recorded in both orders: the stored item is always the earliest by
/// (received_at_ms, edge, batch id), the order of `counting::replaces_copy`, including the
/// tie-breaks and a later timestamp whose edge and batch sort first. Every second recording is
/// a duplicate.
async fn copies_merge_to_the_earliest<A: DynamoApi>(store: &DynamoStore<A>) {
    let rules = rules("copies", Policy::FirstVoteWins);
    let base = ballot(&rules.id, "v", 1, "yes", 0);
    // (earlier, later) pairs.
    let pairs = [
        (
            copy_of(&base, 100, "edge-b", "b"),
            copy_of(&base, 200, "edge-a", "a"),
        ),
        (
            copy_of(&base, 100, "edge-a", "z"),
            copy_of(&base, 100, "edge-b", "a"),
        ),
        (
            copy_of(&base, 100, "edge-a", "a"),
            copy_of(&base, 100, "edge-a", "b"),
        ),
        (
            copy_of(&base, 9, "edge-z", "z"),
            copy_of(&base, 10, "edge-a", "a"),
        ),
    ];
    for (case, (early, late)) in pairs.iter().enumerate() {
        assert!(edgevote_store::counting::replaces_copy(early, late));
        for (n, order) in [[late, early], [early, late]].iter().enumerate() {
            let voter = format!("v{case}-{n}");
            let [first, second] = order.map(|b| StoredBallot {
                voter: voter.clone(),
                ..b.clone()
            });
            let a = store.record(&rules, REGION, vec![first]).await.unwrap();
            let b = store.record(&rules, REGION, vec![second]).await.unwrap();
            assert_eq!(
                (a, b),
                (vec![PutOutcome::Stored], vec![PutOutcome::Duplicate]),
                "case {case} order {n}"
            );
            let stored = store.voter_ballots(&rules.id, &voter).await.unwrap();
            let want = StoredBallot {
                voter: voter.clone(),
                ..early.clone()
            };
            assert_eq!(
                stored,
                vec![want],
                "case {case} order {n}: the earliest copy"
            );
        }
    }
    let exact = final_tally(store, &rules).await.unwrap();
    assert_eq!((exact.voters, exact.ballots), (8, 8));
    assert_eq!(
        overall(store, &rules.id).await,
        BTreeMap::from([("yes".into(), 8)])
    );
}

#[tokio::test]
async fn copies_of_a_vote_merge_to_the_earliest_in_any_order() {
    let server = moto();
    copies_merge_to_the_earliest(&sdk_store(&server).await).await;
    copies_merge_to_the_earliest(&sim_store()).await;
}

/// A voter at the limit: new ballots are refused, in batch order, without touching the other
/// voters of the batch; copies of the voter's stored ballots stay duplicates.
async fn limit_refuses_new_ballots_only<A: DynamoApi>(store: &DynamoStore<A>) {
    let rules = ElectionRules {
        max_votes_per_voter: 2,
        ..rules("limited", Policy::LastVoteWins)
    };
    let g = |id: u8, at: u64| ballot(&rules.id, "greedy", id, "yes", at);
    let first = store
        .record(
            &rules,
            REGION,
            vec![
                g(1, 10),
                ballot(&rules.id, "h1", 50, "no", 10),
                g(2, 20),
                g(3, 30),
                g(3, 30),
            ],
        )
        .await
        .unwrap();
    use PutOutcome::{Duplicate, OverLimit, Stored};
    assert_eq!(first, vec![Stored, Stored, Stored, OverLimit, OverLimit]);
    let second = store
        .record(
            &rules,
            REGION,
            vec![
                g(4, 40),
                copy_of(&g(1, 10), 5, "edge-0", "early"),
                g(2, 20),
                ballot(&rules.id, "h2", 51, "no", 10),
            ],
        )
        .await
        .unwrap();
    assert_eq!(second, vec![OverLimit, Duplicate, Duplicate, Stored]);
    let mut held: Vec<(u8, u64)> = store
        .voter_ballots(&rules.id, "greedy")
        .await
        .unwrap()
        .iter()
        .map(|b| (b.vote_id.0[0], b.received_at_ms))
        .collect();
    held.sort();
    assert_eq!(
        held,
        vec![(1, 5), (2, 20)],
        "the limit's two, one as its earlier copy"
    );
    // Last vote wins: greedy counts 'yes' (its ballot 2); h1 and h2 'no'.
    assert_eq!(
        overall(store, &rules.id).await,
        BTreeMap::from([("no".into(), 2), ("yes".into(), 1)])
    );
}

#[tokio::test]
async fn voter_limit_refuses_new_ballots_not_copies() {
    let server = moto();
    limit_refuses_new_ballots_only(&sdk_store(&server).await).await;
    limit_refuses_new_ballots_only(&sim_store()).await;
}

/// A voter who holds more ballots than a store reads at once (written around the limit, e.g.
/// before it was enforced): a batch with their new ballot, a retry of their ballot that sorts
/// last (beyond the bounded read) and another voter's ballot is not failed; the new ballot is
/// over the limit, the retry a duplicate, the other voter's ballot stored and counted.
#[tokio::test]
async fn voter_beyond_the_read_bound_fails_no_batch() {
    let store = sim_store();
    let rules = rules("hoarder", Policy::FirstVoteWins);
    let hoarded: Vec<StoredBallot> = (0..=MAX_VOTER_BALLOTS as u32)
        .map(|i| StoredBallot {
            vote_id: Digest32::of(&i.to_le_bytes()),
            ..ballot(&rules.id, "hoarder", 0, "yes", u64::from(i))
        })
        .collect();
    for b in &hoarded {
        assert_eq!(
            store.api().put_ballot(b).await.unwrap(),
            BallotWrite::Stored
        );
    }
    let last = hoarded.iter().max_by_key(|b| b.vote_id.to_b64()).unwrap();
    let outcomes = store
        .record(
            &rules,
            REGION,
            vec![
                ballot(&rules.id, "hoarder", 1, "no", 1),
                copy_of(last, last.received_at_ms + 1, "edge-9", "retry"),
                ballot(&rules.id, "honest", 2, "no", 1),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        outcomes,
        vec![
            PutOutcome::OverLimit,
            PutOutcome::Duplicate,
            PutOutcome::Stored
        ]
    );
    assert_eq!(
        overall(&store, &rules.id).await,
        BTreeMap::from([("no".into(), 1)])
    );
}

//! One voter, several regions: what each consistency mode of a Global Table guarantees, on the
//! simulated Global Table (`SimGlobalTable`) and, for the pieces moto can run, on moto.
//!
//! Each test plays the attacker who votes in every region at the same moment, or the crash
//! between a claim and its ballot.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use edgevote_aws::dynamo::global::{SimRegion, vote_ids_by_region};
use edgevote_aws::dynamo::replicate::{self, RegionTable};
use edgevote_aws::dynamo::{BallotWrite, DynamoApi, VoterBallots};
use edgevote_aws::{Consistency, DynamoStore, SdkDynamo, SimGlobalTable, provision};
use edgevote_shared::{Digest32, Policy};
use edgevote_store::{
    ElectionRules, LiveTally, PutOutcome, ScanPage, Store, StoreError, StoredBallot, final_tally,
};

use crate::moto;

const REGIONS: [&str; 3] = ["eu-west-1", "us-east-1", "ap-southeast-1"];

fn ballot(
    election: &str,
    voter: &str,
    id: u8,
    choice: &str,
    at_ms: u64,
    region: &str,
) -> StoredBallot {
    StoredBallot {
        election: election.into(),
        voter: voter.into(),
        vote_id: Digest32([id; 32]),
        choice: choice.into(),
        token_id: format!("tok-{voter}-{id}"),
        nonce: "bm9uY2Utbm9uY2Utbm9uY2U".into(),
        received_at_ms: at_ms,
        edge: format!("edge-{region}"),
        region: region.into(),
        batch_id: format!("batch-{id}"),
    }
}

fn one_vote_rules(id: &str) -> ElectionRules {
    ElectionRules {
        id: id.into(),
        policy: Policy::FirstVoteWins,
        max_votes_per_voter: 1,
    }
}

/// A table whose requests take 3 ms and whose replication (eventual) takes 2 s: long enough
/// that a race started at once is over before any region hears of another's ballot, however
/// slow the machine.
fn global(consistency: Consistency) -> Arc<SimGlobalTable> {
    SimGlobalTable::new(
        &REGIONS,
        consistency,
        Duration::from_millis(3),
        Duration::from_secs(2),
    )
}

fn store_in(
    table: &Arc<SimGlobalTable>,
    region: &str,
    consistency: Consistency,
) -> DynamoStore<SimRegion> {
    DynamoStore::new(table.region(region).unwrap(), 8).with_consistency(consistency)
}

async fn caught_up(table: &SimGlobalTable) {
    for _ in 0..3_000 {
        if table.caught_up() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("simulated replication did not catch up");
}

/// Every voter casts a different first ballot in each of the three regions at the same moment;
/// returns every region's outcomes, by voter.
async fn race_every_voter(
    table: &Arc<SimGlobalTable>,
    consistency: Consistency,
    rules: &ElectionRules,
    voters: u8,
) -> BTreeMap<String, Vec<PutOutcome>> {
    let mut races = tokio::task::JoinSet::new();
    for v in 0..voters {
        for (r, region) in REGIONS.iter().enumerate() {
            let store = store_in(table, region, consistency);
            let rules = rules.clone();
            let voter = format!("v{v}");
            // Distinct vote ids, choices and edge times per region.
            let id = v.wrapping_mul(3).wrapping_add(r as u8);
            let choice = ["yes", "no", "blank"][r];
            let b = ballot(&rules.id, &voter, id, choice, 1_000 + r as u64, region);
            races.spawn(async move {
                let outcome = store.record(&rules, region, vec![b]).await.unwrap();
                (voter, outcome[0])
            });
        }
    }
    let mut outcomes: BTreeMap<String, Vec<PutOutcome>> = BTreeMap::new();
    while let Some(joined) = races.join_next().await {
        let (voter, outcome) = joined.unwrap();
        outcomes.entry(voter).or_default().push(outcome);
    }
    outcomes
}

#[tokio::test]
async fn eventual_mode_lets_each_region_take_a_first_vote_and_every_region_counts_the_same_one() {
    let table = global(Consistency::Eventual);
    let rules = one_vote_rules("eventual-race");
    let outcomes = race_every_voter(&table, Consistency::Eventual, &rules, 20).await;
    // The documented weakness: each region checked the limit against what it held.
    for (voter, got) in &outcomes {
        assert_eq!(got, &vec![PutOutcome::Stored; 3], "{voter}");
    }
    caught_up(&table).await;
    let held = vote_ids_by_region(&table, &rules.id).await.unwrap();
    let first = held.values().next().unwrap();
    assert_eq!(first.len(), 60, "every accepted ballot is kept");
    assert!(held.values().all(|ids| ids == first), "regions converged");
    // The counting rule still counts each voter once, and every region the same ballot: the
    // earliest (eu-west-1's, "yes").
    for region in REGIONS {
        let store = store_in(&table, region, Consistency::Eventual);
        let tally = final_tally(&store, &rules).await.unwrap();
        assert_eq!(tally.voters, 20, "{region}");
        assert_eq!(tally.ballots, 60, "{region}");
        assert_eq!(
            tally.counts,
            BTreeMap::from([("yes".into(), 20)]),
            "{region}"
        );
    }
}

#[tokio::test]
async fn strong_mode_stores_one_ballot_per_voter_whatever_the_race() {
    let table = global(Consistency::Strong);
    let rules = one_vote_rules("strong-race");
    let outcomes = race_every_voter(&table, Consistency::Strong, &rules, 20).await;
    for (voter, got) in &outcomes {
        let stored = got.iter().filter(|o| **o == PutOutcome::Stored).count();
        let refused = got.iter().filter(|o| **o == PutOutcome::OverLimit).count();
        assert_eq!((stored, refused), (1, 2), "{voter}: {got:?}");
    }
    assert!(
        table.conflicts() > 0,
        "the race must have hit concurrent writes of one claim (retried)"
    );
    for region in REGIONS {
        let store = store_in(&table, region, Consistency::Strong);
        let tally = final_tally(&store, &rules).await.unwrap();
        assert_eq!((tally.voters, tally.ballots), (20, 20), "{region}");
        for v in 0..20 {
            let held = store
                .voter_ballots(&rules.id, &format!("v{v}"))
                .await
                .unwrap();
            assert_eq!(held.len(), 1, "{region} v{v}");
        }
    }
}

#[tokio::test]
async fn strong_mode_stores_a_vote_whose_claim_survived_a_crash_and_refuses_any_other() {
    let table = global(Consistency::Strong);
    let rules = one_vote_rules("strong-crash");
    let region = REGIONS[0];
    let first = ballot(&rules.id, "v", 1, "yes", 10, region);
    // The collector claimed the slot and crashed before the ballot put.
    let api = table.region(region).unwrap();
    assert!(
        api.claim_slot(&rules.id, "v", 0, &first.vote_id)
            .await
            .unwrap()
    );
    // Another vote of the voter, in another region, finds the slot taken.
    let other = ballot(&rules.id, "v", 2, "no", 5, REGIONS[1]);
    let store_b = store_in(&table, REGIONS[1], Consistency::Strong);
    let got = store_b
        .record(&rules, REGIONS[1], vec![other])
        .await
        .unwrap();
    assert_eq!(got, vec![PutOutcome::OverLimit]);
    // The redelivered message of the first vote finds its own claim and is stored.
    let store_a = store_in(&table, region, Consistency::Strong);
    let got = store_a
        .record(&rules, region, vec![first.clone()])
        .await
        .unwrap();
    assert_eq!(got, vec![PutOutcome::Stored]);
    // A copy of it accepted in a third region (a client retry) is a duplicate, not refused.
    let copy = StoredBallot {
        received_at_ms: 20,
        ..ballot(&rules.id, "v", 1, "yes", 20, REGIONS[2])
    };
    let store_c = store_in(&table, REGIONS[2], Consistency::Strong);
    let got = store_c
        .record(&rules, REGIONS[2], vec![copy])
        .await
        .unwrap();
    assert_eq!(got, vec![PutOutcome::Duplicate]);
    let tally = final_tally(&store_c, &rules).await.unwrap();
    assert_eq!(tally.counts, BTreeMap::from([("yes".into(), 1)]));
}

/// A table whose first `failures` writes of each kind (claim, ballot put, counter update) fail
/// with `error` (then it behaves): another region writing the same items, or DynamoDB
/// throttling. `u32::MAX` failures: it never recovers.
struct FailingWrites {
    inner: SimRegion,
    failures: std::sync::Mutex<BTreeMap<&'static str, u32>>,
    error: fn(&'static str) -> StoreError,
}

impl FailingWrites {
    fn new(inner: SimRegion, failures: u32, error: fn(&'static str) -> StoreError) -> Self {
        let stages = ["claim_slot", "put_ballot", "add_counters"];
        FailingWrites {
            inner,
            failures: std::sync::Mutex::new(stages.map(|s| (s, failures)).into()),
            error,
        }
    }

    /// The error for this write while its kind has failures left.
    fn fail(&self, stage: &'static str) -> Result<(), StoreError> {
        let mut failures = self.failures.lock().unwrap();
        let left = failures.get_mut(stage).unwrap();
        match *left {
            0 => Ok(()),
            u32::MAX => Err((self.error)(stage)),
            _ => {
                *left -= 1;
                Err((self.error)(stage))
            }
        }
    }
}

#[async_trait]
impl DynamoApi for FailingWrites {
    async fn put_ballot(&self, b: &StoredBallot) -> Result<BallotWrite, StoreError> {
        self.fail("put_ballot")?;
        self.inner.put_ballot(b).await
    }
    async fn query_voter(&self, e: &str, v: &str, max: usize) -> Result<VoterBallots, StoreError> {
        self.inner.query_voter(e, v, max).await
    }
    async fn get_ballot(
        &self,
        e: &str,
        v: &str,
        id: &Digest32,
    ) -> Result<Option<StoredBallot>, StoreError> {
        self.inner.get_ballot(e, v, id).await
    }
    async fn add_counters(
        &self,
        e: &str,
        r: &str,
        d: &BTreeMap<String, i64>,
    ) -> Result<(), StoreError> {
        self.fail("add_counters")?;
        self.inner.add_counters(e, r, d).await
    }
    async fn claim_slot(
        &self,
        e: &str,
        v: &str,
        slot: u32,
        id: &Digest32,
    ) -> Result<bool, StoreError> {
        self.fail("claim_slot")?;
        self.inner.claim_slot(e, v, slot, id).await
    }
    async fn read_counters(&self, e: &str) -> Result<LiveTally, StoreError> {
        self.inner.read_counters(e).await
    }
    async fn scan_page(
        &self,
        e: &str,
        c: Option<String>,
        l: usize,
    ) -> Result<ScanPage, StoreError> {
        self.inner.scan_page(e, c, l).await
    }
}

fn conflict(stage: &'static str) -> StoreError {
    StoreError::Conflict {
        stage,
        detail: "ReplicatedWriteConflictException".into(),
    }
}

fn throttled(stage: &'static str) -> StoreError {
    StoreError::Throttled {
        stage,
        detail: "ThrottlingException".into(),
    }
}

#[tokio::test(start_paused = true)]
async fn throttled_and_conflicting_writes_are_retried_until_they_succeed_once() {
    for error in [conflict as fn(&'static str) -> StoreError, throttled] {
        let table = global(Consistency::Strong);
        let rules = one_vote_rules("strong-retried");
        // The claim, the ballot put and the counter update each fail four times first.
        let api = FailingWrites::new(table.region(REGIONS[0]).unwrap(), 4, error);
        let store = DynamoStore::new(api, 4).with_consistency(Consistency::Strong);
        let b = ballot(&rules.id, "v", 1, "yes", 10, REGIONS[0]);
        let got = store
            .record(&rules, REGIONS[0], vec![b.clone()])
            .await
            .unwrap();
        assert_eq!(got, vec![PutOutcome::Stored]);
        assert_eq!(store.voter_ballots(&rules.id, "v").await.unwrap(), vec![b]);
        let live = store.live_tally(&rules.id).await.unwrap();
        assert_eq!(live[REGIONS[0]]["yes"], 1, "counted once: {live:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn endless_conflicts_are_retried_with_backoff_then_fail_the_batch_and_write_nothing() {
    let table = global(Consistency::Strong);
    let rules = one_vote_rules("strong-conflict");
    let api = FailingWrites::new(table.region(REGIONS[0]).unwrap(), u32::MAX, conflict);
    let store = DynamoStore::new(api, 4).with_consistency(Consistency::Strong);
    let started = tokio::time::Instant::now();
    let b = ballot(&rules.id, "v", 1, "yes", 10, REGIONS[0]);
    let err = store.record(&rules, REGIONS[0], vec![b]).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict {
                stage: "claim_slot",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.is_retryable(), "the queue redelivers the message");
    // Six retries with exponential backoff (at least half of each 10, 20, ... 320 ms step).
    assert!(
        started.elapsed() >= Duration::from_millis(315),
        "{:?}",
        started.elapsed()
    );
    assert!(
        store
            .voter_ballots(&rules.id, "v")
            .await
            .unwrap()
            .is_empty()
    );
}

/// Strong mode on moto: the claim item's condition is DynamoDB's, not the simulation's.
#[tokio::test]
async fn claims_on_moto_are_free_or_mine() {
    let server = moto();
    let name = edgevote_aws::moto::MotoServer::unique_name("claims");
    let config = provision::ballot_table(
        "eu-west-1",
        server.endpoint_url(),
        &name,
        Consistency::Strong,
    )
    .await
    .unwrap();
    let store = DynamoStore::connect(&config).await;
    assert_eq!(store.consistency(), Consistency::Strong);
    let api = SdkDynamo::connect(&config).await;
    let (x, y) = (Digest32([7; 32]), Digest32([8; 32]));
    assert!(api.claim_slot("e", "v", 0, &x).await.unwrap());
    assert!(
        api.claim_slot("e", "v", 0, &x).await.unwrap(),
        "a redelivery"
    );
    assert!(
        !api.claim_slot("e", "v", 0, &y).await.unwrap(),
        "another vote"
    );
    let rules = one_vote_rules("e");
    let got = store
        .record(
            &rules,
            "eu-west-1",
            vec![ballot("e", "v", 8, "no", 1, "eu-west-1")],
        )
        .await
        .unwrap();
    assert_eq!(got, vec![PutOutcome::OverLimit]);
    let got = store
        .record(
            &rules,
            "eu-west-1",
            vec![ballot("e", "v", 7, "yes", 2, "eu-west-1")],
        )
        .await
        .unwrap();
    assert_eq!(got, vec![PutOutcome::Stored]);
    // Claim items are not ballots: the scan and the tally see one ballot.
    let tally = final_tally(&store, &rules).await.unwrap();
    assert_eq!((tally.ballots, tally.voters), (1, 1));
}

/// Eventual mode on moto: per-region tables kept in step by the stack's replicator.
#[tokio::test]
async fn replication_between_moto_region_tables_converges_on_the_earliest_copy() {
    let server = moto();
    let name = edgevote_aws::moto::MotoServer::unique_name("replicated");
    let mut tables = Vec::new();
    let mut stores = Vec::new();
    for region in ["eu-west-1", "us-east-1"] {
        let config =
            provision::ballot_table(region, server.endpoint_url(), &name, Consistency::Eventual)
                .await
                .unwrap();
        tables.push(RegionTable {
            region: region.into(),
            table: SdkDynamo::connect(&config).await,
        });
        stores.push(DynamoStore::connect(&config).await);
    }
    let rules = one_vote_rules("replicated");
    let late = ballot(&rules.id, "v", 1, "yes", 50, "eu-west-1");
    let early_copy = StoredBallot {
        received_at_ms: 40,
        edge: "edge-us-east-1".into(),
        region: "us-east-1".into(),
        batch_id: "batch-us".into(),
        ..late.clone()
    };
    let other = ballot(&rules.id, "w", 2, "no", 60, "us-east-1");
    stores[0]
        .record(&rules, "eu-west-1", vec![late])
        .await
        .unwrap();
    stores[1]
        .record(&rules, "us-east-1", vec![early_copy.clone(), other])
        .await
        .unwrap();
    let mut shipped = Default::default();
    let first = replicate::round(&tables, Duration::ZERO, &mut shipped)
        .await
        .unwrap();
    assert!(first >= 3, "ballots and counters shipped: {first}");
    let again = replicate::round(&tables, Duration::ZERO, &mut shipped)
        .await
        .unwrap();
    // Everything is everywhere: nothing is shipped again, nothing echoed back.
    assert_eq!(again, 0);
    for store in &stores {
        let held = store.voter_ballots(&rules.id, "v").await.unwrap();
        assert_eq!(held, vec![early_copy.clone()]);
        let tally = final_tally(store, &rules).await.unwrap();
        assert_eq!((tally.ballots, tally.voters), (2, 2));
        let live = store.live_tally(&rules.id).await.unwrap();
        assert_eq!(
            live.len(),
            2,
            "each region's counters reached the other: {live:?}"
        );
    }
}

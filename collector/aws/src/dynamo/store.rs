//! [`DynamoStore`]: the `edgevote_store::Store` logic over any [`DynamoApi`].

use std::collections::BTreeMap;

use async_trait::async_trait;
use edgevote_shared::Policy;
use edgevote_store::counting;
use edgevote_store::{
    ElectionRules, LiveTally, MAX_SCAN_PAGE, PutOutcome, ScanPage, Store, StoreError, StoredBallot,
};
use futures_util::{StreamExt, TryStreamExt, stream};

use super::item::key_safe;
use super::{DynamoApi, DynamoStoreConfig, SdkDynamo};

/// Default of [`DynamoStoreConfig::max_concurrent_requests`].
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 64;
/// Largest accepted `max_concurrent_requests`.
pub const MAX_CONCURRENT_REQUESTS: usize = 1024;

/// The ballot store on DynamoDB (or on any [`DynamoApi`]). See the module docs of
/// [`crate::dynamo`] for the table design and why it is safe on a Global Table.
#[derive(Debug)]
pub struct DynamoStore<A> {
    api: A,
    max_concurrent_requests: usize,
}

impl DynamoStore<SdkDynamo> {
    /// Connects to the table of `config`.
    pub async fn connect(config: &DynamoStoreConfig) -> Self {
        DynamoStore::new(
            SdkDynamo::connect(config).await,
            config.max_concurrent_requests,
        )
    }
}

impl<A: DynamoApi> DynamoStore<A> {
    /// A store over `api` that keeps at most `max_concurrent_requests` (clamped to
    /// 1..=[`MAX_CONCURRENT_REQUESTS`]) requests in flight per call.
    pub fn new(api: A, max_concurrent_requests: usize) -> Self {
        DynamoStore {
            api,
            max_concurrent_requests: max_concurrent_requests.clamp(1, MAX_CONCURRENT_REQUESTS),
        }
    }

    /// The underlying API (e.g. a [`super::SimDynamo`] to read its costs).
    pub fn api(&self) -> &A {
        &self.api
    }

    /// Puts every ballot, at most `max_concurrent_requests` at a time; outcomes in order.
    async fn put_all(&self, ballots: &[StoredBallot]) -> Result<Vec<PutOutcome>, StoreError> {
        // The futures are lazy; `buffered` runs at most that many at once. (Collected first: a
        // closure inside the stream would trip the `Send` check of the async_trait future.)
        let puts: Vec<_> = ballots
            .iter()
            .map(|b| self.api.put_ballot_if_absent(b))
            .collect();
        stream::iter(puts)
            .buffered(self.max_concurrent_requests)
            .try_collect()
            .await
    }

    /// The change of the live tally caused by the newly stored ballots.
    async fn live_delta(
        &self,
        rules: &ElectionRules,
        ballots: &[StoredBallot],
        outcomes: &[PutOutcome],
    ) -> Result<BTreeMap<String, i64>, StoreError> {
        let fresh = fresh_by_voter(ballots, outcomes);
        let queries: Vec<_> = fresh
            .keys()
            .map(|v| self.api.query_voter(&rules.id, v))
            .collect();
        let stored: Vec<Vec<StoredBallot>> = stream::iter(queries)
            .buffered(self.max_concurrent_requests)
            .try_collect()
            .await?;
        let mut delta = BTreeMap::new();
        for (new, all) in fresh.values().zip(stored) {
            voter_change(rules.policy, new, all, &mut delta);
        }
        delta.retain(|_, change| *change != 0);
        Ok(delta)
    }
}

/// The newly stored ballots, by voter.
fn fresh_by_voter<'a>(
    ballots: &'a [StoredBallot],
    outcomes: &[PutOutcome],
) -> BTreeMap<&'a str, Vec<&'a StoredBallot>> {
    let mut fresh: BTreeMap<&str, Vec<&StoredBallot>> = BTreeMap::new();
    for (ballot, outcome) in ballots.iter().zip(outcomes) {
        if *outcome == PutOutcome::Stored {
            fresh.entry(&ballot.voter).or_default().push(ballot);
        }
    }
    fresh
}

/// Adds to `delta` the change of one voter's counted ballot: before = counted over the voter's
/// ballots without the new ones, after = counted over all of them.
fn voter_change(
    policy: Policy,
    new: &[&StoredBallot],
    mut all: Vec<StoredBallot>,
    delta: &mut BTreeMap<String, i64>,
) {
    for ballot in new {
        // A strongly consistent read sees our own writes; keep the rule right regardless.
        if !all.iter().any(|b| b.vote_id == ballot.vote_id) {
            all.push((*ballot).clone());
        }
    }
    let is_new = |b: &StoredBallot| new.iter().any(|n| n.vote_id == b.vote_id);
    let before = counting::counted(policy, all.iter().filter(|b| !is_new(b)));
    let after = counting::counted(policy, &all);
    counting::apply_change(delta, before.as_ref(), after.as_ref());
}

fn check_batch(
    rules: &ElectionRules,
    region: &str,
    ballots: &[StoredBallot],
) -> Result<(), StoreError> {
    let invalid = |detail: String| StoreError::Invalid {
        stage: "record",
        detail,
    };
    edgevote_store::check_record_batch(rules, ballots)?;
    if !key_safe(&rules.id) || region.is_empty() {
        return Err(invalid(format!(
            "election {:?} or region {region:?} unusable in keys",
            rules.id
        )));
    }
    if let Some(b) = ballots.iter().find(|b| !key_safe(&b.voter)) {
        return Err(invalid(format!("voter {:?} unusable in keys", b.voter)));
    }
    Ok(())
}

#[async_trait]
impl<A: DynamoApi> Store for DynamoStore<A> {
    async fn record(
        &self,
        rules: &ElectionRules,
        region: &str,
        ballots: Vec<StoredBallot>,
    ) -> Result<Vec<PutOutcome>, StoreError> {
        check_batch(rules, region, &ballots)?;
        let outcomes = self.put_all(&ballots).await?;
        let delta = self.live_delta(rules, &ballots, &outcomes).await?;
        if !delta.is_empty() {
            self.api.add_counters(&rules.id, region, &delta).await?;
        }
        let stored = outcomes
            .iter()
            .filter(|o| **o == PutOutcome::Stored)
            .count();
        tracing::debug!(election = %rules.id, region, ballots = ballots.len(), stored, choices_changed = delta.len(), "ballots recorded");
        Ok(outcomes)
    }

    async fn voter_ballots(
        &self,
        election: &str,
        voter: &str,
    ) -> Result<Vec<StoredBallot>, StoreError> {
        self.api.query_voter(election, voter).await
    }

    async fn live_tally(&self, election: &str) -> Result<LiveTally, StoreError> {
        self.api.read_counters(election).await
    }

    async fn scan(
        &self,
        election: &str,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<ScanPage, StoreError> {
        self.api
            .scan_page(election, cursor, limit.clamp(1, MAX_SCAN_PAGE))
            .await
    }
}

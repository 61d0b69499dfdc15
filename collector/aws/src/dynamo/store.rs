//! [`DynamoStore`]: the `edgevote_store::Store` logic over any [`DynamoApi`].

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use edgevote_shared::Policy;
use edgevote_store::counting;
use edgevote_store::{
    ElectionRules, LiveTally, MAX_SCAN_PAGE, MAX_VOTER_BALLOTS, PutOutcome, ScanPage, Store,
    StoreError, StoredBallot,
};
use futures_util::{StreamExt, TryStreamExt, stream};

use super::item::key_safe;
use super::{BallotWrite, Consistency, DynamoApi, DynamoStoreConfig, SdkDynamo, VoterBallots};

/// Default of [`DynamoStoreConfig::max_concurrent_requests`].
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 64;
/// Largest accepted `max_concurrent_requests`.
pub const MAX_CONCURRENT_REQUESTS: usize = 1024;
/// Retries of one request that was throttled or lost a cross-region write conflict (on top of
/// the SDK's own retries, which do not cover `ReplicatedWriteConflictException`). After them the
/// error goes to the caller, whose message is then redelivered by the queue.
pub const MAX_RETRIES: u32 = 6;
/// First pause before a retry, milliseconds; it doubles up to [`RETRY_MAX_BACKOFF_MS`].
pub const RETRY_FIRST_BACKOFF_MS: u64 = 10;
/// Longest pause before a retry, milliseconds.
pub const RETRY_MAX_BACKOFF_MS: u64 = 1_000;

/// The pause before retry number `attempt` (0-based): exponential with "full jitter" (a random
/// part of the exponential step), so regions that conflicted do not retry in lockstep.
fn backoff(attempt: u32) -> Duration {
    let ceiling = RETRY_FIRST_BACKOFF_MS
        .saturating_mul(1 << attempt.min(16))
        .min(RETRY_MAX_BACKOFF_MS);
    let jitter = getrandom::u64().map_or(ceiling / 2, |r| r % ceiling.max(1));
    Duration::from_millis(ceiling / 2 + jitter / 2)
}

/// Runs `call` again while it fails with a retryable error ([`StoreError::is_retryable`]), at
/// most [`MAX_RETRIES`] more times, pausing [`backoff`] between tries. Only for calls that are
/// safe to repeat: a retryable error means nothing was written.
async fn retrying<T, F, Fut>(mut call: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut attempt = 0;
    loop {
        match call().await {
            Err(e) if e.is_retryable() && attempt < MAX_RETRIES => {
                tracing::debug!(attempt, error = %e, "dynamodb request retried");
                tokio::time::sleep(backoff(attempt)).await;
                attempt += 1;
            }
            done => return done,
        }
    }
}

/// The ballot store on DynamoDB (or on any [`DynamoApi`]). See the module docs of
/// [`crate::dynamo`] for the table design and why it is safe on a Global Table.
#[derive(Debug)]
pub struct DynamoStore<A> {
    api: A,
    max_concurrent_requests: usize,
    consistency: Consistency,
}

impl DynamoStore<SdkDynamo> {
    /// Connects to the table of `config`.
    pub async fn connect(config: &DynamoStoreConfig) -> Self {
        DynamoStore::new(
            SdkDynamo::connect(config).await,
            config.max_concurrent_requests,
        )
        .with_consistency(config.consistency)
    }
}

impl<A: DynamoApi> DynamoStore<A> {
    /// A store over `api` that keeps at most `max_concurrent_requests` (clamped to
    /// 1..=[`MAX_CONCURRENT_REQUESTS`]) requests in flight per call.
    pub fn new(api: A, max_concurrent_requests: usize) -> Self {
        DynamoStore {
            api,
            max_concurrent_requests: max_concurrent_requests.clamp(1, MAX_CONCURRENT_REQUESTS),
            consistency: Consistency::Eventual,
        }
    }

    /// The same store for a table of `consistency` (see [`Consistency`] for what changes).
    pub fn with_consistency(mut self, consistency: Consistency) -> Self {
        self.consistency = consistency;
        self
    }

    /// The table's consistency mode.
    pub fn consistency(&self) -> Consistency {
        self.consistency
    }

    /// Under [`Consistency::Strong`], claims a free limit slot for a new ballot (slots are tried
    /// in order; one this vote already holds counts as free). False when every slot is another
    /// vote's: the voter is at the limit in every region. Under eventual consistency there are
    /// no slots and this is always true (the local count was checked by the caller).
    async fn claim(
        &self,
        rules: &ElectionRules,
        ballot: &StoredBallot,
    ) -> Result<bool, StoreError> {
        if self.consistency == Consistency::Eventual {
            return Ok(true);
        }
        for slot in 0..rules.max_votes_per_voter {
            let claimed = retrying(|| {
                self.api
                    .claim_slot(&rules.id, &ballot.voter, slot, &ballot.vote_id)
            })
            .await?;
            if claimed {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The underlying API (e.g. a [`super::SimDynamo`] to read its costs).
    pub fn api(&self) -> &A {
        &self.api
    }

    /// Runs `calls` (lazy futures), at most `max_concurrent_requests` at a time; results in
    /// order.
    async fn bounded<T, F>(&self, calls: Vec<F>) -> Result<Vec<T>, StoreError>
    where
        F: Future<Output = Result<T, StoreError>>,
    {
        // `buffered` runs at most that many at once. (The futures are collected by the caller
        // first: a closure inside the stream would trip the `Send` check of the async_trait
        // future.)
        stream::iter(calls)
            .buffered(self.max_concurrent_requests)
            .try_collect()
            .await
    }

    /// Decides what to do with one voter's ballots of the batch (`indices` into `ballots`, in
    /// batch order), given the voter's ballots read before any write.
    async fn plan_voter(
        &self,
        rules: &ElectionRules,
        ballots: &[StoredBallot],
        indices: &[usize],
        read: VoterBallots,
    ) -> Result<VoterPlan, StoreError> {
        // One write per vote id at most: of the batch's copies of one vote, the least.
        let mut copies: Vec<(usize, Vec<usize>)> = Vec::new();
        for &i in indices {
            let ballot = &ballots[i];
            match copies
                .iter_mut()
                .find(|(least, _)| ballots[*least].vote_id == ballot.vote_id)
            {
                Some((least, all)) => {
                    if counting::replaces_copy(ballot, &ballots[*least]) {
                        *least = i;
                    }
                    all.push(i);
                }
                None => copies.push((i, vec![i])),
            }
        }
        let mut held = read.ballots.len();
        let mut plan = VoterPlan {
            writes: Vec::new(),
            over_limit: Vec::new(),
            read,
        };
        for (least, all) in copies {
            let ballot = &ballots[least];
            let mut existing = plan
                .read
                .ballots
                .iter()
                .find(|b| b.vote_id == ballot.vote_id)
                .cloned();
            if existing.is_none() && !plan.read.complete {
                // The voter holds more ballots than were read: this one may be among the rest.
                existing = self
                    .api
                    .get_ballot(&rules.id, &ballot.voter, &ballot.vote_id)
                    .await?;
            }
            match existing {
                // A copy of a vote the voter has: a duplicate, never over the limit. Written only
                // when it is the earlier copy (the put's condition decides again, atomically).
                Some(existing) => {
                    if counting::replaces_copy(ballot, &existing) {
                        plan.writes.push(least);
                    }
                }
                None if held >= rules.voter_limit() => plan.over_limit.extend(all),
                None if !self.claim(rules, ballot).await? => plan.over_limit.extend(all),
                None => {
                    held += 1;
                    plan.writes.push(least);
                }
            }
        }
        Ok(plan)
    }
}

/// What `record` does with one voter's ballots.
#[derive(Debug)]
struct VoterPlan {
    /// The voter's ballots before the batch.
    read: VoterBallots,
    /// Ballots to put (new ones within the limit, and earlier copies of stored votes).
    writes: Vec<usize>,
    /// New ballots refused: the voter is at the limit.
    over_limit: Vec<usize>,
}

/// Adds to `delta` the change of one voter's counted ballot that the batch's writes made: before
/// = counted over the ballots read, after = counted over them with the new ballots added and the
/// replaced copies swapped in. Nothing for a voter whose ballots were not all read.
fn voter_change(
    policy: Policy,
    plan: &VoterPlan,
    written: &[(&StoredBallot, BallotWrite)],
    delta: &mut BTreeMap<String, i64>,
) {
    if !plan.read.complete {
        return;
    }
    let before = counting::counted(policy, &plan.read.ballots);
    let mut after = plan.read.ballots.clone();
    for (ballot, write) in written {
        match write {
            BallotWrite::Stored => after.push((*ballot).clone()),
            BallotWrite::Replaced => {
                // (A copy stored by someone else since the read is theirs to count.)
                if let Some(copy) = after.iter_mut().find(|b| b.vote_id == ballot.vote_id) {
                    *copy = (*ballot).clone();
                }
            }
            BallotWrite::Kept => {}
        }
    }
    let after = counting::counted(policy, &after);
    counting::apply_change(delta, before.as_ref(), after.as_ref());
}

fn check_batch(
    rules: &ElectionRules,
    region: &str,
    ballots: &[StoredBallot],
) -> Result<(), StoreError> {
    let invalid = |detail: String| StoreError::invalid("record", detail);
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
        let mut by_voter: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, ballot) in ballots.iter().enumerate() {
            by_voter.entry(&ballot.voter).or_default().push(i);
        }
        // Every voter's ballots, read before any write: the limit and the counting rule need them.
        let reads = by_voter
            .keys()
            .map(|voter| {
                retrying(move || self.api.query_voter(&rules.id, voter, MAX_VOTER_BALLOTS))
            })
            .collect();
        let reads: Vec<VoterBallots> = self.bounded(reads).await?;
        // Voters are planned concurrently: under strong consistency each new ballot's claim is a
        // cross-region round trip.
        let plans = by_voter
            .values()
            .zip(reads)
            .map(|(indices, read)| self.plan_voter(rules, &ballots, indices, read))
            .collect();
        let plans: Vec<VoterPlan> = self.bounded(plans).await?;
        let to_write: Vec<usize> = plans
            .iter()
            .flat_map(|p| p.writes.iter().copied())
            .collect();
        let all = &ballots;
        let puts = to_write
            .iter()
            .map(|&i| retrying(move || self.api.put_ballot(&all[i])))
            .collect();
        let written: Vec<BallotWrite> = self.bounded(puts).await?;

        let mut outcomes = vec![PutOutcome::Duplicate; ballots.len()];
        for (&i, write) in to_write.iter().zip(&written) {
            outcomes[i] = write.outcome();
        }
        let mut written = to_write.iter().zip(written);
        let mut delta = BTreeMap::new();
        for (voter, plan) in by_voter.keys().zip(&plans) {
            for &i in &plan.over_limit {
                outcomes[i] = PutOutcome::OverLimit;
            }
            let mine: Vec<(&StoredBallot, BallotWrite)> = written
                .by_ref()
                .take(plan.writes.len())
                .map(|(&i, w)| (&ballots[i], w))
                .collect();
            if !plan.read.complete {
                tracing::warn!(election = %rules.id, voter, held_more_than = MAX_VOTER_BALLOTS, "voter holds too many ballots to recount; live tally left as it is");
            }
            voter_change(rules.policy, plan, &mine, &mut delta);
        }
        delta.retain(|_, change| *change != 0);
        if !delta.is_empty() {
            // Retried only on errors that wrote nothing: an `ADD` applied twice would count twice.
            retrying(|| self.api.add_counters(&rules.id, region, &delta)).await?;
        }
        let count = |o: PutOutcome| outcomes.iter().filter(|x| **x == o).count();
        tracing::debug!(election = %rules.id, region, ballots = ballots.len(), stored = count(PutOutcome::Stored), over_limit = count(PutOutcome::OverLimit), writes = to_write.len(), choices_changed = delta.len(), "ballots recorded");
        Ok(outcomes)
    }

    async fn voter_ballots(
        &self,
        election: &str,
        voter: &str,
    ) -> Result<Vec<StoredBallot>, StoreError> {
        let read = self
            .api
            .query_voter(election, voter, MAX_VOTER_BALLOTS)
            .await?;
        if !read.complete {
            return Err(StoreError::Invalid {
                stage: "voter_ballots",
                detail: format!("voter {voter:?} holds more than {MAX_VOTER_BALLOTS} ballots"),
            });
        }
        Ok(read.ballots)
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

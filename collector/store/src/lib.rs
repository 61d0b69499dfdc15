//! The ballot store: immutable ballots, the counting rule, live and final tallies.
//!
//! Model (the same for every backend, see ARCHITECTURE.md "Store design"):
//! - a ballot is an immutable item keyed by (election, voter, vote id). A retried vote has the
//!   same vote id, so it is the same item and is stored once ([`PutOutcome::Duplicate`]);
//! - which ballot of a voter counts is a pure function of the voter's ballots
//!   ([`counting::counted`]): first-vote-wins takes the earliest edge timestamp, last-vote-wins
//!   the latest, ties by the smaller vote id. Replicas that hold the same ballots therefore agree,
//!   whatever order they learned them in;
//! - the live tally is provisional: each region adds the changes its own collector saw;
//! - the final tally ([`final_tally`]) is recomputed from the ballots and is exact;
//! - `record` refuses a new ballot of a voter who already has
//!   [`ElectionRules::max_votes_per_voter`] ballots in this region's store
//!   ([`PutOutcome::OverLimit`]). What that guarantees across regions is said there.

pub mod counting;
pub mod embedded;
pub mod replication;

use std::collections::BTreeMap;

use async_trait::async_trait;
use edgevote_shared::{Digest32, Policy};
use serde::{Deserialize, Serialize};

/// Most ballots one `record` call takes.
pub const MAX_RECORD_BATCH: usize = 10 * edgevote_shared::envelope::MAX_ENVELOPE_VOTES;
/// Most ballots one scan page returns.
pub const MAX_SCAN_PAGE: usize = 10_000;
/// Most ballots of one voter a store reads at once, in `record` (to apply the limit and the
/// counting rule) and in [`Store::voter_ballots`]: ten times the highest per-voter limit, so a
/// voter at the limit in each of ten regions still fits. A voter holding more is over every
/// limit: `record` refuses their new ballots (after checking that the ballot is not a copy of
/// one they hold, which stays [`PutOutcome::Duplicate`]) and leaves their live count as it is
/// (the final tally is exact), and the other voters of the batch are not affected.
pub const MAX_VOTER_BALLOTS: usize = 10 * edgevote_shared::manifest::MAX_VOTES_PER_VOTER as usize;

/// A ballot as stored: everything needed to count it and to audit it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredBallot {
    /// Election id.
    pub election: String,
    /// Pseudonymous voter (the token's `sub`).
    pub voter: String,
    /// The vote id (commitment).
    pub vote_id: Digest32,
    /// The chosen option.
    pub choice: String,
    /// The token's `jti`.
    pub token_id: String,
    /// The ballot nonce.
    pub nonce: String,
    /// Edge timestamp of acceptance, unix ms: the counting rule's input.
    pub received_at_ms: u64,
    /// Edge that accepted it.
    pub edge: String,
    /// Region of that edge.
    pub region: String,
    /// Envelope it arrived in.
    pub batch_id: String,
}

/// What happened to one ballot in [`Store::record`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// Newly stored.
    Stored,
    /// Already present (a redelivery or a client retry): not stored again. When the incoming
    /// copy was accepted earlier than the stored one, it replaced it
    /// ([`counting::replaces_copy`]).
    Duplicate,
    /// Refused, neither stored nor counted: a new ballot (no copy of it is stored) of a voter who
    /// already has [`ElectionRules::max_votes_per_voter`] ballots in this region's store.
    OverLimit,
}

/// The election facts the store needs to apply the counting rule and the per-voter limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElectionRules {
    /// Election id.
    pub id: String,
    /// Which ballot of a voter counts.
    pub policy: Policy,
    /// Most ballots stored per voter (the manifest's `limits.max_votes_per_voter`).
    ///
    /// [`Store::record`] refuses a new ballot ([`PutOutcome::OverLimit`]) of a voter who already
    /// has this many ballots in *this region's* store, counting the ballots replicated from other
    /// regions. A copy of a ballot the voter already has (same vote id: a redelivery or a client
    /// retry) is a [`PutOutcome::Duplicate`], never over the limit. Replication never applies the
    /// limit: a replica takes every ballot another region stored, or replicas would diverge.
    ///
    /// Under replication this bounds the ballots of a voter to this many *per region* (each
    /// region checks only what it holds; before replication catches up, every region may accept
    /// up to the limit), plus, on DynamoDB, the batches of one voter that the region's collectors
    /// record at the same moment (each may take the last free place). It never affects
    /// exactness: the counting rule still picks one counted ballot per voter from the ballots
    /// that were stored anywhere, and every region holds the same ones once replication has
    /// caught up, so every region computes the same final tally.
    pub max_votes_per_voter: u32,
}

impl ElectionRules {
    /// The rules of a (verified) election manifest.
    pub fn of(manifest: &edgevote_shared::ElectionManifest) -> Self {
        ElectionRules {
            id: manifest.id.clone(),
            policy: manifest.policy,
            max_votes_per_voter: manifest.limits.max_votes_per_voter,
        }
    }

    /// The per-voter limit as a count.
    pub fn voter_limit(&self) -> usize {
        usize::try_from(self.max_votes_per_voter).unwrap_or(usize::MAX)
    }
}

/// Provisional counts: region → choice → counted voters seen by that region's collector.
pub type LiveTally = BTreeMap<String, BTreeMap<String, i64>>;

/// A page of ballots from [`Store::scan`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScanPage {
    /// The ballots, in the backend's order.
    pub ballots: Vec<StoredBallot>,
    /// Where the next page starts; `None` at the end.
    pub next: Option<String>,
}

/// Why a store call failed. The stage names the call.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend failed (I/O, storage, network, service error).
    #[error("store {stage} failed: {detail}")]
    Backend {
        /// The call that failed.
        stage: &'static str,
        /// The backend's message.
        detail: String,
    },
    /// The backend asked us to slow down (DynamoDB throttling); retry later.
    #[error("store {stage} throttled: {detail}")]
    Throttled {
        /// The call.
        stage: &'static str,
        /// The backend's message.
        detail: String,
    },
    /// Another region wrote the same item at the same moment (DynamoDB's
    /// `ReplicatedWriteConflictException` under multi-region strong consistency); nothing was
    /// written: retry.
    #[error("store {stage} conflicted with a write in another region: {detail}")]
    Conflict {
        /// The call.
        stage: &'static str,
        /// The backend's message.
        detail: String,
    },
    /// A request broke a bound or a rule.
    #[error("store {stage} refused: {detail}")]
    Invalid {
        /// The call.
        stage: &'static str,
        /// What was wrong.
        detail: String,
    },
}

impl StoreError {
    /// Shorthand for [`StoreError::Invalid`].
    pub fn invalid(stage: &'static str, detail: impl std::fmt::Display) -> Self {
        StoreError::Invalid {
            stage,
            detail: detail.to_string(),
        }
    }

    /// True for the errors that mean "nothing was written, try again later"
    /// ([`StoreError::Throttled`], [`StoreError::Conflict`]).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            StoreError::Throttled { .. } | StoreError::Conflict { .. }
        )
    }

    /// Shorthand for [`StoreError::Backend`].
    pub fn backend(stage: &'static str, detail: impl std::fmt::Display) -> Self {
        StoreError::Backend {
            stage,
            detail: detail.to_string(),
        }
    }
}

/// A ballot store.
#[async_trait]
pub trait Store: Send + Sync {
    /// Stores `ballots` of one election idempotently and adds to `region`'s live tally the change
    /// in counted ballots they cause. Returns one outcome per ballot, in order. A voter's new
    /// ballots beyond [`ElectionRules::max_votes_per_voter`] are refused
    /// ([`PutOutcome::OverLimit`]), in batch order; the rest of the batch is stored. When this
    /// returns `Ok`, every ballot not refused is durable; on `Err` the caller retries the whole
    /// call (it is idempotent).
    async fn record(
        &self,
        rules: &ElectionRules,
        region: &str,
        ballots: Vec<StoredBallot>,
    ) -> Result<Vec<PutOutcome>, StoreError>;

    /// Every stored ballot of one voter.
    async fn voter_ballots(
        &self,
        election: &str,
        voter: &str,
    ) -> Result<Vec<StoredBallot>, StoreError>;

    /// The provisional live tally of an election.
    async fn live_tally(&self, election: &str) -> Result<LiveTally, StoreError>;

    /// A page of at most `limit` (≤ [`MAX_SCAN_PAGE`]) ballots of an election, starting at
    /// `cursor` (from the previous page; `None` for the first).
    async fn scan(
        &self,
        election: &str,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<ScanPage, StoreError>;
}

/// The exact result of an election, recomputed from its ballots.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FinalTally {
    /// Election id.
    pub election: String,
    /// Counted ballots per choice.
    pub counts: BTreeMap<String, u64>,
    /// Distinct voters (= counted ballots).
    pub voters: u64,
    /// Stored ballots, counted or not.
    pub ballots: u64,
}

/// Recomputes the exact tally by scanning every ballot of the election. Memory grows with the
/// number of distinct voters (one small entry each).
pub async fn final_tally(
    store: &dyn Store,
    rules: &ElectionRules,
) -> Result<FinalTally, StoreError> {
    let mut counted = counting::CountedBallots::default();
    let mut ballots = 0u64;
    scan_all(store, &rules.id, |ballot| {
        ballots += 1;
        counted.offer(rules.policy, &ballot.voter, counting::Candidate::of(ballot));
        Ok(())
    })
    .await?;
    Ok(FinalTally {
        election: rules.id.clone(),
        counts: counted.counts(),
        voters: counted.voters(),
        ballots,
    })
}

/// Visits every ballot of `election`, page by page ([`MAX_SCAN_PAGE`] at a time); stops at the
/// first error `visit` returns.
pub async fn scan_all(
    store: &dyn Store,
    election: &str,
    mut visit: impl FnMut(&StoredBallot) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut cursor = None;
    loop {
        let page = store.scan(election, cursor, MAX_SCAN_PAGE).await?;
        page.ballots.iter().try_for_each(&mut visit)?;
        match page.next {
            Some(next) => cursor = Some(next),
            None => return Ok(()),
        }
    }
}

/// An order-independent digest of the set of ballots a store holds for an election: two stores
/// with equal digests hold the same vote ids (replication has converged between them). Memory
/// stays constant however many ballots there are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BallotSet {
    /// Ballots.
    pub ballots: u64,
    /// The sum, modulo 2^256, of the SHA-256 of every vote id.
    sum: [u64; 4],
}

impl BallotSet {
    fn add(&mut self, vote_id: &Digest32) {
        let hash = Digest32::of(&vote_id.0).0;
        let mut carry = false;
        let (words, _) = hash.as_chunks::<8>();
        for (limb, chunk) in self.sum.iter_mut().zip(words) {
            let word = u64::from_le_bytes(*chunk);
            let (sum, c1) = limb.overflowing_add(word);
            let (sum, c2) = sum.overflowing_add(u64::from(carry));
            *limb = sum;
            carry = c1 || c2;
        }
        self.ballots += 1;
    }

    /// The set of `election`'s ballots in `store`.
    pub async fn of(store: &dyn Store, election: &str) -> Result<Self, StoreError> {
        let mut set = BallotSet::default();
        scan_all(store, election, |ballot| {
            set.add(&ballot.vote_id);
            Ok(())
        })
        .await?;
        Ok(set)
    }
}

/// Checks the bounds every backend's `record` enforces: batch size, and one election per batch.
pub fn check_record_batch(
    rules: &ElectionRules,
    ballots: &[StoredBallot],
) -> Result<(), StoreError> {
    let invalid = |detail: String| StoreError::invalid("record", detail);
    if ballots.len() > MAX_RECORD_BATCH {
        return Err(invalid(format!(
            "{} ballots, at most {MAX_RECORD_BATCH}",
            ballots.len()
        )));
    }
    if let Some(b) = ballots.iter().find(|b| b.election != rules.id) {
        return Err(invalid(format!(
            "ballot for {} in a batch for {}",
            b.election, rules.id
        )));
    }
    Ok(())
}

/// Sums a live tally over regions.
pub fn live_overall(live: &LiveTally) -> BTreeMap<String, i64> {
    let mut overall = BTreeMap::new();
    for counts in live.values() {
        for (choice, n) in counts {
            *overall.entry(choice.clone()).or_insert(0) += n;
        }
    }
    overall
}

//! The DynamoDB ballot store.
//!
//! # Table (one table, on-demand, a Global Table in production)
//!
//! | item | `pk` (S) | `sk` (S) | other attributes |
//! |---|---|---|---|
//! | ballot | `ballot#{election}#{voter}` | vote id, base64url | `election voter vote_id choice token_id nonce edge region batch_id` (S), `received_at_ms` (N) |
//! | live counter | `tally#{election}#{shard}` | `{region}` | `c#{choice}` (N) per choice |
//!
//! A voter's ballots share a partition key, so the counting rule reads them with one Query.
//!
//! **Counter sharding.** A region's live counts of an election are spread over
//! [`item::COUNTER_SHARDS`] (16) items, one per partition key `tally#{election}#{shard}`; each
//! `record` batch adds its whole change (every choice) to one shard chosen at random with one
//! `UpdateItem ADD`. Distinct partition keys spread the counter writes of all collectors over
//! partitions (one partition key takes at most 1,000 WCU/s), and one item per batch keeps the
//! change of a batch atomic (a moved vote never shows as −1 without its +1). Reading the live
//! tally queries the 16 shards and sums them.
//!
//! # Why this is safe on a Global Table
//!
//! - Ballots are immutable items with distinct keys (voter, vote id), written with a conditional
//!   put. Global Tables resolve concurrent writes *of one item* by last writer wins;
//!   different ballots are different items, so replication never loses a ballot. The same vote
//!   id written in two regions is the same vote (the id commits to election, token, choice and
//!   nonce), so whichever copy wins holds the same choice.
//! - Two copies of one vote (a client retried it through another edge, so it was accepted
//!   twice with different `received_at_ms`) merge to the earliest, as in the embedded store
//!   (`edgevote_store::counting::replaces_copy`). The put's condition
//!   ([`KEEP_EARLIEST_COPY`]) lets a copy in only when no copy is stored or the stored one is
//!   later by (`received_at_ms`, `edge`, `batch_id`), a total order: a later copy never
//!   overwrites an earlier one, and an earlier one replaces a later one, whatever the arrival
//!   order. Conditions are evaluated in the local region only: if two regions write different
//!   copies within the replication delay, last writer wins picks one of them for every region
//!   (so all regions still count the same copy), and the next delivery of the earlier copy to any
//!   region replaces it.
//! - The per-voter limit (`ElectionRules::max_votes_per_voter`) is checked against the voter's
//!   ballots read (strongly consistent) before the puts, in the local region; see
//!   `ElectionRules` for what that guarantees across regions.
//! - No "counted" flag is stored. Which ballot of a voter counts is recomputed from the voter's
//!   ballots by the deterministic rule (`edgevote_store::counting`), so every replica that holds
//!   the same ballots agrees, in whatever order they arrived.
//! - Counters only receive `ADD`s, which replicate as separate updates per region's item; each
//!   region writes only its own counter items (`sk` = region), so no two regions write one
//!   counter item.
//!
//! # Cost per vote (on-demand)
//!
//! `record` makes one strongly consistent Query per voter of the batch (1 RCU while the voter's
//! ballots fit in 4 KB; at most [`MAX_VOTER_BALLOTS`] items are read), one conditional `PutItem`
//! per new ballot (1 WCU for a ballot under 1 KB) and per copy that replaces a later one, and one
//! `UpdateItem` per batch on a counter item (1 WCU while the item is under 1 KB). A redelivered
//! ballot is found by the Query and costs no write, and a ballot over the voter's limit costs
//! none either. So WCU per vote ≈ 1 + 1/batch size, and RCU per vote ≈ 1. [`SimDynamo`] counts
//! exactly these units.
//!
//! # Limits of the live tally
//!
//! The live tally is provisional, as the store trait says; [`edgevote_store::final_tally`] is
//! exact. The live change of a batch is lost when `record` fails after some puts (the retry finds
//! those ballots `Duplicate`), and two collectors recording ballots of one voter at the same
//! moment may each miss the other's ballot. Both are rare and bounded by one vote per affected
//! voter. A voter holding more than [`MAX_VOTER_BALLOTS`] ballots is not recounted at all.

pub mod global;
pub mod item;
pub mod replicate;
mod sdk;
mod sim;
mod store;

use std::collections::BTreeMap;

use async_trait::async_trait;
use edgevote_shared::Digest32;
use edgevote_store::{LiveTally, PutOutcome, ScanPage, StoreError, StoredBallot};
use serde::Deserialize;

pub use global::SimGlobalTable;
pub use sdk::{
    CLAIM_FREE_OR_MINE, KEEP_EARLIEST_COPY, REPLICATED_WRITE_CONFLICT, SdkDynamo, THROTTLING_CODES,
    create_table,
};
pub use sim::{CostSnapshot, SimCosts, SimDynamo};
pub use store::{
    DEFAULT_MAX_CONCURRENT_REQUESTS, DynamoStore, MAX_CONCURRENT_REQUESTS, MAX_RETRIES,
    RETRY_FIRST_BACKOFF_MS, RETRY_MAX_BACKOFF_MS,
};

/// Most ballots of one voter that [`DynamoStore`] reads (see the store crate's constant).
pub use edgevote_store::MAX_VOTER_BALLOTS;
/// Most Query pages read for one key (voter or counter shard).
pub const MAX_QUERY_PAGES: usize = 100;
/// Most choices one [`DynamoApi::add_counters`] call changes (an election's option limit).
pub const MAX_COUNTER_CHOICES: usize = edgevote_shared::manifest::MAX_OPTIONS;

/// Where the ballot table is, and how hard `record` may drive it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct DynamoStoreConfig {
    /// Name of the table (see the module docs for its layout).
    pub table_name: String,
    /// AWS region of the table (the local replica of a Global Table), e.g. `eu-west-1`.
    pub region: String,
    /// Custom endpoint (moto, DynamoDB Local); `None` for AWS itself.
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// Most DynamoDB requests one `record` call has in flight at once.
    #[serde(default = "default_max_concurrent_requests")]
    pub max_concurrent_requests: usize,
    /// The table's multi-region consistency mode, as the infrastructure created it
    /// (`infra/` variable `ballot_table_consistency`). It decides how the per-voter limit is
    /// enforced: see [`Consistency`].
    #[serde(default)]
    pub consistency: Consistency,
}

/// How a Global Table's regions agree on writes, and so how the store enforces the per-voter
/// limit (`ElectionRules::max_votes_per_voter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Consistency {
    /// Multi-region eventual consistency (MREC, the default). A condition is checked in the
    /// local region only and writes replicate later (last writer wins), so before replication
    /// catches up two regions can each accept a first ballot of one voter. Both are stored, and
    /// the counting rule (`edgevote_store::counting`) picks the same one everywhere.
    #[default]
    Eventual,
    /// Multi-region strong consistency (MRSC: three regions of one region set). Each new ballot
    /// first claims one of the voter's slots (`claim#{election}#{voter}`, sort key = slot
    /// number) with a conditional put, which DynamoDB checks against every region's latest
    /// state; a voter at the limit is refused in every region, so no more than the limit is ever
    /// stored. Two regions writing one item at once get `ReplicatedWriteConflictException`,
    /// which the store retries with backoff. Costs one more write per new ballot and the
    /// cross-region round trip on every write.
    Strong,
}

fn default_max_concurrent_requests() -> usize {
    DEFAULT_MAX_CONCURRENT_REQUESTS
}

/// What [`DynamoApi::put_ballot`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BallotWrite {
    /// No copy of the vote was stored; now this one is.
    Stored,
    /// A later copy was stored; this earlier one replaced it.
    Replaced,
    /// An earlier (or the same) copy is stored and stays; nothing changed.
    Kept,
}

impl BallotWrite {
    /// The store outcome: only [`BallotWrite::Stored`] is a new ballot.
    pub fn outcome(self) -> PutOutcome {
        match self {
            BallotWrite::Stored => PutOutcome::Stored,
            BallotWrite::Replaced | BallotWrite::Kept => PutOutcome::Duplicate,
        }
    }
}

/// Some of a voter's ballots, from [`DynamoApi::query_voter`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VoterBallots {
    /// At most the `max_items` asked for, in vote id order.
    pub ballots: Vec<StoredBallot>,
    /// False when the voter holds more than `max_items` ballots (or more than
    /// [`MAX_QUERY_PAGES`] pages of them).
    pub complete: bool,
}

/// The few DynamoDB operations the store needs. [`SdkDynamo`] runs them on DynamoDB,
/// [`SimDynamo`] in memory with a simulated latency and capacity accounting.
#[async_trait]
pub trait DynamoApi: Send + Sync {
    /// Writes the ballot unless a copy of the same vote that is earlier or equal by
    /// `edgevote_store::counting::replaces_copy` is stored: one conditional `PutItem`
    /// ([`KEEP_EARLIEST_COPY`]) that returns the replaced item, if any.
    async fn put_ballot(&self, ballot: &StoredBallot) -> Result<BallotWrite, StoreError>;

    /// At most `max_items` ballots of one voter (strongly consistent Query on the voter's
    /// partition key, reading at most `max_items + 1` items).
    async fn query_voter(
        &self,
        election: &str,
        voter: &str,
        max_items: usize,
    ) -> Result<VoterBallots, StoreError>;

    /// The stored copy of one vote, if any (strongly consistent Query on its key).
    async fn get_ballot(
        &self,
        election: &str,
        voter: &str,
        vote_id: &Digest32,
    ) -> Result<Option<StoredBallot>, StoreError>;

    /// Adds `deltas` (choice → change) to `region`'s live counts of `election`, on one
    /// randomly chosen counter shard, in one `UpdateItem ADD`. Zero changes are skipped.
    async fn add_counters(
        &self,
        election: &str,
        region: &str,
        deltas: &BTreeMap<String, i64>,
    ) -> Result<(), StoreError>;

    /// Claims slot `slot` of the voter's per-voter limit for `vote_id`: one conditional
    /// `PutItem` of the claim item ([`CLAIM_FREE_OR_MINE`]). True when the slot is now (or
    /// already was) this vote's, false when another vote holds it. Used only under
    /// [`Consistency::Strong`], where the condition is checked across regions.
    async fn claim_slot(
        &self,
        election: &str,
        voter: &str,
        slot: u32,
        vote_id: &Digest32,
    ) -> Result<bool, StoreError>;

    /// The live counts of `election`, summed over the counter shards.
    async fn read_counters(&self, election: &str) -> Result<LiveTally, StoreError>;

    /// One Scan page of at most `limit` evaluated items, keeping the ballots of `election`.
    /// A page may hold fewer ballots than `limit` (even none) and still have a `next` cursor.
    async fn scan_page(
        &self,
        election: &str,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<ScanPage, StoreError>;
}

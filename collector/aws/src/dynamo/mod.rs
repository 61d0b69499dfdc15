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
//! - Ballots are immutable items with distinct keys (voter, vote id), written once with a
//!   conditional put. Global Tables resolve concurrent writes *of one item* by last writer wins;
//!   different ballots are different items, so replication never loses a ballot. The same vote
//!   id written in two regions is the same vote (the id commits to election, token, choice and
//!   nonce), so whichever copy wins holds the same choice.
//! - No "counted" flag is stored. Which ballot of a voter counts is recomputed from the voter's
//!   ballots by the deterministic rule (`edgevote_store::counting`), so every replica that holds
//!   the same ballots agrees, in whatever order they arrived.
//! - Counters only receive `ADD`s, which replicate as separate updates per region's item; each
//!   region writes only its own counter items (`sk` = region), so no two regions write one
//!   counter item.
//!
//! # Cost per vote (on-demand)
//!
//! `record` makes one conditional `PutItem` per ballot (1 WCU for a ballot under 1 KB, also when
//! the condition fails on a redelivery), one strongly consistent Query per voter with a newly
//! stored ballot (1 RCU while the voter's ballots fit in 4 KB), and one `UpdateItem` per batch on
//! a counter item (1 WCU while the item is under 1 KB). So WCU per vote ≈ 1 + 1/batch size, and
//! RCU per vote ≈ 1. [`SimDynamo`] counts exactly these units.
//!
//! # Limits of the live tally
//!
//! The live tally is provisional, as the store trait says; [`edgevote_store::final_tally`] is
//! exact. The live change of a batch is lost when `record` fails after some puts (the retry finds
//! those ballots `Duplicate`), and two collectors recording ballots of one voter at the same
//! moment may each take the other's ballot as already counted. Both are rare and bounded by one
//! vote per affected voter.

pub mod item;
mod sdk;
mod sim;
mod store;

use std::collections::BTreeMap;

use async_trait::async_trait;
use edgevote_store::{LiveTally, PutOutcome, ScanPage, StoreError, StoredBallot};
use serde::Deserialize;

pub use sdk::{SdkDynamo, THROTTLING_CODES, create_table};
pub use sim::{CostSnapshot, SimCosts, SimDynamo};
pub use store::{DEFAULT_MAX_CONCURRENT_REQUESTS, DynamoStore, MAX_CONCURRENT_REQUESTS};

/// Most ballots of one voter that [`DynamoApi::query_voter`] reads; more is refused.
pub const MAX_VOTER_BALLOTS: usize = 10_000;
/// Most Query pages read for one key (voter or counter shard).
pub const MAX_QUERY_PAGES: usize = 100;
/// Most choices one [`DynamoApi::add_counters`] call changes (an election's option limit).
pub const MAX_COUNTER_CHOICES: usize = edgevote_shared::manifest::MAX_OPTIONS;

/// Where the ballot table is, and how hard `record` may drive it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
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
}

fn default_max_concurrent_requests() -> usize {
    DEFAULT_MAX_CONCURRENT_REQUESTS
}

/// The few DynamoDB operations the store needs. [`SdkDynamo`] runs them on DynamoDB,
/// [`SimDynamo`] in memory with a simulated latency and capacity accounting.
#[async_trait]
pub trait DynamoApi: Send + Sync {
    /// Writes the ballot unless an item with its key exists (conditional `PutItem`,
    /// `attribute_not_exists(pk)`).
    async fn put_ballot_if_absent(&self, ballot: &StoredBallot) -> Result<PutOutcome, StoreError>;

    /// Every ballot of one voter (strongly consistent Query on the voter's partition key).
    async fn query_voter(
        &self,
        election: &str,
        voter: &str,
    ) -> Result<Vec<StoredBallot>, StoreError>;

    /// Adds `deltas` (choice → change) to `region`'s live counts of `election`, on one
    /// randomly chosen counter shard, in one `UpdateItem ADD`. Zero changes are skipped.
    async fn add_counters(
        &self,
        election: &str,
        region: &str,
        deltas: &BTreeMap<String, i64>,
    ) -> Result<(), StoreError>;

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

//! [`DynamoApi`] in memory, for benchmarks: every request sleeps a configurable latency and is
//! billed by the DynamoDB capacity rules, so a benchmark can report WCU and RCU per vote.
//!
//! Writes follow the same conditions as [`super::SdkDynamo`]: a ballot put keeps the earliest copy
//! of a vote ([`super::KEEP_EARLIEST_COPY`], here through
//! `edgevote_store::counting::replaces_copy`, which that expression mirrors).
//!
//! Billing (on-demand request units, as documented by AWS):
//! - `PutItem`: 1 WCU per started KB of the larger of the item before and after, also when its
//!   condition fails;
//! - `UpdateItem`: 1 WCU per started KB of the larger of the item before and after;
//! - `Query`/`Scan`: the sizes of the items read (evaluated, for Scan) are summed and billed per
//!   started 4 KB, at least one unit: 1 RCU each when strongly consistent, 0.5 RCU when
//!   eventually consistent. Read units are kept in halves to stay integers.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use edgevote_shared::Digest32;
use edgevote_store::{LiveTally, ScanPage, StoreError, StoredBallot, counting};

use super::item::{self, COUNTER_SHARDS};
use super::{BallotWrite, DynamoApi, MAX_COUNTER_CHOICES, VoterBallots};

const WRITE_UNIT_BYTES: usize = 1024;
const READ_UNIT_BYTES: usize = 4096;

/// Requests and capacity units consumed so far. Shared (`Arc`) so a benchmark can read it while
/// the store owns the [`SimDynamo`].
#[derive(Debug, Default)]
pub struct SimCosts {
    /// Requests made.
    pub requests: AtomicU64,
    /// Write capacity units consumed.
    pub write_units: AtomicU64,
    /// Read capacity units consumed, in halves (one eventually consistent 4 KB read is 1).
    pub read_half_units: AtomicU64,
}

/// A copy of [`SimCosts`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CostSnapshot {
    /// Requests made.
    pub requests: u64,
    /// Write capacity units consumed.
    pub write_units: u64,
    /// Read capacity units consumed.
    pub read_units: f64,
}

impl SimCosts {
    /// The current counts.
    pub fn snapshot(&self) -> CostSnapshot {
        CostSnapshot {
            requests: self.requests.load(Ordering::Relaxed),
            write_units: self.write_units.load(Ordering::Relaxed),
            read_units: self.read_half_units.load(Ordering::Relaxed) as f64 / 2.0,
        }
    }

    fn write(&self, item_bytes: usize) {
        let units = item_bytes.div_ceil(WRITE_UNIT_BYTES).max(1);
        self.write_units.fetch_add(units as u64, Ordering::Relaxed);
    }

    fn read(&self, total_bytes: usize, consistent: bool) {
        let units = total_bytes.div_ceil(READ_UNIT_BYTES).max(1);
        let halves = if consistent { 2 * units } else { units };
        self.read_half_units
            .fetch_add(halves as u64, Ordering::Relaxed);
    }
}

/// Items of the simulated table, by (pk, sk).
#[derive(Debug, Default)]
struct Tables {
    ballots: BTreeMap<(String, String), StoredBallot>,
    counters: BTreeMap<(String, String), BTreeMap<String, i64>>,
    /// Limit slots (strong consistency): (claim pk, slot sk) → vote id.
    claims: BTreeMap<(String, String), Digest32>,
}

/// A region's counter items of one election: (pk, counts).
pub(crate) type CounterItems = Vec<(String, BTreeMap<String, i64>)>;

/// An in-memory stand-in for DynamoDB with a fixed latency per request.
#[derive(Debug)]
pub struct SimDynamo {
    latency: Duration,
    costs: Arc<SimCosts>,
    tables: Mutex<Tables>,
}

impl SimDynamo {
    /// An empty table whose every request takes `latency` (tokio time).
    pub fn new(latency: Duration) -> Self {
        SimDynamo {
            latency,
            costs: Arc::default(),
            tables: Mutex::default(),
        }
    }

    /// The cost counters, shared.
    pub fn costs(&self) -> Arc<SimCosts> {
        Arc::clone(&self.costs)
    }

    /// Waits the simulated latency and counts the request.
    async fn request(&self) {
        tokio::time::sleep(self.latency).await;
        self.costs.requests.fetch_add(1, Ordering::Relaxed);
    }

    fn tables(&self, stage: &'static str) -> Result<MutexGuard<'_, Tables>, StoreError> {
        self.tables
            .lock()
            .map_err(|_| StoreError::backend(stage, "simulated table lock poisoned"))
    }
}

/// Writes a replica receives (from [`super::SimGlobalTable`]): applied at once, not billed.
impl SimDynamo {
    /// Applies a ballot another region wrote, with the put's own condition (the earliest copy
    /// of a vote stays), which is how every region ends with the same copy.
    pub(crate) fn apply_replica_ballot(&self, ballot: &StoredBallot) -> Result<(), StoreError> {
        let mut tables = self.tables("replicate")?;
        let key = ballot_key(ballot);
        let keep = tables
            .ballots
            .get(&key)
            .is_some_and(|existing| !counting::replaces_copy(ballot, existing));
        if !keep {
            tables.ballots.insert(key, ballot.clone());
        }
        Ok(())
    }

    /// The counter items `region` wrote for `election`.
    pub(crate) fn counter_items(
        &self,
        election: &str,
        region: &str,
    ) -> Result<CounterItems, StoreError> {
        let tables = self.tables("replicate")?;
        Ok((0..COUNTER_SHARDS)
            .map(|shard| item::counter_pk(election, shard))
            .filter_map(|pk| {
                let counts = tables.counters.get(&(pk.clone(), region.to_owned()))?;
                Some((pk, counts.clone()))
            })
            .collect())
    }

    /// Overwrites counter items of `region` with another region's copy (one writer per item).
    pub(crate) fn apply_replica_counters(
        &self,
        region: &str,
        items: CounterItems,
    ) -> Result<(), StoreError> {
        let mut tables = self.tables("replicate")?;
        for (pk, counts) in items {
            tables.counters.insert((pk, region.to_owned()), counts);
        }
        Ok(())
    }
}

fn ballot_key(ballot: &StoredBallot) -> (String, String) {
    (
        item::ballot_pk(&ballot.election, &ballot.voter),
        ballot.vote_id.to_b64(),
    )
}

#[async_trait]
impl DynamoApi for SimDynamo {
    async fn put_ballot(&self, ballot: &StoredBallot) -> Result<BallotWrite, StoreError> {
        self.request().await;
        let mut tables = self.tables("put_ballot")?;
        let key = ballot_key(ballot);
        let before = tables.ballots.get(&key).map_or(0, item::ballot_size);
        self.costs.write(before.max(item::ballot_size(ballot)));
        let write = match tables.ballots.get(&key) {
            None => BallotWrite::Stored,
            Some(existing) if counting::replaces_copy(ballot, existing) => BallotWrite::Replaced,
            Some(_) => return Ok(BallotWrite::Kept),
        };
        tables.ballots.insert(key, ballot.clone());
        Ok(write)
    }

    async fn query_voter(
        &self,
        election: &str,
        voter: &str,
        max_items: usize,
    ) -> Result<VoterBallots, StoreError> {
        self.request().await;
        let pk = item::ballot_pk(election, voter);
        let mut found: Vec<StoredBallot> = {
            let tables = self.tables("query_voter")?;
            let from = (pk.clone(), String::new());
            let voter_items = tables
                .ballots
                .range(from..)
                .take_while(|((p, _), _)| *p == pk);
            voter_items
                .take(max_items + 1)
                .map(|(_, b)| b.clone())
                .collect()
        };
        self.costs
            .read(found.iter().map(item::ballot_size).sum(), true);
        let complete = found.len() <= max_items;
        found.truncate(max_items);
        Ok(VoterBallots {
            ballots: found,
            complete,
        })
    }

    async fn get_ballot(
        &self,
        election: &str,
        voter: &str,
        vote_id: &Digest32,
    ) -> Result<Option<StoredBallot>, StoreError> {
        self.request().await;
        let key = (item::ballot_pk(election, voter), vote_id.to_b64());
        let found = self.tables("get_ballot")?.ballots.get(&key).cloned();
        self.costs
            .read(found.as_ref().map_or(0, item::ballot_size), true);
        Ok(found)
    }

    async fn add_counters(
        &self,
        election: &str,
        region: &str,
        deltas: &BTreeMap<String, i64>,
    ) -> Result<(), StoreError> {
        let changes: Vec<(&String, &i64)> = deltas.iter().filter(|(_, d)| **d != 0).collect();
        if changes.is_empty() {
            return Ok(());
        }
        if changes.len() > MAX_COUNTER_CHOICES {
            return Err(StoreError::Invalid {
                stage: "add_counters",
                detail: format!("{} choices, at most {MAX_COUNTER_CHOICES}", changes.len()),
            });
        }
        self.request().await;
        let pk = item::counter_pk(election, item::random_shard());
        let mut tables = self.tables("add_counters")?;
        let counts = tables
            .counters
            .entry((pk.clone(), region.to_owned()))
            .or_default();
        let before = item::counter_size(&pk, region, counts);
        for (choice, delta) in changes {
            *counts.entry(choice.clone()).or_insert(0) += delta;
        }
        let after = item::counter_size(&pk, region, counts);
        self.costs.write(before.max(after));
        Ok(())
    }

    async fn claim_slot(
        &self,
        election: &str,
        voter: &str,
        slot: u32,
        vote_id: &Digest32,
    ) -> Result<bool, StoreError> {
        self.request().await;
        self.costs.write(item::claim_size(election, voter, slot));
        let key = (item::claim_pk(election, voter), item::claim_sk(slot));
        let mut tables = self.tables("claim_slot")?;
        match tables.claims.get(&key) {
            Some(holder) => Ok(holder == vote_id),
            None => {
                tables.claims.insert(key, *vote_id);
                Ok(true)
            }
        }
    }

    async fn read_counters(&self, election: &str) -> Result<LiveTally, StoreError> {
        let mut tally = LiveTally::new();
        for shard in 0..COUNTER_SHARDS {
            self.request().await;
            let pk = item::counter_pk(election, shard);
            let tables = self.tables("read_counters")?;
            let from = (pk.clone(), String::new());
            let mut bytes = 0;
            for ((_, region), counts) in tables
                .counters
                .range(from..)
                .take_while(|((p, _), _)| *p == pk)
            {
                bytes += item::counter_size(&pk, region, counts);
                let region_counts = tally.entry(region.clone()).or_default();
                for (choice, n) in counts {
                    *region_counts.entry(choice.clone()).or_insert(0) += n;
                }
            }
            self.costs.read(bytes, false);
        }
        Ok(tally)
    }

    async fn scan_page(
        &self,
        election: &str,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<ScanPage, StoreError> {
        let start = cursor.as_deref().map(item::parse_cursor).transpose()?;
        self.request().await;
        let prefix = item::ballot_prefix(election);
        let tables = self.tables("scan")?;
        let lower = start.map_or(Bound::Unbounded, Bound::Excluded);
        let after_cursor = tables.ballots.range((lower, Bound::Unbounded));
        let evaluated: Vec<_> = after_cursor.take(limit.max(1)).collect();
        self.costs.read(
            evaluated.iter().map(|(_, b)| item::ballot_size(b)).sum(),
            true,
        );
        let next = match evaluated.last() {
            Some(((pk, sk), _)) if evaluated.len() == limit.max(1) => Some(item::cursor_of(pk, sk)),
            _ => None,
        };
        let ballots = evaluated
            .into_iter()
            .filter(|((pk, _), _)| pk.starts_with(&prefix))
            .map(|(_, b)| b.clone())
            .collect();
        Ok(ScanPage { ballots, next })
    }
}

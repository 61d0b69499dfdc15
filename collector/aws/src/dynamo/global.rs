//! [`SimGlobalTable`]: a Global Table of [`SimDynamo`] regions, in either consistency mode, so
//! the store's multi-region behaviour can be tested without AWS (no local server emulates
//! Global Tables).
//!
//! - **Eventual** ([`Consistency::Eventual`], MREC): every region has its own table. A write is
//!   checked and applied in its region, then shipped to every other region after the replication
//!   delay, in write order per link. A replica applies a ballot with the put's own condition
//!   (the earliest copy of a vote stays) and a counter item by overwriting it: those are the
//!   outcomes last-writer-wins reaches for this table's items, because every ballot conflict is
//!   between copies of one vote and every counter item has one writing region. Claims are not
//!   used in this mode.
//! - **Strong** ([`Consistency::Strong`], MRSC): every region reads and writes one state (a
//!   write is visible everywhere once acknowledged). A write holds its item for the request's
//!   latency, the cross-region round trip; another region's write of the same item meanwhile
//!   fails with [`StoreError::Conflict`] (DynamoDB's `ReplicatedWriteConflictException`) and
//!   writes nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use edgevote_shared::Digest32;
use edgevote_store::{LiveTally, ScanPage, StoreError, StoredBallot};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::item;
use super::sim::CounterItems;
use super::{BallotWrite, Consistency, DynamoApi, SimDynamo, VoterBallots};

/// Most replicated writes waiting on one link; a full link holds its writers back (as a
/// region's write capacity would).
const LINK_CAPACITY: usize = 10_000;

/// One write shipped to another region.
enum Shipped {
    Ballot(StoredBallot),
    Counters { region: String, items: CounterItems },
}

/// A simulated Global Table: one [`SimDynamo`] per region (eventual) or one for all (strong).
pub struct SimGlobalTable {
    consistency: Consistency,
    tables: BTreeMap<String, Arc<SimDynamo>>,
    /// Eventual: per source region, one sender per other region.
    links: BTreeMap<String, Vec<mpsc::Sender<(Instant, Shipped)>>>,
    /// Eventual: how long a write takes to reach the other regions.
    delay: Duration,
    /// Strong: items being written, with the writing region.
    writing: Mutex<BTreeMap<(String, String), String>>,
    conflicts: AtomicU64,
    /// Eventual: writes shipped and not yet applied, over every link.
    unapplied: Arc<AtomicU64>,
}

impl std::fmt::Debug for SimGlobalTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimGlobalTable")
            .field("consistency", &self.consistency)
            .field("regions", &self.tables.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl SimGlobalTable {
    /// A table replicated over `regions`, each request taking `latency`; under eventual
    /// consistency a write reaches the other regions `delay` after it is applied. Must be called
    /// inside a tokio runtime (the links are tasks).
    pub fn new(
        regions: &[&str],
        consistency: Consistency,
        latency: Duration,
        delay: Duration,
    ) -> Arc<Self> {
        let shared = Arc::new(SimDynamo::new(latency));
        let tables: BTreeMap<String, Arc<SimDynamo>> = regions
            .iter()
            .map(|r| {
                let table = match consistency {
                    Consistency::Strong => Arc::clone(&shared),
                    Consistency::Eventual => Arc::new(SimDynamo::new(latency)),
                };
                ((*r).to_owned(), table)
            })
            .collect();
        let mut links = BTreeMap::new();
        let unapplied = Arc::new(AtomicU64::new(0));
        if consistency == Consistency::Eventual {
            for from in regions {
                let senders = tables
                    .iter()
                    .filter(|(to, _)| to.as_str() != *from)
                    .map(|(_, table)| spawn_link(Arc::clone(table), Arc::clone(&unapplied)))
                    .collect();
                links.insert((*from).to_owned(), senders);
            }
        }
        Arc::new(SimGlobalTable {
            consistency,
            tables,
            links,
            delay,
            writing: Mutex::default(),
            conflicts: AtomicU64::new(0),
            unapplied,
        })
    }

    /// The table's API as seen from `region` (a collector there), or `None` for an unknown
    /// region.
    pub fn region(self: &Arc<Self>, region: &str) -> Option<SimRegion> {
        self.tables.contains_key(region).then(|| SimRegion {
            global: Arc::clone(self),
            region: region.to_owned(),
        })
    }

    /// How many writes failed with a cross-region conflict (strong mode).
    pub fn conflicts(&self) -> u64 {
        self.conflicts.load(Ordering::Relaxed)
    }

    /// True when every shipped write has been applied (eventual mode); always true in strong
    /// mode.
    pub fn caught_up(&self) -> bool {
        self.unapplied.load(Ordering::SeqCst) == 0
    }

    fn table(&self, region: &str) -> &SimDynamo {
        // `SimRegion` exists only for a known region.
        &self.tables[region]
    }

    async fn ship(&self, from: &str, write: impl Fn() -> Shipped) {
        let due = tokio::time::Instant::now() + self.delay;
        for link in self.links.get(from).into_iter().flatten() {
            self.unapplied.fetch_add(1, Ordering::SeqCst);
            if link.send((due, write())).await.is_err() {
                // A closed link means the runtime is shutting down: nothing to replicate to.
                self.unapplied.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }

    /// Holds `key` for `region` while `write` runs (strong mode): a concurrent write of the same
    /// item from another region conflicts. A region's own concurrent writes of an item are not
    /// conflicts (its regional endpoint orders them).
    async fn exclusive<T>(
        &self,
        region: &str,
        stage: &'static str,
        key: (String, String),
        write: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        if self.consistency == Consistency::Eventual {
            return write.await;
        }
        {
            let mut writing = self
                .writing
                .lock()
                .map_err(|_| StoreError::backend(stage, "simulated table lock poisoned"))?;
            if let Some(other) = writing.get(&key).filter(|w| w.as_str() != region) {
                self.conflicts.fetch_add(1, Ordering::Relaxed);
                return Err(StoreError::Conflict {
                    stage,
                    detail: format!("{} is being written from {other}", key.0),
                });
            }
            writing.insert(key.clone(), region.to_owned());
        }
        let result = write.await;
        if let Ok(mut writing) = self.writing.lock() {
            writing.remove(&key);
        }
        result
    }
}

/// One replication link: applies each shipped write at its due time, in shipping order.
fn spawn_link(to: Arc<SimDynamo>, unapplied: Arc<AtomicU64>) -> mpsc::Sender<(Instant, Shipped)> {
    let (tx, mut rx) = mpsc::channel::<(Instant, Shipped)>(LINK_CAPACITY);
    tokio::spawn(async move {
        while let Some((due, write)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            let applied = match write {
                Shipped::Ballot(ballot) => to.apply_replica_ballot(&ballot),
                Shipped::Counters { region, items } => to.apply_replica_counters(&region, items),
            };
            if let Err(e) = applied {
                tracing::warn!(error = %e, "simulated replication failed");
            }
            unapplied.fetch_sub(1, Ordering::SeqCst);
        }
    });
    tx
}

/// One region's view of a [`SimGlobalTable`].
#[derive(Debug, Clone)]
pub struct SimRegion {
    global: Arc<SimGlobalTable>,
    region: String,
}

impl SimRegion {
    fn local(&self) -> &SimDynamo {
        self.global.table(&self.region)
    }
}

#[async_trait]
impl DynamoApi for SimRegion {
    async fn put_ballot(&self, ballot: &StoredBallot) -> Result<BallotWrite, StoreError> {
        let key = (
            item::ballot_pk(&ballot.election, &ballot.voter),
            ballot.vote_id.to_b64(),
        );
        let write = self
            .global
            .exclusive(
                &self.region,
                "put_ballot",
                key,
                self.local().put_ballot(ballot),
            )
            .await?;
        if write != BallotWrite::Kept {
            self.global
                .ship(&self.region, || Shipped::Ballot(ballot.clone()))
                .await;
        }
        Ok(write)
    }

    async fn query_voter(
        &self,
        election: &str,
        voter: &str,
        max_items: usize,
    ) -> Result<VoterBallots, StoreError> {
        self.local().query_voter(election, voter, max_items).await
    }

    async fn get_ballot(
        &self,
        election: &str,
        voter: &str,
        vote_id: &Digest32,
    ) -> Result<Option<StoredBallot>, StoreError> {
        self.local().get_ballot(election, voter, vote_id).await
    }

    async fn add_counters(
        &self,
        election: &str,
        region: &str,
        deltas: &BTreeMap<String, i64>,
    ) -> Result<(), StoreError> {
        // Each region writes only its own counter items: no cross-region conflict to model.
        self.local().add_counters(election, region, deltas).await?;
        if self.global.consistency == Consistency::Eventual {
            let items = self.local().counter_items(election, region)?;
            self.global
                .ship(&self.region, || Shipped::Counters {
                    region: region.to_owned(),
                    items: items.clone(),
                })
                .await;
        }
        Ok(())
    }

    async fn claim_slot(
        &self,
        election: &str,
        voter: &str,
        slot: u32,
        vote_id: &Digest32,
    ) -> Result<bool, StoreError> {
        let key = (item::claim_pk(election, voter), item::claim_sk(slot));
        self.global
            .exclusive(
                &self.region,
                "claim_slot",
                key,
                self.local().claim_slot(election, voter, slot, vote_id),
            )
            .await
    }

    async fn read_counters(&self, election: &str) -> Result<LiveTally, StoreError> {
        self.local().read_counters(election).await
    }

    async fn scan_page(
        &self,
        election: &str,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<ScanPage, StoreError> {
        self.local().scan_page(election, cursor, limit).await
    }
}

/// The vote ids every region holds for `election` (for convergence checks in tests).
pub async fn vote_ids_by_region(
    table: &Arc<SimGlobalTable>,
    election: &str,
) -> Result<BTreeMap<String, BTreeSet<Digest32>>, StoreError> {
    let mut all = BTreeMap::new();
    for (region, local) in &table.tables {
        let mut ids = BTreeSet::new();
        let mut cursor = None;
        loop {
            let page = local
                .scan_page(election, cursor, edgevote_store::MAX_SCAN_PAGE)
                .await?;
            ids.extend(page.ballots.iter().map(|b| b.vote_id));
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        all.insert(region.clone(), ids);
    }
    Ok(all)
}

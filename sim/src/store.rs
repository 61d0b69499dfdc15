//! The regional stores of a run, in one of two designs:
//! - [`Design::Real`]: edgevote's embedded store (in memory) per region, replicated by the
//!   project's own replication links;
//! - [`Design::NaiveConditionalPut`]: the canary. One item per voter, written with a conditional
//!   put in the local region and counted at once; replication overwrites (last writer wins).
//!   It looks right in one region and is wrong across regions; the checker must catch it.
//!
//! [`FaultyStore`] sits in front of either, between a collector and its store, and injects
//! the store-side faults: partition, throttling, and a write whose reply is lost.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use edgevote_store::embedded::EmbeddedStore;
use edgevote_store::replication::{self, Replica};
use edgevote_store::{
    ElectionRules, LiveTally, PutOutcome, ScanPage, Store, StoreError, StoredBallot, final_tally,
};

/// Which store design a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Design {
    /// edgevote's store: immutable ballots, counting rule, replicated change logs.
    Real,
    /// The canary: a conditional put per voter per region, counted on success.
    NaiveConditionalPut,
}

/// Store-side faults of one region.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreFaults {
    /// The collector cannot reach its store.
    pub unreachable: bool,
    /// The next this-many calls are throttled.
    pub throttled_calls: u32,
    /// The next this-many writes succeed but report failure (the reply is lost).
    pub lost_replies: u32,
}

/// A store with injected faults in front of it.
pub struct FaultyStore {
    inner: Arc<dyn Store>,
    faults: Mutex<StoreFaults>,
}

impl FaultyStore {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Store>) -> Self {
        FaultyStore {
            inner,
            faults: Mutex::new(StoreFaults::default()),
        }
    }

    fn faults(&self) -> std::sync::MutexGuard<'_, StoreFaults> {
        self.faults.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces the active faults.
    pub fn set_faults(&self, faults: StoreFaults) {
        *self.faults() = faults;
    }

    /// The active faults.
    pub fn current_faults(&self) -> StoreFaults {
        *self.faults()
    }

    fn before_call(&self, stage: &'static str) -> Result<(), StoreError> {
        let mut faults = self.faults();
        if faults.unreachable {
            return Err(StoreError::backend(
                stage,
                "simulated partition from the store",
            ));
        }
        if faults.throttled_calls > 0 {
            faults.throttled_calls -= 1;
            return Err(StoreError::Throttled {
                stage,
                detail: "simulated throttling".into(),
            });
        }
        Ok(())
    }
}

#[async_trait]
impl Store for FaultyStore {
    async fn record(
        &self,
        rules: &ElectionRules,
        region: &str,
        ballots: Vec<StoredBallot>,
    ) -> Result<Vec<PutOutcome>, StoreError> {
        self.before_call("record")?;
        let outcome = self.inner.record(rules, region, ballots).await?;
        let mut faults = self.faults();
        if faults.lost_replies > 0 {
            faults.lost_replies -= 1;
            return Err(StoreError::backend(
                "record",
                "simulated lost reply after the write",
            ));
        }
        Ok(outcome)
    }

    async fn voter_ballots(
        &self,
        election: &str,
        voter: &str,
    ) -> Result<Vec<StoredBallot>, StoreError> {
        self.before_call("voter_ballots")?;
        self.inner.voter_ballots(election, voter).await
    }

    async fn live_tally(&self, election: &str) -> Result<LiveTally, StoreError> {
        self.before_call("live_tally")?;
        self.inner.live_tally(election).await
    }

    async fn scan(
        &self,
        election: &str,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<ScanPage, StoreError> {
        self.before_call("scan")?;
        self.inner.scan(election, cursor, limit).await
    }
}

/// The canary design's store of one region.
#[derive(Debug, Default)]
pub struct NaiveStore {
    state: Mutex<NaiveState>,
}

#[derive(Debug, Default)]
struct NaiveState {
    /// (election, voter) → the one ballot kept.
    items: BTreeMap<(String, String), StoredBallot>,
    /// Choice → voters this region counted when its conditional put succeeded.
    counted: BTreeMap<String, u64>,
    /// This region's own writes, for replication.
    log: Vec<StoredBallot>,
    /// Source region → how much of its log was applied here.
    cursors: BTreeMap<usize, usize>,
}

impl NaiveStore {
    fn state(&self) -> std::sync::MutexGuard<'_, NaiveState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl Store for NaiveStore {
    async fn record(
        &self,
        rules: &ElectionRules,
        _region: &str,
        ballots: Vec<StoredBallot>,
    ) -> Result<Vec<PutOutcome>, StoreError> {
        edgevote_store::check_record_batch(rules, &ballots)?;
        let mut state = self.state();
        let mut outcomes = Vec::with_capacity(ballots.len());
        for ballot in ballots {
            let key = (ballot.election.clone(), ballot.voter.clone());
            // The conditional put: succeeds only if this region has no item for the voter.
            if state.items.contains_key(&key) {
                outcomes.push(PutOutcome::Duplicate);
                continue;
            }
            *state.counted.entry(ballot.choice.clone()).or_insert(0) += 1;
            state.log.push(ballot.clone());
            state.items.insert(key, ballot);
            outcomes.push(PutOutcome::Stored);
        }
        Ok(outcomes)
    }

    async fn voter_ballots(
        &self,
        election: &str,
        voter: &str,
    ) -> Result<Vec<StoredBallot>, StoreError> {
        let key = (election.to_owned(), voter.to_owned());
        Ok(self.state().items.get(&key).cloned().into_iter().collect())
    }

    async fn live_tally(&self, _election: &str) -> Result<LiveTally, StoreError> {
        let counted = self.state().counted.clone();
        let counts = counted
            .into_iter()
            .map(|(c, n)| (c, i64::try_from(n).unwrap_or(i64::MAX)))
            .collect();
        Ok(LiveTally::from([("local".to_owned(), counts)]))
    }

    async fn scan(
        &self,
        election: &str,
        _cursor: Option<String>,
        _limit: usize,
    ) -> Result<ScanPage, StoreError> {
        let ballots = self
            .state()
            .items
            .values()
            .filter(|b| b.election == election)
            .cloned()
            .collect();
        Ok(ScanPage {
            ballots,
            next: None,
        })
    }
}

/// The stores of every region of a run, in one design.
pub enum Regions {
    /// edgevote's store and replication.
    Real(Vec<Replica>),
    /// The canary.
    Naive(Vec<Arc<NaiveStore>>),
}

impl Regions {
    /// One empty store per region name.
    pub fn new(design: Design, names: &[String]) -> Result<Self, StoreError> {
        Ok(match design {
            Design::Real => Regions::Real(
                names
                    .iter()
                    .map(|name| {
                        Ok(Replica {
                            region: name.clone(),
                            store: Arc::new(EmbeddedStore::in_memory()?),
                        })
                    })
                    .collect::<Result<_, StoreError>>()?,
            ),
            Design::NaiveConditionalPut => {
                Regions::Naive(names.iter().map(|_| Arc::default()).collect())
            }
        })
    }

    /// Region `i`'s store, as its collector sees it.
    pub fn store(&self, i: usize) -> Arc<dyn Store> {
        match self {
            Regions::Real(replicas) => Arc::clone(&replicas[i].store) as Arc<dyn Store>,
            Regions::Naive(stores) => Arc::clone(&stores[i]) as Arc<dyn Store>,
        }
    }

    /// Ships one round of `from`'s writes to `to`; returns how many ballots moved.
    pub async fn ship(&self, from: usize, to: usize) -> Result<usize, StoreError> {
        match self {
            Regions::Real(replicas) => {
                replication::ship_once(&replicas[from], &replicas[to], Duration::ZERO).await
            }
            Regions::Naive(stores) => {
                let page: Vec<StoredBallot> = {
                    let source = stores[from].state();
                    let start = stores[to].state().cursors.get(&from).copied().unwrap_or(0);
                    source.log[start.min(source.log.len())..].to_vec()
                };
                let mut target = stores[to].state();
                let shipped = page.len();
                for ballot in page {
                    // Last writer wins: the replicated item overwrites the local one.
                    let key = (ballot.election.clone(), ballot.voter.clone());
                    target.items.insert(key, ballot);
                }
                *target.cursors.entry(from).or_insert(0) += shipped;
                Ok(shipped)
            }
        }
    }

    /// True when every link has shipped everything.
    pub async fn converged(&self) -> Result<bool, StoreError> {
        match self {
            Regions::Real(replicas) => replication::converged(replicas).await,
            Regions::Naive(stores) => Ok(stores.iter().enumerate().all(|(from, source)| {
                let written = source.state().log.len();
                stores.iter().enumerate().all(|(to, target)| {
                    to == from || target.state().cursors.get(&from).copied().unwrap_or(0) >= written
                })
            })),
        }
    }

    /// Every ballot region `i` holds for `election`.
    pub async fn ballots(&self, i: usize, election: &str) -> Result<Vec<StoredBallot>, StoreError> {
        let store = self.store(i);
        let mut all = Vec::new();
        let mut cursor = None;
        // Bounded: a simulated election holds far fewer than 1000 pages.
        for _ in 0..1000 {
            let page = store
                .scan(election, cursor, edgevote_store::MAX_SCAN_PAGE)
                .await?;
            all.extend(page.ballots);
            match page.next {
                Some(next) => cursor = Some(next),
                None => return Ok(all),
            }
        }
        Err(StoreError::backend("scan", "more than 1000 pages"))
    }

    /// The result region `i` would publish: edgevote's final tally recomputed from the ballots;
    /// for the canary, the voters counted at each successful conditional put, in every region.
    pub async fn tally(
        &self,
        i: usize,
        rules: &ElectionRules,
    ) -> Result<BTreeMap<String, u64>, StoreError> {
        match self {
            Regions::Real(replicas) => {
                Ok(final_tally(replicas[i].store.as_ref(), rules).await?.counts)
            }
            Regions::Naive(stores) => {
                let mut total = BTreeMap::new();
                for store in stores {
                    for (choice, n) in &store.state().counted {
                        *total.entry(choice.clone()).or_insert(0) += n;
                    }
                }
                Ok(total)
            }
        }
    }
}

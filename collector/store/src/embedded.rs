//! The embedded store: one redb file per region.
//!
//! Tables:
//! - `ballots`: (election, voter, vote id) → ballot JSON. A voter's ballots are adjacent, so the
//!   counting rule reads them with one range scan;
//! - `live`: (election, region, choice) → provisional count.
//!
//! `record` runs in one write transaction (fsync on commit): the ballots and the live-tally
//! change they cause land together or not at all. Transactions are serial, so the per-voter
//! limit holds exactly in one region: a voter's ballots are read in the transaction that adds
//! to them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::Deserialize;

use crate::counting::{self, Candidate};
use crate::{
    ElectionRules, LiveTally, MAX_SCAN_PAGE, MAX_VOTER_BALLOTS, PutOutcome, ScanPage, Store,
    StoreError, StoredBallot,
};

type BallotKey<'a> = (&'a str, &'a str, &'a [u8]);
const BALLOTS: TableDefinition<BallotKey<'static>, &[u8]> = TableDefinition::new("ballots");
const LIVE: TableDefinition<(&str, &str, &str), i64> = TableDefinition::new("live");
/// Replication log: sequence → ballot JSON, for ballots written by this region's collector
/// (replicated ballots are not re-logged, as Global Tables replicate each region's own writes).
const CHANGES: TableDefinition<u64, &[u8]> = TableDefinition::new("changes");
/// Replication cursors: source region → last applied sequence of its change log.
const CURSORS: TableDefinition<&str, u64> = TableDefinition::new("cursors");

/// Configuration of an embedded store.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddedStoreConfig {
    /// The redb file.
    pub path: PathBuf,
}

/// The embedded store.
#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore").finish_non_exhaustive()
    }
}

macro_rules! db {
    ($stage:expr, $e:expr) => {
        $e.map_err(|e| StoreError::backend($stage, redb::Error::from(e)))
    };
}

fn decode(stage: &'static str, bytes: &[u8]) -> Result<StoredBallot, StoreError> {
    serde_json::from_slice(bytes)
        .map_err(|e| StoreError::backend(stage, format!("corrupt ballot: {e}")))
}

fn encode(ballot: &StoredBallot) -> Vec<u8> {
    serde_json::to_vec(ballot).expect("stored ballots always serialize")
}

/// The smallest key after every key of `voter` (vote ids are 32 bytes, so 33 bytes of 0xff sort
/// after all of them).
const PAST_ANY_VOTE_ID: &[u8] = &[0xff; 33];

impl EmbeddedStore {
    /// Opens (or creates) the store file.
    pub fn open(config: &EmbeddedStoreConfig) -> Result<Self, StoreError> {
        if let Some(dir) = config.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::backend("open", format!("{}: {e}", dir.display())))?;
        }
        Self::init(db!("open", Database::create(&config.path))?)
    }

    /// A store held in memory only (simulations and tests; nothing survives the process).
    pub fn in_memory() -> Result<Self, StoreError> {
        let backend = redb::backends::InMemoryBackend::new();
        Self::init(db!(
            "open",
            Database::builder().create_with_backend(backend)
        )?)
    }

    fn init(db: Database) -> Result<Self, StoreError> {
        let txn = db!("open", db.begin_write())?;
        {
            db!("open", txn.open_table(BALLOTS))?;
            db!("open", txn.open_table(LIVE))?;
            db!("open", txn.open_table(CHANGES))?;
            db!("open", txn.open_table(CURSORS))?;
        }
        db!("open", txn.commit())?;
        Ok(EmbeddedStore { db: Arc::new(db) })
    }

    async fn blocking<T: Send + 'static>(
        &self,
        stage: &'static str,
        work: impl FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || work(&db))
            .await
            .map_err(|e| StoreError::backend(stage, e))?
    }

    fn record_blocking(
        db: &Database,
        rules: &ElectionRules,
        region: &str,
        ballots: &[StoredBallot],
    ) -> Result<Vec<PutOutcome>, StoreError> {
        let txn = db!("record", db.begin_write())?;
        let mut outcomes = Vec::with_capacity(ballots.len());
        let limit = rules.voter_limit();
        {
            let mut table = db!("record", txn.open_table(BALLOTS))?;
            let mut changes = db!("record", txn.open_table(CHANGES))?;
            let mut next_change = db!("record", changes.last())?.map_or(0, |(k, _)| k.value() + 1);
            let mut voters: BTreeMap<&str, VoterState> = BTreeMap::new();
            for ballot in ballots {
                let voter = ballot.voter.as_str();
                if !voters.contains_key(voter) {
                    let read = voter_ballots_in(&table, &rules.id, voter)?;
                    voters.insert(voter, VoterState::new(rules, read));
                }
                let Some(state) = voters.get_mut(voter) else {
                    continue; // inserted just above
                };
                let key = (rules.id.as_str(), voter, &ballot.vote_id.0[..]);
                let existing = db!("record", table.get(key))?
                    .map(|v| decode("record", v.value()))
                    .transpose()?;
                if let Some(existing) = existing {
                    // A copy of a vote the voter has: never over the limit.
                    outcomes.push(PutOutcome::Duplicate);
                    if !counting::replaces_copy(ballot, &existing) {
                        continue;
                    }
                    // A copy of this vote accepted earlier elsewhere (a retry through another
                    // edge): keep the earliest copy, as every replica will.
                    let encoded = encode(ballot);
                    db!("record", table.insert(key, encoded.as_slice()))?;
                    db!("record", changes.insert(next_change, encoded.as_slice()))?;
                    next_change += 1;
                    state.rescan = true;
                    continue;
                }
                if state.held >= limit {
                    outcomes.push(PutOutcome::OverLimit);
                    continue;
                }
                let encoded = encode(ballot);
                db!("record", table.insert(key, encoded.as_slice()))?;
                db!("record", changes.insert(next_change, encoded.as_slice()))?;
                next_change += 1;
                state.held += 1;
                outcomes.push(PutOutcome::Stored);
                let candidate = Candidate::of(ballot);
                if let Some((_, after)) = state.counted.as_mut()
                    && after
                        .as_ref()
                        .is_none_or(|a| counting::beats(rules.policy, &candidate, a))
                {
                    *after = Some(candidate);
                }
            }
            let mut delta = BTreeMap::new();
            for (voter, state) in &voters {
                let Some((before, after)) = &state.counted else {
                    tracing::warn!(election = %rules.id, voter, held_at_least = MAX_VOTER_BALLOTS, "voter holds too many ballots to recount; live tally left as it is");
                    continue;
                };
                if state.rescan {
                    // A replaced copy moved a candidate's timestamp, which the incremental update
                    // above does not follow: recount the voter from their ballots.
                    let read = voter_ballots_in(&table, &rules.id, voter)?;
                    let after = read
                        .complete
                        .then(|| counting::counted(rules.policy, &read.ballots));
                    if let Some(after) = after {
                        counting::apply_change(&mut delta, before.as_ref(), after.as_ref());
                    }
                    continue;
                }
                counting::apply_change(&mut delta, before.as_ref(), after.as_ref());
            }
            let mut live = db!("record", txn.open_table(LIVE))?;
            for (choice, change) in delta.into_iter().filter(|(_, d)| *d != 0) {
                let key = (rules.id.as_str(), region, choice.as_str());
                let current = db!("record", live.get(key))?.map_or(0, |v| v.value());
                db!("record", live.insert(key, current + change))?;
            }
        }
        db!("record", txn.commit())?;
        Ok(outcomes)
    }
}

/// What `record` knows of one voter of its batch.
struct VoterState {
    /// Ballots the voter has in this store (at least this many when the read was cut short).
    held: usize,
    /// The voter's counted ballot before the batch and after the ballots stored so far; `None`
    /// when the voter holds more than [`MAX_VOTER_BALLOTS`] (not recounted).
    counted: Option<(Option<Candidate>, Option<Candidate>)>,
    /// A copy was replaced: recount from the ballots at the end.
    rescan: bool,
}

impl VoterState {
    fn new(rules: &ElectionRules, read: VoterRead) -> Self {
        let counted = read.complete.then(|| {
            let before = counting::counted(rules.policy, &read.ballots);
            (before.clone(), before)
        });
        VoterState {
            held: read.ballots.len(),
            counted,
            rescan: false,
        }
    }
}

/// A page of this store's change log, for replication to other regions.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChangePage {
    /// Ballots written here, in write order.
    pub ballots: Vec<StoredBallot>,
    /// The sequence number after the last one returned (pass it back as `after`).
    pub next: u64,
}

impl EmbeddedStore {
    /// Up to `limit` ballots from the change log starting at sequence `from`.
    pub async fn changes_since(&self, from: u64, limit: usize) -> Result<ChangePage, StoreError> {
        let limit = limit.clamp(1, MAX_SCAN_PAGE);
        self.blocking("changes", move |db| {
            let txn = db!("changes", db.begin_read())?;
            let changes = db!("changes", txn.open_table(CHANGES))?;
            let mut page = ChangePage {
                ballots: Vec::new(),
                next: from,
            };
            for entry in db!("changes", changes.range(from..))?.take(limit) {
                let (seq, value) = db!("changes", entry)?;
                page.ballots.push(decode("changes", value.value())?);
                page.next = seq.value() + 1;
            }
            Ok(page)
        })
        .await
    }

    /// Applies ballots replicated from `source` and records `next` as that source's cursor, in
    /// one transaction. Two copies of one vote (the same vote accepted twice, by different edges,
    /// after a retry) are merged by [`counting::replaces_copy`]: the earliest copy stays, so
    /// replicas converge whatever order copies arrive in. Returns how many votes were new.
    pub async fn apply_replica(
        &self,
        source: &str,
        ballots: Vec<StoredBallot>,
        next: u64,
    ) -> Result<usize, StoreError> {
        let source = source.to_owned();
        self.blocking("replicate", move |db| {
            let txn = db!("replicate", db.begin_write())?;
            let mut added = 0;
            {
                let mut table = db!("replicate", txn.open_table(BALLOTS))?;
                for ballot in &ballots {
                    let key = (
                        ballot.election.as_str(),
                        ballot.voter.as_str(),
                        &ballot.vote_id.0[..],
                    );
                    let existing = db!("replicate", table.get(key))?
                        .map(|v| decode("replicate", v.value()))
                        .transpose()?;
                    match existing {
                        None => added += 1,
                        Some(existing) if counting::replaces_copy(ballot, &existing) => {}
                        Some(_) => continue,
                    }
                    db!("replicate", table.insert(key, encode(ballot).as_slice()))?;
                }
                let mut cursors = db!("replicate", txn.open_table(CURSORS))?;
                db!("replicate", cursors.insert(source.as_str(), next))?;
            }
            db!("replicate", txn.commit())?;
            Ok(added)
        })
        .await
    }

    /// The replication cursor of `source` (0 before the first apply).
    pub async fn cursor(&self, source: &str) -> Result<u64, StoreError> {
        let source = source.to_owned();
        self.blocking("cursor", move |db| {
            let txn = db!("cursor", db.begin_read())?;
            let cursors = db!("cursor", txn.open_table(CURSORS))?;
            Ok(db!("cursor", cursors.get(source.as_str()))?.map_or(0, |v| v.value()))
        })
        .await
    }

    /// Length of this store's change log.
    pub async fn change_count(&self) -> Result<u64, StoreError> {
        self.blocking("changes", |db| {
            let txn = db!("changes", db.begin_read())?;
            let changes = db!("changes", txn.open_table(CHANGES))?;
            Ok(db!("changes", changes.last())?.map_or(0, |(k, _)| k.value() + 1))
        })
        .await
    }
}

/// A voter's ballots, read up to a bound.
struct VoterRead {
    /// The first [`MAX_VOTER_BALLOTS`] at most, in vote id order.
    ballots: Vec<StoredBallot>,
    /// False when the voter holds more than that.
    complete: bool,
}

/// Reads at most [`MAX_VOTER_BALLOTS`] (+1, to know whether there are more) of a voter's ballots.
fn voter_ballots_in(
    table: &impl ReadableTable<BallotKey<'static>, &'static [u8]>,
    election: &str,
    voter: &str,
) -> Result<VoterRead, StoreError> {
    let range = db!(
        "voter_ballots",
        table.range((election, voter, &[][..])..(election, voter, PAST_ANY_VOTE_ID))
    )?;
    let mut ballots = Vec::new();
    for entry in range.take(MAX_VOTER_BALLOTS + 1) {
        let (_, value) = db!("voter_ballots", entry)?;
        ballots.push(decode("voter_ballots", value.value())?);
    }
    let complete = ballots.len() <= MAX_VOTER_BALLOTS;
    ballots.truncate(MAX_VOTER_BALLOTS);
    Ok(VoterRead { ballots, complete })
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn record(
        &self,
        rules: &ElectionRules,
        region: &str,
        ballots: Vec<StoredBallot>,
    ) -> Result<Vec<PutOutcome>, StoreError> {
        crate::check_record_batch(rules, &ballots)?;
        let rules = rules.clone();
        let region = region.to_owned();
        self.blocking("record", move |db| {
            Self::record_blocking(db, &rules, &region, &ballots)
        })
        .await
    }

    async fn voter_ballots(
        &self,
        election: &str,
        voter: &str,
    ) -> Result<Vec<StoredBallot>, StoreError> {
        let (election, voter) = (election.to_owned(), voter.to_owned());
        self.blocking("voter_ballots", move |db| {
            let txn = db!("voter_ballots", db.begin_read())?;
            let table = db!("voter_ballots", txn.open_table(BALLOTS))?;
            Ok(voter_ballots_in(&table, &election, &voter)?.ballots)
        })
        .await
    }

    async fn live_tally(&self, election: &str) -> Result<LiveTally, StoreError> {
        let election = election.to_owned();
        self.blocking("live_tally", move |db| {
            let txn = db!("live_tally", db.begin_read())?;
            let table = db!("live_tally", txn.open_table(LIVE))?;
            let mut tally = LiveTally::new();
            let range = db!(
                "live_tally",
                table.range(
                    (election.as_str(), "", "")..=(election.as_str(), "\u{10ffff}", "\u{10ffff}")
                )
            )?;
            for entry in range.take(100_000) {
                let (key, value) = db!("live_tally", entry)?;
                let (_, region, choice) = key.value();
                tally
                    .entry(region.to_owned())
                    .or_default()
                    .insert(choice.to_owned(), value.value());
            }
            Ok(tally)
        })
        .await
    }

    async fn scan(
        &self,
        election: &str,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<ScanPage, StoreError> {
        let limit = limit.clamp(1, MAX_SCAN_PAGE);
        let election = election.to_owned();
        self.blocking("scan", move |db| {
            let txn = db!("scan", db.begin_read())?;
            let table = db!("scan", txn.open_table(BALLOTS))?;
            // The cursor is the last (voter, vote id) returned, as "voter/base64url(vote id)".
            let start = match &cursor {
                Some(c) => parse_cursor(c)?,
                None => (String::new(), Vec::new()),
            };
            let range = db!(
                "scan",
                table.range(
                    (election.as_str(), start.0.as_str(), start.1.as_slice())
                        ..(election.as_str(), "\u{10ffff}", &[][..])
                )
            )?;
            let mut page = ScanPage::default();
            for entry in range {
                let (key, value) = db!("scan", entry)?;
                let (_, voter, vote_id) = key.value();
                if cursor.is_some() && voter == start.0 && vote_id == start.1.as_slice() {
                    continue; // the cursor row itself was on the previous page
                }
                if page.ballots.len() == limit {
                    let last = page.ballots.last().map(cursor_of);
                    page.next = last;
                    break;
                }
                page.ballots.push(decode("scan", value.value())?);
            }
            Ok(page)
        })
        .await
    }
}

fn cursor_of(ballot: &StoredBallot) -> String {
    format!("{}/{}", ballot.voter, ballot.vote_id.to_b64())
}

fn parse_cursor(cursor: &str) -> Result<(String, Vec<u8>), StoreError> {
    let invalid = || StoreError::Invalid {
        stage: "scan",
        detail: format!("malformed cursor {cursor:?}"),
    };
    let (voter, id) = cursor.rsplit_once('/').ok_or_else(invalid)?;
    let id = edgevote_shared::b64::decode("cursor", id).map_err(|_| invalid())?;
    Ok((voter.to_owned(), id))
}

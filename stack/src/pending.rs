//! What of an election is not yet in every region's store: the check `audit publish` makes
//! before it signs a tally, so that a published tally is the election's result and not a
//! snapshot with votes still in flight. An embedded stack is read once stopped (its files are in
//! use while it runs); an AWS-backed one while `up` runs (a moto server's state lives in it).
//!
//! Pending are: messages still in a region's queue (visible or in flight: sent, not yet
//! stored), votes of the election in a dead-letter queue (refused by a collector: they need an
//! operator's look before the result is final), messages in an edge's spill log (acknowledged,
//! not yet forwarded; on AWS read from the running edge's counters), and regions whose stores
//! hold different ballots (replication has not converged). Nothing is received, moved or
//! deleted.

use std::path::Path;

use edgevote_queue::Queue;
use edgevote_queue::embedded::{EmbeddedQueue, EmbeddedQueueConfig};
use edgevote_shared::message;
use edgevote_store::BallotSet;

use crate::info::RegionInfo;
use crate::{BoxError, StackError, StackInfo};

/// Most dead letters read per region (each is at most a queue message).
const MAX_DEAD_LETTERS: usize = 10_000;

/// One thing still pending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingItem {
    /// The region it is in.
    pub region: String,
    /// What it is, for people: "3 messages in the queue", ...
    pub what: String,
}

impl std::fmt::Display for PendingItem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.region, self.what)
    }
}

/// Everything pending for `election` in the stopped stack `info`, whose data directory is
/// `data_dir` (empty: every vote is in every region's store).
pub async fn pending(
    data_dir: &Path,
    info: &StackInfo,
    election: &str,
) -> Result<Vec<PendingItem>, StackError> {
    let mut items = Vec::new();
    let mut sets = Vec::new();
    for region in &info.regions {
        let found = region_pending(data_dir, info, region, election)
            .await
            .map_err(|source| StackError::ReadRegion {
                region: region.name.clone(),
                source,
            })?;
        items.extend(found.pending.into_iter().map(|what| PendingItem {
            region: region.name.clone(),
            what,
        }));
        sets.push((region.name.clone(), found.ballots));
    }
    items.extend(divergence(&sets));
    Ok(items)
}

/// What one region holds: pending items and its stored ballots.
struct RegionState {
    pending: Vec<String>,
    ballots: BallotSet,
}

async fn region_pending(
    data_dir: &Path,
    info: &StackInfo,
    region: &RegionInfo,
    election: &str,
) -> Result<RegionState, BoxError> {
    let mut pending = Vec::new();
    let dir = data_dir.join(&region.name);
    let queue: Option<Box<dyn Queue>> = match &info.aws {
        Some(aws) => Some(Box::new(
            edgevote_aws::SqsQueue::connect(&aws.region(&region.name)?.queue).await,
        )),
        // A queue that was never created holds nothing.
        None => open_queue(&dir.join("queue.redb"))?.map(|q| Box::new(q) as Box<dyn Queue>),
    };
    if let Some(queue) = queue {
        pending.extend(queue_pending(queue.as_ref(), election).await?);
    }
    let (spilled, unit) = match &info.aws {
        Some(_) => (unforwarded_votes(&region.edge_url).await?, "votes"),
        None => match open_queue(&dir.join("spill.redb"))? {
            Some(spill) => {
                let stats = spill.stats().await?;
                (stats.visible + stats.in_flight, "messages")
            }
            None => (0, "messages"),
        },
    };
    if spilled > 0 {
        pending.push(format!(
            "{spilled} {unit} in the edge's spill log, not yet forwarded"
        ));
    }
    let store = crate::backend::region_store(data_dir, info, &region.name).await?;
    let ballots = BallotSet::of(store.as_ref(), election).await?;
    Ok(RegionState { pending, ballots })
}

/// Messages of a region's queue not yet stored, and votes of `election` it dead-lettered.
async fn queue_pending(queue: &dyn Queue, election: &str) -> Result<Vec<String>, BoxError> {
    let mut pending = Vec::new();
    let stats = queue.stats().await?;
    let queued = stats.visible + stats.in_flight;
    if queued > 0 {
        pending.push(format!("{queued} messages in the queue, not yet stored"));
    }
    let dead = queue.peek_dead_letters(MAX_DEAD_LETTERS).await?;
    let votes: usize = dead.iter().map(|d| votes_of(&d.body, election)).sum();
    if votes > 0 {
        pending.push(format!(
            "{votes} votes of {election} in the dead-letter queue (see docs/runbooks/alerts.md)"
        ));
    }
    Ok(pending)
}

/// Votes a running edge spilled and has not yet forwarded, from its counters
/// (`edgevote_edge_votes_spilled_total` − `edgevote_edge_votes_forwarded_total`).
async fn unforwarded_votes(edge_url: &str) -> Result<u64, BoxError> {
    let mut conn = crate::client::Conn::connect(edge_url).await?;
    let (status, body) = conn.get("/metrics", None).await?;
    if status != 200 {
        return Err(format!("{edge_url}/metrics answered {status}").into());
    }
    let text = String::from_utf8_lossy(&body);
    let counter = |name: &str| -> Result<u64, BoxError> {
        text.lines()
            .find_map(|line| {
                // `name{labels} value` or `name value`; not a longer name with this prefix.
                let rest = line.strip_prefix(name)?;
                let labelled_or_bare = rest.starts_with('{') || rest.starts_with(' ');
                let value = rest.rsplit(' ').next()?;
                labelled_or_bare
                    .then(|| value.parse::<f64>().ok())
                    .flatten()
            })
            .map(|v| v as u64)
            .ok_or_else(|| format!("{edge_url}/metrics has no {name}").into())
    };
    let spilled = counter("edgevote_edge_votes_spilled_total")?;
    let forwarded = counter("edgevote_edge_votes_forwarded_total")?;
    Ok(spilled.saturating_sub(forwarded))
}

/// The embedded queue at `path`, if there is one.
fn open_queue(path: &Path) -> Result<Option<EmbeddedQueue>, BoxError> {
    if !path.is_file() {
        return Ok(None);
    }
    let config = EmbeddedQueueConfig {
        path: path.to_owned(),
        max_receives: u32::MAX / 2,
    };
    let queue = EmbeddedQueue::open(&config).map_err(|e| {
        format!(
            "opening {} (stop edgevote up first: its files are in use while it runs): {e}",
            path.display()
        )
    })?;
    Ok(Some(queue))
}

/// Votes of `election` in a queue message's envelopes (read, not verified: a dead letter may be
/// forged, and a forged one naming the election still deserves a look).
fn votes_of(body: &str, election: &str) -> usize {
    let Ok(lines) = message::split(body) else {
        return 0;
    };
    lines
        .iter()
        .filter_map(|line| {
            edgevote_shared::decode_unverified::<edgevote_shared::QueueEnvelope>(line).ok()
        })
        .map(|envelope| {
            let ours = envelope.votes.iter();
            ours.filter(|vote| vote.ballot.election == election).count()
        })
        .sum()
}

/// One item per region whose ballots differ from the first region's.
fn divergence(sets: &[(String, BallotSet)]) -> Vec<PendingItem> {
    let Some((first, reference)) = sets.first() else {
        return Vec::new();
    };
    sets.iter()
        .skip(1)
        .filter(|(_, set)| set != reference)
        .map(|(region, set)| PendingItem {
            region: region.clone(),
            what: format!(
                "holds {} ballots, {first} holds {}, or other ones: replication has not converged",
                set.ballots, reference.ballots
            ),
        })
        .collect()
}

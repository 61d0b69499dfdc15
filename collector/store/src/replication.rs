//! Asynchronous multi-region replication between embedded stores, modelled on DynamoDB Global
//! Tables: every region's own writes are shipped to every other region after a delay, and an
//! item that already exists is resolved by last-writer-wins. Ballots are immutable, so every
//! conflict is between identical items and nothing is lost; regions converge once the change
//! logs are drained.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::StoreError;
use crate::embedded::EmbeddedStore;

/// Most ballots shipped per round and link.
const BATCH: usize = 2000;
/// Pause when a link has nothing to ship.
const IDLE: Duration = Duration::from_millis(100);

/// One region's store.
#[derive(Clone)]
pub struct Replica {
    /// Region name.
    pub region: String,
    /// Its store.
    pub store: Arc<EmbeddedStore>,
}

/// Ships one round from `from` to `to`, waiting `delay` before applying (the replication lag).
/// Returns how many ballots were shipped.
pub async fn ship_once(from: &Replica, to: &Replica, delay: Duration) -> Result<usize, StoreError> {
    let cursor = to.store.cursor(&from.region).await?;
    let page = from.store.changes_since(cursor, BATCH).await?;
    if page.ballots.is_empty() {
        return Ok(0);
    }
    tokio::time::sleep(delay).await;
    let shipped = page.ballots.len();
    to.store
        .apply_replica(&from.region, page.ballots, page.next)
        .await?;
    Ok(shipped)
}

/// How far behind each link is, for the `edgevote_store_replication_lag_seconds` metric: a
/// link's lag is how long it has had unshipped ballots (0 when caught up), like DynamoDB Global
/// Tables' ReplicationLatency.
#[derive(Debug, Default)]
pub struct ReplicationStatus {
    /// (source, target) → since when (unix ms) the target has been behind the source.
    behind_since_ms: Mutex<BTreeMap<(String, String), Option<u64>>>,
}

impl ReplicationStatus {
    /// Records whether `to` is behind `from` at `now_ms`.
    pub fn record(&self, from: &str, to: &str, behind: bool, now_ms: u64) {
        let mut links = self
            .behind_since_ms
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let since = links.entry((from.to_owned(), to.to_owned())).or_default();
        *since = match (behind, *since) {
            (false, _) => None,
            (true, Some(t)) => Some(t),
            (true, None) => Some(now_ms),
        };
    }

    /// The lag of every link into `to`, in seconds, by source region.
    pub fn lag_into(&self, to: &str, now_ms: u64) -> Vec<(String, f64)> {
        let links = self
            .behind_since_ms
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        links
            .iter()
            .filter(|((_, target), _)| target == to)
            .map(|((source, _), since)| {
                let lag_ms = since.map_or(0, |t| now_ms.saturating_sub(t));
                (source.clone(), lag_ms as f64 / 1000.0)
            })
            .collect()
    }
}

/// True when `to` has not applied everything `from` wrote.
async fn behind(from: &Replica, to: &Replica) -> Result<bool, StoreError> {
    Ok(to.store.cursor(&from.region).await? < from.store.change_count().await?)
}

fn now_ms() -> u64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

/// Replicates every region to every other until `stop` is set, keeping `status` current.
pub async fn run(
    replicas: Vec<Replica>,
    delay: Duration,
    status: Arc<ReplicationStatus>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut links = tokio::task::JoinSet::new();
    for from in &replicas {
        for to in replicas.iter().filter(|r| r.region != from.region) {
            let (from, to, mut stop) = (from.clone(), to.clone(), stop.clone());
            let status = Arc::clone(&status);
            links.spawn(async move {
                while !*stop.borrow() {
                    if let Ok(behind) = behind(&from, &to).await {
                        status.record(&from.region, &to.region, behind, now_ms());
                    }
                    match ship_once(&from, &to, delay).await {
                        Ok(0) => {
                            tokio::select! {
                                _ = tokio::time::sleep(IDLE) => {}
                                _ = stop.changed() => {}
                            }
                        }
                        Ok(_) => {}
                        Err(e) => {
                            tracing::warn!(from = %from.region, to = %to.region, error = %e, "replication round failed");
                            tokio::time::sleep(IDLE).await;
                        }
                    }
                }
            });
        }
    }
    while links.join_next().await.is_some() {}
}

/// True when every link has shipped everything its source has written.
pub async fn converged(replicas: &[Replica]) -> Result<bool, StoreError> {
    for from in replicas {
        let written = from.store.change_count().await?;
        for to in replicas.iter().filter(|r| r.region != from.region) {
            if to.store.cursor(&from.region).await? < written {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

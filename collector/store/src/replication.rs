//! Asynchronous multi-region replication between embedded stores, modelled on DynamoDB Global
//! Tables: every region's own writes are shipped to every other region after a delay, and an
//! item that already exists is resolved by last-writer-wins. Ballots are immutable, so every
//! conflict is between identical items and nothing is lost; regions converge once the change
//! logs are drained.

use std::sync::Arc;
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

/// Replicates every region to every other until `stop` is set.
pub async fn run(
    replicas: Vec<Replica>,
    delay: Duration,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut links = tokio::task::JoinSet::new();
    for from in &replicas {
        for to in replicas.iter().filter(|r| r.region != from.region) {
            let (from, to, mut stop) = (from.clone(), to.clone(), stop.clone());
            links.spawn(async move {
                while !*stop.borrow() {
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

//! Global Tables replication (eventual mode) between per-region DynamoDB tables on a server
//! that has none (moto, DynamoDB Local): the local stack's `up --backend aws`.
//!
//! Each round reads every item of each region's table (Scan) and ships to every other region
//! the items that changed since they were last shipped, after the replication delay:
//! - a ballot is put with the ballot put's own condition ([`super::KEEP_EARLIEST_COPY`]): a
//!   replica keeps the earliest copy of a vote, so every region ends with the same copy;
//! - a counter item is shipped only from the region that writes it (its sort key) and
//!   overwrites the replica's.
//!
//! Those are the outcomes last-writer-wins reaches for this table's items (every ballot conflict
//! is between copies of one vote; every counter item has one writing region). Claim items
//! exist only under strong consistency, which is one shared table and needs no replicator.
//!
//! Memory: one fingerprint per shipped item and link. For the local stack only; a real Global
//! Table replicates itself.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use edgevote_shared::Digest32;
use edgevote_store::StoreError;

use super::SdkDynamo;
use super::item::{PK, SK};

/// Most items read per Scan page.
const SCAN_PAGE_ITEMS: i32 = 1_000;
/// Most Scan pages per round and region (10 million items): bounds a round.
const MAX_SCAN_PAGES: usize = 10_000;
/// Pause between rounds.
const ROUND_PAUSE: Duration = Duration::from_millis(250);

type Item = HashMap<String, AttributeValue>;

/// One region's table.
#[derive(Debug, Clone)]
pub struct RegionTable {
    /// Region name.
    pub region: String,
    /// Its table.
    pub table: SdkDynamo,
}

/// What one link has shipped: item key → fingerprint of the version shipped.
type Shipped = HashMap<(String, String), Digest32>;

/// Replicates every region's table to every other until `stop` is set. Returns the number of
/// items shipped.
pub async fn run(
    regions: Vec<RegionTable>,
    delay: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> u64 {
    let mut shipped: HashMap<(String, String), Shipped> = HashMap::new();
    let mut total = 0u64;
    while !*stop.borrow() {
        match round(&regions, delay, &mut shipped).await {
            Ok(n) => total += n,
            Err(e) => tracing::warn!(error = %e, "replication round failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(ROUND_PAUSE) => {}
            _ = stop.changed() => {}
        }
    }
    total
}

/// Ships what changed, every region to every other, once. Returns the items shipped.
///
/// An item every other region now holds (shipped and applied, or shipped before) is marked as
/// known on every link between those regions too, so it is not echoed back to where it came
/// from.
pub async fn round(
    regions: &[RegionTable],
    delay: Duration,
    shipped: &mut HashMap<(String, String), Shipped>,
) -> Result<u64, StoreError> {
    let mut total = 0;
    for from in regions {
        let items: Vec<_> = scan_all(&from.table)
            .await?
            .into_iter()
            .filter_map(|item| replicable(item, &from.region))
            .collect();
        // Key → true while every other region holds this version.
        let mut everywhere: HashMap<&(String, String), bool> =
            items.iter().map(|(_, key, _)| (key, true)).collect();
        let mut slept = false;
        for to in regions.iter().filter(|r| r.region != from.region) {
            let link = shipped
                .entry((from.region.clone(), to.region.clone()))
                .or_default();
            for (item, key, print) in &items {
                if link.get(key) == Some(print) {
                    continue;
                }
                if !std::mem::replace(&mut slept, true) {
                    tokio::time::sleep(delay).await;
                }
                let applied = apply(&to.table, item).await?;
                link.insert(key.clone(), *print);
                total += 1;
                if !applied {
                    everywhere.insert(key, false);
                }
            }
        }
        for (_, key, print) in items.iter().filter(|(_, key, _)| everywhere[key]) {
            for a in regions.iter().filter(|r| r.region != from.region) {
                for b in regions.iter().filter(|r| r.region != a.region) {
                    shipped
                        .entry((a.region.clone(), b.region.clone()))
                        .or_default()
                        .insert(key.clone(), *print);
                }
            }
        }
    }
    Ok(total)
}

/// The item's key and fingerprint when `from` replicates it: ballots, and `from`'s own counters.
fn replicable(item: Item, from: &str) -> Option<(Item, (String, String), Digest32)> {
    let pk = item.get(PK)?.as_s().ok()?.clone();
    let sk = item.get(SK)?.as_s().ok()?.clone();
    let ours = pk.starts_with("ballot#") || (pk.starts_with("tally#") && sk == from);
    let print = fingerprint(&item);
    ours.then_some((item, (pk, sk), print))
}

fn fingerprint(item: &Item) -> Digest32 {
    let mut attributes: Vec<String> = item.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    attributes.sort();
    Digest32::of(attributes.join("\n").as_bytes())
}

async fn scan_all(table: &SdkDynamo) -> Result<Vec<Item>, StoreError> {
    let mut items = Vec::new();
    let mut start = None;
    for _ in 0..MAX_SCAN_PAGES {
        let (page, next) = table.scan_items(start, SCAN_PAGE_ITEMS).await?;
        items.extend(page);
        match next {
            Some(next) => start = Some(next),
            None => return Ok(items),
        }
    }
    Err(StoreError::invalid(
        "replicate",
        format!("table holds more than {MAX_SCAN_PAGES} scan pages"),
    ))
}

/// Writes `item` into `to`; false when `to` kept an earlier copy of the ballot instead.
async fn apply(to: &SdkDynamo, item: &Item) -> Result<bool, StoreError> {
    let is_ballot = item
        .get(PK)
        .and_then(|v| v.as_s().ok())
        .is_some_and(|pk| pk.starts_with("ballot#"));
    if is_ballot {
        to.put_replica_ballot(item.clone()).await
    } else {
        to.put_replica_item(item.clone()).await?;
        Ok(true)
    }
}

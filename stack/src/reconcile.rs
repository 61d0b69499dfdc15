//! Every receipt against every region. For each region: each receipt's vote is stored there
//! (the public per-receipt lookup, `/v1/elections/{e}/votes/{vote_id}?voter={voter}`), and the
//! tally of the region's counted ballots (each voter's counted vote id from the voter listing,
//! `/v1/elections/{e}/voters/{voter}/ballots`, with the stack's auditor token) is the one the
//! election's counting rule gives over the receipts.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use edgevote_shared::{Digest32, ElectionManifest, KeySet, Receipt, verify};
use edgevote_store::counting::{self, Candidate};

use crate::StackError;
use crate::client::Conn;
use crate::info::StackInfo;
use crate::load::KeptReceipt;

/// What the receipts say every region must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// The tally by the election's counting rule over the receipts.
    pub counts: BTreeMap<String, u64>,
    /// Distinct voters among the receipts.
    pub voters: usize,
    /// Distinct ballots (vote ids) among the receipts.
    pub ballots: usize,
    /// Receipts whose signature does not verify against the key set.
    pub invalid: usize,
}

/// What the receipts say the final result must be, by the election's counting rule, and how
/// many of them do not verify against `keys` (the key set as published now: a key rotated in
/// during a load signed some receipts).
pub fn expected(manifest: &ElectionManifest, keys: &KeySet, kept: &[KeptReceipt]) -> Expected {
    let invalid = kept
        .iter()
        .filter(|k| verify::<Receipt>(&k.compact, keys).is_err())
        .count();
    // A retried ballot can hold two receipts (two acceptances); the store keeps its earliest
    // acceptance, so the rule sees that one.
    let mut earliest: BTreeMap<Digest32, &KeptReceipt> = BTreeMap::new();
    for k in kept {
        let entry = earliest.entry(k.receipt.vote_id).or_insert(k);
        if k.receipt.received_at_ms < entry.receipt.received_at_ms {
            *entry = k;
        }
    }
    let mut counted = counting::CountedBallots::default();
    for k in earliest.values() {
        let candidate = Candidate {
            received_at_ms: k.receipt.received_at_ms,
            vote_id: k.receipt.vote_id,
            choice: k.choice.clone(),
        };
        counted.offer(manifest.policy, &k.voter, candidate);
    }
    Expected {
        counts: counted.counts(),
        voters: counted.voters() as usize,
        ballots: earliest.len(),
        invalid,
    }
}

/// How long to wait for the regions to settle.
#[derive(Debug, Clone, Copy)]
pub struct ReconcileOptions {
    /// Longest wait for every region (in total) to store every receipt's vote and count every
    /// voter.
    pub settle_timeout: Duration,
    /// Pause between two looks at a region that has not settled.
    pub poll_interval: Duration,
}

impl Default for ReconcileOptions {
    fn default() -> Self {
        ReconcileOptions {
            settle_timeout: Duration::from_secs(120),
            poll_interval: Duration::from_millis(500),
        }
    }
}

/// One region's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionReport {
    /// Region name.
    pub region: String,
    /// Distinct receipts whose vote the region stores.
    pub stored: usize,
    /// Receipts whose vote the region does not store (voter, vote id), in order.
    pub not_stored: Vec<(String, String)>,
    /// Voters the region counts a receipt's ballot for.
    pub counted: u64,
    /// The region's tally over the receipts' ballots it counts.
    pub tally: BTreeMap<String, u64>,
    /// Every receipt stored, every voter counted, and the tally is the expected one.
    pub ok: bool,
}

/// The whole reconciliation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconciliation {
    /// Every region's verdict, in the stack's order.
    pub regions: Vec<RegionReport>,
    /// Every region is OK and every receipt verifies.
    pub ok: bool,
}

/// Checks `kept` against every region of `stack`, waiting (up to `options.settle_timeout` in
/// all) for replication; `on_region` gets each region's verdict as it is reached. Without the
/// right auditor token the reconciliation fails instead of guessing.
pub async fn reconcile(
    stack: &StackInfo,
    election: &str,
    kept: &[KeptReceipt],
    expected: &Expected,
    auditor_token: &str,
    options: ReconcileOptions,
    mut on_region: impl FnMut(&RegionReport),
) -> Result<Reconciliation, StackError> {
    // Every distinct (voter, vote id) a receipt names; the voter is the store's partition key.
    let receipts: BTreeSet<(&str, String)> = kept
        .iter()
        .map(|k| (k.voter.as_str(), k.receipt.vote_id.to_b64()))
        .collect();
    let voter_list: BTreeSet<&str> = kept.iter().map(|k| k.voter.as_str()).collect();
    let choice_of: HashMap<String, &str> = kept
        .iter()
        .map(|k| (k.receipt.vote_id.to_b64(), k.choice.as_str()))
        .collect();
    let voters = expected.voters as u64;
    let deadline = Instant::now() + options.settle_timeout;
    let mut reports = Vec::with_capacity(stack.regions.len());
    for region in &stack.regions {
        let mut client = Client::connect(&region.collector_url).await?;
        // Receipts not yet found stored in this region (a stored ballot is never removed).
        let mut pending = receipts.clone();
        let tally = loop {
            client.keep_unstored(election, &mut pending).await?;
            if pending.is_empty() || Instant::now() >= deadline {
                let tally = client
                    .counted_tally(election, auditor_token, &voter_list, &choice_of)
                    .await?;
                if tally.values().sum::<u64>() == voters || Instant::now() >= deadline {
                    break tally;
                }
            }
            tokio::time::sleep(options.poll_interval).await;
        };
        let counted: u64 = tally.values().sum();
        let report = RegionReport {
            region: region.name.clone(),
            stored: receipts.len() - pending.len(),
            ok: pending.is_empty() && counted == voters && tally == expected.counts,
            not_stored: pending
                .into_iter()
                .map(|(voter, id)| (voter.to_owned(), id))
                .collect(),
            counted,
            tally,
        };
        on_region(&report);
        reports.push(report);
    }
    Ok(Reconciliation {
        ok: expected.invalid == 0 && reports.iter().all(|r| r.ok),
        regions: reports,
    })
}

/// One keep-alive connection to a region's collector.
struct Client {
    url: String,
    conn: Conn,
}

impl Client {
    async fn connect(collector_url: &str) -> Result<Client, StackError> {
        let conn = Conn::connect(collector_url)
            .await
            .map_err(|source| StackError::Http {
                target: format!("connecting to the collector at {collector_url}"),
                source,
            })?;
        Ok(Client {
            url: collector_url.to_owned(),
            conn,
        })
    }

    /// GET `path` (with the auditor's bearer token if given): status and JSON body.
    async fn get(
        &mut self,
        path: &str,
        bearer: Option<&str>,
    ) -> Result<(u16, serde_json::Value), StackError> {
        let (status, bytes) =
            self.conn
                .get(path, bearer)
                .await
                .map_err(|source| StackError::Http {
                    target: format!("GET {}{path}", self.url),
                    source,
                })?;
        let value = serde_json::from_slice(&bytes)
            .map_err(|_| StackError::Protocol(format!("GET {path} answered {status}, not JSON")))?;
        Ok((status, value))
    }

    /// Asks the region, receipt by receipt, whether each pending vote is stored (the public
    /// per-receipt lookup), and keeps only those it does not hold yet.
    async fn keep_unstored(
        &mut self,
        election: &str,
        pending: &mut BTreeSet<(&str, String)>,
    ) -> Result<(), StackError> {
        let mut found = Vec::new();
        for (voter, vote_id) in pending.iter() {
            let path = format!("/v1/elections/{election}/votes/{vote_id}?voter={voter}");
            match self.get(&path, None).await? {
                (200, answer) if answer["stored"] == true => found.push((*voter, vote_id.clone())),
                // Not (yet) replicated here, or the store is briefly unavailable.
                (404, answer) if answer["error"] == "vote_not_found" => {}
                (503, _) => {}
                (status, answer) => {
                    return Err(StackError::Protocol(format!(
                        "GET {path} answered {status}: {answer}"
                    )));
                }
            }
        }
        for receipt in found {
            pending.remove(&receipt);
        }
        Ok(())
    }

    /// The tally of the region's counted ballots among `choice_of`, from each voter's counted
    /// vote id in the auditor's voter listing (which under last-vote-wins only the auditor
    /// token may see).
    async fn counted_tally(
        &mut self,
        election: &str,
        auditor_token: &str,
        voters: &BTreeSet<&str>,
        choice_of: &HashMap<String, &str>,
    ) -> Result<BTreeMap<String, u64>, StackError> {
        let mut counts = BTreeMap::new();
        for voter in voters {
            let path = format!("/v1/elections/{election}/voters/{voter}/ballots");
            let (status, listing) = self.get(&path, Some(auditor_token)).await?;
            if status != 200 {
                return Err(StackError::Protocol(format!(
                    "GET {path} answered {status}: {listing}"
                )));
            }
            if let Some(choice) = listing["counted"].as_str().and_then(|id| choice_of.get(id)) {
                *counts.entry((*choice).to_owned()).or_insert(0) += 1;
            }
        }
        Ok(counts)
    }
}

//! The load generator: issues tokens, votes through the regions' HTTP edges at a target rate
//! (some voters vote twice, some in two regions at once, some retry the same ballot), and keeps
//! every receipt, checked to name the ballot sent. [`crate::reconcile`] then checks the
//! receipts against every region.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use edgevote_shared::{ElectionManifest, Receipt, Role, b64};
use edgevote_signer::KeyStore;
use edgevote_signer::issue::{TokenWindow, issue_token};
use tokio::sync::Mutex;

use crate::client::Conn;
use crate::info::StackInfo;
use crate::vote::check_receipt_names;
use crate::{Progress, StackError, Stage, now_secs};

/// The shape of a load.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Distinct voters.
    pub voters: u64,
    /// Target votes per second over all regions (paced in 10 ms ticks, so at least 100/s).
    pub rate: u32,
    /// Concurrent client connections.
    pub concurrency: u16,
    /// Percent of voters who vote a second time, in the same region, later.
    pub double_vote_pct: u8,
    /// Percent of voters who vote in two regions at the same moment.
    pub cross_region_pct: u8,
    /// Percent of votes sent twice (a client retry of the same ballot).
    pub retry_pct: u8,
    /// Attempts per vote when an edge answers 503 or cannot be reached, with exponential
    /// backoff from 100 ms capped at 1.6 s (a retrying client).
    pub max_attempts: u32,
}

/// One HTTP vote to send.
#[derive(Debug, Clone)]
struct Job {
    region: usize,
    voter: String,
    choice: String,
    body: Bytes,
}

/// The votes of a load, in waves: first ballots (with cross-region twins in the same wave),
/// then second ballots and retries.
#[derive(Debug, Clone)]
pub struct Plan {
    waves: Vec<Vec<Job>>,
}

impl Plan {
    /// How many votes the plan sends.
    pub fn votes(&self) -> usize {
        self.waves.iter().map(Vec::len).sum()
    }
}

/// A receipt kept by the load generator, with the ballot it was checked to name.
#[derive(Debug, Clone)]
pub struct KeptReceipt {
    /// The voter (the token's `sub`; the store's partition key).
    pub voter: String,
    /// The choice sent.
    pub choice: String,
    /// The receipt (signature not yet checked: see [`crate::reconcile::expected`]).
    pub receipt: Receipt,
    /// The receipt as signed (compact JWS).
    pub compact: String,
}

/// What the load's votes got.
#[derive(Debug, Default)]
pub struct LoadOutcome {
    /// Acknowledgement latency of every accepted vote, microseconds (retries included).
    pub latencies_us: Vec<u64>,
    /// The receipts of the accepted votes.
    pub kept: Vec<KeptReceipt>,
    /// Votes refused, by HTTP status.
    pub refused: BTreeMap<u16, u64>,
    /// Votes that got no answer but 503 or a transport error in every attempt.
    pub failed: u64,
    /// 202 answers whose receipt is unreadable or names another ballot than the one sent
    /// (voter: detail).
    pub bad_receipts: Vec<String>,
    /// How long sending took.
    pub elapsed: Duration,
}

impl LoadOutcome {
    /// The `p` quantile (0..=1) of the acknowledgement latencies, milliseconds.
    pub fn latency_ms(&self, p: f64) -> f64 {
        let mut sorted = self.latencies_us.clone();
        sorted.sort_unstable();
        percentile(&sorted, p)
    }
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index] as f64 / 1000.0
}

/// Issues the voters' tokens from the stack's authority key and plans their votes. Voter refs
/// are unique to this run, so its reconciliation is exact whatever else was cast.
pub fn plan(
    config: &LoadConfig,
    stack: &StackInfo,
    manifest: &ElectionManifest,
    store: &KeyStore,
    progress: &dyn Progress,
) -> Result<Plan, StackError> {
    let authority = store.signing_identity(Role::Authority, None)?;
    let window = TokenWindow::for_election(manifest, now_secs());
    let regions = stack.regions.len();
    if regions == 0 {
        return Err(StackError::NoRegion("the stack has no region".into()));
    }
    let choices: Vec<&str> = manifest.options.iter().map(|o| o.id.as_str()).collect();
    let run = b64::encode(edgevote_signer::random::bytes::<6>()?);
    let cross = u64::from(config.cross_region_pct);
    let double = cross + u64::from(config.double_vote_pct);
    progress.start(Stage::IssueTokens, config.voters);
    let mut first = Vec::new();
    let mut second = Vec::new();
    for i in 0..config.voters {
        let voter = format!("load-{run}-{i}");
        let token = issue_token(&authority, manifest, Some(&voter), window)?;
        let region = (i as usize) % regions;
        let job = |region: usize, choice: &str, nonce: u64| {
            let nonce = b64::encode([nonce.to_le_bytes(), i.to_le_bytes()].concat());
            let body = serde_json::json!({"election": manifest.id, "token": token, "choice": choice, "nonce": nonce});
            Job {
                region,
                voter: voter.clone(),
                choice: choice.to_owned(),
                body: Bytes::from(body.to_string()),
            }
        };
        let pick = (i as usize / regions) % choices.len();
        let (choice, other) = (choices[pick], choices[(pick + 1) % choices.len()]);
        let primary = job(region, choice, 1);
        first.push(primary.clone());
        let pct = i % 100;
        if pct < cross && regions > 1 {
            first.push(job((region + 1) % regions, other, 2));
        } else if pct < double {
            second.push(job(region, other, 3));
        }
        if (i * 7 % 100) < u64::from(config.retry_pct) {
            second.push(primary);
        }
        progress.advance(1);
    }
    progress.finish();
    Ok(Plan {
        waves: vec![first, second],
    })
}

/// Sends the plan's votes to the regions' edges, paced at `config.rate`, over
/// `config.concurrency` keep-alive connections, retrying 503s and transport errors.
pub async fn execute(
    config: &LoadConfig,
    stack: &StackInfo,
    election: &str,
    plan: Plan,
    progress: Arc<dyn Progress>,
) -> LoadOutcome {
    let total = plan.votes();
    let started = Instant::now();
    let outcome = Arc::new(Mutex::new(LoadOutcome {
        latencies_us: Vec::with_capacity(total),
        ..LoadOutcome::default()
    }));
    progress.start(Stage::SendVotes, total as u64);
    let urls: Arc<Vec<String>> =
        Arc::new(stack.regions.iter().map(|r| r.edge_url.clone()).collect());
    let per_tick = (config.rate / 100).max(1) as usize;
    for wave in plan.waves {
        let (tx, rx) = tokio::sync::mpsc::channel::<Job>(4096);
        let rx = Arc::new(Mutex::new(rx));
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..config.concurrency {
            let worker = Worker {
                jobs: Arc::clone(&rx),
                outcome: Arc::clone(&outcome),
                progress: Arc::clone(&progress),
                urls: Arc::clone(&urls),
                election: election.to_owned(),
                max_attempts: config.max_attempts,
            };
            workers.spawn(worker.run());
        }
        // Pace: `per_tick` votes every 10 ms.
        let mut ticker = tokio::time::interval(Duration::from_millis(10));
        for chunk in wave.chunks(per_tick) {
            ticker.tick().await;
            for job in chunk {
                if tx.send(job.clone()).await.is_err() {
                    break;
                }
            }
        }
        drop(tx);
        while workers.join_next().await.is_some() {}
    }
    progress.finish();
    let mut outcome = std::mem::take(&mut *outcome.lock().await);
    outcome.elapsed = started.elapsed();
    outcome
}

/// One client connection's loop: takes jobs until the wave is sent.
struct Worker {
    jobs: Arc<Mutex<tokio::sync::mpsc::Receiver<Job>>>,
    outcome: Arc<Mutex<LoadOutcome>>,
    progress: Arc<dyn Progress>,
    urls: Arc<Vec<String>>,
    election: String,
    max_attempts: u32,
}

impl Worker {
    async fn run(self) {
        let mut conns: HashMap<usize, Conn> = HashMap::new();
        loop {
            let Some(job) = self.jobs.lock().await.recv().await else {
                return;
            };
            let started = Instant::now();
            let mut answer = None;
            for attempt in 0..self.max_attempts {
                match self.attempt(&mut conns, &job).await {
                    Ok((202, text)) => {
                        answer = Some(Ok(text));
                        break;
                    }
                    Ok((503, _)) | Err(_) => {
                        conns.remove(&job.region);
                        tokio::time::sleep(Duration::from_millis(100 << attempt.min(4))).await;
                    }
                    Ok((status, _)) => {
                        answer = Some(Err(status));
                        break;
                    }
                }
            }
            let mut t = self.outcome.lock().await;
            match answer {
                Some(Ok(text)) => {
                    t.latencies_us.push(started.elapsed().as_micros() as u64);
                    match parse_receipt(&job, &text) {
                        Ok(kept) => t.kept.push(kept),
                        Err(detail) => t.bad_receipts.push(format!("{}: {detail}", job.voter)),
                    }
                }
                Some(Err(status)) => *t.refused.entry(status).or_insert(0) += 1,
                None => t.failed += 1,
            }
            self.progress.advance(1);
        }
    }

    async fn attempt(
        &self,
        conns: &mut HashMap<usize, Conn>,
        job: &Job,
    ) -> Result<(u16, String), crate::BoxError> {
        let conn = match conns.entry(job.region) {
            std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::hash_map::Entry::Vacant(entry) => {
                entry.insert(Conn::connect(&self.urls[job.region]).await?)
            }
        };
        conn.post_vote(&self.election, job.body.clone()).await
    }
}

/// The receipt of a 202 answer, checked against the ballot the job sent: it must name that
/// ballot (vote id recomputed from it). Its signature is checked at reconciliation.
fn parse_receipt(job: &Job, text: &str) -> Result<KeptReceipt, String> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("answer is not JSON: {e}"))?;
    let compact = value["receipt"]
        .as_str()
        .ok_or("no receipt in the 202 answer")?
        .to_owned();
    let receipt: Receipt = edgevote_shared::decode_unverified(&compact)
        .map_err(|e| format!("unreadable receipt ({}): {e}", e.code()))?;
    check_receipt_names(&job.body, &receipt)?;
    Ok(KeptReceipt {
        voter: job.voter.clone(),
        choice: job.choice.clone(),
        receipt,
        compact,
    })
}

/// Writes each receipt to `dir` as `<vote id>.jws` (creating `dir`).
pub fn save_receipts(dir: &Path, kept: &[KeptReceipt]) -> Result<(), StackError> {
    std::fs::create_dir_all(dir).map_err(StackError::file("creating", dir))?;
    for k in kept {
        let path = dir.join(format!("{}.jws", k.receipt.vote_id));
        std::fs::write(&path, format!("{}\n", k.compact))
            .map_err(StackError::file("writing", &path))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn percentiles_of_latencies() {
        let outcome = LoadOutcome {
            latencies_us: vec![3_000, 1_000, 2_000, 4_000, 5_000],
            ..LoadOutcome::default()
        };
        assert_eq!(outcome.latency_ms(0.5), 3.0);
        assert_eq!(outcome.latency_ms(0.99), 5.0);
        assert_eq!(LoadOutcome::default().latency_ms(0.5), 0.0);
    }

    fn plan_for(config: &LoadConfig, regions: usize) -> Plan {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::open_or_create(dir.path().join("keys")).unwrap();
        store.generate(Role::Authority, 1).unwrap();
        let manifest = ElectionManifest {
            v: 1,
            id: "e".into(),
            title: "t".into(),
            options: ["yes", "no"]
                .map(|o| edgevote_shared::ElectionOption {
                    id: o.into(),
                    label: o.into(),
                })
                .to_vec(),
            opens_at: 1,
            closes_at: 4_000_000_000,
            policy: edgevote_shared::Policy::FirstVoteWins,
            limits: edgevote_shared::Limits::default(),
            created_at: 1,
        };
        let stack = StackInfo {
            election: "e".into(),
            keys_dir: dir.path().join("keys"),
            election_path: dir.path().join("election.jws"),
            aws: None,
            regions: (0..regions)
                .map(|i| crate::RegionInfo {
                    name: format!("r{i}"),
                    edge_url: format!("http://127.0.0.1:{}", 9000 + i),
                    collector_url: format!("http://127.0.0.1:{}", 9100 + i),
                })
                .collect(),
        };
        plan(config, &stack, &manifest, &store, &crate::NoProgress).unwrap()
    }

    /// First ballots, cross-region twins in the same wave; second ballots and retries in the
    /// second wave. Percentages above 100 (and sums above 255, which once overflowed) mean
    /// "every voter".
    #[test]
    fn plan_shapes_the_waves() {
        let config = LoadConfig {
            voters: 100,
            rate: 1000,
            concurrency: 1,
            double_vote_pct: 10,
            cross_region_pct: 5,
            retry_pct: 0,
            max_attempts: 1,
        };
        let waves = |p: &Plan| p.waves.iter().map(Vec::len).collect::<Vec<_>>();
        let normal = plan_for(&config, 3);
        assert_eq!(waves(&normal), [105, 10]);
        assert!(normal.waves[0][..2].iter().all(|j| j.region < 3));
        assert_eq!(
            normal.waves[0][1].region, 1,
            "the twin goes to the next region"
        );
        // One region: no cross-region twins; those voters vote twice there instead.
        assert_eq!(waves(&plan_for(&config, 1)), [100, 15]);
        let all = LoadConfig {
            double_vote_pct: 200,
            cross_region_pct: 100,
            retry_pct: 100,
            ..config
        };
        assert_eq!(waves(&plan_for(&all, 2)), [200, 100]);
    }
}

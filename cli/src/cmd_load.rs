//! `edgevote vote` and `edgevote load`: voters against a running local stack (`edgevote up`).
//!
//! `load` issues tokens, votes through the regions' HTTP edges at a target rate (some voters
//! vote twice, some in two regions at once, some retry the same ballot), keeps every receipt,
//! and ends with throughput, acknowledgement latency and a reconciliation against every
//! region: every receipt's vote is stored there (the public per-receipt lookup), and the
//! tally of the region's counted ballots (from the voter listing, with the stack's auditor
//! token) is the one the counting rule gives over the receipts.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use clap::Args;
use edgevote_shared::{Digest32, ElectionManifest, KeySet, Receipt, Role, b64, verify};
use edgevote_signer::KeyStore;
use edgevote_signer::issue::{TokenWindow, issue_token};
use edgevote_store::counting::{self, Candidate};
use http_body_util::{BodyExt, Full};
use tokio::sync::Mutex;

use crate::cmd_up::{StackInfo, read_stack};
use crate::{cmd_token, timearg};

/// Longest wait for the regions to settle after the load.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, Args)]
pub struct VoteArgs {
    /// Data directory of a running `edgevote up`.
    #[arg(long = "up", default_value = "edgevote-data/up")]
    pub data_dir: PathBuf,
    /// Region to vote in (default: the first).
    #[arg(long)]
    pub region: Option<String>,
    /// The voter's token; by default one is issued from the stack's authority key.
    #[arg(long)]
    pub token: Option<String>,
    /// The chosen option.
    #[arg(long)]
    pub choice: String,
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Data directory of a running `edgevote up`.
    #[arg(long = "up", default_value = "edgevote-data/up")]
    pub data_dir: PathBuf,
    /// Distinct voters.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub voters: u64,
    /// Target votes per second over all regions.
    #[arg(long, default_value_t = 1000)]
    pub rate: u32,
    /// Concurrent client connections.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub concurrency: u16,
    /// Percent of voters who vote a second time, in the same region, later.
    #[arg(long, default_value_t = 5)]
    pub double_vote_pct: u8,
    /// Percent of voters who vote in two regions at the same moment.
    #[arg(long, default_value_t = 3)]
    pub cross_region_pct: u8,
    /// Percent of votes sent twice (a client retry of the same ballot).
    #[arg(long, default_value_t = 3)]
    pub retry_pct: u8,
    /// Attempts per vote when an edge answers 503 or cannot be reached, with exponential
    /// backoff from 100 ms capped at 1.6 s (a retrying client).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=60))]
    pub max_attempts: u32,
    /// Where to keep the receipts (one file each).
    #[arg(long)]
    pub receipts_dir: Option<PathBuf>,
}

/// One HTTP vote to send.
#[derive(Debug, Clone)]
struct Job {
    region: usize,
    voter: String,
    choice: String,
    body: Bytes,
}

/// A receipt kept by the load generator.
#[derive(Debug, Clone)]
struct Kept {
    voter: String,
    choice: String,
    receipt: Receipt,
    compact: String,
}

struct Tally {
    latencies_us: Vec<u64>,
    kept: Vec<Kept>,
    refused: BTreeMap<u16, u64>,
    failed: u64,
    /// 202 answers whose receipt is unreadable or names another ballot than the one sent.
    bad_receipts: Vec<String>,
}

pub fn vote(args: VoteArgs) -> anyhow::Result<ExitCode> {
    let stack = read_stack(&args.data_dir)?;
    let (keys, manifest, store) = stack_inputs(&stack)?;
    let region = match &args.region {
        Some(name) => stack
            .regions
            .iter()
            .find(|r| &r.name == name)
            .with_context(|| format!("no region {name} in the stack"))?,
        None => stack.regions.first().context("the stack has no region")?,
    };
    let token = match args.token {
        Some(token) => token,
        None => {
            let authority = store.signing_identity(Role::Authority, None)?;
            issue_token(
                &authority,
                &manifest,
                None,
                TokenWindow::for_election(&manifest, timearg::now_secs()),
            )?
        }
    };
    let nonce = b64::encode(edgevote_signer::random::bytes::<16>()?);
    let body = serde_json::json!({"election": manifest.id, "token": token, "choice": args.choice, "nonce": nonce}).to_string();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (status, text) = runtime.block_on(post_once(
        &region.edge_url,
        &manifest.id,
        Bytes::from(body.clone()),
    ))?;
    println!("{} answered HTTP {status}", region.edge_url);
    if status != 202 {
        println!("{text}");
        return Ok(ExitCode::from(1));
    }
    let value: serde_json::Value = serde_json::from_str(&text)?;
    let compact = value["receipt"]
        .as_str()
        .context("no receipt in the answer")?;
    let receipt = verify::<Receipt>(compact, &keys)
        .map_err(|e| anyhow::anyhow!("receipt does not verify ({}): {e}", e.code()))?
        .doc;
    if let Err(detail) = check_receipt_names(body.as_bytes(), &receipt) {
        println!("INVALID: the receipt does not name the ballot sent: {detail}");
        return Ok(ExitCode::from(1));
    }
    println!(
        "receipt (verified, signed by edge {} in {}):\n{compact}",
        receipt.edge, receipt.region
    );
    println!(
        "vote id {} — check it later with the audit log",
        receipt.vote_id
    );
    Ok(ExitCode::SUCCESS)
}

/// The stack's auditor token, which its collectors require for the voter listing.
fn read_auditor_token(data_dir: &Path) -> anyhow::Result<String> {
    let path = crate::cmd_up::auditor_token_path(data_dir);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "no auditor token at {} (restart the stack with this edgevote: edgevote up writes it)",
            path.display()
        )
    })?;
    Ok(text.trim().to_owned())
}

fn stack_inputs(stack: &StackInfo) -> anyhow::Result<(KeySet, ElectionManifest, KeyStore)> {
    let store = KeyStore::open(&stack.keys_dir)?;
    let keys = store.keyset()?;
    let manifest = crate::cmd_election::load_manifest(&stack.election_path, &keys)?;
    Ok((keys, manifest, store))
}

async fn post_once(base: &str, election: &str, body: Bytes) -> anyhow::Result<(u16, String)> {
    let authority = base.trim_start_matches("http://");
    let stream = tokio::net::TcpStream::connect(authority).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let (status, text) = send(&mut sender, authority, election, body).await?;
    Ok((status, text))
}

async fn send(
    sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    authority: &str,
    election: &str,
    body: Bytes,
) -> anyhow::Result<(u16, String)> {
    let request = hyper::Request::builder()
        .method("POST")
        .uri(format!("/v1/elections/{election}/votes"))
        .header("host", authority)
        .header("content-type", "application/json")
        .body(Full::new(body))?;
    sender.ready().await?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
}

pub fn load(args: LoadArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run_load(args))
}

async fn run_load(args: LoadArgs) -> anyhow::Result<ExitCode> {
    let stack = read_stack(&args.data_dir)?;
    let (keys, manifest, store) = stack_inputs(&stack)?;
    // Read before the load, so a stack without one fails fast.
    let auditor_token = read_auditor_token(&args.data_dir)?;
    println!("issuing {} tokens for {} ...", args.voters, manifest.id);
    let waves = plan(&args, &stack, &manifest, &store)?;
    let total: usize = waves.iter().map(Vec::len).sum();
    println!(
        "sending {total} votes from {} voters to {} regions at up to {}/s",
        args.voters,
        stack.regions.len(),
        args.rate
    );
    let started = Instant::now();
    let tally = execute(&args, &stack, &manifest.id, waves, total).await;
    let elapsed = started.elapsed().as_secs_f64();
    let tally = Arc::try_unwrap(tally)
        .map_err(|_| anyhow::anyhow!("workers still running"))?
        .into_inner();
    report(&tally, elapsed, args.max_attempts);
    let receipts_dir = args
        .receipts_dir
        .clone()
        .unwrap_or_else(|| args.data_dir.join("receipts"));
    keep_receipts(&receipts_dir, &tally.kept)?;
    // The key set as published now: a key rotated in during the load signed some receipts.
    let keys = store.keyset().unwrap_or(keys);
    let ok = reconcile(&stack, &manifest, &keys, &tally.kept, &auditor_token).await?;
    Ok(
        if ok && tally.failed == 0 && tally.bad_receipts.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        },
    )
}

/// The votes to send, in waves: first ballots (with cross-region twins in the same wave), then
/// second ballots and retries.
fn plan(
    args: &LoadArgs,
    stack: &StackInfo,
    manifest: &ElectionManifest,
    store: &KeyStore,
) -> anyhow::Result<Vec<Vec<Job>>> {
    let authority = store.signing_identity(Role::Authority, None)?;
    let window = TokenWindow::for_election(manifest, timearg::now_secs());
    let regions = stack.regions.len();
    let choices: Vec<&str> = manifest.options.iter().map(|o| o.id.as_str()).collect();
    let bar = cmd_token::progress_bar(args.voters);
    // Voter refs unique to this run, so its reconciliation is exact whatever else was cast.
    let run = b64::encode(edgevote_signer::random::bytes::<6>()?);
    let mut first = Vec::new();
    let mut second = Vec::new();
    for i in 0..args.voters {
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
        let pct = (i % 100) as u8;
        if pct < args.cross_region_pct && regions > 1 {
            first.push(job((region + 1) % regions, other, 2));
        } else if pct < args.cross_region_pct + args.double_vote_pct {
            second.push(job(region, other, 3));
        }
        if (i * 7 % 100) < u64::from(args.retry_pct) {
            second.push(primary);
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(vec![first, second])
}

async fn execute(
    args: &LoadArgs,
    stack: &StackInfo,
    election: &str,
    waves: Vec<Vec<Job>>,
    total: usize,
) -> Arc<Mutex<Tally>> {
    let tally = Arc::new(Mutex::new(Tally {
        latencies_us: Vec::with_capacity(total),
        kept: Vec::new(),
        refused: BTreeMap::new(),
        failed: 0,
        bad_receipts: Vec::new(),
    }));
    let bar = Arc::new(cmd_token::progress_bar(total as u64));
    let urls: Arc<Vec<String>> = Arc::new(
        stack
            .regions
            .iter()
            .map(|r| r.edge_url.trim_start_matches("http://").to_owned())
            .collect(),
    );
    let per_tick = (args.rate / 100).max(1) as usize;
    for wave in waves {
        let (tx, rx) = tokio::sync::mpsc::channel::<Job>(4096);
        let rx = Arc::new(Mutex::new(rx));
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..args.concurrency {
            let (rx, tally, bar, urls, election) = (
                Arc::clone(&rx),
                Arc::clone(&tally),
                Arc::clone(&bar),
                Arc::clone(&urls),
                election.to_owned(),
            );
            let max_attempts = args.max_attempts;
            workers
                .spawn(async move { worker(rx, tally, bar, urls, election, max_attempts).await });
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
    bar.finish_and_clear();
    tally
}

async fn worker(
    rx: Arc<Mutex<tokio::sync::mpsc::Receiver<Job>>>,
    tally: Arc<Mutex<Tally>>,
    bar: Arc<indicatif::ProgressBar>,
    urls: Arc<Vec<String>>,
    election: String,
    max_attempts: u32,
) {
    let mut senders: HashMap<usize, hyper::client::conn::http1::SendRequest<Full<Bytes>>> =
        HashMap::new();
    loop {
        let Some(job) = rx.lock().await.recv().await else {
            return;
        };
        let started = Instant::now();
        let mut outcome = None;
        for attempt in 0..max_attempts {
            match attempt_vote(&mut senders, &urls, &election, &job).await {
                Ok((202, text)) => {
                    outcome = Some(Ok(text));
                    break;
                }
                Ok((503, _)) | Err(_) => {
                    senders.remove(&job.region);
                    tokio::time::sleep(Duration::from_millis(100 << attempt.min(4))).await;
                }
                Ok((status, _)) => {
                    outcome = Some(Err(status));
                    break;
                }
            }
        }
        let mut t = tally.lock().await;
        match outcome {
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
        bar.inc(1);
    }
}

async fn attempt_vote(
    senders: &mut HashMap<usize, hyper::client::conn::http1::SendRequest<Full<Bytes>>>,
    urls: &[String],
    election: &str,
    job: &Job,
) -> anyhow::Result<(u16, String)> {
    let authority = &urls[job.region];
    let sender = match senders.entry(job.region) {
        std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
        std::collections::hash_map::Entry::Vacant(entry) => {
            let stream = tokio::net::TcpStream::connect(authority.as_str()).await?;
            let (sender, connection) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
            tokio::spawn(connection);
            entry.insert(sender)
        }
    };
    send(sender, authority, election, job.body.clone()).await
}

/// The receipt of a 202 answer, checked against the ballot the job sent: it must name that
/// ballot (vote id recomputed from it). Its signature is checked at reconciliation.
fn parse_receipt(job: &Job, text: &str) -> Result<Kept, String> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("answer is not JSON: {e}"))?;
    let compact = value["receipt"]
        .as_str()
        .ok_or("no receipt in the 202 answer")?
        .to_owned();
    let receipt: Receipt = edgevote_shared::decode_unverified(&compact)
        .map_err(|e| format!("unreadable receipt ({}): {e}", e.code()))?;
    check_receipt_names(&job.body, &receipt)?;
    Ok(Kept {
        voter: job.voter.clone(),
        choice: job.choice.clone(),
        receipt,
        compact,
    })
}

/// Refuses a receipt that does not name the ballot in `sent` (the body this client sent).
fn check_receipt_names(sent: &[u8], receipt: &Receipt) -> Result<(), String> {
    let ballot = edgevote_shared::Ballot::parse(sent, sent.len())
        .map_err(|e| format!("the ballot sent does not parse ({}): {e}", e.code()))?;
    receipt
        .check_ballot(&ballot)
        .map_err(|e| format!("{} ({})", e, e.code()))
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index] as f64 / 1000.0
}

fn report(tally: &Tally, elapsed: f64, max_attempts: u32) {
    let mut latencies = tally.latencies_us.clone();
    latencies.sort_unstable();
    println!(
        "done in {elapsed:.1}s: {} acknowledged ({:.0} votes/s), ack latency p50 {:.1} ms, p99 {:.1} ms",
        latencies.len(),
        latencies.len() as f64 / elapsed.max(1e-9),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99)
    );
    if !tally.refused.is_empty() {
        println!("refused: {:?}", tally.refused);
    }
    if tally.failed > 0 {
        println!("FAILED after {max_attempts} attempts: {}", tally.failed);
    }
    if let Some(first) = tally.bad_receipts.first() {
        println!(
            "MISMATCH: {} receipts do not name the ballot that was sent (first: {first})",
            tally.bad_receipts.len()
        );
    }
}

fn keep_receipts(dir: &Path, kept: &[Kept]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for k in kept {
        std::fs::write(
            dir.join(format!("{}.jws", k.receipt.vote_id)),
            format!("{}\n", k.compact),
        )?;
    }
    println!("kept {} receipts in {}", kept.len(), dir.display());
    Ok(())
}

/// What the receipts say the final result must be, by the election's counting rule.
fn expected(manifest: &ElectionManifest, kept: &[Kept]) -> (BTreeMap<String, u64>, usize, usize) {
    // A retried ballot can hold two receipts (two acceptances); the store keeps its earliest
    // acceptance, so the rule sees that one.
    let mut earliest: BTreeMap<Digest32, &Kept> = BTreeMap::new();
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
    (counted.counts(), counted.voters() as usize, earliest.len())
}

async fn reconcile(
    stack: &StackInfo,
    manifest: &ElectionManifest,
    keys: &KeySet,
    kept: &[Kept],
    auditor_token: &str,
) -> anyhow::Result<bool> {
    let invalid = kept
        .iter()
        .filter(|k| verify::<Receipt>(&k.compact, keys).is_err())
        .count();
    let (counts, voters, ballots) = expected(manifest, kept);
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
    println!(
        "reconciling: {ballots} distinct receipts, {voters} voters, {invalid} invalid receipts; waiting for every region to settle ..."
    );
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    let mut all_ok = invalid == 0;
    for region in &stack.regions {
        let mut client = Client::connect(&region.collector_url).await?;
        // Receipts not yet found stored in this region (a stored ballot is never removed).
        let mut pending = receipts.clone();
        let region_counts = loop {
            client.keep_unstored(&manifest.id, &mut pending).await?;
            let settled = pending.is_empty();
            if settled || Instant::now() >= deadline {
                let region_counts = client
                    .counted_tally(&manifest.id, auditor_token, &voter_list, &choice_of)
                    .await?;
                if region_counts.values().sum::<u64>() == voters as u64
                    || Instant::now() >= deadline
                {
                    break region_counts;
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        let stored = ballots - pending.len();
        let counted: u64 = region_counts.values().sum();
        let ok = pending.is_empty() && counted == voters as u64 && region_counts == counts;
        all_ok &= ok;
        println!(
            "  {:<16} receipts stored {stored}/{ballots}  counted voters {counted}/{voters}  tally {:?}  {}",
            region.name,
            region_counts,
            if ok { "OK" } else { "MISMATCH" }
        );
        if let Some((voter, vote_id)) = pending.first() {
            println!(
                "    not stored: {} receipts (first: voter {voter}, vote id {vote_id})",
                pending.len()
            );
        }
    }
    println!(
        "expected tally by the {} rule: {counts:?}",
        manifest.policy.as_str()
    );
    println!(
        "reconciliation: {}",
        if all_ok {
            "receipts issued = ballots stored, counted voters = distinct voters, same tally in every region"
        } else {
            "FAILED"
        }
    );
    Ok(all_ok)
}

/// One keep-alive connection to a region's collector.
struct Client {
    authority: String,
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

impl Client {
    async fn connect(collector_url: &str) -> anyhow::Result<Client> {
        let authority = collector_url.trim_start_matches("http://").to_owned();
        let stream = tokio::net::TcpStream::connect(&authority)
            .await
            .with_context(|| format!("connecting to the collector at {collector_url}"))?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        Ok(Client { authority, sender })
    }

    /// GET `path` (with the auditor's bearer token if given): status and JSON body.
    async fn get(
        &mut self,
        path: &str,
        bearer: Option<&str>,
    ) -> anyhow::Result<(u16, serde_json::Value)> {
        let mut request = hyper::Request::builder()
            .uri(path)
            .header("host", &self.authority);
        if let Some(token) = bearer {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let request = request.body(Full::new(Bytes::new()))?;
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await?.to_bytes();
        let value = serde_json::from_slice(&bytes)
            .with_context(|| format!("GET {path} answered {status}, not JSON"))?;
        Ok((status, value))
    }

    /// Asks the region, receipt by receipt, whether each pending vote is stored (the public
    /// per-receipt lookup), and keeps only those it does not hold yet.
    async fn keep_unstored(
        &mut self,
        election: &str,
        pending: &mut BTreeSet<(&str, String)>,
    ) -> anyhow::Result<()> {
        let mut found = Vec::new();
        for (voter, vote_id) in pending.iter() {
            let path = format!("/v1/elections/{election}/votes/{vote_id}?voter={voter}");
            match self.get(&path, None).await? {
                (200, answer) if answer["stored"] == true => found.push((*voter, vote_id.clone())),
                // Not (yet) replicated here, or the store is briefly unavailable.
                (404, answer) if answer["error"] == "vote_not_found" => {}
                (503, _) => {}
                (status, answer) => anyhow::bail!("GET {path} answered {status}: {answer}"),
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
    ) -> anyhow::Result<BTreeMap<String, u64>> {
        let mut counts = BTreeMap::new();
        for voter in voters {
            let path = format!("/v1/elections/{election}/voters/{voter}/ballots");
            let (status, listing) = self.get(&path, Some(auditor_token)).await?;
            anyhow::ensure!(status == 200, "GET {path} answered {status}: {listing}");
            if let Some(choice) = listing["counted"].as_str().and_then(|id| choice_of.get(id)) {
                *counts.entry((*choice).to_owned()).or_insert(0) += 1;
            }
        }
        Ok(counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgevote_shared::{SigningIdentity, VoteToken, sign};

    /// The reconciliation's client against a real collector: receipts found stored through the
    /// public per-receipt lookup (one never stored stays pending), and the counted tally of a
    /// last-vote-wins election (which that lookup never reveals) through the auditor's listing
    /// with the token; without the right token the reconciliation fails instead of guessing.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reconciliation_reads_the_lookup_and_the_auditor_listing() {
        use edgevote_queue::embedded::{EmbeddedQueue, EmbeddedQueueConfig};
        use edgevote_store::embedded::{EmbeddedStore, EmbeddedStoreConfig};
        use edgevote_store::{ElectionRules, Store, StoredBallot};

        let dir = tempfile::tempdir().unwrap();
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
            policy: edgevote_shared::Policy::LastVoteWins,
            limits: edgevote_shared::Limits::default(),
            created_at: 1,
        };
        let ballot = |voter: &str, choice: &str, at: u64, n: u8| StoredBallot {
            election: "e".into(),
            voter: voter.into(),
            vote_id: Digest32([n; 32]),
            choice: choice.into(),
            token_id: format!("t-{voter}"),
            nonce: b64::encode([n; 16]),
            received_at_ms: at,
            edge: "edge-1".into(),
            region: "r1".into(),
            batch_id: "b".into(),
        };
        let store = Arc::new(
            EmbeddedStore::open(&EmbeddedStoreConfig {
                path: dir.path().join("s.redb"),
            })
            .unwrap(),
        );
        // v1 votes yes, then re-votes no (counted); v2 votes yes.
        store
            .record(
                &ElectionRules::of(&manifest),
                "r1",
                vec![
                    ballot("v1", "yes", 1_000, 1),
                    ballot("v1", "no", 2_000, 2),
                    ballot("v2", "yes", 1_500, 3),
                ],
            )
            .await
            .unwrap();
        let queue = Arc::new(
            EmbeddedQueue::open(&EmbeddedQueueConfig {
                path: dir.path().join("q.redb"),
                max_receives: 5,
            })
            .unwrap(),
        );
        let keys = KeySet::from_jwks(vec![
            SigningIdentity::from_seed(&[1; 32], Role::Authority).public_jwk(0),
        ])
        .unwrap();
        let collector = edgevote_collector::Collector::new(
            "r1".into(),
            queue,
            store,
            edgevote_collector::Checker::new(keys, vec![manifest], false),
            edgevote_collector::config::ProcessingConfig::default(),
        );
        let token = "a".repeat(40);
        let options = edgevote_collector::http::HttpOptions::default()
            .with_auditor_token(&token)
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(edgevote_collector::http::serve(
            listener,
            edgevote_collector::http::router_with(collector, options),
            std::future::pending(),
        ));

        let id = |n: u8| Digest32([n; 32]).to_b64();
        let mut client = Client::connect(&url).await.unwrap();
        let mut pending: BTreeSet<(&str, String)> =
            [("v1", id(1)), ("v1", id(2)), ("v2", id(3)), ("v2", id(4))].into();
        client.keep_unstored("e", &mut pending).await.unwrap();
        assert_eq!(
            pending,
            [("v2", id(4))].into(),
            "only the unstored receipt is pending"
        );

        let voters: BTreeSet<&str> = ["v1", "v2"].into();
        let choice_of: HashMap<String, &str> =
            [(id(1), "yes"), (id(2), "no"), (id(3), "yes"), (id(4), "no")].into();
        let counts = client
            .counted_tally("e", &token, &voters, &choice_of)
            .await
            .unwrap();
        assert_eq!(counts, [("no".to_owned(), 1), ("yes".to_owned(), 1)].into());
        let refused = client
            .counted_tally("e", &"b".repeat(40), &voters, &choice_of)
            .await
            .expect_err("a wrong token must not reconcile");
        assert!(refused.to_string().contains("401"), "{refused}");
    }

    /// An attacker holding the edge key (or a rogue component under component sealing) signs
    /// a perfectly valid receipt for the voter's token with the choice flipped.
    #[test]
    fn a_signed_receipt_for_another_ballot_is_refused() {
        let authority = SigningIdentity::from_seed(&[1; 32], Role::Authority);
        let edge = SigningIdentity::from_seed(&[2; 32], Role::Edge);
        let token = sign(
            &authority,
            &VoteToken {
                jti: "t-1".into(),
                sub: "v1".into(),
                aud: "e".into(),
                iat: 1,
                nbf: 1,
                exp: 4_000_000_000,
            },
        )
        .unwrap();
        let ballot = |choice: &str, nonce: u8| edgevote_shared::Ballot {
            election: "e".into(),
            token: token.clone(),
            choice: choice.into(),
            nonce: b64::encode([nonce; 16]),
        };
        let receipt_for = |b: &edgevote_shared::Ballot| Receipt {
            v: 1,
            election: "e".into(),
            vote_id: b.vote_id("t-1"),
            token_id: "t-1".into(),
            edge: "edge-1".into(),
            region: "r1".into(),
            received_at_ms: 1_000,
            bundle_sha256: None,
        };
        let sent = serde_json::to_vec(&ballot("yes", 1)).unwrap();
        let signed = |r: &Receipt| sign(&edge, r).unwrap();
        assert!(check_receipt_names(&sent, &receipt_for(&ballot("yes", 1))).is_ok());
        for (what, other) in [
            ("choice flipped", receipt_for(&ballot("no", 1))),
            ("nonce changed", receipt_for(&ballot("yes", 2))),
            (
                "another token",
                Receipt {
                    token_id: "t-2".into(),
                    ..receipt_for(&ballot("yes", 1))
                },
            ),
            (
                "another election",
                Receipt {
                    election: "f".into(),
                    ..receipt_for(&ballot("yes", 1))
                },
            ),
        ] {
            let _ = signed(&other); // a valid signature does not make it the voter's receipt
            let refused = check_receipt_names(&sent, &other).expect_err(what);
            assert!(
                refused.contains("ballot_mismatch") || refused.contains("wrong_election"),
                "{what}: {refused}"
            );
        }
    }
}

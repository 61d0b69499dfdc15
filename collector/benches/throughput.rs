//! Collector throughput benchmark (run: `cargo bench -p edgevote-collector`).
//!
//! Prints, for the embedded queue + store: votes/s (wall clock) and votes per CPU-second
//! (= votes/s per core), with and without re-verifying every token at the collector. The
//! target is ≥ 50k votes/s per core. Figures only: this never fails on speed.

// A benchmark binary: panicking on a broken setup is the right outcome.
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use edgevote_collector::config::ProcessingConfig;
use edgevote_collector::{Checker, Collector, CollectorParts};
use edgevote_queue::Queue;
use edgevote_queue::embedded::{EmbeddedQueue, EmbeddedQueueConfig};
use edgevote_shared::{
    Ballot, ElectionManifest, ElectionOption, EnvelopeVote, KeySet, Limits, Policy, QueueEnvelope,
    Role, SigningIdentity, VoteToken, b64, sign,
};
use edgevote_store::embedded::{EmbeddedStore, EmbeddedStoreConfig};

const ENVELOPES: usize = 240;
const VOTES_PER_ENVELOPE: usize = 150;

fn now_secs() -> u64 {
    edgevote_signer::clock::now_ms() / 1000
}

fn manifest() -> ElectionManifest {
    ElectionManifest {
        v: 1,
        id: "bench".into(),
        title: "Bench".into(),
        options: (0..4)
            .map(|i| ElectionOption {
                id: format!("o{i}"),
                label: format!("Option {i}"),
            })
            .collect(),
        opens_at: now_secs() - 60,
        closes_at: now_secs() + 3600,
        policy: Policy::FirstVoteWins,
        limits: Limits::default(),
        created_at: now_secs() - 60,
    }
}

/// Signed envelopes of distinct voters (5% of them vote twice, in a later envelope).
fn envelopes(authority: &SigningIdentity, edge: &SigningIdentity) -> Vec<String> {
    let now = now_secs();
    let mut out = Vec::with_capacity(ENVELOPES);
    for e in 0..ENVELOPES {
        let votes = (0..VOTES_PER_ENVELOPE)
            .map(|i| {
                let n = e * VOTES_PER_ENVELOPE + i;
                // Every 20th vote is a second ballot of an earlier voter.
                let voter = if n % 20 == 19 {
                    n.saturating_sub(VOTES_PER_ENVELOPE)
                } else {
                    n
                };
                let token = VoteToken {
                    jti: format!("t{voter}"),
                    sub: format!("voter-{voter}"),
                    aud: "bench".into(),
                    iat: now - 10,
                    nbf: now - 10,
                    exp: now + 3600,
                };
                EnvelopeVote {
                    ballot: Ballot {
                        election: "bench".into(),
                        token: sign(authority, &token).unwrap(),
                        choice: format!("o{}", n % 4),
                        nonce: b64::encode((n as u128).to_le_bytes()),
                    },
                    received_at_ms: edgevote_signer::clock::now_ms() + n as u64,
                }
            })
            .collect();
        let envelope = QueueEnvelope {
            v: 1,
            batch_id: format!("bench.{e}"),
            edge: "edge-bench".into(),
            region: "r1".into(),
            created_at_ms: edgevote_signer::clock::now_ms(),
            votes,
        };
        out.push(sign(edge, &envelope).unwrap());
    }
    out
}

/// CPU seconds used by this process so far (user + system), from /proc.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(") ")
        .map(|(_, rest)| rest.split(' ').collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// Files under `dir`'s `tile/` folders (hash tiles and entry bundles, full and partial).
fn tiles_written(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            let path = e.path();
            if path.is_dir() {
                tiles_written(&path)
            } else {
                u64::from(path.components().any(|c| c.as_os_str() == "tile"))
            }
        })
        .sum()
}

/// What one embedded run measured.
struct Run {
    wall_rate: f64,
    per_core: f64,
    tiles_per_sec: Option<f64>,
}

/// The production path on the embedded backends; with `live_log`, every stored vote id is also
/// appended to the region's live log (C2SP tiles) before its message is deleted.
async fn embedded_run(
    bodies: &[String],
    keys: &KeySet,
    verify_tokens: bool,
    live_log: bool,
) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let queue = Arc::new(
        EmbeddedQueue::open(&EmbeddedQueueConfig {
            path: dir.path().join("q.redb"),
            max_receives: 5,
        })
        .unwrap(),
    );
    for chunk in bodies.chunks(10) {
        queue.send_batch(chunk.to_vec()).await.unwrap();
    }
    let store = Arc::new(
        EmbeddedStore::open(&EmbeddedStoreConfig {
            path: dir.path().join("s.redb"),
        })
        .unwrap(),
    );
    let processing = ProcessingConfig {
        receivers: 4,
        wait_time_secs: 0,
        verify_tokens,
        ..ProcessingConfig::default()
    };
    let checker = Checker::new(keys.clone(), vec![manifest()], verify_tokens);
    let collector = Collector::new(CollectorParts {
        region: "r1".into(),
        queue: queue.clone(),
        store,
        checker,
        processing,
    })
    .expect("the bench's processing settings are valid");
    let live_dir = dir.path().join("live");
    if live_log {
        let key_path = dir.path().join("log.jwk");
        let key = SigningIdentity::from_seed(&[3; 32], Role::Log);
        edgevote_signer::keyfile::write(&key_path, &key).unwrap();
        let config = edgevote_collector::live_log::LiveLogConfig {
            dir: live_dir.clone(),
            log_key_path: key_path,
            checkpoint_interval_ms: 2_000,
        };
        let log = edgevote_collector::live_log::LiveLog::open(config, "r1").unwrap();
        collector.attach_live_log(Arc::new(log)).unwrap();
    }
    let votes = (bodies.len() * VOTES_PER_ENVELOPE) as f64;
    let (cpu0, t0) = (cpu_seconds(), Instant::now());
    let watched = queue.clone();
    Arc::clone(&collector)
        .run(async move {
            // Bounded: give up after 10 minutes.
            for _ in 0..60_000 {
                let stats = watched.stats().await.unwrap();
                if stats.visible == 0 && stats.in_flight == 0 {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
    let (wall, cpu) = (t0.elapsed().as_secs_f64(), cpu_seconds() - cpu0);
    let stored = collector
        .metrics
        .votes_stored
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(stored as f64, votes, "every vote stored");
    let tiles_per_sec = live_log.then(|| tiles_written(&live_dir) as f64 / wall);
    Run {
        wall_rate: votes / wall,
        per_core: votes / cpu.max(1e-9),
        tiles_per_sec,
    }
}

/// Ballots for the DynamoDB stand-in: `n` voters, every 20th with a second ballot.
fn stored_ballots(n: usize) -> Vec<edgevote_store::StoredBallot> {
    (0..n)
        .map(|i| {
            let voter = if i % 20 == 19 { i - 1 } else { i };
            edgevote_store::StoredBallot {
                election: "bench".into(),
                voter: format!("voter-{voter:09}"),
                vote_id: edgevote_shared::Digest32::of(&(i as u64).to_le_bytes()),
                choice: format!("o{}", i % 4),
                token_id: format!("t{voter}"),
                nonce: b64::encode((i as u128).to_le_bytes()),
                received_at_ms: 1_800_000_000_000 + i as u64,
                edge: "edge-bench".into(),
                region: "r1".into(),
                batch_id: format!("bench.{}", i / 150),
            }
        })
        .collect()
}

/// Votes/s and WCU per vote of the DynamoDB store over a stand-in adding `latency` per request,
/// with `concurrency` requests in flight per record call and `calls` record calls at once (the
/// collector's receive loops).
async fn dynamo_run(latency: Duration, concurrency: usize, calls: usize) -> (f64, f64, f64) {
    use edgevote_aws::{DynamoStore, SimDynamo};
    use edgevote_store::Store;
    let sim = SimDynamo::new(latency);
    let costs = sim.costs();
    let store = Arc::new(DynamoStore::new(sim, concurrency));
    let rules = edgevote_store::ElectionRules {
        id: "bench".into(),
        policy: Policy::FirstVoteWins,
        max_votes_per_voter: edgevote_shared::manifest::MAX_VOTES_PER_VOTER,
    };
    let ballots = stored_ballots(calls * 1500);
    let t0 = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in ballots.chunks(1500) {
        let (store, rules, chunk) = (Arc::clone(&store), rules.clone(), chunk.to_vec());
        tasks.spawn(async move { store.record(&rules, "r1", chunk).await.unwrap() });
    }
    while tasks.join_next().await.is_some() {}
    let wall = t0.elapsed().as_secs_f64();
    let snapshot = costs.snapshot();
    let votes = ballots.len() as f64;
    (
        votes / wall,
        snapshot.write_units as f64 / votes,
        snapshot.read_units / votes,
    )
}

fn main() {
    let authority = SigningIdentity::from_seed(&[1; 32], Role::Authority);
    let edge = SigningIdentity::from_seed(&[2; 32], Role::Edge);
    let keys = KeySet::from_jwks(vec![
        authority.public_jwk(0),
        edge.public_jwk(0).bound_to("edge-bench", "r1"),
    ])
    .unwrap();
    eprintln!("preparing {ENVELOPES} envelopes x {VOTES_PER_ENVELOPE} votes ...");
    let bodies = envelopes(&authority, &edge);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "collector throughput, embedded queue + store, {} votes per run",
        ENVELOPES * VOTES_PER_ENVELOPE
    );
    for (verify_tokens, live_log) in [(false, false), (false, true), (true, false), (true, true)] {
        let run = runtime.block_on(embedded_run(&bodies, &keys, verify_tokens, live_log));
        let tiles = run
            .tiles_per_sec
            .map_or(String::new(), |t| format!("   {t:.0} tile files/s"));
        println!(
            "  verify_tokens={verify_tokens:<5} live_log={live_log:<5}  {:>9.0} votes/s wall   {:>9.0} votes/s per core   target 50000/core: {:.2}x{tiles}",
            run.wall_rate,
            run.per_core,
            run.per_core / 50_000.0
        );
    }
    println!(
        "DynamoDB store over a stand-in adding 5 ms per request (4 record calls of 1500 ballots at once)"
    );
    let mut needed = None;
    for concurrency in [16, 32, 48, 64, 80, 96, 128] {
        let (rate, wcu, rcu) =
            runtime.block_on(dynamo_run(Duration::from_millis(5), concurrency, 4));
        let in_flight = concurrency * 4;
        println!(
            "  {in_flight:>4} requests in flight  {rate:>8.0} votes/s   {wcu:.3} WCU/vote   {rcu:.2} RCU/vote"
        );
        if needed.is_none() && rate >= 20_000.0 {
            needed = Some(in_flight);
        }
    }
    match needed {
        Some(n) => println!(
            "  => about {n} concurrent requests sustain 20k votes/s (target WCU/vote <= 1.05)"
        ),
        None => println!("  => 20k votes/s not reached at 512 concurrent requests"),
    }
}

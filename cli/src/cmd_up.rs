//! `edgevote up`: the whole system on one machine. Per region: an edge host running the real
//! signed Wasm component, an embedded durable queue, a collector and an embedded store; the
//! stores replicate to each other asynchronously (last-writer-wins per item, like DynamoDB
//! Global Tables). State lives in a data directory; a restart resumes it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use edgevote_collector::config::ProcessingConfig;
use edgevote_collector::{Checker, Collector};
use edgevote_edge_host::EdgeHost;
use edgevote_edge_host::config::{GroupCommitConfig, HostConfig, SpillConfig};
use edgevote_queue::Queue;
use edgevote_queue::embedded::{EmbeddedQueue, EmbeddedQueueConfig};
use edgevote_shared::{
    BundleManifest, Digest32, ElectionManifest, ElectionOption, KeySet, Limits, Platform, Policy,
    Role,
};
use edgevote_signer::KeyStore;
use edgevote_store::Store;
use edgevote_store::embedded::{EmbeddedStore, EmbeddedStoreConfig};
use edgevote_store::replication::{self, Replica};
use serde::{Deserialize, Serialize};

use crate::timearg;

/// Default region names of the local stack.
const DEFAULT_REGIONS: [&str; 3] = ["eu-west-1", "us-east-1", "ap-southeast-1"];
/// Where `up` describes the running stack for `vote`, `load` and `audit`.
pub const STACK_FILE: &str = "stack.json";

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Data directory (keys, election, queues, stores); reused on restart.
    #[arg(long, default_value = "edgevote-data/up")]
    pub data_dir: PathBuf,
    /// Number of regions (1..=8).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=8))]
    pub regions: u8,
    /// Replication delay between regions, milliseconds.
    #[arg(long, default_value_t = 200)]
    pub replication_delay_ms: u64,
    /// The edge component to run (built by scripts/build-wasm.sh spin).
    #[arg(
        long,
        default_value = "target/wasm32-wasip2/release/edgevote_edge_spin.wasm"
    )]
    pub component: PathBuf,
    /// Election id created on first start.
    #[arg(long, default_value = "demo-2026")]
    pub election: String,
    /// Counting policy of a newly created election.
    #[arg(long, value_enum, default_value = "first-vote-wins")]
    pub policy: crate::cmd_election::PolicyArg,
    /// How long a newly created election stays open, e.g. 24h.
    #[arg(long, default_value = "24h")]
    pub open_for: humantime::Duration,
    /// Stop by itself after this long (for scripted runs); default: until Ctrl-C.
    #[arg(long)]
    pub stop_after: Option<humantime::Duration>,
    /// Seconds between live table refreshes.
    #[arg(long, default_value_t = 2)]
    pub refresh_secs: u64,
}

/// What `up` publishes about itself in `stack.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StackInfo {
    /// Election id.
    pub election: String,
    /// Key store directory.
    pub keys_dir: PathBuf,
    /// Signed election manifest.
    pub election_path: PathBuf,
    /// The regions.
    pub regions: Vec<RegionInfo>,
}

/// One region's endpoints.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegionInfo {
    /// Region name.
    pub name: String,
    /// Edge base URL.
    pub edge_url: String,
    /// Collector base URL (metrics, results).
    pub collector_url: String,
}

/// Reads `stack.json` of a running (or stopped) stack.
pub fn read_stack(data_dir: &Path) -> anyhow::Result<StackInfo> {
    let path = data_dir.join(STACK_FILE);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "no stack at {} (start one with: edgevote up)",
            path.display()
        )
    })?;
    serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))
}

struct Region {
    name: String,
    edge: Arc<EdgeHost>,
    collector: Arc<Collector>,
    queue: Arc<EmbeddedQueue>,
    store: Arc<EmbeddedStore>,
}

pub fn run(args: UpArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(up(args))
}

async fn up(args: UpArgs) -> anyhow::Result<ExitCode> {
    let interrupted = crate::signal::interrupt()?;
    let dir = &args.data_dir;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let store = ensure_keys(dir)?;
    let (manifest, election_path) = ensure_election(dir, &store, &args)?;
    let bundle_path = sign_bundle(dir, &store, &args.component)?;
    let names: Vec<String> = (0..usize::from(args.regions))
        .map(|i| {
            DEFAULT_REGIONS
                .get(i)
                .map_or_else(|| format!("region-{}", i + 1), |n| (*n).to_owned())
        })
        .collect();
    // Every edge's own key exists before the key set is read: the collectors verify with it.
    for name in &names {
        edge_key_path(&store, &format!("edge-{name}"), name)?;
    }
    let keys = store.keyset()?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut regions = Vec::new();
    let mut infos = Vec::new();
    let mut servers = tokio::task::JoinSet::new();
    // A restarted stack keeps its addresses when it can, so clients configured with them (a
    // load still retrying, a browser on the results page) carry on.
    let previous = read_stack(&args.data_dir).ok();
    ensure_admin_token(&args.data_dir)?;
    let auditor_token = ensure_token_file(&auditor_token_path(&args.data_dir))?;
    for name in &names {
        let before = previous
            .as_ref()
            .and_then(|p| p.regions.iter().find(|r| &r.name == name));
        let setup = RegionSetup {
            args: &args,
            store: &store,
            keys: &keys,
            manifest: &manifest,
            election_path: &election_path,
            bundle_path: &bundle_path,
            auditor_token: &auditor_token,
        };
        let (region, info) =
            start_region(name, before, &setup, stop_rx.clone(), &mut servers).await?;
        regions.push(region);
        infos.push(info);
    }
    let stack = StackInfo {
        election: manifest.id.clone(),
        keys_dir: dir.join("keys"),
        election_path: election_path.clone(),
        regions: infos,
    };
    std::fs::write(dir.join(STACK_FILE), serde_json::to_string_pretty(&stack)?)?;
    print_banner(&stack, &manifest, dir);
    let replicas: Vec<Replica> = regions
        .iter()
        .map(|r| Replica {
            region: r.name.clone(),
            store: Arc::clone(&r.store),
        })
        .collect();
    let replication_status = Arc::new(replication::ReplicationStatus::default());
    for region in &regions {
        let _ = region
            .collector
            .metrics
            .replication
            .set(Arc::clone(&replication_status));
    }
    let replicator = tokio::spawn(replication::run(
        replicas,
        Duration::from_millis(args.replication_delay_ms),
        replication_status,
        stop_rx.clone(),
    ));
    live_table_until_stopped(&regions, &manifest.id, &args, interrupted).await;
    println!("\nstopping: finishing in-flight votes and batches ...");
    let _ = stop_tx.send(true);
    while let Some(joined) = servers.join_next().await {
        if let Err(e) = joined {
            tracing::warn!(error = %e, "a server task failed");
        }
    }
    let _ = replicator.await;
    print_table(&regions, &manifest.id).await;
    println!(
        "stopped cleanly; state kept in {} (run edgevote up again to resume)",
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn ensure_keys(dir: &Path) -> anyhow::Result<KeyStore> {
    let store = KeyStore::open_or_create(dir.join("keys"))?;
    let keys = store.keyset()?;
    // Edge keys are per edge, bound to it: see `edge_key_path`.
    for role in [Role::Authority, Role::Ops, Role::Log] {
        if keys.active(role).next().is_none() {
            store.generate(role, timearg::now_secs())?;
        }
    }
    Ok(store)
}

/// The edge's key file: its stable current file in the key store
/// (`private/<edge>@<region>.current.jwk`), written now with its active key (generated if it has
/// none). `edgevote keys rotate` rewrites that file, and the running edge host, which re-reads
/// it and the key set every 2 s, switches to the successor: rotation needs no restart.
fn edge_key_path(store: &KeyStore, edge: &str, region: &str) -> anyhow::Result<PathBuf> {
    match store.edge_identity(edge, region) {
        Ok(_) => {}
        Err(edgevote_signer::SignerError::NoEdgeKey { .. }) => {
            store.generate_edge(edge, region, timearg::now_secs())?;
        }
        Err(e) => return Err(e.into()),
    }
    Ok(store.write_current_edge_key(edge, region)?)
}

fn ensure_election(
    dir: &Path,
    store: &KeyStore,
    args: &UpArgs,
) -> anyhow::Result<(ElectionManifest, PathBuf)> {
    let path = dir.join("election.jws");
    if path.is_file() {
        let manifest = crate::cmd_election::load_manifest(&path, &store.keyset()?)?;
        return Ok((manifest, path));
    }
    let now = timearg::now_secs();
    let manifest = ElectionManifest {
        v: 1,
        id: args.election.clone(),
        title: "Local demo election".into(),
        options: [("yes", "Yes"), ("no", "No"), ("blank", "Blank")]
            .iter()
            .map(|(id, label)| ElectionOption {
                id: (*id).into(),
                label: (*label).into(),
            })
            .collect(),
        opens_at: now,
        closes_at: now + args.open_for.as_secs().max(10),
        policy: match args.policy {
            crate::cmd_election::PolicyArg::FirstVoteWins => Policy::FirstVoteWins,
            crate::cmd_election::PolicyArg::LastVoteWins => Policy::LastVoteWins,
        },
        limits: Limits::default(),
        created_at: now,
    };
    let authority = store.signing_identity(Role::Authority, None)?;
    let signed = edgevote_shared::sign(&authority, &manifest)
        .map_err(|e| anyhow::anyhow!("election refused ({}): {e}", e.code()))?;
    std::fs::write(&path, signed + "\n")?;
    Ok((manifest, path))
}

fn sign_bundle(dir: &Path, store: &KeyStore, component: &Path) -> anyhow::Result<PathBuf> {
    let wasm = std::fs::read(component).with_context(|| {
        format!(
            "no edge component at {} (build it with: scripts/build-wasm.sh spin)",
            component.display()
        )
    })?;
    let manifest = BundleManifest {
        v: 1,
        name: "edgevote-edge".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        // Re-signed at every start: serial 0, so that a bundle deployed into the stack (any
        // serial) is never older, and a restart comes back on it.
        serial: 0,
        platform: Platform::WasiHttp,
        wasm_sha256: Digest32::of(&wasm),
        wasm_bytes: wasm.len() as u64,
        config_schema: Vec::new(),
        created_at: timearg::now_secs(),
    };
    let ops = store.signing_identity(Role::Ops, None)?;
    let signed = edgevote_shared::sign(&ops, &manifest)
        .map_err(|e| anyhow::anyhow!("bundle refused ({}): {e}", e.code()))?;
    let path = dir.join("edge.bundle.jws");
    std::fs::write(&path, signed + "\n")?;
    Ok(path)
}

#[allow(clippy::too_many_arguments)]
/// Binds the address of `previous_url` (`http://127.0.0.1:port`) if it is free, else any port.
async fn bind_again(previous_url: Option<&str>) -> std::io::Result<tokio::net::TcpListener> {
    let previous = previous_url
        .and_then(|url| url.strip_prefix("http://"))
        .and_then(|addr| addr.parse::<std::net::SocketAddr>().ok())
        .filter(|addr| addr.ip().is_loopback());
    if let Some(addr) = previous
        && let Ok(listener) = tokio::net::TcpListener::bind(addr).await
    {
        return Ok(listener);
    }
    tokio::net::TcpListener::bind("127.0.0.1:0").await
}

/// What every region of the stack is started from.
struct RegionSetup<'a> {
    args: &'a UpArgs,
    store: &'a KeyStore,
    keys: &'a KeySet,
    manifest: &'a ElectionManifest,
    election_path: &'a Path,
    bundle_path: &'a Path,
    /// The collectors' auditor token (their voter listing).
    auditor_token: &'a str,
}

async fn start_region(
    name: &str,
    before: Option<&RegionInfo>,
    setup: &RegionSetup<'_>,
    stop: tokio::sync::watch::Receiver<bool>,
    servers: &mut tokio::task::JoinSet<()>,
) -> anyhow::Result<(Region, RegionInfo)> {
    let RegionSetup {
        args,
        store,
        keys,
        manifest,
        election_path,
        bundle_path,
        auditor_token,
    } = *setup;
    let dir = args.data_dir.join(name);
    let queue = Arc::new(EmbeddedQueue::open(&EmbeddedQueueConfig {
        path: dir.join("queue.redb"),
        max_receives: 5,
    })?);
    let region_store = Arc::new(EmbeddedStore::open(&EmbeddedStoreConfig {
        path: dir.join("store.redb"),
    })?);
    let edge_id = format!("edge-{name}");
    let edge_key_path = edge_key_path(store, &edge_id, name)?;
    let host_config = HostConfig {
        listen_addr: "127.0.0.1:0".into(),
        edge_id,
        region: name.to_owned(),
        component_path: args.component.clone(),
        bundle_manifest_path: bundle_path.to_owned(),
        keyset_path: store.keyset_path(),
        election_paths: vec![election_path.to_owned()],
        edge_key_path,
        sealing: edgevote_edge_host::SealingMode::Host,
        max_concurrent_requests: 128,
        group_commit: GroupCommitConfig::default(),
        spill: SpillConfig {
            enabled: true,
            path: dir.join("spill.redb"),
        },
        // Every local voter comes from 127.0.0.1: per-IP limits would only throttle the demo.
        rate_limit: edgevote_edge_host::limit::RateLimitConfig {
            enabled: false,
            ..Default::default()
        },
        http: Default::default(),
        admin: edgevote_edge_host::config::AdminConfig {
            token_file: Some(admin_token_path(&args.data_dir)),
            bundle_dir: Some(dir.join("bundles")),
        },
        forward_outbound: false,
        forward_queues: Vec::new(),
        queue: edgevote_aws::backends::QueueBackendConfig::Embedded(EmbeddedQueueConfig {
            path: dir.join("queue.redb"),
            max_receives: 5,
        }),
    };
    let (edge, background) =
        edgevote_edge_host::start_with_queue(&host_config, Arc::clone(&queue) as Arc<dyn Queue>)
            .await?;
    let collector = Collector::new(
        name.to_owned(),
        Arc::clone(&queue) as Arc<dyn Queue>,
        Arc::clone(&region_store) as Arc<dyn edgevote_store::Store>,
        // The production defaults: every token verified again. It follows the key set, so a
        // rotation (`edgevote keys rotate`) needs no restart.
        Checker::new(
            keys.clone(),
            vec![manifest.clone()],
            ProcessingConfig::default().verify_tokens,
        )
        .following(store.keyset_path()),
        ProcessingConfig::default(),
    );
    let edge_listener = bind_again(before.map(|b| b.edge_url.as_str())).await?;
    let collector_listener = bind_again(before.map(|b| b.collector_url.as_str())).await?;
    let info = RegionInfo {
        name: name.to_owned(),
        edge_url: format!("http://{}", edge_listener.local_addr()?),
        collector_url: format!("http://{}", collector_listener.local_addr()?),
    };
    let stopped = |mut stop: tokio::sync::watch::Receiver<bool>| async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    let edge_server = Arc::clone(&edge);
    let edge_stop = stop.clone();
    servers.spawn(async move {
        if let Err(e) =
            edgevote_edge_host::server::serve(edge_listener, edge_server, stopped(edge_stop)).await
        {
            tracing::error!(error = %e, "edge server failed");
        }
        background.stop().await;
    });
    let http_options = edgevote_collector::http::HttpOptions::default()
        .with_auditor_token(auditor_token)
        .map_err(|e| anyhow::anyhow!("auditor token: {e}"))?;
    let collector_http =
        edgevote_collector::http::router_with(Arc::clone(&collector), http_options);
    let http_stop = stop.clone();
    servers.spawn(async move {
        if let Err(e) =
            edgevote_collector::http::serve(collector_listener, collector_http, stopped(http_stop))
                .await
        {
            tracing::error!(error = %e, "collector server failed");
        }
    });
    let running = Arc::clone(&collector);
    servers.spawn(async move { running.run(stopped(stop)).await });
    let region = Region {
        name: name.to_owned(),
        edge,
        collector,
        queue,
        store: region_store,
    };
    Ok((region, info))
}

fn print_banner(stack: &StackInfo, manifest: &ElectionManifest, dir: &Path) {
    println!(
        "edgevote local stack: {} regions, data in {}",
        stack.regions.len(),
        dir.display()
    );
    println!(
        "election {} ({}), open until {}, options: {}",
        manifest.id,
        manifest.policy.as_str(),
        timearg::show(manifest.closes_at),
        manifest
            .options
            .iter()
            .map(|o| o.id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    for region in &stack.regions {
        println!(
            "  {:<16} edge {}   collector {}",
            region.name, region.edge_url, region.collector_url
        );
    }
    println!(
        "cast a vote:   edgevote vote --up {} --choice yes",
        dir.display()
    );
    println!(
        "run a load:    edgevote load --up {} --voters 2000",
        dir.display()
    );
    println!(
        "results:       <collector>/v1/results/{0}   exact: <collector>/v1/results/{0}/final",
        manifest.id
    );
    println!(
        "check a receipt: <collector>/v1/elections/{}/votes/<vote id>?voter=<token sub>",
        manifest.id
    );
    println!(
        "voter listing (auditors): <collector>/v1/elections/{}/voters/<voter>/ballots with Authorization: Bearer $(cat {})",
        manifest.id,
        auditor_token_path(dir).display()
    );
    println!(
        "deploy a bundle: edgevote bundle deploy --host <edge> --admin-token-file {} --wasm W --manifest M",
        admin_token_path(dir).display()
    );
    println!("Ctrl-C stops everything cleanly.");
}

/// The edge hosts' admin token file of a stack.
fn admin_token_path(data_dir: &Path) -> PathBuf {
    data_dir.join("admin.token")
}

/// Creates the stack's admin token (32 random bytes, hex, mode 0600) unless it exists.
fn ensure_admin_token(data_dir: &Path) -> anyhow::Result<()> {
    ensure_token_file(&admin_token_path(data_dir)).map(drop)
}

/// The collectors' auditor token file of a stack: the bearer token of their voter listing
/// (`/v1/elections/{e}/voters/{voter}/ballots`), which `edgevote load` reconciles with.
pub fn auditor_token_path(data_dir: &Path) -> PathBuf {
    data_dir.join("auditor.token")
}

/// Creates a bearer token file (32 random bytes, hex, mode 0600) unless it exists, and
/// returns the token.
fn ensure_token_file(path: &Path) -> anyhow::Result<String> {
    if !path.exists() {
        let bytes: [u8; 32] = edgevote_signer::random::bytes()?;
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        edgevote_signer::keyfile::write_atomic(path, format!("{token}\n").as_bytes(), 0o600)?;
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text.trim().to_owned())
}

async fn live_table_until_stopped(
    regions: &[Region],
    election: &str,
    args: &UpArgs,
    interrupted: impl std::future::Future<Output = ()>,
) {
    let deadline = args.stop_after.map(|d| tokio::time::Instant::now() + *d);
    tokio::pin!(interrupted);
    loop {
        let sleep = tokio::time::sleep(Duration::from_secs(args.refresh_secs.max(1)));
        tokio::select! {
            _ = &mut interrupted => return,
            _ = sleep => {}
        }
        if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
            return;
        }
        print_table(regions, election).await;
    }
}

async fn print_table(regions: &[Region], election: &str) {
    println!(
        "{:<16} {:>9} {:>8} {:>9} {:>6} {:>8}  live tally (this region's collector)",
        "region", "votes in", "queued", "stored", "dups", "lag ms"
    );
    for r in regions {
        let stats = r.queue.stats().await.unwrap_or_default();
        let m = &r.collector.metrics;
        let live = r.store.live_tally(election).await.unwrap_or_default();
        let tally = live
            .get(&r.name)
            .map(|c| {
                c.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        println!(
            "{:<16} {:>9} {:>8} {:>9} {:>6} {:>8}  {tally}",
            r.name,
            r.edge.metrics.votes_committed.load(Ordering::Relaxed)
                + r.edge.metrics.votes_spilled.load(Ordering::Relaxed),
            stats.visible + stats.in_flight,
            m.votes_stored.load(Ordering::Relaxed),
            m.votes_duplicate.load(Ordering::Relaxed),
            m.queue_lag_ms.load(Ordering::Relaxed),
        );
    }
}

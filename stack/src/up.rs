//! The whole system on one machine. Per region: an edge host running the real signed Wasm
//! component, a durable queue, a collector and a store; the stores replicate to each other
//! asynchronously (last-writer-wins per item, like DynamoDB Global Tables). The queues and
//! stores are embedded (files in the data directory), or SQS and DynamoDB on an AWS-API
//! endpoint ([`crate::backend`]). State lives in a data directory (and, on AWS, in the
//! endpoint's services); a restart resumes it.
//!
//! [`start`] sets up the data directory (keys, election, signed bundle, token files), starts
//! every region and writes `stack.json`; [`RunningStack::watch`] reports the regions' status
//! until a shutdown future resolves; [`RunningStack::stop`] stops everything cleanly.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use edgevote_collector::config::ProcessingConfig;
use edgevote_collector::{Checker, Collector, CollectorParts};
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

use crate::backend::{AwsServices, Backend};
use crate::info::{
    AwsRegionInfo, RegionInfo, StackInfo, admin_token_path, auditor_token_path, ensure_token_file,
    load_manifest, read_stack, write_stack,
};
use crate::{BoxError, StackError, now_secs};

/// Default region names of the local stack.
const DEFAULT_REGIONS: [&str; 3] = ["eu-west-1", "us-east-1", "ap-southeast-1"];
/// Receives of a message before the queue dead-letters it (above the collectors' 3).
const MAX_RECEIVES: u32 = 5;
/// How often a region's live log gets a new signed checkpoint when it grew, milliseconds.
const LIVE_LOG_CHECKPOINT_MS: u64 = 2_000;

/// How to start a stack.
#[derive(Debug, Clone)]
pub struct UpConfig {
    /// Data directory (keys, election, queues, stores); reused on restart.
    pub data_dir: PathBuf,
    /// Number of regions.
    pub regions: u8,
    /// Replication delay between regions.
    pub replication_delay: Duration,
    /// The edge component to run.
    pub component: PathBuf,
    /// Election id created on first start.
    pub election: String,
    /// Counting policy of a newly created election.
    pub policy: Policy,
    /// How long a newly created election stays open (at least 10 s).
    pub open_for: Duration,
    /// Which queues and stores the regions run on.
    pub backend: Backend,
}

/// The names of `count` regions: the default ones, then `region-N`.
pub fn region_names(count: u8) -> Vec<String> {
    (0..usize::from(count))
        .map(|i| {
            DEFAULT_REGIONS
                .get(i)
                .map_or_else(|| format!("region-{}", i + 1), |n| (*n).to_owned())
        })
        .collect()
}

/// One region's live numbers.
#[derive(Debug, Clone)]
pub struct RegionStatus {
    /// Region name.
    pub name: String,
    /// Votes its edge made durable (committed to the queue or spilled).
    pub votes_in: u64,
    /// Messages in its queue (visible or in flight).
    pub queued: u64,
    /// Ballots its collector stored.
    pub stored: u64,
    /// Duplicate ballots its collector found.
    pub duplicates: u64,
    /// Its collector's queue lag, milliseconds.
    pub lag_ms: u64,
    /// The live tally of this region's collector.
    pub live_tally: BTreeMap<String, i64>,
}

struct Region {
    name: String,
    edge: Arc<EdgeHost>,
    collector: Arc<Collector>,
    queue: Arc<dyn Queue>,
    store: Arc<dyn Store>,
    /// The embedded store, which the in-process replication reads (embedded backend only).
    embedded_store: Option<Arc<EmbeddedStore>>,
}

/// A started stack: every region's servers and the replication links run until
/// [`RunningStack::stop`].
pub struct RunningStack {
    info: StackInfo,
    manifest: ElectionManifest,
    regions: Vec<Region>,
    stop: tokio::sync::watch::Sender<bool>,
    servers: tokio::task::JoinSet<()>,
    replicator: tokio::task::JoinHandle<()>,
    /// The AWS services (a moto server stops with them).
    aws: Option<AwsServices>,
}

/// Sets up the data directory (keys, election, signed bundle of the component, admin and
/// auditor tokens), starts every region, writes `stack.json` and starts replication.
///
/// A restarted stack keeps its addresses when it can, so clients configured with them (a load
/// still retrying, a browser on the results page) carry on.
pub async fn start(config: &UpConfig) -> Result<RunningStack, StackError> {
    let dir = &config.data_dir;
    std::fs::create_dir_all(dir).map_err(StackError::file("creating", dir))?;
    let store = ensure_keys(dir)?;
    let (manifest, election_path) = ensure_election(dir, &store, config)?;
    let bundle_path = sign_bundle(dir, &store, &config.component)?;
    let names = region_names(config.regions);
    // Every edge's own key exists before the key set is read: the collectors verify with it.
    for name in &names {
        edge_key_path(&store, &format!("edge-{name}"), name)?;
    }
    let keys = store.keyset()?;
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let mut regions = Vec::new();
    let mut infos = Vec::new();
    let mut servers = tokio::task::JoinSet::new();
    let previous = read_stack(dir).ok();
    ensure_token_file(&admin_token_path(dir))?;
    let auditor_token = ensure_token_file(&auditor_token_path(dir))?;
    let aws = match &config.backend {
        Backend::Embedded => None,
        Backend::Aws {
            endpoint_url,
            consistency,
        } => Some(
            AwsServices::start(endpoint_url.as_deref(), *consistency, &names, MAX_RECEIVES)
                .await
                .map_err(StackError::Backend)?,
        ),
    };
    let setup = RegionSetup {
        config,
        store: &store,
        keys: &keys,
        manifest: &manifest,
        election_path: &election_path,
        bundle_path: &bundle_path,
        auditor_token: &auditor_token,
    };
    for name in &names {
        let before = previous
            .as_ref()
            .and_then(|p| p.regions.iter().find(|r| &r.name == name));
        let aws_region = match &aws {
            Some(services) => Some(services.info.region(name)?),
            None => None,
        };
        let (region, info) = start_region(
            name,
            before,
            aws_region,
            &setup,
            stop_rx.clone(),
            &mut servers,
        )
        .await
        .map_err(|source| StackError::StartRegion {
            region: name.clone(),
            source,
        })?;
        regions.push(region);
        infos.push(info);
    }
    let info = StackInfo {
        election: manifest.id.clone(),
        keys_dir: dir.join("keys"),
        election_path,
        regions: infos,
        aws: aws.as_ref().map(|services| services.info.clone()),
    };
    write_stack(dir, &info)?;
    let replicator =
        start_replication(&regions, aws.as_ref(), config.replication_delay, stop_rx).await;
    Ok(RunningStack {
        info,
        manifest,
        regions,
        stop,
        servers,
        replicator,
        aws,
    })
}

/// Starts replication between the regions' stores: in process between embedded stores, or
/// between per-region DynamoDB tables (eventual consistency); nothing to do under strong
/// consistency, where every region writes one table.
async fn start_replication(
    regions: &[Region],
    aws: Option<&AwsServices>,
    delay: Duration,
    stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    if let Some(services) = aws {
        let tables = crate::backend::replicated_tables(&services.info).await;
        return tokio::spawn(async move {
            if !tables.is_empty() {
                let shipped = edgevote_aws::dynamo::replicate::run(tables, delay, stop).await;
                tracing::info!(shipped, "dynamodb replication stopped");
            }
        });
    }
    let replicas: Vec<Replica> = regions
        .iter()
        .filter_map(|r| {
            Some(Replica {
                region: r.name.clone(),
                store: Arc::clone(r.embedded_store.as_ref()?),
            })
        })
        .collect();
    let replication_status = Arc::new(replication::ReplicationStatus::default());
    for region in regions {
        let _ = region
            .collector
            .metrics
            .replication
            .set(Arc::clone(&replication_status));
    }
    tokio::spawn(replication::run(replicas, delay, replication_status, stop))
}

impl RunningStack {
    /// What `stack.json` says: the election and every region's addresses.
    pub fn info(&self) -> &StackInfo {
        &self.info
    }

    /// The stack's election.
    pub fn manifest(&self) -> &ElectionManifest {
        &self.manifest
    }

    /// Every region's live numbers now.
    pub async fn status(&self) -> Vec<RegionStatus> {
        let mut all = Vec::with_capacity(self.regions.len());
        for r in &self.regions {
            let stats = r.queue.stats().await.unwrap_or_default();
            let m = &r.collector.metrics;
            let live = r
                .store
                .live_tally(&self.manifest.id)
                .await
                .unwrap_or_default();
            all.push(RegionStatus {
                name: r.name.clone(),
                votes_in: r.edge.metrics.votes_committed.load(Ordering::Relaxed)
                    + r.edge.metrics.votes_spilled.load(Ordering::Relaxed),
                queued: stats.visible + stats.in_flight,
                stored: m.votes_stored.load(Ordering::Relaxed),
                duplicates: m.votes_duplicate.load(Ordering::Relaxed),
                lag_ms: m.queue_lag_ms.load(Ordering::Relaxed),
                live_tally: live.get(&r.name).cloned().unwrap_or_default(),
            });
        }
        all
    }

    /// Reports [`RunningStack::status`] to `on_status` every `every` (at least 1 s) until
    /// `shutdown` resolves.
    pub async fn watch(
        &self,
        shutdown: impl Future<Output = ()>,
        every: Duration,
        mut on_status: impl FnMut(&[RegionStatus]),
    ) {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(every.max(Duration::from_secs(1))) => {}
            }
            on_status(&self.status().await);
        }
    }

    /// Stops every server (in-flight votes and batches finish), then replication, and returns
    /// the regions' final numbers.
    pub async fn stop(mut self) -> Vec<RegionStatus> {
        let _ = self.stop.send(true);
        while let Some(joined) = self.servers.join_next().await {
            if let Err(e) = joined {
                tracing::warn!(error = %e, "a server task failed");
            }
        }
        let _ = (&mut self.replicator).await;
        let last = self.status().await;
        // The moto server (if any) stops last: everything above used it.
        drop(self.aws.take());
        last
    }
}

/// Gives the region's collector its live receipts log (`<region>/live-log/<election>/`),
/// signed with the stack's log key and served by the collector at `/v1/log/...`.
fn attach_live_log(
    collector: &Collector,
    store: &KeyStore,
    dir: &Path,
    region: &str,
) -> Result<(), BoxError> {
    let kid = store.active_kid(Role::Log, None)?;
    let config = edgevote_collector::live_log::LiveLogConfig {
        dir: dir.join("live-log"),
        log_key_path: store.private_key_path(&kid),
        checkpoint_interval_ms: LIVE_LOG_CHECKPOINT_MS,
    };
    let log = edgevote_collector::live_log::LiveLog::open(config, region)?;
    log.open_existing()?;
    collector
        .attach_live_log(Arc::new(log))
        .map_err(|_| "the collector already has a live log")?;
    Ok(())
}

fn ensure_keys(dir: &Path) -> Result<KeyStore, StackError> {
    let store = KeyStore::open_or_create(dir.join("keys"))?;
    let keys = store.keyset()?;
    // Edge keys are per edge, bound to it: see `edge_key_path`.
    for role in [Role::Authority, Role::Ops, Role::Log] {
        if keys.active(role).next().is_none() {
            store.generate(role, now_secs())?;
        }
    }
    Ok(store)
}

/// The edge's key file: its stable current file in the key store
/// (`private/<edge>@<region>.current.jwk`), written now with its active key (generated if it has
/// none). `edgevote keys rotate` rewrites that file, and the running edge host, which re-reads
/// it and the key set every 2 s, switches to the successor: rotation needs no restart.
fn edge_key_path(store: &KeyStore, edge: &str, region: &str) -> Result<PathBuf, StackError> {
    match store.edge_identity(edge, region) {
        Ok(_) => {}
        Err(edgevote_signer::SignerError::NoEdgeKey { .. }) => {
            store.generate_edge(edge, region, now_secs())?;
        }
        Err(e) => return Err(e.into()),
    }
    Ok(store.write_current_edge_key(edge, region)?)
}

fn ensure_election(
    dir: &Path,
    store: &KeyStore,
    config: &UpConfig,
) -> Result<(ElectionManifest, PathBuf), StackError> {
    let path = dir.join("election.jws");
    if path.is_file() {
        let manifest = load_manifest(&path, &store.keyset()?)?;
        return Ok((manifest, path));
    }
    let now = now_secs();
    let manifest = ElectionManifest {
        v: 1,
        id: config.election.clone(),
        title: "Local demo election".into(),
        options: [("yes", "Yes"), ("no", "No"), ("blank", "Blank")]
            .iter()
            .map(|(id, label)| ElectionOption {
                id: (*id).into(),
                label: (*label).into(),
            })
            .collect(),
        opens_at: now,
        closes_at: now + config.open_for.as_secs().max(10),
        policy: config.policy,
        limits: Limits::default(),
        created_at: now,
    };
    let authority = store.signing_identity(Role::Authority, None)?;
    let signed =
        edgevote_shared::sign(&authority, &manifest).map_err(|source| StackError::Refused {
            what: "election refused".into(),
            source,
        })?;
    std::fs::write(&path, signed + "\n").map_err(StackError::file("writing", &path))?;
    Ok((manifest, path))
}

fn sign_bundle(dir: &Path, store: &KeyStore, component: &Path) -> Result<PathBuf, StackError> {
    let wasm = std::fs::read(component).map_err(|source| StackError::NoComponent {
        path: component.to_owned(),
        source,
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
        created_at: now_secs(),
    };
    let ops = store.signing_identity(Role::Ops, None)?;
    let signed = edgevote_shared::sign(&ops, &manifest).map_err(|source| StackError::Refused {
        what: "bundle refused".into(),
        source,
    })?;
    let path = dir.join("edge.bundle.jws");
    std::fs::write(&path, signed + "\n").map_err(StackError::file("writing", &path))?;
    Ok(path)
}

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
    config: &'a UpConfig,
    store: &'a KeyStore,
    keys: &'a KeySet,
    manifest: &'a ElectionManifest,
    election_path: &'a Path,
    bundle_path: &'a Path,
    /// The collectors' auditor token (their voter listing).
    auditor_token: &'a str,
}

/// A region's queue and store: its embedded ones in `dir`, or its AWS services.
async fn region_backends(
    dir: &Path,
    aws: Option<&AwsRegionInfo>,
) -> Result<
    (
        Arc<dyn Queue>,
        Arc<dyn Store>,
        Option<Arc<EmbeddedStore>>,
        edgevote_aws::backends::QueueBackendConfig,
    ),
    BoxError,
> {
    if let Some(aws) = aws {
        let queue = crate::backend::aws_queue(aws).await;
        let store = crate::backend::aws_store(aws).await;
        let config = edgevote_aws::backends::QueueBackendConfig::Sqs(aws.queue.clone());
        return Ok((queue, store, None, config));
    }
    let queue_config = EmbeddedQueueConfig {
        path: dir.join("queue.redb"),
        max_receives: MAX_RECEIVES,
    };
    let queue = Arc::new(EmbeddedQueue::open(&queue_config)?);
    let store = Arc::new(EmbeddedStore::open(&EmbeddedStoreConfig {
        path: dir.join("store.redb"),
    })?);
    Ok((
        queue,
        Arc::clone(&store) as Arc<dyn Store>,
        Some(store),
        edgevote_aws::backends::QueueBackendConfig::Embedded(queue_config),
    ))
}

async fn start_region(
    name: &str,
    before: Option<&RegionInfo>,
    aws: Option<&AwsRegionInfo>,
    setup: &RegionSetup<'_>,
    stop: tokio::sync::watch::Receiver<bool>,
    servers: &mut tokio::task::JoinSet<()>,
) -> Result<(Region, RegionInfo), BoxError> {
    let RegionSetup {
        config,
        store,
        keys,
        manifest,
        election_path,
        bundle_path,
        auditor_token,
    } = *setup;
    let dir = config.data_dir.join(name);
    std::fs::create_dir_all(&dir)?;
    let (queue, region_store, embedded_store, queue_config) = region_backends(&dir, aws).await?;
    let edge_id = format!("edge-{name}");
    let edge_key_path = edge_key_path(store, &edge_id, name)?;
    let host_config = HostConfig {
        listen_addr: "127.0.0.1:0".into(),
        edge_id,
        region: name.to_owned(),
        component_path: config.component.clone(),
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
            token_file: Some(admin_token_path(&config.data_dir)),
            bundle_dir: Some(dir.join("bundles")),
        },
        forward_outbound: false,
        forward_queues: Vec::new(),
        queue: queue_config,
    };
    let (edge, background) =
        edgevote_edge_host::start_with_queue(&host_config, Arc::clone(&queue)).await?;
    let collector = Collector::new(CollectorParts {
        region: name.to_owned(),
        queue: Arc::clone(&queue),
        store: Arc::clone(&region_store),
        // The production defaults: every token verified again. It follows the key set, so a
        // rotation (`edgevote keys rotate`) needs no restart.
        checker: Checker::new(
            keys.clone(),
            vec![manifest.clone()],
            ProcessingConfig::default().verify_tokens,
        )
        .following(store.keyset_path()),
        processing: ProcessingConfig::default(),
    })?;
    attach_live_log(&collector, store, &dir, name)?;
    let edge_listener = bind_again(before.map(|b| b.edge_url.as_str())).await?;
    let collector_listener = bind_again(before.map(|b| b.collector_url.as_str())).await?;
    let info = RegionInfo {
        name: name.to_owned(),
        edge_url: format!("http://{}", edge_listener.local_addr()?),
        collector_url: format!("http://{}", collector_listener.local_addr()?),
    };
    let http_options = edgevote_collector::http::HttpOptions::default()
        .with_auditor_token(auditor_token)
        .map_err(|e| format!("auditor token: {e}"))?;
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
        embedded_store,
    };
    Ok((region, info))
}

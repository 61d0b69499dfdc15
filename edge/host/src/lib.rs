//! `edgevote edge`: our wasmtime-based edge server.
//!
//! It loads the signed edge component once (refusing one whose bundle manifest does not verify
//! against an ops key, or whose SHA-256 differs), serves it over HTTP with a fresh pooled
//! instance per request, and gives it a durable path to the regional queue: the component's
//! outbound SQS `SendMessage` is taken into group commit ([`commit`]), so concurrent votes share
//! one queue message and every voter gets the receipt only after that message is durable.
//!
//! - [`config`]: the TOML configuration;
//! - [`runtime`]: wasmtime Engine / Linker / `ProxyPre`, outbound interception;
//! - [`commit`]: group commit, spill log and its forwarder;
//! - [`server`]: the hyper front (`/metrics` and `/healthz` natively, the rest to the component);
//! - [`metrics`]: Prometheus metrics.

pub mod admin;
pub mod bundles;
pub mod commit;
pub mod config;
pub mod limit;
pub mod metrics;
pub mod runtime;
pub mod server;

use std::path::Path;
use std::sync::Arc;

use edgevote_queue::Queue;
use edgevote_queue::embedded::{EmbeddedQueue, EmbeddedQueueConfig};
use edgevote_shared::{BundleManifest, ElectionManifest, KeySet, verify};

pub use config::HostConfig;

use crate::commit::Committer;
use crate::metrics::Metrics;

/// Why the host could not start. The variant names the stage.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration file is unreadable or invalid.
    #[error("edge config {path}: {detail}")]
    Config {
        /// The file.
        path: String,
        /// What is wrong.
        detail: String,
    },
    /// An input file (key set, manifest, key, component) is unusable.
    #[error("edge {what} {path}: {detail}")]
    Input {
        /// Which input.
        what: &'static str,
        /// The file.
        path: String,
        /// What is wrong.
        detail: String,
    },
    /// The bundle does not verify: the host refuses to run it.
    #[error("refusing bundle {path}: {detail}")]
    Bundle {
        /// The component file.
        path: String,
        /// Why (code and message).
        detail: String,
    },
    /// The queue or spill log could not be opened.
    #[error(transparent)]
    Queue(#[from] edgevote_queue::QueueError),
    /// wasmtime could not load the component.
    #[error("loading the component: {0:#}")]
    Component(anyhow::Error),
}

/// A running edge host's shared state.
pub struct EdgeHost {
    /// The active bundle (and the rollback target).
    pub bundles: bundles::Bundles,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// This edge's id.
    pub edge_id: String,
    /// This edge's region.
    pub region: String,
    /// Per-IP and per-token rate limits.
    pub limiter: limit::RateLimiter,
    /// Limits of the HTTP front.
    pub http: config::HttpConfig,
    /// The admin bearer token; `None` turns the admin endpoint off.
    pub admin_token: Option<String>,
}

impl std::fmt::Debug for EdgeHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeHost")
            .field("edge_id", &self.edge_id)
            .finish_non_exhaustive()
    }
}

impl EdgeHost {
    /// The Prometheus text of this host.
    pub fn metrics_text(&self) -> String {
        self.metrics.render(&self.edge_id, &self.region)
    }
}

/// Background tasks a started host needs; stop them with [`Background::stop`].
pub struct Background {
    stop: tokio::sync::watch::Sender<bool>,
    forwarder: Option<tokio::task::JoinHandle<()>>,
}

impl Background {
    /// Stops the spill forwarder (group commit stops when the host is dropped).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.forwarder {
            let _ = task.await;
        }
    }
}

/// Reads and parses a host configuration file.
pub fn load_config(path: &Path) -> Result<HostConfig, StartError> {
    let bad = |detail: String| StartError::Config {
        path: path.display().to_string(),
        detail,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    HostConfig::parse(&text).map_err(bad)
}

fn read(what: &'static str, path: &Path) -> Result<String, StartError> {
    std::fs::read_to_string(path).map_err(|e| StartError::Input {
        what,
        path: path.display().to_string(),
        detail: e.to_string(),
    })
}

/// Verifies the component against its signed manifest and the key set's ops keys.
pub fn verify_bundle(
    component: &[u8],
    component_path: &Path,
    signed_manifest: &str,
    keys: &KeySet,
) -> Result<BundleManifest, StartError> {
    let refuse = |e: edgevote_shared::WireError| StartError::Bundle {
        path: component_path.display().to_string(),
        detail: format!("{} ({})", e, e.code()),
    };
    let verified = verify::<BundleManifest>(signed_manifest.trim(), keys).map_err(refuse)?;
    verified.doc.check_wasm(component).map_err(refuse)?;
    Ok(verified.doc)
}

/// The environment the component reads its configuration from.
pub(crate) fn component_env(
    config: &HostConfig,
    keyset_text: String,
    keys: &KeySet,
    bundle: &BundleManifest,
) -> Result<Vec<(String, String)>, StartError> {
    let mut manifests = Vec::new();
    for path in &config.election_paths {
        let text = read("election manifest", path)?;
        verify::<ElectionManifest>(text.trim(), keys).map_err(|e| StartError::Input {
            what: "election manifest",
            path: path.display().to_string(),
            detail: format!("{e} ({})", e.code()),
        })?;
        manifests.push(text.trim().to_owned());
    }
    // Reading through the key file checks its 0600 mode and its contents.
    edgevote_signer::keyfile::read(&config.edge_key_path).map_err(|e| StartError::Input {
        what: "edge key",
        path: config.edge_key_path.display().to_string(),
        detail: e.to_string(),
    })?;
    let edge_key = read("edge key", &config.edge_key_path)?;
    let (queues, access_key, secret) = if config.forward_outbound {
        (
            config.forward_queues.join(","),
            std::env::var("AWS_ACCESS_KEY_ID").unwrap_or_else(|_| "test".into()),
            std::env::var("AWS_SECRET_ACCESS_KEY").unwrap_or_else(|_| "test".into()),
        )
    } else {
        // Never leaves the host: the outbound call is intercepted into group commit.
        let url = format!("http://queue.{0}.edge.internal/{0}", config.region);
        (
            format!("{}={url}", config.region),
            "host-intercepted".into(),
            "host-intercepted".into(),
        )
    };
    Ok(vec![
        ("EDGEVOTE_KEYSET".into(), keyset_text),
        ("EDGEVOTE_ELECTIONS".into(), manifests.join("\n")),
        ("EDGEVOTE_EDGE_KEY".into(), edge_key),
        ("EDGEVOTE_EDGE_ID".into(), config.edge_id.clone()),
        ("EDGEVOTE_REGION".into(), config.region.clone()),
        ("EDGEVOTE_QUEUES".into(), queues),
        ("EDGEVOTE_BUNDLE_SHA256".into(), bundle.wasm_sha256.to_b64()),
        ("AWS_ACCESS_KEY_ID".into(), access_key),
        ("AWS_SECRET_ACCESS_KEY".into(), secret),
    ])
}

/// Builds the host: verifies the bundle, opens the queue (and spill log), starts group commit
/// and the spill forwarder, and compiles the component.
pub async fn start(config: &HostConfig) -> Result<(Arc<EdgeHost>, Background), StartError> {
    let queue: Arc<dyn Queue> = edgevote_aws::backends::open_queue(&config.queue).await?;
    start_with_queue(config, queue).await
}

/// [`start`] with an already opened queue (the local stack shares one per region; tests
/// inject failures).
pub async fn start_with_queue(
    config: &HostConfig,
    queue: Arc<dyn Queue>,
) -> Result<(Arc<EdgeHost>, Background), StartError> {
    let keyset_text = read("key set", &config.keyset_path)?;
    let keys = KeySet::parse(keyset_text.as_bytes()).map_err(|e| StartError::Input {
        what: "key set",
        path: config.keyset_path.display().to_string(),
        detail: format!("{e} ({})", e.code()),
    })?;
    let (component_path, manifest_path) = bundles::startup_paths(config);
    let component = std::fs::read(&component_path).map_err(|e| StartError::Input {
        what: "component",
        path: component_path.display().to_string(),
        detail: e.to_string(),
    })?;
    let signed = read("bundle manifest", &manifest_path)?;
    let admin_token = read_admin_token(config)?;
    let metrics = Arc::new(Metrics::default());
    let spill = open_spill(config)?;
    let (committer, _commit_task) = Committer::start(
        config.group_commit.clone(),
        Arc::clone(&queue),
        spill.clone(),
        Arc::clone(&metrics),
    );
    let loader = bundles::Loader {
        config: config.clone(),
        keyset_text,
        keys,
        committer,
        metrics: Arc::clone(&metrics),
    };
    let active = loader.load(component.into(), &component_path, signed)?;
    // Only once the bundle is verified: a refused start leaves no forwarder running.
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let forwarder = spill.map(|spill| {
        tokio::spawn(commit::forward_spill(
            spill,
            Arc::clone(&queue),
            Arc::clone(&metrics),
            stop_rx,
        ))
    });
    tracing::info!(edge = %config.edge_id, region = %config.region, bundle = %active.manifest.wasm_sha256.to_hex(), "edge host ready");
    let host = EdgeHost {
        bundles: bundles::Bundles::new(active, loader),
        metrics,
        edge_id: config.edge_id.clone(),
        region: config.region.clone(),
        limiter: limit::RateLimiter::new(&config.rate_limit),
        http: config.http.clone(),
        admin_token,
    };
    Ok((Arc::new(host), Background { stop, forwarder }))
}

/// Shortest admin token accepted.
const MIN_ADMIN_TOKEN_CHARS: usize = 32;

fn read_admin_token(config: &HostConfig) -> Result<Option<String>, StartError> {
    let Some(path) = &config.admin.token_file else {
        return Ok(None);
    };
    let token = read("admin token", path)?.trim().to_owned();
    if token.len() < MIN_ADMIN_TOKEN_CHARS {
        return Err(StartError::Input {
            what: "admin token",
            path: path.display().to_string(),
            detail: format!("the token must be at least {MIN_ADMIN_TOKEN_CHARS} characters"),
        });
    }
    Ok(Some(token))
}

fn open_spill(config: &HostConfig) -> Result<Option<Arc<EmbeddedQueue>>, StartError> {
    if !config.spill.enabled {
        return Ok(None);
    }
    let spill = EmbeddedQueue::open(&EmbeddedQueueConfig {
        path: config.spill.path.clone(),
        // The spill log must never dead-letter: it retries until the queue is back.
        max_receives: u32::MAX / 2,
    })?;
    Ok(Some(Arc::new(spill)))
}

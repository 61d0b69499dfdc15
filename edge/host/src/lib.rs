//! `edgevote edge`: our wasmtime-based edge server.
//!
//! It loads the signed edge component once (refusing one whose bundle manifest does not verify
//! against an ops key, or whose SHA-256 differs), serves it over HTTP with pooled, reused
//! instances (dropped after a trap or a missed deadline), and gives it a durable path to the regional queue through group commit
//! ([`commit`]): concurrent votes share one queue message and every voter gets the receipt only
//! after that message is durable.
//!
//! Under host sealing (the default) the edge key never enters the component: the component
//! checks each ballot and hands it over, and the host verifies the tokens of a group commit in
//! one batch, seals them into one envelope and signs the receipts, natively. Under component
//! sealing the component does all of that in Wasm and its SQS `SendMessage` is intercepted.
//!
//! - [`config`]: the TOML configuration;
//! - [`runtime`]: wasmtime Engine / Linker / `ProxyPre`, outbound interception;
//! - [`commit`]: group commit, spill log and its forwarder;
//! - [`sealer`]: the edge key, following the published key set and key file at runtime;
//! - [`server`]: the hyper front (`/metrics` and `/healthz` natively, the rest to the component);
//! - [`front`]: the screen that refuses malformed request heads before any Wasm runs;
//! - [`metrics`]: Prometheus metrics.

pub mod accept;
pub mod admin;
pub mod bundle_dir;
pub mod bundles;
pub mod commit;
pub mod config;
pub mod front;
pub mod limit;
pub mod metrics;
pub mod pace;
pub mod protocol;
pub mod runtime;
pub mod sealer;
pub mod server;

use std::path::Path;
use std::sync::Arc;

use edgevote_edge_core::{Edge, Sealing, ServedElection};
use edgevote_queue::Queue;
use edgevote_queue::embedded::{EmbeddedQueue, EmbeddedQueueConfig};
use edgevote_shared::{BundleManifest, ElectionManifest, KeySet, verify};

pub use config::{HostConfig, SealingMode};

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
        /// The stable error code (`bundle_mismatch`, `key_role_mismatch`, ...).
        code: &'static str,
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
    /// The edge key and the latest key set, followed at runtime (`GET /v1/keys` serves it).
    pub sealer: Arc<sealer::Sealer>,
    /// Under host sealing: a keyless native edge that runs the core's checks on a vote before
    /// any Wasm does, so a ballot the host would refuse at hand-over is refused at once.
    pub prescreen: Option<Edge>,
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
    keys: tokio::task::JoinHandle<()>,
}

impl Background {
    /// Stops the spill forwarder and the key follower (group commit stops when the host is
    /// dropped).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.forwarder {
            let _ = task.await;
        }
        let _ = self.keys.await;
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
        code: e.code(),
        detail: format!("{} ({})", e, e.code()),
    };
    let verified = verify::<BundleManifest>(signed_manifest.trim(), keys).map_err(refuse)?;
    verified.doc.check_wasm(component).map_err(refuse)?;
    Ok(verified.doc)
}

/// Reads and verifies the election manifests the edge serves.
fn load_elections(config: &HostConfig, keys: &KeySet) -> Result<Vec<ServedElection>, StartError> {
    config
        .election_paths
        .iter()
        .map(|path| {
            let signed = read("election manifest", path)?.trim().to_owned();
            let manifest = verify::<ElectionManifest>(&signed, keys)
                .map_err(|e| StartError::Input {
                    what: "election manifest",
                    path: path.display().to_string(),
                    detail: format!("{e} ({})", e.code()),
                })?
                .doc;
            Ok(ServedElection { manifest, signed })
        })
        .collect()
}

/// The native sealer that verifies, seals and signs for the component (host sealing), and
/// under component sealing checks the component's envelopes' keys. Reading through the key
/// file checks its 0600 mode and its contents; the key must be bound to this edge and valid
/// now. It then follows the key file and key set ([`sealer`]).
fn native_sealer(
    config: &HostConfig,
    keys: &KeySet,
    keyset_text: &str,
    elections: Vec<ServedElection>,
    metrics: &Arc<Metrics>,
) -> Result<sealer::Sealer, StartError> {
    let refuse = |detail: String| StartError::Input {
        what: "edge key",
        path: config.edge_key_path.display().to_string(),
        detail,
    };
    let signer =
        edgevote_signer::keyfile::read(&config.edge_key_path).map_err(|e| refuse(e.to_string()))?;
    sealer::Sealer::new(
        signer,
        keys.clone(),
        keyset_text.to_owned(),
        elections,
        &config.edge_id,
        &config.region,
        config.keyset_path.clone(),
        config.edge_key_path.clone(),
        Arc::clone(metrics),
    )
    .map_err(refuse)
}

/// The environment the component reads its configuration from. Under host sealing it holds no
/// key, no queue and no credentials.
pub(crate) fn component_env(
    config: &HostConfig,
    keyset_text: String,
    elections: &[ServedElection],
    bundle: &BundleManifest,
) -> Result<Vec<(String, String)>, StartError> {
    let manifests: Vec<&str> = elections.iter().map(|e| e.signed.as_str()).collect();
    let mut env: Vec<(String, String)> = vec![
        ("EDGEVOTE_KEYSET".into(), keyset_text),
        ("EDGEVOTE_ELECTIONS".into(), manifests.join("\n")),
        ("EDGEVOTE_EDGE_ID".into(), config.edge_id.clone()),
        ("EDGEVOTE_REGION".into(), config.region.clone()),
        ("EDGEVOTE_BUNDLE_SHA256".into(), bundle.wasm_sha256.to_b64()),
    ];
    match config.sealing {
        SealingMode::Host => env.push(("EDGEVOTE_SEALING".into(), "host".into())),
        SealingMode::Component => env.extend(local_sealing_env(config)?),
    }
    Ok(env)
}

/// What a component that seals itself needs besides the common variables: its key, its
/// queues and the queues' credentials.
fn local_sealing_env(config: &HostConfig) -> Result<Vec<(String, String)>, StartError> {
    let mut env: Vec<(String, String)> = vec![
        ("EDGEVOTE_SEALING".into(), "component".into()),
        (
            "EDGEVOTE_EDGE_KEY".into(),
            read("edge key", &config.edge_key_path)?,
        ),
    ];
    if config.forward_outbound {
        env.extend([
            ("EDGEVOTE_QUEUES".into(), config.forward_queues.join(",")),
            (
                "AWS_ACCESS_KEY_ID".into(),
                std::env::var("AWS_ACCESS_KEY_ID").unwrap_or_else(|_| "test".into()),
            ),
            (
                "AWS_SECRET_ACCESS_KEY".into(),
                std::env::var("AWS_SECRET_ACCESS_KEY").unwrap_or_else(|_| "test".into()),
            ),
        ]);
    } else {
        // Never leaves the host: the outbound call is taken into group commit, so it needs no
        // credentials, and signing it would be spent work (SigV4 was 8% of a component-sealed
        // vote's CPU).
        let url = format!("http://queue.{0}.edge.internal/{0}", config.region);
        env.extend([
            ("EDGEVOTE_QUEUES".into(), format!("{}={url}", config.region)),
            ("EDGEVOTE_QUEUE_AUTH".into(), "none".into()),
        ]);
    }
    Ok(env)
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
    let startup = bundles::startup_bundle(config, &keys)?;
    let admin_token = read_admin_token(config)?;
    let elections = load_elections(config, &keys)?;
    let metrics = Arc::new(Metrics::default());
    let sealer = Arc::new(native_sealer(
        config,
        &keys,
        &keyset_text,
        elections.clone(),
        &metrics,
    )?);
    let spill = open_spill(config)?;
    let (committer, _commit_task) = Committer::start(
        config.group_commit.clone(),
        Arc::clone(&queue),
        spill.clone(),
        Arc::clone(&sealer),
        Arc::clone(&metrics),
    );
    let prescreen = (config.sealing == SealingMode::Host).then(|| {
        Edge::with_sealing(
            elections.clone(),
            keys.clone(),
            Sealing::Host,
            &config.edge_id,
            &config.region,
            None,
        )
    });
    let loader = bundles::Loader {
        config: config.clone(),
        keyset_text,
        keys,
        elections,
        sealer: Arc::clone(&sealer),
        committer,
        metrics: Arc::clone(&metrics),
    };
    let active = loader.compile(startup.manifest, startup.wasm.into(), startup.signed)?;
    // Only once the bundle is verified: a refused start leaves no forwarder running.
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let forwarder = spill.map(|spill| {
        tokio::spawn(commit::forward_spill(
            spill,
            Arc::clone(&queue),
            Arc::clone(&metrics),
            stop_rx.clone(),
        ))
    });
    let keys_task = tokio::spawn(sealer::follow_keys(Arc::clone(&sealer), stop_rx));
    tracing::info!(edge = %config.edge_id, region = %config.region, bundle = %active.manifest.wasm_sha256.to_hex(), "edge host ready");
    let host = EdgeHost {
        bundles: bundles::Bundles::new(active, loader),
        metrics,
        edge_id: config.edge_id.clone(),
        region: config.region.clone(),
        limiter: limit::RateLimiter::new(&config.rate_limit),
        http: config.http.clone(),
        admin_token,
        sealer,
        prescreen,
    };
    Ok((
        Arc::new(host),
        Background {
            stop,
            forwarder,
            keys: keys_task,
        },
    ))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn config(sealing: &str) -> HostConfig {
        HostConfig::parse(&format!(
            r#"edge_id = "e1"
region = "r1"
sealing = "{sealing}"
component_path = "c.wasm"
bundle_manifest_path = "b.jws"
keyset_path = "keyset.json"
election_paths = []
edge_key_path = "/nonexistent/edge.jwk"
[queue]
backend = "embedded"
path = "q.redb"
"#
        ))
        .expect("valid config")
    }

    fn bundle() -> BundleManifest {
        BundleManifest {
            v: 1,
            name: "edge".into(),
            version: "1".into(),
            serial: 1,
            platform: edgevote_shared::Platform::WasiHttp,
            wasm_sha256: edgevote_shared::Digest32::of(b"wasm"),
            wasm_bytes: 4,
            config_schema: vec![],
            created_at: 0,
        }
    }

    #[test]
    fn http2_streams_per_connection_out_of_bounds_are_refused() {
        let text = |streams: u32| {
            format!(
                "edge_id = \"e1\"\nregion = \"r1\"\ncomponent_path = \"c.wasm\"\n\
                 bundle_manifest_path = \"b.jws\"\nkeyset_path = \"k.json\"\n\
                 election_paths = []\nedge_key_path = \"e.jwk\"\n\
                 [queue]\nbackend = \"embedded\"\npath = \"q.redb\"\n\
                 [http]\nhttp2_max_streams_per_connection = {streams}\n"
            )
        };
        for bad in [0, 1001] {
            let refused = HostConfig::parse(&text(bad)).expect_err("out of bounds");
            assert!(
                refused.contains("http2_max_streams_per_connection"),
                "{refused}"
            );
        }
        let parsed = HostConfig::parse(&text(1000)).expect("in bounds");
        assert_eq!(parsed.http.http2_max_streams_per_connection, 1000);
    }

    #[test]
    fn group_commit_stretching_out_of_bounds_is_refused_and_on_the_backlog_by_default() {
        let text = |group_commit: &str| {
            format!(
                "edge_id = \"e1\"\nregion = \"r1\"\ncomponent_path = \"c.wasm\"\n\
                 bundle_manifest_path = \"b.jws\"\nkeyset_path = \"k.json\"\n\
                 election_paths = []\nedge_key_path = \"e.jwk\"\n\
                 [queue]\nbackend = \"embedded\"\npath = \"q.redb\"\n\
                 [group_commit]\n{group_commit}\n"
            )
        };
        for (bad, key) in [
            ("max_wait_overloaded_ms = 1001", "max_wait_overloaded_ms"),
            ("overload_lag_ms = 60001", "overload_lag_ms"),
            ("overload_lag_ms = -1", "overload_lag_ms"),
            ("overload_lag = 20", "overload_lag"),
            ("overload_backlog_votes = 1000001", "overload_backlog_votes"),
            (
                "overload_backlog_votes = 128\noverload_lag_ms = 20",
                "not both",
            ),
            // The backlog trigger is on by default: the lag alone is two triggers.
            ("overload_lag_ms = 20", "overload_backlog_votes = 0"),
        ] {
            let refused = HostConfig::parse(&text(bad)).expect_err(bad);
            assert!(refused.contains(key), "{bad}: {refused}");
        }
        let defaults = HostConfig::parse(&text("")).expect("defaults").group_commit;
        assert_eq!(defaults.overload_lag_ms, 0);
        assert_eq!(defaults.overload_backlog_votes, 64);
        assert_eq!(
            defaults.stretched_wait(),
            Some(std::time::Duration::from_millis(75))
        );
        let off = HostConfig::parse(&text("overload_backlog_votes = 0"))
            .expect("in bounds")
            .group_commit;
        assert_eq!(off.stretched_wait(), None);
        let on = HostConfig::parse(&text(
            "overload_backlog_votes = 0\noverload_lag_ms = 20\nmax_wait_overloaded_ms = 1000",
        ))
        .expect("in bounds")
        .group_commit;
        assert_eq!((on.overload_lag_ms, on.max_wait_overloaded_ms), (20, 1000));
    }

    #[test]
    fn host_sealing_gives_the_component_no_key_queue_or_credentials() {
        let env = component_env(&config("host"), "{}".into(), &[], &bundle())
            .expect("host sealing reads no key file");
        let names: Vec<&str> = env.iter().map(|(name, _)| name.as_str()).collect();
        assert!(names.contains(&"EDGEVOTE_SEALING"));
        for secret in [
            "EDGEVOTE_EDGE_KEY",
            "EDGEVOTE_QUEUES",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
        ] {
            assert!(!names.contains(&secret), "{secret} given to the component");
        }
    }

    #[test]
    fn component_sealing_in_the_host_gets_no_credentials_and_sends_unsigned() {
        let dir = tempfile::tempdir().expect("temp dir");
        let key = dir.path().join("edge.jwk");
        std::fs::write(&key, "{}").expect("key file");
        let mut config = config("component");
        config.edge_key_path = key;
        let env = component_env(&config, "{}".into(), &[], &bundle()).expect("key file read");
        let value = |name: &str| env.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
        assert_eq!(value("EDGEVOTE_QUEUE_AUTH"), Some("none"));
        assert_eq!(
            value("EDGEVOTE_QUEUES"),
            Some("r1=http://queue.r1.edge.internal/r1")
        );
        for secret in [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
        ] {
            assert_eq!(value(secret), None, "{secret} given to the component");
        }
    }

    #[test]
    fn component_sealing_needs_the_key_file() {
        let refused = component_env(&config("component"), "{}".into(), &[], &bundle());
        assert!(matches!(
            refused,
            Err(StartError::Input {
                what: "edge key",
                ..
            })
        ));
    }

    #[test]
    fn forwarding_needs_component_sealing_and_unknown_modes_are_refused() {
        let text = |extra: &str| {
            format!(
                "edge_id = \"e1\"\nregion = \"r1\"\ncomponent_path = \"c\"\n\
                 bundle_manifest_path = \"b\"\nkeyset_path = \"k\"\nelection_paths = []\n\
                 edge_key_path = \"e\"\n{extra}\n[queue]\nbackend = \"embedded\"\npath = \"q\"\n"
            )
        };
        let forward = "forward_outbound = true\nforward_queues = [\"r1=http://q\"]";
        let refused = HostConfig::parse(&text(forward)).expect_err("forwarding under host sealing");
        assert!(refused.contains("sealing = \"component\""), "{refused}");
        assert!(HostConfig::parse(&text(&format!("{forward}\nsealing = \"component\""))).is_ok());
        let unknown = HostConfig::parse(&text("sealing = \"wasm\"")).expect_err("unknown mode");
        assert!(unknown.contains("sealing"), "{unknown}");
    }
}

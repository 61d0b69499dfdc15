//! The region's live receipts log: every vote id this collector stores (or finds already
//! stored) is appended, before its queue message is deleted, to an append-only RFC 6962 log per
//! election, kept in the C2SP tlog-tiles layout ([`edgevote_audit::tiles`]). A signed
//! checkpoint (origin `edgevote/<election>/live/<region>`, signed by the `log` key) is written
//! every `checkpoint_interval_ms` when the log grew. The collector serves it all over HTTP:
//!
//! - `GET /v1/log/{election}/checkpoint`: the latest signed checkpoint;
//! - `GET /v1/log/{election}/tile/...`: hash tiles and entry bundles (static, immutable once
//!   full);
//! - `GET /v1/log/{election}/index/{vote_id}`: `{"index": n}`, the leaf a vote id is at (the
//!   entries are public anyway; this saves a client from reading every bundle).
//!
//! So a voter can prove, minutes after voting, that their vote id is in the region's log
//! (`edgevote verify receipt --log URL`), and anyone can follow the log and check that each new
//! checkpoint extends the last one.
//!
//! Appending is part of storing: a message whose ballots are stored but not yet appended is not
//! deleted, so after a crash it comes back, its ballots come out `Duplicate`, and they are
//! appended then (the tile log skips entries it already holds).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use edgevote_audit::tiles::{TileError, TileLog};
use edgevote_shared::checkpoint::Checkpoint;
use edgevote_shared::{Digest32, SigningIdentity};
use serde::Deserialize;

/// The live log settings (`[live_log]` in the collector's TOML).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiveLogConfig {
    /// Folder of the logs, one sub-folder per election.
    pub dir: PathBuf,
    /// The `log` role's private key file (JWK, 0600), which signs the checkpoints.
    pub log_key_path: PathBuf,
    /// How often a grown log gets a new signed checkpoint, milliseconds (100..=60000).
    #[serde(default = "default_checkpoint_interval_ms")]
    pub checkpoint_interval_ms: u64,
}

fn default_checkpoint_interval_ms() -> u64 {
    2_000
}

impl LiveLogConfig {
    /// The checkpoint interval.
    pub fn checkpoint_interval(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.checkpoint_interval_ms)
    }
}

/// Why the live log failed. The variant names the stage.
#[derive(Debug, thiserror::Error)]
pub enum LiveLogError {
    /// The log key could not be read, or is not a `log` key.
    #[error("live log key {path}: {detail}")]
    Key {
        /// The key file.
        path: String,
        /// What is wrong.
        detail: String,
    },
    /// A setting is out of its bounds.
    #[error("live_log.checkpoint_interval_ms must be 100..=60000, not {0}")]
    Interval(u64),
    /// Appending, reading or signing failed.
    #[error(transparent)]
    Tiles(#[from] TileError),
    /// The checkpoint could not be signed.
    #[error("signing a checkpoint: {0}")]
    Sign(edgevote_shared::WireError),
}

/// One election's log and the size of its last checkpoint.
struct ElectionLog {
    tiles: TileLog,
    checkpointed: Option<u64>,
}

/// The live logs of one region's collector.
pub struct LiveLog {
    config: LiveLogConfig,
    region: String,
    key: SigningIdentity,
    logs: Mutex<BTreeMap<String, Arc<Mutex<ElectionLog>>>>,
}

impl std::fmt::Debug for LiveLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveLog")
            .field("dir", &self.config.dir)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

/// The origin of `region`'s live log of `election`.
pub fn origin(election: &str, region: &str) -> String {
    format!("edgevote/{election}/live/{region}")
}

impl LiveLog {
    /// The live logs of `region`, signed with the key at `config.log_key_path`.
    pub fn open(config: LiveLogConfig, region: &str) -> Result<Self, LiveLogError> {
        if !(100..=60_000).contains(&config.checkpoint_interval_ms) {
            return Err(LiveLogError::Interval(config.checkpoint_interval_ms));
        }
        let path = config.log_key_path.display().to_string();
        let key = edgevote_signer::keyfile::read(&config.log_key_path).map_err(|e| {
            LiveLogError::Key {
                path: path.clone(),
                detail: e.to_string(),
            }
        })?;
        if key.role() != edgevote_shared::Role::Log {
            return Err(LiveLogError::Key {
                path,
                detail: format!("a {} key, not a log key", key.role()),
            });
        }
        Ok(LiveLog {
            config,
            region: region.to_owned(),
            key,
            logs: Mutex::new(BTreeMap::new()),
        })
    }

    /// The settings.
    pub fn config(&self) -> &LiveLogConfig {
        &self.config
    }

    /// The folder of `election`'s log.
    pub fn election_dir(&self, election: &str) -> PathBuf {
        self.config.dir.join(election)
    }

    fn election(&self, election: &str) -> Result<Arc<Mutex<ElectionLog>>, LiveLogError> {
        let mut logs = self.logs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(log) = logs.get(election) {
            return Ok(Arc::clone(log));
        }
        let tiles = TileLog::open(&self.election_dir(election))?;
        let log = Arc::new(Mutex::new(ElectionLog {
            tiles,
            checkpointed: None,
        }));
        logs.insert(election.to_owned(), Arc::clone(&log));
        Ok(log)
    }

    /// Appends to `election`'s log the vote ids the store just `stored` and those it reported as
    /// `duplicates` (a crash between a store write and its append), each only if the log lacks
    /// it: the log never trusts the store's word that a vote id is new. Durable when it
    /// returns. File I/O: off the async threads.
    pub async fn append(
        self: &Arc<Self>,
        election: &str,
        stored: Vec<Digest32>,
        duplicates: Vec<Digest32>,
    ) -> Result<u64, LiveLogError> {
        let this = Arc::clone(self);
        let election = election.to_owned();
        tokio::task::spawn_blocking(move || {
            let log = this.election(&election)?;
            let ids: Vec<String> = stored
                .iter()
                .chain(&duplicates)
                .map(Digest32::to_b64)
                .collect();
            let entries: Vec<&[u8]> = ids.iter().map(String::as_bytes).collect();
            let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
            Ok(log.tiles.append(&entries)?)
        })
        .await
        .unwrap_or_else(|e| panic!("live log append task failed: {e}"))
    }

    /// Signs and writes a checkpoint for every log that grew since its last one.
    pub fn checkpoint_all(&self) -> Result<(), LiveLogError> {
        let logs: Vec<(String, Arc<Mutex<ElectionLog>>)> = {
            let logs = self.logs.lock().unwrap_or_else(|p| p.into_inner());
            logs.iter()
                .map(|(e, l)| (e.clone(), Arc::clone(l)))
                .collect()
        };
        for (election, log) in logs {
            let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
            let size = log.tiles.size();
            if log.checkpointed == Some(size) {
                continue;
            }
            log.tiles.sync_index()?;
            let checkpoint = Checkpoint {
                origin: origin(&election, &self.region),
                size,
                root: log.tiles.root()?,
            };
            let note = checkpoint.sign(&self.key).map_err(LiveLogError::Sign)?;
            edgevote_audit::tiles::write_file(log.tiles.dir(), "checkpoint", note.as_bytes())?;
            log.checkpointed = Some(size);
        }
        Ok(())
    }

    /// Opens the logs already on disk (after a restart), so they are served and checkpointed.
    pub fn open_existing(&self) -> Result<(), LiveLogError> {
        let Ok(entries) = std::fs::read_dir(&self.config.dir) else {
            return Ok(());
        };
        for entry in entries.flatten() {
            if entry.path().join("size").is_file() {
                self.election(&entry.file_name().to_string_lossy())?;
            }
        }
        Ok(())
    }

    /// The leaf index of `vote_id` in `election`'s log.
    fn index_of(&self, election: &str, vote_id: &str) -> Result<Option<u64>, LiveLogError> {
        if !self.election_dir(election).join("size").is_file() {
            return Ok(None);
        }
        let log = self.election(election)?;
        let log = log.lock().unwrap_or_else(|p| p.into_inner());
        Ok(log.tiles.index_of(vote_id.as_bytes())?)
    }
}

/// The routes of the live logs (see the module docs).
pub fn router(log: Arc<LiveLog>) -> Router {
    Router::new()
        .route("/v1/log/{election}/checkpoint", get(checkpoint))
        .route("/v1/log/{election}/tile/{*path}", get(tile))
        .route("/v1/log/{election}/index/{vote_id}", get(index))
        .layer(axum::middleware::map_response(
            edgevote_audit::serve::allow_any_origin,
        ))
        .with_state(log)
}

fn not_found(detail: impl std::fmt::Display) -> Response {
    let body = serde_json::json!({"error": "not_found", "detail": detail.to_string()});
    (StatusCode::NOT_FOUND, axum::Json(body)).into_response()
}

/// A file of `election`'s log, if `election` and `path` name one (nothing outside the log's
/// folder: ids and tile paths have no `..`).
async fn file(log: &LiveLog, election: &str, path: &str) -> Response {
    let safe_path = path
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.'))
        && !path.contains("..");
    if edgevote_shared::validate::check_id("election", election).is_err() || !safe_path {
        return not_found("no such log file");
    }
    let full = log.election_dir(election).join(path);
    match tokio::fs::read(&full).await {
        Ok(bytes) => ([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response(),
        Err(_) => not_found(format!("{election}/{path}")),
    }
}

async fn checkpoint(
    State(log): State<Arc<LiveLog>>,
    UrlPath(election): UrlPath<String>,
) -> Response {
    file(&log, &election, "checkpoint").await
}

async fn tile(
    State(log): State<Arc<LiveLog>>,
    UrlPath((election, path)): UrlPath<(String, String)>,
) -> Response {
    file(&log, &election, &format!("tile/{path}")).await
}

async fn index(
    State(log): State<Arc<LiveLog>>,
    UrlPath((election, vote_id)): UrlPath<(String, String)>,
) -> Response {
    if edgevote_shared::validate::check_id("election", &election).is_err()
        || edgevote_shared::b64::decode("vote_id", &vote_id).map_or(true, |b| b.len() != 32)
    {
        return not_found("no such vote id");
    }
    let log2 = Arc::clone(&log);
    let found = tokio::task::spawn_blocking(move || log2.index_of(&election, &vote_id))
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()));
    match found {
        Ok(Some(index)) => axum::Json(serde_json::json!({"index": index})).into_response(),
        Ok(None) => not_found("vote id not in the live log (yet)"),
        Err(detail) => {
            let body = serde_json::json!({"error": "log_unavailable", "detail": detail});
            (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
        }
    }
}

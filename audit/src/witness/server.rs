//! The witness server: C2SP `tlog-witness` `add-checkpoint` (see the module docs of
//! [`crate::witness`] for the request and its answers).
//!
//! Checking the old size against the stored head, verifying the proof, storing the new head and
//! cosigning happen under one lock, and the head is on disk before the cosignature is answered:
//! two concurrent requests can never roll the witness back, and a crash never loses a head it
//! cosigned.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use ed25519_dalek::VerifyingKey;
use edgevote_shared::WireError;
use edgevote_shared::b64;
use edgevote_shared::checkpoint::{Checkpoint, parse_verifier_key};
use edgevote_shared::cosignature::Witness;
use edgevote_shared::merkle::{self, Hash};

use crate::witness::config::WitnessConfig;
use crate::witness::state::Heads;
use crate::witness::{
    ADD_CHECKPOINT_PATH, MAX_PROOF_LINES, MAX_REQUEST_BYTES, SIZE_CONTENT_TYPE, code,
};

/// The witness's clock: unix seconds, read once per cosignature.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// Why the witness could not start or store its state; each variant names the stage.
#[derive(Debug, thiserror::Error)]
pub enum WitnessError {
    /// The configuration file is invalid.
    #[error("witness configuration: {0}")]
    Config(String),
    /// The witness's private key does not parse.
    #[error("witness private key: {0}")]
    Key(WireError),
    /// A log's verifier key does not parse.
    #[error("the verifier key of log {origin}")]
    LogKey {
        /// The log's origin.
        origin: String,
        /// Why the key was refused.
        source: WireError,
    },
    /// The state file could not be read or does not parse.
    #[error("reading the witness state {}: {detail}", path.display())]
    State {
        /// The state file.
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },
    /// Writing the state file failed.
    #[error("writing the witness state: {0}")]
    StateWrite(String),
}

/// Everything a witness service is built from.
pub struct WitnessParts {
    /// The witness's name and private key.
    pub witness: Witness,
    /// The logs it witnesses: origin → the log's Ed25519 key.
    pub logs: BTreeMap<String, VerifyingKey>,
    /// The state file (the last cosigned head of each origin).
    pub state_path: PathBuf,
    /// The clock that dates cosignatures.
    pub clock: Clock,
}

impl WitnessParts {
    /// The parts named by `config`, with the private key file's text and a clock.
    pub fn from_config(
        config: &WitnessConfig,
        private_key: &str,
        clock: Clock,
    ) -> Result<Self, WitnessError> {
        let witness = Witness::parse_private_key(private_key).map_err(WitnessError::Key)?;
        let logs = config
            .logs
            .iter()
            .map(|log| {
                parse_verifier_key(&log.vkey)
                    .map(|(_, key)| (log.origin.clone(), key))
                    .map_err(|source| WitnessError::LogKey {
                        origin: log.origin.clone(),
                        source,
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(WitnessParts {
            witness,
            logs,
            state_path: config.state_path.clone(),
            clock,
        })
    }
}

/// A running witness: its key, its logs and the heads it cosigned.
pub struct WitnessService {
    witness: Witness,
    logs: BTreeMap<String, VerifyingKey>,
    state_path: PathBuf,
    clock: Clock,
    heads: tokio::sync::Mutex<Heads>,
}

impl std::fmt::Debug for WitnessService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WitnessService")
            .field("witness", &self.witness)
            .field("logs", &self.logs.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// The witness's answer to one `add-checkpoint` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// 200: the cosignature line(s).
    Cosigned(String),
    /// 409 `text/x.tlog.size`: the old size is not the witness's current size (given).
    SizeConflict(u64),
    /// Any other refusal: its status, stable code and detail.
    Refused {
        /// The HTTP status.
        status: StatusCode,
        /// The stable code.
        code: &'static str,
        /// What was wrong, for people.
        detail: String,
    },
}

fn refused(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Answer {
    Answer::Refused {
        status,
        code,
        detail: detail.into(),
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        match self {
            Answer::Cosigned(lines) => {
                ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], lines).into_response()
            }
            Answer::SizeConflict(size) => (
                StatusCode::CONFLICT,
                [(header::CONTENT_TYPE, SIZE_CONTENT_TYPE)],
                format!("{size}\n"),
            )
                .into_response(),
            Answer::Refused {
                status,
                code,
                detail,
            } => (
                status,
                axum::Json(serde_json::json!({"error": code, "detail": detail})),
            )
                .into_response(),
        }
    }
}

/// A parsed `add-checkpoint` request.
struct AddCheckpoint<'a> {
    old_size: u64,
    proof: Vec<Hash>,
    note: &'a str,
}

fn malformed(detail: &str) -> Answer {
    refused(StatusCode::BAD_REQUEST, code::MALFORMED_REQUEST, detail)
}

/// A canonical decimal (no sign, no leading zeros).
fn decimal(text: &str) -> Option<u64> {
    text.parse().ok().filter(|n: &u64| n.to_string() == text)
}

fn parse_request(body: &[u8]) -> Result<AddCheckpoint<'_>, Answer> {
    let text = std::str::from_utf8(body).map_err(|_| malformed("the body is not UTF-8"))?;
    let (head, note) = text
        .split_once("\n\n")
        .ok_or_else(|| malformed("no blank line before the checkpoint"))?;
    let mut lines = head.split('\n');
    let old_size = lines
        .next()
        .and_then(|line| line.strip_prefix("old "))
        .and_then(decimal)
        .ok_or_else(|| malformed("the first line must be `old <decimal size>`"))?;
    if head.split('\n').count() > 1 + MAX_PROOF_LINES {
        return Err(malformed("more than 63 consistency proof lines"));
    }
    let proof = lines
        .map(|line| {
            b64::decode_std("proof", line)
                .ok()
                .and_then(|raw| Hash::try_from(raw).ok())
        })
        .collect::<Option<Vec<Hash>>>()
        .ok_or_else(|| malformed("a proof line is not a base64 32-byte hash"))?;
    Ok(AddCheckpoint {
        old_size,
        proof,
        note,
    })
}

impl WitnessService {
    /// Builds the service and reads its state file.
    pub fn open(parts: WitnessParts) -> Result<Self, WitnessError> {
        let heads = Heads::load(&parts.state_path)?;
        Ok(WitnessService {
            witness: parts.witness,
            logs: parts.logs,
            state_path: parts.state_path,
            clock: parts.clock,
            heads: tokio::sync::Mutex::new(heads),
        })
    }

    /// Handles one `add-checkpoint` request body.
    pub async fn add_checkpoint(&self, body: &[u8]) -> Answer {
        match self.try_add(body).await {
            Ok(lines) => Answer::Cosigned(lines),
            Err(answer) => answer,
        }
    }

    /// The checkpoint of a request, verified with its log's key.
    fn verified(&self, request: &AddCheckpoint<'_>) -> Result<Checkpoint, Answer> {
        let origin = request.note.split('\n').next().unwrap_or_default();
        let key = self.logs.get(origin).ok_or_else(|| {
            refused(
                StatusCode::NOT_FOUND,
                code::UNKNOWN_ORIGIN,
                format!("this witness does not witness {origin:?}"),
            )
        })?;
        let checkpoint = Checkpoint::verify(request.note, key).map_err(|e| match e {
            WireError::BadSignature => refused(
                StatusCode::FORBIDDEN,
                e.code(),
                "no signature by the log's key verifies",
            ),
            other => refused(StatusCode::BAD_REQUEST, other.code(), other.to_string()),
        })?;
        if request.old_size > checkpoint.size {
            return Err(malformed("the old size is larger than the checkpoint's"));
        }
        Ok(checkpoint)
    }

    async fn try_add(&self, body: &[u8]) -> Result<String, Answer> {
        let request = parse_request(body)?;
        let checkpoint = self.verified(&request)?;
        let mut heads = self.heads.lock().await;
        let (size, root) = heads.get(&checkpoint.origin);
        if request.old_size != size {
            return Err(Answer::SizeConflict(size));
        }
        if checkpoint.size == size && checkpoint.root != root {
            return Err(refused(
                StatusCode::CONFLICT,
                code::SPLIT_VIEW,
                format!("this witness cosigned another root for size {size}"),
            ));
        }
        if !merkle::verify_consistency(
            size,
            checkpoint.size,
            &root,
            &checkpoint.root,
            &request.proof,
        ) {
            return Err(refused(
                StatusCode::UNPROCESSABLE_ENTITY,
                code::NOT_CONSISTENT,
                format!("the proof from size {size} to {} fails", checkpoint.size),
            ));
        }
        let line = self
            .witness
            .cosign(&checkpoint, (self.clock)())
            .map_err(|e| refused(StatusCode::INTERNAL_SERVER_ERROR, e.code(), e.to_string()))?;
        let next = heads.with(&checkpoint.origin, (checkpoint.size, checkpoint.root));
        self.persist(next.clone()).await?;
        *heads = next;
        Ok(line)
    }

    /// Writes `heads` to the state file, off the async threads.
    async fn persist(&self, heads: Heads) -> Result<(), Answer> {
        let path = self.state_path.clone();
        let written = tokio::task::spawn_blocking(move || heads.persist(path))
            .await
            .map_err(|e| WitnessError::StateWrite(e.to_string()))
            .and_then(|r| r);
        written.map_err(|e| {
            refused(
                StatusCode::INTERNAL_SERVER_ERROR,
                code::STATE_WRITE_FAILED,
                e.to_string(),
            )
        })
    }
}

/// The witness's routes: `POST /add-checkpoint`, bodies bounded by [`MAX_REQUEST_BYTES`].
pub fn router(service: Arc<WitnessService>) -> axum::Router {
    axum::Router::new().route(
        ADD_CHECKPOINT_PATH,
        axum::routing::post(move |body: axum::body::Body| {
            let service = Arc::clone(&service);
            async move {
                match axum::body::to_bytes(body, MAX_REQUEST_BYTES).await {
                    Ok(bytes) => service.add_checkpoint(&bytes).await,
                    Err(_) => refused(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "too_large",
                        format!("the request is over {MAX_REQUEST_BYTES} bytes"),
                    ),
                }
            }
        }),
    )
}

/// Serves the witness on `listener` until `shutdown` resolves (then it stops accepting and
/// finishes the requests in flight).
pub async fn serve(
    listener: tokio::net::TcpListener,
    service: Arc<WitnessService>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(service);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_strictly() {
        let hash = b64::encode_std([1u8; 32]);
        let body = format!("old 3\n{hash}\n{hash}\n\nnote\n");
        let parsed = parse_request(body.as_bytes()).unwrap_or_else(|_| panic!("refused"));
        assert_eq!(
            (parsed.old_size, parsed.proof.len(), parsed.note),
            (3, 2, "note\n")
        );
        for bad in [
            "old 03\n\nnote",
            "old -1\n\nnote",
            "new 3\n\nnote",
            "old 3\nnot base64\n\nnote",
            "old 3\nnote",
        ] {
            assert!(parse_request(bad.as_bytes()).is_err(), "{bad:?}");
        }
        let long = format!("old 3\n{}\nnote", format!("{hash}\n").repeat(64));
        assert!(parse_request(long.as_bytes()).is_err());
    }
}

//! Submitting checkpoints to a witness (`add-checkpoint`) and writing the cosignatures it returns
//! into a published folder.
//!
//! A witness that already cosigned a smaller checkpoint of the log answers the first request
//! (`old 0`) with 409 and its size; the client then sends the consistency proof from that size,
//! computed from the folder's own log, once. The proof only verifies if the folder's log extends
//! the one the witness saw.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use edgevote_shared::WireError;
use edgevote_shared::checkpoint::MAX_NOTE_BYTES;
use edgevote_shared::cosignature::add_cosignatures;
use edgevote_shared::merkle::{self, Hash};
use http_body_util::{BodyExt, Full, Limited};

use crate::witness::{ADD_CHECKPOINT_PATH, SIZE_CONTENT_TYPE, request_body};
use crate::{LogKind, leaves, log_entries};

/// Longest wait for one witness request.
pub const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// Longest witness answer read, in bytes.
const MAX_ANSWER_BYTES: usize = MAX_NOTE_BYTES;

/// Why submitting to a witness failed; each variant names the stage.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The witness URL is not `http://host:port[/prefix]`.
    #[error("witness URL {0:?}: expected http://host:port[/prefix]")]
    Url(String),
    /// Connecting or talking HTTP to the witness failed, or it did not answer in time.
    #[error("talking to the witness at {url}: {detail}")]
    Http {
        /// The witness URL.
        url: String,
        /// What failed.
        detail: String,
    },
    /// The witness refused the checkpoint.
    #[error("the witness refused {origin} (HTTP {status}): {body}")]
    Refused {
        /// The checkpoint's origin.
        origin: String,
        /// The HTTP status.
        status: u16,
        /// Its answer's body.
        body: String,
    },
    /// The witness holds a larger tree than the folder's log.
    #[error("the witness cosigned {origin} at size {witnessed}, larger than this log's {size}")]
    AheadOfLog {
        /// The checkpoint's origin.
        origin: String,
        /// The size the witness holds.
        witnessed: u64,
        /// The folder's log size.
        size: u64,
    },
    /// The witness's answer is not cosignature lines, or the note would grow too large.
    #[error("the witness's answer for {origin}")]
    Answer {
        /// The checkpoint's origin.
        origin: String,
        /// Why it was refused.
        source: WireError,
    },
    /// Reading or writing a file of the folder failed.
    #[error("{action} {}", path.display())]
    File {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// The witness's answer to an accepted request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Submitted {
    /// Its cosignature line(s).
    Cosigned(String),
    /// 409 with its current size: resubmit from that size.
    Conflict(u64),
}

/// The `host:port` and path prefix of an `http://` witness URL.
fn split_url(url: &str) -> Result<(String, String), ClientError> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| ClientError::Url(url.to_owned()))?;
    let (authority, prefix) = match rest.find('/') {
        Some(at) => (&rest[..at], rest[at..].trim_end_matches('/')),
        None => (rest, ""),
    };
    if authority.is_empty() {
        return Err(ClientError::Url(url.to_owned()));
    }
    Ok((authority.to_owned(), prefix.to_owned()))
}

/// Posts `body` to the witness; returns the status, the content type and the (bounded) body.
async fn post(url: &str, body: String) -> Result<(u16, String, String), ClientError> {
    let (authority, prefix) = split_url(url)?;
    let http = |detail: String| ClientError::Http {
        url: url.to_owned(),
        detail,
    };
    let exchange = async {
        let stream = tokio::net::TcpStream::connect(&authority)
            .await
            .map_err(|e| http(e.to_string()))?;
        let io = hyper_util::rt::TokioIo::new(stream);
        let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| http(e.to_string()))?;
        tokio::spawn(connection);
        let request = hyper::Request::post(format!("{prefix}{ADD_CHECKPOINT_PATH}"))
            .header("host", &authority)
            .header("content-type", "text/plain; charset=utf-8")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| http(e.to_string()))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| http(e.to_string()))?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let bytes = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|e| http(e.to_string()))?
            .to_bytes();
        Ok((
            status,
            content_type,
            String::from_utf8_lossy(&bytes).into_owned(),
        ))
    };
    tokio::time::timeout(TIMEOUT, exchange)
        .await
        .map_err(|_| http(format!("no answer within {TIMEOUT:?}")))?
}

/// Submits `note` with a consistency proof from `old_size` to the witness at `url`.
pub async fn add_checkpoint(
    url: &str,
    old_size: u64,
    proof: &[Hash],
    note: &str,
) -> Result<Submitted, ClientError> {
    let (status, content_type, body) = post(url, request_body(old_size, proof, note)).await?;
    let size = body.strip_suffix('\n').and_then(|s| s.parse().ok());
    match (status, size) {
        (200, _) => Ok(Submitted::Cosigned(body)),
        (409, Some(size)) if content_type.starts_with(SIZE_CONTENT_TYPE) => {
            Ok(Submitted::Conflict(size))
        }
        _ => Err(ClientError::Refused {
            origin: note.lines().next().unwrap_or_default().to_owned(),
            status,
            body,
        }),
    }
}

/// Gets the witness's cosignature of the checkpoint `note` of the log whose entries are
/// `entries`: first from size 0, then (on 409) from the size the witness holds, with the
/// consistency proof computed from `entries`. Returns the cosignature line(s).
pub async fn witness_checkpoint(
    url: &str,
    entries: &[String],
    note: &str,
) -> Result<String, ClientError> {
    let origin = || note.lines().next().unwrap_or_default().to_owned();
    let witnessed = match add_checkpoint(url, 0, &[], note).await? {
        Submitted::Cosigned(lines) => return Ok(lines),
        Submitted::Conflict(size) => size,
    };
    let hashes = leaves(entries);
    let proof = usize::try_from(witnessed)
        .ok()
        .and_then(|old| merkle::consistency_proof(old, &hashes))
        .ok_or_else(|| ClientError::AheadOfLog {
            origin: origin(),
            witnessed,
            size: hashes.len() as u64,
        })?;
    match add_checkpoint(url, witnessed, &proof, note).await? {
        Submitted::Cosigned(lines) => Ok(lines),
        Submitted::Conflict(size) => Err(ClientError::Refused {
            origin: origin(),
            status: 409,
            body: format!("its size moved to {size} meanwhile"),
        }),
    }
}

/// Submits both checkpoints of the published log in `folder` to the witness at `url` and adds
/// its cosignatures to the checkpoint files (each rewritten atomically). Returns the lines added
/// per log.
pub async fn witness_folder(
    folder: &Path,
    url: &str,
) -> Result<Vec<(LogKind, String)>, ClientError> {
    let mut added = Vec::new();
    for kind in [LogKind::Receipts, LogKind::Choices] {
        let read = |name: &str| {
            let path = folder.join(name);
            std::fs::read_to_string(&path).map_err(|source| ClientError::File {
                action: "reading",
                path,
                source,
            })
        };
        let note = read(kind.checkpoint_file())?;
        let entries = log_entries(&read(kind.log_file())?);
        let lines = witness_checkpoint(url, &entries, &note).await?;
        let cosigned = add_cosignatures(&note, &lines).map_err(|source| ClientError::Answer {
            origin: note.lines().next().unwrap_or_default().to_owned(),
            source,
        })?;
        let path = folder.join(kind.checkpoint_file());
        edgevote_signer::keyfile::write_atomic(&path, cosigned.as_bytes(), 0o644).map_err(|e| {
            ClientError::File {
                action: "writing",
                path: path.clone(),
                source: std::io::Error::other(e.to_string()),
            }
        })?;
        added.push((kind, lines));
    }
    Ok(added)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn witness_urls_split_into_authority_and_prefix() {
        let split = |u: &str| split_url(u).ok();
        assert_eq!(
            split("http://127.0.0.1:8089"),
            Some(("127.0.0.1:8089".into(), String::new()))
        );
        assert_eq!(
            split("http://w.example:80/witness/"),
            Some(("w.example:80".into(), "/witness".into()))
        );
        assert_eq!(split("https://w.example"), None);
        assert_eq!(split("http:///x"), None);
    }
}

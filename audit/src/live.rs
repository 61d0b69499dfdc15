//! A client of a region's live receipts log (served by its collector, see the collector's
//! `live_log` module): prove that a receipt's vote id is in the log, trusting the server for
//! nothing. The checkpoint must verify with a `log` key of the pinned key set and name the
//! receipt's election; the tree head is recomputed from the tiles; the inclusion proof is built
//! from the tiles and checked against the signed root.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use edgevote_shared::checkpoint::{self, Checkpoint};
use edgevote_shared::{KeySet, merkle, tiles};

use crate::tiles::{ReadError, TileSource, TiledTree};

/// Largest response read (a full tile is 8 KiB; a checkpoint less).
const MAX_RESPONSE_BYTES: u64 = 64 * 1024;
/// Longest wait for one response.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Why an inclusion could not be shown. The variant names the stage; the `code` is stable.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// The server could not be reached or answered outside the protocol.
    #[error("fetching {what}: {detail}")]
    Fetch {
        /// What was fetched.
        what: String,
        /// What went wrong.
        detail: String,
    },
    /// The checkpoint does not verify with any pinned log key, or is for another election.
    #[error("checkpoint refused: {0}")]
    Checkpoint(String),
    /// The vote id is not in the log (yet).
    #[error("vote {0} is not in the live log")]
    NotIncluded(String),
    /// The tiles do not add up to the signed root, or the proof fails.
    #[error("the log's tiles do not prove it: {0}")]
    Proof(String),
    /// A new checkpoint does not extend the last one seen: the log shrank, forked (two roots
    /// for one size: a split view) or rewrote its history.
    #[error("inconsistent log: {0}")]
    Inconsistent(String),
}

impl LiveError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            LiveError::Fetch { .. } => "log_unavailable",
            LiveError::Checkpoint(_) => "bad_checkpoint",
            LiveError::NotIncluded(_) => crate::verify::code::NOT_INCLUDED,
            LiveError::Proof(_) => "bad_proof",
            LiveError::Inconsistent(_) => "inconsistent",
        }
    }
}

/// A receipt's vote id, proven in a live log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inclusion {
    /// The log's origin (`edgevote/<election>/live/<region>`).
    pub origin: String,
    /// The leaf the vote id is at.
    pub index: u64,
    /// The size of the signed tree it was proven in.
    pub size: u64,
}

/// GETs over plain HTTP from a base URL (`http://host:port/prefix`), bounded in size and time.
#[derive(Debug, Clone)]
pub struct HttpSource {
    authority: String,
    prefix: String,
}

impl HttpSource {
    /// A source under `base` (an `http://` URL).
    pub fn new(base: &str) -> Result<Self, LiveError> {
        let rest = base
            .strip_prefix("http://")
            .ok_or_else(|| LiveError::Fetch {
                what: base.to_owned(),
                detail: "only http:// URLs are supported".into(),
            })?;
        let (authority, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        Ok(HttpSource {
            authority: authority.to_owned(),
            prefix: format!("/{}", prefix.trim_matches('/')),
        })
    }

    /// The body at `path` below the base, when the status is 200; `Ok(None)` for 404.
    pub fn get(&self, path: &str) -> Result<Option<Vec<u8>>, LiveError> {
        let what = format!(
            "{}{}/{path}",
            self.authority,
            self.prefix.trim_end_matches('/')
        );
        let fail = |detail: String| LiveError::Fetch {
            what: what.clone(),
            detail,
        };
        let mut stream = TcpStream::connect(&self.authority).map_err(|e| fail(e.to_string()))?;
        stream
            .set_read_timeout(Some(TIMEOUT))
            .map_err(|e| fail(e.to_string()))?;
        let target = format!("{}/{path}", self.prefix.trim_end_matches('/'));
        let request = format!(
            "GET {target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.authority
        );
        stream
            .write_all(request.as_bytes())
            .map_err(|e| fail(e.to_string()))?;
        let mut response = Vec::new();
        stream
            .take(MAX_RESPONSE_BYTES)
            .read_to_end(&mut response)
            .map_err(|e| fail(e.to_string()))?;
        let split = response
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or_else(|| fail("no complete HTTP head".into()))?;
        let head = String::from_utf8_lossy(&response[..split]);
        if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            return Err(fail("chunked answers are not expected".into()));
        }
        match head.get(9..12) {
            Some("200") => Ok(Some(response[split + 4..].to_vec())),
            Some("404") => Ok(None),
            status => Err(fail(format!("status {}", status.unwrap_or("?")))),
        }
    }
}

impl TileSource for HttpSource {
    fn read(&self, path: &str) -> Result<Vec<u8>, ReadError> {
        let missing = |detail: String| ReadError::Read {
            path: path.to_owned(),
            detail,
        };
        match self.get(path) {
            Ok(Some(bytes)) => Ok(bytes),
            Ok(None) => Err(missing("not found".into())),
            Err(e) => Err(missing(e.to_string())),
        }
    }
}

/// The checkpoint `note` verified with a `log` key of `keys`, for `election`'s live log.
pub fn verify_live_checkpoint(
    note: &str,
    keys: &KeySet,
    election: &str,
) -> Result<Checkpoint, LiveError> {
    checkpoint::verify_live(note, keys, election).map_err(|e| LiveError::Checkpoint(e.to_string()))
}

/// Proves that `vote_id` (base64url, as in the receipt) is in the live log of `election`
/// served under `base` (the collector's URL), with the log keys of `keys`.
pub fn prove_inclusion(
    base: &str,
    keys: &KeySet,
    election: &str,
    vote_id: &str,
) -> Result<Inclusion, LiveError> {
    let log = HttpSource::new(&format!("{}/v1/log/{election}", base.trim_end_matches('/')))?;
    let note = log.get("checkpoint")?.ok_or_else(|| LiveError::Fetch {
        what: "checkpoint".into(),
        detail: "the log has no checkpoint yet".into(),
    })?;
    let checkpoint = verify_live_checkpoint(&String::from_utf8_lossy(&note), keys, election)?;
    let index = log
        .get(&format!("index/{vote_id}"))?
        .and_then(|body| serde_json::from_slice::<serde_json::Value>(&body).ok())
        .and_then(|v| v["index"].as_u64())
        .filter(|&i| i < checkpoint.size)
        .ok_or_else(|| LiveError::NotIncluded(vote_id.to_owned()))?;
    tiles::prove_entry(
        &log,
        checkpoint.size,
        &checkpoint.root,
        index,
        vote_id.as_bytes(),
    )
    .map_err(|e| LiveError::Proof(e.to_string()))?;
    Ok(Inclusion {
        origin: checkpoint.origin,
        index,
        size: checkpoint.size,
    })
}

/// What the monitor saw of one checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    /// The first checkpoint seen (verified, and its tree head recomputed from the tiles).
    First {
        /// Its size.
        size: u64,
    },
    /// The same checkpoint as last time.
    Unchanged {
        /// Its size.
        size: u64,
    },
    /// A larger tree, proven to extend the last one (RFC 9162 consistency proof from tiles).
    Grew {
        /// The last size seen.
        from: u64,
        /// The new size.
        to: u64,
    },
}

/// Follows one election's live log: every checkpoint must verify with a pinned log key, match
/// the tiles, and extend the last one seen. Feed it a [`TileSource`] rooted at the log (where
/// `checkpoint` and `tile/...` are).
#[derive(Debug, Clone)]
pub struct Monitor {
    keys: KeySet,
    election: String,
    last: Option<Checkpoint>,
    last_note: Option<String>,
}

impl Monitor {
    /// A monitor of `election`'s live log with the log keys of `keys`, that has already seen
    /// `since` (a checkpoint an auditor kept), if given.
    pub fn new(keys: KeySet, election: &str, since: Option<Checkpoint>) -> Self {
        Monitor {
            keys,
            election: election.to_owned(),
            last: since,
            last_note: None,
        }
    }

    /// The signed note of the last checkpoint this monitor verified (to keep, and pass as
    /// `since` to a later monitor).
    pub fn last_note(&self) -> Option<&str> {
        self.last_note.as_deref()
    }

    /// The last checkpoint seen.
    pub fn last(&self) -> Option<&Checkpoint> {
        self.last.as_ref()
    }

    /// Reads the log's current checkpoint from `source` and checks it against the last one.
    pub fn observe<S: TileSource>(&mut self, source: &S) -> Result<Observation, LiveError> {
        let note = source.read("checkpoint").map_err(|e| LiveError::Fetch {
            what: "checkpoint".into(),
            detail: e.to_string(),
        })?;
        let note = String::from_utf8_lossy(&note).into_owned();
        let new = verify_live_checkpoint(&note, &self.keys, &self.election)?;
        let tree = TiledTree::new(source, new.size);
        let root = tree.root().map_err(|e| LiveError::Proof(e.to_string()))?;
        if root != new.root {
            return Err(LiveError::Proof(format!(
                "the tiles of {} leaves do not hash to the signed root",
                new.size
            )));
        }
        let observation = match &self.last {
            None => Observation::First { size: new.size },
            Some(last) => extends(last, &new, &tree)?,
        };
        self.last = Some(new);
        self.last_note = Some(note);
        Ok(observation)
    }
}

/// Whether `new` extends `last` (same origin, no smaller, consistent).
fn extends<S: TileSource>(
    last: &Checkpoint,
    new: &Checkpoint,
    tree: &TiledTree<'_, S>,
) -> Result<Observation, LiveError> {
    if new.origin != last.origin {
        return Err(LiveError::Inconsistent(format!(
            "origin changed from {} to {}",
            last.origin, new.origin
        )));
    }
    if new.size < last.size {
        return Err(LiveError::Inconsistent(format!(
            "the log shrank from {} to {} leaves",
            last.size, new.size
        )));
    }
    if new.size == last.size {
        return if new.root == last.root {
            Ok(Observation::Unchanged { size: new.size })
        } else {
            Err(LiveError::Inconsistent(format!(
                "two roots for {} leaves: a split view",
                new.size
            )))
        };
    }
    let proof = tree
        .consistency_proof(last.size)
        .map_err(|e| LiveError::Proof(e.to_string()))?;
    if !merkle::verify_consistency(last.size, new.size, &last.root, &new.root, &proof) {
        return Err(LiveError::Inconsistent(format!(
            "the tree of {} leaves does not extend the one of {}",
            new.size, last.size
        )));
    }
    Ok(Observation::Grew {
        from: last.size,
        to: new.size,
    })
}

//! The edge key the host seals and signs with, following the published key set at runtime.
//!
//! A rotation (`edgevote keys rotate`) publishes the successor valid from *now* and keeps the
//! old key valid for a grace period. The host re-reads `keyset_path` and `edge_key_path` every
//! [`KEY_REFRESH`] (and at startup), and:
//! - switches to the key the key file now holds when it passes
//!   [`edgevote_edge_core::check_edge_key`] (in the latest key set, bound to this edge and
//!   region, valid now) and has been published for [`KEY_SETTLE_SECS`] (so collectors, which
//!   re-read their key set as often, know it before its first envelope reaches them), or at
//!   once when the current key is no longer valid; a key that fails the check is never used
//!   (logged, the current one kept);
//! - keeps the key it replaced, for the votes received before the successor's `valid_from`
//!   (a receipt is dated by the vote's reception, so only a key valid then may sign it);
//! - before sealing, picks for each vote a key valid, per the latest key set, both when the vote
//!   was received and now; a vote with none is refused (503 `edge_key_expired`, nothing made
//!   durable, no receipt). So the host never seals an envelope, nor signs a receipt, that a
//!   collector holding the latest key set would refuse.
//!
//! The state is an `RwLock<Arc<..>>` read once per group commit and once per request.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use edgevote_edge_core::commit::SealKeys;
use edgevote_edge_core::{
    Accepted, Edge, HandedVote, Response, Sealing, ServedElection, check_edge_key,
};
use edgevote_shared::{KeySet, SigningIdentity, WireError};

use crate::metrics::Metrics;

/// How often the host re-reads its key set and key file.
pub const KEY_REFRESH: Duration = Duration::from_secs(2);
/// Seconds a new edge key must have been valid (published) before the host signs with it,
/// unless its current key is no longer valid.
pub const KEY_SETTLE_SECS: u64 = 5;
/// The stable code of a vote refused because no edge key the host holds is valid now.
pub const KEY_EXPIRED_CODE: &str = "edge_key_expired";

/// One key the host can sign with, and the native edge that signs with it.
pub struct Signer {
    /// Its key id.
    pub kid: String,
    /// The native edge (elections, the latest key set, this key).
    pub edge: Arc<Edge>,
    identity: SigningIdentity,
}

/// The keys the host holds, judged against the latest key set.
pub struct KeyState {
    /// The latest key set read.
    pub keys: Arc<KeySet>,
    keyset_text: String,
    /// The current signer first, then the one it replaced (if any).
    signers: Vec<Signer>,
}

impl KeyState {
    /// The current signer.
    pub fn current(&self) -> &Signer {
        &self.signers[0]
    }

    /// A signer whose key, per the latest key set, may sign for this edge a vote received at
    /// `received_at_ms` sealed at `now_ms` (the current one first).
    pub fn signer_for(
        &self,
        edge_id: &str,
        region: &str,
        received_at_ms: u64,
        now_ms: u64,
    ) -> Option<&Signer> {
        self.signer_index(edge_id, region, received_at_ms, now_ms)
            .map(|i| &self.signers[i])
    }

    /// [`KeyState::signer_for`], as an index for [`KeyState::signer_edge`].
    pub fn signer_index(
        &self,
        edge_id: &str,
        region: &str,
        received_at_ms: u64,
        now_ms: u64,
    ) -> Option<usize> {
        self.signers.iter().position(|s| {
            [received_at_ms, now_ms]
                .iter()
                .all(|at| check_edge_key(&self.keys, &s.kid, edge_id, region, at / 1000).is_ok())
        })
    }

    /// The native edge of signer `index`.
    pub fn signer_edge(&self, index: usize) -> Arc<Edge> {
        Arc::clone(&self.signers[index].edge)
    }
}

/// The host's sealer: a swappable [`KeyState`].
pub struct Sealer {
    state: RwLock<Arc<KeyState>>,
    edge_id: String,
    region: String,
    elections: Vec<ServedElection>,
    keyset_path: PathBuf,
    key_path: PathBuf,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("edge_id", &self.edge_id)
            .field("kid", &self.state().current().kid)
            .finish_non_exhaustive()
    }
}

fn copy(identity: &SigningIdentity) -> SigningIdentity {
    SigningIdentity::from_seed(identity.seed(), identity.role())
}

/// Where a refresh left the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refresh {
    /// Nothing changed.
    Unchanged,
    /// The key set changed; the key stayed.
    KeySet,
    /// The host now signs with this key.
    Switched(String),
    /// The key file holds a key the host refuses (or waits for); the current key stays.
    Kept(String),
    /// A file could not be read or parsed; everything stays.
    Unreadable(String),
}

impl Sealer {
    /// The sealer for `identity`, checked at startup: the key must pass `check_edge_key`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        identity: SigningIdentity,
        keys: KeySet,
        keyset_text: String,
        elections: Vec<ServedElection>,
        edge_id: &str,
        region: &str,
        keyset_path: PathBuf,
        key_path: PathBuf,
        metrics: Arc<Metrics>,
    ) -> Result<Self, String> {
        let now_secs = edgevote_signer::clock::now_ms() / 1000;
        check_edge_key(&keys, identity.kid(), edge_id, region, now_secs)?;
        let sealer = Sealer {
            state: RwLock::new(Arc::new(KeyState {
                keys: Arc::new(KeySet::default()),
                keyset_text: String::new(),
                signers: Vec::new(),
            })),
            edge_id: edge_id.to_owned(),
            region: region.to_owned(),
            elections,
            keyset_path,
            key_path,
            metrics,
        };
        let keys = Arc::new(keys);
        let signer = sealer.signer(identity, &keys);
        sealer.set(KeyState {
            keys,
            keyset_text,
            signers: vec![signer],
        });
        Ok(sealer)
    }

    fn signer(&self, identity: SigningIdentity, keys: &KeySet) -> Signer {
        let edge = Edge::with_sealing(
            self.elections.clone(),
            keys.clone(),
            Sealing::Local(Box::new(copy(&identity))),
            &self.edge_id,
            &self.region,
            None,
        );
        Signer {
            kid: identity.kid().to_owned(),
            edge: Arc::new(edge),
            identity,
        }
    }

    fn set(&self, state: KeyState) {
        *self.state.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(state);
    }

    /// The keys now (read once per group commit, once per request).
    pub fn state(&self) -> Arc<KeyState> {
        Arc::clone(&self.state.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// The current native edge (checks handed ballots; signs nothing by itself).
    pub fn current(&self) -> Arc<Edge> {
        Arc::clone(&self.state().current().edge)
    }

    /// The latest key set as the host publishes it at `GET /v1/keys` (the component's copy is
    /// the one it was loaded with).
    pub fn keyset_json(&self) -> String {
        self.state().keys.to_json_pretty() + "\n"
    }

    /// This edge's id.
    pub fn edge_id(&self) -> &str {
        &self.edge_id
    }

    /// This edge's region.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The keys as they are now, for one group commit (see [`BatchKeys`]).
    pub fn batch_keys(self: &Arc<Self>) -> BatchKeys {
        BatchKeys {
            state: self.state(),
            sealer: Arc::clone(self),
        }
    }

    /// Re-reads the key file and the key set once, and switches as the module doc says.
    pub fn refresh(&self) -> Refresh {
        let now_secs = edgevote_signer::clock::now_ms() / 1000;
        // The key file first: a rotation publishes the successor in the key set before it
        // writes the key file, so a new key read here is in the key set read next.
        let identity = match edgevote_signer::keyfile::read(&self.key_path) {
            Ok(identity) => identity,
            Err(e) => return self.unreadable(format!("edge key: {e}")),
        };
        let text = match std::fs::read_to_string(&self.keyset_path) {
            Ok(text) => text,
            Err(e) => return self.unreadable(format!("key set: {e}")),
        };
        let state = self.state();
        let same_key = identity.kid() == state.current().kid;
        if same_key && text == state.keyset_text {
            return Refresh::Unchanged;
        }
        let keys = match KeySet::parse(text.as_bytes()) {
            Ok(keys) => Arc::new(keys),
            Err(e) => return self.unreadable(format!("key set: {e} ({})", e.code())),
        };
        let (edge_id, region) = (&self.edge_id, &self.region);
        // Every signer is rebuilt on the new key set (its tokens verify against it).
        let rebuilt = |signers: &[Signer]| -> Vec<Signer> {
            signers
                .iter()
                .map(|s| self.signer(copy(&s.identity), &keys))
                .collect()
        };
        let verdict = if same_key {
            Ok(())
        } else {
            self.adoptable(&keys, identity.kid(), &state.current().kid, now_secs)
        };
        let outcome = match verdict {
            Ok(()) if same_key => {
                let signers = rebuilt(&state.signers);
                self.set(KeyState {
                    keys,
                    keyset_text: text,
                    signers,
                });
                Refresh::KeySet
            }
            Ok(()) => {
                let kid = identity.kid().to_owned();
                let mut signers = vec![self.signer(identity, &keys)];
                // The replaced key signs what was received before the successor's window.
                signers.extend(rebuilt(&state.signers[..1]));
                self.set(KeyState {
                    keys,
                    keyset_text: text,
                    signers,
                });
                self.metrics.key_switches.fetch_add(1, Ordering::Relaxed);
                tracing::info!(edge = %edge_id, region = %region, kid = %kid, previous = %state.current().kid, "edge key switched");
                Refresh::Switched(kid)
            }
            Err((waiting, detail)) => {
                // The key set still follows: validity is judged against the latest one.
                let signers = rebuilt(&state.signers);
                // The key file differs from the current key: it is looked at again next time.
                self.set(KeyState {
                    keys,
                    keyset_text: text,
                    signers,
                });
                if waiting {
                    tracing::info!(edge = %edge_id, region = %region, kid = %identity.kid(), detail = %detail, "new edge key seen; switching once it settles");
                } else {
                    tracing::warn!(edge = %edge_id, region = %region, kid = %identity.kid(), detail = %detail, "edge key file holds a key the host refuses; keeping the current key");
                }
                Refresh::Kept(detail)
            }
        };
        let state = self.state();
        if state
            .signer_for(edge_id, region, now_secs * 1000, now_secs * 1000)
            .is_none()
        {
            tracing::error!(edge = %edge_id, region = %region, kid = %state.current().kid, "no valid edge key: votes are refused with edge_key_expired until the key file holds a valid one");
        }
        outcome
    }

    /// Whether the host may switch from `current` to `kid` now, per `keys`: `kid` must pass
    /// `check_edge_key`, and have been valid for [`KEY_SETTLE_SECS`] unless `current` is no
    /// longer valid. `Err((waiting, detail))`, `waiting` for a good key that has not settled.
    fn adoptable(
        &self,
        keys: &KeySet,
        kid: &str,
        current: &str,
        now_secs: u64,
    ) -> Result<(), (bool, String)> {
        let (edge_id, region) = (&self.edge_id, &self.region);
        check_edge_key(keys, kid, edge_id, region, now_secs).map_err(|detail| (false, detail))?;
        let current_valid = check_edge_key(keys, current, edge_id, region, now_secs).is_ok();
        let (jwk, _) = keys
            .get(kid)
            .expect("check_edge_key just found the key in this key set");
        let published = jwk.valid_from;
        if current_valid && now_secs < published.saturating_add(KEY_SETTLE_SECS) {
            let detail = format!(
                "edge key {kid} is too new (valid from {published}): the host switches \
                 {KEY_SETTLE_SECS} s after, once collectors know it"
            );
            return Err((true, detail));
        }
        Ok(())
    }

    fn unreadable(&self, detail: String) -> Refresh {
        tracing::warn!(edge = %self.edge_id, detail = %detail, "could not re-read the edge's keys; keeping the current ones");
        Refresh::Unreadable(detail)
    }
}

/// Re-reads the keys every [`KEY_REFRESH`] until `stop` is set.
pub async fn follow_keys(sealer: Arc<Sealer>, mut stop: tokio::sync::watch::Receiver<bool>) {
    while !*stop.borrow() {
        let refreshing = Arc::clone(&sealer);
        let _ = tokio::task::spawn_blocking(move || refreshing.refresh()).await;
        tokio::select! {
            _ = tokio::time::sleep(KEY_REFRESH) => {}
            _ = stop.changed() => {}
        }
    }
}

/// The host's keys for one group commit: the key state read once, with this edge's identity.
pub struct BatchKeys {
    state: Arc<KeyState>,
    sealer: Arc<Sealer>,
}

impl SealKeys for BatchKeys {
    type Signer = Arc<Edge>;

    /// Component sealing: whether the envelope a component sealed may be committed, i.e. its
    /// key is, per the latest key set (the current signer's edge holds it), an edge key of this
    /// edge valid when the envelope was sealed. A component got its key at load and cannot
    /// switch; once that key's grace period ends, its envelopes are refused here (the
    /// component's SQS call gets 503) instead of being dead-lettered by collectors after its
    /// voters got receipts.
    fn check_envelope(&self, line: &str) -> Result<(), String> {
        self.state.current().edge.check_envelope(line)
    }

    fn verify_handed(&self, votes: Vec<HandedVote>) -> Vec<Result<Accepted, Response>> {
        self.state.current().edge.verify_handed(votes)
    }

    fn signer_index(&self, vote: &Accepted, now_ms: u64) -> Result<usize, String> {
        let (edge_id, region) = (self.sealer.edge_id(), self.sealer.region());
        let received_at_ms = vote.vote.received_at_ms;
        self.state
            .signer_index(edge_id, region, received_at_ms, now_ms)
            .ok_or_else(|| {
                format!(
                    "no edge key of {edge_id} is valid for a vote received at {received_at_ms} ms \
                     sealed at {now_ms} ms (current key {}): the host waits for its successor",
                    self.state.current().kid
                )
            })
    }

    fn seal(
        &self,
        index: usize,
        votes: &[Accepted],
        now_ms: u64,
    ) -> Result<Vec<String>, WireError> {
        self.state.signer_edge(index).seal_batch(votes, now_ms)
    }

    fn signer(&self, index: usize) -> Arc<Edge> {
        self.state.signer_edge(index)
    }
}

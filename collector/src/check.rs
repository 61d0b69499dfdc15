//! Turning queue messages into ballots to store, or into dead-letter reasons.
//!
//! A message is accepted whole or not at all: its envelope must verify against an edge key
//! (batch verification across the messages of one receive), and every ballot inside must be for
//! a known election, carry a well-formed token for that election, and name a valid option. The
//! edge checked all of this already; a signed envelope that fails here means a faulty or
//! compromised edge, and is dead-lettered rather than partly counted.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use edgevote_shared::{
    Ballot, ElectionManifest, KeySet, QueueEnvelope, VoteToken, WireError, decode_unverified,
    verify_many,
};
use edgevote_store::{ElectionRules, StoredBallot};

/// Why a message was refused: a stable code and detail, stored as the dead-letter reason
/// (`code: detail`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Stable machine-readable code (a `WireError` code or a collector code).
    pub code: &'static str,
    /// Human detail.
    pub detail: String,
}

impl Rejection {
    fn wire(e: &WireError) -> Self {
        Rejection {
            code: e.code(),
            detail: e.to_string(),
        }
    }

    /// The dead-letter reason text.
    pub fn reason(&self) -> String {
        format!("{}: {}", self.code, self.detail)
    }
}

/// Clock difference tolerated between an edge and the election's timeline, milliseconds.
pub const MAX_CLOCK_SKEW_MS: u64 = 2 * 60 * 1000;
/// Longest an edge may hold an accepted vote before sealing it, milliseconds: above the edge
/// host's largest request deadline (`http.request_timeout_ms`, at most 300 s).
pub const MAX_SEAL_DELAY_MS: u64 = 6 * 60 * 1000;

/// The times an envelope states for a vote must fit each other: the vote was received while the
/// election was open and its token valid (within [`MAX_CLOCK_SKEW_MS`]), and sealed after it was
/// received, within [`MAX_SEAL_DELAY_MS`]. Together with the key's own validity at the
/// envelope's sealing time, this keeps a retired or leaked edge key from dating votes where it
/// pleases: what it signs must still read as an honest edge's timeline.
fn check_times(
    manifest: &ElectionManifest,
    token: &VoteToken,
    envelope: &QueueEnvelope,
    received_at_ms: u64,
) -> Result<(), Rejection> {
    let window = |from_secs: u64, until_secs: u64| {
        let from = (from_secs * 1000).saturating_sub(MAX_CLOCK_SKEW_MS);
        let until = (until_secs * 1000).saturating_add(MAX_CLOCK_SKEW_MS);
        (from..=until).contains(&received_at_ms)
    };
    let refuse = |code: &'static str, detail: String| Err(Rejection { code, detail });
    let windows = [
        (
            "outside_election_window",
            "election",
            &manifest.id,
            "open",
            manifest.opens_at,
            manifest.closes_at,
        ),
        (
            "outside_token_validity",
            "token",
            &token.jti,
            "valid",
            token.nbf,
            token.exp,
        ),
    ];
    for (code, what, id, state, from, until) in windows {
        if !window(from, until) {
            let detail = format!(
                "vote received at {received_at_ms} ms, {what} {id} {state} {from}..{until} s"
            );
            return refuse(code, detail);
        }
    }
    let sealed = envelope.created_at_ms;
    if received_at_ms > sealed.saturating_add(MAX_CLOCK_SKEW_MS)
        || received_at_ms < sealed.saturating_sub(MAX_SEAL_DELAY_MS)
    {
        return refuse(
            "inconsistent_times",
            format!(
                "vote received at {received_at_ms} ms in an envelope sealed at {sealed} ms (at most {MAX_SEAL_DELAY_MS} ms before)"
            ),
        );
    }
    Ok(())
}

/// Splits a message body into its envelopes (one per line), bounded by the message format.
fn split_body(body: &str) -> Result<Vec<&str>, Rejection> {
    edgevote_shared::message::split(body).map_err(|e| Rejection {
        code: e.code(),
        detail: e.to_string(),
    })
}

/// Ballots of one message, grouped by election.
pub type AcceptedBallots = BTreeMap<String, Vec<StoredBallot>>;

/// What the collector knows to check messages: edge and authority keys, and the elections.
///
/// The keys follow the published key set when the checker is given its file
/// ([`Checker::following`]): [`Checker::reload_keys`] re-reads it (the collector does every
/// [`crate::service::KEYSET_REFRESH`]), so envelopes signed with a freshly rotated-in key
/// verify as soon as it is published. Each receive is checked against one key set.
#[derive(Debug)]
pub struct Checker {
    keys: RwLock<Arc<KeySet>>,
    keyset_path: Option<PathBuf>,
    elections: BTreeMap<String, ElectionManifest>,
    verify_tokens: bool,
}

impl Clone for Checker {
    fn clone(&self) -> Self {
        Checker {
            keys: RwLock::new(self.keys()),
            keyset_path: self.keyset_path.clone(),
            elections: self.elections.clone(),
            verify_tokens: self.verify_tokens,
        }
    }
}

impl Checker {
    /// A checker for `elections`, verifying envelopes (and, if `verify_tokens`, every token)
    /// against `keys`.
    pub fn new(keys: KeySet, elections: Vec<ElectionManifest>, verify_tokens: bool) -> Self {
        let elections = elections.into_iter().map(|m| (m.id.clone(), m)).collect();
        Checker {
            keys: RwLock::new(Arc::new(keys)),
            keyset_path: None,
            elections,
            verify_tokens,
        }
    }

    /// This checker, following the published key set file at `path` (see
    /// [`Checker::reload_keys`]).
    pub fn following(mut self, path: impl Into<PathBuf>) -> Self {
        self.keyset_path = Some(path.into());
        self
    }

    /// The key set file this checker follows, if any.
    pub fn keyset_path(&self) -> Option<&std::path::Path> {
        self.keyset_path.as_deref()
    }

    /// The keys messages are checked against now.
    pub fn keys(&self) -> Arc<KeySet> {
        Arc::clone(&self.keys.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Re-reads the followed key set file: `Ok(true)` when the keys changed. A file that does
    /// not read or parse changes nothing (the error says why). A key set is published whole
    /// (written to a temporary file and renamed), so a reader never sees half of one.
    pub fn reload_keys(&self) -> Result<bool, String> {
        let Some(path) = &self.keyset_path else {
            return Ok(false);
        };
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let keys =
            KeySet::parse(&bytes).map_err(|e| format!("{}: {e} ({})", path.display(), e.code()))?;
        let mut current = self.keys.write().unwrap_or_else(|p| p.into_inner());
        if **current == keys {
            return Ok(false);
        }
        *current = Arc::new(keys);
        Ok(true)
    }

    /// The counting rules of an election the checker knows.
    pub fn rules(&self, election: &str) -> Option<ElectionRules> {
        self.elections.get(election).map(ElectionRules::of)
    }

    /// The elections the checker knows.
    pub fn elections(&self) -> impl Iterator<Item = &ElectionManifest> {
        self.elections.values()
    }

    /// Checks the bodies of one receive; one result per body, in order. A body holds one or
    /// more envelopes, one per line (the edge host packs concurrent votes' envelopes into one
    /// message); all envelopes of all bodies are verified in one batch.
    pub fn check_all(&self, bodies: &[&str]) -> Vec<Result<AcceptedBallots, Rejection>> {
        let split: Vec<Result<Vec<&str>, Rejection>> =
            bodies.iter().map(|b| split_body(b)).collect();
        let all: Vec<&str> = split.iter().flatten().flatten().copied().collect();
        let keys = self.keys();
        let mut verified = verify_many::<QueueEnvelope>(&all, &keys).into_iter();
        split
            .into_iter()
            .map(|lines| {
                let lines = lines?;
                // Take this body's results even if an earlier one fails, to stay aligned.
                let results: Vec<_> = verified.by_ref().take(lines.len()).collect();
                let mut accepted = AcceptedBallots::new();
                for result in results {
                    let envelope = result.map_err(|e| Rejection::wire(&e))?.doc;
                    for (election, mut ballots) in self.ballots_of(&envelope, &keys)? {
                        accepted.entry(election).or_default().append(&mut ballots);
                    }
                }
                Ok(accepted)
            })
            .collect()
    }

    fn ballots_of(
        &self,
        envelope: &QueueEnvelope,
        keys: &KeySet,
    ) -> Result<AcceptedBallots, Rejection> {
        let tokens = self.tokens_of(envelope, keys);
        let mut accepted = AcceptedBallots::new();
        for (vote, token) in envelope.votes.iter().zip(tokens) {
            let token = token.map_err(|e| Rejection::wire(&e))?;
            let ballot = self.stored_ballot(envelope, &vote.ballot, token, vote.received_at_ms)?;
            accepted
                .entry(ballot.election.clone())
                .or_default()
                .push(ballot);
        }
        Ok(accepted)
    }

    /// The envelope's tokens: batch-verified when `verify_tokens`, else only decoded (the
    /// envelope's verified edge signature covers them).
    fn tokens_of(
        &self,
        envelope: &QueueEnvelope,
        keys: &KeySet,
    ) -> Vec<Result<VoteToken, WireError>> {
        if !self.verify_tokens {
            return envelope
                .votes
                .iter()
                .map(|v| decode_unverified::<VoteToken>(&v.ballot.token))
                .collect();
        }
        let compacts: Vec<&str> = envelope
            .votes
            .iter()
            .map(|v| v.ballot.token.as_str())
            .collect();
        verify_many::<VoteToken>(&compacts, keys)
            .into_iter()
            .map(|r| r.map(|v| v.doc))
            .collect()
    }

    fn stored_ballot(
        &self,
        envelope: &QueueEnvelope,
        ballot: &Ballot,
        token: VoteToken,
        received_at_ms: u64,
    ) -> Result<StoredBallot, Rejection> {
        let manifest = self
            .elections
            .get(&ballot.election)
            .ok_or_else(|| Rejection {
                code: "unknown_election",
                detail: format!(
                    "election {:?} is not configured on this collector",
                    ballot.election
                ),
            })?;
        if token.aud != manifest.id {
            return Err(Rejection::wire(&WireError::WrongElection {
                expected: manifest.id.clone(),
                found: token.aud,
            }));
        }
        check_times(manifest, &token, envelope, received_at_ms)?;
        if manifest.option(&ballot.choice).is_none() {
            return Err(Rejection {
                code: "invalid_choice",
                detail: format!(
                    "choice {:?} is not an option of {}",
                    ballot.choice, manifest.id
                ),
            });
        }
        Ok(StoredBallot {
            election: manifest.id.clone(),
            voter: token.sub.clone(),
            vote_id: ballot.vote_id(&token.jti),
            choice: ballot.choice.clone(),
            token_id: token.jti,
            nonce: ballot.nonce.clone(),
            received_at_ms,
            edge: envelope.edge.clone(),
            region: envelope.region.clone(),
            batch_id: envelope.batch_id.clone(),
        })
    }
}

//! The election manifest: what an election is, signed by the authority.

use serde::{Deserialize, Serialize};

use crate::error::WireError;
use crate::jws::Document;
use crate::keys::Role;
use crate::validate::{check_id, check_label, check_window, check_within};

/// Most options one election may offer.
pub const MAX_OPTIONS: usize = 64;
/// Upper bound for [`Limits::max_ballot_bytes`].
pub const MAX_BALLOT_BYTES: u32 = 16 * 1024;
/// Upper bound for [`Limits::max_votes_per_voter`].
pub const MAX_VOTES_PER_VOTER: u32 = 100;

/// Which of a voter's ballots counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// The earliest ballot (by edge timestamp, ties by vote id) counts; later ones are stored but
    /// not counted.
    FirstVoteWins,
    /// The latest ballot counts (re-voting allowed, as in Estonia), ties by vote id.
    LastVoteWins,
}

impl Policy {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::FirstVoteWins => "first_vote_wins",
            Policy::LastVoteWins => "last_vote_wins",
        }
    }
}

/// One choice on the ballot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ElectionOption {
    /// Identifier the ballot names (`choice`).
    pub id: String,
    /// What voters see.
    pub label: String,
}

/// Bounds the edges enforce for this election.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Largest ballot request body accepted, in bytes (at most [`MAX_BALLOT_BYTES`]).
    pub max_ballot_bytes: u32,
    /// Most ballots stored per voter (re-votes beyond are refused), 1..=[`MAX_VOTES_PER_VOTER`].
    pub max_votes_per_voter: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_ballot_bytes: 4096,
            max_votes_per_voter: 10,
        }
    }
}

/// The election manifest (`typ` `edgevote-manifest+jws`, signed by an authority key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ElectionManifest {
    /// Format version; 1.
    pub v: u32,
    /// Election id.
    pub id: String,
    /// Human title.
    pub title: String,
    /// The choices, in display order; ids unique.
    pub options: Vec<ElectionOption>,
    /// Voting opens at this unix second (inclusive).
    pub opens_at: u64,
    /// Voting closes at this unix second (exclusive).
    pub closes_at: u64,
    /// Which ballot of a voter counts.
    pub policy: Policy,
    /// Bounds enforced at the edge.
    pub limits: Limits,
    /// When the authority signed this manifest, unix seconds.
    pub created_at: u64,
}

impl ElectionManifest {
    /// True when ballots are accepted at `now_secs`.
    pub fn is_open(&self, now_secs: u64) -> bool {
        self.opens_at <= now_secs && now_secs < self.closes_at
    }

    /// The option with id `choice`, if any.
    pub fn option(&self, choice: &str) -> Option<&ElectionOption> {
        self.options.iter().find(|o| o.id == choice)
    }
}

impl Document for ElectionManifest {
    const NAME: &'static str = "election manifest";
    const TYP: &'static str = "edgevote-manifest+jws";
    const SIGNER: Role = Role::Authority;
    const MAX_JWS_BYTES: usize = 64 * 1024;

    fn validate(&self) -> Result<(), WireError> {
        crate::validate::check_version(self.v)?;
        check_id("id", &self.id)?;
        check_label("title", &self.title)?;
        if self.options.is_empty() || self.options.len() > MAX_OPTIONS {
            return Err(WireError::invalid(
                "options",
                format!("{} options, expected 1..={MAX_OPTIONS}", self.options.len()),
            ));
        }
        for (i, option) in self.options.iter().enumerate() {
            check_id("options.id", &option.id)?;
            check_label("options.label", &option.label)?;
            if self.options[..i].iter().any(|o| o.id == option.id) {
                return Err(WireError::invalid(
                    "options.id",
                    format!("{:?} repeated", option.id),
                ));
            }
        }
        check_window("opens_at/closes_at", self.opens_at, self.closes_at)?;
        let limits = &self.limits;
        check_within(
            "limits.max_ballot_bytes",
            limits.max_ballot_bytes,
            256..=MAX_BALLOT_BYTES,
        )?;
        check_within(
            "limits.max_votes_per_voter",
            limits.max_votes_per_voter,
            1..=MAX_VOTES_PER_VOTER,
        )
    }

    fn signed_at_secs(&self) -> u64 {
        self.created_at
    }
}

//! Admission: the checks that turn a voter's ballot into an accepted vote. The edge handler
//! runs them on every request; tools and tests use the same code.

use crate::ballot::Ballot;
use crate::digest::Digest32;
use crate::error::WireError;
use crate::jws::{Verified, verify};
use crate::keys::KeySet;
use crate::manifest::ElectionManifest;
use crate::receipt::Receipt;
use crate::token::VoteToken;

/// Why a ballot was not admitted: either a wire/crypto error or an election rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdmissionError {
    /// The ballot or its token failed a format or signature check.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// The election is not accepting ballots at this time.
    #[error("election {election:?} is not open at {now_secs} (open {opens_at}..{closes_at})")]
    ElectionClosed {
        /// Election id.
        election: String,
        /// Checking time.
        now_secs: u64,
        /// Opening time.
        opens_at: u64,
        /// Closing time.
        closes_at: u64,
    },
    /// The choice is not one of the election's options.
    #[error("choice {0:?} is not an option of this election")]
    InvalidChoice(String),
}

impl AdmissionError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            AdmissionError::Wire(e) => e.code(),
            AdmissionError::ElectionClosed { .. } => "election_closed",
            AdmissionError::InvalidChoice(_) => "invalid_choice",
        }
    }
}

/// A ballot that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdmittedBallot {
    /// The ballot.
    pub ballot: Ballot,
    /// Its verified token.
    pub token: Verified<VoteToken>,
    /// Its vote id.
    pub vote_id: Digest32,
}

impl AdmittedBallot {
    /// The receipt claims for this ballot accepted by `edge` in `region` at `received_at_ms`.
    pub fn receipt(&self, edge: &str, region: &str, received_at_ms: u64) -> Receipt {
        Receipt {
            v: 1,
            election: self.ballot.election.clone(),
            vote_id: self.vote_id,
            token_id: self.token.doc.jti.clone(),
            edge: edge.to_owned(),
            region: region.to_owned(),
            received_at_ms,
            bundle_sha256: None,
        }
    }
}

/// Checks `ballot` against the election: same election, open now, valid choice, token signed
/// by an authority key in `authority_keys`, for this election, inside its validity window.
pub fn admit(
    manifest: &ElectionManifest,
    authority_keys: &KeySet,
    ballot: Ballot,
    now_secs: u64,
) -> Result<AdmittedBallot, AdmissionError> {
    if ballot.election != manifest.id {
        return Err(WireError::WrongElection {
            expected: manifest.id.clone(),
            found: ballot.election.clone(),
        }
        .into());
    }
    if !manifest.is_open(now_secs) {
        return Err(AdmissionError::ElectionClosed {
            election: manifest.id.clone(),
            now_secs,
            opens_at: manifest.opens_at,
            closes_at: manifest.closes_at,
        });
    }
    if manifest.option(&ballot.choice).is_none() {
        return Err(AdmissionError::InvalidChoice(ballot.choice.clone()));
    }
    let token: Verified<VoteToken> = verify(&ballot.token, authority_keys)?;
    token.doc.check_usable(&manifest.id, now_secs)?;
    let vote_id = ballot.vote_id(&token.doc.jti);
    Ok(AdmittedBallot {
        ballot,
        token,
        vote_id,
    })
}

//! The receipt an edge returns once a ballot is durable (`typ` `edgevote-receipt+jws`).

use serde::{Deserialize, Serialize};

use crate::digest::Digest32;
use crate::error::WireError;
use crate::jws::Document;
use crate::keys::Role;
use crate::validate::check_id;

/// Longest receipt (compact JWS) in bytes.
pub const MAX_RECEIPT_BYTES: usize = 2048;

/// Receipt claims, signed by the edge that accepted the ballot. It names the ballot by its
/// vote id (a hiding commitment), never by its choice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    /// Format version; 1.
    pub v: u32,
    /// Election id.
    pub election: String,
    /// The ballot's vote id ([`crate::ballot::Ballot::vote_id`]).
    pub vote_id: Digest32,
    /// The token's `jti`.
    pub token_id: String,
    /// Id of the edge that accepted the ballot.
    pub edge: String,
    /// Region of that edge.
    pub region: String,
    /// Edge timestamp of acceptance, unix milliseconds; the tie-break input of the counting rule.
    pub received_at_ms: u64,
    /// SHA-256 of the Wasm bundle that issued the receipt, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle_sha256: Option<Digest32>,
}

impl Receipt {
    /// Checks the receipt names `ballot`, the one the client sent: same election, the ballot's
    /// token id, and the vote id recomputed from the ballot. A receipt for any other ballot (a
    /// choice flipped by a faulty or hostile edge) is refused, even when its signature verifies.
    pub fn check_ballot(&self, ballot: &crate::ballot::Ballot) -> Result<(), WireError> {
        self.check_election(&ballot.election)?;
        let token = crate::jws::decode_unverified::<crate::token::VoteToken>(&ballot.token)?;
        if token.jti != self.token_id {
            return Err(WireError::BallotMismatch(format!(
                "the receipt names token {:?}, the ballot carries {:?}",
                self.token_id, token.jti
            )));
        }
        let sent = ballot.vote_id(&token.jti);
        if sent != self.vote_id {
            return Err(WireError::BallotMismatch(format!(
                "the receipt names vote {}, the ballot sent is vote {sent}",
                self.vote_id
            )));
        }
        Ok(())
    }

    /// Checks the receipt is for `election`.
    pub fn check_election(&self, election: &str) -> Result<(), WireError> {
        if self.election != election {
            return Err(WireError::WrongElection {
                expected: election.to_owned(),
                found: self.election.clone(),
            });
        }
        Ok(())
    }
}

impl Document for Receipt {
    const NAME: &'static str = "receipt";
    const TYP: &'static str = "edgevote-receipt+jws";
    const SIGNER: Role = Role::Edge;
    const MAX_JWS_BYTES: usize = MAX_RECEIPT_BYTES;

    fn validate(&self) -> Result<(), WireError> {
        crate::validate::check_version(self.v)?;
        check_id("election", &self.election)?;
        check_id("token_id", &self.token_id)?;
        check_id("edge", &self.edge)?;
        check_id("region", &self.region)
    }

    fn signed_at_secs(&self) -> u64 {
        self.received_at_ms / 1000
    }

    fn signing_edge(&self) -> Option<(&str, &str)> {
        Some((&self.edge, &self.region))
    }
}

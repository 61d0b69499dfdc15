//! The ballot: what a voter's client sends to an edge (`POST /v1/elections/{id}/votes`).

use serde::{Deserialize, Serialize};

use crate::b64;
use crate::digest::Digest32;
use crate::error::WireError;
use crate::json;
use crate::manifest::MAX_BALLOT_BYTES;
use crate::token::MAX_TOKEN_BYTES;
use crate::validate::check_id;

/// Fewest random bytes in a ballot nonce: 128 bits, so the commitment hides the choice.
pub const MIN_NONCE_BYTES: usize = 16;
/// Most bytes in a ballot nonce.
pub const MAX_NONCE_BYTES: usize = 32;
/// Domain tag of the vote id hash.
pub const VOTE_ID_DOMAIN: &str = "edgevote/vote-id/v1";

/// A ballot as sent by a voter. Not signed by the voter: the token authenticates eligibility and
/// the edge's receipt and envelope signatures protect it from then on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ballot {
    /// Election id; must equal the election in the URL and the token's `aud`.
    pub election: String,
    /// The voter's vote token (compact JWS).
    pub token: String,
    /// The chosen option id.
    pub choice: String,
    /// 16..=32 random bytes chosen by the client, base64url. A retry of the same ballot reuses
    /// it (same vote id, stored once); a re-vote uses a fresh one.
    pub nonce: String,
}

impl Ballot {
    /// Parses a ballot body, bounded by `max_bytes` (the election's limit) and checks its rules.
    pub fn parse(bytes: &[u8], max_bytes: usize) -> Result<Self, WireError> {
        let ballot: Ballot =
            json::parse_bounded("ballot", bytes, max_bytes.min(MAX_BALLOT_BYTES as usize))?;
        ballot.validate()?;
        Ok(ballot)
    }

    /// Field rules: ids, token size, nonce length.
    pub fn validate(&self) -> Result<(), WireError> {
        check_id("election", &self.election)?;
        check_id("choice", &self.choice)?;
        json::check_len("token", self.token.len(), MAX_TOKEN_BYTES)?;
        let nonce = b64::decode("nonce", &self.nonce)?;
        if !(MIN_NONCE_BYTES..=MAX_NONCE_BYTES).contains(&nonce.len()) {
            return Err(WireError::invalid(
                "nonce",
                format!(
                    "{} bytes, expected {MIN_NONCE_BYTES}..={MAX_NONCE_BYTES}",
                    nonce.len()
                ),
            ));
        }
        Ok(())
    }

    /// The vote id: a hiding commitment to this ballot,
    /// `SHA-256(tag ‖ election ‖ token id ‖ choice ‖ nonce)` with length-prefixed parts.
    ///
    /// A retried request yields the same id (so it is stored once); without the nonce it reveals
    /// nothing about the choice. `token_id` is the verified token's `jti`.
    pub fn vote_id(&self, token_id: &str) -> Digest32 {
        Digest32::tagged(
            VOTE_ID_DOMAIN,
            &[
                self.election.as_bytes(),
                token_id.as_bytes(),
                self.choice.as_bytes(),
                self.nonce.as_bytes(),
            ],
        )
    }
}

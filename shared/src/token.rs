//! The vote token: a voter's eligibility credential, a JWT (RFC 7519) signed by the authority.

use serde::{Deserialize, Serialize};

use crate::error::WireError;
use crate::jws::Document;
use crate::keys::Role;
use crate::validate::{check_id, check_window};

/// Longest token (compact JWS) in bytes.
pub const MAX_TOKEN_BYTES: usize = 1024;

/// Vote token claims (`typ` `edgevote-token+jwt`). Registered JWT claim names are used so that
/// any JWT library can read them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoteToken {
    /// Token id, unique per token.
    pub jti: String,
    /// Pseudonymous voter reference: the identity one-vote-per-voter is counted over.
    pub sub: String,
    /// The election this token is good for.
    pub aud: String,
    /// Issued at, unix seconds.
    pub iat: u64,
    /// Not valid before, unix seconds.
    pub nbf: u64,
    /// Expires at (exclusive), unix seconds.
    pub exp: u64,
}

impl VoteToken {
    /// Checks that the token is for `election` and valid at `now_secs`.
    pub fn check_usable(&self, election: &str, now_secs: u64) -> Result<(), WireError> {
        if self.aud != election {
            return Err(WireError::WrongElection {
                expected: election.to_owned(),
                found: self.aud.clone(),
            });
        }
        if now_secs < self.nbf {
            return Err(WireError::TokenNotYetValid {
                nbf: self.nbf,
                now: now_secs,
            });
        }
        if now_secs >= self.exp {
            return Err(WireError::TokenExpired {
                exp: self.exp,
                now: now_secs,
            });
        }
        Ok(())
    }
}

impl Document for VoteToken {
    const NAME: &'static str = "vote token";
    const TYP: &'static str = "edgevote-token+jwt";
    const SIGNER: Role = Role::Authority;
    const MAX_JWS_BYTES: usize = MAX_TOKEN_BYTES;

    fn validate(&self) -> Result<(), WireError> {
        check_id("jti", &self.jti)?;
        check_id("sub", &self.sub)?;
        check_id("aud", &self.aud)?;
        check_window("nbf/exp", self.nbf, self.exp)?;
        if self.iat > self.exp {
            return Err(WireError::invalid("iat", "issued after expiry"));
        }
        Ok(())
    }

    fn signed_at_secs(&self) -> u64 {
        self.iat
    }
}

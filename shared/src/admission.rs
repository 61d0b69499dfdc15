//! Admission: the checks that turn a voter's ballot into an accepted vote. The edge handler
//! runs them on every request; tools and tests use the same code.

use crate::ballot::Ballot;
use crate::digest::Digest32;
use crate::error::WireError;
use crate::jws::{ExternalCheck, Verified, decode_unverified, verify, verify_external};
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

/// A ballot that passed every election rule, whose token is well formed, for this election
/// and inside its validity window, but whose token signature is not verified yet. It can only
/// become an [`AdmittedBallot`] through [`CheckedBallot::verify`] or [`verify_checked`], so an
/// unverified token is never mistaken for an admitted one.
///
/// The split lets an edge run the cheap rules where the request arrives (inside a Wasm
/// component) and the signature check where it is cheapest (its native host, batched).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedBallot {
    ballot: Ballot,
    claims: VoteToken,
}

impl CheckedBallot {
    /// The ballot.
    pub fn ballot(&self) -> &Ballot {
        &self.ballot
    }

    /// Verifies the token's signature (strict Ed25519) against `authority_keys`.
    pub fn verify(self, authority_keys: &KeySet) -> Result<AdmittedBallot, AdmissionError> {
        let token = verify::<VoteToken>(&self.ballot.token, authority_keys)?;
        Ok(self.admitted(token))
    }

    /// Prepares the token's signature for Ed25519 held outside this code (a platform's
    /// WebCrypto): every check of [`CheckedBallot::verify`] but the equation itself, which
    /// [`PlatformToken::admit`] takes from the platform.
    pub fn verify_on_platform(
        self,
        authority_keys: &KeySet,
    ) -> Result<PlatformToken, AdmissionError> {
        let check = verify_external::<VoteToken>(&self.ballot.token, authority_keys)?;
        Ok(PlatformToken {
            checked: self,
            check,
        })
    }

    fn admitted(self, token: Verified<VoteToken>) -> AdmittedBallot {
        // The verified payload is the one the rules were checked on: the same bytes.
        debug_assert_eq!(
            token.doc, self.claims,
            "verified token differs from its claims"
        );
        let vote_id = self.ballot.vote_id(&token.doc.jti);
        AdmittedBallot {
            ballot: self.ballot,
            token,
            vote_id,
        }
    }
}

/// A checked ballot whose token signature a platform's own Ed25519 is to verify
/// ([`CheckedBallot::verify_on_platform`]). Like [`CheckedBallot`], it becomes an
/// [`AdmittedBallot`] only through the verdict: [`PlatformToken::admit`].
#[derive(Debug, Clone)]
pub struct PlatformToken {
    checked: CheckedBallot,
    check: ExternalCheck<VoteToken>,
}

impl PlatformToken {
    /// The authority's public key, the signed bytes and the signature, for the platform.
    pub fn signature_parts(&self) -> (&[u8; 32], &[u8], &[u8; 64]) {
        (
            self.check.public_key(),
            self.check.message(),
            self.check.signature(),
        )
    }

    /// The admitted ballot, when the platform said the signature is valid and the strict checks
    /// hold ([`ExternalCheck::finish`]).
    pub fn admit(self, platform_valid: bool) -> Result<AdmittedBallot, AdmissionError> {
        let token = self.check.finish(platform_valid)?;
        Ok(self.checked.admitted(token))
    }
}

/// Verifies the tokens of many checked ballots with one batch verification (about twice as
/// fast per signature; on a failed batch each token is verified strictly, so only the culprits
/// are refused). The results are in the order of `checked`.
pub fn verify_checked(
    checked: Vec<CheckedBallot>,
    authority_keys: &KeySet,
) -> Vec<Result<AdmittedBallot, AdmissionError>> {
    let tokens: Vec<&str> = checked.iter().map(|c| c.ballot.token.as_str()).collect();
    let verified = crate::jws::verify_many::<VoteToken>(&tokens, authority_keys);
    checked
        .into_iter()
        .zip(verified)
        .map(|(c, token)| Ok(c.admitted(token?)))
        .collect()
}

/// The election rules of [`admit`] without the token's signature: same election, open now,
/// valid choice, a well-formed token for this election inside its validity window.
pub fn check(
    manifest: &ElectionManifest,
    ballot: Ballot,
    now_secs: u64,
) -> Result<CheckedBallot, AdmissionError> {
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
    let claims: VoteToken = decode_unverified(&ballot.token)?;
    claims.check_usable(&manifest.id, now_secs)?;
    Ok(CheckedBallot { ballot, claims })
}

/// Checks `ballot` against the election: same election, open now, valid choice, token signed
/// by an authority key in `authority_keys`, for this election, inside its validity window.
/// Exactly [`check`] then [`CheckedBallot::verify`], so an edge that splits the two refuses
/// the same ballots with the same codes.
pub fn admit(
    manifest: &ElectionManifest,
    authority_keys: &KeySet,
    ballot: Ballot,
    now_secs: u64,
) -> Result<AdmittedBallot, AdmissionError> {
    check(manifest, ballot, now_secs)?.verify(authority_keys)
}

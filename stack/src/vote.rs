//! One voter against a running stack: a ballot sent to an edge, and its receipt checked (it
//! verifies, and it names the ballot that was sent).

use bytes::Bytes;
use edgevote_shared::{Ballot, ElectionManifest, KeySet, Receipt, Role, b64, verify};
use edgevote_signer::KeyStore;
use edgevote_signer::issue::{TokenWindow, issue_token};

use crate::client::Conn;
use crate::info::RegionInfo;
use crate::{StackError, now_secs};

/// What an edge made of one ballot.
#[derive(Debug)]
pub enum VoteOutcome {
    /// Any answer but 202: the HTTP status and body.
    Refused {
        /// The HTTP status.
        status: u16,
        /// The answer's body.
        body: String,
    },
    /// 202 with a receipt that verifies against the key set but names another ballot than the
    /// one sent (`ballot_mismatch`, `wrong_election`).
    NotTheBallotSent {
        /// Why, with the code.
        detail: String,
    },
    /// 202 with a verified receipt for the ballot sent.
    Accepted {
        /// The receipt.
        receipt: Receipt,
        /// The receipt as signed (compact JWS).
        compact: String,
    },
}

/// A token for a fresh voter of `manifest`, issued from the stack's authority key.
pub fn issue_voter_token(
    store: &KeyStore,
    manifest: &ElectionManifest,
) -> Result<String, StackError> {
    let authority = store.signing_identity(Role::Authority, None)?;
    Ok(issue_token(
        &authority,
        manifest,
        None,
        TokenWindow::for_election(manifest, now_secs()),
    )?)
}

/// Sends the ballot (`token`, `choice`, a random nonce) to `region`'s edge and checks the
/// receipt of a 202 answer against `keys` and against the ballot sent.
pub async fn cast(
    region: &RegionInfo,
    manifest: &ElectionManifest,
    keys: &KeySet,
    token: &str,
    choice: &str,
) -> Result<VoteOutcome, StackError> {
    let nonce = b64::encode(edgevote_signer::random::bytes::<16>()?);
    let body = serde_json::json!({"election": manifest.id, "token": token, "choice": choice, "nonce": nonce}).to_string();
    let http = |source| StackError::Http {
        target: region.edge_url.clone(),
        source,
    };
    let mut conn = Conn::connect(&region.edge_url).await.map_err(http)?;
    let (status, text) = conn
        .post_vote(&manifest.id, Bytes::from(body.clone()))
        .await
        .map_err(http)?;
    if status != 202 {
        return Ok(VoteOutcome::Refused { status, body: text });
    }
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| StackError::Protocol(format!("the 202 answer is not JSON: {e}")))?;
    let compact = value["receipt"]
        .as_str()
        .ok_or_else(|| StackError::Protocol("no receipt in the answer".into()))?
        .to_owned();
    let receipt = verify::<Receipt>(&compact, keys)
        .map_err(|source| StackError::Refused {
            what: "receipt does not verify".into(),
            source,
        })?
        .doc;
    Ok(match check_receipt_names(body.as_bytes(), &receipt) {
        Ok(()) => VoteOutcome::Accepted { receipt, compact },
        Err(detail) => VoteOutcome::NotTheBallotSent { detail },
    })
}

/// Refuses a receipt that does not name the ballot in `sent` (the body this client sent): its
/// vote id, token id and election must be the ballot's. A valid signature does not make a
/// receipt the voter's.
pub fn check_receipt_names(sent: &[u8], receipt: &Receipt) -> Result<(), String> {
    let ballot = Ballot::parse(sent, sent.len())
        .map_err(|e| format!("the ballot sent does not parse ({}): {e}", e.code()))?;
    receipt
        .check_ballot(&ballot)
        .map_err(|e| format!("{} ({})", e, e.code()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use edgevote_shared::{SigningIdentity, VoteToken, sign};

    /// An attacker holding the edge key (or a rogue component under component sealing) signs
    /// a perfectly valid receipt for the voter's token with the choice flipped.
    #[test]
    fn a_signed_receipt_for_another_ballot_is_refused() {
        let authority = SigningIdentity::from_seed(&[1; 32], Role::Authority);
        let edge = SigningIdentity::from_seed(&[2; 32], Role::Edge);
        let token = sign(
            &authority,
            &VoteToken {
                jti: "t-1".into(),
                sub: "v1".into(),
                aud: "e".into(),
                iat: 1,
                nbf: 1,
                exp: 4_000_000_000,
            },
        )
        .unwrap();
        let ballot = |choice: &str, nonce: u8| Ballot {
            election: "e".into(),
            token: token.clone(),
            choice: choice.into(),
            nonce: b64::encode([nonce; 16]),
        };
        let receipt_for = |b: &Ballot| Receipt {
            v: 1,
            election: "e".into(),
            vote_id: b.vote_id("t-1"),
            token_id: "t-1".into(),
            edge: "edge-1".into(),
            region: "r1".into(),
            received_at_ms: 1_000,
            bundle_sha256: None,
        };
        let sent = serde_json::to_vec(&ballot("yes", 1)).unwrap();
        let signed = |r: &Receipt| sign(&edge, r).unwrap();
        assert!(check_receipt_names(&sent, &receipt_for(&ballot("yes", 1))).is_ok());
        for (what, other) in [
            ("choice flipped", receipt_for(&ballot("no", 1))),
            ("nonce changed", receipt_for(&ballot("yes", 2))),
            (
                "another token",
                Receipt {
                    token_id: "t-2".into(),
                    ..receipt_for(&ballot("yes", 1))
                },
            ),
            (
                "another election",
                Receipt {
                    election: "f".into(),
                    ..receipt_for(&ballot("yes", 1))
                },
            ),
        ] {
            let _ = signed(&other); // a valid signature does not make it the voter's receipt
            let refused = check_receipt_names(&sent, &other).expect_err(what);
            assert!(
                refused.contains("ballot_mismatch") || refused.contains("wrong_election"),
                "{what}: {refused}"
            );
        }
    }
}

//! Fixed keys and documents shared by the test modules.

use edgevote_shared::{
    Ballot, ElectionManifest, ElectionOption, KeySet, Limits, Policy, Role, SigningIdentity,
    VoteToken, b64,
};

pub const NOW: u64 = 1_800_000_000;

pub fn identity(seed_byte: u8, role: Role) -> SigningIdentity {
    SigningIdentity::from_seed(&[seed_byte; 32], role)
}

pub fn authority() -> SigningIdentity {
    identity(1, Role::Authority)
}

pub fn edge() -> SigningIdentity {
    identity(2, Role::Edge)
}

/// The edge [`edge`]'s key is bound to, and its region.
pub const EDGE_ID: &str = "edge-1";
/// The region of [`EDGE_ID`].
pub const REGION: &str = "r1";

/// A key set with the authority and edge keys, valid from `NOW - 3600`; the edge key is bound
/// to [`EDGE_ID`] in [`REGION`].
pub fn keyset() -> KeySet {
    KeySet::from_jwks(vec![
        authority().public_jwk(NOW - 3600),
        edge().public_jwk(NOW - 3600).bound_to(EDGE_ID, REGION),
    ])
    .unwrap()
}

pub fn manifest() -> ElectionManifest {
    ElectionManifest {
        v: 1,
        id: "ref-2026".into(),
        title: "Referendum 2026".into(),
        options: vec![
            ElectionOption {
                id: "yes".into(),
                label: "Yes".into(),
            },
            ElectionOption {
                id: "no".into(),
                label: "No".into(),
            },
        ],
        opens_at: NOW - 60,
        closes_at: NOW + 3600,
        policy: Policy::FirstVoteWins,
        limits: Limits::default(),
        created_at: NOW - 120,
    }
}

pub fn token_claims(election: &str) -> VoteToken {
    VoteToken {
        jti: "tok-1".into(),
        sub: "voter-1".into(),
        aud: election.into(),
        iat: NOW - 100,
        nbf: NOW - 100,
        exp: NOW + 3600,
    }
}

pub fn token(election: &str) -> String {
    edgevote_shared::sign(&authority(), &token_claims(election)).unwrap()
}

pub fn ballot(choice: &str) -> Ballot {
    Ballot {
        election: "ref-2026".into(),
        token: token("ref-2026"),
        choice: choice.into(),
        nonce: b64::encode([7u8; 16]),
    }
}

/// Replaces the payload of a compact JWS, keeping header and signature.
pub fn with_payload(compact: &str, payload: &[u8]) -> String {
    let parts: Vec<&str> = compact.split('.').collect();
    format!("{}.{}.{}", parts[0], b64::encode(payload), parts[2])
}

/// Builds a compact JWS with an arbitrary header, signed by `identity`.
pub fn raw_jws(identity: &SigningIdentity, header: &str, payload: &[u8]) -> String {
    let input = format!("{}.{}", b64::encode(header), b64::encode(payload));
    let signature = identity.sign_message(input.as_bytes());
    format!("{input}.{}", b64::encode(signature))
}

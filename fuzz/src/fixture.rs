//! The fixed world the targets verify against: two keys per role (one retired, one current)
//! derived from fixed seeds, the key set that publishes them, fixed times and valid samples of
//! every document.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

use edgevote_shared::bundle::{BundleManifest, ConfigVar, Platform};
use edgevote_shared::checkpoint::Checkpoint;
use edgevote_shared::envelope::{EnvelopeVote, QueueEnvelope};
use edgevote_shared::manifest::{ElectionManifest, ElectionOption, Limits, Policy};
use edgevote_shared::tally::PublishedTally;
use edgevote_shared::{
    Ballot, Digest32, Document, KeySet, Receipt, Role, SigningIdentity, VoteToken, b64, merkle,
};

/// "Now" for every time-dependent check (2025-06-15).
pub const NOW: u64 = 1_750_000_000;
/// When the retired keys became valid.
pub const RETIRED_FROM: u64 = 1_600_000_000;
/// When the current keys became valid (they overlap the retired ones for a while).
pub const CURRENT_FROM: u64 = 1_730_000_000;
/// When the retired keys stopped being valid.
pub const RETIRED_UNTIL: u64 = 1_740_000_000;
/// A signing time inside the retired keys' window only.
pub const OLD: u64 = 1_700_000_000;
/// The election of the samples.
pub const ELECTION: &str = "e1";
/// The voting window of the sample election (contains [`NOW`]).
pub const OPENS_AT: u64 = 1_745_000_000;
/// See [`OPENS_AT`].
pub const CLOSES_AT: u64 = 1_760_000_000;
/// The component the sample bundle manifest describes.
pub const SAMPLE_WASM: &[u8] = b"\0asm\x0d\0\x01\0edgevote fuzz sample component";
/// The checkpoint origin (the log key's name).
pub const ORIGIN: &str = "edgevote.example/e1/receipts";

/// Deterministic keys and the key set publishing them.
pub struct Fixture {
    /// Every key of [`Fixture::identities`], with its validity window.
    pub keys: KeySet,
    /// Per role (in [`Role::ALL`] order): the retired key, then the current key.
    identities: Vec<[SigningIdentity; 2]>,
    /// The same keys for [`Fixture::sign_fast`], by key id.
    raw: BTreeMap<String, ed25519_dalek::SigningKey>,
}

/// The fixture, built once per process.
pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(Fixture::build)
}

/// The secret seed of key `generation` of `role`: a tagged hash, so every key differs.
fn seed(role: Role, generation: u8) -> [u8; 32] {
    Digest32::tagged(
        "edgevote-fuzz/key-seed/v1",
        &[role.as_str().as_bytes(), &[generation]],
    )
    .0
}

impl Fixture {
    fn build() -> Self {
        let mut keys = KeySet::default();
        let mut identities = Vec::new();
        for role in Role::ALL {
            let retired = SigningIdentity::from_seed(&seed(role, 0), role);
            let current = SigningIdentity::from_seed(&seed(role, 1), role);
            // Edge keys speak for the one edge the fixture's receipts and envelopes name.
            let bind = |jwk: edgevote_shared::PublicJwk| match role {
                Role::Edge => jwk.bound_to("edge-1", "eu-west-1"),
                _ => jwk,
            };
            let mut old_jwk = bind(retired.public_jwk(RETIRED_FROM));
            old_jwk.valid_until = Some(RETIRED_UNTIL);
            keys.insert(old_jwk).expect("fixture keys are valid");
            keys.insert(bind(current.public_jwk(CURRENT_FROM)))
                .expect("fixture keys are valid");
            identities.push([retired, current]);
        }
        let raw = identities
            .iter()
            .flatten()
            .map(|i| {
                (
                    i.kid().to_owned(),
                    ed25519_dalek::SigningKey::from_bytes(i.seed()),
                )
            })
            .collect();
        Fixture {
            keys,
            identities,
            raw,
        }
    }

    /// Signs `message` with `identity`'s key, skipping the self-check `SigningIdentity` runs in
    /// debug builds (the targets sign on every input; the verifier under test checks anyway).
    pub fn sign_fast(&self, identity: &SigningIdentity, message: &[u8]) -> [u8; 64] {
        use ed25519_dalek::Signer;
        self.raw[identity.kid()].sign(message).to_bytes()
    }

    fn pair(&self, role: Role) -> &[SigningIdentity; 2] {
        let index = Role::ALL
            .iter()
            .position(|r| *r == role)
            .expect("every role is in Role::ALL");
        &self.identities[index]
    }

    /// The current key of `role` (valid from [`CURRENT_FROM`], no end).
    pub fn current(&self, role: Role) -> &SigningIdentity {
        &self.pair(role)[1]
    }

    /// The retired key of `role` (valid from [`RETIRED_FROM`] until [`RETIRED_UNTIL`]).
    pub fn retired(&self, role: Role) -> &SigningIdentity {
        &self.pair(role)[0]
    }

    /// The private key behind `kid`, if it is one of ours.
    pub fn identity(&self, kid: &str) -> Option<&SigningIdentity> {
        self.identities.iter().flatten().find(|i| i.kid() == kid)
    }
}

/// A valid document of each type, signed at a chosen time.
pub trait Sample: Document + Clone + PartialEq + std::fmt::Debug {
    /// A valid instance that says it was signed at `at` (unix seconds).
    fn sample(at: u64) -> Self;

    /// Type-specific properties of a document that passed `validate` (panic when broken).
    fn extra_checks(&self) {}
}

/// The compact JWS of `T::sample(NOW)` signed with the current key of its role (made once per
/// type and process).
pub fn signed_sample<T: Sample>() -> String {
    static CACHE: Mutex<BTreeMap<&'static str, String>> = Mutex::new(BTreeMap::new());
    let mut cache = CACHE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    cache
        .entry(T::TYP)
        .or_insert_with(|| {
            edgevote_shared::sign(fixture().current(T::SIGNER), &T::sample(NOW))
                .expect("samples are valid")
        })
        .clone()
}

/// A vote token for voter `n` of the sample election, issued at `at`.
pub fn token(n: u32, at: u64) -> VoteToken {
    VoteToken {
        jti: format!("tok-{n:04}"),
        sub: format!("voter-{n:04}"),
        aud: ELECTION.into(),
        iat: at,
        nbf: at,
        exp: at.max(NOW) + 30 * 24 * 3600,
    }
}

/// A ballot of voter `n` for `choice`, carrying a token signed by the current authority key.
pub fn ballot(n: u32, choice: &str, nonce_byte: u8) -> Ballot {
    let fx = fixture();
    Ballot {
        election: ELECTION.into(),
        token: edgevote_shared::sign(fx.current(Role::Authority), &token(n, NOW - 3600))
            .expect("sample tokens are valid"),
        choice: choice.into(),
        nonce: b64::encode([nonce_byte; 16]),
    }
}

impl Sample for VoteToken {
    fn sample(at: u64) -> Self {
        token(1, at)
    }

    fn extra_checks(&self) {
        assert!(self.check_usable(&self.aud, self.nbf).is_ok());
        let expired = self.check_usable(&self.aud, self.exp).unwrap_err();
        assert_eq!(expired.code(), "token_expired");
        if self.nbf > 0 {
            let early = self.check_usable(&self.aud, self.nbf - 1).unwrap_err();
            assert_eq!(early.code(), "token_not_yet_valid");
        }
    }
}

impl Sample for Receipt {
    fn sample(at: u64) -> Self {
        let ballot = ballot(1, "yes", 7);
        Receipt {
            v: 1,
            election: ELECTION.into(),
            vote_id: ballot.vote_id("tok-0001"),
            token_id: "tok-0001".into(),
            edge: "edge-1".into(),
            region: "eu-west-1".into(),
            received_at_ms: at * 1000 + 250,
            bundle_sha256: Some(Digest32::of(SAMPLE_WASM)),
        }
    }

    fn extra_checks(&self) {
        assert!(self.check_election(&self.election).is_ok());
    }
}

impl Sample for QueueEnvelope {
    fn sample(at: u64) -> Self {
        QueueEnvelope {
            v: 1,
            batch_id: "edge-1.000042".into(),
            edge: "edge-1".into(),
            region: "eu-west-1".into(),
            created_at_ms: at * 1000 + 900,
            votes: vec![
                EnvelopeVote {
                    ballot: ballot(1, "yes", 1),
                    received_at_ms: at * 1000 + 100,
                },
                EnvelopeVote {
                    ballot: ballot(2, "no", 2),
                    received_at_ms: at * 1000 + 200,
                },
            ],
        }
    }

    fn extra_checks(&self) {
        // Every ballot an envelope carries is one an edge could have accepted on its own.
        for vote in &self.votes {
            let json = edgevote_shared::json::to_vec(&vote.ballot);
            let limit = edgevote_shared::manifest::MAX_BALLOT_BYTES as usize;
            assert_eq!(
                Ballot::parse(&json, limit).as_ref(),
                Ok(&vote.ballot),
                "a ballot inside a valid envelope does not parse on its own"
            );
        }
    }
}

impl Sample for ElectionManifest {
    fn sample(at: u64) -> Self {
        ElectionManifest {
            v: 1,
            id: ELECTION.into(),
            title: "Référendum « fuzz » 2026".into(),
            options: [("yes", "Oui"), ("no", "Non"), ("blank", "Vote blanc")]
                .into_iter()
                .map(|(id, label)| ElectionOption {
                    id: id.into(),
                    label: label.into(),
                })
                .collect(),
            opens_at: OPENS_AT,
            closes_at: CLOSES_AT,
            policy: Policy::LastVoteWins,
            limits: Limits::default(),
            created_at: at,
        }
    }

    fn extra_checks(&self) {
        assert!(self.is_open(self.opens_at));
        assert!(!self.is_open(self.closes_at));
        for option in &self.options {
            assert_eq!(self.option(&option.id), Some(option));
        }
    }
}

impl Sample for BundleManifest {
    fn sample(at: u64) -> Self {
        BundleManifest {
            v: 1,
            name: "edgevote-edge".into(),
            version: "0.1.0".into(),
            serial: 3,
            platform: Platform::WasiHttp,
            wasm_sha256: Digest32::of(SAMPLE_WASM),
            wasm_bytes: SAMPLE_WASM.len() as u64,
            config_schema: vec![
                ConfigVar {
                    name: "EDGEVOTE_REGION".into(),
                    description: "Region of this edge".into(),
                    required: true,
                    secret: false,
                },
                ConfigVar {
                    name: "EDGEVOTE_EDGE_SEED".into(),
                    description: "The edge's signing key seed".into(),
                    required: true,
                    secret: true,
                },
            ],
            created_at: at,
        }
    }

    fn extra_checks(&self) {
        let matches = self.wasm_bytes == SAMPLE_WASM.len() as u64
            && self.wasm_sha256 == Digest32::of(SAMPLE_WASM);
        assert_eq!(self.check_wasm(SAMPLE_WASM).is_ok(), matches);
    }
}

impl Sample for PublishedTally {
    fn sample(at: u64) -> Self {
        PublishedTally {
            v: 1,
            election: ELECTION.into(),
            counts: BTreeMap::from([("yes".into(), 2), ("no".into(), 1), ("blank".into(), 0)]),
            voters: 3,
            ballots: 4,
            receipts_root: Digest32::of(b"receipts"),
            choices_root: Digest32::of(b"choices"),
            created_at: at,
            incomplete: None,
        }
    }

    fn extra_checks(&self) {
        let total = self
            .counts
            .values()
            .try_fold(0u64, |sum, &n| sum.checked_add(n));
        assert_eq!(
            total,
            Some(self.voters),
            "a valid tally's counts must add up to its voters without overflow"
        );
    }
}

/// The sample checkpoint: a small tree over four leaves.
pub fn checkpoint() -> Checkpoint {
    let leaves: Vec<merkle::Hash> = (0u8..4).map(|i| merkle::leaf_hash(&[i])).collect();
    Checkpoint {
        origin: ORIGIN.into(),
        size: leaves.len() as u64,
        root: merkle::root(&leaves),
    }
}

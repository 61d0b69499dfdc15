//! decode(encode(x)) == x for every wire type, and verify(sign(x)) == x for every signed one.

use edgevote_shared::json::parse_bounded;
use edgevote_shared::keys::KeySetDoc;
use edgevote_shared::{
    Ballot, BundleManifest, ConfigVar, Digest32, Document, ElectionManifest, ElectionOption,
    EnvelopeVote, KeySet, Limits, Platform, Policy, QueueEnvelope, Receipt, Role, SigningIdentity,
    VoteToken, b64, sign, verify,
};
use proptest::collection::{btree_set, vec};
use proptest::prelude::*;

fn id() -> impl Strategy<Value = String> {
    "[A-Za-z0-9._-]{1,64}"
}

fn label() -> impl Strategy<Value = String> {
    "[A-Za-z0-9 éüß€'?!-]{1,60}"
}

fn digest() -> impl Strategy<Value = Digest32> {
    any::<[u8; 32]>().prop_map(Digest32)
}

fn time() -> impl Strategy<Value = u64> {
    0u64..4_000_000_000
}

fn window() -> impl Strategy<Value = (u64, u64)> {
    (time(), 1u64..100_000_000).prop_map(|(start, len)| (start, start + len))
}

fn ballot() -> impl Strategy<Value = Ballot> {
    (
        id(),
        "[A-Za-z0-9_-]{1,200}\\.[A-Za-z0-9_-]{1,400}\\.[A-Za-z0-9_-]{86}",
        id(),
        vec(any::<u8>(), 16..=32),
    )
        .prop_map(|(election, token, choice, nonce)| Ballot {
            election,
            token,
            choice,
            nonce: b64::encode(nonce),
        })
}

fn token() -> impl Strategy<Value = VoteToken> {
    (id(), id(), id(), window(), any::<bool>()).prop_map(|(jti, sub, aud, (nbf, exp), early)| {
        VoteToken {
            jti,
            sub,
            aud,
            iat: if early { nbf } else { exp },
            nbf,
            exp,
        }
    })
}

fn manifest() -> impl Strategy<Value = ElectionManifest> {
    (
        id(),
        label(),
        btree_set(id(), 1..10),
        label(),
        window(),
        prop_oneof![Just(Policy::FirstVoteWins), Just(Policy::LastVoteWins)],
        256u32..=16384,
        1u32..=100,
        time(),
    )
        .prop_map(
            |(
                id,
                title,
                option_ids,
                option_label,
                (opens_at, closes_at),
                policy,
                bytes,
                votes,
                created_at,
            )| {
                ElectionManifest {
                    v: 1,
                    id,
                    title,
                    options: option_ids
                        .into_iter()
                        .map(|id| ElectionOption {
                            id,
                            label: option_label.clone(),
                        })
                        .collect(),
                    opens_at,
                    closes_at,
                    policy,
                    limits: Limits {
                        max_ballot_bytes: bytes,
                        max_votes_per_voter: votes,
                    },
                    created_at,
                }
            },
        )
}

fn receipt() -> impl Strategy<Value = Receipt> {
    (
        id(),
        digest(),
        id(),
        id(),
        id(),
        0u64..4_000_000_000_000,
        proptest::option::of(digest()),
    )
        .prop_map(
            |(election, vote_id, token_id, edge, region, received_at_ms, bundle_sha256)| Receipt {
                v: 1,
                election,
                vote_id,
                token_id,
                edge,
                region,
                received_at_ms,
                bundle_sha256,
            },
        )
}

fn envelope() -> impl Strategy<Value = QueueEnvelope> {
    (
        id(),
        id(),
        id(),
        0u64..4_000_000_000_000,
        vec((ballot(), any::<u64>()), 1..8),
    )
        .prop_map(
            |(batch_id, edge, region, created_at_ms, votes)| QueueEnvelope {
                v: 1,
                batch_id,
                edge,
                region,
                created_at_ms,
                votes: votes
                    .into_iter()
                    .map(|(ballot, received_at_ms)| EnvelopeVote {
                        ballot,
                        received_at_ms,
                    })
                    .collect(),
            },
        )
}

fn bundle() -> impl Strategy<Value = BundleManifest> {
    (
        id(),
        id(),
        prop_oneof![Just(Platform::WasiHttp), Just(Platform::CloudflareWorker)],
        digest(),
        any::<u64>(),
        vec((id(), label(), any::<bool>(), any::<bool>()), 0..5),
        time(),
        any::<u64>(),
    )
        .prop_map(
            |(name, version, platform, wasm_sha256, wasm_bytes, vars, created_at, serial)| {
                BundleManifest {
                    v: 1,
                    name,
                    version,
                    serial,
                    platform,
                    wasm_sha256,
                    wasm_bytes,
                    config_schema: vars
                        .into_iter()
                        .map(|(name, description, required, secret)| ConfigVar {
                            name,
                            description,
                            required,
                            secret,
                        })
                        .collect(),
                    created_at,
                }
            },
        )
}

/// JSON encode/decode and sign/verify round trips for a signed document type.
fn check_document<T: Document + PartialEq + std::fmt::Debug>(doc: T, seed: u8) {
    let bytes = serde_json::to_vec(&doc).unwrap();
    let decoded: T = parse_bounded(T::NAME, &bytes, T::MAX_JWS_BYTES).unwrap();
    assert_eq!(decoded, doc);
    let identity = SigningIdentity::from_seed(&[seed; 32], T::SIGNER);
    let mut jwk = identity.public_jwk(0);
    if let Some((edge, region)) = doc.signing_edge() {
        jwk = jwk.bound_to(edge, region); // an edge key speaks for its own edge only
    }
    let keys = KeySet::from_jwks(vec![jwk]).unwrap();
    let compact = sign(&identity, &doc).unwrap();
    assert_eq!(verify::<T>(&compact, &keys).unwrap().doc, doc);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn ballot_round_trips(b in ballot()) {
        let bytes = serde_json::to_vec(&b).unwrap();
        prop_assert_eq!(Ballot::parse(&bytes, 16384).unwrap(), b);
    }

    #[test]
    fn token_round_trips(t in token(), seed in any::<u8>()) {
        check_document(t, seed);
    }

    #[test]
    fn manifest_round_trips(m in manifest(), seed in any::<u8>()) {
        check_document(m, seed);
    }

    #[test]
    fn receipt_round_trips(r in receipt(), seed in any::<u8>()) {
        check_document(r, seed);
    }

    #[test]
    fn envelope_round_trips(e in envelope(), seed in any::<u8>()) {
        check_document(e, seed);
    }

    #[test]
    fn bundle_round_trips(b in bundle(), seed in any::<u8>()) {
        check_document(b, seed);
    }

    #[test]
    fn digest_round_trips(d in digest()) {
        let json = serde_json::to_string(&d).unwrap();
        prop_assert_eq!(serde_json::from_str::<Digest32>(&json).unwrap(), d);
    }

    #[test]
    fn key_set_round_trips(seeds in btree_set(any::<[u8; 32]>(), 0..6), from in time()) {
        let keys: Vec<_> = seeds
            .iter()
            .enumerate()
            .map(|(i, seed)| SigningIdentity::from_seed(seed, Role::ALL[i % 4]).public_jwk(from))
            .collect();
        let set = KeySet::from_jwks(keys).unwrap();
        let doc: KeySetDoc = serde_json::from_str(&set.to_json_pretty()).unwrap();
        prop_assert_eq!(KeySet::from_jwks(doc.keys).unwrap(), set);
    }

    #[test]
    fn parsers_never_panic_on_arbitrary_bytes(bytes in vec(any::<u8>(), 0..600)) {
        let _ = Ballot::parse(&bytes, 4096);
        let _ = KeySet::parse(&bytes);
        if let Ok(text) = std::str::from_utf8(&bytes) {
            let keys = KeySet::default();
            let _ = verify::<VoteToken>(text, &keys);
            let _ = verify::<QueueEnvelope>(text, &keys);
        }
    }
}

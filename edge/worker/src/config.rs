//! The worker's configuration, read from its environment bindings (`[vars]` and secrets in
//! `wrangler.toml`, `text` bindings under workerd):
//!
//! | variable | content |
//! |---|---|
//! | `EDGEVOTE_KEYSET` | the published JWK Set (authority keys verify tokens and manifests) |
//! | `EDGEVOTE_ELECTIONS` | signed election manifests (compact JWS), one per line |
//! | `EDGEVOTE_EDGE_KEY` (secret) | this edge's private key: the JWK file `edgevote keys gen --role edge --edge ID --region R` wrote; the key set must bind it to `EDGEVOTE_EDGE_ID` and `EDGEVOTE_REGION`, and it must be valid now |
//! | `EDGEVOTE_EDGE_ID` | edge id written into receipts and envelopes (at most 41 characters) |
//! | `EDGEVOTE_REGION` | region written into receipts and envelopes |
//! | `EDGEVOTE_QUEUES` | `region=queue_url` pairs, comma-separated, tried in order |
//! | `EDGEVOTE_BUNDLE_SHA256` | optional: base64url SHA-256 of this bundle, named in receipts |
//! | `EDGEVOTE_QUEUE_TIMEOUT_MS` | optional: how long one SQS call may take before the next queue is tried (default 3000; times the number of queues at most 25000) |
//! | `EDGEVOTE_BATCH_MAX_VOTES` | optional: most votes of concurrent requests sent in one SQS message, 1..=256 (default 128; 1 turns group commit off: every vote is sent at once in its own message) |
//! | `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` (secrets) | SQS credentials |
//! | `AWS_SESSION_TOKEN` (secret) | optional: session token of temporary credentials |
//! | `EDGEVOTE_CRYPTO` | optional: `webcrypto` (default): Ed25519 by the platform's WebCrypto, the edge key imported as a non-extractable key; `wasm`: the same signatures in the bundle's own Wasm arithmetic |
//!
//! Parsing is pure (a lookup function in, a [`Config`] or a [`ConfigError`] naming the variable
//! out), so it is tested on the host.

use std::collections::BTreeSet;

use edgevote_edge_core::commit::CommitBounds;
use edgevote_edge_core::{Edge, PlatformKey, Sealing, ServedElection};
use edgevote_edge_sqs::{AwsCredentials, QueueTarget, endpoint_of};
use edgevote_shared::validate::check_id;
use edgevote_shared::{
    Digest32, ElectionManifest, KeySet, Role, SigningIdentity, b64, message, verify,
};
use serde::Deserialize;
use zeroize::Zeroizing;

use edgevote_edge_core::SINGLE_BATCH_VOTE_ID_CHARS as BATCH_VOTE_ID_CHARS;
/// Longest edge id: a batch id (`{edge_id}.{22 chars}`) must stay an id of at most 64 characters.
pub const MAX_EDGE_ID_LEN: usize = 64 - 1 - BATCH_VOTE_ID_CHARS;
/// Default for `EDGEVOTE_QUEUE_TIMEOUT_MS`.
pub const DEFAULT_QUEUE_TIMEOUT_MS: u32 = 3000;
/// Bounds of `EDGEVOTE_QUEUE_TIMEOUT_MS`.
const QUEUE_TIMEOUT_RANGE_MS: std::ops::RangeInclusive<u32> = 100..=30_000;
/// Longest one message's calls may take, over every queue (queues x
/// `EDGEVOTE_QUEUE_TIMEOUT_MS`): a message is sent as `waitUntil` work of a request, which
/// Workers end 30 s after the request's response.
pub const MAX_SEND_MS: u64 = 25_000;
/// Longest private JWK we parse.
const MAX_EDGE_KEY_BYTES: usize = 4096;

/// Everything a request needs, built once per isolate.
#[derive(Debug)]
pub struct Config {
    /// The core handler (elections, key set, signing identity).
    pub edge: Edge,
    /// Edge id (prefix of batch ids).
    pub edge_id: String,
    /// Queues, in the order they are tried.
    pub queues: Vec<QueueTarget>,
    /// SQS credentials.
    pub credentials: AwsCredentials,
    /// Time one SQS call may take.
    pub queue_timeout_ms: u32,
    /// Bounds of one SQS message: envelopes of concurrent votes share one (see
    /// [`crate::group`]).
    pub commit_bounds: CommitBounds,
    /// Who does the Ed25519 arithmetic.
    pub crypto: Crypto,
}

/// Who does the Ed25519 arithmetic (`EDGEVOTE_CRYPTO`).
#[derive(Debug)]
pub enum Crypto {
    /// The platform's WebCrypto (the edge's sealing is [`Sealing::Platform`]): the edge key,
    /// to be imported into WebCrypto on the first vote of an isolate.
    WebCrypto(PlatformEdgeKey),
    /// The bundle's own Wasm (the edge holds its key: [`Sealing::Local`]).
    Wasm,
}

/// The edge key as WebCrypto imports it (a JWK with `d` and `x`).
pub struct PlatformEdgeKey {
    /// The private scalar seed, base64url.
    pub d: Zeroizing<String>,
    /// The public key.
    pub public_key: [u8; 32],
}

impl PlatformEdgeKey {
    /// The public key, base64url (the JWK's `x`).
    pub fn x(&self) -> String {
        b64::encode(self.public_key)
    }
}

impl std::fmt::Debug for PlatformEdgeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlatformEdgeKey")
            .field("x", &self.x())
            .finish_non_exhaustive()
    }
}

/// A missing or invalid variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The variable.
    pub var: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.var, self.reason)
    }
}

impl std::error::Error for ConfigError {}

fn bad(var: &'static str, reason: impl std::fmt::Display) -> ConfigError {
    ConfigError {
        var,
        reason: reason.to_string(),
    }
}

impl Config {
    /// Reads and checks every variable through `lookup` (`None`: not set), at `now_secs` (the
    /// edge key must be valid then).
    pub fn load(
        lookup: impl Fn(&str) -> Option<String>,
        now_secs: u64,
    ) -> Result<Config, ConfigError> {
        let required = |var: &'static str| -> Result<String, ConfigError> {
            match lookup(var) {
                Some(value) if !value.trim().is_empty() => Ok(value),
                Some(_) => Err(bad(var, "is empty")),
                None => Err(bad(var, "is not set")),
            }
        };
        let optional = |var: &'static str| lookup(var).filter(|v| !v.trim().is_empty());

        let keys = KeySet::parse(required("EDGEVOTE_KEYSET")?.as_bytes())
            .map_err(|e| bad("EDGEVOTE_KEYSET", format!("{e} ({})", e.code())))?;
        let elections = elections(&required("EDGEVOTE_ELECTIONS")?, &keys)?;
        let signer = edge_key(&required("EDGEVOTE_EDGE_KEY")?, &keys)?;
        let edge_id = required("EDGEVOTE_EDGE_ID")?.trim().to_owned();
        check_id("edge id", &edge_id).map_err(|e| bad("EDGEVOTE_EDGE_ID", e))?;
        if edge_id.len() > MAX_EDGE_ID_LEN {
            return Err(bad(
                "EDGEVOTE_EDGE_ID",
                format!(
                    "{} characters, at most {MAX_EDGE_ID_LEN} (batch ids are `{{edge_id}}.{{22 characters of the vote id}}`)",
                    edge_id.len()
                ),
            ));
        }
        let region = required("EDGEVOTE_REGION")?.trim().to_owned();
        check_id("region", &region).map_err(|e| bad("EDGEVOTE_REGION", e))?;
        edgevote_edge_core::check_edge_key(&keys, signer.kid(), &edge_id, &region, now_secs)
            .map_err(|e| bad("EDGEVOTE_EDGE_KEY", e))?;
        let queues = queues(&required("EDGEVOTE_QUEUES")?)?;
        let credentials = AwsCredentials {
            access_key_id: required("AWS_ACCESS_KEY_ID")?.trim().to_owned(),
            secret_access_key: required("AWS_SECRET_ACCESS_KEY")?.trim().to_owned(),
            session_token: optional("AWS_SESSION_TOKEN").map(|t| t.trim().to_owned()),
        };
        let bundle_sha256 = match optional("EDGEVOTE_BUNDLE_SHA256") {
            Some(text) => Some(Digest32(
                b64::decode_array::<32>("EDGEVOTE_BUNDLE_SHA256", text.trim())
                    .map_err(|e| bad("EDGEVOTE_BUNDLE_SHA256", e))?,
            )),
            None => None,
        };
        let queue_timeout_ms = number_in(
            "EDGEVOTE_QUEUE_TIMEOUT_MS",
            optional("EDGEVOTE_QUEUE_TIMEOUT_MS"),
            QUEUE_TIMEOUT_RANGE_MS,
            "a number of milliseconds",
        )?
        .unwrap_or(DEFAULT_QUEUE_TIMEOUT_MS);
        if send_ms(queues.len(), queue_timeout_ms) > MAX_SEND_MS {
            return Err(bad(
                "EDGEVOTE_QUEUE_TIMEOUT_MS",
                format!(
                    "{queue_timeout_ms} ms for each of {} queues is over {MAX_SEND_MS} ms: a message's calls must end within the Workers limit on work after a response (waitUntil)",
                    queues.len()
                ),
            ));
        }
        let batch_max_votes = number_in(
            "EDGEVOTE_BATCH_MAX_VOTES",
            optional("EDGEVOTE_BATCH_MAX_VOTES"),
            1..=message::MAX_ENVELOPES as u32,
            "a number of votes",
        )?
        .map_or(CommitBounds::default().max_votes, |votes| votes as usize);
        let (sealing, crypto) = match optional("EDGEVOTE_CRYPTO").as_deref().map(str::trim) {
            None | Some("webcrypto") => {
                let key = PlatformEdgeKey {
                    d: Zeroizing::new(b64::encode(signer.seed())),
                    public_key: signer.verifying_key().to_bytes(),
                };
                let kid = signer.kid().to_owned();
                (
                    Sealing::Platform(PlatformKey { kid }),
                    Crypto::WebCrypto(key),
                )
            }
            Some("wasm") => (Sealing::Local(Box::new(signer)), Crypto::Wasm),
            Some(other) => {
                return Err(bad(
                    "EDGEVOTE_CRYPTO",
                    format!("{other:?} is neither webcrypto nor wasm"),
                ));
            }
        };
        Ok(Config {
            edge: Edge::with_sealing(elections, keys, sealing, &edge_id, &region, bundle_sha256),
            edge_id,
            queues,
            credentials,
            queue_timeout_ms,
            commit_bounds: CommitBounds {
                max_votes: batch_max_votes,
                ..CommitBounds::default()
            },
            crypto,
        })
    }

    /// Longest the calls of one message take: every queue tried until its timeout.
    pub fn message_send_ms(&self) -> u64 {
        send_ms(self.queues.len(), self.queue_timeout_ms)
    }
}

fn send_ms(queues: usize, queue_timeout_ms: u32) -> u64 {
    queues as u64 * u64::from(queue_timeout_ms)
}

/// The optional number `text` of variable `var`, which must be `what` in `range`.
fn number_in(
    var: &'static str,
    text: Option<String>,
    range: std::ops::RangeInclusive<u32>,
    what: &str,
) -> Result<Option<u32>, ConfigError> {
    let Some(text) = text else {
        return Ok(None);
    };
    let number = text
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|n| range.contains(n));
    match number {
        Some(number) => Ok(Some(number)),
        None => Err(bad(
            var,
            format!(
                "{text:?} is not {what} in {}..={}",
                range.start(),
                range.end()
            ),
        )),
    }
}

fn elections(text: &str, keys: &KeySet) -> Result<Vec<ServedElection>, ConfigError> {
    const VAR: &str = "EDGEVOTE_ELECTIONS";
    let mut seen = BTreeSet::new();
    let mut served = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let signed = line.trim();
        if signed.is_empty() {
            continue;
        }
        let manifest = verify::<ElectionManifest>(signed, keys)
            .map_err(|e| bad(VAR, format!("line {}: {e} ({})", index + 1, e.code())))?
            .doc;
        if !seen.insert(manifest.id.clone()) {
            return Err(bad(
                VAR,
                format!(
                    "line {}: election {:?} listed twice",
                    index + 1,
                    manifest.id
                ),
            ));
        }
        served.push(ServedElection {
            manifest,
            signed: signed.to_owned(),
        });
    }
    if served.is_empty() {
        return Err(bad(VAR, "holds no signed manifest"));
    }
    Ok(served)
}

/// The private JWK `edgevote keys gen --role edge` writes (`private/<kid>.jwk`). Only `d` and
/// `edgevote_role` are needed; `x` and `kid`, when present, must match `d`.
#[derive(Deserialize)]
struct PrivateJwk {
    d: String,
    edgevote_role: Role,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    kid: Option<String>,
}

fn edge_key(text: &str, keys: &KeySet) -> Result<SigningIdentity, ConfigError> {
    const VAR: &str = "EDGEVOTE_EDGE_KEY";
    if text.len() > MAX_EDGE_KEY_BYTES {
        return Err(bad(
            VAR,
            format!("{} bytes, more than {MAX_EDGE_KEY_BYTES}", text.len()),
        ));
    }
    let mut jwk: PrivateJwk = serde_json::from_str(text.trim()).map_err(|e| {
        bad(
            VAR,
            format!("not a private JWK (`d`, `edgevote_role`): {e}"),
        )
    })?;
    if jwk.edgevote_role != Role::Edge {
        return Err(bad(
            VAR,
            format!("a key of role {}, not edge", jwk.edgevote_role),
        ));
    }
    let d = Zeroizing::new(std::mem::take(&mut jwk.d));
    let seed = Zeroizing::new(b64::decode_array::<32>("d", &d).map_err(|e| bad(VAR, e))?);
    let identity = SigningIdentity::from_seed(&seed, Role::Edge);
    let public = identity.public_jwk(0);
    if jwk.x.as_ref().is_some_and(|x| *x != public.x)
        || jwk.kid.as_ref().is_some_and(|kid| *kid != public.kid)
    {
        return Err(bad(VAR, "`d` does not match `x`/`kid`"));
    }
    match keys.get(identity.kid()) {
        Some((published, _)) if published.edgevote_role == Role::Edge => Ok(identity),
        Some((published, _)) => Err(bad(
            VAR,
            format!(
                "key {} has role {} in EDGEVOTE_KEYSET, not edge",
                identity.kid(),
                published.edgevote_role
            ),
        )),
        None => Err(bad(
            VAR,
            format!(
                "key {} is not in EDGEVOTE_KEYSET, so its receipts would not verify",
                identity.kid()
            ),
        )),
    }
}

fn queues(text: &str) -> Result<Vec<QueueTarget>, ConfigError> {
    const VAR: &str = "EDGEVOTE_QUEUES";
    let mut queues = Vec::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((region, url)) = pair.split_once('=') else {
            return Err(bad(VAR, format!("{pair:?} is not region=queue_url")));
        };
        let (region, url) = (region.trim(), url.trim());
        check_id("region", region).map_err(|e| bad(VAR, format!("{pair:?}: {e}")))?;
        endpoint_of(url).map_err(|e| bad(VAR, e))?;
        queues.push(QueueTarget {
            queue_url: url.to_owned(),
            region: region.to_owned(),
        });
    }
    if queues.is_empty() {
        return Err(bad(VAR, "names no queue"));
    }
    Ok(queues)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::HashMap;

    use edgevote_shared::{ElectionOption, Limits, Policy, sign};

    use super::*;

    fn authority() -> SigningIdentity {
        SigningIdentity::from_seed(&[1; 32], Role::Authority)
    }

    fn edge_identity() -> SigningIdentity {
        SigningIdentity::from_seed(&[2; 32], Role::Edge)
    }

    fn vars() -> HashMap<&'static str, String> {
        let keys = KeySet::from_jwks(vec![
            authority().public_jwk(0),
            edge_identity()
                .public_jwk(0)
                .bound_to("cf-edge-1", "eu-west-1"),
        ])
        .unwrap();
        let manifest = ElectionManifest {
            v: 1,
            id: "ref-2026".into(),
            title: "T".into(),
            options: vec![ElectionOption {
                id: "yes".into(),
                label: "Yes".into(),
            }],
            opens_at: 0,
            closes_at: 4_000_000_000,
            policy: Policy::FirstVoteWins,
            limits: Limits::default(),
            created_at: 0,
        };
        let public = edge_identity().public_jwk(0);
        let private = serde_json::json!({
            "kty": "OKP", "crv": "Ed25519", "x": public.x, "kid": public.kid, "alg": "EdDSA",
            "use": "sig", "edgevote_role": "edge", "d": b64::encode([2u8; 32]),
        });
        HashMap::from([
            ("EDGEVOTE_KEYSET", keys.to_json_pretty()),
            (
                "EDGEVOTE_ELECTIONS",
                format!("{}\n", sign(&authority(), &manifest).unwrap()),
            ),
            ("EDGEVOTE_EDGE_KEY", private.to_string()),
            ("EDGEVOTE_EDGE_ID", "cf-edge-1".into()),
            ("EDGEVOTE_REGION", "eu-west-1".into()),
            (
                "EDGEVOTE_QUEUES",
                "eu-west-1=https://sqs.eu-west-1.amazonaws.com/1/votes, eu-central-1=http://127.0.0.1:9/1/votes".into(),
            ),
            ("AWS_ACCESS_KEY_ID", "AKID".into()),
            ("AWS_SECRET_ACCESS_KEY", "secret".into()),
        ])
    }

    fn load(vars: &HashMap<&'static str, String>) -> Result<Config, ConfigError> {
        Config::load(|name| vars.get(name).cloned(), 1_800_000_000)
    }

    #[test]
    fn an_edge_key_bound_to_another_edge_or_retired_is_refused() {
        let mut other_edge = vars();
        other_edge.insert("EDGEVOTE_EDGE_ID", "cf-edge-2".into());
        let Err(refused) = load(&other_edge) else {
            panic!("a key bound to cf-edge-1 was accepted for cf-edge-2");
        };
        assert!(
            refused.to_string().contains("key_binding_mismatch"),
            "{refused}"
        );
        let mut retired = vars();
        let mut keys = KeySet::parse(retired["EDGEVOTE_KEYSET"].as_bytes()).unwrap();
        keys.retire(edge_identity().kid(), 100).unwrap();
        retired.insert("EDGEVOTE_KEYSET", keys.to_json_pretty());
        let Err(refused) = load(&retired) else {
            panic!("a key retired at 100 was accepted");
        };
        assert!(refused.to_string().contains("not valid now"), "{refused}");
    }

    #[test]
    fn a_complete_configuration_loads() {
        let config = load(&vars()).unwrap();
        assert_eq!(config.queues.len(), 2);
        assert_eq!(config.queues[1].region, "eu-central-1");
        assert_eq!(config.credentials.session_token, None);
        assert_eq!(config.queue_timeout_ms, DEFAULT_QUEUE_TIMEOUT_MS);
        assert_eq!(config.commit_bounds, CommitBounds::default());
        assert_eq!(config.edge.max_body_bytes(), 4096);
    }

    #[test]
    fn webcrypto_holds_the_key_by_default_and_wasm_on_request() {
        let config = load(&vars()).unwrap();
        let Crypto::WebCrypto(key) = &config.crypto else {
            panic!("the default is not WebCrypto");
        };
        assert_eq!(key.public_key, edge_identity().verifying_key().to_bytes());
        assert_eq!(key.x(), edge_identity().public_jwk(0).x);
        assert_eq!(
            b64::decode_array::<32>("d", &key.d).unwrap(),
            *edge_identity().seed()
        );
        assert!(config.edge.receipt_to_sign(&accepted_vote(&config)).is_ok());
        assert_eq!(
            config.edge.receipt_response(&accepted_vote(&config)).status,
            500,
            "the edge itself holds no key: it cannot sign outside WebCrypto"
        );
        let mut wasm = vars();
        wasm.insert("EDGEVOTE_CRYPTO", "wasm".into());
        let config = load(&wasm).unwrap();
        assert!(matches!(config.crypto, Crypto::Wasm));
        assert!(
            config
                .edge
                .receipt_to_sign(&accepted_vote(&config))
                .is_err()
        );
    }

    /// A vote the configured edge accepts (wasm) or prepares for the platform (webcrypto).
    fn accepted_vote(config: &Config) -> edgevote_edge_core::Accepted {
        let claims = edgevote_shared::VoteToken {
            jti: "t1".into(),
            sub: "v1".into(),
            aud: "ref-2026".into(),
            iat: 1,
            nbf: 1,
            exp: u64::MAX / 2,
        };
        let body = serde_json::json!({
            "election": "ref-2026", "token": sign(&authority(), &claims).unwrap(),
            "choice": "yes", "nonce": b64::encode([9u8; 16]),
        })
        .to_string();
        let request = edgevote_edge_core::Request {
            method: "POST",
            path: "/v1/elections/ref-2026/votes",
            content_type: Some("application/json"),
            body: body.as_bytes(),
        };
        match config.edge.handle(request, 1_000_000) {
            edgevote_edge_core::Outcome::Enqueue(accepted) => *accepted,
            edgevote_edge_core::Outcome::VerifyOnPlatform(vote) => {
                let (key, message, signature) = vote.signature_parts();
                let valid = edgevote_shared::keys::verify_with_public_key(key, message, signature);
                config.edge.admit_on_platform(*vote, valid).unwrap()
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_problem_names_its_variable() {
        let long_id = "e".repeat(MAX_EDGE_ID_LEN + 1);
        let cases: Vec<(&'static str, Option<&str>)> = vec![
            ("EDGEVOTE_KEYSET", None),
            ("EDGEVOTE_KEYSET", Some("{\"keys\": 1}")),
            ("EDGEVOTE_ELECTIONS", Some("\n\n")),
            ("EDGEVOTE_ELECTIONS", Some("a.b.c")),
            ("EDGEVOTE_EDGE_KEY", None),
            (
                "EDGEVOTE_EDGE_KEY",
                Some("{\"d\": \"AAAA\", \"edgevote_role\": \"edge\"}"),
            ),
            ("EDGEVOTE_EDGE_ID", Some("has space")),
            ("EDGEVOTE_EDGE_ID", Some(&long_id)),
            ("EDGEVOTE_REGION", Some("")),
            ("EDGEVOTE_QUEUES", Some("no-equals-sign")),
            ("EDGEVOTE_QUEUES", Some("r1=ftp://x/y")),
            ("EDGEVOTE_QUEUES", Some(" , ")),
            ("AWS_ACCESS_KEY_ID", None),
            ("AWS_SECRET_ACCESS_KEY", None),
            ("EDGEVOTE_BUNDLE_SHA256", Some("xyz")),
            ("EDGEVOTE_QUEUE_TIMEOUT_MS", Some("5")),
            ("EDGEVOTE_QUEUE_TIMEOUT_MS", Some("20000")), // two queues: 40 s
            ("EDGEVOTE_BATCH_MAX_VOTES", Some("0")),
            ("EDGEVOTE_BATCH_MAX_VOTES", Some("257")),
            ("EDGEVOTE_BATCH_MAX_VOTES", Some("many")),
            ("EDGEVOTE_CRYPTO", Some("openssl")),
        ];
        for (var, value) in cases {
            let mut vars = vars();
            match value {
                Some(value) => vars.insert(var, value.to_owned()),
                None => vars.remove(var),
            };
            let err = load(&vars).unwrap_err();
            assert_eq!(err.var, var, "{var}={value:?}: {err}");
            assert!(err.to_string().starts_with(var), "{err}");
        }
    }

    #[test]
    fn the_edge_key_must_be_an_edge_key_of_the_key_set() {
        let mut with_authority_key = vars();
        let authority_private = serde_json::json!({
            "d": b64::encode([1u8; 32]), "edgevote_role": "authority",
        });
        with_authority_key.insert("EDGEVOTE_EDGE_KEY", authority_private.to_string());
        let err = load(&with_authority_key).unwrap_err();
        assert!(err.reason.contains("not edge"), "{err}");

        let mut unpublished = vars();
        let other = serde_json::json!({"d": b64::encode([3u8; 32]), "edgevote_role": "edge"});
        unpublished.insert("EDGEVOTE_EDGE_KEY", other.to_string());
        let err = load(&unpublished).unwrap_err();
        assert!(err.reason.contains("not in EDGEVOTE_KEYSET"), "{err}");

        let mut mismatched = vars();
        let wrong_x = serde_json::json!({
            "d": b64::encode([2u8; 32]), "edgevote_role": "edge",
            "x": SigningIdentity::from_seed(&[3; 32], Role::Edge).public_jwk(0).x,
        });
        mismatched.insert("EDGEVOTE_EDGE_KEY", wrong_x.to_string());
        let err = load(&mismatched).unwrap_err();
        assert!(err.reason.contains("does not match"), "{err}");
    }

    #[test]
    fn a_message_s_calls_must_fit_the_wait_until_limit() {
        let mut vars = vars(); // two queues
        vars.insert("EDGEVOTE_QUEUE_TIMEOUT_MS", (MAX_SEND_MS / 2).to_string());
        assert!(load(&vars).is_ok());
        vars.insert(
            "EDGEVOTE_QUEUE_TIMEOUT_MS",
            (MAX_SEND_MS / 2 + 1).to_string(),
        );
        let err = load(&vars).unwrap_err();
        assert_eq!(err.var, "EDGEVOTE_QUEUE_TIMEOUT_MS", "{err}");
        assert!(err.reason.contains("2 queues"), "{err}");
    }

    #[test]
    fn optional_variables() {
        let mut vars = vars();
        vars.insert("AWS_SESSION_TOKEN", "tok".into());
        vars.insert("EDGEVOTE_BUNDLE_SHA256", b64::encode([5u8; 32]));
        vars.insert("EDGEVOTE_QUEUE_TIMEOUT_MS", "1500".into());
        vars.insert("EDGEVOTE_BATCH_MAX_VOTES", " 1 ".into());
        let config = load(&vars).unwrap();
        assert_eq!(config.credentials.session_token.as_deref(), Some("tok"));
        assert_eq!(config.queue_timeout_ms, 1500);
        assert_eq!(config.commit_bounds.max_votes, 1);
        assert!(config.commit_bounds.check().is_ok());
    }
}

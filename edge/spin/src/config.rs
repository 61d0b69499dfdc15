//! The component's configuration, read once per instance from environment variables (Spin
//! component `environment`, or the edge host's per-bundle environment):
//!
//! | variable | content |
//! |---|---|
//! | `EDGEVOTE_KEYSET` | the published JWK Set (authority keys verify tokens and manifests) |
//! | `EDGEVOTE_ELECTIONS` | signed election manifests (compact JWS), one per line |
//! | `EDGEVOTE_SEALING` | optional: `component` (the default) or `host` (see below) |
//! | `EDGEVOTE_EDGE_KEY` | this edge's private key: the JWK file `edgevote keys gen --role edge` wrote |
//! | `EDGEVOTE_EDGE_ID` | edge id written into receipts and envelopes |
//! | `EDGEVOTE_REGION` | region written into receipts and envelopes |
//! | `EDGEVOTE_QUEUES` | `region=queue_url` pairs, comma-separated, tried in order |
//! | `EDGEVOTE_BUNDLE_SHA256` | optional: base64url SHA-256 of this bundle, named in receipts |
//! | `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN` | SQS credentials (secrets) |
//! | `EDGEVOTE_QUEUE_AUTH` | optional: `sigv4` (the default) or `none` (see below) |
//!
//! With `EDGEVOTE_QUEUE_AUTH=none` (set only by `edgevote edge`, which takes the component's
//! `SendMessage` into its own group commit, never on Spin: a real queue refuses the call) the
//! component signs no SQS call, and the AWS credentials must be absent.
//!
//! With `EDGEVOTE_SEALING=host` (set only by `edgevote edge`, never on Spin) the component holds
//! no key and sends no SQS call: it hands each checked ballot to its host, which verifies,
//! seals and signs natively. The edge key, the queues and the AWS credentials must then be
//! absent: the key never enters the sandbox.

use std::sync::OnceLock;

use edgevote_edge_core::{Edge, Sealing, ServedElection};
use edgevote_edge_sqs::{AwsCredentials, QueueTarget};
use edgevote_shared::{Digest32, ElectionManifest, KeySet, Role, SigningIdentity, b64, verify};
use serde::Deserialize;

/// Everything a request needs, built once per instance.
pub struct EdgeConfig {
    /// The core handler.
    pub edge: Edge,
    /// Where accepted votes go.
    pub delivery: Delivery,
}

/// Where accepted votes go.
pub enum Delivery {
    /// The component sends each vote to SQS itself (local sealing).
    Sqs {
        /// Queues in the order they are tried.
        queues: Vec<QueueTarget>,
        /// SQS credentials; `None`: calls go unsigned (`EDGEVOTE_QUEUE_AUTH=none`).
        credentials: Option<AwsCredentials>,
    },
    /// The host seals: checked ballots go to its sealer (host sealing).
    Host,
}

/// The variables only a component that seals itself reads.
const LOCAL_SEALING_VARS: [&str; 4] = [
    "EDGEVOTE_EDGE_KEY",
    "EDGEVOTE_QUEUES",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
];

/// The edge of this instance, or why the configuration is unusable.
pub fn edge() -> Result<&'static EdgeConfig, String> {
    static CONFIG: OnceLock<Result<EdgeConfig, String>> = OnceLock::new();
    CONFIG.get_or_init(load).as_ref().map_err(Clone::clone)
}

fn var(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("environment variable {name} is not set"))
}

fn load() -> Result<EdgeConfig, String> {
    let keys = KeySet::parse(var("EDGEVOTE_KEYSET")?.as_bytes())
        .map_err(|e| format!("EDGEVOTE_KEYSET: {e} ({})", e.code()))?;
    let elections = var("EDGEVOTE_ELECTIONS")?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|signed| {
            let signed = signed.trim().to_owned();
            verify::<ElectionManifest>(&signed, &keys)
                .map(|v| ServedElection {
                    manifest: v.doc,
                    signed,
                })
                .map_err(|e| format!("EDGEVOTE_ELECTIONS: {e} ({})", e.code()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let edge_id = var("EDGEVOTE_EDGE_ID")?;
    let region = var("EDGEVOTE_REGION")?;
    let bundle = match std::env::var("EDGEVOTE_BUNDLE_SHA256") {
        Ok(text) => Some(Digest32(
            b64::decode_array::<32>("EDGEVOTE_BUNDLE_SHA256", &text).map_err(|e| e.to_string())?,
        )),
        Err(_) => None,
    };
    let (sealing, delivery) = sealing()?;
    if let Sealing::Local(signer) = &sealing {
        edgevote_edge_core::check_edge_key(&keys, signer.kid(), &edge_id, &region, now_secs())
            .map_err(|e| format!("EDGEVOTE_EDGE_KEY: {e}"))?;
    }
    Ok(EdgeConfig {
        edge: Edge::with_sealing(elections, keys, sealing, &edge_id, &region, bundle),
        delivery,
    })
}

fn sealing() -> Result<(Sealing, Delivery), String> {
    match std::env::var("EDGEVOTE_SEALING").as_deref() {
        Err(_) | Ok("component") => Ok((
            Sealing::Local(Box::new(edge_key(&var("EDGEVOTE_EDGE_KEY")?)?)),
            Delivery::Sqs {
                queues: queues(&var("EDGEVOTE_QUEUES")?)?,
                credentials: credentials()?,
            },
        )),
        Ok("host") => match LOCAL_SEALING_VARS
            .iter()
            .find(|name| std::env::var(name).is_ok())
        {
            Some(name) => Err(format!(
                "{name} is set, but EDGEVOTE_SEALING=host: the host holds the key and the queue"
            )),
            None => Ok((Sealing::Host, Delivery::Host)),
        },
        Ok(other) => Err(format!(
            "EDGEVOTE_SEALING is {other:?}; expected \"component\" or \"host\""
        )),
    }
}

/// The SQS credentials, or none under `EDGEVOTE_QUEUE_AUTH=none`.
fn credentials() -> Result<Option<AwsCredentials>, String> {
    edgevote_edge_sqs::credentials_from(|name| std::env::var(name).ok())
}

#[derive(Deserialize)]
struct PrivateJwk {
    d: String,
    edgevote_role: Role,
}

fn edge_key(text: &str) -> Result<SigningIdentity, String> {
    let jwk: PrivateJwk = serde_json::from_str(text)
        .map_err(|e| format!("EDGEVOTE_EDGE_KEY is not a private JWK: {e}"))?;
    if jwk.edgevote_role != Role::Edge {
        return Err(format!(
            "EDGEVOTE_EDGE_KEY has role {}, not edge",
            jwk.edgevote_role
        ));
    }
    let seed =
        b64::decode_array::<32>("d", &jwk.d).map_err(|e| format!("EDGEVOTE_EDGE_KEY: {e}"))?;
    Ok(SigningIdentity::from_seed(&seed, Role::Edge))
}

fn queues(text: &str) -> Result<Vec<QueueTarget>, String> {
    let queues: Vec<QueueTarget> = text
        .split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|pair| {
            let (region, url) = pair
                .trim()
                .split_once('=')
                .ok_or_else(|| format!("EDGEVOTE_QUEUES: {pair:?} is not region=queue_url"))?;
            Ok(QueueTarget {
                queue_url: url.to_owned(),
                region: region.to_owned(),
            })
        })
        .collect::<Result<_, String>>()?;
    if queues.is_empty() {
        return Err("EDGEVOTE_QUEUES names no queue".into());
    }
    Ok(queues)
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

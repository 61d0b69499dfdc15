//! The bundle manifest: describes a built edge component, signed by ops (`typ`
//! `edgevote-bundle+jws`). Edge hosts refuse a component whose manifest does not verify or whose
//! digest does not match, and a deploy whose [`BundleManifest::serial`] is lower than the
//! running bundle's (a downgrade) unless the operator explicitly allows it.

use serde::{Deserialize, Serialize};

use crate::digest::Digest32;
use crate::error::WireError;
use crate::jws::Document;
use crate::keys::Role;
use crate::validate::{check_id, check_label};

/// Most configuration variables a bundle may declare.
pub const MAX_CONFIG_VARS: usize = 64;

/// The platform a bundle is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Platform {
    /// A `wasi:http` component (wasm32-wasip2): Spin and the edgevote host.
    WasiHttp,
    /// A Cloudflare Worker module (wasm32-unknown-unknown + JS shim).
    CloudflareWorker,
}

/// One configuration variable the component reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigVar {
    /// Variable name.
    pub name: String,
    /// What it configures.
    pub description: String,
    /// Whether the deployment must set it.
    pub required: bool,
    /// Whether it holds a secret (never logged or shown).
    pub secret: bool,
}

/// The signed description of a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleManifest {
    /// Format version; 1.
    pub v: u32,
    /// Bundle name.
    pub name: String,
    /// Bundle version (a label, e.g. `1.4.0`; not compared).
    pub version: String,
    /// Monotonic release serial: a bundle signed later for the same hosts carries a higher one.
    /// Edge hosts refuse to deploy a lower serial than the running bundle's (`bundle_downgrade`)
    /// unless told to. Manifests signed before the field existed read as serial 0.
    #[serde(default)]
    pub serial: u64,
    /// Target platform.
    pub platform: Platform,
    /// SHA-256 of the Wasm file.
    pub wasm_sha256: Digest32,
    /// Size of the Wasm file in bytes.
    pub wasm_bytes: u64,
    /// The configuration the component reads.
    pub config_schema: Vec<ConfigVar>,
    /// When ops signed it, unix seconds.
    pub created_at: u64,
}

/// What ops name a release by when they sign it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    /// Bundle name.
    pub name: String,
    /// Bundle version label.
    pub version: String,
    /// Monotonic release serial (see [`BundleManifest::serial`]).
    pub serial: u64,
    /// Target platform.
    pub platform: Platform,
}

impl BundleManifest {
    /// The manifest of the edge component `wasm` for `release`, signed at `created_at` (unix
    /// seconds), declaring the configuration the component reads on its platform.
    pub fn for_component(release: Release, wasm: &[u8], created_at: u64) -> Self {
        BundleManifest {
            v: 1,
            name: release.name,
            version: release.version,
            serial: release.serial,
            platform: release.platform,
            wasm_sha256: Digest32::of(wasm),
            wasm_bytes: wasm.len() as u64,
            config_schema: component_config_schema(release.platform),
            created_at,
        }
    }

    /// Checks that `wasm` is the component this manifest describes (size and SHA-256).
    pub fn check_wasm(&self, wasm: &[u8]) -> Result<(), WireError> {
        if wasm.len() as u64 != self.wasm_bytes {
            return Err(WireError::BundleMismatch(format!(
                "component is {} bytes, the manifest says {}",
                wasm.len(),
                self.wasm_bytes
            )));
        }
        let digest = Digest32::of(wasm);
        if digest != self.wasm_sha256 {
            return Err(WireError::BundleMismatch(format!(
                "component sha256 {} differs from the signed {}",
                digest.to_hex(),
                self.wasm_sha256.to_hex()
            )));
        }
        Ok(())
    }
}

/// The configuration the edge component reads (Spin variables / environment on wasi-http,
/// `[vars]` and secrets on Workers), written into the signed manifest so a deployment can be
/// checked against it.
pub fn component_config_schema(platform: Platform) -> Vec<ConfigVar> {
    let mut vars: Vec<(&str, &str, bool, bool)> = vec![
        (
            "EDGEVOTE_KEYSET",
            "published JWK Set: authority keys verify manifests and tokens",
            true,
            false,
        ),
        (
            "EDGEVOTE_ELECTIONS",
            "signed election manifests served, one compact JWS per line",
            true,
            false,
        ),
        (
            "EDGEVOTE_EDGE_KEY",
            "this edge's private signing key (JWK); absent under host sealing",
            true,
            true,
        ),
        (
            "EDGEVOTE_EDGE_ID",
            "this edge's id, named in receipts and envelopes",
            true,
            false,
        ),
        ("EDGEVOTE_REGION", "this edge's region", true, false),
        (
            "EDGEVOTE_QUEUES",
            "region=SQS queue URL pairs, tried in order",
            true,
            false,
        ),
        (
            "EDGEVOTE_BUNDLE_SHA256",
            "SHA-256 of this bundle, named in receipts",
            false,
            false,
        ),
        (
            "AWS_ACCESS_KEY_ID",
            "credentials allowed sqs:SendMessage on the queues",
            true,
            true,
        ),
        (
            "AWS_SECRET_ACCESS_KEY",
            "secret of those credentials",
            true,
            true,
        ),
        (
            "AWS_SESSION_TOKEN",
            "session token of temporary credentials",
            false,
            true,
        ),
    ];
    let platform_var = if platform == Platform::CloudflareWorker {
        (
            "EDGEVOTE_QUEUE_TIMEOUT_MS",
            "longest wait for one queue's answer, milliseconds",
            false,
            false,
        )
    } else {
        (
            "EDGEVOTE_SEALING",
            "component (default) or host: the edgevote edge host keeps the key and signs",
            false,
            false,
        )
    };
    vars.push(platform_var);
    vars.into_iter()
        .map(|(name, description, required, secret)| ConfigVar {
            name: name.into(),
            description: description.into(),
            required,
            secret,
        })
        .collect()
}

impl Document for BundleManifest {
    const NAME: &'static str = "bundle manifest";
    const TYP: &'static str = "edgevote-bundle+jws";
    const SIGNER: Role = Role::Ops;
    const MAX_JWS_BYTES: usize = 64 * 1024;

    fn validate(&self) -> Result<(), WireError> {
        crate::validate::check_version(self.v)?;
        check_id("name", &self.name)?;
        check_id("version", &self.version)?;
        if self.config_schema.len() > MAX_CONFIG_VARS {
            return Err(WireError::invalid(
                "config_schema",
                format!(
                    "{} variables, more than {MAX_CONFIG_VARS}",
                    self.config_schema.len()
                ),
            ));
        }
        for var in &self.config_schema {
            check_id("config_schema.name", &var.name)?;
            check_label("config_schema.description", &var.description)?;
        }
        Ok(())
    }

    fn signed_at_secs(&self) -> u64 {
        self.created_at
    }
}

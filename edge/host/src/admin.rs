//! The admin endpoint: `GET /admin/v1/bundle` (status), `POST /admin/v1/bundle` (deploy:
//! `{"wasm_base64": ..., "manifest": <signed bundle manifest>, "allow_downgrade": false}`) and
//! `POST /admin/v1/bundle/rollback`. Every call needs `Authorization: Bearer <token>`; without a
//! configured token the endpoint does not exist (404).
//!
//! Refusals: 422 `bundle_refused` with the verifier's `code` (`bad_signature`,
//! `key_role_mismatch`, `bundle_mismatch`, ...) for a bundle that does not verify or compile,
//! 409 `bundle_downgrade` for a lower serial than the active bundle's without
//! `allow_downgrade`, 409 `no_previous_bundle` for a rollback with nothing to go back to.

use edgevote_edge_core::Refusal;
use http_body_util::BodyExt;
use serde::Deserialize;

use crate::EdgeHost;
use crate::bundles::DeployError;

/// Path prefix of the admin endpoint.
pub const PREFIX: &str = "/admin/v1/";
/// Largest deploy request (a 64 MiB component, base64, plus the manifest).
const MAX_DEPLOY_BYTES: usize = 90 * 1024 * 1024;

/// A deploy request body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeployRequest {
    /// The component, standard base64.
    wasm_base64: String,
    /// The signed bundle manifest (compact JWS).
    manifest: String,
    /// Deploy even if the bundle's serial is lower than the active one's.
    #[serde(default)]
    allow_downgrade: bool,
}

/// An admin answer: status and JSON body.
pub type Answer = (u16, serde_json::Value);

fn error(status: u16, code: &'static str, detail: impl std::fmt::Display) -> Answer {
    (status, Refusal::new(status, code, detail).body_json())
}

/// Compares in time independent of where the strings differ.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn authorized(host: &EdgeHost, headers: &hyper::HeaderMap) -> Result<(), Answer> {
    let Some(token) = &host.admin_token else {
        return Err(error(404, "not_found", "no admin endpoint on this host"));
    };
    let presented = headers
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match presented {
        Some(p) if same_secret(p.trim(), token) => Ok(()),
        _ => Err(error(
            401,
            "unauthorized",
            "a valid admin bearer token is required",
        )),
    }
}

/// Handles one admin request.
pub async fn handle(host: &EdgeHost, request: hyper::Request<hyper::body::Incoming>) -> Answer {
    if let Err(refusal) = authorized(host, request.headers()) {
        return refusal;
    }
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let Some(route) = path.strip_prefix(PREFIX) else {
        return error(404, "not_found", path);
    };
    match (method, route) {
        (hyper::Method::GET, "bundle") => ok(&host.bundles.status()),
        (hyper::Method::POST, "bundle") => deploy(host, request.into_body()).await,
        (hyper::Method::POST, "bundle/rollback") => match host.bundles.rollback().await {
            Ok(status) => ok(&status),
            Err(e) => refused(&e),
        },
        (_, "bundle" | "bundle/rollback") => error(405, "method_not_allowed", "see the admin API"),
        _ => error(404, "not_found", path),
    }
}

fn ok(status: &crate::bundles::BundleStatus) -> Answer {
    let body = serde_json::to_value(status)
        .expect("a bundle status (strings, numbers, no maps with non-string keys) serialises");
    (200, body)
}

fn refused(e: &DeployError) -> Answer {
    match e {
        DeployError::Refused(inner) => {
            let (status, mut body) = error(422, "bundle_refused", inner);
            if let crate::StartError::Bundle { code, .. } = inner {
                body["code"] = (*code).into();
            }
            (status, body)
        }
        DeployError::NoPrevious => error(409, "no_previous_bundle", e),
        DeployError::Downgrade { .. } => error(409, "bundle_downgrade", e),
        DeployError::Persist { .. } => error(500, "bundle_not_saved", e),
    }
}

async fn deploy(host: &EdgeHost, body: hyper::body::Incoming) -> Answer {
    let bytes = match http_body_util::Limited::new(body, MAX_DEPLOY_BYTES)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(e) => return error(413, "too_large", e),
    };
    let request: DeployRequest = match serde_json::from_slice(&bytes) {
        Ok(r) => r,
        Err(e) => return error(400, "malformed_json", e),
    };
    let wasm = match edgevote_shared::b64::decode_std("wasm_base64", &request.wasm_base64) {
        Ok(w) => w,
        Err(e) => return error(400, e.code(), e),
    };
    match host
        .bundles
        .deploy(wasm, request.manifest, request.allow_downgrade)
        .await
    {
        Ok(status) => ok(&status),
        Err(e) => refused(&e),
    }
}

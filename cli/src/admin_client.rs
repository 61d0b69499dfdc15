//! A client for an edge host's admin endpoint (`/admin/v1/...`, bearer token).

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};

/// Longest wait for an admin call (a deploy compiles the component on the host).
const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// Sends one admin request; returns the status and the JSON body.
pub async fn call(
    host: &str,
    token_file: &std::path::Path,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> anyhow::Result<(u16, serde_json::Value)> {
    let token = crate::common::input::read_file(token_file)?;
    let authority = host
        .strip_prefix("http://")
        .with_context(|| format!("--host {host:?} must be an http:// URL of an edge host"))?
        .trim_end_matches('/')
        .to_owned();
    let exchange = async {
        let stream = tokio::net::TcpStream::connect(&authority)
            .await
            .with_context(|| format!("connecting to {host}"))?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", &authority)
            .header("authorization", format!("Bearer {}", token.trim()))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))?;
        let response = sender.send_request(request).await?;
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await?.to_bytes();
        let value = serde_json::from_slice(&bytes).unwrap_or_else(
            |_| serde_json::json!({"error": "not_json", "detail": String::from_utf8_lossy(&bytes)}),
        );
        anyhow::Ok((status, value))
    };
    tokio::time::timeout(TIMEOUT, exchange)
        .await
        .with_context(|| format!("{host} did not answer within {TIMEOUT:?}"))?
}

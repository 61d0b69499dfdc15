//! The HTTP front: hyper on a listener the caller binds (port 0 in tests), until a shutdown
//! future resolves; in-flight requests then finish (bounded wait).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::EdgeHost;

/// Longest wait for in-flight requests after shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

fn text(
    status: u16,
    content_type: &'static str,
    body: String,
) -> hyper::Response<HyperOutgoingBody> {
    let mut response = hyper::Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    response
}

/// The body of every refusal the host itself answers: `{"error": code, "detail": ...}`, the
/// same shape as the component's.
pub(crate) fn error_body(code: &str, detail: impl std::fmt::Display) -> serde_json::Value {
    serde_json::json!({"error": code, "detail": detail.to_string()})
}

fn refusal(
    status: u16,
    code: &str,
    detail: impl std::fmt::Display,
) -> hyper::Response<HyperOutgoingBody> {
    text(
        status,
        "application/json",
        error_body(code, detail).to_string(),
    )
}

/// Largest request body the host buffers to read a vote's token (ballots are at most 16 KiB).
const MAX_BUFFERED_BODY: usize = 64 * 1024;

fn rate_limited(retry_after_secs: u64, what: &str) -> hyper::Response<HyperOutgoingBody> {
    let mut response = refusal(
        429,
        "rate_limited",
        format_args!("too many requests for this {what}"),
    );
    if let Ok(value) = hyper::header::HeaderValue::from_str(&retry_after_secs.max(1).to_string()) {
        response
            .headers_mut()
            .insert(hyper::header::RETRY_AFTER, value);
    }
    response
}

/// The token id of a vote body, if it has a well-formed token (the component checks the rest).
fn token_id(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let token = value.get("token")?.as_str()?;
    edgevote_shared::decode_unverified::<edgevote_shared::VoteToken>(token)
        .ok()
        .map(|t| t.jti)
}

/// Applies the rate limits, then runs the request through the component.
async fn to_component(
    host: &EdgeHost,
    peer: std::net::IpAddr,
    request: hyper::Request<hyper::body::Incoming>,
) -> anyhow::Result<hyper::Response<HyperOutgoingBody>> {
    let client = host.limiter.client_ip(peer, request.headers());
    if let Err(retry) = host.limiter.admit_ip(client) {
        return Ok(rate_limited(retry, "client address"));
    }
    let (parts, body) = request.into_parts();
    let collect = http_body_util::Limited::new(body, MAX_BUFFERED_BODY).collect();
    let body = match tokio::time::timeout(host.http.body_read_timeout(), collect).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            return Ok(refusal(413, "too_large", "request body too large"));
        }
        Ok(Err(_)) => {
            return Ok(refusal(
                400,
                "incomplete_body",
                "the request body ended early or was malformed",
            ));
        }
        Err(_) => {
            return Ok(refusal(
                408,
                "request_timeout",
                "the request body did not arrive in time",
            ));
        }
    };
    if parts.method == hyper::Method::POST
        && let Some(jti) = token_id(&body)
        && let Err(retry) = host.limiter.admit_token(&jti)
    {
        return Ok(rate_limited(retry, "vote token"));
    }
    let body = Full::new(body).map_err(|never| -> wasmtime_wasi_http::Error { match never {} });
    // The request keeps the bundle it started on, even if a deploy swaps another in meanwhile.
    let bundle = host.bundles.active();
    bundle
        .runtime
        .handle(hyper::Request::from_parts(parts, body))
        .await
}

async fn route(
    host: Arc<EdgeHost>,
    peer: std::net::IpAddr,
    request: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<HyperOutgoingBody>, std::convert::Infallible> {
    let response = match (request.method(), request.uri().path()) {
        (&hyper::Method::GET, "/metrics") => {
            text(200, "text/plain; version=0.0.4", host.metrics_text())
        }
        (&hyper::Method::GET, "/healthz") => {
            text(200, "application/json", "{\"status\":\"ok\"}".into())
        }
        (_, path) if path.starts_with(crate::admin::PREFIX) => {
            let (status, body) = crate::admin::handle(&host, request).await;
            text(status, "application/json", body.to_string())
        }
        _ => match to_component(&host, peer, request).await {
            Ok(response) => response,
            Err(e) => {
                host.metrics
                    .component_errors
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::error!(error = %e, "component failed");
                text(
                    500,
                    "application/json",
                    "{\"error\":\"component_failed\"}".into(),
                )
            }
        },
    };
    host.metrics.count_status(response.status().as_u16());
    Ok(response)
}

/// Serves `host` on `listener` until `shutdown` resolves, then lets in-flight requests finish
/// (idle keep-alive connections are closed at once; the wait is bounded).
pub async fn serve(
    listener: tokio::net::TcpListener,
    host: Arc<EdgeHost>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(host.http.header_read_timeout())
        .max_buf_size(host.http.max_header_bytes);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        continue;
                    }
                };
                let host = Arc::clone(&host);
                let ip = peer.ip();
                let service = service_fn(move |request| route(Arc::clone(&host), ip, request));
                let connection = http1.serve_connection(TokioIo::new(stream), service);
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight after the drain timeout");
    }
    Ok(())
}

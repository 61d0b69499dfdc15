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

async fn route(
    host: Arc<EdgeHost>,
    request: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<HyperOutgoingBody>, std::convert::Infallible> {
    let response = match (request.method(), request.uri().path()) {
        (&hyper::Method::GET, "/metrics") => {
            text(200, "text/plain; version=0.0.4", host.metrics_text())
        }
        (&hyper::Method::GET, "/healthz") => {
            text(200, "application/json", "{\"status\":\"ok\"}".into())
        }
        _ => match host.runtime.handle(request).await {
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
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        continue;
                    }
                };
                let host = Arc::clone(&host);
                let service = service_fn(move |request| route(Arc::clone(&host), request));
                let connection = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service);
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

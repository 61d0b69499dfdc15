//! The HTTP front: hyper on a listener the caller binds (port 0 in tests), until a shutdown
//! future resolves; in-flight requests then finish (bounded wait). A connection speaks HTTP/1.1
//! (keep-alive, pipelining, half-close) or, when it opens with the HTTP/2 preface, HTTP/2 with
//! a bound on its streams and on the resets it may cause ([`crate::protocol`]).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use edgevote_edge_core::{Refusal, page};
use tokio::sync::Semaphore;

use crate::EdgeHost;
use crate::accept;
use crate::front;
use crate::metrics::Stage;
use crate::protocol::Protocol;
use crate::runtime::RunError;

/// The voter page's verifier module (`edge/verifier`, built for wasm32-unknown-unknown by this
/// crate's build script), served natively at `/verifier.wasm`: the component serves the page,
/// which loads it from there.
const VERIFIER_WASM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/verifier.wasm"));

/// Longest wait for in-flight requests after shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

fn text(
    status: u16,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> hyper::Response<HyperOutgoingBody> {
    let mut response = hyper::Response::new(
        Full::new(body.into())
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

/// A refusal the host answers itself, with the edge's one refusal body (the component's shape).
fn refusal(
    status: u16,
    code: &'static str,
    detail: impl std::fmt::Display,
) -> hyper::Response<HyperOutgoingBody> {
    refused_response(Refusal::new(status, code, detail))
}

fn rate_limited(retry_after_secs: u64, what: &str) -> hyper::Response<HyperOutgoingBody> {
    with_retry_after(
        refusal(
            429,
            "rate_limited",
            format_args!("too many requests for this {what}"),
        ),
        retry_after_secs,
    )
}

fn with_retry_after(
    mut response: hyper::Response<HyperOutgoingBody>,
    retry_after_secs: u64,
) -> hyper::Response<HyperOutgoingBody> {
    if let Ok(value) = hyper::header::HeaderValue::from_str(&retry_after_secs.max(1).to_string()) {
        response
            .headers_mut()
            .insert(hyper::header::RETRY_AFTER, value);
    }
    response
}

/// Seconds a client is told to wait after a request ran past its deadline.
const DEADLINE_RETRY_AFTER_SECS: u64 = 2;

fn refused_response(refused: Refusal) -> hyper::Response<HyperOutgoingBody> {
    core_response(refused.into())
}

/// Reads a whole request body, bounded in bytes and time.
async fn read_body<B>(host: &EdgeHost, body: B) -> Result<Bytes, Refusal>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let refused = Refusal::new;
    let collect = http_body_util::Limited::new(body, front::MAX_BODY_BYTES).collect();
    match tokio::time::timeout(host.http.body_read_timeout(), collect).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            Err(refused(413, "too_large", "request body too large"))
        }
        Ok(Err(_)) => Err(refused(
            400,
            "incomplete_body",
            "the request body ended early or was malformed",
        )),
        Err(_) => Err(refused(
            408,
            "request_timeout",
            "the request body did not arrive in time",
        )),
    }
}

/// Under host sealing, a request the core would refuse (a vote the host's native check at
/// hand-over would refuse anyway: malformed JSON, wrong content type, unknown or closed
/// election, invalid choice, a token of the wrong shape, audience or window; an unknown path or
/// a method a route does not take) is refused here with the same core's answer, before any
/// Wasm runs: a malformed request then costs a native parse, not a Wasm call. Only refusals are
/// taken from it; what passes goes to the component as before. Reads (`GET`, `HEAD`) are left to
/// the component, whose answers they are.
fn prescreen(
    host: &EdgeHost,
    parts: &http::request::Parts,
    body: &Bytes,
) -> Option<hyper::Response<HyperOutgoingBody>> {
    let screen = host.prescreen.as_ref()?;
    if parts.method == hyper::Method::GET || parts.method == hyper::Method::HEAD {
        return None;
    }
    let content_type = parts
        .headers
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let request = edgevote_edge_core::Request {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        content_type,
        body,
    };
    match screen.handle(request, edgevote_signer::clock::now_ms()) {
        edgevote_edge_core::Outcome::Respond(refused) if refused.status >= 400 => {
            Some(core_response(refused))
        }
        _ => None,
    }
}

/// A response the core built, as the host sends it.
fn core_response(response: edgevote_edge_core::Response) -> hyper::Response<HyperOutgoingBody> {
    let mut answer = text(response.status, response.content_type, response.body);
    for (name, value) in response.headers {
        if let Ok(value) = hyper::header::HeaderValue::from_str(&value) {
            answer.headers_mut().insert(name, value);
        }
    }
    answer
}

/// A request for the component, through the host's front: the head screen ([`front`]), the
/// rate limits, the body (bounded), then the component under the request deadline. Returns the
/// response and who answered it. Public so that benchmarks drive the same path without sockets.
pub async fn answer<B>(
    host: &EdgeHost,
    peer: std::net::IpAddr,
    request: hyper::Request<B>,
) -> (hyper::Response<HyperOutgoingBody>, Stage)
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (mut parts, body) = request.into_parts();
    if let Err(refused) = front::screen(&mut parts, &host.http.public_authority_header()) {
        return (refused_response(refused), Stage::Host);
    }
    let client = host.limiter.client_ip(peer, &parts.headers);
    if let Err(retry) = host.limiter.admit_ip(client) {
        return (rate_limited(retry, "client address"), Stage::Host);
    }
    let body = match read_body(host, body).await {
        Ok(body) => body,
        Err(refused) => return (refused_response(refused), Stage::Host),
    };
    if parts.method == hyper::Method::POST
        && let Some(token) = crate::limit::vote_token(&body)
        && let Err(retry) = host.limiter.admit_token(&token)
    {
        return (rate_limited(retry, "vote token"), Stage::Host);
    }
    // The key set the host follows, not the copy the component was loaded with: after a
    // rotation it holds the successor, so receipts signed with it verify against it.
    if parts.method == hyper::Method::GET && parts.uri.path() == "/v1/keys" {
        let mut keys = text(200, "application/jwk-set+json", host.sealer.keyset_json());
        // Public: a receipt page served elsewhere may compare this edge's key set.
        keys.headers_mut().insert(
            hyper::header::ACCESS_CONTROL_ALLOW_ORIGIN,
            hyper::header::HeaderValue::from_static("*"),
        );
        return (keys, Stage::Host);
    }
    if parts.method == hyper::Method::GET && parts.uri.path() == page::VERIFIER_PATH {
        return (
            core_response(page::verifier_response(VERIFIER_WASM)),
            Stage::Host,
        );
    }
    if let Some(refused) = prescreen(host, &parts, &body) {
        return (refused, Stage::Host);
    }
    // The request keeps the bundle it started on, even if a deploy swaps another in meanwhile.
    let bundle = host.bundles.active();
    let deadline = host.http.request_timeout();
    match bundle.runtime.handle(parts, body, deadline).await {
        Ok(response) => (response, Stage::Component),
        Err(RunError::Deadline(after)) => {
            tracing::warn!(
                stage = "component",
                deadline_ms = after.as_millis() as u64,
                "request ran past its deadline"
            );
            let refused = refusal(
                503,
                "deadline_exceeded",
                format_args!(
                    "no answer within {} ms; retry with the same ballot",
                    after.as_millis()
                ),
            );
            (
                with_retry_after(refused, DEADLINE_RETRY_AFTER_SECS),
                Stage::Host,
            )
        }
        Err(RunError::Failed(e)) => {
            host.metrics
                .component_errors
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::error!(stage = "component", error = %e, "component failed");
            (
                refusal(500, "component_failed", "the edge component failed"),
                Stage::Host,
            )
        }
    }
}

async fn route(
    host: Arc<EdgeHost>,
    peer: std::net::IpAddr,
    request: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<HyperOutgoingBody>, std::convert::Infallible> {
    let started = tokio::time::Instant::now();
    let is_vote =
        request.method() == hyper::Method::POST && request.uri().path().ends_with("/votes");
    let _in_flight = is_vote.then(|| host.metrics.vote_started());
    let (response, stage) = match (request.method(), request.uri().path()) {
        (&hyper::Method::GET, "/metrics") => (
            text(200, "text/plain; version=0.0.4", host.metrics_text()),
            Stage::Host,
        ),
        (&hyper::Method::GET, "/healthz") => (
            text(200, "application/json", "{\"status\":\"ok\"}"),
            Stage::Host,
        ),
        (_, path) if path.starts_with(crate::admin::PREFIX) => {
            let (status, body) = crate::admin::handle(&host, request).await;
            (
                text(status, "application/json", body.to_string()),
                Stage::Host,
            )
        }
        _ => answer(&host, peer, request).await,
    };
    host.metrics.count_status(response.status().as_u16(), stage);
    if is_vote {
        host.metrics.vote_latency.observe(started.elapsed());
    }
    Ok(response)
}

/// Counts a connection the HTTP layer ended because of the client: an HTTP/1 head it could not
/// parse (answered with a bare 400/414/431) or a head timeout; any HTTP/2 connection error (a
/// frame that breaks the protocol, too many resets, an unanswered ping).
fn count_protocol_error(host: &EdgeHost, protocol: Protocol, error: &hyper::Error) {
    let by_client = match protocol {
        Protocol::Http1 => error.is_parse() || error.is_parse_too_large() || error.is_timeout(),
        Protocol::Http2 => !error.is_canceled(),
    };
    if by_client {
        host.metrics.count_client_error(Stage::Protocol);
    }
}

/// Lets `max_connections` clients connect before `accept` runs out of files, and grows the
/// descriptor table for them now rather than under load (see [`accept`]).
fn prepare_descriptors(listener: &tokio::net::TcpListener, max_connections: usize) {
    let wanted = max_connections as u64 + accept::RESERVED_FDS;
    raise_open_files_limit(max_connections, wanted);
    if let Err(e) = accept::reserve_descriptor_table(listener, wanted) {
        tracing::warn!(stage = "accept", error = %e, "could not grow the descriptor table; it grows under load instead");
    }
}

fn raise_open_files_limit(max_connections: usize, wanted: u64) {
    match accept::raise_open_files_limit(wanted) {
        Ok(soft) if soft < wanted => tracing::warn!(
            stage = "accept",
            open_files_limit = soft,
            max_connections,
            "the hard open-files limit is below http.max_connections plus the reserve: accept will pause on EMFILE before the cap"
        ),
        Ok(soft) => tracing::debug!(
            stage = "accept",
            open_files_limit = soft,
            "open-files limit"
        ),
        Err(e) => {
            tracing::warn!(stage = "accept", error = %e, "could not raise the open-files limit")
        }
    }
}

/// The HTTP/1 and HTTP/2 connection settings, made once from the host's limits.
struct Protocols {
    http1: hyper::server::conn::http1::Builder,
    http2: hyper::server::conn::http2::Builder<TokioExecutor>,
}

/// HTTP/2 resets a client may cause before the connection is closed (the "rapid reset" bound).
const HTTP2_MAX_RESETS: usize = 64;
/// How often an idle HTTP/2 connection is pinged, and how long the answer may take.
const HTTP2_KEEP_ALIVE: Duration = Duration::from_secs(30);

impl Protocols {
    fn new(http: &crate::config::HttpConfig) -> Protocols {
        let timer = hyper_util::rt::TokioTimer::new;
        let mut http1 = hyper::server::conn::http1::Builder::new();
        http1
            .timer(timer())
            .header_read_timeout(http.header_read_timeout())
            .max_buf_size(http.max_header_bytes)
            // A client may close its sending side once its request is out and still get the answer.
            .half_close(true);
        let mut http2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        http2
            .timer(timer())
            .max_concurrent_streams(http.http2_max_streams_per_connection)
            .max_header_list_size(u32::try_from(http.max_header_bytes).unwrap_or(u32::MAX))
            .max_pending_accept_reset_streams(HTTP2_MAX_RESETS)
            .max_local_error_reset_streams(HTTP2_MAX_RESETS)
            .keep_alive_interval(HTTP2_KEEP_ALIVE)
            .keep_alive_timeout(HTTP2_KEEP_ALIVE);
        Protocols { http1, http2 }
    }
}

/// Serves one accepted connection in the HTTP version it opens with, until it ends or the
/// server shuts down.
async fn serve_connection(
    host: Arc<EdgeHost>,
    protocols: Arc<Protocols>,
    watcher: hyper_util::server::graceful::Watcher,
    stream: tokio::net::TcpStream,
    peer: std::net::IpAddr,
) {
    let (protocol, stream) =
        match crate::protocol::detect(stream, host.http.header_read_timeout()).await {
            Ok(detected) => detected,
            Err(e) => {
                // Silent past the head timeout, or gone: as for a head that never completes.
                host.metrics.count_client_error(Stage::Protocol);
                tracing::debug!(error = %e, "connection closed before its first request");
                return;
            }
        };
    let for_service = Arc::clone(&host);
    let service = service_fn(move |request| route(Arc::clone(&for_service), peer, request));
    let io = TokioIo::new(stream);
    let ended = match protocol {
        Protocol::Http1 => {
            watcher
                .watch(protocols.http1.serve_connection(io, service))
                .await
        }
        Protocol::Http2 => {
            host.metrics
                .http2_connections
                .fetch_add(1, Ordering::Relaxed);
            watcher
                .watch(protocols.http2.serve_connection(io, service))
                .await
        }
    };
    if let Err(e) = ended {
        count_protocol_error(&host, protocol, &e);
        tracing::debug!(error = %e, ?protocol, "connection ended with an error");
    }
}

/// Serves `host` on `listener` until `shutdown` resolves, then lets in-flight requests finish
/// (idle keep-alive connections are closed at once; the wait is bounded).
pub async fn serve(
    listener: tokio::net::TcpListener,
    host: Arc<EdgeHost>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let protocols = Arc::new(Protocols::new(&host.http));
    tokio::pin!(shutdown);
    prepare_descriptors(&listener, host.http.max_connections);
    let connections = Arc::new(Semaphore::new(host.http.max_connections));
    let mut backoff = accept::Backoff::default();
    loop {
        // A permit first: with `max_connections` open, new ones wait in the kernel's backlog.
        let permit = tokio::select! {
            permit = Arc::clone(&connections).acquire_owned() => {
                permit.expect("the connection semaphore is never closed")
            }
            _ = &mut shutdown => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                host.metrics.accept_errors.fetch_add(1, Ordering::Relaxed);
                let Some(pause) = backoff.after(&e) else {
                    tracing::debug!(stage = "accept", error = %e, "connection failed before accept");
                    continue;
                };
                tracing::warn!(stage = "accept", error = %e, pause_ms = pause.as_millis() as u64, "accept failed; pausing");
                tokio::select! {
                    _ = tokio::time::sleep(pause) => continue,
                    _ = &mut shutdown => break,
                }
            }
        };
        backoff.reset();
        host.metrics
            .connections_open
            .fetch_add(1, Ordering::Relaxed);
        let (host, protocols, watcher) = (
            Arc::clone(&host),
            Arc::clone(&protocols),
            graceful.watcher(),
        );
        tokio::spawn(async move {
            serve_connection(Arc::clone(&host), protocols, watcher, stream, peer.ip()).await;
            host.metrics
                .connections_open
                .fetch_sub(1, Ordering::Relaxed);
            drop(permit);
        });
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

//! edgevote's edge as a Spin HTTP component. It exports the standard
//! `wasi:http/incoming-handler`, so the same binary runs on Spin, on `wasmtime serve`, and in
//! `edgevote edge` (whose host takes the outbound SQS call into its group-commit queue).
//!
//! All vote logic is in `edgevote-edge-core`; this adapter reads the configuration from
//! environment variables (see `config`), converts requests and responses, and sends accepted
//! votes to SQS with a SigV4-signed `SendMessage`, trying each configured queue in order. The
//! receipt is returned only after a queue said yes; otherwise the answer is 503 with
//! `Retry-After` and no receipt.
//!
//! Under host sealing (`EDGEVOTE_SEALING=host`, set only by `edgevote edge`) the component holds
//! no key: it hands each checked ballot to the host, which verifies, seals and signs natively,
//! and passes the host's answer on.

mod config;

use edgevote_edge_core::{Outcome, Request as CoreRequest, Response as CoreResponse};
use spin_sdk::http::{IncomingRequest, Method, Request, Response};
use spin_sdk::http_component;

/// Seconds a client should wait before retrying when no queue accepted the vote.
const RETRY_AFTER_SECS: u32 = 2;

#[http_component]
async fn handle(request: IncomingRequest) -> Response {
    let response = match config::edge() {
        Ok(config) => serve(config, request).await,
        Err(detail) => CoreResponse::error(500, "edge_misconfigured", detail),
    };
    to_spin(response)
}

async fn serve(config: &config::EdgeConfig, request: IncomingRequest) -> CoreResponse {
    let method = method_name(&request.method());
    let path = request.path_with_query().unwrap_or_default();
    let path = path.split('?').next().unwrap_or_default().to_owned();
    let content_type = request
        .headers()
        .get("content-type")
        .first()
        .map(|v| String::from_utf8_lossy(v).into_owned());
    let body = match read_body(request, config.edge.max_body_bytes() + 1).await {
        Ok(body) => body,
        Err(detail) => return CoreResponse::error(400, "unreadable_body", detail),
    };
    let core_request = CoreRequest {
        method: &method,
        path: &path,
        content_type: content_type.as_deref(),
        body: &body,
    };
    match config.edge.handle(core_request, now_ms()) {
        Outcome::Respond(response) => response,
        Outcome::Enqueue(accepted) => enqueue(config, &accepted).await,
        Outcome::HandToHost(handed) => hand_to_host(&handed).await,
        // A Spin component signs itself or hands to its host; it never has a platform key.
        Outcome::VerifyOnPlatform(_) => {
            CoreResponse::error(500, "edge_misconfigured", "no platform crypto on Spin")
        }
    }
}

/// Host sealing: the host verifies the token, seals, makes the vote durable and signs the
/// receipt; its answer is passed on. Anything but an answer from the host is a 503.
async fn hand_to_host(handed: &edgevote_edge_core::Handed) -> CoreResponse {
    let url = edgevote_edge_core::host_seal_url(&handed.election);
    let mut builder = Request::builder();
    builder
        .method(Method::Post)
        .uri(url.as_str())
        .header("content-type", "application/json");
    let request = builder.body(handed.body.clone()).build();
    let response: Response = match spin_sdk::http::send(request).await {
        Ok(response) => response,
        Err(e) => return CoreResponse::unavailable(RETRY_AFTER_SECS, e),
    };
    match *response.status() {
        // 202: the receipt, signed by the host after the vote became durable; 4xx: a refusal.
        status @ (202 | 400..=499) => CoreResponse {
            status,
            content_type: "application/json",
            headers: Vec::new(),
            body: response.into_body(),
        },
        // The host's own 503 (its code, e.g. `edge_key_expired` or `queue_unavailable`, and
        // its Retry-After): nothing was made durable, no receipt.
        503 => {
            let retry_after = response
                .header("retry-after")
                .and_then(|v| v.as_str())
                .map_or_else(|| RETRY_AFTER_SECS.to_string(), str::to_owned);
            CoreResponse {
                status: 503,
                content_type: "application/json",
                headers: vec![("retry-after", retry_after)],
                body: response.into_body(),
            }
        }
        status => CoreResponse::unavailable(
            RETRY_AFTER_SECS,
            format!("the host sealer answered {status}"),
        ),
    }
}

/// Seals the vote and offers it to each queue in turn; the receipt only after a yes.
async fn enqueue(
    config: &config::EdgeConfig,
    accepted: &edgevote_edge_core::Accepted,
) -> CoreResponse {
    let (_batch_id, envelope) = match config.edge.seal_single(accepted, now_ms()) {
        Ok(sealed) => sealed,
        Err(e) => return CoreResponse::error(500, "envelope_sealing_failed", e),
    };
    let config::Delivery::Sqs {
        queues,
        credentials,
    } = &config.delivery
    else {
        return CoreResponse::error(500, "edge_misconfigured", "no queue to send to");
    };
    let mut failures = Vec::new();
    for target in queues {
        match send(credentials.as_ref(), target, &envelope).await {
            Ok(()) => return config.edge.receipt_response(accepted),
            Err(detail) => failures.push(format!("{}: {detail}", target.region)),
        }
    }
    CoreResponse::unavailable(RETRY_AFTER_SECS, failures.join("; "))
}

async fn send(
    credentials: Option<&edgevote_edge_sqs::AwsCredentials>,
    target: &edgevote_edge_sqs::QueueTarget,
    envelope: &str,
) -> Result<(), String> {
    let signed = edgevote_edge_sqs::send_message(
        target,
        credentials,
        envelope,
        std::time::SystemTime::now(),
    )
    .map_err(|e| e.to_string())?;
    let mut builder = Request::builder();
    builder.method(Method::Post).uri(signed.url.as_str());
    for (name, value) in &signed.headers {
        if name != "host" {
            builder.header(name.as_str(), value.as_str());
        }
    }
    let request = builder.body(signed.body).build();
    let response: Response = spin_sdk::http::send(request)
        .await
        .map_err(|e| e.to_string())?;
    edgevote_edge_sqs::read_answer(*response.status(), response.body())
        .map(drop)
        .map_err(|e| e.to_string())
}

async fn read_body(request: IncomingRequest, limit: usize) -> Result<Vec<u8>, String> {
    use futures::StreamExt;
    let mut stream = request.into_body_stream();
    let mut body = Vec::new();
    while let Some(chunk) = stream.next().await {
        if edgevote_edge_core::append_bounded(&mut body, chunk, limit)? {
            break;
        }
    }
    Ok(body)
}

fn method_name(method: &Method) -> String {
    match method {
        Method::Get => "GET".into(),
        Method::Post => "POST".into(),
        Method::Put => "PUT".into(),
        Method::Delete => "DELETE".into(),
        Method::Patch => "PATCH".into(),
        Method::Head => "HEAD".into(),
        Method::Options => "OPTIONS".into(),
        Method::Connect => "CONNECT".into(),
        Method::Trace => "TRACE".into(),
        Method::Other(other) => other.to_uppercase(),
    }
}

fn to_spin(response: CoreResponse) -> Response {
    let mut builder = Response::builder();
    builder
        .status(response.status)
        .header("content-type", response.content_type);
    for (name, value) in &response.headers {
        builder.header(*name, value.as_str());
    }
    builder.body(response.body).build()
}

fn now_ms() -> u64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

//! The component runtime: Engine, Linker and `ProxyPre` are built once; requests run in pooled
//! instances that are reused while they answer cleanly, behind a semaphore sized to the pool,
//! each under a deadline the engine's epoch enforces inside the guest.
//!
//! The component's outbound HTTP passes through [`EdgeHooks::send_request`]:
//! - host sealing: a checked ballot sent to [`HOST_SEALER_AUTHORITY`] is checked again
//!   natively, verified and sealed by group commit, and answered with the host-signed receipt
//!   once durable;
//! - component sealing: an SQS `SendMessage` (recognised by its `X-Amz-Target`) is answered by
//!   the host itself once group commit made the envelope durable;
//! - anything else is refused, or forwarded as is when the host runs in `forward_outbound` mode
//!   (then the component behaves exactly as on Spin).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tokio::sync::Semaphore;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

use edgevote_edge_core::{HOST_SEALER_AUTHORITY, host_seal_election};
use edgevote_shared::Digest32;

use crate::commit::{CommitError, Committer, Durable};
use crate::metrics::{Discard, Metrics};
use crate::sealer::{KEY_EXPIRED_CODE, Sealer};

/// Requests one instance serves before it is retired (bounds any slow leak in the guest).
const MAX_REQUESTS_PER_INSTANCE: u32 = 10_000;
/// Guest linear memory cap per instance.
const MAX_MEMORY_BYTES: usize = 64 << 20;
/// Set (to anything) to have the host write a perf map of the component's compiled code, so
/// that `perf record` / `perf report` name the Wasm functions (profiling only: it costs a file
/// write per compiled function at start).
pub const PERFMAP_ENV: &str = "EDGEVOTE_WASM_PERFMAP";
/// Largest outbound request body the host reads from the component (one envelope).
const MAX_OUTBOUND_BODY_BYTES: usize = 256 * 1024;
/// Largest ballot a component may hand to the host sealer.
const MAX_HANDED_BALLOT_BYTES: usize = edgevote_shared::manifest::MAX_BALLOT_BYTES as usize;
/// Seconds a voter is told to wait when the host could not make the vote durable.
const RETRY_AFTER_SECS: u32 = 2;
/// How often the engine's epoch advances: the granularity of the guest's deadline.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Why a request through the component got no answer from it.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The request was not answered within its deadline (waiting for an instance, running the
    /// guest, or waiting for its vote to become durable). The instance was dropped.
    #[error("the component did not answer within {} ms", .0.as_millis())]
    Deadline(Duration),
    /// The component trapped, answered with an error, or never set a response.
    #[error("the component failed: {0:#}")]
    Failed(anyhow::Error),
}

/// Per-request store data.
pub struct HostState {
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: EdgeHooks,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// The outbound-request policy of one request's instance.
#[derive(Clone)]
pub struct EdgeHooks {
    committer: Committer,
    forward: bool,
    /// Under host sealing, the native sealer that checks, verifies and signs (it follows the
    /// published key set: read once per request).
    sealer: Option<Arc<Sealer>>,
    /// The bundle whose requests these hooks serve (named in host-signed receipts).
    bundle_sha256: Digest32,
    /// The body of the request the instance is serving: the only ballot it may hand over,
    /// once. Taken by the first hand-over.
    request_body: Option<Bytes>,
}

impl EdgeHooks {
    /// Hooks committing through `committer`; `sealer` is set under host sealing.
    pub fn new(
        committer: Committer,
        forward: bool,
        sealer: Option<Arc<Sealer>>,
        bundle_sha256: Digest32,
    ) -> Self {
        EdgeHooks {
            committer,
            forward,
            sealer,
            bundle_sha256,
            request_body: None,
        }
    }

    /// Arms the hooks for the next request, whose body is `body`.
    fn begin_request(&mut self, body: Bytes) {
        self.request_body = Some(body);
    }
}

type IoFuture = Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>;

fn synthetic(status: u16, content_type: &'static str, body: Vec<u8>) -> http::Response<WasiBody> {
    let mut response = http::Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_GATEWAY);
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    response
}

/// An SQS-style answer to the component's `SendMessage`.
fn sqs_answer(status: u16, body: Vec<u8>) -> http::Response<WasiBody> {
    synthetic(status, edgevote_edge_sqs::CONTENT_TYPE, body)
}

/// The host sealer's answer, as the core built it.
fn core_answer(response: edgevote_edge_core::Response) -> http::Response<WasiBody> {
    let mut answer = synthetic(response.status, response.content_type, response.body);
    for (name, value) in response.headers {
        if let Ok(value) = http::HeaderValue::from_str(&value) {
            answer.headers_mut().insert(name, value);
        }
    }
    answer
}

/// Whether `handed` is the ballot the voter sent in `voter_body`: the same bytes, or the same
/// four fields (a component may re-encode the JSON). Refused when the voter's body is gone (a
/// second hand-over in one request) or does not parse.
fn same_ballot(voter_body: Option<&[u8]>, handed: &[u8]) -> Result<(), String> {
    let voter_body =
        voter_body.ok_or("one ballot per request: this request already handed one over")?;
    if voter_body == handed {
        return Ok(());
    }
    let parse = |bytes: &[u8]| edgevote_shared::Ballot::parse(bytes, MAX_HANDED_BALLOT_BYTES);
    match (parse(voter_body), parse(handed)) {
        (Ok(sent), Ok(handed)) if sent == handed => Ok(()),
        (Ok(_), Ok(_)) => Err(
            "the handed ballot differs from the voter's (election, token, choice or nonce)".into(),
        ),
        _ => Err("the handed ballot is not the body the voter sent".into()),
    }
}

impl WasiHttpHooks for EdgeHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        _fut: IoFuture,
    ) -> Box<
        dyn Future<Output = Result<(http::Response<WasiBody>, IoFuture), wasmtime_wasi_http::Error>>
            + Send,
    > {
        // The voter's body goes to the first call only: a second hand-over has none to match.
        let request_body = self.request_body.take();
        let hooks = self.clone();
        Box::new(async move {
            if hooks.forward {
                let (response, io) =
                    wasmtime_wasi_http::default_send_request(request, options).await?;
                return Ok((
                    response.map(BodyExt::boxed_unsync),
                    Box::new(io) as IoFuture,
                ));
            }
            let to_sealer = request.uri().host() == Some(HOST_SEALER_AUTHORITY);
            let response = match (&hooks.sealer, to_sealer) {
                (Some(sealer), true) => {
                    core_answer(hooks.seal_outbound(sealer, request, request_body).await)
                }
                (None, false) => hooks.commit_outbound(request).await,
                _ => sqs_answer(
                    403,
                    br#"{"__type":"EgressDenied","message":"this call does not match the host's sealing mode"}"#
                        .to_vec(),
                ),
            };
            Ok((response, Box::new(async { Ok(()) }) as IoFuture))
        })
    }
}

impl EdgeHooks {
    /// Host sealing: checks a handed ballot again natively, has group commit verify its token
    /// and seal it, and signs its receipt once it is durable.
    ///
    /// The component may hand over only the ballot its voter sent, once per request: anything
    /// else (another choice, another voter's ballot kept from an earlier request, a second
    /// ballot) is refused with 403 `ballot_mismatch` and counted, and nothing is sealed.
    async fn seal_outbound(
        &self,
        sealer: &Sealer,
        request: http::Request<WasiBody>,
        voter_body: Option<Bytes>,
    ) -> edgevote_edge_core::Response {
        use edgevote_edge_core::Response;
        let path = request.uri().path().to_owned();
        let Some(election) = host_seal_election(&path) else {
            return Response::error(404, "not_found", path);
        };
        let body = match http_body_util::Limited::new(request.into_body(), MAX_HANDED_BALLOT_BYTES)
            .collect()
            .await
        {
            Ok(collected) => collected.to_bytes(),
            Err(e) => return Response::error(413, "too_large", e),
        };
        if let Err(detail) = same_ballot(voter_body.as_deref(), &body) {
            self.committer
                .metrics()
                .handover_mismatches
                .fetch_add(1, Ordering::Relaxed);
            tracing::error!(
                stage = "seal",
                election,
                detail,
                "the component handed over a ballot its voter did not send; refused"
            );
            return Response::error(403, "ballot_mismatch", detail);
        }
        let checking = sealer.current();
        let vote = match checking.check_handed(election, &body, edgevote_signer::clock::now_ms()) {
            Ok(vote) => vote,
            Err(refusal) => return refusal,
        };
        match self.committer.commit_vote(vote).await {
            // Signed by the key that sealed its envelope, valid when the vote was received.
            Ok((_, accepted, edge)) => {
                edge.receipt_response_for(&accepted, Some(self.bundle_sha256))
            }
            Err(CommitError::Refused(refusal)) => *refusal,
            Err(CommitError::KeyExpired(detail)) => {
                let mut refusal = Response::error(503, KEY_EXPIRED_CODE, detail);
                refusal
                    .headers
                    .push(("retry-after", RETRY_AFTER_SECS.to_string()));
                refusal
            }
            Err(e) => Response::unavailable(RETRY_AFTER_SECS, e),
        }
    }

    /// Takes an SQS `SendMessage` from the component into group commit and answers as SQS would.
    async fn commit_outbound(&self, request: http::Request<WasiBody>) -> http::Response<WasiBody> {
        let target = request
            .headers()
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = match http_body_util::Limited::new(request.into_body(), MAX_OUTBOUND_BODY_BYTES)
            .collect()
            .await
        {
            Ok(collected) => collected.to_bytes(),
            Err(e) => {
                return sqs_answer(
                    413,
                    format!("{{\"__type\":\"RequestTooLarge\",\"message\":\"{e}\"}}").into_bytes(),
                );
            }
        };
        let Some((_queue_url, envelope)) =
            edgevote_edge_sqs::parse_send_message(target.as_deref(), &body)
        else {
            return sqs_answer(403, br#"{"__type":"EgressDenied","message":"the edge host only carries SQS SendMessage"}"#.to_vec());
        };
        match self.committer.commit(envelope).await {
            Ok(Durable::Queued(id)) => sqs_answer(200, edgevote_edge_sqs::answer_body(&id)),
            Ok(Durable::Spilled(id)) => {
                sqs_answer(200, edgevote_edge_sqs::answer_body(&format!("spill-{id}")))
            }
            Err(e) => sqs_answer(
                503,
                serde_json::json!({"__type": "ServiceUnavailable", "message": e.to_string()})
                    .to_string()
                    .into_bytes(),
            ),
        }
    }
}

/// The loaded component, ready to serve.
///
/// Instances are reused: one that answered its request cleanly goes back to a pool and serves a
/// later request, keeping the component's parsed configuration (key set, manifests). Guest
/// memory therefore carries from one voter's request to the next; why that is acceptable, and
/// what bounds it, is in ARCHITECTURE.md ("Instance reuse"). An instance that trapped, ran past
/// its deadline or served `MAX_REQUESTS_PER_INSTANCE` (10,000) requests is dropped, never
/// reused.
pub struct EdgeRuntime {
    pre: ProxyPre<HostState>,
    env: Arc<Vec<(String, String)>>,
    hooks: EdgeHooks,
    permits: Arc<Semaphore>,
    metrics: Arc<Metrics>,
    /// Instances that finished a request cleanly, ready for the next one.
    warm: Arc<std::sync::Mutex<Vec<Warm>>>,
}

/// An instantiated component with its store.
struct Warm {
    store: Store<HostState>,
    proxy: wasmtime_wasi_http::p2::bindings::Proxy,
    served: u32,
}

/// Advances `engine`'s epoch every [`EPOCH_TICK`] until the engine is dropped, so that a guest
/// past its deadline traps at its next loop or call.
fn start_epoch_ticker(engine: &Engine) -> std::io::Result<()> {
    let engine = engine.weak();
    std::thread::Builder::new()
        .name("edgevote-epoch".into())
        .spawn(move || {
            while let Some(engine) = engine.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .map(drop)
}

/// Epoch ticks in `deadline`, rounded up (at least one).
fn deadline_ticks(deadline: Duration) -> u64 {
    let ticks = deadline.as_millis().div_ceil(EPOCH_TICK.as_millis()).max(1);
    u64::try_from(ticks).unwrap_or(u64::MAX)
}

/// What became of the instance after its call: back to the pool, or why it was dropped.
fn disposition(
    outcome: &Result<wasmtime::Result<()>, tokio::time::error::Elapsed>,
    served: u32,
) -> Option<Discard> {
    match outcome {
        Ok(Ok(())) if served < MAX_REQUESTS_PER_INSTANCE => None,
        Ok(Ok(())) => Some(Discard::Quota),
        Ok(Err(e)) if e.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::Interrupt) => {
            Some(Discard::Deadline)
        }
        Ok(Err(_)) => Some(Discard::Trap),
        Err(_) => Some(Discard::Deadline),
    }
}

impl EdgeRuntime {
    /// Compiles `component` once and prepares instantiation with a pool of `instances`.
    pub fn new(
        component: &[u8],
        env: Vec<(String, String)>,
        hooks: EdgeHooks,
        instances: u32,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(instances)
            .total_core_instances(instances * 4)
            .total_memories(instances)
            .total_tables(instances * 4)
            .total_stacks(instances)
            .max_memory_size(MAX_MEMORY_BYTES);
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        if std::env::var_os(PERFMAP_ENV).is_some() {
            // Names the component's compiled functions for `perf` (/tmp/perf-PID.map).
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine = Engine::new(&config)?;
        start_epoch_ticker(&engine)?;
        let component = Component::new(&engine, component)?;
        let mut linker: Linker<HostState> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        let pre = ProxyPre::new(linker.instantiate_pre(&component)?)?;
        Ok(EdgeRuntime {
            pre,
            env: Arc::new(env),
            hooks,
            permits: Arc::new(Semaphore::new(instances as usize)),
            metrics,
            warm: Arc::default(),
        })
    }

    fn new_store(&self) -> Store<HostState> {
        let mut wasi = WasiCtx::builder();
        for (key, value) in self.env.iter() {
            wasi.env(key, value);
        }
        Store::new(
            self.pre.engine(),
            HostState {
                table: ResourceTable::new(),
                wasi: wasi.build(),
                http: WasiHttpCtx::new(),
                hooks: self.hooks.clone(),
            },
        )
    }

    /// A warm instance, or a new one.
    async fn instance(&self) -> anyhow::Result<Warm> {
        let reused = self.warm.lock().unwrap_or_else(|p| p.into_inner()).pop();
        if let Some(warm) = reused {
            return Ok(warm);
        }
        let mut store = self.new_store();
        // Instantiation runs the guest's start code: it gets a deadline too.
        store.set_epoch_deadline(deadline_ticks(Duration::from_secs(1)));
        let proxy = self.pre.instantiate_async(&mut store).await?;
        self.metrics
            .instances_created
            .fetch_add(1, Ordering::Relaxed);
        Ok(Warm {
            store,
            proxy,
            served: 0,
        })
    }

    /// Runs one request (head `parts`, whole `body`) through the component, answered within
    /// `deadline` or not at all: waiting for a free instance, running the guest (interrupted at
    /// the deadline by the engine's epoch) and waiting for the vote to become durable all count.
    pub async fn handle(
        &self,
        parts: http::request::Parts,
        body: Bytes,
        deadline: Duration,
    ) -> Result<hyper::Response<HyperOutgoingBody>, RunError> {
        let expires = tokio::time::Instant::now() + deadline;
        // The permit lives as long as the instance is busy (the task), not just until the headers.
        let permit = tokio::time::timeout_at(expires, Arc::clone(&self.permits).acquire_owned())
            .await
            .map_err(|_| RunError::Deadline(deadline))?
            .map_err(|e| RunError::Failed(e.into()))?;
        let mut warm = self.instance().await.map_err(RunError::Failed)?;
        warm.store.set_epoch_deadline(deadline_ticks(deadline));
        warm.store.data_mut().hooks.begin_request(body.clone());
        let request = hyper::Request::from_parts(
            parts,
            Full::new(body).map_err(|never| -> wasmtime_wasi_http::Error { match never {} }),
        );
        let incoming = match warm
            .store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, request)
        {
            Ok(incoming) => incoming,
            Err(e) => {
                // Nothing reached the guest or its table: the instance is as clean as before.
                self.warm
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(warm);
                return Err(RunError::Failed(e.into()));
            }
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        let outparam = match warm.store.data_mut().http().new_response_outparam(tx) {
            Ok(outparam) => outparam,
            Err(e) => {
                self.metrics.count_discard(Discard::Trap);
                return Err(RunError::Failed(e.into()));
            }
        };
        let (pool, metrics) = (Arc::clone(&self.warm), Arc::clone(&self.metrics));
        let task = tokio::spawn(async move {
            let call = warm.proxy.wasi_http_incoming_handler().call_handle(
                &mut warm.store,
                incoming,
                outparam,
            );
            let outcome = tokio::time::timeout_at(expires, call).await;
            warm.served += 1;
            match disposition(&outcome, warm.served) {
                None => pool.lock().unwrap_or_else(|p| p.into_inner()).push(warm),
                Some(reason) => metrics.count_discard(reason),
            }
            drop(permit);
            outcome
        });
        match tokio::time::timeout_at(expires, rx).await {
            Ok(Ok(Ok(response))) => Ok(response),
            Ok(Ok(Err(code))) => Err(RunError::Failed(anyhow::anyhow!(
                "component answered with error code {code:?}"
            ))),
            Ok(Err(_)) => match task.await {
                Ok(Ok(Ok(()))) => Err(RunError::Failed(anyhow::anyhow!(
                    "component never set a response"
                ))),
                Ok(Ok(Err(e)))
                    if e.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::Interrupt) =>
                {
                    Err(RunError::Deadline(deadline))
                }
                Ok(Ok(Err(e))) => Err(RunError::Failed(e.into())),
                Ok(Err(_)) => Err(RunError::Deadline(deadline)),
                Err(e) => Err(RunError::Failed(e.into())),
            },
            Err(_) => Err(RunError::Deadline(deadline)),
        }
    }
}

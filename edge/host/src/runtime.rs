//! The component runtime: Engine, Linker and `ProxyPre` are built once; each request gets a
//! fresh instance from the pooling allocator, behind a semaphore sized to the pool.
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

use edgevote_edge_core::{Edge, HOST_SEALER_AUTHORITY, host_seal_election};
use edgevote_shared::Digest32;

use crate::commit::{CommitError, Committer, Durable};
use crate::metrics::Metrics;

/// Requests one instance serves before it is retired (bounds any slow leak in the guest).
const MAX_REQUESTS_PER_INSTANCE: u32 = 10_000;
/// Guest linear memory cap per instance.
const MAX_MEMORY_BYTES: usize = 64 << 20;
/// Largest outbound request body the host reads from the component (one envelope).
const MAX_OUTBOUND_BODY_BYTES: usize = 256 * 1024;
/// Largest ballot a component may hand to the host sealer.
const MAX_HANDED_BALLOT_BYTES: usize = edgevote_shared::manifest::MAX_BALLOT_BYTES as usize;
/// Seconds a voter is told to wait when the host could not make the vote durable.
const RETRY_AFTER_SECS: u32 = 2;

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
    /// Under host sealing, the native edge that checks, verifies and signs.
    sealer: Option<Arc<Edge>>,
    /// The bundle whose requests these hooks serve (named in host-signed receipts).
    bundle_sha256: Digest32,
}

impl EdgeHooks {
    /// Hooks committing through `committer`; `sealer` is set under host sealing.
    pub fn new(
        committer: Committer,
        forward: bool,
        sealer: Option<Arc<Edge>>,
        bundle_sha256: Digest32,
    ) -> Self {
        EdgeHooks {
            committer,
            forward,
            sealer,
            bundle_sha256,
        }
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
                (Some(sealer), true) => core_answer(hooks.seal_outbound(sealer, request).await),
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
    async fn seal_outbound(
        &self,
        sealer: &Edge,
        request: http::Request<WasiBody>,
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
        let vote = match sealer.check_handed(election, &body, edgevote_queue::now_ms()) {
            Ok(vote) => vote,
            Err(refusal) => return refusal,
        };
        match self.committer.commit_vote(vote).await {
            Ok((_, accepted)) => sealer.receipt_response_for(&accepted, Some(self.bundle_sha256)),
            Err(CommitError::Refused(refusal)) => *refusal,
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
pub struct EdgeRuntime {
    pre: ProxyPre<HostState>,
    env: Arc<Vec<(String, String)>>,
    hooks: EdgeHooks,
    permits: Arc<Semaphore>,
    metrics: Arc<Metrics>,
    /// Instances that finished a request cleanly, ready for the next one. Reusing them keeps
    /// the component's parsed configuration (keys, manifests) across requests.
    warm: Arc<std::sync::Mutex<Vec<Warm>>>,
}

/// An instantiated component with its store.
struct Warm {
    store: Store<HostState>,
    proxy: wasmtime_wasi_http::p2::bindings::Proxy,
    served: u32,
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
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config)?;
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

    /// Runs one request through the component: a warm instance if one is free (instances that
    /// trapped or served their quota are dropped, never reused).
    pub async fn handle<B>(
        &self,
        request: hyper::Request<B>,
    ) -> anyhow::Result<hyper::Response<HyperOutgoingBody>>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        // The permit lives as long as the instance is busy (the task), not just until the headers.
        let permit = Arc::clone(&self.permits).acquire_owned().await?;
        let mut warm = self.instance().await?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let incoming = warm
            .store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, request)?;
        let outparam = warm.store.data_mut().http().new_response_outparam(tx)?;
        let pool = Arc::clone(&self.warm);
        let task = tokio::spawn(async move {
            let outcome = warm
                .proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut warm.store, incoming, outparam)
                .await;
            warm.served += 1;
            if outcome.is_ok() && warm.served < MAX_REQUESTS_PER_INSTANCE {
                pool.lock().unwrap_or_else(|p| p.into_inner()).push(warm);
            }
            drop(permit);
            outcome
        });
        match rx.await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(code)) => anyhow::bail!("component answered with error code {code:?}"),
            Err(_) => match task.await {
                Ok(Ok(())) => anyhow::bail!("component never set a response"),
                Ok(Err(e)) => Err(e.into()),
                Err(e) => Err(e.into()),
            },
        }
    }
}

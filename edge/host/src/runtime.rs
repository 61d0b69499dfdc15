//! The component runtime: Engine, Linker and `ProxyPre` are built once; each request gets a
//! fresh instance from the pooling allocator, behind a semaphore sized to the pool.
//!
//! The component's outbound HTTP passes through [`EdgeHooks::send_request`]. An SQS
//! `SendMessage` (recognised by its `X-Amz-Target`) is answered by the host itself once group
//! commit made the envelope durable; anything else is refused, or forwarded as is when the host
//! runs in `forward_outbound` mode (then the component behaves exactly as on Spin).

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

use crate::commit::{Committer, Durable};
use crate::metrics::Metrics;

/// Requests one instance serves before it is retired (bounds any slow leak in the guest).
const MAX_REQUESTS_PER_INSTANCE: u32 = 10_000;
/// Guest linear memory cap per instance.
const MAX_MEMORY_BYTES: usize = 64 << 20;
/// Largest outbound request body the host reads from the component (one envelope).
const MAX_OUTBOUND_BODY_BYTES: usize = 256 * 1024;

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
}

type IoFuture = Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>;

fn synthetic(status: u16, body: Vec<u8>) -> http::Response<WasiBody> {
    let mut response = http::Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_GATEWAY);
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(edgevote_edge_sqs::CONTENT_TYPE),
    );
    response
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
            let response = hooks.commit_outbound(request).await;
            Ok((response, Box::new(async { Ok(()) }) as IoFuture))
        })
    }
}

impl EdgeHooks {
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
                return synthetic(
                    413,
                    format!("{{\"__type\":\"RequestTooLarge\",\"message\":\"{e}\"}}").into_bytes(),
                );
            }
        };
        let Some((_queue_url, envelope)) =
            edgevote_edge_sqs::parse_send_message(target.as_deref(), &body)
        else {
            return synthetic(403, br#"{"__type":"EgressDenied","message":"the edge host only carries SQS SendMessage"}"#.to_vec());
        };
        match self.committer.commit(envelope).await {
            Ok(Durable::Queued(id)) => synthetic(200, edgevote_edge_sqs::answer_body(&id)),
            Ok(Durable::Spilled(id)) => {
                synthetic(200, edgevote_edge_sqs::answer_body(&format!("spill-{id}")))
            }
            Err(e) => synthetic(
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
        committer: Committer,
        forward: bool,
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
            hooks: EdgeHooks { committer, forward },
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

//! The Workers side: the `fetch` event, the configuration cache, the bounded body read, and the
//! SQS calls over `fetch`.

use std::cell::{OnceCell, RefCell};
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

use edgevote_edge_core::{
    Accepted, Outcome, PlatformVote, Request as CoreRequest, Response as CoreResponse,
};
use edgevote_edge_sqs::{MAX_ANSWER_BYTES, QueueTarget, read_answer, send_message};
use edgevote_shared::message;
use futures_util::StreamExt;
use futures_util::future::{Either, select};
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::web_sys::{self, ReadableStream};
use worker::{
    AbortController, ByteStream, Context, Delay, Env, Fetch, Headers, Method, Request, RequestInit,
    Response, ResponseBody, console_error, console_warn, event, js_sys,
};

use crate::config::{Config, Crypto, PlatformEdgeKey};
use crate::group::{Flush, GroupCommit, JoinError};
use crate::webcrypto::WebCrypto;
use crate::{RETRY_AFTER_SECS, SendFailure, unavailable_detail};

/// Longest pause of a waiting vote before it looks again whether a call is free (normally it
/// is woken sooner: by its message's fate, or as the next to send; the look is for the rare
/// case that the request woken to send next is gone, and any vote that arrives meanwhile
/// sends too). The pause's timer is also what keeps a waiting request alive: workerd answers
/// 500 for a request whose only pending work is a promise that another request resolves ("the
/// script will never generate a response"; measured: 6 of the 7 group-commit tests fail
/// without the timer). One timer serves a vote's whole wait until it fires: at 50 ms, a
/// period a queue's answer often outlasts, the timers' firing and re-arming were 6-8% of
/// workerd's CPU per vote (perf, 64 clients, a queue answering after 50 ms).
const RECHECK_MS: u64 = 250;
/// Added to a call's budget beyond the queue timeouts.
const WAIT_SLACK_MS: u64 = 1000;

thread_local! {
    /// The configuration of this isolate, once it loaded. A failure is not cached: it is
    /// reported on every request (and retried, which costs nothing next to a broken edge).
    static CONFIG: OnceCell<Rc<Config>> = const { OnceCell::new() };
    /// The isolate's WebCrypto with the edge key imported, once a vote needed it.
    static WEBCRYPTO: RefCell<Option<Rc<WebCrypto>>> = const { RefCell::new(None) };
    /// The isolate's group commit, once a vote needed it.
    static GROUP: RefCell<Option<Group>> = const { RefCell::new(None) };
}

/// The isolate's line of verified votes waiting to be sealed and sent.
type Group = GroupCommit<Accepted, Rc<Waiter>>;

/// A message's fate: its id, or why it is in no queue.
type Fate = Result<String, Unsent>;

/// One vote waiting in group commit.
#[derive(Default)]
struct Waiter {
    /// Its message's fate, once known.
    fate: RefCell<Option<Fate>>,
    /// Resolves the promise the vote's request waits on. The promise is made by that request,
    /// so when another request's send resolves it, workerd runs the continuation in the
    /// waiting request's own context.
    wake: RefCell<Option<js_sys::Function>>,
}

impl Waiter {
    /// A new promise to wait on, resolved by [`Waiter::wake`].
    fn wake_promise(&self) -> js_sys::Promise {
        js_sys::Promise::new(&mut |resolve, _reject| {
            *self.wake.borrow_mut() = Some(resolve);
        })
    }

    /// Resolves the promise the request waits on, if any.
    fn wake(&self) {
        let resolve = self.wake.borrow_mut().take();
        if let Some(resolve) = resolve {
            let _ = resolve.call0(&JsValue::UNDEFINED);
        }
    }
}

/// Why a vote is in no queue.
#[derive(Debug, Clone)]
enum Unsent {
    /// Every queue failed (region and failure of each).
    Queues(Vec<(String, SendFailure)>),
    /// Too many votes wait in this isolate.
    Busy,
    /// No fate within the wait budget; `withdrawn`: the vote was still waiting, so it was sent
    /// nowhere (otherwise its message may yet arrive, and a retry is the same vote).
    NoAnswer {
        /// Whether the vote left the line unsent.
        withdrawn: bool,
    },
    /// An envelope of the vote alone would be over the message bound.
    TooLarge(usize),
    /// Its message could not be sealed (the envelope refused, or the platform's signature
    /// failed); nothing was sent.
    Sealing(String),
}

impl Unsent {
    /// The 503 detail: no queue URLs, account ids or SQS messages.
    fn public(&self) -> String {
        match self {
            Unsent::Queues(failures) => unavailable_detail(failures),
            Unsent::Busy => {
                "edge busy: too many votes wait for the queue; retry later with the same nonce"
                    .into()
            }
            Unsent::NoAnswer { .. } => {
                "no queue answered in time; retry later with the same nonce".into()
            }
            Unsent::TooLarge(bytes) => format!("envelope of {bytes} bytes"),
            Unsent::Sealing(detail) => format!("sealing failed: {detail}"),
        }
    }
}

impl std::fmt::Display for Unsent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unsent::Queues(failures) => {
                let all: Vec<String> = failures.iter().map(|(r, e)| format!("{r}: {e}")).collect();
                write!(f, "every queue failed ({})", all.join("; "))
            }
            Unsent::NoAnswer { withdrawn } => write!(
                f,
                "no fate within the wait budget ({})",
                if *withdrawn {
                    "withdrawn unsent"
                } else {
                    "its message may still arrive"
                }
            ),
            other => f.write_str(&other.public()),
        }
    }
}

#[event(fetch)]
async fn fetch(request: Request, env: Env, ctx: Context) -> worker::Result<Response> {
    let response = match config(&env) {
        Ok(config) => serve(&config, &ctx, request).await,
        Err(e) => {
            console_error!("edgevote: edge misconfigured: {e}");
            CoreResponse::error(500, "edge_misconfigured", e)
        }
    };
    to_worker(response)
}

fn config(env: &Env) -> Result<Rc<Config>, crate::config::ConfigError> {
    if let Some(config) = CONFIG.with(|cell| cell.get().cloned()) {
        return Ok(config);
    }
    let config = Rc::new(Config::load(
        |name| env.var(name).ok().map(|value| value.to_string()),
        now_ms() / 1000,
    )?);
    CONFIG.with(|cell| {
        let _ = cell.set(Rc::clone(&config));
    });
    Ok(config)
}

async fn serve(config: &Rc<Config>, ctx: &Context, request: Request) -> CoreResponse {
    // The raw method: worker::Method maps methods it does not know to GET.
    let method = request.inner().method().to_ascii_uppercase();
    // The path workers-rs cut from the runtime's serialized URL when it wrapped the request
    // (`request.url()` would parse the whole URL again: 1% of workerd's CPU per vote).
    let path = request.path();
    let content_type = request.headers().get("content-type").ok().flatten();
    let body = match read_body(&request, config.edge.max_body_bytes() + 1).await {
        Ok(body) => body,
        Err(detail) => return CoreResponse::error(400, "unreadable_body", detail),
    };
    let now = now_ms();
    let core_request = CoreRequest {
        method: &method,
        path: &path,
        content_type: content_type.as_deref(),
        body: &body,
    };
    match config.edge.handle(core_request, now) {
        Outcome::Respond(response) => response,
        Outcome::Enqueue(accepted) => enqueue(config, ctx, &accepted).await,
        Outcome::VerifyOnPlatform(vote) => {
            let Crypto::WebCrypto(key) = &config.crypto else {
                return CoreResponse::error(500, "edge_misconfigured", "no platform crypto");
            };
            match platform_verify(key, &vote).await {
                Ok(valid) => match config.edge.admit_on_platform(*vote, valid) {
                    Ok(accepted) => enqueue(config, ctx, &accepted).await,
                    Err(refusal) => refusal,
                },
                Err(e) => {
                    console_error!("edgevote: token verification failed: {e}");
                    CoreResponse::error(500, "platform_crypto_failed", e)
                }
            }
        }
        // A Worker always seals itself (its edge is built with the key); no host to hand to.
        Outcome::HandToHost(_) => {
            CoreResponse::error(500, "edge_misconfigured", "a Worker has no host sealer")
        }
    }
}

/// Reads at most `limit` bytes of the body: one byte over the largest ballot is enough for the
/// core to refuse it, and the rest is never buffered.
async fn read_body(request: &Request, limit: usize) -> Result<Vec<u8>, String> {
    let declared = declared_length(request.headers());
    read_bounded(request.inner().body(), declared, limit, |_| {
        request.inner().array_buffer()
    })
    .await
}

/// Reads at most `limit` bytes of a body (`None`: there is none). One of a declared length
/// within the limit is read whole in one call (`read_whole`: its owner's `arrayBuffer()`): the
/// runtime ends a body at its declared length, and a stream costs a reader and a promise per
/// chunk (6.5% of workerd's CPU per vote, by perf). Any other body is streamed until the limit.
async fn read_bounded(
    body: Option<ReadableStream>,
    declared: Option<usize>,
    limit: usize,
    read_whole: impl FnOnce(&ReadableStream) -> Result<js_sys::Promise, JsValue>,
) -> Result<Vec<u8>, String> {
    let Some(stream) = body else {
        return Ok(Vec::new());
    };
    if declared.is_some_and(|length| length <= limit) {
        let whole = read_whole(&stream).map_err(js_text)?;
        let bytes = JsFuture::from(whole).await.map_err(js_text)?;
        return Ok(js_sys::Uint8Array::new(&bytes).to_vec());
    }
    let mut chunks = ByteStream::from(stream);
    let mut read = Vec::new();
    while let Some(chunk) = chunks.next().await {
        if edgevote_edge_core::append_bounded(&mut read, chunk, limit)? {
            break;
        }
    }
    Ok(read)
}

/// The length a `Content-Length` header declares, if it does.
fn declared_length(headers: &Headers) -> Option<usize> {
    let value = headers.get("content-length").ok().flatten()?;
    crate::declared_content_length(&value)
}

/// Whether a `Content-Encoding` other than `identity` applies to the body.
fn is_encoded(headers: &Headers) -> bool {
    let coding = headers.get("content-encoding").ok().flatten();
    crate::is_encoded_coding(coding.as_deref())
}

/// The text of a JS error, for a failure's detail.
pub(crate) fn js_text(value: JsValue) -> String {
    value
        .dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| value.as_string())
        .unwrap_or_else(|| format!("{value:?}"))
}

/// Commits the vote with the isolate's group commit, which seals it with the votes it shares a
/// message with; the receipt only after a queue took that message.
async fn enqueue(config: &Rc<Config>, ctx: &Context, accepted: &Accepted) -> CoreResponse {
    let Err(unsent) = group_commit(config, ctx, accepted).await else {
        return receipt(config, accepted).await;
    };
    let vote_id = accepted.admitted.vote_id.to_b64();
    console_error!("edgevote: vote {vote_id} is in no queue: {unsent}; answering with an error");
    match unsent {
        Unsent::TooLarge(bytes) => CoreResponse::error(
            500,
            "envelope_sealing_failed",
            format!("envelope of {bytes} bytes does not fit in a queue message"),
        ),
        Unsent::Sealing(detail) => CoreResponse::error(500, "envelope_sealing_failed", detail),
        unsent => CoreResponse::unavailable(RETRY_AFTER_SECS, unsent.public()),
    }
}

/// Commits `accepted` with the isolate's group commit (see [`crate::group`]): joins the line,
/// seals and sends the next message itself whenever a call is free, and otherwise waits to be
/// told its message's fate (or that a call is free). Bounded by [`wait_budget_ms`].
async fn group_commit(
    config: &Rc<Config>,
    ctx: &Context,
    accepted: &Accepted,
) -> Result<String, Unsent> {
    let waiter = Rc::new(Waiter::default());
    let bytes = accepted.envelope_bytes();
    with_group(config, |group| {
        group.join(accepted.clone(), bytes, Rc::clone(&waiter))
    })
    .map_err(|refused| match refused {
        JoinError::Full => Unsent::Busy,
        JoinError::TooLarge(bytes) => Unsent::TooLarge(bytes),
    })?;
    let deadline = now_ms().saturating_add(wait_budget_ms(config));
    let mut pause = None;
    // Bounded: every pass waits until woken or the pause ends (RECHECK_MS at most), and the
    // deadline ends the loop.
    loop {
        start_sends(config, ctx);
        if let Some(fate) = waiter.fate.borrow_mut().take() {
            return fate;
        }
        let now = now_ms();
        if now >= deadline {
            let withdrawn = with_group(config, |group| group.withdraw(|w| Rc::ptr_eq(w, &waiter)));
            return Err(Unsent::NoAnswer { withdrawn });
        }
        let woken = JsFuture::from(waiter.wake_promise());
        let timer = pause.get_or_insert_with(|| {
            Box::pin(Delay::from(Duration::from_millis(
                (deadline - now).min(RECHECK_MS),
            )))
        });
        if let Either::Right(((), _)) = select(woken, timer.as_mut()).await {
            // The pause is over: the next pass arms a new one.
            pause = None;
        }
        // Settles the promise if the pause ended the wait, so its callbacks are freed.
        waiter.wake();
    }
}

/// Starts a send for every message a free call can take, each as work of this request that
/// outlives its response (`waitUntil`): a client that hangs up must not strand the others.
fn start_sends(config: &Rc<Config>, ctx: &Context) {
    let now = now_ms();
    let lost = with_group(config, |group| group.forget_lost(now));
    if lost > 0 {
        console_warn!(
            "edgevote: {lost} SendMessage call(s) gave no outcome within {} ms (their work was cancelled); their places are free again, and their votes get 503 when their wait ends",
            call_budget_ms(config)
        );
    }
    // Bounded by COMMITS_IN_FLIGHT: `take` counts each message in flight.
    while let Some(flush) = with_group(config, |group| group.take(now)) {
        ctx.wait_until(send_flush(Rc::clone(config), flush));
    }
}

/// Seals and sends one message, tells each of its requests the outcome, and wakes the next in
/// line to send from its own request.
async fn send_flush(config: Rc<Config>, flush: Flush<Accepted, Rc<Waiter>>) {
    let fate = match seal_message(&config, &flush.votes).await {
        Ok(body) => send_to_queues(&config, &body, flush.votes.len())
            .await
            .map_err(Unsent::Queues),
        Err(detail) => {
            console_error!(
                "edgevote: a message of {} votes could not be sealed: {detail}",
                flush.votes.len()
            );
            Err(Unsent::Sealing(detail))
        }
    };
    with_group(&config, |group| group.finished(flush.call));
    for waiter in &flush.waiters {
        *waiter.fate.borrow_mut() = Some(fate.clone());
        waiter.wake();
    }
    let now = now_ms();
    if let Some(next) = with_group(&config, |group| group.next_sender(now).cloned()) {
        next.wake();
    }
}

/// Offers `body` to each queue in turn: the message id of the first that took it, or why
/// each did not.
async fn send_to_queues(
    config: &Config,
    body: &str,
    votes: usize,
) -> Result<String, Vec<(String, SendFailure)>> {
    let mut failures = Vec::new();
    for target in &config.queues {
        match send(config, target, body).await {
            Ok(message_id) => return Ok(message_id),
            Err(failure) => {
                console_warn!(
                    "edgevote: queue {} ({}) did not take a message of {votes} votes: {failure}",
                    target.region,
                    target.queue_url
                );
                failures.push((target.region.clone(), failure));
            }
        }
    }
    Err(failures)
}

/// Longest a `SendMessage` call can take: every queue until its timeout, and a second more.
/// One that has not finished by then was cancelled (its request's `waitUntil` work ended).
fn call_budget_ms(config: &Config) -> u64 {
    config.message_send_ms() + WAIT_SLACK_MS
}

/// How long a vote waits for its message's fate at most: its message may queue behind
/// another, and each may take the whole call budget.
fn wait_budget_ms(config: &Config) -> u64 {
    2 * call_budget_ms(config)
}

fn with_group<T>(config: &Config, f: impl FnOnce(&mut Group) -> T) -> T {
    GROUP.with(|cell| {
        let mut group = cell.borrow_mut();
        f(group
            .get_or_insert_with(|| GroupCommit::new(config.commit_bounds, call_budget_ms(config))))
    })
}

/// The isolate's WebCrypto, importing the edge key on first use.
async fn web_crypto(key: &PlatformEdgeKey) -> Result<Rc<WebCrypto>, String> {
    if let Some(crypto) = WEBCRYPTO.with(|cell| cell.borrow().clone()) {
        return Ok(crypto);
    }
    let crypto = Rc::new(WebCrypto::new(key).await.map_err(|e| e.to_string())?);
    WEBCRYPTO.with(|cell| *cell.borrow_mut() = Some(Rc::clone(&crypto)));
    Ok(crypto)
}

/// WebCrypto's verdict on the token signature of `vote`.
async fn platform_verify(key: &PlatformEdgeKey, vote: &PlatformVote) -> Result<bool, String> {
    let (public_key, message, signature) = vote.signature_parts();
    web_crypto(key)
        .await?
        .verify(public_key, message, signature)
        .await
        .map_err(|e| e.to_string())
}

/// The edge key's signature of `message`, by WebCrypto (checked against the edge's public key
/// in debug builds).
async fn platform_sign(key: &PlatformEdgeKey, message: &[u8]) -> Result<[u8; 64], String> {
    let signature = web_crypto(key)
        .await?
        .sign(message)
        .await
        .map_err(|e| e.to_string())?;
    debug_assert!(
        edgevote_shared::keys::verify_with_public_key(&key.public_key, message, &signature),
        "WebCrypto's signature does not verify with the edge key"
    );
    Ok(signature)
}

/// The message of `votes`: their envelope (more than one only if a single one would be over
/// its bounds), each signed by the edge key once.
async fn seal_message(config: &Config, votes: &[Accepted]) -> Result<String, String> {
    let now = now_ms();
    let envelopes = match &config.crypto {
        Crypto::Wasm => config
            .edge
            .seal_batch(votes, now)
            .map_err(|e| e.to_string())?,
        Crypto::WebCrypto(key) => {
            let unsigned = config
                .edge
                .envelopes_to_sign(votes, now)
                .map_err(|e| e.to_string())?;
            let mut envelopes = Vec::with_capacity(unsigned.len());
            for envelope in unsigned {
                let signature = platform_sign(key, envelope.message()).await?;
                envelopes.push(envelope.finish(&signature).map_err(|e| e.to_string())?);
            }
            envelopes
        }
    };
    message::encode(&envelopes).map_err(|e| e.to_string())
}

/// `202` with the signed receipt of `accepted`, now durable.
async fn receipt(config: &Config, accepted: &Accepted) -> CoreResponse {
    match &config.crypto {
        Crypto::Wasm => config.edge.receipt_response(accepted),
        Crypto::WebCrypto(key) => {
            let unsigned = match config.edge.receipt_to_sign(accepted) {
                Ok(unsigned) => unsigned,
                Err(e) => return CoreResponse::error(500, "receipt_signing_failed", e),
            };
            match platform_sign(key, unsigned.message()).await {
                Ok(signature) => unsigned.respond(&signature),
                Err(e) => CoreResponse::error(500, "receipt_signing_failed", e),
            }
        }
    }
}

/// One signed `SendMessage` of `body` over `fetch`, aborted after the queue timeout.
async fn send(config: &Config, target: &QueueTarget, body: &str) -> Result<String, SendFailure> {
    let signing_time = UNIX_EPOCH + Duration::from_millis(now_ms());
    let signed = send_message(target, Some(&config.credentials), body, signing_time)
        .map_err(|e| SendFailure::Request(e.to_string()))?;
    let request = build_request(&signed).map_err(|e| SendFailure::Request(e.to_string()))?;
    let controller = AbortController::default();
    let signal = controller.signal();
    let fetch = Fetch::Request(request);
    let call = async {
        let response = fetch
            .send_with_signal(&signal)
            .await
            .map_err(|e| SendFailure::Unreachable(e.to_string()))?;
        let status = response.status_code();
        // The runtime decodes a compressed answer as it reads it, past its declared length:
        // such an answer is streamed, and so bounded as it decodes.
        let declared =
            declared_length(response.headers()).filter(|_| !is_encoded(response.headers()));
        let stream = match response.into_parts().1 {
            ResponseBody::Stream(stream) => Some(stream),
            ResponseBody::Body(_) | ResponseBody::Empty => None,
        };
        let body = read_bounded(stream, declared, MAX_ANSWER_BYTES + 1, |stream| {
            web_sys::Response::new_with_opt_readable_stream(Some(stream))?.array_buffer()
        })
        .await
        .map_err(SendFailure::Unreachable)?;
        if body.len() > MAX_ANSWER_BYTES {
            return Err(SendFailure::Refused {
                status,
                detail: format!("an answer of over {MAX_ANSWER_BYTES} bytes, left unread"),
            });
        }
        read_answer(status, &body).map_err(|e| SendFailure::Refused {
            status,
            detail: e.to_string(),
        })
    };
    let timeout = Delay::from(Duration::from_millis(config.queue_timeout_ms.into()));
    match select(Box::pin(call), timeout).await {
        Either::Left((result, _)) => result,
        Either::Right(((), _)) => {
            controller.abort();
            Err(SendFailure::Timeout(config.queue_timeout_ms))
        }
    }
}

fn build_request(signed: &edgevote_edge_sqs::SendRequest) -> worker::Result<Request> {
    let headers = Headers::new();
    for (name, value) in &signed.headers {
        // The runtime sets Host from the URL (the same authority that was signed).
        if !name.eq_ignore_ascii_case("host") {
            headers.set(name, value)?;
        }
    }
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_body(Some(
            js_sys::Uint8Array::from(signed.body.as_slice()).into(),
        ));
    Request::new_with_init(&signed.url, &init)
}

fn to_worker(response: CoreResponse) -> worker::Result<Response> {
    // One Headers object, filled once (`Response::from_bytes` would make a second).
    let mut builder = Response::builder()
        .with_status(response.status)
        .with_header("content-type", response.content_type)?;
    for (name, value) in &response.headers {
        builder = builder.with_header(name, value)?;
    }
    Ok(builder.fixed(response.body))
}

/// Unix milliseconds from JS `Date.now()` (on Workers it advances between I/O, not within
/// pure computation, which is all a timestamp needs).
fn now_ms() -> u64 {
    let ms = js_sys::Date::now();
    if ms.is_finite() && ms > 0.0 {
        ms as u64
    } else {
        0
    }
}

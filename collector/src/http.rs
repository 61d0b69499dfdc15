//! The collector's HTTP endpoints: `/metrics` (Prometheus), `/healthz`, results
//! (`/v1/results/{election}`, live and provisional; `/v1/results/{election}/final`, exact,
//! recomputed from the stored ballots), the per-receipt lookup and the auditor's voter listing.
//!
//! **What a receipt holder learns, and what nobody else does.**
//! `GET /v1/elections/{e}/votes/{vote_id}?voter={voter}` answers whether the ballot with that
//! vote id is stored for that voter (the voter is the store's partition key: the token's
//! `sub`), with its edge timestamp and edge. The vote id is a hiding commitment that only the
//! receipt holder knows, so without a receipt nobody learns anything: "no such vote" has one
//! answer, whether the voter has no ballot or other ballots. Whether that vote is the counted
//! one is said only where that is harmless ([`RevealCounted`], by default first-vote-wins
//! elections only): under last-vote-wins re-voting is the voter's defence against a coercer,
//! and a coercer holding the coerced ballot's receipt must not learn "superseded". The answer
//! has the same members for every stored vote of such an election.
//!
//! `GET /v1/elections/{e}/voters/{voter}/ballots` (every stored vote id of a voter and which one
//! counts) reveals re-voting, so it exists only when the collector is configured with an
//! auditor token (`http.auditor_token_file`) and answers only requests that present it as
//! `Authorization: Bearer`, compared in constant time; otherwise it answers 404.
//!
//! **The final tally is bounded.** It scans every ballot of the election, so a computed tally
//! is kept for `http.final_cache_ms` and shared: concurrent requests wait for the one scan
//! running for their election (single flight; the scan runs detached, so it finishes and is
//! kept even if every requester gave up), at most `http.final_max_scans` scans run at once over
//! all elections, and a request that cannot get a result within `http.final_wait_ms` is
//! answered 503 `busy` with `Retry-After`. The store has no cheap change sequence to key the
//! cache on, hence the time bound. `edgevote collector tally` is the uncached way.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use edgevote_shared::{Digest32, Policy};
use edgevote_store::FinalTally;
use serde_json::json;
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;

use crate::config::HttpConfig;
pub use crate::config::RevealCounted;
use crate::service::Collector;

/// Shortest auditor token accepted.
pub const MIN_AUDITOR_TOKEN_CHARS: usize = 32;

/// The HTTP endpoints' settings, resolved (the auditor token read from its file).
#[derive(Clone)]
pub struct HttpOptions {
    /// The auditor bearer token; `None`: no voter listing.
    pub auditor_token: Option<String>,
    /// When the per-receipt lookup says whether the vote counts.
    pub reveal_counted: RevealCounted,
    /// How long a computed final tally is served.
    pub final_cache: Duration,
    /// Most final tally scans at once.
    pub final_max_scans: usize,
    /// Longest wait for a final tally before 503.
    pub final_wait: Duration,
}

impl std::fmt::Debug for HttpOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpOptions")
            .field(
                "auditor_token",
                &self.auditor_token.as_ref().map(|_| "<redacted>"),
            )
            .field("reveal_counted", &self.reveal_counted)
            .field("final_cache", &self.final_cache)
            .field("final_max_scans", &self.final_max_scans)
            .field("final_wait", &self.final_wait)
            .finish()
    }
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions::resolved(&HttpConfig::default(), None)
    }
}

impl HttpOptions {
    /// The options of a configuration, reading the auditor token file if one is named.
    pub fn from_config(config: &HttpConfig) -> Result<Self, String> {
        config.validate().map_err(|e| e.to_string())?;
        let token = match &config.auditor_token_file {
            None => None,
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("auditor token {}: {e}", path.display()))?;
                Some(
                    check_token(text.trim())
                        .map_err(|e| format!("auditor token {}: {e}", path.display()))?,
                )
            }
        };
        Ok(HttpOptions::resolved(config, token))
    }

    /// These options with `token` as the auditor token (at least
    /// [`MIN_AUDITOR_TOKEN_CHARS`] characters).
    pub fn with_auditor_token(self, token: &str) -> Result<Self, String> {
        Ok(HttpOptions {
            auditor_token: Some(check_token(token.trim())?),
            ..self
        })
    }

    fn resolved(config: &HttpConfig, auditor_token: Option<String>) -> Self {
        HttpOptions {
            auditor_token,
            reveal_counted: config.reveal_counted,
            final_cache: Duration::from_millis(config.final_cache_ms),
            final_max_scans: config.final_max_scans.max(1),
            final_wait: Duration::from_millis(config.final_wait_ms.max(1)),
        }
    }
}

fn check_token(token: &str) -> Result<String, String> {
    if token.len() < MIN_AUDITOR_TOKEN_CHARS {
        return Err(format!(
            "the token must be at least {MIN_AUDITOR_TOKEN_CHARS} characters"
        ));
    }
    Ok(token.to_owned())
}

/// The state behind the router.
struct Http {
    collector: Arc<Collector>,
    options: HttpOptions,
    finals: FinalTallies,
}

/// Final tallies computed, and the bound on the scans computing them.
struct FinalTallies {
    scans: Semaphore,
    /// Election → its last computed tally and the scan running for it. Only elections the
    /// collector is configured for get a slot.
    slots: Mutex<HashMap<String, Arc<Mutex<Slot>>>>,
    scans_total: AtomicU64,
    busy_total: AtomicU64,
    running: AtomicU64,
}

/// What a scan ends with (`None` until it ends).
type Outcome = Option<Result<Arc<Computed>, String>>;

/// One election's final tally.
#[derive(Default)]
struct Slot {
    /// The last one computed.
    last: Option<Arc<Computed>>,
    /// The scan running for it, which every request for the election waits for.
    scan: Option<watch::Receiver<Outcome>>,
}

/// A computed final tally.
struct Computed {
    /// When the scan finished.
    at: Instant,
    at_ms: u64,
    tally: FinalTally,
}

impl FinalTallies {
    fn new(max_scans: usize) -> Self {
        FinalTallies {
            scans: Semaphore::new(max_scans),
            slots: Mutex::new(HashMap::new()),
            scans_total: AtomicU64::new(0),
            busy_total: AtomicU64::new(0),
            running: AtomicU64::new(0),
        }
    }

    fn slot(&self, election: &str) -> Arc<Mutex<Slot>> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(slots.entry(election.to_owned()).or_default())
    }

    fn render(&self, region: &str) -> String {
        let label = format!("region=\"{region}\"");
        let mut out = String::new();
        for (name, help, kind, value) in [
            (
                "edgevote_collector_final_tally_scans_total",
                "Full scans of the store computing a final tally for /v1/results/{election}/final.",
                "counter",
                &self.scans_total,
            ),
            (
                "edgevote_collector_final_tally_busy_total",
                "Final tally requests answered 503 busy: no result or scan slot within http.final_wait_ms.",
                "counter",
                &self.busy_total,
            ),
            (
                "edgevote_collector_final_tally_scans_running",
                "Final tally scans running now.",
                "gauge",
                &self.running,
            ),
        ] {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{{{label}}} {}\n",
                value.load(Ordering::Relaxed)
            ));
        }
        out
    }
}

/// Counts a scan as running until dropped.
struct Running<'a>(&'a AtomicU64);

impl<'a> Running<'a> {
    fn start(gauge: &'a AtomicU64) -> Self {
        gauge.fetch_add(1, Ordering::Relaxed);
        Running(gauge)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The router for one collector, with the default options: no auditor listing.
pub fn router(collector: Arc<Collector>) -> Router {
    router_with(collector, HttpOptions::default())
}

/// The router for one collector.
pub fn router_with(collector: Arc<Collector>, options: HttpOptions) -> Router {
    let finals = FinalTallies::new(options.final_max_scans);
    let live = collector
        .live_log()
        .map(|log| crate::live_log::router(Arc::clone(log)));
    let state = Arc::new(Http {
        collector,
        options,
        finals,
    });
    let router = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/v1/results/{election}", get(live_results))
        .route("/v1/results/{election}/final", get(final_results))
        .route("/results/{election}", get(results_page))
        .route("/v1/elections/{election}/votes/{vote_id}", get(vote_lookup))
        .route(
            "/v1/elections/{election}/voters/{voter}/ballots",
            get(voter_ballots),
        )
        .with_state(state);
    match live {
        Some(live) => router.merge(live),
        None => router,
    }
}

/// Serves `router` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn metrics(State(h): State<Arc<Http>>) -> Response {
    let c = &h.collector;
    let mut text = c.metrics.render(&c.region);
    text.push_str(&h.finals.render(&c.region));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

async fn healthz(State(h): State<Arc<Http>>) -> Response {
    match h.collector.queue.stats().await {
        Ok(_) => (StatusCode::OK, "ok\n").into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("queue unreachable: {e}\n"),
        )
            .into_response(),
    }
}

fn error(status: StatusCode, code: &str, detail: impl std::fmt::Display) -> Response {
    (
        status,
        axum::Json(json!({"error": code, "detail": detail.to_string()})),
    )
        .into_response()
}

/// `response` marked as never to be cached (answers about one voter).
fn private(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn live_results(State(h): State<Arc<Http>>, Path(election): Path<String>) -> Response {
    let c = &h.collector;
    if c.checker.rules(&election).is_none() {
        return error(StatusCode::NOT_FOUND, "unknown_election", election);
    }
    match c.store.live_tally(&election).await {
        Ok(live) => {
            let overall = edgevote_store::live_overall(&live);
            axum::Json(json!({
                "election": election,
                "provisional": true,
                "regions": live,
                "overall": overall,
            }))
            .into_response()
        }
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", e),
    }
}

/// The exact final tally, from a scan that finished at most `final_cache` ago or from the one
/// running for the election (see the module doc).
async fn final_results(State(h): State<Arc<Http>>, Path(election): Path<String>) -> Response {
    let Some(rules) = h.collector.checker.rules(&election) else {
        return error(StatusCode::NOT_FOUND, "unknown_election", election);
    };
    let deadline = Instant::now() + h.options.final_wait;
    let mut scan = {
        let slot = h.finals.slot(&election);
        let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = &slot.last
            && c.at.elapsed() < h.options.final_cache
        {
            return final_answer(&h, c);
        }
        match &slot.scan {
            // A running scan (its sender is alive): share it.
            Some(scan) if scan.has_changed().is_ok() => scan.clone(),
            _ => {
                let (tx, rx) = watch::channel(None);
                slot.scan = Some(rx.clone());
                // Detached: the scan finishes (and is cached) even if every waiter gives up.
                tokio::spawn(run_scan(Arc::clone(&h), rules, tx));
                rx
            }
        }
    };
    match tokio::time::timeout_at(deadline, scan.wait_for(Option::is_some)).await {
        Err(_) => busy(&h),
        Ok(Ok(outcome)) => match outcome.as_ref() {
            Some(Ok(computed)) => final_answer(&h, computed),
            Some(Err(e)) => error(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", e),
            None => error(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "no tally",
            ),
        },
        Ok(Err(_)) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            "the scan stopped",
        ),
    }
}

/// Scans the store for one election's final tally once a scan slot is free, keeps the result
/// and hands it to every request waiting for it.
async fn run_scan(h: Arc<Http>, rules: edgevote_store::ElectionRules, tx: watch::Sender<Outcome>) {
    let outcome = match h.finals.scans.acquire().await {
        Ok(_permit) => {
            h.finals.scans_total.fetch_add(1, Ordering::Relaxed);
            let _running = Running::start(&h.finals.running);
            edgevote_store::final_tally(h.collector.store.as_ref(), &rules)
                .await
                .map(|tally| {
                    Arc::new(Computed {
                        at: Instant::now(),
                        at_ms: edgevote_signer::clock::now_ms(),
                        tally,
                    })
                })
                .map_err(|e| e.to_string())
        }
        Err(closed) => Err(closed.to_string()),
    };
    {
        let slot = h.finals.slot(&rules.id);
        let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
        if let Ok(computed) = &outcome {
            slot.last = Some(Arc::clone(computed));
        }
        slot.scan = None;
    }
    let _ = tx.send(Some(outcome));
}

fn final_answer(h: &Http, c: &Computed) -> Response {
    let mut body = serde_json::to_value(&c.tally)
        .expect("a final tally (string keys, numbers) serialises to JSON");
    body["computed_at_ms"] = c.at_ms.into();
    let max_age = h.options.final_cache.as_secs();
    let mut response = axum::Json(body).into_response();
    if let Ok(value) = HeaderValue::from_str(&format!("max-age={max_age}")) {
        response.headers_mut().insert(header::CACHE_CONTROL, value);
    }
    response
}

fn busy(h: &Http) -> Response {
    h.finals.busy_total.fetch_add(1, Ordering::Relaxed);
    let retry = h.options.final_cache.as_secs().max(1);
    let mut response = error(
        StatusCode::SERVICE_UNAVAILABLE,
        "busy",
        "the final tally is being computed; retry later",
    );
    if let Ok(value) = HeaderValue::from_str(&retry.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// One query parameter's value (ids need no percent-decoding: one with `%` fails its check).
fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// The per-receipt lookup: is the vote with this id stored for this voter? See the module doc
/// for what it reveals.
async fn vote_lookup(
    State(h): State<Arc<Http>>,
    Path((election, vote_id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    let c = &h.collector;
    let Some(rules) = c.checker.rules(&election) else {
        return error(StatusCode::NOT_FOUND, "unknown_election", election);
    };
    let vote_id = match edgevote_shared::b64::decode_array::<32>("vote_id", &vote_id) {
        Ok(bytes) => Digest32(bytes),
        Err(e) => return private(error(StatusCode::BAD_REQUEST, e.code(), e)),
    };
    let Some(voter) = query_param(query.as_deref(), "voter") else {
        return private(error(
            StatusCode::BAD_REQUEST,
            "invalid_field",
            "the voter query parameter (the token's sub) is required",
        ));
    };
    if let Err(e) = edgevote_shared::validate::check_id("voter", voter) {
        return private(error(StatusCode::BAD_REQUEST, e.code(), e));
    }
    let ballots = match c.store.voter_ballots(&election, voter).await {
        Ok(ballots) => ballots,
        Err(e) => {
            return private(error(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                e,
            ));
        }
    };
    let Some(ballot) = ballots.iter().find(|b| b.vote_id == vote_id) else {
        // One answer whether the voter has no ballot or only others: it must not tell a
        // coercer without the vote id that the voter voted.
        return private(error(
            StatusCode::NOT_FOUND,
            "vote_not_found",
            "no ballot with this vote id is stored for this voter in this region",
        ));
    };
    let mut body = json!({
        "election": election,
        "vote_id": vote_id,
        "stored": true,
        "received_at_ms": ballot.received_at_ms,
        "edge": ballot.edge,
        "region": ballot.region,
    });
    let reveal = match h.options.reveal_counted {
        RevealCounted::Never => false,
        RevealCounted::FirstVoteWins => rules.policy == Policy::FirstVoteWins,
        RevealCounted::Always => true,
    };
    if reveal {
        let counted = edgevote_store::counting::counted(rules.policy, &ballots)
            .is_some_and(|b| b.vote_id == vote_id);
        body["counted"] = counted.into();
    }
    private(axum::Json(body).into_response())
}

/// Whether `headers` present the auditor token. Both sides are hashed first, so the
/// comparison takes the same time whatever the presented value's length or content.
fn is_auditor(expected: &str, headers: &HeaderMap) -> bool {
    let Some(presented) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    let (a, b) = (
        Digest32::of(presented.trim().as_bytes()),
        Digest32::of(expected.as_bytes()),
    );
    std::hint::black_box(a.0.iter().zip(&b.0).fold(0u8, |acc, (x, y)| acc | (x ^ y))) == 0
}

/// A voter's stored ballots (vote ids and edge timestamps, never choices) and which one counts.
/// It reveals re-voting, so only the auditor gets it (see the module doc).
async fn voter_ballots(
    State(h): State<Arc<Http>>,
    Path((election, voter)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let Some(token) = &h.options.auditor_token else {
        return private(error(
            StatusCode::NOT_FOUND,
            "not_found",
            "no voter listing on this collector",
        ));
    };
    if !is_auditor(token, &headers) {
        let mut response = private(error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid auditor bearer token is required",
        ));
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return response;
    }
    let c = &h.collector;
    let Some(rules) = c.checker.rules(&election) else {
        return error(StatusCode::NOT_FOUND, "unknown_election", election);
    };
    match c.store.voter_ballots(&election, &voter).await {
        Ok(ballots) => {
            let counted =
                edgevote_store::counting::counted(rules.policy, &ballots).map(|b| b.vote_id);
            let list: Vec<_> = ballots
                .iter()
                .map(|b| json!({"vote_id": b.vote_id, "received_at_ms": b.received_at_ms, "region": b.region}))
                .collect();
            private(
                axum::Json(
                    json!({"election": election, "voter": voter, "ballots": list, "counted": counted}),
                )
                .into_response(),
            )
        }
        Err(e) => private(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            e,
        )),
    }
}

/// The results page: live (provisional) counts of this region and the exact final tally over
/// every replicated ballot, refreshed every 2 seconds by a small script reading the two JSON
/// endpoints above.
async fn results_page(State(h): State<Arc<Http>>, Path(election): Path<String>) -> Response {
    let c = &h.collector;
    if c.checker.rules(&election).is_none() {
        return error(StatusCode::NOT_FOUND, "unknown_election", election);
    }
    let page = RESULTS_PAGE
        .replace("__ELECTION__", &election)
        .replace("__REGION__", &c.region);
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response()
}

const RESULTS_PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>edgevote results: __ELECTION__</title>
<style>
body{font-family:system-ui,sans-serif;margin:2rem;max-width:48rem}
table{border-collapse:collapse;margin:.5rem 0 1.5rem}td,th{border:1px solid #ccc;padding:.3rem .8rem;text-align:right}
th:first-child,td:first-child{text-align:left}.note{color:#555;font-size:.9rem}
</style></head><body>
<h1>Results: <span id="election">__ELECTION__</span></h1>
<p class="note">Served by the collector of region <b>__REGION__</b>. Live counts are provisional (each
region counts what its own collector saw); the final tally is recomputed from every stored ballot
and is exact.</p>
<h2>Final tally (exact)</h2><table id="final"><tr><th>choice</th><th>votes</th></tr></table>
<p id="final-summary" class="note"></p>
<h2>Live (provisional), by region</h2><table id="live"><tr><th>region</th><th>choice</th><th>votes</th></tr></table>
<p id="updated" class="note">loading…</p>
<script>
const election = document.getElementById("election").textContent;
function rows(table, list) {
  while (table.rows.length > 1) table.deleteRow(1);
  for (const cells of list) {
    const tr = table.insertRow();
    for (const c of cells) tr.insertCell().textContent = c;
  }
}
async function refresh() {
  try {
    const [fin, live] = await Promise.all([
      fetch(`/v1/results/${election}/final`).then(r => r.json()),
      fetch(`/v1/results/${election}`).then(r => r.json()),
    ]);
    rows(document.getElementById("final"), Object.entries(fin.counts || {}));
    document.getElementById("final-summary").textContent =
      `${fin.voters} voters counted from ${fin.ballots} stored ballots`;
    const liveRows = [];
    for (const [region, counts] of Object.entries(live.regions || {}))
      for (const [choice, n] of Object.entries(counts)) liveRows.push([region, choice, n]);
    rows(document.getElementById("live"), liveRows);
    document.getElementById("updated").textContent = "updated " + new Date().toISOString();
  } catch (e) {
    document.getElementById("updated").textContent = "results unavailable: " + e;
  }
}
refresh();
setInterval(refresh, 2000);
</script></body></html>
"#;

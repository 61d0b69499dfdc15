//! The collector's HTTP endpoints: `/metrics` (Prometheus), `/healthz`, and results:
//! `/v1/results/{election}` (live, provisional) and `/v1/results/{election}/final` (exact,
//! recomputed from the stored ballots).

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::service::Collector;

/// The router for one collector.
pub fn router(collector: Arc<Collector>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/v1/results/{election}", get(live_results))
        .route("/v1/results/{election}/final", get(final_results))
        .route("/results/{election}", get(results_page))
        .route(
            "/v1/elections/{election}/voters/{voter}/ballots",
            get(voter_ballots),
        )
        .with_state(collector)
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

async fn metrics(State(c): State<Arc<Collector>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        c.metrics.render(&c.region),
    )
        .into_response()
}

async fn healthz(State(c): State<Arc<Collector>>) -> Response {
    match c.queue.stats().await {
        Ok(_) => (StatusCode::OK, "ok\n").into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("queue unreachable: {e}\n"),
        )
            .into_response(),
    }
}

fn error(status: StatusCode, code: &str, detail: String) -> Response {
    (status, axum::Json(json!({"error": code, "detail": detail}))).into_response()
}

async fn live_results(State(c): State<Arc<Collector>>, Path(election): Path<String>) -> Response {
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
        Err(e) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            e.to_string(),
        ),
    }
}

async fn final_results(State(c): State<Arc<Collector>>, Path(election): Path<String>) -> Response {
    let Some(rules) = c.checker.rules(&election) else {
        return error(StatusCode::NOT_FOUND, "unknown_election", election);
    };
    match edgevote_store::final_tally(c.store.as_ref(), &rules).await {
        Ok(tally) => axum::Json(tally).into_response(),
        Err(e) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            e.to_string(),
        ),
    }
}

/// A voter's stored ballots (vote ids and edge timestamps, never choices) and which one counts:
/// how a voter (or the load generator) checks that a receipt's vote was stored and counted.
async fn voter_ballots(
    State(c): State<Arc<Collector>>,
    Path((election, voter)): Path<(String, String)>,
) -> Response {
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
            axum::Json(
                json!({"election": election, "voter": voter, "ballots": list, "counted": counted}),
            )
            .into_response()
        }
        Err(e) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            e.to_string(),
        ),
    }
}

/// The results page: live (provisional) counts of this region and the exact final tally over
/// every replicated ballot, refreshed every 2 seconds by a small script reading the two JSON
/// endpoints above.
async fn results_page(State(c): State<Arc<Collector>>, Path(election): Path<String>) -> Response {
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

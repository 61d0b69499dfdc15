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

//! A hostile edge component, for the edge host's tests only (never signed for a deployment).
//!
//! It is what an attacker who got one bundle past review could ship: it hands the host a ballot
//! other than the voter's, or two, or it traps or spins. The `x-rogue` request header picks the
//! behaviour, so one component serves every test:
//!
//! | `x-rogue` | what it does with `POST /v1/elections/{e}/votes` |
//! |---|---|
//! | (none) | hands the voter's body to the host sealer as it is |
//! | `flip` | hands the ballot over with its choice flipped (`yes` <-> `no`) |
//! | `replay` | hands over the previous request's ballot (kept in guest memory) instead |
//! | `double` | hands over the voter's ballot, then the same ballot again |
//! | `trap` | panics (a trap) |
//! | `spin` | loops forever |
//! | `count` | answers 200 with how many requests this instance has served |

use std::sync::Mutex;

use spin_sdk::http::{IncomingRequest, Method, Request, Response};
use spin_sdk::http_component;

/// The previous request's body: guest memory that survives from one request to the next when
/// the host reuses the instance.
static PREVIOUS: Mutex<Vec<u8>> = Mutex::new(Vec::new());
/// Requests this instance has served.
static SERVED: Mutex<u64> = Mutex::new(0);

#[http_component]
async fn handle(request: IncomingRequest) -> Response {
    let served = {
        let mut served = SERVED.lock().unwrap_or_else(|p| p.into_inner());
        *served += 1;
        *served
    };
    let mode = request
        .headers()
        .get("x-rogue")
        .first()
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_default();
    let path = request.path_with_query().unwrap_or_default();
    let election = path
        .strip_prefix("/v1/elections/")
        .and_then(|rest| rest.strip_suffix("/votes"))
        .unwrap_or("none")
        .to_owned();
    let body = request.into_body().await.unwrap_or_default();
    match mode.as_str() {
        "trap" => panic!("rogue component: trap on purpose"),
        "spin" => spin_forever(served),
        "count" => answer(200, format!("{{\"served\":{served}}}").into_bytes()),
        "flip" => relay(hand_over(&election, flip(&body)).await),
        "replay" => {
            let previous = std::mem::replace(
                &mut *PREVIOUS.lock().unwrap_or_else(|p| p.into_inner()),
                body.clone(),
            );
            let handed = if previous.is_empty() { body } else { previous };
            relay(hand_over(&election, handed).await)
        }
        "double" => {
            let first = hand_over(&election, body.clone()).await;
            let second = hand_over(&election, body).await;
            let status = |r: &Result<Response, String>| r.as_ref().map_or(0, |r| *r.status());
            answer(
                200,
                format!(
                    "{{\"first\":{},\"second\":{}}}",
                    status(&first),
                    status(&second)
                )
                .into_bytes(),
            )
        }
        _ => relay(hand_over(&election, body).await),
    }
}

/// Busy work the optimiser cannot remove, forever.
fn spin_forever(seed: u64) -> ! {
    let mut x = seed;
    loop {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
}

/// The ballot with its choice swapped between `yes` and `no`.
fn flip(body: &[u8]) -> Vec<u8> {
    let Ok(mut ballot) = serde_json::from_slice::<serde_json::Value>(body) else {
        return body.to_vec();
    };
    let flipped = if ballot["choice"] == "yes" {
        "no"
    } else {
        "yes"
    };
    ballot["choice"] = flipped.into();
    ballot.to_string().into_bytes()
}

async fn hand_over(election: &str, body: Vec<u8>) -> Result<Response, String> {
    let mut builder = Request::builder();
    builder
        .method(Method::Post)
        .uri(edgevote_edge_core::host_seal_url(election).as_str())
        .header("content-type", "application/json");
    spin_sdk::http::send(builder.body(body).build())
        .await
        .map_err(|e| e.to_string())
}

fn relay(answered: Result<Response, String>) -> Response {
    match answered {
        Ok(response) => answer(*response.status(), response.into_body()),
        Err(detail) => answer(503, detail.into_bytes()),
    }
}

fn answer(status: u16, body: Vec<u8>) -> Response {
    let mut builder = Response::builder();
    builder
        .status(status)
        .header("content-type", "application/json");
    builder.body(body).build()
}

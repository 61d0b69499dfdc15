//! Bundle deploy and rollback through the admin endpoint: refusals change nothing, and a deploy
//! then a rollback in the middle of a load drop no request.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use edgevote_shared::{Digest32, Receipt, Role, decode_unverified};

use crate::fixture::{Deployment, Running, component, now_secs};
use crate::http::{Reply, ballot, request_with, vote};

const TOKEN: &str = "test-admin-token-0123456789abcdef0123456789";

/// The component with a custom section appended: still valid, different digest.
fn variant(wasm: &[u8], tag: &str) -> Vec<u8> {
    let name = b"edgevote-test";
    let mut section = vec![name.len() as u8];
    section.extend_from_slice(name);
    section.extend_from_slice(tag.as_bytes());
    let mut out = wasm.to_vec();
    out.push(0); // custom section id
    out.push(section.len() as u8); // LEB128, below 128
    out.extend(section);
    out
}

async fn start(d: &Deployment) -> Running {
    std::fs::write(d.path("admin.token"), TOKEN).unwrap();
    let mut config = d.config(false);
    config.admin.token_file = Some(d.path("admin.token"));
    config.admin.bundle_dir = Some(d.path("bundles"));
    // One client address sends the whole load; the rate limits have their own test.
    config.rate_limit.enabled = false;
    Running::start_with(d, config).await
}

async fn admin(edge: &Running, method: &str, path: &str, token: &str, body: &[u8]) -> Reply {
    let auth = format!("Bearer {token}");
    request_with(edge.addr, method, path, &[("Authorization", &auth)], body).await
}

/// A deploy request for `wasm` with the manifest `signed`.
fn deploy_body(wasm: &[u8], signed: &str) -> Vec<u8> {
    serde_json::json!({
        "wasm_base64": edgevote_shared::b64::encode_std(wasm),
        "manifest": signed,
    })
    .to_string()
    .into_bytes()
}

/// Signs `wasm` with a key of `role` and returns the signed manifest.
fn signed_for(d: &Deployment, wasm: &[u8], role: Role) -> String {
    d.sign_bundle(wasm, role);
    std::fs::read_to_string(d.path("bundle.jws")).unwrap()
}

fn active_digest(edge: &Running) -> Digest32 {
    edge.host.bundles.active().manifest.wasm_sha256
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_deploys_change_nothing() {
    let d = Deployment::new();
    let edge = start(&d).await;
    let original = active_digest(&edge);
    let a = std::fs::read(component()).unwrap();
    let b = variant(&a, "b");
    let b_signed = signed_for(&d, &b, Role::Ops);
    let cases = [
        (
            "no token",
            admin(
                &edge,
                "POST",
                "/admin/v1/bundle",
                "",
                &deploy_body(&b, &b_signed),
            )
            .await,
            401,
            "unauthorized",
        ),
        (
            "wrong token",
            admin(
                &edge,
                "POST",
                "/admin/v1/bundle",
                "nope-nope-nope-nope-nope-nope-nope",
                &deploy_body(&b, &b_signed),
            )
            .await,
            401,
            "unauthorized",
        ),
        (
            "tampered component",
            admin(
                &edge,
                "POST",
                "/admin/v1/bundle",
                TOKEN,
                &deploy_body(&variant(&a, "c"), &b_signed),
            )
            .await,
            422,
            "bundle_refused",
        ),
        (
            "manifest signed by a non-ops key",
            admin(
                &edge,
                "POST",
                "/admin/v1/bundle",
                TOKEN,
                &deploy_body(&b, &signed_for(&d, &b, Role::Authority)),
            )
            .await,
            422,
            "bundle_refused",
        ),
        (
            "unsigned manifest",
            admin(
                &edge,
                "POST",
                "/admin/v1/bundle",
                TOKEN,
                &deploy_body(&b, "not-a-jws"),
            )
            .await,
            422,
            "bundle_refused",
        ),
        (
            "not a component",
            admin(
                &edge,
                "POST",
                "/admin/v1/bundle",
                TOKEN,
                &deploy_body(b"\0asm junk", &signed_for(&d, b"\0asm junk", Role::Ops)),
            )
            .await,
            422,
            "bundle_refused",
        ),
        (
            "malformed request",
            admin(&edge, "POST", "/admin/v1/bundle", TOKEN, b"{").await,
            400,
            "malformed_json",
        ),
        (
            "rollback with nothing to roll back to",
            admin(&edge, "POST", "/admin/v1/bundle/rollback", TOKEN, b"").await,
            409,
            "no_previous_bundle",
        ),
    ];
    for (name, reply, status, code) in cases {
        assert_eq!(reply.status, status, "{name}: {}", reply.body);
        assert_eq!(reply.json()["error"], code, "{name}");
    }
    assert_eq!(active_digest(&edge), original, "nothing changed");
    let status = admin(&edge, "GET", "/admin/v1/bundle", TOKEN, b"").await;
    assert_eq!(status.json()["active"]["wasm_sha256"], original.to_hex());
    assert!(status.json()["previous"].is_null());
    assert_eq!(edge.host.metrics.bundle_refusals.load(Ordering::Relaxed), 4);
    edge.shutdown().await;
}

/// What the load saw: every answer's status and the bundle its receipt names.
type Answers = Arc<std::sync::Mutex<Vec<(u16, Option<Digest32>)>>>;

fn spawn_load(
    edge: &Running,
    d: &Deployment,
    stop: Arc<AtomicBool>,
    answers: Answers,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..6)
        .map(|client| {
            let (addr, stop, answers) = (edge.addr, Arc::clone(&stop), Arc::clone(&answers));
            let tokens: Vec<String> = (0..400)
                .map(|i| d.token("open", &format!("c{client}-{i}"), now_secs() + 600))
                .collect();
            tokio::spawn(async move {
                for token in tokens {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let reply = vote(addr, "open", &ballot("open", &token, "yes", 1)).await;
                    let digest = (reply.status == 202)
                        .then(|| {
                            decode_unverified::<Receipt>(reply.json()["receipt"].as_str().unwrap())
                                .unwrap()
                                .bundle_sha256
                        })
                        .flatten();
                    answers.lock().unwrap().push((reply.status, digest));
                }
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_then_rollback_under_load_drops_no_request() {
    let d = Deployment::new();
    let edge = start(&d).await;
    let a = active_digest(&edge);
    let b_wasm = variant(&std::fs::read(component()).unwrap(), "b");
    let b = Digest32::of(&b_wasm);
    let b_signed = signed_for(&d, &b_wasm, Role::Ops);
    let (stop, answers): (Arc<AtomicBool>, Answers) = Default::default();
    let clients = spawn_load(&edge, &d, Arc::clone(&stop), Arc::clone(&answers));
    tokio::time::sleep(Duration::from_millis(400)).await;
    let deployed = admin(
        &edge,
        "POST",
        "/admin/v1/bundle",
        TOKEN,
        &deploy_body(&b_wasm, &b_signed),
    )
    .await;
    assert_eq!(deployed.status, 200, "{}", deployed.body);
    assert_eq!(deployed.json()["active"]["wasm_sha256"], b.to_hex());
    assert_eq!(deployed.json()["previous"]["wasm_sha256"], a.to_hex());
    tokio::time::sleep(Duration::from_millis(600)).await;
    let rolled = admin(&edge, "POST", "/admin/v1/bundle/rollback", TOKEN, b"").await;
    assert_eq!(rolled.status, 200, "{}", rolled.body);
    assert_eq!(rolled.json()["active"]["wasm_sha256"], a.to_hex());
    tokio::time::sleep(Duration::from_millis(400)).await;
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }
    let answers = answers.lock().unwrap().clone();
    let failed: Vec<u16> = answers
        .iter()
        .map(|(s, _)| *s)
        .filter(|s| *s != 202)
        .collect();
    let on = |digest: Digest32| answers.iter().filter(|(_, d)| *d == Some(digest)).count();
    println!(
        "deploy and rollback under load: {} votes, {} on A, {} on B, {} failed",
        answers.len(),
        on(a),
        on(b),
        failed.len()
    );
    assert!(
        failed.is_empty(),
        "{} dropped requests, first {:?}",
        failed.len(),
        failed.first()
    );
    assert!(
        on(a) > 0 && on(b) > 0,
        "receipts name both bundles: A {} B {}",
        on(a),
        on(b)
    );
    assert_eq!(
        edge.queue.votes().await.len(),
        answers.len(),
        "every acknowledged vote is queued"
    );
    assert_eq!(
        std::fs::read(d.path("bundles/active.wasm")).unwrap(),
        std::fs::read(component()).unwrap()
    );
    assert_eq!(
        std::fs::read(d.path("bundles/previous.wasm")).unwrap(),
        b_wasm
    );
    edge.shutdown().await;
}

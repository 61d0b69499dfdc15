//! Bundle deploy and rollback through the admin endpoint: refusals change nothing, and a deploy
//! then a rollback in the middle of a load drop no request.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use edgevote_shared::{Digest32, Receipt, Role, decode_unverified};

use edgevote_edge_host::HostConfig;
use edgevote_edge_host::bundle_dir::{self, Pair};
use edgevote_edge_host::bundles::startup_bundle;

use crate::fixture::{Deployment, Running, component, now_secs};
use crate::http::{Reply, ballot, request_with, vote};

const TOKEN: &str = "test-admin-token-0123456789abcdef0123456789";

/// The component with a custom section appended: still valid, different digest.
pub(crate) fn variant(wasm: &[u8], tag: &str) -> Vec<u8> {
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

/// The configuration of an edge with the admin endpoint and a bundle directory.
fn admin_config(d: &Deployment) -> HostConfig {
    std::fs::write(d.path("admin.token"), TOKEN).unwrap();
    let mut config = d.config(false);
    config.admin.token_file = Some(d.path("admin.token"));
    config.admin.bundle_dir = Some(d.path("bundles"));
    // One client address sends the whole load; the rate limits have their own test.
    config.rate_limit.enabled = false;
    config
}

async fn start(d: &Deployment) -> Running {
    Running::start_with(d, admin_config(d)).await
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

/// [`deploy_body`] that allows a downgrade.
fn downgrade_body(wasm: &[u8], signed: &str) -> Vec<u8> {
    serde_json::json!({
        "wasm_base64": edgevote_shared::b64::encode_std(wasm),
        "manifest": signed,
        "allow_downgrade": true,
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
    let on_disk = bundle_dir::read(&d.path("bundles")).unwrap().unwrap();
    assert_eq!(on_disk.wasm, std::fs::read(component()).unwrap());
    assert!(
        on_disk.pinned,
        "a rollback is an operator's choice a restart keeps"
    );
    edge.shutdown().await;
}

/// An attacker holding the admin token and an old, validly signed bundle (or an operator's
/// slip) cannot bring an older release back: a lower serial than the active bundle's is
/// refused before it is compiled and changes nothing, in memory and on disk. Only an explicit
/// `allow_downgrade` deploys it; rolling back to the kept previous bundle stays allowed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downgrade_is_refused_and_changes_nothing_unless_allowed() {
    let d = Deployment::new();
    let edge = start(&d).await;
    let ops = d.key(Role::Ops);
    let a_wasm = std::fs::read(component()).unwrap();
    let a_signed = std::fs::read_to_string(d.path("bundle.jws")).unwrap(); // serial 1
    let (b_wasm, c_wasm) = (variant(&a_wasm, "b"), variant(&a_wasm, "c"));
    let b_signed = d.bundle_manifest(&b_wasm, &ops, 3);
    let c_signed = d.bundle_manifest(&c_wasm, &ops, 2);
    let deploy = |body: Vec<u8>| {
        let edge = &edge;
        async move { admin(edge, "POST", "/admin/v1/bundle", TOKEN, &body).await }
    };
    let up = deploy(deploy_body(&b_wasm, &b_signed)).await;
    assert_eq!(up.status, 200, "{}", up.body);
    assert_eq!(up.json()["active"]["serial"], 3);
    let on_disk = || bundle_dir::read(&d.path("bundles")).unwrap().unwrap();
    let before = on_disk();
    for (name, wasm, signed) in [
        ("a bundle signed for serial 2", &c_wasm, &c_signed),
        ("the original bundle, serial 1", &a_wasm, &a_signed),
    ] {
        let refused = deploy(deploy_body(wasm, signed)).await;
        assert_eq!(refused.status, 409, "{name}: {}", refused.body);
        assert_eq!(refused.json()["error"], "bundle_downgrade", "{name}");
        assert_eq!(active_digest(&edge), Digest32::of(&b_wasm), "{name}");
        let status = admin(&edge, "GET", "/admin/v1/bundle", TOKEN, b"").await;
        assert_eq!(
            status.json()["previous"]["wasm_sha256"],
            Digest32::of(&a_wasm).to_hex()
        );
        let after = on_disk();
        assert_eq!(
            (after.wasm, after.manifest),
            (before.wasm.clone(), before.manifest.clone())
        );
    }
    assert_eq!(edge.host.metrics.bundle_refusals.load(Ordering::Relaxed), 2);

    let allowed = deploy(downgrade_body(&c_wasm, &c_signed)).await;
    assert_eq!(allowed.status, 200, "{}", allowed.body);
    assert_eq!(active_digest(&edge), Digest32::of(&c_wasm));
    assert!(
        on_disk().pinned,
        "an allowed downgrade is an operator's choice"
    );
    // Rollback is the other explicit way back, to a lower serial or a higher one.
    for expected in [&b_wasm, &c_wasm] {
        let rolled = admin(&edge, "POST", "/admin/v1/bundle/rollback", TOKEN, b"").await;
        assert_eq!(rolled.status, 200, "{}", rolled.body);
        assert_eq!(active_digest(&edge), Digest32::of(expected));
    }
    // Redeploying the active bundle, or a higher serial, needs no flag.
    let again = deploy(deploy_body(&c_wasm, &c_signed)).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert!(!on_disk().pinned);
    edge.shutdown().await;
}

/// A manifest signed by a key that IS in the key set but may not sign bundles (an edge key, an
/// authority key) is refused at deploy with its own code, not only as an unknown key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_signed_by_a_key_of_another_role_is_refused_with_key_role_mismatch() {
    let d = Deployment::new();
    let edge = start(&d).await;
    let original = active_digest(&edge);
    let b = variant(&std::fs::read(component()).unwrap(), "b");
    for role in [Role::Edge, Role::Authority] {
        let signed = d.bundle_manifest(&b, &d.key(role), 9);
        let reply = admin(
            &edge,
            "POST",
            "/admin/v1/bundle",
            TOKEN,
            &deploy_body(&b, &signed),
        )
        .await;
        assert_eq!(reply.status, 422, "{role:?}: {}", reply.body);
        assert_eq!(reply.json()["error"], "bundle_refused", "{role:?}");
        assert_eq!(
            reply.json()["code"],
            "key_role_mismatch",
            "{role:?}: {}",
            reply.body
        );
    }
    assert_eq!(active_digest(&edge), original, "nothing changed");
    edge.shutdown().await;
}

/// Which bundle a restart comes back on: the deployed one, unless the configured one is newer
/// (configuration management rolled a release out), unless an operator chose the deployed one
/// explicitly (rollback, allowed downgrade).
#[test]
fn restart_comes_back_on_the_newer_bundle_or_the_one_an_operator_chose() {
    let d = Deployment::new();
    let mut config = admin_config(&d);
    let keys = d.keyset();
    let ops = d.key(Role::Ops);
    let a = std::fs::read(component()).unwrap();
    let (b, c) = (variant(&a, "b"), variant(&a, "c"));
    let (b_signed, c_signed) = (
        d.bundle_manifest(&b, &ops, 3),
        d.bundle_manifest(&c, &ops, 5),
    );
    std::fs::write(d.path("c.wasm"), &c).unwrap();
    std::fs::write(d.path("c.jws"), &c_signed).unwrap();
    let a_signed = std::fs::read_to_string(d.path("bundle.jws")).unwrap();
    let dir = d.path("bundles");
    let starts_on =
        |config: &HostConfig| startup_bundle(config, &keys).unwrap().manifest.wasm_sha256;
    let (deployed, previous) = (
        Pair {
            wasm: &b,
            manifest: &b_signed,
        },
        Pair {
            wasm: &a,
            manifest: &a_signed,
        },
    );
    bundle_dir::write(&dir, deployed, Some(previous), false).unwrap();
    assert_eq!(
        starts_on(&config),
        Digest32::of(&b),
        "deployed 3 over configured 1"
    );
    config.component_path = d.path("c.wasm");
    config.bundle_manifest_path = d.path("c.jws");
    assert_eq!(
        starts_on(&config),
        Digest32::of(&c),
        "configured 5 over deployed 3"
    );
    bundle_dir::write(&dir, deployed, Some(previous), true).unwrap();
    assert_eq!(starts_on(&config), Digest32::of(&b), "pinned by a rollback");
}

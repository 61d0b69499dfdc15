//! The host refuses a bundle it cannot verify, and starts on a whole bundle after any crash.

use edgevote_edge_host::bundle_dir::{self, Pair};
use edgevote_edge_host::bundles::startup_bundle;
use edgevote_edge_host::{HostConfig, StartError};
use edgevote_shared::{Digest32, Role};

use crate::deploy::variant;
use crate::fixture::{Deployment, Running, SwitchableQueue, component};

async fn start_error(d: &Deployment) -> String {
    let queue = SwitchableQueue::open(&d.path("queue.redb"));
    match edgevote_edge_host::start_with_queue(&d.config(false), queue).await {
        Ok(_) => panic!("bundle accepted"),
        Err(e @ StartError::Bundle { .. }) => e.to_string(),
        Err(e) => panic!("wrong error: {e}"),
    }
}

#[tokio::test]
async fn tampered_component_is_refused() {
    let d = Deployment::new();
    let mut wasm = std::fs::read(component()).unwrap();
    let last = wasm.len() - 1;
    wasm[last] ^= 1;
    let tampered = d.path("tampered.wasm");
    std::fs::write(&tampered, &wasm).unwrap();
    let mut config = d.config(false);
    config.component_path = tampered;
    let queue = SwitchableQueue::open(&d.path("queue.redb"));
    let err = edgevote_edge_host::start_with_queue(&config, queue)
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("bundle_mismatch"), "{err}");
}

#[tokio::test]
async fn bundle_signed_by_a_non_ops_key_is_refused() {
    let d = Deployment::new();
    d.sign_bundle(&std::fs::read(component()).unwrap(), Role::Edge);
    let err = start_error(&d).await;
    assert!(
        err.contains("unknown_key_id") || err.contains("key_role_mismatch"),
        "{err}"
    );
}

#[tokio::test]
async fn unsigned_bundle_is_refused() {
    let d = Deployment::new();
    std::fs::write(d.path("bundle.jws"), "not signed").unwrap();
    let err = start_error(&d).await;
    assert!(err.contains("malformed_jws"), "{err}");
}

/// A manifest signed by a key that IS in the key set, with a role that may not sign bundles,
/// is refused at startup with key_role_mismatch (not only keys outside the set).
#[tokio::test]
async fn bundle_signed_by_a_key_of_the_set_with_another_role_is_refused_with_key_role_mismatch() {
    let d = Deployment::new();
    let wasm = std::fs::read(component()).unwrap();
    for role in [Role::Edge, Role::Authority] {
        std::fs::write(
            d.path("bundle.jws"),
            d.bundle_manifest(&wasm, &d.key(role), 1),
        )
        .unwrap();
        let queue = SwitchableQueue::open(&d.path("queue.redb"));
        match edgevote_edge_host::start_with_queue(&d.config(false), queue).await {
            Err(StartError::Bundle { code, detail, .. }) => {
                assert_eq!(code, "key_role_mismatch", "{role:?}: {detail}");
            }
            Err(e) => panic!("{role:?}: wrong error: {e}"),
            Ok(_) => panic!("{role:?}: bundle accepted"),
        }
    }
}

/// The configuration of a host with a bundle directory, and the two bundles of a deploy: A
/// (the configured component, serial 1) and B (another component, serial 2).
fn deployed_setup(d: &Deployment) -> (HostConfig, Vec<u8>, String, Vec<u8>, String) {
    let mut config = d.config(false);
    config.admin.bundle_dir = Some(d.path("bundles"));
    let a = std::fs::read(component()).unwrap();
    let a_signed = std::fs::read_to_string(d.path("bundle.jws")).unwrap();
    let b = variant(&a, "b");
    let b_signed = d.bundle_manifest(&b, &d.key(Role::Ops), 2);
    (config, a, a_signed, b, b_signed)
}

/// A crash at any point of writing a deploy to the bundle directory (each file system
/// operation in turn, a file write cut in half) restarts the host on the old bundle or on the
/// new one, never on a mixed pair and never refusing to start; once the new one is seen, it
/// stays.
#[test]
fn a_crash_anywhere_in_a_deploy_write_restarts_on_the_old_or_the_new_bundle() {
    let d = Deployment::new();
    let (config, a, a_signed, b, b_signed) = deployed_setup(&d);
    let keys = d.keyset();
    let dir = d.path("bundles");
    let (old, new) = (
        Pair {
            wasm: &a,
            manifest: &a_signed,
        },
        Pair {
            wasm: &b,
            manifest: &b_signed,
        },
    );
    let mut first_new = None;
    for ops in 0.. {
        let _ = std::fs::remove_dir_all(&dir);
        bundle_dir::write(&dir, old, None, false).unwrap();
        let done = bundle_dir::write_crashing_after(&dir, new, Some(old), false, ops).unwrap();
        let start = startup_bundle(&config, &keys)
            .unwrap_or_else(|e| panic!("crash after {ops} operations: start refused: {e}"));
        let on = start.manifest.wasm_sha256;
        if on == Digest32::of(&b) {
            first_new.get_or_insert(ops);
        } else {
            assert_eq!(on, Digest32::of(&a), "after {ops} operations");
            assert!(
                first_new.is_none(),
                "back on the old bundle after {ops} operations"
            );
        }
        if done {
            assert!(first_new.is_some(), "the completed write switched");
            println!("deploy write: {ops} operations, the switch at operation {first_new:?}");
            break;
        }
    }
}

/// Leftovers of a crashed write (a half-written bundle in a temp directory, a renamed but
/// never activated bundle) are ignored: the host starts on the active bundle.
#[tokio::test]
async fn leftover_temp_and_unactivated_bundles_are_ignored_at_startup() {
    let d = Deployment::new();
    let (config, a, a_signed, b, b_signed) = deployed_setup(&d);
    let dir = d.path("bundles");
    let old = Pair {
        wasm: &a,
        manifest: &a_signed,
    };
    bundle_dir::write(&dir, old, None, false).unwrap();
    let new = Pair {
        wasm: &b,
        manifest: &b_signed,
    };
    let staged = dir.join(new.dir_name());
    std::fs::create_dir_all(&staged).unwrap();
    std::fs::write(staged.join(bundle_dir::COMPONENT), &b).unwrap();
    std::fs::write(staged.join(bundle_dir::MANIFEST), &b_signed).unwrap();
    let tmp = dir.join(".tmp-0123456789abcdef0123456789abcdef");
    std::fs::create_dir_all(&tmp).unwrap();
    std::fs::write(tmp.join(bundle_dir::COMPONENT), &b[..b.len() / 2]).unwrap();
    let edge = Running::start_with(&d, config).await;
    assert_eq!(
        edge.host.bundles.active().manifest.wasm_sha256,
        Digest32::of(&a)
    );
    edge.shutdown().await;
}

/// A deployed pair that does not belong together (the component of one bundle next to the
/// manifest of another, as a crash between two renames left it before the pair was written
/// as one directory, or as tampering leaves it) refuses the start clearly, naming the file.
#[tokio::test]
async fn a_mismatched_deployed_pair_refuses_the_start() {
    let d = Deployment::new();
    let (config, a, a_signed, _, b_signed) = deployed_setup(&d);
    let dir = d.path("bundles");
    let pair = Pair {
        wasm: &a,
        manifest: &a_signed,
    };
    bundle_dir::write(&dir, pair, None, false).unwrap();
    std::fs::write(
        dir.join(pair.dir_name()).join(bundle_dir::MANIFEST),
        &b_signed,
    )
    .unwrap();
    let queue = SwitchableQueue::open(&d.path("queue.redb"));
    match edgevote_edge_host::start_with_queue(&config, queue).await {
        Err(StartError::Bundle { code, path, .. }) => {
            assert_eq!(code, "bundle_mismatch");
            assert!(path.contains(&pair.dir_name()), "{path}");
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a mismatched pair was started"),
    }
    // A pointer to a bundle that is not there is refused as clearly.
    std::fs::remove_dir_all(dir.join(pair.dir_name())).unwrap();
    let queue = SwitchableQueue::open(&d.path("queue2.redb"));
    let err = edgevote_edge_host::start_with_queue(&config, queue)
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("bundle directory"), "{err}");
}

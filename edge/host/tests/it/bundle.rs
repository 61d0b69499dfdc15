//! The host refuses a bundle it cannot verify.

use edgevote_edge_host::StartError;
use edgevote_shared::Role;

use crate::fixture::{Deployment, SwitchableQueue, component};

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

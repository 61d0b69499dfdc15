//! Key generation, rotation with archive, active key selection.

use edgevote_shared::Role;
use edgevote_signer::{KeyStore, SignerError, load_keyset};

#[test]
fn generate_writes_public_set_and_private_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = KeyStore::open_or_create(dir.path()).unwrap();
    let jwk = store.generate(Role::Authority, 1000).unwrap();
    let set = load_keyset(&store.keyset_path()).unwrap();
    assert_eq!(set.len(), 1);
    assert_eq!(set.get(&jwk.kid).unwrap().0.valid_from, 1000);
    let identity = store.signing_identity(Role::Authority, None).unwrap();
    assert_eq!(identity.kid(), jwk.kid);
    let text = std::fs::read_to_string(store.keyset_path()).unwrap();
    assert!(
        !text.contains("\"d\""),
        "public key set must not hold private keys"
    );
}

#[test]
fn rotation_archives_the_old_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = KeyStore::open_or_create(dir.path()).unwrap();
    let old = store.generate_edge("edge-1", "r1", 1000).unwrap();
    let new = store.rotate(&old.kid, 2000, 0).unwrap();
    let set = store.keyset().unwrap();
    assert_eq!(set.len(), 2);
    assert_eq!(set.get(&old.kid).unwrap().0.valid_until, Some(2000));
    assert_eq!(set.get(&new.kid).unwrap().0.valid_from, 2000);
    // The successor speaks for the same edge, and only for it.
    assert_eq!(
        set.get(&new.kid).unwrap().0.binding(),
        Some(("edge-1", "r1"))
    );
    assert_eq!(store.edge_identity("edge-1", "r1").unwrap().kid(), new.kid);
    assert_eq!(store.active_kid(Role::Edge, None).unwrap(), new.kid);
    assert!(matches!(
        store.rotate(&old.kid, 3000, 0),
        Err(SignerError::AlreadyRetired(_))
    ));
}

#[test]
fn rotation_with_grace_keeps_the_old_key_valid_and_refreshes_the_current_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = KeyStore::open_or_create(dir.path()).unwrap();
    let old = store.generate_edge("edge-1", "r1", 1000).unwrap();
    let current = store.write_current_edge_key("edge-1", "r1").unwrap();
    assert_eq!(current, store.current_edge_key_path("edge-1", "r1"));
    assert_eq!(
        edgevote_signer::keyfile::read(&current).unwrap().kid(),
        old.kid
    );
    let new = store.rotate(&old.kid, 2000, 600).unwrap();
    let set = store.keyset().unwrap();
    let (old_jwk, _) = set.get(&old.kid).unwrap();
    assert_eq!(old_jwk.valid_until, Some(2600));
    assert!(old_jwk.valid_at(2599) && !old_jwk.valid_at(2600));
    assert!(set.get(&new.kid).unwrap().0.valid_at(2000));
    // Retiring, not active: the edge's key is the successor, and so is its current file.
    assert_eq!(store.edge_identity("edge-1", "r1").unwrap().kid(), new.kid);
    assert_eq!(
        edgevote_signer::keyfile::read(&current).unwrap().kid(),
        new.kid
    );
    // A store with no current file for an edge gets none from a rotation.
    let other = store.generate_edge("edge-2", "r1", 1000).unwrap();
    store.rotate(&other.kid, 2000, 600).unwrap();
    assert!(!store.current_edge_key_path("edge-2", "r1").exists());
}

#[test]
fn active_key_selection_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let store = KeyStore::open_or_create(dir.path()).unwrap();
    let err = store.signing_identity(Role::Log, None).unwrap_err();
    assert!(err.to_string().contains("no active log key"), "{err}");
    // An edge key belongs to one edge: an unbound one is refused before anything is written.
    assert!(matches!(
        store.generate(Role::Edge, 1),
        Err(SignerError::EdgeKeyUnbound)
    ));
    assert!(store.keyset().unwrap().is_empty());
    let err = store.edge_identity("edge-1", "r1").unwrap_err();
    assert!(
        err.to_string().contains("--edge edge-1 --region r1"),
        "{err}"
    );
    store.generate_edge("edge-1", "r1", 1).unwrap();
    store.generate_edge("edge-2", "r1", 2).unwrap();
    let err = store.active_kid(Role::Edge, None).unwrap_err();
    assert!(
        matches!(err, SignerError::AmbiguousActiveKey { count: 2, .. }),
        "{err}"
    );
}

#[test]
fn missing_store_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = KeyStore::open(dir.path().join("nope")).unwrap_err();
    assert!(matches!(err, SignerError::NoKeyStore(_)));
    assert!(err.to_string().contains("edgevote keys gen"), "{err}");
}

#[test]
fn corrupt_key_set_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = KeyStore::open_or_create(dir.path()).unwrap();
    std::fs::write(store.keyset_path(), "{not json").unwrap();
    let err = store.generate(Role::Ops, 1).unwrap_err();
    assert!(err.to_string().contains("keyset.json"), "{err}");
    assert_eq!(
        std::fs::read_to_string(store.keyset_path()).unwrap(),
        "{not json"
    );
}

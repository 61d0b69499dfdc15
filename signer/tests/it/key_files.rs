//! Private key files: permissions and format errors.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use edgevote_shared::{Role, SigningIdentity};
use edgevote_signer::{SignerError, keyfile};

fn written_key() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.jwk");
    keyfile::write(&path, &SigningIdentity::from_seed(&[5; 32], Role::Edge)).unwrap();
    (dir, path)
}

#[test]
fn key_files_are_0600_and_round_trip() {
    let (_dir, path) = written_key();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let identity = keyfile::read(&path).unwrap();
    assert_eq!(identity.seed(), &[5; 32]);
    assert_eq!(identity.role(), Role::Edge);
}

#[test]
fn group_readable_key_file_is_refused() {
    let (_dir, path) = written_key();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = keyfile::read(&path).unwrap_err();
    assert!(
        matches!(err, SignerError::KeyFilePermissions { mode: 0o644, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("chmod 600"), "{err}");
}

#[test]
fn missing_key_file_names_the_path() {
    let err = keyfile::read(std::path::Path::new("/nonexistent/k.jwk")).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/k.jwk"), "{err}");
}

#[test]
fn bad_key_files_are_refused() {
    let (_dir, path) = written_key();
    let text = std::fs::read_to_string(&path).unwrap();
    let cases = [
        ("garbage", "not a key".to_owned()),
        ("mismatched d", text.replace("\"d\": \"", "\"d\": \"A")),
        ("unknown member", text.replacen('{', "{\"extra\": 1,", 1)),
    ];
    for (name, content) in cases {
        std::fs::write(&path, content).unwrap();
        let err = keyfile::read(&path).unwrap_err();
        assert!(
            matches!(err, SignerError::KeyFileFormat { .. }),
            "{name}: {err}"
        );
    }
    std::fs::write(&path, vec![b' '; 10_000]).unwrap();
    assert!(keyfile::read(&path).is_err());
}

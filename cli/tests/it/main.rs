//! The `edgevote` binary driven as a user would.

// Test helpers panic on failure by design.
#![allow(clippy::unwrap_used)]

mod audit;
mod bench;
mod bundle;
mod collector;
mod cost;
mod edge;
mod rotation;
mod round_trip;
mod up;
mod witness;

use std::path::Path;
use std::process::{Command, Output};

/// Runs `edgevote ARGS` in `dir` and returns its output.
pub fn edgevote(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_edgevote"))
        .args(args)
        .current_dir(dir)
        .env_remove("EDGEVOTE_KEYS")
        .output()
        .expect("edgevote runs")
}

/// Runs `edgevote ARGS`, asserts success and returns stdout.
pub fn ok(dir: &Path, args: &[&str]) -> String {
    let out = edgevote(dir, args);
    assert!(
        out.status.success(),
        "edgevote {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A directory with authority and edge keys and an open election `ref`.
pub fn election_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    ok(dir.path(), &["keys", "gen", "--role", "authority"]);
    ok(
        dir.path(),
        &[
            "keys", "gen", "--role", "edge", "--edge", "offline", "--region", "local",
        ],
    );
    ok(
        dir.path(),
        &[
            "election",
            "create",
            "--id",
            "ref",
            "--title",
            "Referendum",
            "--option",
            "yes:Yes",
            "--option",
            "no:No",
            "--closes",
            "+1h",
        ],
    );
    dir
}

/// `audit verify` with the trust roots of the stack in `data` (its `stack.json`): the election
/// manifest and the authority's key set, both taken from outside the published folder.
pub fn audit_verify(dir: &Path, data: &Path, log: &Path, extra: &[&str]) -> Output {
    let text = std::fs::read_to_string(data.join("stack.json")).unwrap();
    let info: serde_json::Value = serde_json::from_str(&text).unwrap();
    let manifest = info["election_path"].as_str().unwrap().to_owned();
    let keys_dir = Path::new(info["keys_dir"].as_str().unwrap()).to_owned();
    let keyset = keys_dir.join("keyset.json");
    let args = [
        &[
            "audit",
            "verify",
            "--log",
            log.to_str().unwrap(),
            "--manifest",
            &manifest,
            "--keyset",
            keyset.to_str().unwrap(),
        ],
        extra,
    ]
    .concat();
    edgevote(dir, &args)
}

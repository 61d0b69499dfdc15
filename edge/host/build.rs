//! Builds the voter page's verifier (`edge/verifier`, crate `edgevote-page-verifier`) for
//! `wasm32-unknown-unknown` and leaves it in `OUT_DIR/verifier.wasm`, which the host embeds
//! and serves at `/verifier.wasm`. Building it here keeps the build order out of everyone's
//! hands: any build of the host (a test, clippy, `cargo build -p edgevote`) has the module
//! that matches the `shared` it was built with.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The cargo profile of the verifier (root Cargo.toml: small, stripped, LTO).
const PROFILE: &str = "verifier";
const TARGET: &str = "wasm32-unknown-unknown";

fn main() {
    let root = PathBuf::from(var("CARGO_MANIFEST_DIR")).join("../..");
    for watched in [
        "edge/verifier/src",
        "edge/verifier/Cargo.toml",
        "shared/src",
        "shared/Cargo.toml",
        "Cargo.toml",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    let out_dir = PathBuf::from(var("OUT_DIR"));
    let target_dir = verifier_target_dir(&out_dir);
    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo
        .args(["build", "--locked", "-p", "edgevote-page-verifier"])
        .args(["--profile", PROFILE, "--target", TARGET])
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir);
    // The outer build's flags and wrappers are for the host target (and clippy's driver for
    // the host crates): none of them belongs to this build.
    for inherited in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTDOCFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "CLIPPY_ARGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_BUILD_TARGET_DIR",
    ] {
        cargo.env_remove(inherited);
    }
    let status = cargo
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo for the page verifier: {e}"));
    assert!(
        status.success(),
        "building the page verifier for {TARGET} failed (is the target installed? \
         scripts/bootstrap.sh rust)"
    );
    let wasm = target_dir
        .join(TARGET)
        .join(PROFILE)
        .join("edgevote_page_verifier.wasm");
    std::fs::copy(&wasm, out_dir.join("verifier.wasm"))
        .unwrap_or_else(|e| panic!("{}: {e}", wasm.display()));
}

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("cargo sets {name} for build scripts"))
}

/// `<target>/page-verifier`: beside the outer build (OUT_DIR is
/// `<target>/<profile>/build/<package>/out`), shared by every profile of it, so the module is
/// built once, not once per profile.
fn verifier_target_dir(out_dir: &Path) -> PathBuf {
    out_dir
        .ancestors()
        .nth(4)
        .unwrap_or(out_dir)
        .join("page-verifier")
}

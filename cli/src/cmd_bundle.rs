//! `edgevote bundle`: sign and verify edge bundles (a Wasm component plus its signed manifest).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Subcommand, ValueEnum};
use edgevote_shared::{BundleManifest, Digest32, Platform, Role, verify};
use edgevote_signer::KeyStore;

use crate::cmd_keys::KeysDir;
use crate::timearg;

/// Largest component accepted (64 MiB).
const MAX_WASM_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PlatformArg {
    /// A wasi:http component (Spin, the edgevote host).
    WasiHttp,
    /// A Cloudflare Worker module.
    CloudflareWorker,
}

#[derive(Debug, Subcommand)]
pub enum BundleCommand {
    /// Sign a component with the ops key: writes its manifest (version, sha256, platform).
    Sign {
        #[command(flatten)]
        keys: KeysDir,
        /// The Wasm component.
        #[arg(long)]
        wasm: PathBuf,
        /// Bundle name.
        #[arg(long, default_value = "edgevote-edge")]
        name: String,
        /// Bundle version.
        #[arg(long, default_value = env!("CARGO_PKG_VERSION"))]
        bundle_version: String,
        /// Target platform.
        #[arg(long, value_enum, default_value = "wasi-http")]
        platform: PlatformArg,
        /// Output: the signed manifest (compact JWS).
        #[arg(long)]
        out: PathBuf,
    },
    /// Verify a component against its signed manifest and the ops keys of a key set.
    Verify {
        /// The Wasm component.
        #[arg(long)]
        wasm: PathBuf,
        /// The signed manifest.
        #[arg(long)]
        manifest: PathBuf,
        /// Published key set.
        #[arg(long, default_value = "edgevote-keys/keyset.json")]
        keyset: PathBuf,
    },
}

pub fn run(command: BundleCommand) -> anyhow::Result<ExitCode> {
    match command {
        BundleCommand::Sign {
            keys,
            wasm,
            name,
            bundle_version,
            platform,
            out,
        } => {
            let bytes = read_wasm(&wasm)?;
            let manifest = BundleManifest {
                v: 1,
                name,
                version: bundle_version,
                platform: match platform {
                    PlatformArg::WasiHttp => Platform::WasiHttp,
                    PlatformArg::CloudflareWorker => Platform::CloudflareWorker,
                },
                wasm_sha256: Digest32::of(&bytes),
                wasm_bytes: bytes.len() as u64,
                config_schema: Vec::new(),
                created_at: timearg::now_secs(),
            };
            let ops = KeyStore::open(&keys.dir)?.signing_identity(Role::Ops, None)?;
            let signed = edgevote_shared::sign(&ops, &manifest)
                .map_err(|e| anyhow::anyhow!("bundle manifest refused ({}): {e}", e.code()))?;
            std::fs::write(&out, signed + "\n")
                .with_context(|| format!("writing {}", out.display()))?;
            println!(
                "signed {} {} sha256={} ({} bytes) by {} -> {}",
                manifest.name,
                manifest.version,
                manifest.wasm_sha256.to_hex(),
                manifest.wasm_bytes,
                ops.kid(),
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        BundleCommand::Verify {
            wasm,
            manifest,
            keyset,
        } => {
            let keys = edgevote_signer::load_keyset(&keyset)?;
            let bytes = read_wasm(&wasm)?;
            let signed = crate::input::read_file(&manifest)?;
            let outcome = verify::<BundleManifest>(signed.trim(), &keys)
                .and_then(|v| v.doc.check_wasm(&bytes).map(|()| v));
            match outcome {
                Ok(v) => {
                    println!(
                        "VALID bundle {} {} signed by {}",
                        v.doc.name, v.doc.version, v.kid
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    println!("INVALID bundle code={} {e}", e.code());
                    Ok(ExitCode::from(1))
                }
            }
        }
    }
}

fn read_wasm(path: &PathBuf) -> anyhow::Result<Vec<u8>> {
    let len = std::fs::metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    anyhow::ensure!(
        len <= MAX_WASM_BYTES,
        "{} is {len} bytes, more than {MAX_WASM_BYTES}",
        path.display()
    );
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

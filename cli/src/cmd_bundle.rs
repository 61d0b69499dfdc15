//! `edgevote bundle`: build, sign, verify, deploy and roll back edge bundles (a Wasm component
//! plus its manifest signed with the ops key).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Subcommand, ValueEnum};
use edgevote_shared::{BundleManifest, Digest32, Platform, Release, Role, verify};
use edgevote_signer::KeyStore;

use crate::common::{KeysDir, input, timearg};

/// Largest component accepted (64 MiB).
const MAX_WASM_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PlatformArg {
    /// A wasi:http component (Spin, the edgevote host).
    WasiHttp,
    /// A Cloudflare Worker module.
    CloudflareWorker,
}

/// Where to reach an edge host's admin endpoint.
#[derive(Debug, Clone, clap::Args)]
pub struct AdminTarget {
    /// The edge host, e.g. http://10.0.1.7:8080 (its admin endpoint, not the public origin).
    #[arg(long)]
    host: String,
    /// File with the host's admin bearer token.
    #[arg(long)]
    admin_token_file: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum BundleCommand {
    /// Build the edge component (scripts/build-wasm.sh spin) and put it in a bundle directory,
    /// ready for `bundle sign`.
    Build {
        /// The bundle directory to create (holds edge.wasm).
        #[arg(long)]
        out: PathBuf,
        /// Use this already built component instead of building one.
        #[arg(long, conflicts_with = "variant")]
        component: Option<PathBuf>,
        /// Which build: `portable` runs on Spin, `wasmtime serve` and our host; `wide` (the
        /// wide-arithmetic build, faster signatures under component sealing) on our host only.
        #[arg(long, value_enum, default_value_t = Variant::Portable)]
        variant: Variant,
    },
    /// Deploy a signed bundle to a running edge host: it verifies, compiles and swaps it in
    /// without dropping requests in flight, keeping the previous bundle for rollback.
    Deploy {
        #[command(flatten)]
        target: AdminTarget,
        /// The Wasm component.
        #[arg(long)]
        wasm: PathBuf,
        /// Its signed manifest (from `bundle sign`).
        #[arg(long)]
        manifest: PathBuf,
        /// Deploy even if its serial is lower than the active bundle's (the host refuses such
        /// a downgrade otherwise, with `bundle_downgrade`). Going back to the kept previous
        /// bundle needs no flag: that is `bundle rollback`.
        #[arg(long)]
        allow_downgrade: bool,
    },
    /// Swap the previous bundle back in on a running edge host.
    Rollback {
        #[command(flatten)]
        target: AdminTarget,
    },
    /// Show the active and previous bundles of a running edge host.
    Status {
        #[command(flatten)]
        target: AdminTarget,
    },
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
        /// Bundle version (a label).
        #[arg(long, default_value = env!("CARGO_PKG_VERSION"))]
        bundle_version: String,
        /// Monotonic release serial: edge hosts refuse to deploy a lower serial than the one
        /// they run. Default: the signing time in unix seconds, so a later signature is newer.
        #[arg(long)]
        serial: Option<u64>,
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
        BundleCommand::Build {
            out,
            component,
            variant,
        } => build(&out, component, variant),
        BundleCommand::Deploy {
            target,
            wasm,
            manifest,
            allow_downgrade,
        } => {
            let bytes = read_wasm(&wasm)?;
            let signed = input::read_file(&manifest)?;
            let mut body = serde_json::json!({
                "wasm_base64": edgevote_shared::b64::encode_std(&bytes),
                "manifest": signed.trim(),
            });
            if allow_downgrade {
                // Only when asked: a host that predates downgrade checks refuses the member.
                body["allow_downgrade"] = true.into();
            }
            println!(
                "deploying {} (sha256={}) to {} ...",
                wasm.display(),
                Digest32::of(&bytes).to_hex(),
                target.host
            );
            admin(&target, "POST", "/admin/v1/bundle", Some(body))
        }
        BundleCommand::Rollback { target } => {
            admin(&target, "POST", "/admin/v1/bundle/rollback", None)
        }
        BundleCommand::Status { target } => admin(&target, "GET", "/admin/v1/bundle", None),
        BundleCommand::Sign {
            keys,
            wasm,
            name,
            bundle_version,
            serial,
            platform,
            out,
        } => {
            let bytes = read_wasm(&wasm)?;
            let created_at = timearg::now_secs();
            let platform = match platform {
                PlatformArg::WasiHttp => Platform::WasiHttp,
                PlatformArg::CloudflareWorker => Platform::CloudflareWorker,
            };
            let release = Release {
                name,
                version: bundle_version,
                serial: serial.unwrap_or(created_at),
                platform,
            };
            let manifest = BundleManifest::for_component(release, &bytes, created_at);
            let ops = KeyStore::open(&keys.dir)?.signing_identity(Role::Ops, None)?;
            let signed = edgevote_shared::sign(&ops, &manifest)
                .map_err(|e| anyhow::anyhow!("bundle manifest refused ({}): {e}", e.code()))?;
            std::fs::write(&out, signed + "\n")
                .with_context(|| format!("writing {}", out.display()))?;
            println!(
                "signed {} {} serial {} sha256={} ({} bytes) by {} -> {}",
                manifest.name,
                manifest.version,
                manifest.serial,
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
            let signed = input::read_file(&manifest)?;
            let outcome = verify::<BundleManifest>(signed.trim(), &keys)
                .and_then(|v| v.doc.check_wasm(&bytes).map(|()| v));
            match outcome {
                Ok(v) => {
                    println!(
                        "VALID bundle {} {} serial {} signed by {}",
                        v.doc.name, v.doc.version, v.doc.serial, v.kid
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

fn read_wasm(path: &Path) -> anyhow::Result<Vec<u8>> {
    input::read_bounded(path, MAX_WASM_BYTES)
}

/// Calls the admin endpoint and prints the outcome: the bundles on success, the refusal else.
fn admin(
    target: &AdminTarget,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (status, value) = runtime.block_on(crate::admin_client::call(
        &target.host,
        &target.admin_token_file,
        method,
        path,
        body,
    ))?;
    if status != 200 {
        let code = value["code"]
            .as_str()
            .map(|c| format!(" code={c}"))
            .unwrap_or_default();
        println!(
            "REFUSED by {} ({status}): {}{code} {}",
            target.host,
            value["error"].as_str().unwrap_or("?"),
            value["detail"].as_str().unwrap_or("")
        );
        return Ok(ExitCode::from(1));
    }
    let show = |b: &serde_json::Value| {
        format!(
            "{} {} sha256={} serial {}",
            b["name"].as_str().unwrap_or("?"),
            b["version"].as_str().unwrap_or("?"),
            b["wasm_sha256"].as_str().unwrap_or("?"),
            b["serial"].as_u64().unwrap_or(0)
        )
    };
    println!("active:   {}", show(&value["active"]));
    match value.get("previous").filter(|p| !p.is_null()) {
        Some(previous) => println!("previous: {} (rollback target)", show(previous)),
        None => println!("previous: none"),
    }
    Ok(ExitCode::SUCCESS)
}

/// A build of the edge component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Variant {
    /// Plain wasm32-wasip2: Spin, `wasmtime serve`, our host.
    Portable,
    /// Built with the wide-arithmetic proposal, 64-bit field arithmetic and SIMD: our host only.
    Wide,
}

impl Variant {
    /// The argument of scripts/build-wasm.sh and the file it produces.
    pub fn build(self) -> (&'static str, &'static str) {
        match self {
            Variant::Portable => (
                "spin",
                "target/wasm32-wasip2/release/edgevote_edge_spin.wasm",
            ),
            Variant::Wide => (
                "wide",
                "target/wasm32-wasip2/release/edgevote_edge_wide.wasm",
            ),
        }
    }
}

/// Builds (or takes) the component and writes it into the bundle directory.
fn build(out: &Path, component: Option<PathBuf>, variant: Variant) -> anyhow::Result<ExitCode> {
    let component = match component {
        Some(path) => path,
        None => {
            let script = Path::new("scripts/build-wasm.sh");
            anyhow::ensure!(
                script.is_file(),
                "no {} here: run from an edgevote checkout, or pass --component",
                script.display()
            );
            let (what, built) = variant.build();
            println!("building the edge component (scripts/build-wasm.sh {what}) ...");
            let status = std::process::Command::new("bash")
                .args([script.to_str().unwrap_or_default(), what])
                .status()
                .context("running scripts/build-wasm.sh")?;
            anyhow::ensure!(
                status.success(),
                "scripts/build-wasm.sh {what} failed ({status})"
            );
            if variant == Variant::Wide {
                println!(
                    "note: the wide build runs on the edgevote host only (wasmtime with wide-arithmetic); Spin and other hosts refuse to load it"
                );
            }
            PathBuf::from(built)
        }
    };
    let bytes = read_wasm(&component)?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let wasm = out.join("edge.wasm");
    std::fs::write(&wasm, &bytes).with_context(|| format!("writing {}", wasm.display()))?;
    println!(
        "bundle directory {}: edge.wasm sha256={} ({} bytes)",
        out.display(),
        Digest32::of(&bytes).to_hex(),
        bytes.len()
    );
    println!(
        "next: edgevote bundle sign --wasm {} --out {}",
        wasm.display(),
        out.join("bundle.jws").display()
    );
    Ok(ExitCode::SUCCESS)
}

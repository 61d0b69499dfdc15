//! The running bundle, the previous one, and the swap between them.
//!
//! A deploy verifies the new bundle (ops signature, SHA-256), compiles it, and only then swaps
//! it in. A request takes the active bundle when it starts and keeps it to the end, so a swap
//! drops nothing in flight: old requests finish on the old component, new ones start on the
//! new. The replaced bundle stays loaded as the rollback target. With a bundle directory
//! configured, both are written there and a restart comes back on the deployed bundle.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};

use edgevote_shared::{BundleManifest, KeySet};
use serde::Serialize;

use edgevote_edge_core::{Edge, ServedElection};

use crate::commit::Committer;
use crate::config::{HostConfig, SealingMode};
use crate::metrics::Metrics;
use crate::runtime::{EdgeHooks, EdgeRuntime};
use crate::{StartError, component_env, verify_bundle};

/// One verified, compiled bundle.
pub struct LoadedBundle {
    /// Its verified manifest.
    pub manifest: BundleManifest,
    /// The compiled component.
    pub runtime: EdgeRuntime,
    wasm: Arc<[u8]>,
    signed: String,
}

/// Why a deploy or rollback was refused. Nothing changes when one is returned.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The bundle's signature, digest or component is refused.
    #[error(transparent)]
    Refused(#[from] StartError),
    /// Rollback asked with no previous bundle.
    #[error("no previous bundle to roll back to")]
    NoPrevious,
    /// The bundle directory could not be written.
    #[error("writing the bundle directory {path}: {detail}")]
    Persist {
        /// The file.
        path: String,
        /// The error.
        detail: String,
    },
}

/// What is running, for the admin endpoint and `edgevote bundle status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BundleStatus {
    /// The active bundle.
    pub active: BundleSummary,
    /// The rollback target, if any.
    pub previous: Option<BundleSummary>,
}

/// One bundle, briefly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BundleSummary {
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
    /// SHA-256 of the component, hex.
    pub wasm_sha256: String,
}

impl LoadedBundle {
    fn summary(&self) -> BundleSummary {
        BundleSummary {
            name: self.manifest.name.clone(),
            version: self.manifest.version.clone(),
            wasm_sha256: self.manifest.wasm_sha256.to_hex(),
        }
    }
}

/// Everything needed to load a bundle besides the bundle itself.
pub(crate) struct Loader {
    pub(crate) config: HostConfig,
    pub(crate) keyset_text: String,
    pub(crate) keys: KeySet,
    /// The served elections, verified once at startup.
    pub(crate) elections: Vec<ServedElection>,
    /// The native edge that seals under host sealing.
    pub(crate) sealer: Arc<Edge>,
    pub(crate) committer: Committer,
    pub(crate) metrics: Arc<Metrics>,
}

impl Loader {
    /// Verifies and compiles a bundle (CPU-heavy: call off the async threads).
    pub(crate) fn load(
        &self,
        wasm: Arc<[u8]>,
        source: &Path,
        signed: String,
    ) -> Result<LoadedBundle, StartError> {
        let manifest = verify_bundle(&wasm, source, &signed, &self.keys)?;
        let env = component_env(
            &self.config,
            self.keyset_text.clone(),
            &self.elections,
            &manifest,
        )?;
        let sealer = (self.config.sealing == SealingMode::Host).then(|| Arc::clone(&self.sealer));
        let hooks = EdgeHooks::new(
            self.committer.clone(),
            self.config.forward_outbound,
            sealer,
            manifest.wasm_sha256,
        );
        let runtime = EdgeRuntime::new(
            &wasm,
            env,
            hooks,
            self.config.max_concurrent_requests,
            Arc::clone(&self.metrics),
        )
        .map_err(StartError::Component)?;
        Ok(LoadedBundle {
            manifest,
            runtime,
            wasm,
            signed,
        })
    }
}

/// The active and previous bundles.
pub struct Bundles {
    active: RwLock<Arc<LoadedBundle>>,
    previous: Mutex<Option<Arc<LoadedBundle>>>,
    loader: Arc<Loader>,
    /// One deploy or rollback at a time.
    swapping: tokio::sync::Mutex<()>,
    dir: Option<PathBuf>,
}

const ACTIVE: &str = "active";
const PREVIOUS: &str = "previous";

impl Bundles {
    pub(crate) fn new(active: LoadedBundle, loader: Loader) -> Self {
        let dir = loader.config.admin.bundle_dir.clone();
        Bundles {
            active: RwLock::new(Arc::new(active)),
            previous: Mutex::new(None),
            loader: Arc::new(loader),
            swapping: tokio::sync::Mutex::new(()),
            dir,
        }
    }

    /// The bundle new requests run on.
    pub fn active(&self) -> Arc<LoadedBundle> {
        Arc::clone(&self.active.read().unwrap_or_else(|p| p.into_inner()))
    }

    fn previous(&self) -> Option<Arc<LoadedBundle>> {
        self.previous
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// What is running.
    pub fn status(&self) -> BundleStatus {
        BundleStatus {
            active: self.active().summary(),
            previous: self.previous().map(|p| p.summary()),
        }
    }

    /// Verifies, compiles and swaps in a new bundle; the replaced one becomes the rollback
    /// target.
    pub async fn deploy(&self, wasm: Vec<u8>, signed: String) -> Result<BundleStatus, DeployError> {
        let _one_at_a_time = self.swapping.lock().await;
        let loader = Arc::clone(&self.loader);
        let loaded = tokio::task::spawn_blocking(move || {
            loader.load(wasm.into(), Path::new("deployed bundle"), signed)
        })
        .await
        .map_err(|e| StartError::Component(anyhow::anyhow!("compile task failed: {e}")))?;
        let loaded = match loaded {
            Ok(loaded) => Arc::new(loaded),
            Err(e) => {
                self.loader
                    .metrics
                    .bundle_refusals
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "bundle deploy refused");
                return Err(e.into());
            }
        };
        self.persist(&loaded, &self.active())?;
        let replaced = self.swap_active(Arc::clone(&loaded));
        *self.previous.lock().unwrap_or_else(|p| p.into_inner()) = Some(replaced);
        self.loader
            .metrics
            .bundle_deploys
            .fetch_add(1, Ordering::Relaxed);
        tracing::info!(bundle = %loaded.manifest.wasm_sha256.to_hex(), version = %loaded.manifest.version, "bundle deployed");
        Ok(self.status())
    }

    /// Swaps the previous bundle back in; the one it replaces becomes the new rollback target.
    pub async fn rollback(&self) -> Result<BundleStatus, DeployError> {
        let _one_at_a_time = self.swapping.lock().await;
        let target = self.previous().ok_or(DeployError::NoPrevious)?;
        self.persist(&target, &self.active())?;
        let replaced = self.swap_active(Arc::clone(&target));
        *self.previous.lock().unwrap_or_else(|p| p.into_inner()) = Some(replaced);
        self.loader
            .metrics
            .bundle_rollbacks
            .fetch_add(1, Ordering::Relaxed);
        tracing::info!(bundle = %target.manifest.wasm_sha256.to_hex(), "rolled back");
        Ok(self.status())
    }

    fn swap_active(&self, next: Arc<LoadedBundle>) -> Arc<LoadedBundle> {
        let mut active = self.active.write().unwrap_or_else(|p| p.into_inner());
        std::mem::replace(&mut *active, next)
    }

    /// Writes the bundles to the bundle directory (previous first, so a crash in between
    /// leaves the old active bundle active).
    fn persist(&self, active: &LoadedBundle, previous: &LoadedBundle) -> Result<(), DeployError> {
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        write_bundle(dir, PREVIOUS, previous)?;
        write_bundle(dir, ACTIVE, active)
    }
}

fn write_bundle(dir: &Path, stem: &str, bundle: &LoadedBundle) -> Result<(), DeployError> {
    let fail = |path: &Path, e: std::io::Error| DeployError::Persist {
        path: path.display().to_string(),
        detail: e.to_string(),
    };
    std::fs::create_dir_all(dir).map_err(|e| fail(dir, e))?;
    for (ext, bytes) in [
        ("wasm", &bundle.wasm[..]),
        ("jws", bundle.signed.as_bytes()),
    ] {
        let path = dir.join(format!("{stem}.{ext}"));
        let tmp = dir.join(format!("{stem}.{ext}.tmp"));
        std::fs::write(&tmp, bytes).map_err(|e| fail(&tmp, e))?;
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| fail(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| fail(&path, e))?;
    }
    Ok(())
}

/// The bundle a host starts on: the last deployed one in the bundle directory, if there is
/// one, else the configured component and manifest.
pub(crate) fn startup_paths(config: &HostConfig) -> (PathBuf, PathBuf) {
    if let Some(dir) = &config.admin.bundle_dir {
        let (wasm, jws) = (
            dir.join(format!("{ACTIVE}.wasm")),
            dir.join(format!("{ACTIVE}.jws")),
        );
        if wasm.is_file() && jws.is_file() {
            tracing::info!(dir = %dir.display(), "starting on the last deployed bundle");
            return (wasm, jws);
        }
    }
    (
        config.component_path.clone(),
        config.bundle_manifest_path.clone(),
    )
}

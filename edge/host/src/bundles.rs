//! The running bundle, the previous one, and the swap between them.
//!
//! A deploy verifies the new bundle (ops signature, SHA-256), compiles it, and only then swaps
//! it in. A request takes the active bundle when it starts and keeps it to the end, so a swap
//! drops nothing in flight: old requests finish on the old component, new ones start on the
//! new. The replaced bundle stays loaded as the rollback target.
//!
//! Downgrades: a deploy whose manifest carries a lower `serial` than the active bundle's is
//! refused (`bundle_downgrade`, nothing changes) unless the operator passes `allow_downgrade`.
//! A rollback to the kept previous bundle is itself the explicit operator action, and allowed.
//!
//! With a bundle directory configured, both are written there, crash-safe
//! ([`crate::bundle_dir`]), and a restart starts on the deployed bundle unless the configured
//! one (`component_path`, `bundle_manifest_path`) has a higher serial: configuration
//! management rolling a newer release out is not undone by an older deploy left on disk. A
//! deployed bundle the operator chose explicitly (rollback, allowed downgrade) is kept whatever
//! the configured serial.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};

use edgevote_shared::{BundleManifest, KeySet};

use crate::bundle_dir::{self, Pair};
use serde::Serialize;

use edgevote_edge_core::ServedElection;

use crate::commit::Committer;
use crate::config::{HostConfig, SealingMode};
use crate::metrics::Metrics;
use crate::runtime::{EdgeHooks, EdgeRuntime};
use crate::sealer::Sealer;
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
    /// The bundle is older (lower serial) than the active one and no downgrade was allowed.
    #[error(
        "bundle serial {serial} is lower than the active bundle's {active}: a downgrade needs \
         allow_downgrade (or a rollback to the kept previous bundle)"
    )]
    Downgrade {
        /// The refused bundle's serial.
        serial: u64,
        /// The active bundle's serial.
        active: u64,
    },
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
    /// Monotonic release serial (deploys of a lower one are refused as downgrades).
    pub serial: u64,
    /// SHA-256 of the component, hex.
    pub wasm_sha256: String,
}

impl LoadedBundle {
    fn summary(&self) -> BundleSummary {
        BundleSummary {
            name: self.manifest.name.clone(),
            version: self.manifest.version.clone(),
            serial: self.manifest.serial,
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
    /// The native sealer under host sealing (it follows the published key set).
    pub(crate) sealer: Arc<Sealer>,
    pub(crate) committer: Committer,
    pub(crate) metrics: Arc<Metrics>,
}

impl Loader {
    /// Compiles a bundle whose manifest [`verify_bundle`] accepted (CPU-heavy: call off the
    /// async threads).
    pub(crate) fn compile(
        &self,
        manifest: BundleManifest,
        wasm: Arc<[u8]>,
        signed: String,
    ) -> Result<LoadedBundle, StartError> {
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
    /// target. A bundle with a lower serial than the active one is refused, before it is
    /// compiled, unless `allow_downgrade`.
    pub async fn deploy(
        &self,
        wasm: Vec<u8>,
        signed: String,
        allow_downgrade: bool,
    ) -> Result<BundleStatus, DeployError> {
        let _one_at_a_time = self.swapping.lock().await;
        let active_serial = self.active().manifest.serial;
        let loader = Arc::clone(&self.loader);
        let loaded = tokio::task::spawn_blocking(move || {
            let source = Path::new("deployed bundle");
            let manifest = verify_bundle(&wasm, source, &signed, &loader.keys)?;
            if manifest.serial < active_serial && !allow_downgrade {
                return Err(DeployError::Downgrade {
                    serial: manifest.serial,
                    active: active_serial,
                });
            }
            Ok(loader.compile(manifest, wasm.into(), signed)?)
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
                return Err(e);
            }
        };
        let downgrade = loaded.manifest.serial < active_serial;
        self.persist(&loaded, &self.active(), downgrade)?;
        let replaced = self.swap_active(Arc::clone(&loaded));
        *self.previous.lock().unwrap_or_else(|p| p.into_inner()) = Some(replaced);
        self.loader
            .metrics
            .bundle_deploys
            .fetch_add(1, Ordering::Relaxed);
        tracing::info!(bundle = %loaded.manifest.wasm_sha256.to_hex(), version = %loaded.manifest.version, serial = loaded.manifest.serial, downgrade, "bundle deployed");
        Ok(self.status())
    }

    /// Swaps the previous bundle back in; the one it replaces becomes the new rollback target.
    pub async fn rollback(&self) -> Result<BundleStatus, DeployError> {
        let _one_at_a_time = self.swapping.lock().await;
        let target = self.previous().ok_or(DeployError::NoPrevious)?;
        self.persist(&target, &self.active(), true)?;
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

    /// Writes the bundles to the bundle directory, crash-safe; `pinned`: the operator chose
    /// `active` explicitly (rollback, allowed downgrade), so a restart keeps it.
    fn persist(
        &self,
        active: &LoadedBundle,
        previous: &LoadedBundle,
        pinned: bool,
    ) -> Result<(), DeployError> {
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        bundle_dir::write(dir, active.pair(), Some(previous.pair()), pinned).map_err(|e| {
            DeployError::Persist {
                path: dir.display().to_string(),
                detail: e.to_string(),
            }
        })
    }
}

impl LoadedBundle {
    fn pair(&self) -> Pair<'_> {
        Pair {
            wasm: &self.wasm,
            manifest: &self.signed,
        }
    }
}

/// The bundle a host starts on, read and its manifest verified, not compiled yet.
#[derive(Debug)]
pub struct StartupBundle {
    /// The component.
    pub wasm: Vec<u8>,
    /// Its signed manifest.
    pub signed: String,
    /// The component's file.
    pub source: PathBuf,
    /// Its verified manifest.
    pub manifest: BundleManifest,
}

/// The bundle a host starts on: without a bundle directory, or with nothing deployed there,
/// the configured component and manifest. Else the deployed bundle, unless the configured one
/// verifies with a higher serial and the deployed one was not chosen explicitly by an operator
/// (rollback, allowed downgrade). A deployed pair that is unreadable or does not verify (a
/// component next to another bundle's manifest) refuses the start: it was written crash-safe,
/// so it was tampered with or the disk is failing.
pub fn startup_bundle(config: &HostConfig, keys: &KeySet) -> Result<StartupBundle, StartError> {
    let configured = || -> Result<StartupBundle, StartError> {
        let source = config.component_path.clone();
        let wasm = std::fs::read(&source).map_err(|e| StartError::Input {
            what: "component",
            path: source.display().to_string(),
            detail: e.to_string(),
        })?;
        let signed = crate::read("bundle manifest", &config.bundle_manifest_path)?;
        let manifest = verify_bundle(&wasm, &source, &signed, keys)?;
        Ok(StartupBundle {
            wasm,
            signed,
            source,
            manifest,
        })
    };
    let Some(dir) = &config.admin.bundle_dir else {
        return configured();
    };
    let deployed = match bundle_dir::read(dir) {
        Ok(Some(deployed)) => deployed,
        Ok(None) => return configured(),
        Err(detail) => {
            return Err(StartError::Input {
                what: "bundle directory",
                path: dir.display().to_string(),
                detail,
            });
        }
    };
    let pinned = deployed.pinned;
    let deployed = StartupBundle {
        manifest: verify_bundle(&deployed.wasm, &deployed.path, &deployed.manifest, keys)?,
        wasm: deployed.wasm,
        signed: deployed.manifest,
        source: deployed.path,
    };
    let serial = deployed.manifest.serial;
    if pinned {
        tracing::info!(dir = %dir.display(), serial, "starting on the deployed bundle an operator chose");
        return Ok(deployed);
    }
    match configured() {
        Ok(configured) if configured.manifest.serial > serial => {
            tracing::info!(
                serial = configured.manifest.serial,
                deployed = serial,
                "the configured bundle is newer than the deployed one: starting on it"
            );
            Ok(configured)
        }
        Ok(_) => {
            tracing::info!(dir = %dir.display(), serial, "starting on the last deployed bundle");
            Ok(deployed)
        }
        Err(e) => {
            tracing::warn!(error = %e, "the configured bundle is unusable: starting on the deployed one");
            Ok(deployed)
        }
    }
}

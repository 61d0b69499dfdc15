//! Errors of the signer, each naming the stage that failed.

use std::path::PathBuf;

use edgevote_shared::{Role, WireError};

/// What went wrong while handling keys or issuing documents.
#[derive(Debug, thiserror::Error)]
pub enum SignerError {
    /// Reading or writing a key or key set file failed.
    #[error("key store I/O on {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A private key file is readable by others.
    #[error("key file {path} has mode {mode:o}; private keys must be 0600 (run: chmod 600 {path})")]
    KeyFilePermissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A key file or key set file does not hold what it should.
    #[error("key file {path} is not a valid edgevote key: {reason}")]
    KeyFileFormat {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The key store directory has no key set yet.
    #[error("no key store at {0} (create one with: edgevote keys gen --keys {0} --role authority)")]
    NoKeyStore(PathBuf),
    /// No active key of a role.
    #[error("no active {0} key in the key store (generate one with: edgevote keys gen --role {0})")]
    NoActiveKey(Role),
    /// Several active keys of a role where one was needed.
    #[error("{count} active {role} keys; name one with --kid")]
    AmbiguousActiveKey {
        /// The role.
        role: Role,
        /// How many are active.
        count: usize,
    },
    /// An edge key must be bound to its edge and region.
    #[error("an edge key belongs to one edge: generate it with --edge EDGE --region REGION")]
    EdgeKeyUnbound,
    /// No active edge key bound to this edge and region.
    #[error(
        "no active edge key for edge {edge} in {region} (generate one with: edgevote keys gen --role edge --edge {edge} --region {region})"
    )]
    NoEdgeKey {
        /// The edge id.
        edge: String,
        /// The region.
        region: String,
    },
    /// A key id not present in the store.
    #[error("no key {0:?} in the key store")]
    UnknownKey(String),
    /// The key is already retired.
    #[error("key {0:?} is already retired")]
    AlreadyRetired(String),
    /// The OS random number generator failed.
    #[error("random number generator failed: {0}")]
    Random(String),
    /// A document failed a wire-format rule.
    #[error(transparent)]
    Wire(#[from] WireError),
}

impl SignerError {
    /// Adapts an `io::Error` on `path` (for `map_err`).
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| SignerError::Io { path, source }
    }
}

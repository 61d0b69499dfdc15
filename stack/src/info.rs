//! What a stack's data directory says about it: `stack.json` (where everything listens), the
//! admin and auditor token files, and the key store and election every client of the stack
//! reads.

use std::path::{Path, PathBuf};

use edgevote_shared::{ElectionManifest, KeySet};
use edgevote_signer::KeyStore;
use serde::{Deserialize, Serialize};

use crate::StackError;

/// Where `up` describes the running stack for `vote`, `load` and `audit`.
pub const STACK_FILE: &str = "stack.json";

/// Longest election manifest file read (a manifest is a few KiB; this bounds the read).
const MAX_MANIFEST_FILE_BYTES: u64 = 1024 * 1024;

/// What `up` publishes about itself in `stack.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StackInfo {
    /// Election id.
    pub election: String,
    /// Key store directory.
    pub keys_dir: PathBuf,
    /// Signed election manifest.
    pub election_path: PathBuf,
    /// The regions.
    pub regions: Vec<RegionInfo>,
    /// The AWS services of a stack started with `--backend aws`; absent for the embedded
    /// backends (queues and stores in each region's directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<AwsInfo>,
}

/// Where an AWS-backed stack's queues and ballot tables are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsInfo {
    /// The AWS-API endpoint (the moto server `up` started, or the one it was given). A moto
    /// server keeps its state in memory: it is there while `up` runs.
    pub endpoint_url: String,
    /// The ballot tables' multi-region consistency mode.
    pub consistency: edgevote_aws::Consistency,
    /// Per region: its queues and its collector's table.
    pub regions: Vec<AwsRegionInfo>,
}

/// One region's AWS services.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsRegionInfo {
    /// Region name.
    pub name: String,
    /// Its SQS queue and dead-letter queue.
    pub queue: edgevote_aws::SqsQueueConfig,
    /// Its collector's ballot table (under strong consistency every region's is the one shared
    /// table).
    pub store: edgevote_aws::DynamoStoreConfig,
}

impl AwsInfo {
    /// The services of region `name`.
    pub fn region(&self, name: &str) -> Result<&AwsRegionInfo, StackError> {
        self.regions
            .iter()
            .find(|r| r.name == name)
            .ok_or_else(|| StackError::NoRegion(format!("no AWS services for region {name}")))
    }
}

/// One region's endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionInfo {
    /// Region name.
    pub name: String,
    /// Edge base URL.
    pub edge_url: String,
    /// Collector base URL (metrics, results).
    pub collector_url: String,
}

impl StackInfo {
    /// The region named `name`, or the first region when `name` is `None`.
    pub fn region(&self, name: Option<&str>) -> Result<&RegionInfo, StackError> {
        match name {
            Some(name) => self
                .regions
                .iter()
                .find(|r| r.name == name)
                .ok_or_else(|| StackError::NoRegion(format!("no region {name} in the stack"))),
            None => self
                .regions
                .first()
                .ok_or_else(|| StackError::NoRegion("the stack has no region".into())),
        }
    }
}

/// Reads `stack.json` of a running (or stopped) stack.
pub fn read_stack(data_dir: &Path) -> Result<StackInfo, StackError> {
    let path = data_dir.join(STACK_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(source) => return Err(StackError::NoStack { path, source }),
    };
    serde_json::from_str(&text).map_err(|source| StackError::StackFile { path, source })
}

/// Writes `stack.json` into `data_dir`.
pub fn write_stack(data_dir: &Path, stack: &StackInfo) -> Result<(), StackError> {
    let path = data_dir.join(STACK_FILE);
    let text = serde_json::to_string_pretty(stack).map_err(|source| StackError::StackFile {
        path: path.clone(),
        source,
    })?;
    std::fs::write(&path, text).map_err(StackError::file("writing", &path))
}

/// The edge hosts' admin token file of a stack.
pub fn admin_token_path(data_dir: &Path) -> PathBuf {
    data_dir.join("admin.token")
}

/// The collectors' auditor token file of a stack: the bearer token of their voter listing
/// (`/v1/elections/{e}/voters/{voter}/ballots`), which `edgevote load` reconciles with.
pub fn auditor_token_path(data_dir: &Path) -> PathBuf {
    data_dir.join("auditor.token")
}

/// The stack's auditor token, which its collectors require for the voter listing.
pub fn read_auditor_token(data_dir: &Path) -> Result<String, StackError> {
    let path = auditor_token_path(data_dir);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(text.trim().to_owned()),
        Err(source) => Err(StackError::NoAuditorToken { path, source }),
    }
}

/// Creates a bearer token file (32 random bytes, hex, mode 0600) unless it exists, and
/// returns the token.
pub(crate) fn ensure_token_file(path: &Path) -> Result<String, StackError> {
    if !path.exists() {
        let bytes: [u8; 32] = edgevote_signer::random::bytes()?;
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        edgevote_signer::keyfile::write_atomic(path, format!("{token}\n").as_bytes(), 0o600)?;
    }
    let text = std::fs::read_to_string(path).map_err(StackError::file("reading", path))?;
    Ok(text.trim().to_owned())
}

/// Reads and verifies a signed election manifest file.
pub fn load_manifest(path: &Path, keys: &KeySet) -> Result<ElectionManifest, StackError> {
    let len = std::fs::metadata(path)
        .map_err(StackError::file("cannot read", path))?
        .len();
    if len > MAX_MANIFEST_FILE_BYTES {
        return Err(StackError::Protocol(format!(
            "{} is {len} bytes, more than {MAX_MANIFEST_FILE_BYTES}",
            path.display()
        )));
    }
    let compact = std::fs::read_to_string(path).map_err(StackError::file("cannot read", path))?;
    edgevote_shared::verify::<ElectionManifest>(compact.trim(), keys)
        .map(|v| v.doc)
        .map_err(|source| StackError::Refused {
            what: format!("manifest {} refused", path.display()),
            source,
        })
}

/// What every client of a stack works from: its key store, the key set as published now, and
/// its verified election.
pub struct StackInputs {
    /// The stack's key store (its authority key issues the voters' tokens).
    pub store: KeyStore,
    /// The published key set.
    pub keys: KeySet,
    /// The stack's election, verified against `keys`.
    pub manifest: ElectionManifest,
}

impl StackInputs {
    /// Opens the key store and verifies the election `stack` names.
    pub fn open(stack: &StackInfo) -> Result<StackInputs, StackError> {
        let store = KeyStore::open(&stack.keys_dir)?;
        let keys = store.keyset()?;
        let manifest = load_manifest(&stack.election_path, &keys)?;
        Ok(StackInputs {
            store,
            keys,
            manifest,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn stack_file_round_trips_and_names_its_regions() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            read_stack(dir.path()),
            Err(StackError::NoStack { .. })
        ));
        let stack = StackInfo {
            election: "e".into(),
            keys_dir: dir.path().join("keys"),
            election_path: dir.path().join("election.jws"),
            aws: None,
            regions: ["r1", "r2"]
                .map(|name| RegionInfo {
                    name: name.into(),
                    edge_url: format!("http://{name}.edge"),
                    collector_url: format!("http://{name}.collector"),
                })
                .to_vec(),
        };
        write_stack(dir.path(), &stack).unwrap();
        let read = read_stack(dir.path()).unwrap();
        assert_eq!(read, stack);
        assert_eq!(read.region(None).unwrap().name, "r1");
        assert_eq!(read.region(Some("r2")).unwrap().name, "r2");
        let missing = read.region(Some("r3")).unwrap_err().to_string();
        assert_eq!(missing, "no region r3 in the stack");
    }
}

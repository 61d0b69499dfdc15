//! The witness's durable state: the last cosigned tree head of each origin, one line each,
//! `<origin> <size> <base64 root>\n`, in one file rewritten atomically (temp file, fsync,
//! rename, fsync of the directory) before any cosignature leaves the witness.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use edgevote_shared::b64;
use edgevote_shared::merkle::{self, Hash};

use crate::witness::config::MAX_LOGS;
use crate::witness::server::WitnessError;

/// Longest state file read, in bytes.
const MAX_STATE_BYTES: u64 = 1024 * 1024;

/// The last cosigned (size, root) of each origin.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Heads(BTreeMap<String, (u64, Hash)>);

impl Heads {
    /// Reads the state file; a missing file is a witness that cosigned nothing yet.
    pub(crate) fn load(path: &Path) -> Result<Self, WitnessError> {
        let bad = |detail: String| WitnessError::State {
            path: path.to_owned(),
            detail,
        };
        let text = match edgevote_signer::keyfile::read_bounded(path, MAX_STATE_BYTES) {
            Ok(bytes) => String::from_utf8(bytes).map_err(|_| bad("not UTF-8".into()))?,
            Err(_) if !path.exists() => return Ok(Heads::default()),
            Err(e) => return Err(bad(e.to_string())),
        };
        let mut heads = BTreeMap::new();
        for (n, line) in text.lines().enumerate().take(MAX_LOGS * 4) {
            let (origin, head) = parse_line(line).ok_or_else(|| bad(format!("line {}", n + 1)))?;
            heads.insert(origin.to_owned(), head);
        }
        Ok(Heads(heads))
    }

    /// The last cosigned head of `origin`: the empty tree if none.
    pub(crate) fn get(&self, origin: &str) -> (u64, Hash) {
        self.0
            .get(origin)
            .copied()
            .unwrap_or((0, merkle::root(&[])))
    }

    /// These heads with `origin` set to `head`.
    pub(crate) fn with(&self, origin: &str, head: (u64, Hash)) -> Heads {
        let mut next = self.clone();
        next.0.insert(origin.to_owned(), head);
        next
    }

    /// The state file's text.
    fn text(&self) -> String {
        self.0
            .iter()
            .map(|(origin, (size, root))| format!("{origin} {size} {}\n", b64::encode_std(root)))
            .collect()
    }

    /// Writes the state file atomically (blocking: call it off the async threads).
    pub(crate) fn persist(&self, path: PathBuf) -> Result<(), WitnessError> {
        edgevote_signer::keyfile::write_atomic(&path, self.text().as_bytes(), 0o644)
            .map_err(|e| WitnessError::StateWrite(e.to_string()))
    }
}

fn parse_line(line: &str) -> Option<(&str, (u64, Hash))> {
    let mut parts = line.split(' ');
    let (origin, size, root) = (parts.next()?, parts.next()?, parts.next()?);
    let root: Hash = b64::decode_std("root", root).ok()?.try_into().ok()?;
    Some((origin, (size.parse().ok()?, root)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_round_trip_through_the_file() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("state");
        let empty = Heads::load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(empty.get("o"), (0, merkle::root(&[])));
        let heads = empty.with("o", (3, [7; 32])).with("p", (1, [1; 32]));
        heads
            .persist(path.clone())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(Heads::load(&path).unwrap_or_else(|e| panic!("{e}")), heads);
        std::fs::write(&path, "o three x\n").unwrap_or_else(|e| panic!("{e}"));
        assert!(Heads::load(&path).is_err());
    }
}

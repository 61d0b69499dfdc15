//! The bundle directory (`[admin] bundle_dir`): the deployed bundles, written so that a crash at
//! any point leaves the old state or the new one, never a component next to another bundle's
//! manifest.
//!
//! ```text
//! current.json             {"active": "b-<hex>", "previous": "b-<hex>" | null, "pinned": bool}
//! b-<hex>/component.wasm   one bundle per directory, named by a digest of its two files,
//! b-<hex>/manifest.jws     never modified once it has its name
//! .tmp-<hex>/              a bundle being written: ignored, removed by the next write
//! ```
//!
//! A write puts each new bundle into a fresh `.tmp-` directory, fsyncs both files and that
//! directory, renames it to its `b-` name and fsyncs the bundle directory. Only then does it
//! switch: `current.json.tmp`, fsync, rename over `current.json`, fsync the bundle directory.
//! That last rename is the commit point. Directories `current.json` no longer names are removed
//! afterwards. `pinned` records that the active bundle was chosen by an explicit operator
//! action (a rollback, or a deploy with `allow_downgrade`), which a restart must keep.
//!
//! A directory written by edgevote before this layout (`active.wasm`, `active.jws`) is still
//! read when there is no `current.json`.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use edgevote_shared::Digest32;
use serde::{Deserialize, Serialize};

/// The pointer file: which bundle directory is active.
pub const CURRENT: &str = "current.json";
/// The component inside a bundle's directory.
pub const COMPONENT: &str = "component.wasm";
/// The signed manifest inside a bundle's directory.
pub const MANIFEST: &str = "manifest.jws";
const TMP_PREFIX: &str = ".tmp-";
const BUNDLE_PREFIX: &str = "b-";
/// The files of the layout before `current.json` (read, then removed by the next write).
const LEGACY: [&str; 8] = [
    "active.wasm",
    "active.jws",
    "previous.wasm",
    "previous.jws",
    "active.wasm.tmp",
    "active.jws.tmp",
    "previous.wasm.tmp",
    "previous.jws.tmp",
];

/// A component and its signed manifest, as written.
#[derive(Debug, Clone, Copy)]
pub struct Pair<'a> {
    /// The component.
    pub wasm: &'a [u8],
    /// The signed manifest (compact JWS).
    pub manifest: &'a str,
}

impl Pair<'_> {
    /// The directory name: a digest of both files, so a name always means the same pair.
    pub fn dir_name(&self) -> String {
        let digest = Digest32::tagged(
            "edgevote/bundle-dir/v1",
            &[&Digest32::of(self.wasm).0, self.manifest.as_bytes()],
        );
        format!("{BUNDLE_PREFIX}{}", &digest.to_hex()[..32])
    }
}

/// `current.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Current {
    active: String,
    previous: Option<String>,
    pinned: bool,
}

/// The active bundle as found on disk (not verified yet).
#[derive(Debug)]
pub struct Deployed {
    /// The component.
    pub wasm: Vec<u8>,
    /// The signed manifest.
    pub manifest: String,
    /// The component's file, for messages.
    pub path: PathBuf,
    /// Chosen by an explicit rollback or allowed downgrade: a restart keeps it whatever the
    /// configured bundle.
    pub pinned: bool,
}

/// Reads the active bundle of `dir`: `Ok(None)` when nothing was ever deployed there, an error
/// naming the problem when `current.json` or the files it names are unreadable or malformed.
/// The pair is not verified here; the caller verifies it against its manifest.
pub fn read(dir: &Path) -> Result<Option<Deployed>, String> {
    let current = dir.join(CURRENT);
    let text = match std::fs::read_to_string(&current) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(read_legacy(dir)),
        Err(e) => return Err(format!("{}: {e}", current.display())),
    };
    let pointer: Current = serde_json::from_str(&text)
        .map_err(|e| format!("{}: malformed ({e})", current.display()))?;
    if !is_bundle_name(&pointer.active) {
        return Err(format!(
            "{}: {:?} is not a bundle directory name",
            current.display(),
            pointer.active
        ));
    }
    let bundle = dir.join(&pointer.active);
    let path = bundle.join(COMPONENT);
    let wasm = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let manifest_path = bundle.join(MANIFEST);
    let manifest = std::fs::read_to_string(&manifest_path)
        .map_err(|e| format!("{}: {e}", manifest_path.display()))?;
    Ok(Some(Deployed {
        wasm,
        manifest,
        path,
        pinned: pointer.pinned,
    }))
}

fn read_legacy(dir: &Path) -> Option<Deployed> {
    let path = dir.join("active.wasm");
    let wasm = std::fs::read(&path).ok()?;
    let manifest = std::fs::read_to_string(dir.join("active.jws")).ok()?;
    Some(Deployed {
        wasm,
        manifest,
        path,
        pinned: false,
    })
}

fn is_bundle_name(name: &str) -> bool {
    name.strip_prefix(BUNDLE_PREFIX).is_some_and(|hex| {
        hex.len() == 32 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// Makes `active` (and `previous`, the rollback target) the deployed bundles of `dir`, crash-safe
/// (see the module documentation).
pub fn write(
    dir: &Path,
    active: Pair<'_>,
    previous: Option<Pair<'_>>,
    pinned: bool,
) -> std::io::Result<()> {
    Writer { crash_after: None }
        .write(dir, active, previous, pinned)
        .map(|_| ())
}

/// [`write`] that stops, as a crash would, after `ops` file system operations (a file write
/// that is stopped leaves half its bytes). Returns whether the write completed. For tests of
/// the crash states.
#[doc(hidden)]
pub fn write_crashing_after(
    dir: &Path,
    active: Pair<'_>,
    previous: Option<Pair<'_>>,
    pinned: bool,
    ops: usize,
) -> std::io::Result<bool> {
    Writer {
        crash_after: Some(ops),
    }
    .write(dir, active, previous, pinned)
}

/// Stops a write after a number of operations (`None`: never).
struct Writer {
    crash_after: Option<usize>,
}

/// Whether the write ran to the end (`false`: it stopped at a simulated crash).
type Completed = bool;

/// Ends the write at a simulated crash.
macro_rules! op {
    ($self:ident) => {
        if !$self.step() {
            return Ok(false);
        }
    };
}

impl Writer {
    /// Counts one operation; `false` when the simulated crash happens before it.
    fn step(&mut self) -> bool {
        match &mut self.crash_after {
            None => true,
            Some(0) => false,
            Some(left) => {
                *left -= 1;
                true
            }
        }
    }

    fn write(
        mut self,
        dir: &Path,
        active: Pair<'_>,
        previous: Option<Pair<'_>>,
        pinned: bool,
    ) -> std::io::Result<Completed> {
        op!(self);
        std::fs::create_dir_all(dir)?;
        for pair in std::iter::once(active).chain(previous) {
            if !self.stage(dir, pair)? {
                return Ok(false);
            }
        }
        let current = Current {
            active: active.dir_name(),
            previous: previous.map(|p| p.dir_name()),
            pinned,
        };
        let tmp = dir.join(format!("{CURRENT}.tmp"));
        let bytes = serde_json::to_vec(&current).map_err(std::io::Error::other)?;
        if !self.write_file(&tmp, &bytes)? {
            return Ok(false);
        }
        op!(self);
        std::fs::rename(&tmp, dir.join(CURRENT))?;
        op!(self);
        sync_dir(dir)?;
        // Committed. What follows only tidies up: a crash here leaves unused directories.
        let keep: Vec<String> = std::iter::once(current.active)
            .chain(current.previous)
            .collect();
        for entry in std::fs::read_dir(dir)? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            let unused = (name.starts_with(BUNDLE_PREFIX) && !keep.contains(&name))
                || name.starts_with(TMP_PREFIX)
                || LEGACY.contains(&name.as_str());
            if unused {
                op!(self);
                remove(&dir.join(&name));
            }
        }
        Ok(true)
    }

    /// Writes `pair` into its own directory of `dir` unless it is already there.
    fn stage(&mut self, dir: &Path, pair: Pair<'_>) -> std::io::Result<Completed> {
        let name = pair.dir_name();
        let target = dir.join(&name);
        if target.is_dir() {
            return Ok(true); // renamed into place only once complete and synced
        }
        let tmp = dir.join(format!("{TMP_PREFIX}{}", &name[BUNDLE_PREFIX.len()..]));
        if tmp.exists() {
            op!(self);
            remove(&tmp); // a crashed earlier write of the same bundle
        }
        op!(self);
        std::fs::create_dir(&tmp)?;
        if !self.write_file(&tmp.join(COMPONENT), pair.wasm)? {
            return Ok(false);
        }
        if !self.write_file(&tmp.join(MANIFEST), pair.manifest.as_bytes())? {
            return Ok(false);
        }
        op!(self);
        sync_dir(&tmp)?;
        op!(self);
        std::fs::rename(&tmp, &target)?;
        op!(self);
        sync_dir(dir)?;
        Ok(true)
    }

    /// Writes and fsyncs one new file (two operations: a crash between them leaves half the
    /// bytes, unsynced).
    fn write_file(&mut self, path: &Path, bytes: &[u8]) -> std::io::Result<Completed> {
        op!(self);
        let mut file = std::fs::File::create(path)?;
        if !self.step() {
            file.write_all(&bytes[..bytes.len() / 2])?;
            return Ok(false);
        }
        file.write_all(bytes)?;
        file.sync_all()?;
        Ok(true)
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

fn remove(path: &Path) {
    let removed = if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
    if let Err(e) = removed {
        tracing::warn!(path = %path.display(), error = %e, "could not remove an unused bundle file");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_before_they_become_paths() {
        let a = Pair {
            wasm: b"a",
            manifest: "m",
        };
        assert!(is_bundle_name(&a.dir_name()));
        for bad in ["../etc", "b-", "b-0123", &format!("b-{}", "A".repeat(32))] {
            assert!(!is_bundle_name(bad), "{bad}");
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(CURRENT),
            r#"{"active":"../x","previous":null,"pinned":false}"#,
        )
        .unwrap();
        let refused = read(dir.path()).unwrap_err();
        assert!(refused.contains("not a bundle directory name"), "{refused}");
    }

    #[test]
    fn a_write_stopped_anywhere_leaves_the_old_or_the_new_pair() {
        let (old, new) = (
            Pair {
                wasm: b"old component",
                manifest: "old manifest",
            },
            Pair {
                wasm: b"new component",
                manifest: "new manifest",
            },
        );
        let mut saw_new = false;
        for ops in 0.. {
            let dir = tempfile::tempdir().unwrap();
            write(dir.path(), old, None, false).unwrap();
            let done = write_crashing_after(dir.path(), new, Some(old), false, ops).unwrap();
            let found = read(dir.path()).unwrap().expect("a deployed bundle");
            let pair = (found.wasm.as_slice(), found.manifest.as_str());
            if pair == (new.wasm, new.manifest) {
                saw_new = true;
            } else {
                assert_eq!(pair, (old.wasm, old.manifest), "after {ops} operations");
                assert!(!saw_new, "back to the old pair after {ops} operations");
            }
            if done {
                assert!(saw_new);
                let left: Vec<String> = std::fs::read_dir(dir.path())
                    .unwrap()
                    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect();
                assert_eq!(left.len(), 3, "current.json and two bundles: {left:?}");
                break;
            }
        }
    }
}

//! The live receipts log in the C2SP `tlog-tiles` layout: an append-only RFC 6962 log stored as
//! static files that any HTTP server (or `audit serve`, or a collector) can serve, and any
//! client can turn into tree heads and proofs without trusting the server.
//!
//! # Layout (C2SP tlog-tiles)
//!
//! - `tile/<L>/<N>`: hash tile `N` of level `L`: the 256 hashes of tree level `8·L` with indexes
//!   `256·N ..= 256·N + 255` (level 0: the leaf hashes), 32 bytes each, concatenated. A tile
//!   still filling is written as `tile/<L>/<N>.p/<W>` with its first `W` (1..=255) hashes.
//! - `tile/entries/<N>[.p/<W>]`: the entries themselves, 256 to a bundle, each as a 2-byte
//!   big-endian length and its bytes.
//! - `N` is written in groups of three digits, all but the last prefixed with `x`
//!   (`1234067` → `x001/x234/067`).
//! - `checkpoint`: the latest signed checkpoint (see [`edgevote_shared::checkpoint`]).
//!
//! [`TileLog`] appends entries (deduplicated by an on-disk index, so a vote id redelivered
//! after a crash is appended once) and writes the tiles; the `size` file is its commit point,
//! replaced only after every tile of the new size is durable. [`TiledTree`] reads tiles from
//! any [`TileSource`] and computes tree heads and inclusion proofs from them.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use edgevote_shared::merkle::{self, Hash};
use redb::ReadableDatabase;

/// Hashes per tile (2^8).
pub const TILE_WIDTH: u64 = 256;
/// Longest entry (a vote id is 43 characters).
pub const MAX_ENTRY_BYTES: usize = 1024;
/// Most entries one [`TileLog::append`] takes.
pub const MAX_APPEND: usize = 100_000;
/// Most tiles one proof may read (a tree of 2^64 leaves needs far fewer).
const MAX_TILE_READS: usize = 4096;

/// Why the tile log failed. The stage names the operation.
#[derive(Debug, thiserror::Error)]
pub enum TileError {
    /// A file could not be read or written.
    #[error("{stage}: {path}: {source}")]
    Io {
        /// The operation.
        stage: &'static str,
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A tile or bundle is not what its path says, or an argument is out of bounds.
    #[error("{stage}: {detail}")]
    Invalid {
        /// The operation.
        stage: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// The entry index could not be read or written.
    #[error("index: {0}")]
    Index(String),
}

fn invalid(stage: &'static str, detail: impl Into<String>) -> TileError {
    TileError::Invalid {
        stage,
        detail: detail.into(),
    }
}

/// The path of tile `index` at `level` (`None`: an entry bundle) holding `width` hashes or
/// entries (a partial tile when under [`TILE_WIDTH`]).
pub fn tile_path(level: Option<u8>, index: u64, width: u64) -> String {
    let level = level.map_or_else(|| "entries".to_owned(), |l| l.to_string());
    let digits = index.to_string();
    let padded = format!("{digits:0>width$}", width = digits.len().div_ceil(3) * 3);
    let groups: Vec<&str> = padded
        .as_bytes()
        .chunks(3)
        .map(|g| std::str::from_utf8(g).expect("ASCII digits"))
        .collect();
    let (last, rest) = groups.split_last().expect("at least one group");
    let mut path = format!("tile/{level}/");
    for group in rest {
        path.push_str(&format!("x{group}/"));
    }
    path.push_str(last);
    if width < TILE_WIDTH {
        path.push_str(&format!(".p/{width}"));
    }
    path
}

/// Where tiles are read from.
pub trait TileSource {
    /// The bytes at `path` (relative, as [`tile_path`] writes it).
    fn read(&self, path: &str) -> Result<Vec<u8>, TileError>;
}

/// Tiles in a local folder.
#[derive(Debug, Clone)]
pub struct FolderSource(pub PathBuf);

impl TileSource for FolderSource {
    fn read(&self, path: &str) -> Result<Vec<u8>, TileError> {
        let full = self.0.join(path);
        std::fs::read(&full).map_err(|source| TileError::Io {
            stage: "read tile",
            path: full.display().to_string(),
            source,
        })
    }
}

/// The tree of the first `size` entries of a tiled log, read through a [`TileSource`].
pub struct TiledTree<'a, S: TileSource> {
    source: &'a S,
    size: u64,
    tiles: RefCell<HashMap<String, Vec<u8>>>,
}

impl<'a, S: TileSource> TiledTree<'a, S> {
    /// The tree of `size` leaves stored in `source`.
    pub fn new(source: &'a S, size: u64) -> Self {
        TiledTree {
            source,
            size,
            tiles: RefCell::new(HashMap::new()),
        }
    }

    /// The tree's root (RFC 6962 tree head).
    pub fn root(&self) -> Result<Hash, TileError> {
        self.range_hash(0, self.size)
    }

    /// The RFC 6962 inclusion proof of leaf `index`.
    pub fn inclusion_proof(&self, index: u64) -> Result<Vec<Hash>, TileError> {
        if index >= self.size {
            return Err(invalid(
                "inclusion proof",
                format!("leaf {index} of {}", self.size),
            ));
        }
        let mut proof = Vec::new();
        self.path(index, 0, self.size, &mut proof)?;
        Ok(proof)
    }

    /// The RFC 9162 consistency proof from the tree of `old_size` leaves to this one.
    pub fn consistency_proof(&self, old_size: u64) -> Result<Vec<Hash>, TileError> {
        if old_size > self.size {
            return Err(invalid(
                "consistency proof",
                format!("from {old_size} to {} leaves", self.size),
            ));
        }
        let mut proof = Vec::new();
        if old_size > 0 && old_size < self.size {
            self.subproof(old_size, 0, self.size, true, &mut proof)?;
        }
        Ok(proof)
    }

    /// RFC 9162 SUBPROOF(m, D[a:b], complete).
    fn subproof(
        &self,
        m: u64,
        a: u64,
        b: u64,
        complete: bool,
        out: &mut Vec<Hash>,
    ) -> Result<(), TileError> {
        if m == b - a {
            if !complete {
                out.push(self.range_hash(a, b)?);
            }
            return Ok(());
        }
        let k = split(b - a);
        if m <= k {
            self.subproof(m, a, a + k, complete, out)?;
            out.push(self.range_hash(a + k, b)?);
        } else {
            self.subproof(m - k, a + k, b, false, out)?;
            out.push(self.range_hash(a, a + k)?);
        }
        Ok(())
    }

    /// The hash of leaf `index`.
    pub fn leaf(&self, index: u64) -> Result<Hash, TileError> {
        self.stored_hash(0, index)
    }

    /// RFC 6962 PATH(m, D[a:b]) (the proof, bottom first).
    fn path(&self, m: u64, a: u64, b: u64, out: &mut Vec<Hash>) -> Result<(), TileError> {
        if b - a <= 1 {
            return Ok(());
        }
        let k = split(b - a);
        if m < a + k {
            self.path(m, a, a + k, out)?;
            out.push(self.range_hash(a + k, b)?);
        } else {
            self.path(m, a + k, b, out)?;
            out.push(self.range_hash(a, a + k)?);
        }
        Ok(())
    }

    /// MTH(D[a:b]) of RFC 6962, from the largest stored subtrees.
    fn range_hash(&self, a: u64, b: u64) -> Result<Hash, TileError> {
        let n = b - a;
        if n == 0 {
            return Ok(merkle::root(&[]));
        }
        if n.is_power_of_two() && a.is_multiple_of(n) {
            return self.complete(n.trailing_zeros(), a >> n.trailing_zeros());
        }
        let k = split(n);
        Ok(merkle::node_hash(
            &self.range_hash(a, a + k)?,
            &self.range_hash(a + k, b)?,
        ))
    }

    /// The hash of the complete subtree of height `h` with index `k`: combines the `2^(h % 8)`
    /// stored hashes of level `h / 8` under it.
    fn complete(&self, h: u32, k: u64) -> Result<Hash, TileError> {
        let (level, below) = (h / 8, h % 8);
        let first = k << below;
        let mut hashes = (0..1u64 << below)
            .map(|j| self.stored_hash(level, first + j))
            .collect::<Result<Vec<Hash>, TileError>>()?;
        while hashes.len() > 1 {
            hashes = hashes
                .chunks(2)
                .map(|pair| merkle::node_hash(&pair[0], &pair[1]))
                .collect();
        }
        Ok(hashes[0])
    }

    /// Stored hash `j` of level `level` (tree level `8·level`).
    fn stored_hash(&self, level: u32, j: u64) -> Result<Hash, TileError> {
        let count = self.size >> (8 * level);
        if j >= count {
            return Err(invalid(
                "tile",
                format!("hash {j} of level {level} beyond the tree"),
            ));
        }
        let tile = j / TILE_WIDTH;
        let width = (count - tile * TILE_WIDTH).min(TILE_WIDTH);
        let level = u8::try_from(level).map_err(|_| invalid("tile", "level over 255"))?;
        let path = tile_path(Some(level), tile, width);
        let offset = usize::try_from(j % TILE_WIDTH).expect("under 256") * 32;
        let mut tiles = self.tiles.borrow_mut();
        if !tiles.contains_key(&path) {
            if tiles.len() >= MAX_TILE_READS {
                return Err(invalid("tile", "too many tiles for one proof"));
            }
            let bytes = self.read_tile(&path, level, tile, width)?;
            tiles.insert(path.clone(), bytes);
        }
        let bytes = &tiles[&path];
        Ok(bytes[offset..offset + 32].try_into().expect("32 bytes"))
    }
}

impl<S: TileSource> TiledTree<'_, S> {
    /// Tile `tile` of `level` as `width` hashes: the partial tile, or (as C2SP allows, once the
    /// log grew past it) the prefix of the full one.
    fn read_tile(
        &self,
        path: &str,
        level: u8,
        tile: u64,
        width: u64,
    ) -> Result<Vec<u8>, TileError> {
        let wanted = usize::try_from(width * 32).expect("at most 8 KiB");
        let bytes = match self.source.read(path) {
            Ok(bytes) => bytes,
            Err(_) if width < TILE_WIDTH => {
                let mut full = self
                    .source
                    .read(&tile_path(Some(level), tile, TILE_WIDTH))?;
                if full.len() != wanted.max(TILE_WIDTH as usize * 32) {
                    return Err(invalid(
                        "tile",
                        format!("{path}: the full tile is cut short"),
                    ));
                }
                full.truncate(wanted);
                full
            }
            Err(e) => return Err(e),
        };
        if bytes.len() != wanted {
            return Err(invalid(
                "tile",
                format!("{path} holds {} bytes", bytes.len()),
            ));
        }
        Ok(bytes)
    }
}

/// The largest power of two smaller than `n` (n ≥ 2).
fn split(n: u64) -> u64 {
    1 << (63 - (n - 1).leading_zeros())
}

/// Parses an entry bundle.
pub fn bundle_entries(bytes: &[u8]) -> Result<Vec<Vec<u8>>, TileError> {
    let mut entries = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let (len, tail) = rest
            .split_first_chunk::<2>()
            .ok_or_else(|| invalid("bundle", "truncated length"))?;
        let len = usize::from(u16::from_be_bytes(*len));
        if tail.len() < len || entries.len() as u64 >= TILE_WIDTH {
            return Err(invalid("bundle", "truncated entry or too many entries"));
        }
        entries.push(tail[..len].to_vec());
        rest = &tail[len..];
    }
    Ok(entries)
}

fn bundle_bytes(entries: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in entries {
        let len = u16::try_from(entry.len()).expect("entries are bounded");
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(entry);
    }
    out
}

/// Writes `bytes` to `dir/path` durably: a temporary file, fsync, rename.
pub fn write_file(dir: &Path, path: &str, bytes: &[u8]) -> Result<(), TileError> {
    let full = dir.join(path);
    let io = |stage: &'static str, p: &Path| {
        let path = p.display().to_string();
        move |source| TileError::Io {
            stage,
            path,
            source,
        }
    };
    let parent = full.parent().expect("tile paths have a parent");
    std::fs::create_dir_all(parent).map_err(io("create tile folder", parent))?;
    let temp = full.with_extension("tmp");
    let mut file = std::fs::File::create(&temp).map_err(io("write tile", &temp))?;
    file.write_all(bytes).map_err(io("write tile", &temp))?;
    file.sync_all().map_err(io("sync tile", &temp))?;
    std::fs::rename(&temp, &full).map_err(io("rename tile", &full))
}

/// Name of the commit-point file.
const SIZE_FILE: &str = "size";
/// Name of the entry index.
const INDEX_FILE: &str = "index.redb";
const INDEX: redb::TableDefinition<&[u8], u64> = redb::TableDefinition::new("entries");
/// How many of the log's entries the index covers (the index is a cache of the bundles: its
/// commits are not fsync'd one by one, and opening the log indexes whatever it lacks).
const INDEXED: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("indexed");

/// An append-only tiled log in a folder.
pub struct TileLog {
    dir: PathBuf,
    size: u64,
    /// Per level, the hashes of its tile still filling.
    partial: Vec<Vec<Hash>>,
    /// The entries of the bundle still filling.
    bundle: Vec<Vec<u8>>,
    index: redb::Database,
}

impl std::fmt::Debug for TileLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TileLog")
            .field("dir", &self.dir)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

fn index_error(e: impl std::fmt::Display) -> TileError {
    TileError::Index(e.to_string())
}

impl TileLog {
    /// Opens (or creates) the log in `dir`, at the size its last append committed.
    pub fn open(dir: &Path) -> Result<Self, TileError> {
        std::fs::create_dir_all(dir).map_err(|source| TileError::Io {
            stage: "create log folder",
            path: dir.display().to_string(),
            source,
        })?;
        let size = match std::fs::read_to_string(dir.join(SIZE_FILE)) {
            Ok(text) => text
                .trim()
                .parse()
                .map_err(|_| invalid("open", format!("size file holds {text:?}")))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(source) => {
                return Err(TileError::Io {
                    stage: "read size",
                    path: dir.join(SIZE_FILE).display().to_string(),
                    source,
                });
            }
        };
        let index = redb::Database::create(dir.join(INDEX_FILE)).map_err(index_error)?;
        let source = FolderSource(dir.to_owned());
        let mut partial = Vec::new();
        for level in 0..=7u8 {
            let count = size >> (8 * u32::from(level));
            let width = count % TILE_WIDTH;
            if count == 0 {
                break;
            }
            let hashes = if width == 0 {
                Vec::new()
            } else {
                let bytes = source.read(&tile_path(Some(level), count / TILE_WIDTH, width))?;
                bytes.as_chunks::<32>().0.to_vec()
            };
            partial.push(hashes);
        }
        let width = size % TILE_WIDTH;
        let bundle = if width == 0 {
            Vec::new()
        } else {
            bundle_entries(&source.read(&tile_path(None, size / TILE_WIDTH, width))?)?
        };
        let log = TileLog {
            dir: dir.to_owned(),
            size,
            partial,
            bundle,
            index,
        };
        log.reindex()?;
        Ok(log)
    }

    /// Indexes the committed entries the index lacks (after a crash lost its last commits).
    fn reindex(&self) -> Result<(), TileError> {
        let txn = self.index.begin_read().map_err(index_error)?;
        let indexed = match txn.open_table(INDEXED) {
            Ok(table) => table
                .get("size")
                .map_err(index_error)?
                .map_or(0, |v| v.value()),
            Err(redb::TableError::TableDoesNotExist(_)) => 0,
            Err(e) => return Err(index_error(e)),
        };
        drop(txn);
        if indexed >= self.size {
            return Ok(());
        }
        let entries = (indexed..self.size)
            .map(|p| self.entry_at(p))
            .collect::<Result<Vec<_>, _>>()?;
        let refs: Vec<&[u8]> = entries.iter().map(Vec::as_slice).collect();
        self.commit_index(&refs, indexed, redb::Durability::Immediate)
    }

    /// The committed entry at leaf `p` (< size), from its bundle.
    fn entry_at(&self, p: u64) -> Result<Vec<u8>, TileError> {
        let filling = self.size - self.bundle.len() as u64;
        if p >= filling {
            return Ok(self.bundle[usize::try_from(p - filling).expect("under 256")].clone());
        }
        let path = tile_path(None, p / TILE_WIDTH, TILE_WIDTH);
        let bundle = bundle_entries(&FolderSource(self.dir.clone()).read(&path)?)?;
        let at = usize::try_from(p % TILE_WIDTH).expect("under 256");
        bundle
            .into_iter()
            .nth(at)
            .ok_or_else(|| invalid("entry", format!("{path} lacks entry {at}")))
    }

    /// Makes the index's last commits durable (cheap when they are).
    pub fn sync_index(&self) -> Result<(), TileError> {
        let mut txn = self.index.begin_write().map_err(index_error)?;
        txn.set_durability(redb::Durability::Immediate)
            .map_err(index_error)?;
        txn.commit().map_err(index_error)
    }

    /// Entries committed.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The folder the tiles are in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The leaf index of `entry`, if it is in the log.
    pub fn index_of(&self, entry: &[u8]) -> Result<Option<u64>, TileError> {
        Ok(self.positions(&[entry])?.pop().flatten())
    }

    /// The leaf of each of `entries` in the committed log, if any (one read transaction).
    fn positions(&self, entries: &[&[u8]]) -> Result<Vec<Option<u64>>, TileError> {
        let txn = self.index.begin_read().map_err(index_error)?;
        let table = match txn.open_table(INDEX) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(vec![None; entries.len()]),
            Err(e) => return Err(index_error(e)),
        };
        entries
            .iter()
            .map(|entry| {
                let found = table.get(*entry).map_err(index_error)?.map(|v| v.value());
                self.confirmed(entry, found)
            })
            .collect()
    }

    /// `position` if the committed log holds `entry` there. An index entry can be stale: one
    /// written by an append that crashed before its size was committed may point past the
    /// size, or at a place a later append filled with another entry.
    fn confirmed(&self, entry: &[u8], position: Option<u64>) -> Result<Option<u64>, TileError> {
        match position {
            Some(p) if p < self.size && self.entry_at(p)? == entry => Ok(Some(p)),
            _ => Ok(None),
        }
    }

    /// Appends the entries not already in the log (in order, each once); returns the new size.
    /// Durable when it returns: tiles and bundles first, then the size (the index follows).
    pub fn append(&mut self, entries: &[&[u8]]) -> Result<u64, TileError> {
        self.append_new_and_known(&[], entries)
    }

    /// [`TileLog::append`] for a caller that knows `new` are not in the log (a store just
    /// stored them for the first time), so only `maybe_known` are looked up in the index.
    pub fn append_new_and_known(
        &mut self,
        new: &[&[u8]],
        maybe_known: &[&[u8]],
    ) -> Result<u64, TileError> {
        let entries: Vec<&[u8]> = new.iter().chain(maybe_known).copied().collect();
        if entries.len() > MAX_APPEND {
            return Err(invalid(
                "append",
                format!("{} entries at once", entries.len()),
            ));
        }
        if let Some(long) = entries.iter().find(|e| e.len() > MAX_ENTRY_BYTES) {
            return Err(invalid(
                "append",
                format!("an entry of {} bytes", long.len()),
            ));
        }
        let mut known = vec![false; new.len()];
        known.extend(self.positions(maybe_known)?.iter().map(Option::is_some));
        debug_assert!(
            new.iter()
                .all(|e| self.index_of(e).ok().flatten().is_none()),
            "a new entry is not in the log yet"
        );
        let mut seen = std::collections::HashSet::new();
        let fresh: Vec<&[u8]> = entries
            .iter()
            .zip(known)
            .filter(|(entry, known)| !known && seen.insert(**entry))
            .map(|(entry, _)| *entry)
            .collect();
        if fresh.is_empty() {
            return Ok(self.size);
        }
        let first = self.size;
        for entry in &fresh {
            self.push(entry)?;
        }
        self.write_partials()?;
        write_file(&self.dir, SIZE_FILE, self.size.to_string().as_bytes())?;
        // Not fsync'd: a crash that loses it is repaired from the bundles when the log opens.
        self.commit_index(&fresh, first, redb::Durability::None)?;
        Ok(self.size)
    }

    /// Adds one entry: its bundle, its leaf hash, and every tile it completes.
    fn push(&mut self, entry: &[u8]) -> Result<(), TileError> {
        self.bundle.push(entry.to_vec());
        if self.bundle.len() as u64 == TILE_WIDTH {
            let bytes = bundle_bytes(&self.bundle);
            write_file(
                &self.dir,
                &tile_path(None, self.size / TILE_WIDTH, TILE_WIDTH),
                &bytes,
            )?;
            self.bundle.clear();
        }
        let mut hash = merkle::leaf_hash(entry);
        let mut level = 0usize;
        let mut count = self.size;
        loop {
            if self.partial.len() == level {
                self.partial.push(Vec::new());
            }
            self.partial[level].push(hash);
            if self.partial[level].len() as u64 != TILE_WIDTH {
                break;
            }
            let tile = std::mem::take(&mut self.partial[level]);
            let bytes: Vec<u8> = tile.iter().flatten().copied().collect();
            let level_u8 = u8::try_from(level).map_err(|_| invalid("append", "log too large"))?;
            let path = tile_path(Some(level_u8), count / TILE_WIDTH, TILE_WIDTH);
            write_file(&self.dir, &path, &bytes)?;
            hash = merkle::root(&tile);
            count /= TILE_WIDTH;
            level += 1;
        }
        self.size += 1;
        Ok(())
    }

    /// Writes every level's tile still filling, and the bundle still filling.
    fn write_partials(&self) -> Result<(), TileError> {
        for (level, hashes) in self.partial.iter().enumerate() {
            if hashes.is_empty() {
                continue;
            }
            let count = self.size >> (8 * level);
            let level = u8::try_from(level).map_err(|_| invalid("append", "log too large"))?;
            let path = tile_path(Some(level), count / TILE_WIDTH, hashes.len() as u64);
            let bytes: Vec<u8> = hashes.iter().flatten().copied().collect();
            write_file(&self.dir, &path, &bytes)?;
        }
        if !self.bundle.is_empty() {
            let path = tile_path(None, self.size / TILE_WIDTH, self.bundle.len() as u64);
            write_file(&self.dir, &path, &bundle_bytes(&self.bundle))?;
        }
        Ok(())
    }

    /// Indexes `entries` at `first`, `first + 1`, ... and records how far the index reaches.
    fn commit_index(
        &self,
        entries: &[&[u8]],
        first: u64,
        durability: redb::Durability,
    ) -> Result<(), TileError> {
        let mut txn = self.index.begin_write().map_err(index_error)?;
        txn.set_durability(durability).map_err(index_error)?;
        {
            let mut table = txn.open_table(INDEX).map_err(index_error)?;
            for (i, entry) in entries.iter().enumerate() {
                table
                    .insert(*entry, first + i as u64)
                    .map_err(index_error)?;
            }
            let mut reach = txn.open_table(INDEXED).map_err(index_error)?;
            let end = first + entries.len() as u64;
            reach.insert("size", end).map_err(index_error)?;
        }
        txn.commit().map_err(index_error)
    }

    /// The root of the committed tree, read back from the tiles written.
    pub fn root(&self) -> Result<Hash, TileError> {
        TiledTree::new(&FolderSource(self.dir.clone()), self.size).root()
    }
}

//! The live receipts log in the C2SP `tlog-tiles` layout: an append-only RFC 6962 log stored as
//! static files that any HTTP server (or `audit serve`, or a collector) can serve, and any
//! client can turn into tree heads and proofs without trusting the server. The layout and the
//! reading side ([`TiledTree`], [`TileSource`], [`tile_path`]) are in
//! [`edgevote_shared::tiles`], which also builds for the browser's verifier; they are
//! re-exported here.
//!
//! [`TileLog`] appends entries (deduplicated by an on-disk index, so a vote id redelivered
//! after a crash is appended once) and writes the tiles; the `size` file is its commit point,
//! overwritten only after the entries of the new size are durable (the tiles still filling are
//! written when a tree head is computed, before any checkpoint names the size). [`TiledTree`]
//! reads tiles from any [`TileSource`] and computes tree heads and inclusion proofs from them.

use std::io::Write;
use std::path::{Path, PathBuf};

use edgevote_shared::merkle::{self, Hash};
pub use edgevote_shared::tiles::{
    TILE_WIDTH, TileError as ReadError, TileSource, TiledTree, bundle_entries, tile_path,
};
use redb::ReadableDatabase;

/// Longest entry (a vote id is 43 characters).
pub const MAX_ENTRY_BYTES: usize = 1024;
/// Most entries one [`TileLog::append`] takes.
pub const MAX_APPEND: usize = 100_000;
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
    /// The tiles written could not be read back as a tree.
    #[error(transparent)]
    Read(#[from] ReadError),
}

fn invalid(stage: &'static str, detail: impl Into<String>) -> TileError {
    TileError::Invalid {
        stage,
        detail: detail.into(),
    }
}

/// Tiles in a local folder.
#[derive(Debug, Clone)]
pub struct FolderSource(pub PathBuf);

impl TileSource for FolderSource {
    fn read(&self, path: &str) -> Result<Vec<u8>, ReadError> {
        let full = self.0.join(path);
        std::fs::read(&full).map_err(|e| ReadError::Read {
            path: full.display().to_string(),
            detail: e.to_string(),
        })
    }
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

/// The error of an I/O operation `stage` on `path`.
fn io_error(stage: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> TileError + use<> {
    let path = path.display().to_string();
    move |source| TileError::Io {
        stage,
        path,
        source,
    }
}

/// Writes `bytes` to `dir/path` durably: a temporary file, fsync, rename.
pub fn write_file(dir: &Path, path: &str, bytes: &[u8]) -> Result<(), TileError> {
    let full = dir.join(path);
    let parent = full.parent().expect("tile paths have a parent");
    std::fs::create_dir_all(parent).map_err(io_error("create tile folder", parent))?;
    let temp = full.with_extension("tmp");
    let mut file = std::fs::File::create(&temp).map_err(io_error("write tile", &temp))?;
    file.write_all(bytes)
        .map_err(io_error("write tile", &temp))?;
    file.sync_all().map_err(io_error("sync tile", &temp))?;
    std::fs::rename(&temp, &full).map_err(io_error("rename tile", &full))
}

/// Name of the commit-point file: the committed size in decimal, space-padded to
/// [`SIZE_FILE_BYTES`].
const SIZE_FILE: &str = "size";
/// Bytes of the size file. After its first write (a new file renamed into place) it is
/// overwritten in place: one write of these 20 bytes at offset 0, inside one disk sector, then
/// `fdatasync`. A sector write is atomic (the same assumption PostgreSQL makes for its 512-byte
/// control file), so after a crash the file holds the old size or the new one, never a mix.
/// Replacing it by rename on every append instead deleted an inode per append, and ext4 then
/// scans past every recently deleted inode to allocate the next file's: measured at 15% of the
/// whole stack's CPU under load.
const SIZE_FILE_BYTES: usize = 20;
/// Bytes of a filling file's header: the index of its bundle, little-endian. The entries follow
/// in bundle encoding, the committed ones first (see [`filling_name`]).
const FILLING_HEADER_BYTES: usize = 8;
/// Name of the entry index.
const INDEX_FILE: &str = "index.redb";
const INDEX: redb::TableDefinition<&[u8], u64> = redb::TableDefinition::new("entries");
/// How many of the log's entries the index covers (the index is a cache of the bundles: its
/// commits are not fsync'd one by one, and opening the log indexes whatever it lacks).
const INDEXED: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("indexed");

/// The entries of the bundle still filling at the committed `size`: the first ones of its
/// filling file (every committed append wrote that file, for its bundle, before its size), or,
/// for a log written before filling files existed, its partial bundle of exactly this width.
/// A full bundle is never read for this: one left by an append that crashed may hold entries
/// that were never committed after the committed ones.
fn committed_bundle(dir: &Path, size: u64) -> Result<Vec<Vec<u8>>, TileError> {
    let width = size % TILE_WIDTH;
    if width == 0 {
        return Ok(Vec::new());
    }
    let index = size / TILE_WIDTH;
    let filling = filling_name(index);
    if let Some(bytes) = read_if_present(dir, &filling)?
        && let Some((header, entries)) = bytes.split_first_chunk::<FILLING_HEADER_BYTES>()
        && u64::from_le_bytes(*header) == index
    {
        return first_entries(entries, width, &filling);
    }
    let partial = tile_path(None, index, width);
    match read_if_present(dir, &partial)? {
        Some(bytes) => first_entries(&bytes, width, &partial),
        None => Err(invalid(
            "open",
            format!("no record of the {width} committed entries of bundle {index}"),
        )),
    }
}

/// The filling file of bundle `index`, which holds the entries of a bundle still filling: what
/// an append makes durable instead of a new partial bundle file. Two files taken in turn, so
/// that starting bundle `index + 1` never overwrites the committed entries of bundle `index`
/// while the size still points into it.
fn filling_name(index: u64) -> String {
    format!("filling-{}", index % 2)
}

/// The bytes of `dir/path`, or `None` when it does not exist.
fn read_if_present(dir: &Path, path: &str) -> Result<Option<Vec<u8>>, TileError> {
    let full = dir.join(path);
    match std::fs::read(&full) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error("read bundle still filling", &full)(e)),
    }
}

/// The first `count` entries of bundle-encoded `bytes` (whatever follows them is ignored).
fn first_entries(bytes: &[u8], count: u64, path: &str) -> Result<Vec<Vec<u8>>, TileError> {
    let mut entries = Vec::new();
    let mut rest = bytes;
    while (entries.len() as u64) < count {
        let short = || invalid("open", format!("{path} holds fewer than {count} entries"));
        let (len, tail) = rest.split_first_chunk::<2>().ok_or_else(short)?;
        let len = usize::from(u16::from_be_bytes(*len));
        let entry = tail.get(..len).ok_or_else(short)?;
        entries.push(entry.to_vec());
        rest = &tail[len..];
    }
    Ok(entries)
}

/// Per level, the hashes of the tile still filling at `size`, recomputed from what an append
/// makes durable: level 0 from the leaves of the entry bundle still filling (`bundle`), each
/// higher level from the roots of the full tiles below it.
fn partial_hashes(
    source: &FolderSource,
    size: u64,
    bundle: &[Vec<u8>],
) -> Result<Vec<Vec<Hash>>, TileError> {
    let mut partial = Vec::new();
    for level in 0..=7u8 {
        let count = size >> (8 * u32::from(level));
        if count == 0 {
            break;
        }
        let width = count % TILE_WIDTH;
        let hashes = match level {
            0 => bundle
                .iter()
                .map(|entry| merkle::leaf_hash(entry))
                .collect(),
            _ => (count - width..count)
                .map(|below| {
                    let bytes = source.read(&tile_path(Some(level - 1), below, TILE_WIDTH))?;
                    Ok(merkle::root(bytes.as_chunks::<32>().0))
                })
                .collect::<Result<_, TileError>>()?,
        };
        partial.push(hashes);
    }
    Ok(partial)
}

/// An append-only tiled log in a folder.
///
/// An append makes durable every full tile, the entries of the bundle still filling (appended to
/// its filling file in place), then the size (overwritten in place); the tiles still filling,
/// hash tiles and partial bundle, are derived data, written by [`TileLog::root`] (so before any
/// checkpoint names a size) and recomputed when the log opens. An append that completes no tile
/// creates no file: on ext4 a file creation costs up to a millisecond of CPU here.
pub struct TileLog {
    dir: PathBuf,
    size: u64,
    /// Per level, the hashes of its tile still filling.
    partial: Vec<Vec<Hash>>,
    /// The entries of the bundle still filling.
    bundle: Vec<Vec<u8>>,
    index: redb::Database,
    /// The size file, once this log wrote it in the padded form (overwritten in place).
    size_file: Option<std::fs::File>,
    /// The filling file this process wrote whole, with its bundle's index (appended to in
    /// place after).
    filling: Option<(u64, std::fs::File)>,
    /// Bytes of `bundle`'s encoding that file holds after its header.
    filling_bytes: usize,
    /// An index commit failed after its entries were committed: rebuild before the next lookup.
    index_behind: bool,
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
        let bundle = committed_bundle(dir, size)?;
        let partial = partial_hashes(&source, size, &bundle)?;
        let log = TileLog {
            dir: dir.to_owned(),
            size,
            partial,
            bundle,
            index,
            size_file: None,
            filling: None,
            filling_bytes: 0,
            index_behind: false,
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
    /// Every entry is looked up, whatever the caller believes of it (a store may report as new a
    /// ballot whose earlier copy it replaced): an entry already in the log is never appended
    /// again. Durable when it returns: full tiles and the entry bundle first, then the size (the
    /// index follows; the hash tiles still filling wait for [`TileLog::root`]).
    pub fn append(&mut self, entries: &[&[u8]]) -> Result<u64, TileError> {
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
        if self.index_behind {
            self.reindex()?;
            self.index_behind = false;
        }
        let known: Vec<bool> = self
            .positions(entries)?
            .iter()
            .map(Option::is_some)
            .collect();
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
        let before = (
            self.size,
            self.partial.clone(),
            self.bundle.clone(),
            self.filling_bytes,
        );
        if let Err(e) = self.commit_entries(&fresh) {
            // Its size was not written, so nothing of this append is committed: forget what it
            // did in memory too, or a retry would find these entries "in the log" and skip them.
            (self.size, self.partial, self.bundle, self.filling_bytes) = before;
            // Rewrite the filling file whole next time: its tail may hold this append's bytes.
            self.filling = None;
            return Err(e);
        }
        // Not fsync'd: a crash that loses it is repaired from the bundles when the log opens.
        // If it fails, the next append rebuilds it first (a stale index would let a redelivered
        // entry in twice).
        if let Err(e) = self.commit_index(&fresh, first, redb::Durability::None) {
            self.index_behind = true;
            return Err(e);
        }
        Ok(self.size)
    }

    /// Pushes `fresh` and makes it durable: full tiles, the filling file, then the size.
    fn commit_entries(&mut self, fresh: &[&[u8]]) -> Result<(), TileError> {
        for entry in fresh {
            self.push(entry)?;
        }
        self.write_filling()?;
        self.commit_size()
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

    /// Makes the current size the log's commit point (see [`SIZE_FILE_BYTES`]).
    fn commit_size(&mut self) -> Result<(), TileError> {
        use std::os::unix::fs::FileExt;
        let text = format!("{:<SIZE_FILE_BYTES$}", self.size);
        debug_assert_eq!(text.len(), SIZE_FILE_BYTES, "a u64 has at most 20 digits");
        let path = self.dir.join(SIZE_FILE);
        let io = |stage: &'static str| io_error(stage, &path);
        if let Some(file) = &self.size_file {
            file.write_all_at(text.as_bytes(), 0)
                .map_err(io("write size"))?;
            return file.sync_data().map_err(io("sync size"));
        }
        // First commit of this process: a whole new file renamed into place, whatever form the
        // old one had; later commits overwrite it in place.
        write_file(&self.dir, SIZE_FILE, text.as_bytes())?;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(io("open size"))?;
        self.size_file = Some(file);
        Ok(())
    }

    /// Makes the entries of the bundle still filling durable in its filling file: the entries
    /// the file lacks, after those it holds; or, the first time in this process and for a new
    /// bundle, the whole bundle, its entries first and its header last (each `fdatasync`'d), so
    /// that the header never names this bundle over entries not yet written. Bytes past the
    /// committed entries are never read (see [`committed_bundle`]), so a crash mid-write loses
    /// nothing committed.
    fn write_filling(&mut self) -> Result<(), TileError> {
        use std::os::unix::fs::FileExt;
        let index = self.size / TILE_WIDTH;
        let body = bundle_bytes(&self.bundle);
        let path = self.dir.join(filling_name(index));
        let io = |stage: &'static str| io_error(stage, &path);
        if body.is_empty() {
            // A bundle just filled: nothing is filling.
            self.filling = None;
            return Ok(());
        }
        let header = FILLING_HEADER_BYTES as u64;
        match &self.filling {
            Some((open, file)) if *open == index && self.filling_bytes <= body.len() => {
                let from = self.filling_bytes;
                file.write_all_at(&body[from..], header + from as u64)
                    .map_err(io("write filling"))?;
                file.sync_data().map_err(io("sync filling"))?;
            }
            _ => {
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&path)
                    .map_err(io("open filling"))?;
                file.write_all_at(&body, header)
                    .map_err(io("write filling"))?;
                file.sync_data().map_err(io("sync filling"))?;
                file.write_all_at(&index.to_le_bytes(), 0)
                    .map_err(io("write filling header"))?;
                file.sync_data().map_err(io("sync filling"))?;
                // Its directory entry too must survive a crash (created once per file).
                std::fs::File::open(&self.dir)
                    .and_then(|dir| dir.sync_all())
                    .map_err(io("sync log folder"))?;
                self.filling = Some((index, file));
            }
        }
        self.filling_bytes = body.len();
        Ok(())
    }

    /// Writes every level's hash tile still filling and the entry bundle still filling, as
    /// clients fetch them (derived from the filling file and the full tiles; see [`TileLog`]).
    fn write_partials(&self) -> Result<(), TileError> {
        if !self.bundle.is_empty() {
            let path = tile_path(None, self.size / TILE_WIDTH, self.bundle.len() as u64);
            write_file(&self.dir, &path, &bundle_bytes(&self.bundle))?;
        }
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

    /// The root of the committed tree, read back from the tiles written; first writes the hash
    /// tiles still filling, so that every tile of this size can be served.
    pub fn root(&self) -> Result<Hash, TileError> {
        self.write_partials()?;
        Ok(TiledTree::new(&FolderSource(self.dir.clone()), self.size).root()?)
    }
}

//! Reading a log stored in the C2SP `tlog-tiles` layout: tree heads, inclusion and consistency
//! proofs computed from the tiles any server (or a folder) holds, trusting that server for
//! nothing. No I/O: tiles come through a [`TileSource`] the caller implements (a folder, HTTP,
//! or tiles a browser fetched). The writing side (`TileLog`) is `edgevote_audit::tiles`.
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
//! - `checkpoint`: the latest signed checkpoint (see [`crate::checkpoint`]).

use std::cell::RefCell;
use std::collections::HashMap;

use crate::merkle::{self, Hash};

/// Hashes per tile (2^8).
pub const TILE_WIDTH: u64 = 256;
/// Most tiles one proof may read (a tree of 2^64 leaves needs far fewer).
const MAX_TILE_READS: usize = 4096;

/// Why a tree could not be read from its tiles. The stage names the operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TileError {
    /// A tile could not be read from its source.
    #[error("reading {path}: {detail}")]
    Read {
        /// The tile's path.
        path: String,
        /// What went wrong.
        detail: String,
    },
    /// A tile or bundle is not what its path says, an argument is out of bounds, or a proof
    /// fails.
    #[error("{stage}: {detail}")]
    Invalid {
        /// The operation.
        stage: &'static str,
        /// What was wrong.
        detail: String,
    },
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

/// Proves that `entry` is leaf `index` of the tree of `size` leaves whose root is `root` (a
/// signed checkpoint's), with an inclusion proof built from the tiles of `source`: the server
/// that holds the tiles is trusted for nothing.
pub fn prove_entry<S: TileSource>(
    source: &S,
    size: u64,
    root: &Hash,
    index: u64,
    entry: &[u8],
) -> Result<(), TileError> {
    let proof = TiledTree::new(source, size).inclusion_proof(index)?;
    if !merkle::verify_inclusion(index, size, &merkle::leaf_hash(entry), &proof, root) {
        return Err(invalid(
            "inclusion proof",
            format!("leaf {index} is not that entry under the signed root"),
        ));
    }
    Ok(())
}

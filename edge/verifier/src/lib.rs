//! The voter's page verifier: `shared`'s receipt verification and the log inclusion proofs,
//! compiled to `wasm32-unknown-unknown` and called from the page's script, so a receipt is
//! checked in the browser with the voter's chosen key set and no server is trusted for the
//! answer.
//!
//! # ABI (no wasm-bindgen, no imports)
//!
//! Every call is one JSON request in and one JSON answer out, through two buffers the module
//! owns:
//!
//! 1. `edgevote_input(len) -> ptr`: makes the input buffer `len` bytes long (at most
//!    [`MAX_INPUT_BYTES`]; 0 when larger) and returns where the caller writes the request;
//! 2. `edgevote_<operation>() -> len`: runs the operation on the input and returns the length
//!    of the answer;
//! 3. `edgevote_output() -> ptr`: where that answer is.
//!
//! Operations ([`Operation`]): `verify_receipt`, `keyset`, `prove_live`, `prove_published`.
//! Every answer is an object; a refusal carries a stable `code` (the [`WireError`] codes,
//! `not_included`, `bad_checkpoint`, `bad_proof`) and a `detail`.
//!
//! The live log's tiles are fetched by the script, which alone does I/O: `prove_live` answers
//! `{"status": "need", "paths": [...]}` with the tiles it is missing, and the script calls it
//! again with them, until it answers `included` or a refusal.

use std::cell::RefCell;
use std::collections::BTreeMap;

use edgevote_shared::checkpoint::{self, Checkpoint};
use edgevote_shared::merkle;
use edgevote_shared::tiles::{self, TileError, TileSource};
use edgevote_shared::{KeySet, Receipt, WireError, b64};
use serde::Deserialize;
use serde_json::{Value, json};

/// Largest request: a published receipts log of about a million vote ids.
pub const MAX_INPUT_BYTES: usize = 64 * 1024 * 1024;
/// Most tiles one `prove_live` request may carry (a proof reads a few per tree level).
pub const MAX_TILES: usize = 256;
/// Most tiles one `need` answer asks for.
const MAX_NEED: usize = 32;

thread_local! {
    static INPUT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    static OUTPUT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// The operations the page calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Verifies a receipt against a key set: [`verify_receipt`].
    VerifyReceipt,
    /// Describes a key set: [`keyset`].
    KeySet,
    /// Proves a vote id in a live log from its tiles: [`prove_live`].
    ProveLive,
    /// Proves a vote id in a published receipts log: [`prove_published`].
    ProvePublished,
}

/// Runs `operation` on the JSON request `input` and returns the JSON answer.
pub fn call(operation: Operation, input: &[u8]) -> Value {
    let answer = match operation {
        Operation::VerifyReceipt => parse(input).map(|r| verify_receipt(&r)),
        Operation::KeySet => parse(input).map(|r| keyset(&r)),
        Operation::ProveLive => parse(input).map(|r| prove_live(&r)),
        Operation::ProvePublished => parse(input).map(|r| prove_published(&r)),
    };
    answer.unwrap_or_else(|e| refusal(&e))
}

fn parse<T: for<'de> Deserialize<'de>>(input: &[u8]) -> Result<T, WireError> {
    serde_json::from_slice(input).map_err(|e| WireError::MalformedJson {
        what: "verifier request",
        detail: e.to_string(),
    })
}

fn refusal(e: &WireError) -> Value {
    json!({"status": "invalid", "code": e.code(), "detail": e.to_string()})
}

fn refused(code: &str, detail: impl std::fmt::Display) -> Value {
    json!({"status": "invalid", "code": code, "detail": detail.to_string()})
}

/// A key set and what the voter expects of it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySetRequest {
    /// The key set (JWK Set JSON text).
    pub keyset: String,
}

/// Describes a key set: its fingerprint ([`KeySet::fingerprint`]) and its keys.
pub fn keyset(request: &KeySetRequest) -> Value {
    match KeySet::parse(request.keyset.as_bytes()) {
        Ok(keys) => json!({
            "status": "ok",
            "fingerprint": keys.fingerprint(),
            "keys": keys.to_doc().keys,
        }),
        Err(e) => refusal(&e),
    }
}

/// A receipt to verify.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiptRequest {
    /// The receipt (compact JWS).
    pub receipt: String,
    /// The key set to verify it with (JWK Set JSON text).
    pub keyset: String,
    /// The ballot the receipt must name (the JSON the page sent), when the page just voted.
    #[serde(default)]
    pub ballot: Option<String>,
}

/// Verifies a receipt: signature, key role and binding, validity at its date, fields; and, when
/// given, that it names the ballot sent ([`Receipt::check_ballot`]).
pub fn verify_receipt(request: &ReceiptRequest) -> Value {
    let keys = match KeySet::parse(request.keyset.as_bytes()) {
        Ok(keys) => keys,
        Err(e) => return refused("bad_keyset", format!("the key set: {e}")),
    };
    let verified = match edgevote_shared::verify::<Receipt>(request.receipt.trim(), &keys) {
        Ok(verified) => verified,
        Err(e) => return refusal(&e),
    };
    if let Some(ballot) = &request.ballot {
        let checked = edgevote_shared::Ballot::parse(ballot.as_bytes(), MAX_INPUT_BYTES)
            .and_then(|ballot| verified.doc.check_ballot(&ballot));
        if let Err(e) = checked {
            return refusal(&e);
        }
    }
    json!({
        "status": "valid",
        "receipt": verified.doc,
        "kid": verified.kid,
        "keyset_fingerprint": keys.fingerprint(),
    })
}

/// A vote id to prove in a region's live log.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiveRequest {
    /// The key set whose `log` keys must have signed the checkpoint.
    pub keyset: String,
    /// The receipt's election.
    pub election: String,
    /// The receipt's vote id (base64url).
    pub vote_id: String,
    /// The log's signed checkpoint.
    pub checkpoint: String,
    /// The leaf the log says the vote id is at.
    pub index: u64,
    /// Tiles fetched so far: path → base64 bytes, or `null` for a tile the log does not have.
    #[serde(default)]
    pub tiles: BTreeMap<String, Option<String>>,
}

/// Tiles the script fetched; a missing one is recorded, so the answer can ask for it.
struct FetchedTiles<'a> {
    tiles: &'a BTreeMap<String, Option<String>>,
    missing: RefCell<Vec<String>>,
}

impl TileSource for FetchedTiles<'_> {
    fn read(&self, path: &str) -> Result<Vec<u8>, TileError> {
        let failed = |detail: String| TileError::Read {
            path: path.to_owned(),
            detail,
        };
        match self.tiles.get(path) {
            Some(Some(bytes)) => b64::decode_std("tile", bytes).map_err(|e| failed(e.to_string())),
            Some(None) => Err(failed("not found".into())),
            None => {
                self.missing.borrow_mut().push(path.to_owned());
                Err(failed("not fetched yet".into()))
            }
        }
    }
}

/// Proves a receipt's vote id in a live log: the checkpoint must verify with a `log` key of the
/// key set and be a live log of the receipt's election; the inclusion proof is built from the
/// tiles and checked against the signed root. Answers `need` while tiles are missing.
pub fn prove_live(request: &LiveRequest) -> Value {
    let keys = match KeySet::parse(request.keyset.as_bytes()) {
        Ok(keys) => keys,
        Err(e) => return refused("bad_keyset", format!("the key set: {e}")),
    };
    if request.tiles.len() > MAX_TILES {
        return refused("too_large", format!("more than {MAX_TILES} tiles"));
    }
    let signed = match checkpoint::verify_live(&request.checkpoint, &keys, &request.election) {
        Ok(signed) => signed,
        Err(e) => return refused("bad_checkpoint", e),
    };
    if request.index >= signed.size {
        return not_included(&request.vote_id, &signed);
    }
    let source = FetchedTiles {
        tiles: &request.tiles,
        missing: RefCell::new(Vec::new()),
    };
    let proven = tiles::prove_entry(
        &source,
        signed.size,
        &signed.root,
        request.index,
        request.vote_id.as_bytes(),
    );
    let mut missing = source.missing.into_inner();
    match proven {
        Ok(()) => included(&signed, request.index),
        Err(_) if !missing.is_empty() => {
            missing.truncate(MAX_NEED);
            json!({"status": "need", "paths": missing})
        }
        Err(e) => refused("bad_proof", e),
    }
}

/// A vote id to prove in a published receipts log (`edgevote audit publish`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishedRequest {
    /// The key set whose `log` keys must have signed the checkpoint.
    pub keyset: String,
    /// The receipt's election.
    pub election: String,
    /// The receipt's vote id (base64url).
    pub vote_id: String,
    /// `receipts.checkpoint`.
    pub checkpoint: String,
    /// `receipts.log`: every stored vote id, one per line, sorted.
    pub log: String,
}

/// Proves a receipt's vote id in a published receipts log: the checkpoint must verify with a
/// `log` key and be the election's receipts log; the log must hash to its signed root and be
/// strictly sorted; the inclusion proof is checked against that root.
pub fn prove_published(request: &PublishedRequest) -> Value {
    let keys = match KeySet::parse(request.keyset.as_bytes()) {
        Ok(keys) => keys,
        Err(e) => return refused("bad_keyset", format!("the key set: {e}")),
    };
    let signed = match checkpoint::verify_with_log_keys(&request.checkpoint, &keys) {
        Ok(signed) => signed,
        Err(e) => return refused("bad_checkpoint", e),
    };
    let origin = format!("edgevote/{}/receipts", request.election);
    if signed.origin != origin {
        return refused(
            "bad_checkpoint",
            format!("origin {:?}, expected {origin:?}", signed.origin),
        );
    }
    let entries: Vec<&str> = request.log.lines().filter(|l| !l.is_empty()).collect();
    if entries.windows(2).any(|w| w[0] >= w[1]) {
        return refused("bad_proof", "the log is not strictly sorted");
    }
    let leaves: Vec<merkle::Hash> = entries
        .iter()
        .map(|e| merkle::leaf_hash(e.as_bytes()))
        .collect();
    if signed.size != leaves.len() as u64 || merkle::root(&leaves) != signed.root {
        return refused("bad_proof", "the log does not match its signed checkpoint");
    }
    let Ok(index) = entries.binary_search(&request.vote_id.as_str()) else {
        return not_included(&request.vote_id, &signed);
    };
    let proven = merkle::inclusion_proof(index, &leaves).is_some_and(|proof| {
        merkle::verify_inclusion(
            index as u64,
            signed.size,
            &leaves[index],
            &proof,
            &signed.root,
        )
    });
    if proven {
        included(&signed, index as u64)
    } else {
        refused("bad_proof", format!("leaf {index} does not prove"))
    }
}

fn included(signed: &Checkpoint, index: u64) -> Value {
    json!({"status": "included", "origin": signed.origin, "index": index, "size": signed.size})
}

fn not_included(vote_id: &str, signed: &Checkpoint) -> Value {
    json!({
        "status": "not_included",
        "code": "not_included",
        "detail": format!("vote {vote_id} is not in {} of {} leaves", signed.origin, signed.size),
    })
}

/// Runs `operation` on the input buffer and leaves the answer in the output buffer.
fn run(operation: Operation) -> usize {
    let answer = INPUT.with_borrow(|input| call(operation, input));
    let bytes = answer.to_string().into_bytes();
    let len = bytes.len();
    OUTPUT.set(bytes);
    len
}

/// Makes the input buffer `len` bytes long and returns its address (null when `len` is over
/// [`MAX_INPUT_BYTES`]).
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn edgevote_input(len: usize) -> *mut u8 {
    if len > MAX_INPUT_BYTES {
        return std::ptr::null_mut();
    }
    INPUT.with_borrow_mut(|input| {
        input.clear();
        input.resize(len, 0);
        input.as_mut_ptr()
    })
}

/// The address of the last answer.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn edgevote_output() -> *const u8 {
    OUTPUT.with_borrow(|output| output.as_ptr())
}

/// [`Operation::VerifyReceipt`] on the input; the answer's length.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn edgevote_verify_receipt() -> usize {
    run(Operation::VerifyReceipt)
}

/// [`Operation::KeySet`] on the input; the answer's length.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn edgevote_keyset() -> usize {
    run(Operation::KeySet)
}

/// [`Operation::ProveLive`] on the input; the answer's length.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn edgevote_prove_live() -> usize {
    run(Operation::ProveLive)
}

/// [`Operation::ProvePublished`] on the input; the answer's length.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn edgevote_prove_published() -> usize {
    run(Operation::ProvePublished)
}

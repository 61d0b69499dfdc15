//! Witnesses: third parties that cosign the log's checkpoints, so that a log cannot show one
//! tree to some auditors and another to others (a split view) without fooling them.
//!
//! - [`server`] is a C2SP `tlog-witness` witness: `POST /add-checkpoint` with a checkpoint signed
//!   by a log it is configured for and a consistency proof from the last checkpoint it cosigned
//!   for that origin. It stores the new tree head durably, then answers with its cosignature
//!   (C2SP `tlog-cosignature`, see [`edgevote_shared::cosignature`]).
//! - [`client`] submits a published folder's checkpoints to a witness and writes the
//!   cosignatures it returns into the checkpoint files.
//! - [`quorum`] is what `audit verify` checks: each checkpoint carries cosignatures by at least
//!   k distinct pinned witnesses, and two cosigned checkpoints of one origin agree.
//!
//! # The `add-checkpoint` request
//!
//! ```text
//! old <size the witness last cosigned, decimal, 0 at first>\n
//! <base64 consistency proof hash>\n          (0 to 63 lines, RFC 9162 §2.1.4)
//! \n
//! <the signed checkpoint note>
//! ```
//!
//! Answers: 200 with the cosignature line(s) (`text/plain`); 409 with the witness's current size
//! (`text/x.tlog.size`, `<size>\n`) when `old` is not that size; 409 `split_view` for the size it
//! holds with another root; 422 `not_consistent` when the proof fails; 404 `unknown_origin`;
//! 403 `bad_signature`; 400 for a malformed request; 413 `too_large`. Every refusal but the size
//! conflict is `{"error": code, "detail": ...}`. Nothing refused is ever cosigned.

pub mod client;
pub mod config;
pub mod quorum;
pub mod server;
mod state;

pub use client::{ClientError, Submitted, witness_folder};
pub use config::{LogConfig, WitnessConfig};
pub use quorum::{check_witnesses, compare_cosigned, count_cosigners};
pub use server::{Clock, WitnessError, WitnessParts, WitnessService, serve};

/// The stable codes of witnessing: the witness's refusals and the auditor's failures.
pub mod code {
    /// `audit verify`: a checkpoint carries valid cosignatures by fewer distinct pinned witnesses
    /// than required.
    pub const TOO_FEW_WITNESSES: &str = "too_few_witnesses";
    /// Two checkpoints of one origin signed by the log with the same size and different roots
    /// (the log showed two histories); the witness's refusal of such a checkpoint.
    pub const SPLIT_VIEW: &str = "split_view";
    /// Witness: a checkpoint whose consistency proof from the last cosigned one fails.
    pub const NOT_CONSISTENT: &str = "not_consistent";
    /// Witness: a checkpoint of a log it is not configured for.
    pub const UNKNOWN_ORIGIN: &str = "unknown_origin";
    /// Witness: a request that does not parse (old size line, proof lines, note).
    pub const MALFORMED_REQUEST: &str = "malformed_request";
    /// Witness: storing the new tree head failed, so nothing was cosigned (500).
    pub const STATE_WRITE_FAILED: &str = "state_write_failed";
}

/// The HTTP path of the `add-checkpoint` call (under the witness's URL prefix).
pub const ADD_CHECKPOINT_PATH: &str = "/add-checkpoint";
/// The content type of a 409 answer's body: the witness's current tree size.
pub const SIZE_CONTENT_TYPE: &str = "text/x.tlog.size";
/// Most consistency proof lines a request may hold (C2SP: 63).
pub const MAX_PROOF_LINES: usize = 63;
/// Longest `add-checkpoint` request body, in bytes: the old size line, 63 proof lines and a
/// checkpoint note.
pub const MAX_REQUEST_BYTES: usize =
    64 + MAX_PROOF_LINES * 46 + edgevote_shared::checkpoint::MAX_NOTE_BYTES;

/// The `add-checkpoint` request body: `old <size>`, the proof lines, a blank line, the note.
pub fn request_body(old_size: u64, proof: &[edgevote_shared::merkle::Hash], note: &str) -> String {
    let mut body = format!("old {old_size}\n");
    for hash in proof {
        body.push_str(&edgevote_shared::b64::encode_std(hash));
        body.push('\n');
    }
    body.push('\n');
    body.push_str(note);
    body
}

//! The public audit log of an election: [`publish()`] builds it from a ballot store, [`verify()`]
//! checks it offline, [`serve()`] serves its files over HTTP, and [`witness`] has independent
//! witnesses cosign its checkpoints so that no publisher can show two histories unnoticed.
//!
//! # Format
//!
//! A published log is a folder of plain files, all in standard formats:
//!
//! - `receipts.log`: every stored vote id (base64url, one per line, sorted ascending and
//!   distinct). Its entries are the leaves of an RFC 6962 Merkle log (leaf hash
//!   `SHA-256(0x00 ‖ line)`), so a receipt, which carries its vote id, proves its ballot was
//!   stored with a standard inclusion proof.
//! - `receipts.checkpoint`: the head of that log (size and root) as a C2SP `tlog-checkpoint`
//!   signed note, origin `edgevote/<election>/receipts`, signed by the `log` key, followed by
//!   the cosignature lines of the witnesses it was submitted to, if any ([`witness`]).
//! - `choices.log` and `choices.checkpoint`: the choice of every counted ballot (one per voter,
//!   by the counting rule), sorted ascending, as a second RFC 6962 log with its own checkpoint
//!   (origin `edgevote/<election>/choices`). Anyone recomputes the tally from it.
//! - `tally.jws`: the [`PublishedTally`](edgevote_shared::tally::PublishedTally)
//!   (`edgevote-tally+jws`, signed by the `log` key) naming both roots, the counts, the number of
//!   counted voters and the number of ballots.
//! - `keyset.json`: the key set (JWK Set) that verifies the tally, the checkpoints and the
//!   receipts; `log.vkey`: the C2SP verifier key of the receipts checkpoint. Both are copies
//!   for convenience: [`verify()`] takes its trust roots from outside the folder.
//! - `index.txt` exists only when served: the list of the files.
//!
//! The two logs are not linked entry by entry, and both are sorted: a receipt proves that its
//! ballot was stored without telling whoever is shown it which choice it carries
//! (ARCHITECTURE.md, "Audit log").
//!
//! # What `verify` checks
//!
//! [`verify::verify`] takes the files' contents, the folder's key set and the auditor's trust
//! roots ([`verify::TrustRoots`]: the election manifest, a pinned key set or log key, and any
//! witness keys with the number required, all obtained outside the folder), and does no I/O. In order, stopping at the first failure of a
//! document:
//!
//! 1. the folder's key set agrees with the pinned roots (`keyset_mismatch`,
//!    `log_key_mismatch`, `no_trust_root`) and the manifest verifies;
//! 2. `tally.jws` verifies (strict Ed25519, `log` role, key valid at the tally's date: every rule
//!    of [`edgevote_shared::verify`]), by the pinned log key if one is pinned, for the manifest's
//!    election (`wrong_election`);
//! 3. each checkpoint's signature verifies under the tally's signing key, and its origin is
//!    `edgevote/<election>/<log>` (`bad_origin`);
//! 4. each log matches its checkpoint (same size, same root) and is sorted (receipts: strictly
//!    ascending, so no vote id appears twice); every choice is an option of the manifest
//!    (`unknown_choice`) and there are no more choices than ballots
//!    (`more_choices_than_ballots`); when the trust roots ask for `min_witnesses` > 0, each
//!    checkpoint carries valid cosignatures by that many distinct pinned witnesses
//!    ([`witness::code::TOO_FEW_WITNESSES`]);
//!
//! then, reporting each failure:
//!
//! 5. the counts recomputed from the choices log, both roots and the numbers of voters and
//!    ballots equal the signed tally's;
//! 6. every receipt given verifies (signature, key binding, the tally's election) and its vote
//!    id is in the receipts log, with an RFC 6962 inclusion proof to the signed root.
//!
//! Each failure has a stable code: a [`WireError`](edgevote_shared::WireError) code for a refused
//! document or receipt, or one of [`verify::code`] or [`witness::code`].

pub mod live;
pub mod publish;
pub mod serve;
pub mod tiles;
pub mod verify;
pub mod witness;

pub use publish::{PublishError, PublishParams, Published, publish};
pub use serve::serve;
pub use verify::{Failure, LogFiles, Report, verify};

use edgevote_shared::merkle::{self, Hash};

/// The signed tally's file name.
pub const TALLY_FILE: &str = "tally.jws";
/// The key set's file name.
pub const KEYSET_FILE: &str = "keyset.json";
/// The receipts checkpoint's C2SP verifier key's file name.
pub const VKEY_FILE: &str = "log.vkey";
/// The served index's name (a list of the published files).
pub const INDEX_FILE: &str = "index.txt";

/// One of the two logs of an election.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogKind {
    /// Every stored vote id.
    Receipts,
    /// The choice of every counted ballot.
    Choices,
}

impl LogKind {
    /// The log's name: `receipts` or `choices`.
    pub const fn name(self) -> &'static str {
        match self {
            LogKind::Receipts => "receipts",
            LogKind::Choices => "choices",
        }
    }

    /// The file holding the log's entries: `<name>.log`.
    pub const fn log_file(self) -> &'static str {
        match self {
            LogKind::Receipts => "receipts.log",
            LogKind::Choices => "choices.log",
        }
    }

    /// The file holding the log's signed checkpoint: `<name>.checkpoint`.
    pub const fn checkpoint_file(self) -> &'static str {
        match self {
            LogKind::Receipts => "receipts.checkpoint",
            LogKind::Choices => "choices.checkpoint",
        }
    }

    /// The checkpoint origin (and key name) of this log of `election`:
    /// `edgevote/<election>/<name>`.
    pub fn origin(self, election: &str) -> String {
        format!("edgevote/{election}/{}", self.name())
    }
}

/// The text of a log file: one entry per line, each line ending in `\n`.
fn log_text(entries: &[String]) -> String {
    let mut text = entries.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    text
}

/// The entries of a log file's text.
fn log_entries(text: &str) -> Vec<String> {
    text.lines().map(str::to_owned).collect()
}

/// The RFC 6962 leaf hashes of log entries.
fn leaves(entries: &[String]) -> Vec<Hash> {
    entries
        .iter()
        .map(|e| merkle::leaf_hash(e.as_bytes()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_text_round_trips() {
        let entries = vec!["a".to_owned(), "b".to_owned()];
        assert_eq!(log_text(&entries), "a\nb\n");
        assert_eq!(log_entries(&log_text(&entries)), entries);
        assert_eq!(log_text(&[]), "");
        assert!(log_entries("").is_empty());
    }

    #[test]
    fn origins_name_the_election_and_the_log() {
        assert_eq!(LogKind::Receipts.origin("e1"), "edgevote/e1/receipts");
        assert_eq!(LogKind::Choices.checkpoint_file(), "choices.checkpoint");
    }
}

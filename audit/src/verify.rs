//! Offline verification of a published audit log (see the crate docs for what is checked).
//!
//! [`verify`] checks everything at once and returns a [`Report`]. A caller with many receipts
//! (read one at a time, with progress) uses the two steps it is made of: [`check_documents`],
//! then [`CheckedLog::check_receipt`] for each receipt. Nothing here reads a file or a clock.

use std::collections::BTreeMap;

use ed25519_dalek::VerifyingKey;
use edgevote_shared::checkpoint::Checkpoint;
use edgevote_shared::cosignature::WitnessKey;
use edgevote_shared::merkle::{self, Hash};
use edgevote_shared::tally::PublishedTally;
use edgevote_shared::{ElectionManifest, KeySet, Receipt, Role, WireError};

use crate::{KEYSET_FILE, LogKind, TALLY_FILE, leaves, log_entries};

/// The stable failure codes of the audit log's own checks. A refused document or receipt has
/// its [`WireError::code`] instead (`bad_signature`, `unknown_key_id`, ...).
pub mod code {
    /// A log's entries do not match its signed checkpoint (another size or root).
    pub const LOG_CHECKPOINT_MISMATCH: &str = "log_checkpoint_mismatch";
    /// A log is not sorted ascending, or the receipts log names a vote id twice.
    pub const LOG_NOT_SORTED: &str = "log_not_sorted";
    /// The signed tally differs from the logs: counts, a root, or the number of ballots.
    pub const TALLY_MISMATCH: &str = "tally_mismatch";
    /// A valid receipt whose vote id is not in the receipts log.
    pub const NOT_INCLUDED: &str = "not_included";
    /// No trust root was given: a pinned key set or a pinned log key is required.
    pub const NO_TRUST_ROOT: &str = "no_trust_root";
    /// The folder's key set differs from the pinned one (a key added, removed or changed).
    pub const KEYSET_MISMATCH: &str = "keyset_mismatch";
    /// The tally or a checkpoint is signed by a log key other than the pinned one, or the
    /// folder's key set holds a log key besides it.
    pub const LOG_KEY_MISMATCH: &str = "log_key_mismatch";
    /// The tally is for another election than the pinned manifest's.
    pub const WRONG_ELECTION: &str = "wrong_election";
    /// A checkpoint's origin is not `edgevote/<election>/<log>`.
    pub const BAD_ORIGIN: &str = "bad_origin";
    /// The choices log holds a choice that is not an option of the manifest.
    pub const UNKNOWN_CHOICE: &str = "unknown_choice";
    /// The choices log counts more voters than the receipts log holds ballots.
    pub const MORE_CHOICES_THAN_BALLOTS: &str = "more_choices_than_ballots";
    /// The tally was published while votes were still pending: it is not the result.
    pub const INCOMPLETE_TALLY: &str = "incomplete_tally";
}

/// The name failures about the pinned manifest are reported under.
pub const MANIFEST_INPUT: &str = "manifest";

/// What the auditor trusts, obtained outside the folder being verified: a publisher who controls
/// the folder can change every file in it, its `keyset.json` included, so nothing in it can vouch
/// for the rest.
#[derive(Debug, Clone, Copy)]
pub struct TrustRoots<'a> {
    /// The election manifest (compact JWS) as its authority published it.
    pub manifest: &'a str,
    /// A pinned key set (as the authority published it). The folder's `keyset.json` must equal
    /// it, and it verifies the manifest, the tally, the checkpoints and the receipts.
    pub keyset: Option<&'a KeySet>,
    /// A pinned log key (from its C2SP verifier key). The tally and the checkpoints must be
    /// signed by it, and the folder's key set may hold no other log key.
    pub log_key: Option<&'a VerifyingKey>,
    /// Pinned witness keys (C2SP verifier keys of type 0x04): see `min_witnesses`.
    pub witnesses: &'a [WitnessKey],
    /// How many distinct pinned witnesses must have cosigned each checkpoint
    /// (`too_few_witnesses`); 0 requires none.
    pub min_witnesses: usize,
}

/// The trust roots checked against a folder: the key set to verify with and the manifest.
#[derive(Debug, Clone)]
struct Trusted {
    keys: KeySet,
    manifest: ElectionManifest,
    log_key: Option<VerifyingKey>,
}

impl TrustRoots<'_> {
    /// Checks the folder's key set against the pinned roots and verifies the manifest.
    fn resolve(&self, folder_keys: &KeySet) -> Result<Trusted, Failure> {
        let keys = match (self.keyset, self.log_key) {
            (None, None) => {
                return Err(Failure::new(
                    KEYSET_FILE,
                    code::NO_TRUST_ROOT,
                    "a pinned key set or log key is required: the folder's own keys prove nothing",
                ));
            }
            (Some(pinned), _) if pinned != folder_keys => {
                return Err(Failure::new(
                    KEYSET_FILE,
                    code::KEYSET_MISMATCH,
                    "the folder's key set differs from the pinned one",
                ));
            }
            (Some(pinned), _) => pinned.clone(),
            (None, Some(_)) => folder_keys.clone(),
        };
        if let Some(pinned) = self.log_key {
            let other = keys
                .iter()
                .filter(|jwk| jwk.edgevote_role == Role::Log)
                .find(|jwk| jwk.verifying_key().ok() != Some(*pinned));
            if let Some(other) = other {
                return Err(Failure::new(
                    KEYSET_FILE,
                    code::LOG_KEY_MISMATCH,
                    format!(
                        "the key set holds log key {} besides the pinned one",
                        other.kid
                    ),
                ));
            }
        }
        let manifest = edgevote_shared::verify::<ElectionManifest>(self.manifest.trim(), &keys)
            .map_err(|e| Failure::refused(MANIFEST_INPUT, &e))?
            .doc;
        Ok(Trusted {
            keys,
            manifest,
            log_key: self.log_key.copied(),
        })
    }
}

/// The contents of a published log's files, as read.
#[derive(Debug, Clone, Copy)]
pub struct LogFiles<'a> {
    /// `tally.jws`.
    pub tally: &'a str,
    /// `receipts.log`.
    pub receipts_log: &'a str,
    /// `receipts.checkpoint`.
    pub receipts_checkpoint: &'a str,
    /// `choices.log`.
    pub choices_log: &'a str,
    /// `choices.checkpoint`.
    pub choices_checkpoint: &'a str,
}

/// One receipt to check against the log.
#[derive(Debug, Clone, Copy)]
pub struct ReceiptInput<'a> {
    /// A name for it in the report (its file, say).
    pub name: &'a str,
    /// The receipt, a compact JWS (surrounding whitespace is ignored).
    pub compact: &'a str,
}

/// Everything [`verify`] needs.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    /// The published files.
    pub files: LogFiles<'a>,
    /// The folder's `keyset.json`, as published (checked against `trust`, never trusted).
    pub folder_keys: &'a KeySet,
    /// What the auditor trusts.
    pub trust: TrustRoots<'a>,
    /// Receipts to check for inclusion (none to check the log alone).
    pub receipts: &'a [ReceiptInput<'a>],
}

/// A failed check of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The published file it is about (`tally.jws`, `receipts.log`, ...).
    pub file: &'static str,
    /// The stable code: a [`WireError::code`], one of [`code`] or of
    /// [`crate::witness::code`].
    pub code: &'static str,
    /// What was wrong, for people.
    pub detail: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.file, self.code, self.detail)
    }
}

impl Failure {
    pub(crate) fn new(file: &'static str, code: &'static str, detail: impl Into<String>) -> Self {
        Failure {
            file,
            code,
            detail: detail.into(),
        }
    }

    pub(crate) fn refused(file: &'static str, error: &WireError) -> Self {
        Failure::new(file, error.code(), error.to_string())
    }
}

/// What the logs hold, once their documents verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSummary {
    /// The election the tally is for.
    pub election: String,
    /// Entries of the receipts log (stored ballots).
    pub ballots: u64,
    /// Entries of the choices log (counted voters).
    pub counted: u64,
    /// The counts recomputed from the choices log.
    pub recomputed: BTreeMap<String, u64>,
    /// Whether the signed tally equals the logs (counts, both roots, ballots).
    pub tally_matches: bool,
}

/// The result of checking one receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReceiptOutcome {
    /// Valid, and its vote id is proven included in the receipts log.
    Included {
        /// The receipt's vote id (base64url).
        vote_id: String,
    },
    /// Valid, but its vote id is not in the receipts log ([`code::NOT_INCLUDED`]).
    NotIncluded {
        /// The receipt's vote id (base64url).
        vote_id: String,
    },
    /// Refused: bad signature, wrong election, ... (a [`WireError::code`]).
    Invalid {
        /// The stable code.
        code: &'static str,
        /// What was wrong, for people.
        detail: String,
    },
}

impl ReceiptOutcome {
    /// The failure code, or `None` when the receipt is included.
    pub fn code(&self) -> Option<&'static str> {
        match self {
            ReceiptOutcome::Included { .. } => None,
            ReceiptOutcome::NotIncluded { .. } => Some(code::NOT_INCLUDED),
            ReceiptOutcome::Invalid { code, .. } => Some(code),
        }
    }
}

/// One receipt's result, under its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptCheck {
    /// The name it was given in [`ReceiptInput`].
    pub name: String,
    /// The result.
    pub outcome: ReceiptOutcome,
}

/// The result of [`verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// What the logs hold; `None` when a document was refused (then nothing else was checked).
    pub summary: Option<LogSummary>,
    /// The log's failures, in the order found; empty when the log verified.
    pub failures: Vec<Failure>,
    /// One result per receipt given, in order (none when a document was refused).
    pub receipts: Vec<ReceiptCheck>,
}

impl Report {
    /// Whether the log and every receipt verified.
    pub fn is_valid(&self) -> bool {
        self.failures.is_empty() && self.receipts.iter().all(|r| r.outcome.code().is_none())
    }

    /// Every failure code, the log's first, then the receipts'.
    pub fn codes(&self) -> Vec<&'static str> {
        self.failures
            .iter()
            .map(|f| f.code)
            .chain(self.receipts.iter().filter_map(|r| r.outcome.code()))
            .collect()
    }
}

/// One published log, checked against its signed checkpoint.
#[derive(Debug)]
struct Log {
    entries: Vec<String>,
    leaves: Vec<Hash>,
    root: Hash,
}

/// A log whose documents verified: the tally's signature, both checkpoints, both logs.
#[derive(Debug)]
pub struct CheckedLog {
    keys: KeySet,
    receipts: Log,
    summary: LogSummary,
    tally_failure: Option<Failure>,
}

impl CheckedLog {
    /// What the logs hold.
    pub fn summary(&self) -> &LogSummary {
        &self.summary
    }

    /// Why the signed tally differs from the logs ([`code::TALLY_MISMATCH`]), if it does.
    pub fn tally_failure(&self) -> Option<&Failure> {
        self.tally_failure.as_ref()
    }

    /// Checks one receipt (a compact JWS): it verifies against the trusted key set, is for this
    /// log's election, and its vote id is proven included in the receipts log.
    pub fn check_receipt(&self, compact: &str) -> ReceiptOutcome {
        let receipt = match edgevote_shared::verify::<Receipt>(compact.trim(), &self.keys)
            .and_then(|v| v.doc.check_election(&self.summary.election).map(|()| v.doc))
        {
            Ok(receipt) => receipt,
            Err(e) => {
                return ReceiptOutcome::Invalid {
                    code: e.code(),
                    detail: e.to_string(),
                };
            }
        };
        let vote_id = receipt.vote_id.to_b64();
        let log = &self.receipts;
        // The entries are strictly ascending (checked when the log was read).
        let proven = log.entries.binary_search(&vote_id).is_ok_and(|i| {
            merkle::inclusion_proof(i, &log.leaves).is_some_and(|proof| {
                merkle::verify_inclusion(
                    i as u64,
                    log.leaves.len() as u64,
                    &log.leaves[i],
                    &proof,
                    &log.root,
                )
            })
        });
        if proven {
            ReceiptOutcome::Included { vote_id }
        } else {
            ReceiptOutcome::NotIncluded { vote_id }
        }
    }
}

/// Checks a published log and `receipts` against it, with the trusted key set.
pub fn verify(inputs: &Inputs<'_>) -> Report {
    let log = match check_documents(&inputs.files, inputs.folder_keys, &inputs.trust) {
        Ok(log) => log,
        Err(failure) => {
            return Report {
                summary: None,
                failures: vec![failure],
                receipts: Vec::new(),
            };
        }
    };
    let receipts = inputs
        .receipts
        .iter()
        .map(|r| ReceiptCheck {
            name: r.name.to_owned(),
            outcome: log.check_receipt(r.compact),
        })
        .collect();
    Report {
        failures: log.tally_failure.iter().cloned().collect(),
        summary: Some(log.summary),
        receipts,
    }
}

/// Checks the folder's keys against the trust roots, verifies the log's documents (steps 1 to
/// 4 of the crate docs) and compares the signed tally with the logs (step 5, reported by
/// [`CheckedLog::tally_failure`]). Fails with the first document refused.
pub fn check_documents(
    files: &LogFiles<'_>,
    folder_keys: &KeySet,
    trust: &TrustRoots<'_>,
) -> Result<CheckedLog, Failure> {
    let trusted = trust.resolve(folder_keys)?;
    let keys = &trusted.keys;
    let tally = edgevote_shared::verify::<PublishedTally>(files.tally.trim(), keys)
        .map_err(|e| Failure::refused(TALLY_FILE, &e))?;
    let Some((_, log_key)) = keys.get(&tally.kid) else {
        return Err(Failure::refused(
            TALLY_FILE,
            &WireError::UnknownKeyId(tally.kid.clone()),
        ));
    };
    if trusted.log_key.is_some_and(|pinned| pinned != *log_key) {
        return Err(Failure::new(
            TALLY_FILE,
            code::LOG_KEY_MISMATCH,
            format!("signed by {}, not by the pinned log key", tally.kid),
        ));
    }
    let election = &trusted.manifest.id;
    if tally.doc.election != *election {
        return Err(Failure::new(
            TALLY_FILE,
            code::WRONG_ELECTION,
            format!(
                "the tally is for {}, the manifest for {election}",
                tally.doc.election
            ),
        ));
    }
    let receipts = read_log(
        LogKind::Receipts,
        files.receipts_log,
        files.receipts_checkpoint,
        log_key,
        election,
    )?;
    let choices = read_log(
        LogKind::Choices,
        files.choices_log,
        files.choices_checkpoint,
        log_key,
        election,
    )?;
    check_choices(&choices, &receipts, &trusted.manifest)?;
    crate::witness::check_witnesses(files, trust)?;
    let t = &tally.doc;
    let recomputed = crate::publish::counts(&choices.entries);
    let differences = tally_differences(t, &recomputed, &receipts, &choices);
    let tally_failure = tally_failure(t, &differences);
    let summary = LogSummary {
        election: t.election.clone(),
        ballots: receipts.entries.len() as u64,
        counted: choices.entries.len() as u64,
        recomputed,
        tally_matches: differences.is_empty(),
    };
    Ok(CheckedLog {
        keys: trusted.keys,
        receipts,
        summary,
        tally_failure,
    })
}

/// Every choice is an option of the manifest, and no more voters are counted than ballots
/// were stored.
fn check_choices(
    choices: &Log,
    receipts: &Log,
    manifest: &ElectionManifest,
) -> Result<(), Failure> {
    let file = LogKind::Choices.log_file();
    if let Some(unknown) = choices
        .entries
        .iter()
        .find(|choice| !manifest.options.iter().any(|o| &o.id == *choice))
    {
        return Err(Failure::new(
            file,
            code::UNKNOWN_CHOICE,
            format!("{unknown:?} is not an option of election {}", manifest.id),
        ));
    }
    if choices.entries.len() > receipts.entries.len() {
        return Err(Failure::new(
            file,
            code::MORE_CHOICES_THAN_BALLOTS,
            format!(
                "{} counted voters but only {} stored ballots",
                choices.entries.len(),
                receipts.entries.len()
            ),
        ));
    }
    Ok(())
}

/// Why the signed tally is not the result the logs show: it differs from them, or it says it
/// was published with votes still pending.
fn tally_failure(t: &PublishedTally, differences: &[String]) -> Option<Failure> {
    if !differences.is_empty() {
        let detail = format!(
            "the signed tally differs from the logs: {}",
            differences.join("; ")
        );
        return Some(Failure::new(TALLY_FILE, code::TALLY_MISMATCH, detail));
    }
    t.incomplete.as_ref().map(|pending| {
        let detail = format!("published with votes still pending: {pending}");
        Failure::new(TALLY_FILE, code::INCOMPLETE_TALLY, detail)
    })
}

/// How the signed tally differs from the logs (empty when it does not).
fn tally_differences(
    t: &PublishedTally,
    recomputed: &BTreeMap<String, u64>,
    receipts: &Log,
    choices: &Log,
) -> Vec<String> {
    let mut differences = Vec::new();
    if *recomputed != t.counts {
        differences.push(format!(
            "counts {:?} signed, {recomputed:?} in the choices log",
            t.counts
        ));
    }
    if t.receipts_root.0 != receipts.root {
        differences.push("the receipts root".to_owned());
    }
    if t.choices_root.0 != choices.root {
        differences.push("the choices root".to_owned());
    }
    let ballots = receipts.entries.len() as u64;
    if t.ballots != ballots {
        differences.push(format!(
            "{} ballots signed, {ballots} in the receipts log",
            t.ballots
        ));
    }
    let voters = choices.entries.len() as u64;
    if t.voters != voters {
        differences.push(format!(
            "{} voters signed, {voters} in the choices log",
            t.voters
        ));
    }
    differences
}

/// Parses a log, verifies its checkpoint under `key` and its origin for `election`, and checks
/// they match and that the log is sorted.
fn read_log(
    kind: LogKind,
    text: &str,
    note: &str,
    key: &VerifyingKey,
    election: &str,
) -> Result<Log, Failure> {
    let checkpoint =
        Checkpoint::verify(note, key).map_err(|e| Failure::refused(kind.checkpoint_file(), &e))?;
    if checkpoint.origin != kind.origin(election) {
        return Err(Failure::new(
            kind.checkpoint_file(),
            code::BAD_ORIGIN,
            format!(
                "origin {:?}, expected {:?}",
                checkpoint.origin,
                kind.origin(election)
            ),
        ));
    }
    let entries = log_entries(text);
    let leaves = leaves(&entries);
    let root = merkle::root(&leaves);
    if checkpoint.size != entries.len() as u64 || checkpoint.root != root {
        return Err(Failure::new(
            kind.log_file(),
            code::LOG_CHECKPOINT_MISMATCH,
            format!(
                "{} does not match its signed checkpoint (size {} vs {}, or a different root)",
                kind.log_file(),
                entries.len(),
                checkpoint.size
            ),
        ));
    }
    let strict = kind == LogKind::Receipts;
    if let Some(at) = entries
        .windows(2)
        .position(|w| w[0] > w[1] || (strict && w[0] == w[1]))
    {
        return Err(Failure::new(
            kind.log_file(),
            code::LOG_NOT_SORTED,
            format!(
                "{} is not sorted{}: line {} is {:?} after {:?}",
                kind.log_file(),
                if strict { " without repeats" } else { "" },
                at + 2,
                entries[at + 1],
                entries[at]
            ),
        ));
    }
    Ok(Log {
        entries,
        leaves,
        root,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgevote_shared::{Role, SigningIdentity};

    fn note(kind: LogKind, entries: &[&str], key: &SigningIdentity) -> (String, String) {
        let entries: Vec<String> = entries.iter().map(|e| (*e).to_owned()).collect();
        let checkpoint = Checkpoint {
            origin: kind.origin("e1"),
            size: entries.len() as u64,
            root: merkle::root(&leaves(&entries)),
        };
        (crate::log_text(&entries), checkpoint.sign(key).unwrap())
    }

    #[test]
    fn a_log_is_read_only_when_it_matches_its_checkpoint_and_is_sorted() {
        let key = SigningIdentity::from_seed(&[7; 32], Role::Log);
        let vk = key.verifying_key();
        let (text, cp) = note(LogKind::Receipts, &["a", "b", "c"], &key);
        let log = read_log(LogKind::Receipts, &text, &cp, &vk, "e1").unwrap();
        assert_eq!(log.entries.len(), 3);

        let err = read_log(LogKind::Receipts, "a\nc\nb\n", &cp, &vk, "e1").unwrap_err();
        assert_eq!(err.code, code::LOG_CHECKPOINT_MISMATCH);
        assert_eq!(err.file, "receipts.log");

        let other = SigningIdentity::from_seed(&[8; 32], Role::Log);
        let err =
            read_log(LogKind::Receipts, &text, &cp, &other.verifying_key(), "e1").unwrap_err();
        assert_eq!(
            (err.file, err.code),
            ("receipts.checkpoint", "bad_signature")
        );

        // Signed as it is, but out of order or repeated.
        let (text, cp) = note(LogKind::Receipts, &["a", "b", "b"], &key);
        let err = read_log(LogKind::Receipts, &text, &cp, &vk, "e1").unwrap_err();
        assert_eq!(err.code, code::LOG_NOT_SORTED);
        assert!(err.detail.contains("line 3"), "{}", err.detail);
        // The choices log repeats choices, in order.
        let (text, cp) = note(LogKind::Choices, &["no", "yes", "yes"], &key);
        assert!(read_log(LogKind::Choices, &text, &cp, &vk, "e1").is_ok());
        let (text, cp) = note(LogKind::Choices, &["yes", "no"], &key);
        let err = read_log(LogKind::Choices, &text, &cp, &vk, "e1").unwrap_err();
        assert_eq!((err.file, err.code), ("choices.log", code::LOG_NOT_SORTED));
    }
}

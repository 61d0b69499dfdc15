//! Building the audit log of an election from a ballot store.
//!
//! [`publish`] reads every stored ballot of the election, applies the counting rule, and returns
//! the files of the log ([`Published`]); [`Published::write_to`] writes them into a folder.
//! Every region holds the same ballots once replication has drained, so every region publishes
//! the same logs and counts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use edgevote_shared::checkpoint::{Checkpoint, verifier_key};
use edgevote_shared::merkle::{self, Hash};
use edgevote_shared::tally::PublishedTally;
use edgevote_shared::{Digest32, ElectionManifest, KeySet, SigningIdentity, WireError};
use edgevote_store::{ElectionRules, Store, StoreError, counting};

use crate::{KEYSET_FILE, LogKind, TALLY_FILE, VKEY_FILE, leaves, log_text};

/// Most ballots `publish` reads (bounds memory: a vote id and a choice each).
pub const MAX_LOG_ENTRIES: usize = 100_000_000;

/// Why publishing failed; each variant names the stage.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The election is still open and a provisional log was not asked for.
    #[error("election {election} is open until {closes_at} (unix seconds)")]
    ElectionOpen {
        /// The election id.
        election: String,
        /// When it closes, unix seconds.
        closes_at: u64,
    },
    /// Reading the ballots from the store failed.
    #[error("reading the ballots: {0}")]
    Scan(#[from] StoreError),
    /// The store holds more ballots than [`MAX_LOG_ENTRIES`].
    #[error("more than {MAX_LOG_ENTRIES} ballots")]
    TooManyBallots,
    /// Signing a checkpoint or the tally was refused.
    #[error("{what} refused ({}): {source}", source.code())]
    Sign {
        /// What was being signed (`receipts checkpoint`, `choices checkpoint`, `tally`).
        what: &'static str,
        /// Why.
        source: WireError,
    },
    /// Creating the output folder or writing a file failed.
    #[error("{action} {}: {source}", path.display())]
    Write {
        /// `creating` (the folder) or `writing` (a file).
        action: &'static str,
        /// The folder or file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// What [`publish`] needs besides the store.
#[derive(Debug, Clone, Copy)]
pub struct PublishParams<'a> {
    /// The (verified) election manifest.
    pub manifest: &'a ElectionManifest,
    /// The `log` key that signs the checkpoints and the tally.
    pub log_key: &'a SigningIdentity,
    /// The key set to publish with the log (it must hold `log_key`).
    pub keys: &'a KeySet,
    /// Now, unix seconds: the tally's signing time, and compared with the election's close.
    pub now_secs: u64,
    /// Publish although the election is still open (a provisional log).
    pub before_close: bool,
    /// `Some(what was pending)` to publish although votes of the election are still pending
    /// (the caller checked, and was told to go on): the tally is then marked incomplete.
    pub incomplete: Option<&'a str>,
}

/// A published log: the signed tally and the files to write.
#[derive(Debug, Clone)]
pub struct Published {
    /// The tally that `tally.jws` signs.
    pub tally: PublishedTally,
    /// Every file of the log, `(file name, contents)`, in the order they are written.
    pub files: Vec<(&'static str, String)>,
}

impl Published {
    /// The contents of the published file `name`, if it is one.
    pub fn file(&self, name: &str) -> Option<&str> {
        self.files
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, text)| text.as_str())
    }

    /// Writes every file into `dir`, creating it if needed (existing files are replaced).
    pub fn write_to(&self, dir: &Path) -> Result<(), PublishError> {
        std::fs::create_dir_all(dir).map_err(|source| PublishError::Write {
            action: "creating",
            path: dir.to_owned(),
            source,
        })?;
        for (name, text) in &self.files {
            let path = dir.join(name);
            std::fs::write(&path, text).map_err(|source| PublishError::Write {
                action: "writing",
                path,
                source,
            })?;
        }
        Ok(())
    }
}

/// Refuses an election that is still open at `now_secs`, unless `before_close`.
pub fn ensure_closed(
    manifest: &ElectionManifest,
    now_secs: u64,
    before_close: bool,
) -> Result<(), PublishError> {
    if now_secs < manifest.closes_at && !before_close {
        return Err(PublishError::ElectionOpen {
            election: manifest.id.clone(),
            closes_at: manifest.closes_at,
        });
    }
    Ok(())
}

/// Builds and signs the audit log of `params.manifest`'s election from the ballots in `store`.
pub async fn publish(
    store: &dyn Store,
    params: &PublishParams<'_>,
) -> Result<Published, PublishError> {
    let manifest = params.manifest;
    ensure_closed(manifest, params.now_secs, params.before_close)?;
    let rules = ElectionRules::of(manifest);
    let (vote_ids, choices) = read_log_entries(store, &rules).await?;
    let (receipts_root, receipts_log, receipts_checkpoint) =
        signed_log(LogKind::Receipts, &manifest.id, &vote_ids, params.log_key)?;
    let (choices_root, choices_log, choices_checkpoint) =
        signed_log(LogKind::Choices, &manifest.id, &choices, params.log_key)?;
    let tally = PublishedTally {
        v: 1,
        election: manifest.id.clone(),
        counts: counts(&choices),
        voters: choices.len() as u64,
        ballots: vote_ids.len() as u64,
        receipts_root: Digest32(receipts_root),
        choices_root: Digest32(choices_root),
        created_at: params.now_secs,
        incomplete: params.incomplete.map(str::to_owned),
    };
    let signed =
        edgevote_shared::sign(params.log_key, &tally).map_err(|source| PublishError::Sign {
            what: "tally",
            source,
        })?;
    let vkey = verifier_key(
        &LogKind::Receipts.origin(&manifest.id),
        &params.log_key.verifying_key(),
    );
    let files = vec![
        (LogKind::Receipts.log_file(), receipts_log),
        (LogKind::Receipts.checkpoint_file(), receipts_checkpoint),
        (LogKind::Choices.log_file(), choices_log),
        (LogKind::Choices.checkpoint_file(), choices_checkpoint),
        (TALLY_FILE, signed + "\n"),
        (KEYSET_FILE, params.keys.to_json_pretty() + "\n"),
        (VKEY_FILE, vkey + "\n"),
    ];
    Ok(Published { tally, files })
}

/// Counted voters per choice.
pub(crate) fn counts(choices: &[String]) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for choice in choices {
        *counts.entry(choice.clone()).or_insert(0u64) += 1;
    }
    counts
}

/// Every stored vote id (sorted) and the counted choice of every voter (sorted).
async fn read_log_entries(
    store: &dyn Store,
    rules: &ElectionRules,
) -> Result<(Vec<String>, Vec<String>), PublishError> {
    let mut vote_ids = Vec::new();
    let mut counted = counting::CountedBallots::default();
    let mut overflow = false;
    let scanned = edgevote_store::scan_all(store, &rules.id, |ballot| {
        if vote_ids.len() >= MAX_LOG_ENTRIES {
            overflow = true;
            return Err(StoreError::invalid(
                "scan",
                "more ballots than a log may hold",
            ));
        }
        vote_ids.push(ballot.vote_id.to_b64());
        counted.offer(rules.policy, &ballot.voter, counting::Candidate::of(ballot));
        Ok(())
    })
    .await;
    match scanned {
        Err(_) if overflow => return Err(PublishError::TooManyBallots),
        other => other?,
    }
    vote_ids.sort_unstable();
    let mut choices: Vec<String> = counted.into_counted().map(|c| c.choice).collect();
    choices.sort_unstable();
    Ok((vote_ids, choices))
}

/// A log's root, the text of `<name>.log` and its signed `<name>.checkpoint`.
fn signed_log(
    kind: LogKind,
    election: &str,
    entries: &[String],
    key: &SigningIdentity,
) -> Result<(Hash, String, String), PublishError> {
    let root = merkle::root(&leaves(entries));
    let checkpoint = Checkpoint {
        origin: kind.origin(election),
        size: entries.len() as u64,
        root,
    };
    let note = checkpoint.sign(key).map_err(|source| PublishError::Sign {
        what: match kind {
            LogKind::Receipts => "receipts checkpoint",
            LogKind::Choices => "choices checkpoint",
        },
        source,
    })?;
    Ok((root, log_text(entries), note))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_group_equal_choices() {
        let choices = ["no", "yes", "yes"].map(str::to_owned);
        assert_eq!(
            counts(&choices),
            BTreeMap::from([("no".to_owned(), 1), ("yes".to_owned(), 2)])
        );
    }

    #[test]
    fn an_open_election_needs_before_close() {
        let manifest = ElectionManifest {
            v: 1,
            id: "e1".into(),
            title: "T".into(),
            options: Vec::new(),
            opens_at: 10,
            closes_at: 20,
            policy: edgevote_shared::Policy::FirstVoteWins,
            limits: edgevote_shared::Limits::default(),
            created_at: 5,
        };
        assert!(matches!(
            ensure_closed(&manifest, 19, false),
            Err(PublishError::ElectionOpen { closes_at: 20, .. })
        ));
        assert!(ensure_closed(&manifest, 19, true).is_ok());
        assert!(ensure_closed(&manifest, 20, false).is_ok());
    }
}

//! `edgevote audit`: the public audit log of an election (`publish`), its offline verification
//! (`verify`) and serving its files (`serve`). The log's format and checks live in
//! `edgevote-audit`; this module reads the files, opens the store, prints and picks the exit code.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use ed25519_dalek::VerifyingKey;
use edgevote_audit::verify::{CheckedLog, ReceiptOutcome, TrustRoots, check_documents};
use edgevote_audit::{LogFiles, LogKind, PublishError, PublishParams};
use edgevote_shared::checkpoint::parse_verifier_key;
use edgevote_shared::cosignature::WitnessKey;
use edgevote_shared::{KeySet, Role};
use edgevote_signer::KeyStore;

use crate::common::{self, timearg};

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Follow a region's live log: each new checkpoint must verify with a pinned log key, match
    /// the log's tiles and extend the last one (an RFC 9162 consistency proof built from the
    /// tiles). Any inconsistency prints ALARM and exits 1.
    Monitor {
        /// The collector's http:// URL.
        #[arg(long)]
        log: String,
        /// The election.
        #[arg(long)]
        election: String,
        /// The pinned key set (the authority's publication).
        #[arg(long)]
        keyset: PathBuf,
        /// A checkpoint seen earlier (its signed note): the log must extend it.
        #[arg(long)]
        since: Option<PathBuf>,
        /// Write each verified checkpoint here (to pass as --since next time).
        #[arg(long)]
        save: Option<PathBuf>,
        /// Seconds between polls.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3600))]
        interval_secs: u64,
        /// Stop after this many polls (0: until Ctrl-C).
        #[arg(long, default_value_t = 0)]
        polls: u64,
    },
    /// Build and sign the audit log of a stopped local stack's election from one region's store.
    Publish {
        /// Data directory of the `edgevote up` stack (stopped, on the embedded backends; running, on
        /// AWS, whose moto server holds the state).
        #[arg(long = "up", default_value = "edgevote-data/up")]
        data_dir: PathBuf,
        /// Region whose store to publish (all regions converge to the same ballots).
        #[arg(long)]
        region: Option<String>,
        /// Publish although the election is still open (a provisional log).
        #[arg(long)]
        before_close: bool,
        /// Publish although votes are still pending (queued, dead-lettered, spilled or not yet
        /// replicated); the tally is then signed as incomplete, and verifying it says so.
        #[arg(long)]
        force: bool,
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
    },
    /// Serve a published audit log over HTTP (read-only, the published files only).
    Serve {
        /// The published folder.
        #[arg(long)]
        log: PathBuf,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8088")]
        listen: String,
    },
    /// Verify a published audit log, and optionally a folder of receipts against it. The trust
    /// roots come from outside the folder: the election manifest, and a pinned key set or log key.
    Verify {
        /// The published folder.
        #[arg(long)]
        log: PathBuf,
        /// The election manifest (signed JWS) as its authority published it.
        #[arg(long)]
        manifest: PathBuf,
        /// A pinned key set (JWK Set), as the authority published it: the folder's must equal it.
        #[arg(long, required_unless_present = "log_key")]
        keyset: Option<PathBuf>,
        /// A pinned log key, as a C2SP verifier key (`name+hash+base64`): the tally and the
        /// checkpoints must be signed by it.
        #[arg(long)]
        log_key: Option<PathBuf>,
        /// Receipts to check for inclusion: one receipt file, or a folder of them (one compact
        /// JWS per file).
        #[arg(long)]
        receipts: Option<PathBuf>,
        /// A pinned witness key (C2SP verifier key file, from `edgevote witness keygen`);
        /// repeat for each witness.
        #[arg(long = "witness")]
        witnesses: Vec<PathBuf>,
        /// How many distinct pinned witnesses must have cosigned each checkpoint (required
        /// with `--witness`).
        #[arg(long, requires = "witnesses")]
        min_witnesses: Option<usize>,
    },
    /// Submit a published folder's checkpoints to witnesses (C2SP tlog-witness) and add their
    /// cosignatures to the checkpoint files.
    Witness {
        /// The published folder.
        #[arg(long)]
        log: PathBuf,
        /// A witness's URL (`http://host:port[/prefix]`); repeat for each witness.
        #[arg(long = "witness-url", required = true)]
        witness_urls: Vec<String>,
    },
}

pub fn run(command: AuditCommand) -> anyhow::Result<ExitCode> {
    match command {
        AuditCommand::Publish {
            data_dir,
            region,
            before_close,
            force,
            out,
        } => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let when = When {
                before_close,
                force,
            };
            runtime.block_on(publish(&data_dir, region, when, &out))
        }
        AuditCommand::Verify {
            log,
            manifest,
            keyset,
            log_key,
            receipts,
            witnesses,
            min_witnesses,
        } => {
            let min_witnesses = match (witnesses.is_empty(), min_witnesses) {
                (false, None) => anyhow::bail!("--witness needs --min-witnesses K"),
                (_, min) => min.unwrap_or(0),
            };
            let mut pinned = Pinned::read(&manifest, keyset.as_deref(), log_key.as_deref())?;
            pinned.witnesses = read_witness_keys(&witnesses)?;
            pinned.min_witnesses = min_witnesses;
            verify_folder(&log, &pinned, receipts.as_deref())
        }
        AuditCommand::Witness { log, witness_urls } => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(witness(&log, &witness_urls))
        }
        AuditCommand::Monitor {
            log,
            election,
            keyset,
            since,
            save,
            interval_secs,
            polls,
        } => {
            let keys = edgevote_signer::load_keyset(&keyset)?;
            let since = since
                .map(|path| -> anyhow::Result<_> {
                    let note = common::input::read_file(&path)?;
                    edgevote_audit::live::verify_live_checkpoint(&note, &keys, &election)
                        .with_context(|| format!("--since {}", path.display()))
                })
                .transpose()?;
            let monitor = edgevote_audit::live::Monitor::new(keys, &election, since);
            let every = std::time::Duration::from_secs(interval_secs);
            monitor_log(monitor, &log, &election, save.as_deref(), every, polls)
        }
        AuditCommand::Serve { log, listen } => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(serve(log, listen))
        }
    }
}

/// Serves `/audit/<file>` for the published files until Ctrl-C.
async fn serve(folder: PathBuf, listen: String) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        folder.join(edgevote_audit::TALLY_FILE).is_file(),
        "{} holds no published log (run edgevote audit publish)",
        folder.display()
    );
    let interrupted = crate::signal::interrupt()?;
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    println!(
        "serving the audit log on http://{}/audit/{}",
        listener.local_addr()?,
        edgevote_audit::INDEX_FILE
    );
    edgevote_audit::serve(listener, folder, interrupted).await?;
    Ok(ExitCode::SUCCESS)
}

/// The message of a publish error; an open election's names its close in RFC 3339.
fn publish_error(error: PublishError) -> anyhow::Error {
    match error {
        PublishError::ElectionOpen {
            election,
            closes_at,
        } => anyhow::anyhow!(
            "election {election} is open until {}; pass --before-close for a provisional log",
            timearg::show(closes_at)
        ),
        other => other.into(),
    }
}

/// What `publish` may go ahead despite.
#[derive(Debug, Clone, Copy)]
struct When {
    /// The election is still open.
    before_close: bool,
    /// Votes are still pending.
    force: bool,
}

/// Refuses (unless `force`) when votes of the election are still pending; returns what is
/// pending, to mark the tally incomplete.
async fn check_pending(
    dir: &Path,
    stack: &edgevote_stack::StackInfo,
    force: bool,
) -> anyhow::Result<Option<String>> {
    let pending = edgevote_stack::pending::pending(dir, stack, &stack.election).await?;
    if pending.is_empty() {
        return Ok(None);
    }
    let list: Vec<String> = pending.iter().map(ToString::to_string).collect();
    if !force {
        anyhow::bail!(
            "votes of {} are still pending, so the tally would not be the result:\n  {}\n\
             start the stack again until they are stored everywhere, or pass --force to publish \
             a tally signed as incomplete",
            stack.election,
            list.join("\n  ")
        );
    }
    eprintln!(
        "publishing an INCOMPLETE tally; pending:\n  {}",
        list.join("\n  ")
    );
    Ok(Some(list.join("; ")))
}

async fn publish(
    dir: &Path,
    region: Option<String>,
    when: When,
    out: &Path,
) -> anyhow::Result<ExitCode> {
    let stack = edgevote_stack::read_stack(dir)?;
    let store = KeyStore::open(&stack.keys_dir)?;
    let keys = store.keyset()?;
    let manifest = common::load_manifest(&stack.election_path, &keys)?;
    // Before opening the store: a running stack holds it, and an open election is the likelier
    // mistake.
    edgevote_audit::publish::ensure_closed(&manifest, timearg::now_secs(), when.before_close)
        .map_err(publish_error)?;
    let incomplete = check_pending(dir, &stack, when.force).await?;
    let region = region.unwrap_or_else(|| {
        stack
            .regions
            .first()
            .map(|r| r.name.clone())
            .unwrap_or_default()
    });
    let ballots = edgevote_stack::backend::region_store(dir, &stack, &region).await?;
    let log_key = store.signing_identity(Role::Log, None)?;
    let params = PublishParams {
        manifest: &manifest,
        log_key: &log_key,
        keys: &keys,
        now_secs: timearg::now_secs(),
        before_close: when.before_close,
        incomplete: incomplete.as_deref(),
    };
    let published = edgevote_audit::publish(ballots.as_ref(), &params)
        .await
        .map_err(publish_error)?;
    published.write_to(out)?;
    let tally = &published.tally;
    println!(
        "published {} from {region}: {} ballots, {} counted voters, tally {:?} -> {}",
        manifest.id,
        tally.ballots,
        tally.voters,
        tally.counts,
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Verifies the published log in `folder` (and `receipts`); exit code 1 on any failure, each
/// printed as `INVALID <file> (<code>)`.
/// The trust roots as read from their files.
struct Pinned {
    manifest: String,
    keyset: Option<KeySet>,
    log_key: Option<VerifyingKey>,
    witnesses: Vec<WitnessKey>,
    min_witnesses: usize,
}

impl Pinned {
    fn read(
        manifest: &Path,
        keyset: Option<&Path>,
        log_key: Option<&Path>,
    ) -> anyhow::Result<Self> {
        let log_key = log_key
            .map(|path| -> anyhow::Result<VerifyingKey> {
                let text = common::input::read_file(path)?;
                let (_, key) = parse_verifier_key(&text)
                    .map_err(|e| anyhow::anyhow!("{}: {e} ({})", path.display(), e.code()))?;
                Ok(key)
            })
            .transpose()?;
        Ok(Pinned {
            manifest: common::input::read_file(manifest)?,
            keyset: keyset.map(edgevote_signer::load_keyset).transpose()?,
            log_key,
            witnesses: Vec::new(),
            min_witnesses: 0,
        })
    }

    fn roots(&self) -> TrustRoots<'_> {
        TrustRoots {
            manifest: &self.manifest,
            keyset: self.keyset.as_ref(),
            log_key: self.log_key.as_ref(),
            witnesses: &self.witnesses,
            min_witnesses: self.min_witnesses,
        }
    }
}

/// Reads pinned witness keys (C2SP verifier key files of type 0x04).
fn read_witness_keys(paths: &[PathBuf]) -> anyhow::Result<Vec<WitnessKey>> {
    paths
        .iter()
        .map(|path| {
            let text = common::input::read_file(path)?;
            WitnessKey::parse(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e} ({})", path.display(), e.code()))
        })
        .collect()
}

/// Submits the folder's checkpoints to each witness in turn and writes the cosignatures in.
async fn witness(folder: &Path, urls: &[String]) -> anyhow::Result<ExitCode> {
    for url in urls {
        let added = edgevote_audit::witness::witness_folder(folder, url).await?;
        for (kind, lines) in added {
            print!("{} cosigned by {url}:\n{lines}", kind.checkpoint_file());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn verify_folder(
    folder: &Path,
    pinned: &Pinned,
    receipts: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let folder_keys = edgevote_signer::load_keyset(&folder.join(edgevote_audit::KEYSET_FILE))?;
    let read = |name: &str| {
        std::fs::read_to_string(folder.join(name)).with_context(|| format!("reading {name}"))
    };
    let tally = read(edgevote_audit::TALLY_FILE)?;
    let receipts_log = read(LogKind::Receipts.log_file())?;
    let receipts_checkpoint = read(LogKind::Receipts.checkpoint_file())?;
    let choices_log = read(LogKind::Choices.log_file())?;
    let choices_checkpoint = read(LogKind::Choices.checkpoint_file())?;
    let files = LogFiles {
        tally: &tally,
        receipts_log: &receipts_log,
        receipts_checkpoint: &receipts_checkpoint,
        choices_log: &choices_log,
        choices_checkpoint: &choices_checkpoint,
    };
    let log = match check_documents(&files, &folder_keys, &pinned.roots()) {
        Ok(log) => log,
        Err(failure) => {
            println!("INVALID {failure}");
            return Ok(ExitCode::from(1));
        }
    };
    let summary = log.summary();
    println!(
        "log: {} ballots, {} counted; tally recomputed from the choices log {:?}: {}",
        summary.ballots,
        summary.counted,
        summary.recomputed,
        if summary.tally_matches {
            "matches the signed tally"
        } else {
            "DIFFERS from the signed tally"
        }
    );
    if let Some(failure) = log.tally_failure() {
        println!("INVALID {failure}");
    }
    let receipts_ok = match receipts {
        Some(dir) => check_receipts(dir, &log)?,
        None => true,
    };
    Ok(if log.tally_failure().is_none() && receipts_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Verifies every receipt in `dir` (or the one file `dir`) and its inclusion; prints a summary.
fn check_receipts(dir: &Path, log: &CheckedLog) -> anyhow::Result<bool> {
    let files: Vec<PathBuf> = if dir.is_file() {
        vec![dir.to_owned()]
    } else {
        std::fs::read_dir(dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect()
    };
    let bar = common::progress_bar(files.len() as u64);
    // A hidden bar (stderr not a terminal) prints nothing: then print the line ourselves.
    let report = |line: String| {
        if bar.is_hidden() {
            println!("{line}");
        } else {
            bar.println(line);
        }
    };
    let (mut included, mut missing, mut invalid) = (0u64, 0u64, 0u64);
    for file in &files {
        bar.inc(1);
        let text = common::input::read_file(file)?;
        match log.check_receipt(&text) {
            ReceiptOutcome::Included { .. } => included += 1,
            ReceiptOutcome::NotIncluded { vote_id } => {
                missing += 1;
                report(format!("NOT INCLUDED {} (vote {vote_id})", file.display()));
            }
            ReceiptOutcome::Invalid { code, .. } => {
                invalid += 1;
                report(format!("INVALID {} ({code})", file.display()));
            }
        }
    }
    bar.finish_and_clear();
    println!(
        "receipts: {} checked, {included} verified and included, {missing} not included, {invalid} invalid",
        files.len()
    );
    Ok(missing == 0 && invalid == 0)
}

/// Polls the live log at `url` with `monitor`; exit 1 at the first alarm.
fn monitor_log(
    mut monitor: edgevote_audit::live::Monitor,
    url: &str,
    election: &str,
    save: Option<&Path>,
    every: std::time::Duration,
    polls: u64,
) -> anyhow::Result<ExitCode> {
    use edgevote_audit::live::{HttpSource, LiveError, Observation};
    let source = HttpSource::new(&format!("{}/v1/log/{election}", url.trim_end_matches('/')))?;
    for poll in 1.. {
        match monitor.observe(&source) {
            Ok(seen) => {
                match seen {
                    Observation::First { size } => println!("OK first checkpoint: {size} leaves"),
                    Observation::Unchanged { size } => println!("OK unchanged: {size} leaves"),
                    Observation::Grew { from, to } => {
                        println!("OK grew from {from} to {to} leaves, consistent")
                    }
                }
                if let (Some(path), Some(note)) = (save, monitor.last_note()) {
                    std::fs::write(path, note)
                        .with_context(|| format!("writing {}", path.display()))?;
                }
            }
            Err(e @ LiveError::Fetch { .. }) => println!("UNAVAILABLE {e}"),
            Err(alarm) => {
                println!("ALARM code={} {alarm}", alarm.code());
                return Ok(ExitCode::from(1));
            }
        }
        if poll == polls {
            break;
        }
        std::thread::sleep(every);
    }
    Ok(ExitCode::SUCCESS)
}

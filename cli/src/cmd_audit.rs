//! `edgevote audit`: the public audit log of an election and its offline verification.
//!
//! `publish` turns a region's stored ballots into two RFC 6962 logs, each with a C2SP signed
//! checkpoint, and a signed tally:
//! - the receipts log: every stored vote id (sorted), so any receipt holder can prove their
//!   ballot was stored;
//! - the choices log: the choice of every counted ballot (sorted), so anyone can recompute the
//!   tally.
//!
//! The two logs are not linked entry by entry: a receipt proves a ballot's inclusion without
//! revealing its choice to whoever is shown the receipt (ARCHITECTURE.md, "Audit log").
//! `verify` checks all of it offline with only the published folder and the key set.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use edgevote_shared::checkpoint::{Checkpoint, verifier_key};
use edgevote_shared::merkle::{self, Hash};
use edgevote_shared::tally::PublishedTally;
use edgevote_shared::{Digest32, KeySet, Receipt, Role, verify};
use edgevote_signer::KeyStore;
use edgevote_store::embedded::{EmbeddedStore, EmbeddedStoreConfig};
use edgevote_store::{ElectionRules, MAX_SCAN_PAGE, Store, counting};

use crate::common::{self, timearg};

/// Most ballots `publish` reads (bounds memory: a vote id and a choice each).
const MAX_LOG_ENTRIES: usize = 100_000_000;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Build and sign the audit log of a stopped local stack's election from one region's store.
    Publish {
        /// Data directory of the (stopped) `edgevote up` stack.
        #[arg(long = "up", default_value = "edgevote-data/up")]
        data_dir: PathBuf,
        /// Region whose store to publish (all regions converge to the same ballots).
        #[arg(long)]
        region: Option<String>,
        /// Publish although the election is still open (a provisional log).
        #[arg(long)]
        before_close: bool,
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
    /// Verify a published audit log, and optionally a folder of receipts against it.
    Verify {
        /// The published folder.
        #[arg(long)]
        log: PathBuf,
        /// Receipts to check for inclusion: one receipt file, or a folder of them (one compact
        /// JWS per file).
        #[arg(long)]
        receipts: Option<PathBuf>,
    },
}

pub fn run(command: AuditCommand) -> anyhow::Result<ExitCode> {
    match command {
        AuditCommand::Publish {
            data_dir,
            region,
            before_close,
            out,
        } => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(publish(&data_dir, region, before_close, &out))
        }
        AuditCommand::Verify { log, receipts } => verify_folder(&log, receipts.as_deref()),
        AuditCommand::Serve { log, listen } => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(serve(log, listen))
        }
    }
}

/// The files of a published log, with their content types.
const PUBLISHED: [(&str, &str); 8] = [
    ("receipts.log", "text/plain; charset=utf-8"),
    ("receipts.checkpoint", "text/plain; charset=utf-8"),
    ("choices.log", "text/plain; charset=utf-8"),
    ("choices.checkpoint", "text/plain; charset=utf-8"),
    ("tally.jws", "application/jose"),
    ("keyset.json", "application/jwk-set+json"),
    ("log.vkey", "text/plain; charset=utf-8"),
    ("index.txt", "text/plain; charset=utf-8"),
];

/// Serves `/audit/<file>` for the published files until Ctrl-C.
async fn serve(folder: PathBuf, listen: String) -> anyhow::Result<ExitCode> {
    use axum::extract::Path as UrlPath;
    use axum::http::{StatusCode, header};
    use axum::response::IntoResponse;
    anyhow::ensure!(
        folder.join("tally.jws").is_file(),
        "{} holds no published log (run edgevote audit publish)",
        folder.display()
    );
    let root = std::sync::Arc::new(folder);
    let app = axum::Router::new().route(
        "/audit/{file}",
        axum::routing::get(move |UrlPath(file): UrlPath<String>| {
            let root = std::sync::Arc::clone(&root);
            async move {
                let Some((name, content_type)) = PUBLISHED.iter().find(|(n, _)| *n == file) else {
                    return (StatusCode::NOT_FOUND, "not a published file\n").into_response();
                };
                let body = if *name == "index.txt" {
                    PUBLISHED
                        .iter()
                        .map(|(n, _)| format!("{n}\n"))
                        .collect::<String>()
                } else {
                    match std::fs::read_to_string(root.join(name)) {
                        Ok(text) => text,
                        Err(_) => {
                            return (StatusCode::NOT_FOUND, "not published\n").into_response();
                        }
                    }
                };
                ([(header::CONTENT_TYPE, *content_type)], body).into_response()
            }
        }),
    );
    let interrupted = crate::signal::interrupt()?;
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    println!(
        "serving the audit log on http://{}/audit/index.txt",
        listener.local_addr()?
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(interrupted)
        .await?;
    Ok(ExitCode::SUCCESS)
}

fn origin(election: &str, log: &str) -> String {
    format!("edgevote/{election}/{log}")
}

async fn publish(
    dir: &Path,
    region: Option<String>,
    before_close: bool,
    out: &Path,
) -> anyhow::Result<ExitCode> {
    let stack = edgevote_stack::read_stack(dir)?;
    let store = KeyStore::open(&stack.keys_dir)?;
    let keys = store.keyset()?;
    let manifest = common::load_manifest(&stack.election_path, &keys)?;
    if timearg::now_secs() < manifest.closes_at && !before_close {
        anyhow::bail!(
            "election {} is open until {}; pass --before-close for a provisional log",
            manifest.id,
            timearg::show(manifest.closes_at)
        );
    }
    let region = region.unwrap_or_else(|| {
        stack
            .regions
            .first()
            .map(|r| r.name.clone())
            .unwrap_or_default()
    });
    let path = dir.join(&region).join("store.redb");
    let ballots =
        EmbeddedStore::open(&EmbeddedStoreConfig { path: path.clone() }).with_context(|| {
            format!(
                "opening {} (stop edgevote up first: the store is in use while it runs)",
                path.display()
            )
        })?;
    let rules = ElectionRules::of(&manifest);
    let (vote_ids, choices) = read_log_entries(&ballots, &rules).await?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let log_key = store.signing_identity(Role::Log, None)?;
    let receipts_root = write_log(
        out,
        "receipts",
        &origin(&manifest.id, "receipts"),
        &vote_ids,
        &log_key,
    )?;
    let choices_root = write_log(
        out,
        "choices",
        &origin(&manifest.id, "choices"),
        &choices,
        &log_key,
    )?;
    let mut counts = BTreeMap::new();
    for choice in &choices {
        *counts.entry(choice.clone()).or_insert(0u64) += 1;
    }
    let tally = PublishedTally {
        v: 1,
        election: manifest.id.clone(),
        counts,
        voters: choices.len() as u64,
        ballots: vote_ids.len() as u64,
        receipts_root: Digest32(receipts_root),
        choices_root: Digest32(choices_root),
        created_at: timearg::now_secs(),
    };
    let signed = edgevote_shared::sign(&log_key, &tally)
        .map_err(|e| anyhow::anyhow!("tally refused ({}): {e}", e.code()))?;
    std::fs::write(out.join("tally.jws"), signed + "\n")?;
    std::fs::write(out.join("keyset.json"), keys.to_json_pretty() + "\n")?;
    let vkey = verifier_key(&origin(&manifest.id, "receipts"), &log_key.verifying_key());
    std::fs::write(out.join("log.vkey"), vkey + "\n")?;
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

/// Every stored vote id (sorted) and the counted choice of every voter (sorted).
async fn read_log_entries(
    store: &EmbeddedStore,
    rules: &ElectionRules,
) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    let mut vote_ids = Vec::new();
    let mut counted = counting::CountedBallots::default();
    let mut cursor = None;
    loop {
        let page = store.scan(&rules.id, cursor, MAX_SCAN_PAGE).await?;
        for ballot in &page.ballots {
            vote_ids.push(ballot.vote_id.to_b64());
            counted.offer(rules.policy, &ballot.voter, counting::Candidate::of(ballot));
        }
        anyhow::ensure!(
            vote_ids.len() <= MAX_LOG_ENTRIES,
            "more than {MAX_LOG_ENTRIES} ballots"
        );
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    vote_ids.sort_unstable();
    let mut choices: Vec<String> = counted.into_counted().map(|c| c.choice).collect();
    choices.sort_unstable();
    Ok((vote_ids, choices))
}

fn leaves(entries: &[String]) -> Vec<Hash> {
    entries
        .iter()
        .map(|e| merkle::leaf_hash(e.as_bytes()))
        .collect()
}

/// Writes `<name>.log` (one entry per line) and `<name>.checkpoint`; returns the root.
fn write_log(
    out: &Path,
    name: &str,
    origin: &str,
    entries: &[String],
    key: &edgevote_shared::SigningIdentity,
) -> anyhow::Result<Hash> {
    let root = merkle::root(&leaves(entries));
    let mut text = entries.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    std::fs::write(out.join(format!("{name}.log")), text)?;
    let checkpoint = Checkpoint {
        origin: origin.to_owned(),
        size: entries.len() as u64,
        root,
    };
    std::fs::write(
        out.join(format!("{name}.checkpoint")),
        checkpoint.sign(key)?,
    )?;
    Ok(root)
}

/// One published log, checked against its signed checkpoint.
struct Log {
    entries: Vec<String>,
    leaves: Vec<Hash>,
    root: Hash,
}

fn read_log(folder: &Path, name: &str, key: &ed25519_dalek::VerifyingKey) -> anyhow::Result<Log> {
    let text = std::fs::read_to_string(folder.join(format!("{name}.log")))
        .with_context(|| format!("reading {name}.log"))?;
    let entries: Vec<String> = text.lines().map(str::to_owned).collect();
    let note = std::fs::read_to_string(folder.join(format!("{name}.checkpoint")))?;
    let checkpoint = Checkpoint::verify(&note, key)
        .map_err(|e| anyhow::anyhow!("{name}.checkpoint refused ({}): {e}", e.code()))?;
    let leaves = leaves(&entries);
    let root = merkle::root(&leaves);
    anyhow::ensure!(
        checkpoint.size == entries.len() as u64 && checkpoint.root == root,
        "{name}.log does not match its signed checkpoint (size {} vs {}, or a different root)",
        entries.len(),
        checkpoint.size
    );
    Ok(Log {
        entries,
        leaves,
        root,
    })
}

fn verify_folder(folder: &Path, receipts: Option<&Path>) -> anyhow::Result<ExitCode> {
    let keys = edgevote_signer::load_keyset(&folder.join("keyset.json"))?;
    let text = std::fs::read_to_string(folder.join("tally.jws")).context("reading tally.jws")?;
    let tally = verify::<PublishedTally>(text.trim(), &keys)
        .map_err(|e| anyhow::anyhow!("tally.jws refused ({}): {e}", e.code()))?;
    let (_, log_key) = keys
        .get(&tally.kid)
        .context("tally signer not in the key set")?;
    let receipts_log = read_log(folder, "receipts", log_key)?;
    let choices_log = read_log(folder, "choices", log_key)?;
    let t = &tally.doc;
    let mut recomputed = BTreeMap::new();
    for choice in &choices_log.entries {
        *recomputed.entry(choice.clone()).or_insert(0u64) += 1;
    }
    let tally_ok = recomputed == t.counts
        && t.receipts_root.0 == receipts_log.root
        && t.choices_root.0 == choices_log.root
        && t.ballots == receipts_log.entries.len() as u64;
    println!(
        "log: {} ballots, {} counted; tally recomputed from the choices log {:?}: {}",
        receipts_log.entries.len(),
        choices_log.entries.len(),
        recomputed,
        if tally_ok {
            "matches the signed tally"
        } else {
            "DIFFERS from the signed tally"
        }
    );
    let receipts_ok = match receipts {
        Some(dir) => check_receipts(dir, &keys, &t.election, &receipts_log)?,
        None => true,
    };
    Ok(if tally_ok && receipts_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Verifies every receipt in `dir` and its inclusion proof; prints a summary.
fn check_receipts(dir: &Path, keys: &KeySet, election: &str, log: &Log) -> anyhow::Result<bool> {
    let files: Vec<PathBuf> = if dir.is_file() {
        vec![dir.to_owned()]
    } else {
        std::fs::read_dir(dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect()
    };
    let index: HashMap<&str, usize> = log
        .entries
        .iter()
        .enumerate()
        .map(|(i, e)| (e.as_str(), i))
        .collect();
    let bar = common::progress_bar(files.len() as u64);
    let (mut included, mut missing, mut invalid) = (0u64, 0u64, 0u64);
    for file in &files {
        bar.inc(1);
        let text = common::input::read_file(file)?;
        let receipt = match verify::<Receipt>(text.trim(), keys)
            .and_then(|v| v.doc.check_election(election).map(|()| v.doc))
        {
            Ok(receipt) => receipt,
            Err(e) => {
                invalid += 1;
                bar.println(format!("INVALID {} ({})", file.display(), e.code()));
                continue;
            }
        };
        let vote_id = receipt.vote_id.to_b64();
        let proven = index.get(vote_id.as_str()).is_some_and(|&i| {
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
            included += 1;
        } else {
            missing += 1;
            bar.println(format!("NOT INCLUDED {} (vote {vote_id})", file.display()));
        }
    }
    bar.finish_and_clear();
    println!(
        "receipts: {} checked, {included} verified and included, {missing} not included, {invalid} invalid",
        files.len()
    );
    Ok(missing == 0 && invalid == 0)
}

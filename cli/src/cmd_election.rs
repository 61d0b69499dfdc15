//! `edgevote election`: signed election manifests.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use edgevote_shared::{ElectionManifest, ElectionOption, Limits, Role};
use edgevote_signer::KeyStore;

use crate::common::{KeysDir, PolicyArg, load_manifest, timearg};

#[derive(Debug, Subcommand)]
pub enum ElectionCommand {
    /// Write a manifest signed by the authority key.
    Create {
        #[command(flatten)]
        keys: KeysDir,
        /// Election id (A-Z a-z 0-9 . _ -, at most 64).
        #[arg(long)]
        id: String,
        /// Human title.
        #[arg(long)]
        title: String,
        /// An option as ID or ID:LABEL; repeat for each (at least one).
        #[arg(long = "option", required = true)]
        options: Vec<String>,
        /// Opening time: now, +DURATION, unix seconds or RFC 3339.
        #[arg(long, default_value = "now")]
        opens: String,
        /// Closing time: +DURATION (from now), unix seconds or RFC 3339.
        #[arg(long, default_value = "+24h")]
        closes: String,
        /// Which ballot of a voter counts.
        #[arg(long, value_enum, default_value = "first-vote-wins")]
        policy: PolicyArg,
        /// Largest ballot body accepted, in bytes.
        #[arg(long, default_value_t = Limits::default().max_ballot_bytes)]
        max_ballot_bytes: u32,
        /// Most ballots stored per voter.
        #[arg(long, default_value_t = Limits::default().max_votes_per_voter)]
        max_votes_per_voter: u32,
        /// Output file for the signed manifest (compact JWS).
        #[arg(long, default_value = "election.jws")]
        out: PathBuf,
    },
    /// Verify a signed manifest and print it.
    Show {
        /// The manifest file (compact JWS).
        file: PathBuf,
        /// Published key set to verify against.
        #[arg(long, default_value = "edgevote-keys/keyset.json")]
        keyset: PathBuf,
    },
}

pub fn run(command: ElectionCommand) -> anyhow::Result<ExitCode> {
    match command {
        ElectionCommand::Create {
            keys,
            id,
            title,
            options,
            opens,
            closes,
            policy,
            max_ballot_bytes,
            max_votes_per_voter,
            out,
        } => {
            let now = timearg::now_secs();
            let manifest = ElectionManifest {
                v: 1,
                id,
                title,
                options: options.iter().map(|o| parse_option(o)).collect(),
                opens_at: timearg::parse(&opens, now)?,
                closes_at: timearg::parse(&closes, now)?,
                policy: policy.into(),
                limits: Limits {
                    max_ballot_bytes,
                    max_votes_per_voter,
                },
                created_at: now,
            };
            let store = KeyStore::open(&keys.dir)?;
            let authority = store.signing_identity(Role::Authority, None)?;
            let compact = edgevote_shared::sign(&authority, &manifest)
                .map_err(|e| anyhow::anyhow!("manifest refused ({}): {e}", e.code()))?;
            std::fs::write(&out, compact + "\n")
                .with_context(|| format!("writing {}", out.display()))?;
            println!(
                "election {} signed by {} -> {}",
                manifest.id,
                authority.kid(),
                out.display()
            );
            print_manifest(&manifest);
        }
        ElectionCommand::Show { file, keyset } => {
            let set = edgevote_signer::load_keyset(&keyset)?;
            print_manifest(&load_manifest(&file, &set)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn parse_option(text: &str) -> ElectionOption {
    let (id, label) = text.split_once(':').unwrap_or((text, text));
    ElectionOption {
        id: id.to_owned(),
        label: label.to_owned(),
    }
}

fn print_manifest(m: &ElectionManifest) {
    println!("  id:       {}", m.id);
    println!("  title:    {}", m.title);
    println!("  opens:    {}", timearg::show(m.opens_at));
    println!("  closes:   {}", timearg::show(m.closes_at));
    println!("  policy:   {}", m.policy.as_str());
    let options: Vec<String> = m
        .options
        .iter()
        .map(|o| format!("{} ({})", o.id, o.label))
        .collect();
    println!("  options:  {}", options.join(", "));
    println!(
        "  limits:   ballot <= {} bytes, <= {} ballots per voter",
        m.limits.max_ballot_bytes, m.limits.max_votes_per_voter
    );
}

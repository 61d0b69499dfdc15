//! `edgevote receipt issue`: run the edge's admission checks and sign a receipt offline.
//! Used for drills, the README demo and third-party verification tests; live receipts come from
//! edges, after the ballot is durable.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use edgevote_shared::{Ballot, Role, admit, b64};
use edgevote_signer::issue::sign_receipt;
use edgevote_signer::{KeyStore, random};

use crate::common::{KeysDir, input, load_manifest, timearg};

#[derive(Debug, Subcommand)]
pub enum ReceiptCommand {
    /// Admit a ballot (token + choice) and print the signed receipt.
    Issue {
        #[command(flatten)]
        keys: KeysDir,
        /// The signed election manifest.
        #[arg(long, default_value = "election.jws")]
        election: PathBuf,
        /// The voter's token: inline, a file, or - for stdin.
        #[arg(long)]
        token: String,
        /// The chosen option id.
        #[arg(long)]
        choice: String,
        /// Edge id written into the receipt: the edge key bound to it signs (default: the
        /// store's one active edge key, for the edge it is bound to).
        #[arg(long, requires = "region")]
        edge_id: Option<String>,
        /// Region written into the receipt (with --edge-id).
        #[arg(long, requires = "edge_id")]
        region: Option<String>,
        /// Write the receipt here instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

pub fn run(command: ReceiptCommand) -> anyhow::Result<ExitCode> {
    let ReceiptCommand::Issue {
        keys,
        election,
        token,
        choice,
        edge_id,
        region,
        out,
    } = command;
    let store = KeyStore::open(&keys.dir)?;
    let keyset = store.keyset()?;
    let manifest = load_manifest(&election, &keyset)?;
    let ballot = Ballot {
        election: manifest.id.clone(),
        token: input::jws_arg(&token)?,
        choice,
        nonce: b64::encode(random::bytes::<16>()?),
    };
    ballot
        .validate()
        .map_err(|e| anyhow::anyhow!("ballot refused ({}): {e}", e.code()))?;
    let now_ms = timearg::now_ms();
    let admitted = admit(&manifest, &keyset, ballot, now_ms / 1000)
        .map_err(|e| anyhow::anyhow!("ballot refused ({}): {e}", e.code()))?;
    let (edge, edge_id, region) = match (edge_id, region) {
        (Some(edge_id), Some(region)) => (store.edge_identity(&edge_id, &region)?, edge_id, region),
        _ => {
            let edge = store.signing_identity(Role::Edge, None)?;
            let (edge_id, region) = keyset
                .get(edge.kid())
                .and_then(|(jwk, _)| jwk.binding())
                .map(|(e, r)| (e.to_owned(), r.to_owned()))
                .context("the active edge key is bound to no edge; generate one with --edge and --region")?;
            (edge, edge_id, region)
        }
    };
    let (receipt, compact) = sign_receipt(&edge, &admitted, &edge_id, &region, now_ms)?;
    match out {
        Some(path) => {
            std::fs::write(&path, format!("{compact}\n"))
                .with_context(|| format!("writing {}", path.display()))?;
            eprintln!("receipt for vote {} -> {}", receipt.vote_id, path.display());
        }
        None => println!("{compact}"),
    }
    Ok(ExitCode::SUCCESS)
}

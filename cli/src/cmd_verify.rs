//! `edgevote verify`: offline verification for auditors and voters.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use edgevote_shared::{Document, Receipt, VoteToken, WireError, verify};

use crate::common::{input, timearg};

#[derive(Debug, Subcommand)]
pub enum VerifyCommand {
    /// Verify a receipt's signature, key validity and fields against a published key set.
    Receipt {
        /// The receipt: inline, a file, or - for stdin.
        receipt: String,
        /// The published key set (an archived set verifies receipts of rotated keys).
        #[arg(long, default_value = "edgevote-keys/keyset.json")]
        keyset: PathBuf,
        /// Also require the receipt to be for this election.
        #[arg(long)]
        election: Option<String>,
        /// Also prove the receipt's vote is in this collector's live log (its http:// URL):
        /// the checkpoint must verify with a log key of the key set, and the inclusion proof
        /// is built from the log's tiles.
        #[arg(long)]
        log: Option<String>,
        /// Print the result as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Verify a vote token for an election, now.
    Token {
        /// The token: inline, a file, or - for stdin.
        token: String,
        /// The published key set.
        #[arg(long, default_value = "edgevote-keys/keyset.json")]
        keyset: PathBuf,
        /// The election the token must be for.
        #[arg(long)]
        election: String,
        /// Print the result as one JSON object.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(command: VerifyCommand) -> anyhow::Result<ExitCode> {
    match command {
        VerifyCommand::Receipt {
            receipt,
            keyset,
            election,
            log,
            json,
        } => {
            let keys = edgevote_signer::load_keyset(&keyset)?;
            let compact = input::jws_arg(&receipt)?;
            let outcome = verify::<Receipt>(&compact, &keys).and_then(|v| {
                if let Some(election) = &election {
                    v.doc.check_election(election)?;
                }
                Ok(v)
            });
            let included = match (&outcome, &log) {
                (Ok(v), Some(url)) => Some(edgevote_audit::live::prove_inclusion(
                    url,
                    &keys,
                    &v.doc.election,
                    &v.doc.vote_id.to_b64(),
                )),
                _ => None,
            };
            let code = report(outcome, json);
            Ok(match included {
                None => code,
                Some(included) => report_inclusion(included, json),
            })
        }
        VerifyCommand::Token {
            token,
            keyset,
            election,
            json,
        } => {
            let keys = edgevote_signer::load_keyset(&keyset)?;
            let compact = input::jws_arg(&token)?;
            let outcome = verify::<VoteToken>(&compact, &keys).and_then(|v| {
                v.doc.check_usable(&election, timearg::now_secs())?;
                Ok(v)
            });
            Ok(report(outcome, json))
        }
    }
}

/// Prints one result as JSON or as text; exit code 0 when `ok`, else 1.
fn emit(ok: bool, json: bool, value: serde_json::Value, text: String) -> ExitCode {
    if json {
        println!("{value}");
    } else {
        println!("{text}");
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Prints `INCLUDED`/`NOT INCLUDED` (or JSON) for a live log, and returns exit code 0 or 1.
fn report_inclusion(
    included: Result<edgevote_audit::live::Inclusion, edgevote_audit::live::LiveError>,
    json: bool,
) -> ExitCode {
    match included {
        Ok(i) => emit(
            true,
            json,
            serde_json::json!({"included": true, "origin": i.origin, "index": i.index, "size": i.size}),
            format!("INCLUDED in {} at leaf {} of {}", i.origin, i.index, i.size),
        ),
        Err(e) => emit(
            false,
            json,
            serde_json::json!({"included": false, "code": e.code(), "error": e.to_string()}),
            format!("NOT INCLUDED code={} {e}", e.code()),
        ),
    }
}

/// Prints `VALID`/`INVALID` (or JSON) and returns exit code 0 or 1.
fn report<T: Document>(
    outcome: Result<edgevote_shared::Verified<T>, WireError>,
    json: bool,
) -> ExitCode {
    match outcome {
        Ok(verified) => {
            let doc = serde_json::to_value(&verified.doc).unwrap_or_default();
            let text = format!(
                "VALID {} signed by {}\n{}",
                T::NAME,
                verified.kid,
                serde_json::to_string_pretty(&doc).unwrap_or_default()
            );
            let value = serde_json::json!({"valid": true, "type": T::TYP, "kid": verified.kid, "claims": doc});
            emit(true, json, value, text)
        }
        Err(error) => emit(
            false,
            json,
            serde_json::json!({"valid": false, "code": error.code(), "error": error.to_string()}),
            format!("INVALID {} code={} {error}", T::NAME, error.code()),
        ),
    }
}

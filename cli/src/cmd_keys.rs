//! `edgevote keys`: the key store.

use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use edgevote_shared::Role;
use edgevote_signer::KeyStore;

use crate::common::{KeysDir, timearg};

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Generate a key of a role and add it to the key set (creates the store if needed).
    Gen {
        #[command(flatten)]
        keys: KeysDir,
        /// What the key signs: authority (tokens, manifests), edge (receipts, envelopes),
        /// ops (bundles), log (checkpoints).
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// Edge keys: the edge this key signs for (receipts and envelopes naming another edge
        /// are refused).
        #[arg(long, requires = "region")]
        edge: Option<String>,
        /// Edge keys: the region of that edge.
        #[arg(long, requires = "edge")]
        region: Option<String>,
    },
    /// List the keys: id, role, validity window, status.
    Show {
        #[command(flatten)]
        keys: KeysDir,
        /// Print the published key set (JWK Set JSON) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Replace an active key by a new one; the old key is archived, so what it signed still
    /// verifies.
    Rotate {
        #[command(flatten)]
        keys: KeysDir,
        /// The key to rotate out.
        #[arg(long, conflicts_with = "role")]
        kid: Option<String>,
        /// Rotate the one active key of this role.
        #[arg(long, value_parser = parse_role)]
        role: Option<Role>,
        /// With --role: rotate every active key of the role (edge keys: each edge gets its
        /// own successor, bound to the same edge).
        #[arg(long, requires = "role")]
        all: bool,
        /// Seconds the old key stays valid after the successor is published, so that edge
        /// hosts and collectors (which re-read the key set every 2 s) switch before it ends:
        /// nothing an edge signs in that time is refused. 0 needs --revoke.
        #[arg(long, default_value_t = DEFAULT_GRACE_SECS)]
        grace_secs: u64,
        /// End the old key now (no grace; e.g. a leaked key). Edges still holding it answer
        /// 503 `edge_key_expired` until they load the successor, and envelopes it sealed after
        /// now are dead-lettered.
        #[arg(long)]
        revoke: bool,
    },
}

/// Default grace period of a rotation: the old key stays valid 10 minutes after its successor
/// is published.
pub const DEFAULT_GRACE_SECS: u64 = 600;

pub fn parse_role(text: &str) -> Result<Role, String> {
    text.parse::<Role>()
        .map_err(|_| "expected one of: authority, edge, ops, log".to_owned())
}

pub fn run(command: KeysCommand) -> anyhow::Result<ExitCode> {
    let now = timearg::now_secs();
    match command {
        KeysCommand::Gen {
            keys,
            role,
            edge,
            region,
        } => {
            let store = KeyStore::open_or_create(&keys.dir)?;
            let jwk = match (role, edge, region) {
                (Role::Edge, Some(edge), Some(region)) => {
                    store.generate_edge(&edge, &region, now)?
                }
                (Role::Edge, _, _) => {
                    anyhow::bail!(
                        "an edge key belongs to one edge: add --edge EDGE --region REGION"
                    )
                }
                (_, None, None) => store.generate(role, now)?,
                (_, _, _) => anyhow::bail!("--edge and --region apply to edge keys only"),
            };
            match jwk.binding() {
                Some((edge, region)) => {
                    println!(
                        "generated {role} key {} for edge {edge} in {region}",
                        jwk.kid
                    )
                }
                None => println!("generated {role} key {}", jwk.kid),
            }
            println!("key set: {}", store.keyset_path().display());
        }
        KeysCommand::Show { keys, json } => {
            let set = KeyStore::open(&keys.dir)?.keyset()?;
            if json {
                println!("{}", set.to_json_pretty());
            } else {
                print_table(&set, now);
                // What a voter compares on the receipt page (shared::keys::KeySet::fingerprint).
                println!("key set fingerprint: {}", set.fingerprint());
            }
        }
        KeysCommand::Rotate {
            keys,
            kid,
            role,
            all,
            grace_secs,
            revoke,
        } => {
            let grace_secs = match (revoke, grace_secs) {
                (true, _) => 0,
                (false, 0) => anyhow::bail!(
                    "--grace-secs 0 ends the old key at once: edges still signing with it lose \
                     votes to the dead-letter queue. Pass --revoke to mean it"
                ),
                (false, grace) => grace,
            };
            let store = KeyStore::open(&keys.dir)?;
            let kids = match (kid, role) {
                (Some(kid), _) => vec![kid],
                (None, Some(role)) if all => store
                    .keyset()?
                    .active(role)
                    .map(|j| j.kid.clone())
                    .collect(),
                (None, Some(role)) => vec![store.active_kid(role, None)?],
                (None, None) => anyhow::bail!("name the key to rotate with --kid or --role"),
            };
            for kid in kids {
                let new = store
                    .rotate(&kid, now, grace_secs)
                    .with_context(|| format!("rotating key {kid}"))?;
                let until = now.saturating_add(grace_secs);
                println!(
                    "archived {kid}: valid until {} (grace period {grace_secs} s)",
                    timearg::show(until)
                );
                match new.binding() {
                    Some((edge, region)) => {
                        println!(
                            "new {} key {} for edge {edge} in {region}",
                            new.edgevote_role, new.kid
                        );
                        let current = store.current_edge_key_path(edge, region);
                        if current.is_file() {
                            println!("  {} now holds it", current.display());
                        }
                    }
                    None => println!("new {} key {}", new.edgevote_role, new.kid),
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_table(set: &edgevote_shared::KeySet, now: u64) {
    println!(
        "{:<44} {:<9} {:<8} {:<21} {:<21} FOR EDGE",
        "KID", "ROLE", "STATUS", "VALID FROM", "VALID UNTIL"
    );
    let mut keys: Vec<_> = set.iter().collect();
    keys.sort_by_key(|k| (k.edgevote_role, k.valid_from));
    for key in keys {
        let status = match key.valid_until {
            None => "active",
            Some(until) if until > now => "retiring",
            Some(_) => "archived",
        };
        let until = key
            .valid_until
            .map(timearg::show)
            .unwrap_or_else(|| "-".into());
        let bound = key.binding().map_or_else(
            || "-".to_owned(),
            |(edge, region)| format!("{edge}@{region}"),
        );
        println!(
            "{:<44} {:<9} {:<8} {:<21} {until:<21} {bound}",
            key.kid,
            key.edgevote_role,
            status,
            timearg::show(key.valid_from)
        );
    }
}

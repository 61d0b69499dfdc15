//! `edgevote witness`: a C2SP `tlog-witness` witness for edgevote's logs (`serve`) and its key
//! (`keygen`). The witness itself is `edgevote_audit::witness`; this module reads its files and
//! runs it until Ctrl-C or SIGTERM.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Subcommand;
use edgevote_audit::witness::{WitnessConfig, WitnessParts, WitnessService};
use edgevote_shared::cosignature::Witness;

use crate::common;

#[derive(Debug, Subcommand)]
pub enum WitnessCommand {
    /// Generate a witness key: writes the private key file (mode 0600) and `<key>.vkey`, its
    /// C2SP verifier key, which auditors pin with `audit verify --witness`.
    Keygen {
        /// The witness's name (a schema-less URL, e.g. `witness.example.org/w1`).
        #[arg(long)]
        name: String,
        /// Where to write the private key (refused if it exists).
        #[arg(long)]
        key: PathBuf,
    },
    /// Serve `POST /add-checkpoint` for the logs of a config file (TOML: `listen`, `key_path`,
    /// `state_path`, `[[log]] origin, vkey`) until Ctrl-C.
    Serve {
        /// The witness's configuration file.
        #[arg(long)]
        config: PathBuf,
    },
}

pub fn run(command: WitnessCommand) -> anyhow::Result<ExitCode> {
    match command {
        WitnessCommand::Keygen { name, key } => keygen(&name, &key),
        WitnessCommand::Serve { config } => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(serve(&config))
        }
    }
}

fn keygen(name: &str, path: &Path) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        !path.exists(),
        "{} exists: refusing to overwrite a key",
        path.display()
    );
    let seed = edgevote_signer::random::bytes::<32>()?;
    let witness = Witness::from_seed(name, &seed)
        .map_err(|e| anyhow::anyhow!("witness name {name:?}: {e}"))?;
    edgevote_signer::keyfile::write_atomic(path, witness.private_key().as_bytes(), 0o600)?;
    let vkey = witness.public().vkey();
    let vkey_path = path.with_extension("vkey");
    edgevote_signer::keyfile::write_atomic(&vkey_path, format!("{vkey}\n").as_bytes(), 0o644)?;
    println!("{vkey}");
    eprintln!("wrote {} and {}", path.display(), vkey_path.display());
    Ok(ExitCode::SUCCESS)
}

async fn serve(config_path: &Path) -> anyhow::Result<ExitCode> {
    let text = common::input::read_file(config_path)?;
    let config = WitnessConfig::parse(&text).with_context(|| config_path.display().to_string())?;
    let key = common::input::read_file(&config.key_path)?;
    let clock = Arc::new(edgevote_signer::clock::now_secs);
    let parts = WitnessParts::from_config(&config, &key, clock)?;
    let name = parts.witness.name().to_owned();
    let service = Arc::new(WitnessService::open(parts)?);
    let interrupted = crate::signal::interrupt()?;
    let listener = common::bind(&config.listen).await?;
    let url = format!("http://{}", listener.local_addr()?);
    let logs = config.logs.len();
    println!("witness {name} on {url}/add-checkpoint for {logs} log(s)");
    edgevote_audit::witness::serve(listener, service, interrupted).await?;
    Ok(ExitCode::SUCCESS)
}

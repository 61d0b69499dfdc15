//! The witness's configuration file (TOML, unknown keys refused):
//!
//! ```toml
//! listen = "127.0.0.1:8089"              # address to serve on
//! key_path = "witness.key"               # the witness's private key (PRIVATE+KEY+...)
//! state_path = "witness.state"           # the last cosigned tree head of each log
//!
//! [[log]]
//! origin = "edgevote/ref-1/receipts"     # the checkpoint origin it witnesses
//! vkey = "edgevote/ref-1/receipts+..."   # the log's C2SP verifier key (its name is not used:
//!                                        # the origin names the key, so one log.vkey serves both)
//! ```

use std::path::PathBuf;

use serde::Deserialize;

use crate::witness::server::WitnessError;

/// Most logs one witness is configured for.
pub const MAX_LOGS: usize = 1024;

/// The witness's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessConfig {
    /// Address to listen on (`host:port`).
    #[serde(default = "default_listen")]
    pub listen: String,
    /// The witness's private key file (`PRIVATE+KEY+<name>+<hash>+<base64>`).
    pub key_path: PathBuf,
    /// The file holding the last cosigned tree head of each log (rewritten atomically).
    pub state_path: PathBuf,
    /// The logs it witnesses.
    #[serde(rename = "log")]
    pub logs: Vec<LogConfig>,
}

/// One log the witness cosigns for.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// The checkpoint origin (`edgevote/<election>/<log>`).
    pub origin: String,
    /// The log's C2SP Ed25519 verifier key (`name+hash+base64(0x01 ‖ key)`).
    pub vkey: String,
}

fn default_listen() -> String {
    "127.0.0.1:8089".to_owned()
}

impl WitnessConfig {
    /// Parses the TOML text, refusing unknown keys, no logs, more than [`MAX_LOGS`] and an origin
    /// listed twice.
    pub fn parse(text: &str) -> Result<Self, WitnessError> {
        let config: WitnessConfig =
            toml::from_str(text).map_err(|e| WitnessError::Config(e.to_string()))?;
        if config.logs.is_empty() || config.logs.len() > MAX_LOGS {
            return Err(WitnessError::Config(format!(
                "1 to {MAX_LOGS} [[log]] entries are needed, {} given",
                config.logs.len()
            )));
        }
        let mut origins: Vec<&str> = config.logs.iter().map(|l| l.origin.as_str()).collect();
        origins.sort_unstable();
        if let Some(twice) = origins.windows(2).find(|w| w[0] == w[1]) {
            return Err(WitnessError::Config(format!(
                "origin {:?} is listed twice",
                twice[0]
            )));
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_and_repeated_origins_are_refused() {
        let good = "key_path = \"k\"\nstate_path = \"s\"\n[[log]]\norigin = \"a\"\nvkey = \"v\"\n";
        let config = WitnessConfig::parse(good).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.listen, "127.0.0.1:8089");
        assert_eq!(config.logs.len(), 1);
        let unknown = format!("{good}extra = 1\n");
        assert!(WitnessConfig::parse(&unknown).is_err());
        let twice = format!("{good}[[log]]\norigin = \"a\"\nvkey = \"w\"\n");
        assert!(WitnessConfig::parse(&twice).is_err());
        assert!(WitnessConfig::parse("key_path = \"k\"\nstate_path = \"s\"\nlog = []\n").is_err());
    }
}

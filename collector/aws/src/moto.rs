//! A moto server (an AWS emulator) for integration tests: [`MotoServer`].
//!
//! The executable is `$EDGEVOTE_MOTO_SERVER`, or else `.venv/bin/moto_server` at the workspace
//! root, which `scripts/bootstrap.sh python` installs (`moto[server]` is pinned in
//! `tests/python/requirements.txt`). A missing executable is an error, never a skipped test.
//!
//! One server serves SQS and DynamoDB on one port. Its state is global to the server, so tests
//! that share one ([`MotoServer::shared`]) use unique queue and table names
//! ([`MotoServer::unique_name`]).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use aws_sdk_sqs::config::{BehaviorVersion, Region};

use crate::client::{local_credentials, timeouts};

/// Environment variable naming the moto_server executable.
pub const MOTO_ENV: &str = "EDGEVOTE_MOTO_SERVER";
/// How long [`MotoServer::start`] waits for the server to answer.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Region of the clients [`MotoServer`] makes.
pub const REGION: &str = "us-east-1";
/// How many ports [`MotoServer::start`] tries when the server exits at once (port taken).
const START_ATTEMPTS: usize = 3;
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Why the moto server could not be started.
#[derive(Debug, thiserror::Error)]
pub enum MotoError {
    /// The executable does not exist.
    #[error(
        "moto server not found at {path}: run `scripts/bootstrap.sh python` (or set {MOTO_ENV})"
    )]
    Missing {
        /// Where it was looked for.
        path: PathBuf,
    },
    /// A step of starting it failed.
    #[error("moto server {stage} failed: {detail}")]
    Start {
        /// The step (`log`, `port`, `spawn`, `ready`).
        stage: &'static str,
        /// What went wrong, with the tail of the server's log when there is one.
        detail: String,
    },
}

/// A running moto server on 127.0.0.1, killed on drop.
#[derive(Debug)]
pub struct MotoServer {
    child: Child,
    port: u16,
    endpoint: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

fn start_err(stage: &'static str) -> impl FnOnce(std::io::Error) -> MotoError {
    move |e| MotoError::Start {
        stage,
        detail: e.to_string(),
    }
}

/// The moto_server executable to run.
pub fn executable() -> PathBuf {
    match std::env::var_os(MOTO_ENV) {
        Some(path) => PathBuf::from(path),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/moto_server"),
    }
}

fn free_port() -> Result<u16, MotoError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(start_err("port"))?;
    Ok(listener.local_addr().map_err(start_err("port"))?.port())
}

/// True when `GET /moto-api/data.json` answers 200.
fn answers(addr: SocketAddr) -> bool {
    let probe = || -> std::io::Result<bool> {
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        stream.set_write_timeout(Some(Duration::from_secs(2)))?;
        let request = format!(
            "GET /moto-api/data.json HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes())?;
        let mut head = [0u8; 16];
        let n = stream.read(&mut head)?;
        let status = String::from_utf8_lossy(&head[..n]);
        Ok(status.starts_with("HTTP/1.1 200") || status.starts_with("HTTP/1.0 200"))
    };
    probe().unwrap_or(false)
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

impl MotoServer {
    /// Starts a server on a free port and waits (at most [`READY_TIMEOUT`]) until it answers.
    pub fn start() -> Result<Self, MotoError> {
        let path = executable();
        if !path.is_file() {
            return Err(MotoError::Missing { path });
        }
        let mut last = None;
        for attempt in 1..=START_ATTEMPTS {
            match Self::start_once(&path) {
                Ok(server) => return Ok(server),
                Err(e) => {
                    tracing::warn!(attempt, error = %e, "moto server did not start");
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or(MotoError::Start {
            stage: "spawn",
            detail: "no attempt made".into(),
        }))
    }

    /// A server shared by every caller in this process while any of them holds it; the last
    /// holder's drop stops it, and the next call starts a new one.
    pub fn shared() -> Result<Arc<Self>, MotoError> {
        static SHARED: Mutex<Weak<MotoServer>> = Mutex::new(Weak::new());
        let mut slot = SHARED
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(server) = slot.upgrade() {
            return Ok(server);
        }
        let server = Arc::new(Self::start()?);
        *slot = Arc::downgrade(&server);
        Ok(server)
    }

    fn start_once(path: &Path) -> Result<Self, MotoError> {
        let dir = tempfile::tempdir().map_err(start_err("log"))?;
        let log = dir.path().join("moto.log");
        let out = std::fs::File::create(&log).map_err(start_err("log"))?;
        let err = out.try_clone().map_err(start_err("log"))?;
        let port = free_port()?;
        let child = Command::new(path)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| MotoError::Start {
                stage: "spawn",
                detail: format!("{}: {e}", path.display()),
            })?;
        let mut server = MotoServer {
            child,
            port,
            endpoint: format!("http://127.0.0.1:{port}"),
            log,
            _dir: dir,
        };
        server.wait_ready()?;
        tracing::info!(port, "moto server ready");
        Ok(server)
    }

    fn wait_ready(&mut self) -> Result<(), MotoError> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let started = Instant::now();
        while started.elapsed() < READY_TIMEOUT {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(self.not_ready(format!("exited with {status}")));
            }
            if answers(addr) {
                return Ok(());
            }
            std::thread::sleep(POLL_INTERVAL);
        }
        Err(self.not_ready(format!("no answer within {READY_TIMEOUT:?}")))
    }

    fn not_ready(&self, what: String) -> MotoError {
        MotoError::Start {
            stage: "ready",
            detail: format!("{what}; log:\n{}", log_tail(&self.log)),
        }
    }

    /// The endpoint URL for SDK clients, `http://127.0.0.1:PORT`.
    pub fn endpoint_url(&self) -> &str {
        &self.endpoint
    }

    /// The server's log file (stdout and stderr).
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// An SQS client for this server (static credentials `test`/`test`, region us-east-1).
    pub fn sqs_client(&self) -> aws_sdk_sqs::Client {
        let config = aws_sdk_sqs::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(&self.endpoint)
            .region(Region::new(REGION))
            .credentials_provider(local_credentials())
            .timeout_config(timeouts())
            .build();
        aws_sdk_sqs::Client::from_conf(config)
    }

    /// A DynamoDB client for this server (static credentials `test`/`test`, region us-east-1).
    pub fn dynamo_client(&self) -> aws_sdk_dynamodb::Client {
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .endpoint_url(&self.endpoint)
            .region(aws_sdk_dynamodb::config::Region::new(REGION))
            .credentials_provider(local_credentials())
            .timeout_config(timeouts())
            .build();
        aws_sdk_dynamodb::Client::from_conf(config)
    }

    /// A name unique in this process and across processes (`{prefix}-{pid}-{n}`), for queues
    /// and tables on a shared server.
    pub fn unique_name(prefix: &str) -> String {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        format!("{prefix}-{}-{n}", std::process::id())
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        if let Err(e) = self.child.kill() {
            tracing::warn!(port = self.port, error = %e, "moto server kill failed");
        }
        let _ = self.child.wait();
    }
}

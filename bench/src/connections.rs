//! (e) The edge host at many connections: one `edgevote edge run` process with the production
//! defaults (host sealing, `http.max_connections` 10 000, rate limits on), and `connections`
//! clients that each open a keep-alive connection, cast one vote on it and keep it open. With
//! every connection open, each makes a second request. The host's resident memory at start and
//! at its peak (Linux `VmHWM`) is set against a budget per connection.
//!
//! Each client sends its own `X-Forwarded-For` address and the host trusts one proxy hop, so
//! the per-IP limits stay on and hold one bucket per client, as behind a load balancer.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use edgevote_stack::client::Conn;
use tokio::sync::Semaphore;

use crate::fixture::{EDGE, ELECTION, Fixture};
use crate::{BenchError, BoxError};

/// The memory budget of one open connection in the host: its HTTP buffers (reads grow up to the
/// 16 KiB header limit), its task, its rate-limit bucket and the kernel-facing state the
/// process holds for it.
pub const BUDGET_BYTES_PER_CONNECTION: u64 = 64 * 1024;
/// Connections being opened (or asked again) at once.
const OPENING_AT_ONCE: usize = 256;
/// Open files this process keeps besides its client connections.
const SPARE_FILES: u64 = 256;
/// Longest wait for one answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

/// What the run measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConnectionFigures {
    /// Connections asked for.
    pub connections: usize,
    /// Connections whose vote was acknowledged (202) and that were held open together.
    pub held_open: usize,
    /// Of those, how many answered a second request while all were open.
    pub answered_again: usize,
    /// Seconds to open every connection and get every vote acknowledged.
    pub open_secs: f64,
    /// The host's resident memory after its start and one vote, bytes.
    pub rss_start_bytes: u64,
    /// The host's peak resident memory over the whole run (`VmHWM`), bytes.
    pub rss_peak_bytes: u64,
    /// `(rss_peak - rss_start) / held_open`.
    pub bytes_per_connection: f64,
    /// `rss_start + connections * BUDGET_BYTES_PER_CONNECTION`.
    pub budget_bytes: u64,
    /// Whether every connection was held and answered twice within the budget.
    pub within_budget: bool,
}

/// Runs the measurement with `connections` clients against an edge host started from
/// `edgevote` (the CLI binary) on the component `component`.
pub async fn measure(
    edgevote: &Path,
    component: &Path,
    connections: usize,
) -> Result<ConnectionFigures, BenchError> {
    ensure_open_files(connections)?;
    let fixture = Fixture::new(connections + 1, component)?;
    let config = write_host_config(&fixture)?;
    let host = Host::start(edgevote, &config)?;
    let addr = host.addr.clone();
    // One vote first: the component is compiled and warm, its pool and the queue are open.
    let (warm, status) = open_and_vote(&addr, &fixture.bodies[connections], connections)
        .await
        .map_err(|source| failed(&host, "the warm-up vote", source))?;
    if status != 202 {
        return Err(failed(
            &host,
            "the warm-up vote",
            format!("status {status}").into(),
        ));
    }
    drop(warm);
    let rss_start_bytes = host.memory("VmRSS")?;

    let started = Instant::now();
    let bodies = Arc::new(fixture.bodies);
    let held = open_all(&addr, &bodies, connections).await;
    let open_secs = started.elapsed().as_secs_f64();
    let answered_again = ask_again(held.clone()).await;
    let rss_peak_bytes = host.memory("VmHWM")?;
    let held_open = held.lock().await.len();
    drop(held);

    let bytes_per_connection =
        rss_peak_bytes.saturating_sub(rss_start_bytes) as f64 / held_open.max(1) as f64;
    let budget_bytes = rss_start_bytes + connections as u64 * BUDGET_BYTES_PER_CONNECTION;
    Ok(ConnectionFigures {
        connections,
        held_open,
        answered_again,
        open_secs,
        rss_start_bytes,
        rss_peak_bytes,
        bytes_per_connection,
        budget_bytes,
        within_budget: held_open == connections
            && answered_again == connections
            && rss_peak_bytes <= budget_bytes,
    })
}

/// Raises this process's open-files limit to hold every client connection (the host, started
/// from here, inherits it and raises its own for its cap); refuses when the hard limit is lower.
pub fn ensure_open_files(connections: usize) -> Result<(), BenchError> {
    let needed = connections as u64 + SPARE_FILES;
    let soft = edgevote_edge_host::accept::raise_open_files_limit(needed)
        .map_err(|e| BenchError::OpenFiles(e.to_string()))?;
    if soft < needed {
        return Err(BenchError::OpenFiles(format!(
            "{connections} connections need {needed} open files, the hard limit is {soft}: raise it (ulimit -Hn) or ask for fewer (--connections)"
        )));
    }
    Ok(())
}

/// The edge host's configuration: the fixture's keys, election and bundle, the embedded queue
/// in the fixture's directory, the production defaults for the rest.
fn write_host_config(fixture: &Fixture) -> Result<PathBuf, BenchError> {
    let dir = fixture.dir.path();
    let edge_key = fixture.store.write_current_edge_key(EDGE.0, EDGE.1)?;
    let toml_path = |p: &Path| toml_string(&p.display().to_string());
    let config = format!(
        "listen_addr = \"127.0.0.1:0\"\n\
         edge_id = {edge}\n\
         region = {region}\n\
         component_path = {component}\n\
         bundle_manifest_path = {bundle}\n\
         keyset_path = {keyset}\n\
         election_paths = [{election}]\n\
         edge_key_path = {key}\n\
         [rate_limit]\n\
         forwarded_for_hops = 1\n\
         [queue]\n\
         backend = \"embedded\"\n\
         path = {queue}\n",
        edge = toml_string(EDGE.0),
        region = toml_string(EDGE.1),
        component = toml_path(&fixture.component),
        bundle = toml_path(&dir.join("bundle.jws")),
        keyset = toml_path(&fixture.store.keyset_path()),
        election = toml_path(&dir.join("election.jws")),
        key = toml_path(&edge_key),
        queue = toml_path(&dir.join("queue.redb")),
    );
    let path = dir.join("edge.toml");
    std::fs::write(&path, config).map_err(|source| BenchError::Fixture {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

fn toml_string(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

/// The edge host process, killed when dropped.
struct Host {
    child: Child,
    addr: String,
    stderr: PathBuf,
}

impl Host {
    fn start(edgevote: &Path, config: &Path) -> Result<Host, BenchError> {
        let stderr = config.with_file_name("edge.stderr");
        let log = std::fs::File::create(&stderr).map_err(|source| BenchError::Fixture {
            path: stderr.clone(),
            source,
        })?;
        let mut child = Command::new(edgevote)
            .args(["edge", "run", "--config"])
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(|e| {
                BenchError::Connections(format!("starting {}: {e}", edgevote.display()))
            })?;
        let stdout = child.stdout.take();
        let mut host = Host {
            child,
            addr: String::new(),
            stderr,
        };
        let mut line = String::new();
        if let Some(out) = stdout {
            let mut out = std::io::BufReader::new(out);
            let _ = std::io::BufRead::read_line(&mut out, &mut line);
            // Keep draining, so the host never writes into a closed pipe.
            std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        }
        match line.split("http://").nth(1) {
            Some(addr) => host.addr = addr.trim().to_owned(),
            None => return Err(failed(&host, "starting the edge host", line.into())),
        }
        Ok(host)
    }

    /// A memory line of `/proc/<pid>/status` (`VmRSS`, `VmHWM`), bytes.
    fn memory(&self, field: &str) -> Result<u64, BenchError> {
        let path = format!("/proc/{}/status", self.child.id());
        let text = std::fs::read_to_string(&path)
            .map_err(|e| BenchError::Connections(format!("reading {path}: {e}")))?;
        text.lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|value| value.trim().strip_suffix("kB")?.trim().parse::<u64>().ok())
            .map(|kib| kib * 1024)
            .ok_or_else(|| BenchError::Connections(format!("no {field} in {path}")))
    }

    fn stderr_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(5)..].join("\n")
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn failed(host: &Host, stage: &str, source: BoxError) -> BenchError {
    BenchError::Connections(format!(
        "{stage}: {source}; the host's last log lines:\n{}",
        host.stderr_tail()
    ))
}

/// The connections held open.
type Held = Arc<tokio::sync::Mutex<Vec<Conn>>>;

/// Opens `connections` connections, `OPENING_AT_ONCE` at a time, each casting the vote of its
/// body; keeps those whose vote was acknowledged.
async fn open_all(addr: &str, bodies: &Arc<Vec<Vec<u8>>>, connections: usize) -> Held {
    let held: Held = Arc::new(tokio::sync::Mutex::new(Vec::with_capacity(connections)));
    let gate = Arc::new(Semaphore::new(OPENING_AT_ONCE));
    let mut tasks = tokio::task::JoinSet::new();
    for client in 0..connections {
        let (addr, bodies, held, gate) = (
            addr.to_owned(),
            Arc::clone(bodies),
            Arc::clone(&held),
            Arc::clone(&gate),
        );
        tasks.spawn(async move {
            let Ok(_permit) = gate.acquire().await else {
                return;
            };
            match open_and_vote(&addr, &bodies[client], client).await {
                Ok((conn, 202)) => held.lock().await.push(conn),
                Ok((_, status)) => tracing::warn!(client, status, "vote not acknowledged"),
                Err(e) => tracing::warn!(client, error = %e, "connection failed"),
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    held
}

/// A second request (a read of the election) on every held connection, while all are open;
/// how many were answered 200.
async fn ask_again(held: Held) -> usize {
    let streams = std::mem::take(&mut *held.lock().await);
    let gate = Arc::new(Semaphore::new(OPENING_AT_ONCE));
    let mut tasks = tokio::task::JoinSet::new();
    for mut conn in streams {
        let (held, gate) = (Arc::clone(&held), Arc::clone(&gate));
        tasks.spawn(async move {
            let Ok(_permit) = gate.acquire().await else {
                return false;
            };
            let path = format!("/v1/elections/{ELECTION}");
            let answered = tokio::time::timeout(ANSWER_TIMEOUT, conn.get(&path, None)).await;
            // Held until every connection has been asked: the peak counts them all.
            held.lock().await.push(conn);
            matches!(answered, Ok(Ok((200, _))))
        });
    }
    let mut answered = 0;
    while let Some(done) = tasks.join_next().await {
        answered += usize::from(matches!(done, Ok(true)));
    }
    answered
}

/// A distinct client address per connection (10.0.0.0/8).
fn client_address(client: usize) -> String {
    let [_, a, b, c] = (client as u32 + 1).to_be_bytes();
    format!("10.{a}.{b}.{c}")
}

/// Connects as client `client` and casts one vote on the keep-alive connection; the
/// connection and the status.
async fn open_and_vote(addr: &str, body: &[u8], client: usize) -> Result<(Conn, u16), BoxError> {
    let vote = async {
        let mut conn = Conn::connect_as(addr, Some(&client_address(client))).await?;
        let (status, _) = conn
            .post_vote(ELECTION, Bytes::copy_from_slice(body))
            .await?;
        Ok::<_, BoxError>((conn, status))
    };
    tokio::time::timeout(ANSWER_TIMEOUT, vote)
        .await
        .map_err(|_| "no answer in time")?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_client_has_its_own_private_address() {
        let addresses: std::collections::HashSet<_> = (0..20_000).map(client_address).collect();
        assert_eq!(addresses.len(), 20_000);
        assert_eq!(client_address(0), "10.0.0.1");
        assert_eq!(client_address(255), "10.0.1.0");
    }
}

//! `edgevote edge run` as a process: kill -9 during a load of votes loses no acknowledged vote.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use edgevote_queue::Queue;
use edgevote_queue::embedded::{EmbeddedQueue, EmbeddedQueueConfig};
use edgevote_shared::{QueueEnvelope, Receipt, verify};

use crate::{edgevote, ok};

fn root() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Where the built component is.
pub fn component_path() -> std::path::PathBuf {
    root().join("target/wasm32-wasip2/release/edgevote_edge_spin.wasm")
}

/// Builds the component (once per test binary) and returns its path.
pub fn component() -> std::path::PathBuf {
    static BUILT: Mutex<bool> = Mutex::new(false);
    built("spin", "edgevote_edge_spin.wasm", &BUILT)
}

/// Builds the component's wide-arithmetic variant (once per test binary) and returns its path.
pub fn wide_component() -> std::path::PathBuf {
    static BUILT: Mutex<bool> = Mutex::new(false);
    built("wide", "edgevote_edge_wide.wasm", &BUILT)
}

/// Runs `scripts/build-wasm.sh {what}` the first time `once` is seen; the path of `file`.
fn built(what: &str, file: &str, once: &Mutex<bool>) -> std::path::PathBuf {
    let mut done = once.lock().unwrap_or_else(|p| p.into_inner());
    if !*done {
        let status = Command::new("bash")
            .arg(root().join("scripts/build-wasm.sh"))
            .arg(what)
            .status()
            .unwrap();
        assert!(status.success(), "scripts/build-wasm.sh {what} failed");
        *done = true;
    }
    root().join("target/wasm32-wasip2/release").join(file)
}

fn setup(d: &Path) {
    for role in ["authority", "ops"] {
        ok(d, &["keys", "gen", "--role", role]);
    }
    // The edge's key is bound to the edge and region of its config below.
    ok(
        d,
        &[
            "keys",
            "gen",
            "--role",
            "edge",
            "--edge",
            "edge-crash",
            "--region",
            "r1",
        ],
    );
    ok(
        d,
        &[
            "election", "create", "--id", "crash", "--title", "Crash", "--option", "yes",
            "--option", "no", "--closes", "+1h",
        ],
    );
    let wasm = component();
    ok(
        d,
        &[
            "bundle",
            "sign",
            "--wasm",
            wasm.to_str().unwrap(),
            "--out",
            "bundle.jws",
        ],
    );
    let out = ok(
        d,
        &[
            "bundle",
            "verify",
            "--wasm",
            wasm.to_str().unwrap(),
            "--manifest",
            "bundle.jws",
        ],
    );
    assert!(out.starts_with("VALID bundle"), "{out}");
    let edge_kid = std::fs::read_dir(d.join("edgevote-keys/private"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            let text = std::fs::read_to_string(p).unwrap();
            text.contains("\"edgevote_role\": \"edge\"")
        })
        .unwrap();
    let config = format!(
        r#"listen_addr = "127.0.0.1:0"
edge_id = "edge-crash"
region = "r1"
component_path = "{}"
bundle_manifest_path = "bundle.jws"
keyset_path = "edgevote-keys/keyset.json"
election_paths = ["election.jws"]
edge_key_path = "{}"
[spill]
enabled = true
path = "data/spill.redb"
[queue]
backend = "embedded"
path = "data/queue.redb"
"#,
        wasm.display(),
        edge_kid.display()
    );
    std::fs::write(d.join("edge.toml"), config).unwrap();
}

fn start(d: &Path) -> (Child, String) {
    start_with_fd_limit(d, None)
}

/// `edgevote edge run` in `d`, with at most `fd_limit` open files if given (`ulimit -n`).
fn start_with_fd_limit(d: &Path, fd_limit: Option<u32>) -> (Child, String) {
    let mut command = match fd_limit {
        None => Command::new(env!("CARGO_BIN_EXE_edgevote")),
        Some(limit) => {
            let mut sh = Command::new("sh");
            sh.arg("-c")
                .arg(format!("ulimit -n {limit} && exec \"$0\" \"$@\""))
                .arg(env!("CARGO_BIN_EXE_edgevote"));
            sh
        }
    };
    let mut child = command
        .args(["edge", "run"])
        .current_dir(d)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(d.join("edge.stderr")).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    stdout.read_line(&mut line).unwrap();
    // Keep draining stdout so the host's later output never hits a closed pipe.
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    let addr = line
        .split("http://")
        .nth(1)
        .map(|a| a.trim().to_owned())
        .unwrap_or_else(|| panic!("edge did not start: {line:?}"));
    (child, addr)
}

fn post_vote(addr: &str, token: &str, nonce: u8) -> Option<String> {
    let body = serde_json::json!({
        "election": "crash",
        "token": token,
        "choice": "yes",
        "nonce": edgevote_shared::b64::encode([nonce; 16]),
    })
    .to_string();
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    let request = format!(
        "POST /v1/elections/crash/votes HTTP/1.1\r\nHost: e\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    if !response.starts_with("HTTP/1.1 202") {
        return None;
    }
    let json_start = response.find('{')?;
    let value: serde_json::Value =
        serde_json::from_str(response[json_start..].trim_end_matches(['\r', '\n', '0'])).ok()?;
    value["receipt"].as_str().map(str::to_owned)
}

async fn stored_vote_ids(d: &Path, file: &str) -> Vec<edgevote_shared::Digest32> {
    let queue = EmbeddedQueue::open(&EmbeddedQueueConfig {
        path: d.join("data").join(file),
        max_receives: u32::MAX / 2,
    })
    .unwrap();
    let keys = edgevote_shared::KeySet::parse(
        &std::fs::read(d.join("edgevote-keys/keyset.json")).unwrap(),
    )
    .unwrap();
    let mut ids = Vec::new();
    for _ in 0..10_000 {
        let batch = queue
            .receive(
                10,
                std::time::Duration::ZERO,
                std::time::Duration::from_secs(600),
            )
            .await
            .unwrap();
        if batch.is_empty() {
            break;
        }
        for message in batch {
            for line in message.body.lines() {
                let envelope = verify::<QueueEnvelope>(line, &keys).unwrap().doc;
                for vote in envelope.votes {
                    let token: edgevote_shared::VoteToken =
                        edgevote_shared::decode_unverified(&vote.ballot.token).unwrap();
                    ids.push(vote.ballot.vote_id(&token.jti));
                }
            }
        }
    }
    ids
}

#[test]
fn kill_9_during_load_loses_no_acknowledged_vote() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    setup(d);
    ok(
        d,
        &["token", "issue", "--count", "400", "--out", "tokens.txt"],
    );
    let tokens: Vec<String> = std::fs::read_to_string(d.join("tokens.txt"))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let (mut child, addr) = start(d);
    let receipts = Arc::new(Mutex::new(Vec::new()));
    let mut clients = Vec::new();
    for (t, chunk) in tokens.chunks(100).enumerate() {
        let (chunk, addr, receipts) = (chunk.to_vec(), addr.clone(), Arc::clone(&receipts));
        clients.push(std::thread::spawn(move || {
            for (i, token) in chunk.iter().enumerate() {
                if let Some(receipt) = post_vote(&addr, token, (t * 100 + i) as u8) {
                    receipts.lock().unwrap().push(receipt);
                }
            }
        }));
    }
    // Let some votes through, then kill the host mid-load.
    for _ in 0..500 {
        if receipts.lock().unwrap().len() >= 60 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    for client in clients {
        client.join().unwrap();
    }
    let receipts = receipts.lock().unwrap().clone();
    assert!(
        receipts.len() >= 20,
        "load ran before the kill: {} receipts",
        receipts.len()
    );
    let keys = edgevote_shared::KeySet::parse(
        &std::fs::read(d.join("edgevote-keys/keyset.json")).unwrap(),
    )
    .unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut stored = runtime.block_on(stored_vote_ids(d, "queue.redb"));
    stored.extend(runtime.block_on(stored_vote_ids(d, "spill.redb")));
    for receipt in &receipts {
        let vote_id = verify::<Receipt>(receipt, &keys).unwrap().doc.vote_id;
        assert!(
            stored.contains(&vote_id),
            "acknowledged vote {vote_id} lost"
        );
    }
    // The host restarts on the same state.
    let (mut child, addr) = start(d);
    assert!(post_vote(&addr, &tokens[0], 250).is_some());
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let exit = child.wait().unwrap();
    let stderr = std::fs::read_to_string(d.join("edge.stderr")).unwrap_or_default();
    assert!(exit.success(), "restarted edge exited {exit:?}: {stderr}");
    eprintln!(
        "kill -9 test: {} receipts before the kill, all {} found durable",
        receipts.len(),
        receipts.len()
    );
    let _ = edgevote(d, &["keys", "show"]);
}

/// Out of file descriptors, `accept` fails at once every time: the host must pause instead of
/// spinning, and serve again once connections close.
#[test]
fn out_of_file_descriptors_the_host_pauses_accepting_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    setup(d);
    let (mut child, addr) = start_with_fd_limit(d, Some(64));
    // Hold more connections than the host has descriptors for.
    let held: Vec<std::net::TcpStream> = (0..100)
        .filter_map(|_| std::net::TcpStream::connect(&addr).ok())
        .collect();
    assert!(held.len() > 64, "the backlog takes them: {}", held.len());
    std::thread::sleep(std::time::Duration::from_secs(2));
    drop(held);
    // The longest pause is 1 s: then the host accepts and answers again.
    let mut answer = String::new();
    for _ in 0..50 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        let Ok(mut stream) = std::net::TcpStream::connect(&addr) else {
            continue;
        };
        let request = "GET /v1/keys HTTP/1.1\r\nHost: e\r\nConnection: close\r\n\r\n";
        answer.clear();
        if stream.write_all(request.as_bytes()).is_ok()
            && stream.read_to_string(&mut answer).is_ok()
            && answer.starts_with("HTTP/1.1 200")
        {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "no answer after recovery: {answer:?}"
    );
    let log = std::fs::read_to_string(d.join("edge.stderr")).unwrap();
    let pauses = log.matches("accept failed; pausing").count();
    // A spinning loop logs an error per attempt (hundreds of thousands in 2 s); pausing 5 ms
    // doubling to 1 s logs a few dozen at most.
    assert!(
        (1..=60).contains(&pauses),
        "{pauses} accept pauses logged:\n{}",
        &log[..log.len().min(2000)]
    );
}

//! End to end: `edgevote up` as a process, `edgevote load` with double votes, cross-region
//! races and retries, then every receipt verifies and every region reports the same exact tally.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::{audit_verify, edgevote};

#[test]
fn up_then_load_reconciles_in_every_region() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("stack");
    let data_arg = data.to_str().unwrap().to_owned();
    let mut up = start_up(dir.path(), &data, &["--open-for", "45s"]);
    // After the banner, so after the election was created: start_up may first wait for the
    // component's build (under the lock shared by parallel tests).
    let started = std::time::Instant::now();
    let slots_at_start = descriptor_slots(up.id());
    let wanted = open_files_soft_limit(up.id()).min(10_000 + 256);
    assert!(
        slots_at_start >= wanted,
        "the edges grew the descriptor table for their connection cap at start: {slots_at_start} < {wanted}"
    );

    let load = edgevote(
        dir.path(),
        &[
            "load", "--up", &data_arg, "--voters", "2000", "--rate", "2000",
        ],
    );
    let report = String::from_utf8_lossy(&load.stdout).into_owned();
    assert!(
        load.status.success(),
        "load failed:\n{report}\n{}",
        String::from_utf8_lossy(&load.stderr)
    );
    assert!(
        report.contains("receipts issued = ballots stored"),
        "{report}"
    );
    assert_eq!(report.matches("  OK").count(), 3, "{report}");
    assert_eq!(
        descriptor_slots(up.id()),
        slots_at_start,
        "the load's connections never made the kernel grow the descriptor table (a stall each time)"
    );

    // The results page, rendered by headless Chromium, shows the final tally.
    let stack: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("stack.json")).unwrap()).unwrap();
    let collector = stack["regions"][1]["collector_url"]
        .as_str()
        .unwrap()
        .to_owned();
    let page = render_page(dir.path(), &format!("{collector}/results/demo-2026"));
    assert!(page.contains("2000 voters counted"), "results page: {page}");
    assert!(
        page.contains("<td>yes</td>") && page.contains("<td>no</td>"),
        "results page: {page}"
    );

    check_ops_metrics_are_exported(&stack);
    check_voter_listing_needs_the_auditor_token(&stack, &data);

    // Every kept receipt verifies offline against the published key set.
    let keyset = data.join("keys/keyset.json");
    let receipts: Vec<_> = std::fs::read_dir(data.join("receipts"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(receipts.len() >= 2000, "{} receipts", receipts.len());
    for receipt in receipts.iter().step_by(97) {
        let out = edgevote(
            dir.path(),
            &[
                "verify",
                "receipt",
                receipt.to_str().unwrap(),
                "--keyset",
                keyset.to_str().unwrap(),
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }

    check_live_logs(dir.path(), &stack, &receipts, &keyset);

    // Let the election close (it was created open for 45 s), then stop the stack cleanly.
    std::thread::sleep(std::time::Duration::from_secs(47).saturating_sub(started.elapsed()));
    Command::new("kill")
        .args(["-INT", &up.id().to_string()])
        .status()
        .unwrap();
    let exit = up.wait().unwrap();
    let stderr = std::fs::read_to_string(dir.path().join("up.stderr")).unwrap_or_default();
    assert!(exit.success(), "up exited {exit:?}: {stderr}");
    check_audit(dir.path(), &data);
}

/// The same end to end on the production backends: every region's edge host forwards to SQS
/// and its collector drains SQS into DynamoDB (a moto server `up` starts), with Global Tables
/// replication simulated between the regions' tables (eventual) or one shared table (strong).
/// The load (double votes, cross-region races, retries) reconciles in every region; the audit
/// log is published from DynamoDB while the stack runs (moto's state lives in it) and verifies.
fn up_on_aws_reconciles_and_publishes_from_dynamodb(consistency: &str) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("stack");
    let data_arg = data.to_str().unwrap().to_owned();
    let mut up = start_up(
        dir.path(),
        &data,
        &[
            "--open-for",
            "40s",
            "--backend",
            "aws",
            "--store-consistency",
            consistency,
        ],
    );
    let started = std::time::Instant::now();
    let stack: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("stack.json")).unwrap()).unwrap();
    assert_eq!(stack["aws"]["consistency"], consistency, "{stack}");
    let tables: std::collections::BTreeSet<_> = stack["aws"]["regions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["store"]["region"].as_str().unwrap().to_owned())
        .collect();
    let expected_tables = if consistency == "strong" { 1 } else { 3 };
    assert_eq!(tables.len(), expected_tables, "{stack}");

    let load = edgevote(
        dir.path(),
        &[
            "load", "--up", &data_arg, "--voters", "150", "--rate", "100",
        ],
    );
    let report = String::from_utf8_lossy(&load.stdout).into_owned();
    assert!(
        load.status.success(),
        "load failed:\n{report}\n{}",
        String::from_utf8_lossy(&load.stderr)
    );
    assert!(
        report.contains("receipts issued = ballots stored"),
        "{report}"
    );
    assert_eq!(report.matches("  OK").count(), 3, "{report}");
    // The votes went through SQS: every edge committed to its queue, nothing was spilled.
    for region in stack["regions"].as_array().unwrap() {
        let edge = region["edge_url"].as_str().unwrap();
        assert!(committed(edge) > 0, "{region}");
    }

    // Publish from each region's table once the election has closed, while moto still runs.
    std::thread::sleep(std::time::Duration::from_secs(42).saturating_sub(started.elapsed()));
    let mut logs = Vec::new();
    for region in ["eu-west-1", "us-east-1", "ap-southeast-1"] {
        let out = dir.path().join(format!("audit-{region}"));
        let args = [
            "audit",
            "publish",
            "--up",
            &data_arg,
            "--region",
            region,
            "--out",
            out.to_str().unwrap(),
        ];
        // Publishing refuses while messages are still in a queue (on a loaded machine a send
        // that timed out is spilled and forwarded again, and its duplicate arrives late): the
        // stack keeps running and drains them, so wait for that, but never publish over them.
        let mut published = edgevote(dir.path(), &args);
        for _ in 0..30 {
            let stderr = String::from_utf8_lossy(&published.stderr);
            if published.status.success() || !stderr.contains("are still pending") {
                break;
            }
            std::thread::sleep(std::time::Duration::from_secs(2));
            published = edgevote(dir.path(), &args);
        }
        assert!(
            published.status.success(),
            "{}\nthe stack's last log lines:\n{}",
            String::from_utf8_lossy(&published.stderr),
            log_tail(&dir.path().join("up.stderr"), 60)
        );
        let receipts = data.join("receipts");
        let verified = audit_verify(
            dir.path(),
            &data,
            &out,
            &["--receipts", receipts.to_str().unwrap()],
        );
        let text = String::from_utf8_lossy(&verified.stdout).into_owned();
        assert!(verified.status.success(), "{text}");
        assert!(text.contains(" 0 not included, 0 invalid"), "{text}");
        logs.push(std::fs::read_to_string(out.join("choices.log")).unwrap());
    }
    assert!(
        logs.iter().all(|l| l == &logs[0]),
        "every region publishes the same log"
    );
    Command::new("kill")
        .args(["-INT", &up.id().to_string()])
        .status()
        .unwrap();
    let exit = up.wait().unwrap();
    let stderr = std::fs::read_to_string(dir.path().join("up.stderr")).unwrap_or_default();
    assert!(exit.success(), "up exited {exit:?}: {stderr}");
}

/// The last `lines` lines of a log file (empty if it cannot be read).
fn log_tail(path: &std::path::Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[test]
fn up_on_aws_with_eventual_consistency_reconciles_and_publishes() {
    up_on_aws_reconciles_and_publishes_from_dynamodb("eventual");
}

#[test]
fn up_on_aws_with_strong_consistency_reconciles_and_publishes() {
    up_on_aws_reconciles_and_publishes_from_dynamodb("strong");
}

#[test]
fn up_refuses_aws_options_without_the_aws_backend_and_strong_mode_without_3_regions() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("stack");
    for (args, expected) in [
        (&["--store-consistency", "strong"][..], "need --backend aws"),
        (
            &["--aws-endpoint", "http://127.0.0.1:9"][..],
            "need --backend aws",
        ),
        (
            &[
                "--backend",
                "aws",
                "--store-consistency",
                "strong",
                "--regions",
                "2",
            ][..],
            "exactly 3 regions",
        ),
    ] {
        let mut all = vec!["up", "--data-dir", data.to_str().unwrap()];
        all.extend_from_slice(args);
        let out = edgevote(dir.path(), &all);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!data.exists(), "a refused up must create nothing");
    }
}

/// Minutes (here: seconds) after voting, a receipt's vote is proven in its region's live log,
/// from the log's tiles and a checkpoint signed by the log key; another region's log, which
/// never stored that vote through its own queue, does not prove it.
fn check_live_logs(
    dir: &std::path::Path,
    stack: &serde_json::Value,
    receipts: &[std::path::PathBuf],
    keyset: &std::path::Path,
) {
    let regions = stack["regions"].as_array().unwrap();
    let url_of = |name: &str| {
        let region = regions.iter().find(|r| r["name"] == name).unwrap();
        region["collector_url"].as_str().unwrap().to_owned()
    };
    for receipt in receipts.iter().step_by(211) {
        let compact = std::fs::read_to_string(receipt).unwrap();
        let payload = compact.trim().split('.').nth(1).unwrap();
        let claims: serde_json::Value =
            serde_json::from_slice(&edgevote_shared::b64::decode("payload", payload).unwrap())
                .unwrap();
        let region = claims["region"].as_str().unwrap();
        let verify = |url: &str| {
            edgevote(
                dir,
                &[
                    "verify",
                    "receipt",
                    receipt.to_str().unwrap(),
                    "--keyset",
                    keyset.to_str().unwrap(),
                    "--log",
                    url,
                ],
            )
        };
        // The region signs a checkpoint every 2 s: wait for one that covers the vote.
        let mut text = String::new();
        for _ in 0..20 {
            let out = verify(&url_of(region));
            text = String::from_utf8_lossy(&out.stdout).into_owned();
            if out.status.success() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
        assert!(
            text.contains("INCLUDED in edgevote/demo-2026/live/"),
            "{text}"
        );
        let other = regions
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .find(|name| *name != region)
            .unwrap();
        let out = verify(&url_of(other));
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{text}");
        assert!(text.contains("NOT INCLUDED code=not_included"), "{text}");
    }
    // A monitor follows each region's log; a second one picks up where the first stopped.
    for region in regions {
        let url = region["collector_url"].as_str().unwrap();
        let saved = dir.join(format!("{}.checkpoint", region["name"].as_str().unwrap()));
        let monitor = |extra: &[&str]| {
            let args = [
                &[
                    "audit",
                    "monitor",
                    "--log",
                    url,
                    "--election",
                    "demo-2026",
                    "--keyset",
                    keyset.to_str().unwrap(),
                    "--interval-secs",
                    "1",
                ],
                extra,
            ]
            .concat();
            edgevote(dir, &args)
        };
        let out = monitor(&["--polls", "2", "--save", saved.to_str().unwrap()]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}");
        assert!(text.starts_with("OK first checkpoint: "), "{text}");
        let out = monitor(&["--polls", "1", "--since", saved.to_str().unwrap()]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && text.starts_with("OK "), "{text}");
    }
    // A key set without the log key: the server's checkpoint proves nothing.
    let mut set: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(keyset).unwrap()).unwrap();
    set["keys"]
        .as_array_mut()
        .unwrap()
        .retain(|k| k["edgevote_role"] != "log");
    let unpinned = dir.join("keyset-without-log-key.json");
    std::fs::write(&unpinned, set.to_string()).unwrap();
    let receipt = receipts[0].to_str().unwrap();
    let region = regions[0]["collector_url"].as_str().unwrap();
    let out = edgevote(
        dir,
        &[
            "verify",
            "receipt",
            receipt,
            "--keyset",
            unpinned.to_str().unwrap(),
            "--log",
            region,
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("code=bad_checkpoint"), "{text}");
}

/// The audit log, published from every region after the close, is the same everywhere, every
/// receipt is included, it is served over HTTP, and tampering is caught.
fn check_audit(dir: &std::path::Path, data: &std::path::Path) {
    let data_arg = data.to_str().unwrap();
    let mut choices = Vec::new();
    for region in ["eu-west-1", "us-east-1", "ap-southeast-1"] {
        let out = dir.join(format!("audit-{region}"));
        let out_arg = out.to_str().unwrap();
        let published = edgevote(
            dir,
            &[
                "audit", "publish", "--up", data_arg, "--region", region, "--out", out_arg,
            ],
        );
        assert!(
            published.status.success(),
            "{}",
            String::from_utf8_lossy(&published.stderr)
        );
        choices.push(std::fs::read_to_string(out.join("choices.log")).unwrap());
        let receipts = data.join("receipts");
        let verified = audit_verify(dir, data, &out, &["--receipts", receipts.to_str().unwrap()]);
        let text = String::from_utf8_lossy(&verified.stdout).into_owned();
        assert!(verified.status.success(), "{text}");
        assert!(text.contains("matches the signed tally"), "{text}");
        assert!(text.contains(" 0 not included, 0 invalid"), "{text}");
    }
    assert!(
        choices.iter().all(|c| c == &choices[0]),
        "every region publishes the same log"
    );
    let out = dir.join("audit-us-east-1");
    assert!(
        served_checkpoint(&out)
            .ends_with(&std::fs::read_to_string(out.join("receipts.checkpoint")).unwrap())
    );
    let log = std::fs::read_to_string(out.join("choices.log")).unwrap();
    std::fs::write(out.join("choices.log"), log.replacen("no\n", "yes\n", 1)).unwrap();
    let verified = audit_verify(dir, data, &out, &[]);
    assert!(!verified.status.success(), "a tampered log was accepted");
}

/// `edgevote audit serve` answers GET /audit/receipts.checkpoint.
fn served_checkpoint(folder: &std::path::Path) -> String {
    let mut server = Command::new(env!("CARGO_BIN_EXE_edgevote"))
        .args([
            "audit",
            "serve",
            "--log",
            folder.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap()
        .to_owned();
    let mut stream = std::net::TcpStream::connect(&addr).unwrap();
    let request =
        b"GET /audit/receipts.checkpoint HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    std::io::Write::write_all(&mut stream, request).unwrap();
    let mut served = String::new();
    std::io::Read::read_to_string(&mut stream, &mut served).unwrap();
    server.kill().unwrap();
    server.wait().unwrap();
    assert!(served.starts_with("HTTP/1.1 200"), "{served}");
    served
}

/// The DOM of `url` after its scripts ran, from headless Chromium (installed by
/// scripts/bootstrap.sh).
fn render_page(dir: &std::path::Path, url: &str) -> String {
    let chromium = std::env::var("EDGEVOTE_CHROMIUM").unwrap_or_else(|_| "chromium".into());
    let profile = dir.join("chromium-profile");
    let out = Command::new(&chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            &format!("--user-data-dir={}", profile.display()),
            "--virtual-time-budget=5000",
            "--dump-dom",
            url,
        ])
        .output()
        .unwrap_or_else(|e| {
            panic!("{chromium} not runnable ({e}); run scripts/bootstrap.sh browser")
        });
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Starts `edgevote up` on `data` and waits for its banner (3 regions listening).
pub fn start_up(
    dir: &std::path::Path,
    data: &std::path::Path,
    extra: &[&str],
) -> std::process::Child {
    crate::edge::component();
    let component = crate::edge::component_path();
    let mut args = vec![
        "up",
        "--data-dir",
        data.to_str().unwrap(),
        "--component",
        component.to_str().unwrap(),
        "--refresh-secs",
        "30",
    ];
    args.extend_from_slice(extra);
    let mut up = Command::new(env!("CARGO_BIN_EXE_edgevote"))
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.join("up.stderr")).unwrap())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(up.stdout.take().unwrap());
    let mut banner = String::new();
    // The banner ends with the Ctrl-C line (bounded: the banner is a dozen lines).
    for _ in 0..20 {
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        banner.push_str(&line);
        if line.contains("Ctrl-C") || line.is_empty() {
            break;
        }
    }
    assert_eq!(banner.matches(" edge http://").count(), 3, "{banner}");
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    up
}

/// The slots of a process's descriptor table (`FDSize:` in its `/proc` status).
fn descriptor_slots(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find_map(|l| l.strip_prefix("FDSize:"));
    line.expect("an FDSize line").trim().parse().unwrap()
}

/// A process's soft limit on open files (`/proc/<pid>/limits`).
fn open_files_soft_limit(pid: u32) -> u64 {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"));
    let soft = line
        .expect("a Max open files line")
        .split_whitespace()
        .next();
    soft.map_or(u64::MAX, |s| s.parse().unwrap_or(u64::MAX))
}

/// Stops `edgevote up` with SIGTERM and checks it exits cleanly.
pub fn stop_up(dir: &std::path::Path, mut up: std::process::Child) {
    // SIGTERM, as a service manager sends (the other up test stops with SIGINT).
    Command::new("kill")
        .args(["-TERM", &up.id().to_string()])
        .status()
        .unwrap();
    let exit = up.wait().unwrap();
    let stderr = std::fs::read_to_string(dir.join("up.stderr")).unwrap_or_default();
    assert!(exit.success(), "up exited {exit:?}: {stderr}");
}

/// The collectors' voter listing (which reveals re-voting) answers 401 to the public and only
/// the stack's auditor token, from `auditor.token`, gets it.
fn check_voter_listing_needs_the_auditor_token(stack: &serde_json::Value, data: &std::path::Path) {
    let token = std::fs::read_to_string(data.join("auditor.token")).unwrap();
    let collector = stack["regions"][0]["collector_url"].as_str().unwrap();
    let path = "/v1/elections/demo-2026/voters/anyone/ballots";
    let bearer = format!("Authorization: Bearer {}", token.trim());
    for (headers, status) in [
        (vec![], "401"),
        (vec!["Authorization: Bearer not-the-token"], "401"),
        (vec![bearer.as_str()], "200"),
    ] {
        let answer = http_get(collector, path, &headers);
        assert_eq!(answer.get(9..12), Some(status), "{headers:?}: {answer}");
    }
}

/// A GET's whole answer, head and body (empty if the service does not answer).
fn http_get(base_url: &str, path: &str, headers: &[&str]) -> String {
    use std::io::{Read, Write};
    let addr = base_url.trim_start_matches("http://");
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
        return String::new();
    };
    let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
    let request = format!("GET {path} HTTP/1.1\r\nHost: e\r\nConnection: close\r\n{extra}\r\n");
    let _ = stream.write_all(request.as_bytes());
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text);
    text
}

/// The `/metrics` text of a service (empty if it does not answer).
pub fn metrics_of(base_url: &str) -> String {
    use std::io::{Read, Write};
    let addr = base_url.trim_start_matches("http://");
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: e\r\nConnection: close\r\n\r\n");
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text);
    text
}

/// The edge's `edgevote_edge_votes_committed_total` (0 if the edge does not answer).
fn committed(edge_url: &str) -> u64 {
    metrics_of(edge_url)
        .lines()
        .filter(|l| l.starts_with("edgevote_edge_votes_committed_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// kill -9 of the whole local stack (every edge host and collector) in the middle of a load,
/// then a restart on the same data: the load's clients retry through the outage, and the
/// reconciliation finds every receipt stored once and every voter counted once in every region.
#[test]
fn kill_9_of_edges_and_collectors_during_load_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("stack");
    let up = start_up(dir.path(), &data, &[]);
    let stack: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("stack.json")).unwrap()).unwrap();
    let edge_url = stack["regions"][0]["edge_url"].as_str().unwrap().to_owned();
    // Double votes and cross-region races off: a voter's earliest acceptance may be one the
    // crash left without a receipt, which the load's own expectation could not know.
    let load = Command::new(env!("CARGO_BIN_EXE_edgevote"))
        .current_dir(dir.path())
        .args([
            "load",
            "--up",
            data.to_str().unwrap(),
            "--voters",
            "1500",
            "--rate",
            "300",
            "--double-vote-pct",
            "0",
            "--cross-region-pct",
            "0",
            "--max-attempts",
            "30",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Kill once votes are flowing (bounded wait: 60 s).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while committed(&edge_url) < 20 {
        assert!(
            std::time::Instant::now() < deadline,
            "no votes reached the edge"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let mut up = up;
    up.kill().unwrap(); // SIGKILL: edges, group commits, collectors, stores all die at once
    up.wait().unwrap();
    let restarted = start_up(dir.path(), &data, &[]);
    let restacked: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("stack.json")).unwrap()).unwrap();
    assert_eq!(
        restacked["regions"], stack["regions"],
        "the restart keeps its addresses"
    );
    let out = load.wait_with_output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "load failed:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        report.contains("receipts issued = ballots stored"),
        "{report}"
    );
    assert_eq!(report.matches("  OK").count(), 3, "{report}");
    println!(
        "kill -9 of edges and collectors during load: reconciled in 3 regions, 0 lost, 0 double counted\n{report}"
    );
    stop_up(dir.path(), restarted);
}

/// Every `edgevote_*` metric the Grafana dashboard and the Prometheus alert rules use is
/// exported by a running edge host or collector (histogram series by their base name).
fn check_ops_metrics_are_exported(stack: &serde_json::Value) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut used = std::collections::BTreeSet::new();
    for file in [
        "ops/grafana/edgevote-regional.json",
        "ops/prometheus/alerts.yml",
    ] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        for (start, _) in text.match_indices("edgevote_") {
            let name: String = text[start..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            used.insert(name);
        }
    }
    let region = &stack["regions"][0];
    let exported_text = [
        region["edge_url"].as_str().unwrap(),
        region["collector_url"].as_str().unwrap(),
    ]
    .map(metrics_of)
    .join("\n");
    let exported: std::collections::BTreeSet<&str> = exported_text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.split(' ').next())
        .collect();
    let missing: Vec<&String> = used
        .iter()
        .filter(|name| {
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .filter(|base| exported.contains(base));
            base.is_none() && !exported.contains(name.as_str())
        })
        .collect();
    println!(
        "ops dashboards and alert rules use {} metrics; missing from /metrics: {missing:?}",
        used.len()
    );
    assert!(used.len() >= 10, "found only {used:?}");
    assert!(
        missing.is_empty(),
        "used by ops/ but not exported: {missing:?}"
    );
}

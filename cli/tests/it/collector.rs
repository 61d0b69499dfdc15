//! `edgevote collector run|tally` as an operator uses them.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};

use crate::{edgevote, election_dir};

fn write_config(dir: &std::path::Path, extra: &str) -> std::path::PathBuf {
    let config = format!(
        r#"region = "local-1"
keyset_path = "edgevote-keys/keyset.json"
election_paths = ["election.jws"]
listen_addr = "127.0.0.1:0"
{extra}
[queue]
backend = "embedded"
path = "data/queue.redb"

[store]
backend = "embedded"
path = "data/store.redb"
"#
    );
    let path = dir.join("collector.toml");
    std::fs::write(&path, config).unwrap();
    path
}

#[test]
fn collector_runs_serves_health_and_stops_cleanly_on_ctrl_c() {
    let dir = election_dir();
    let d = dir.path();
    write_config(d, "");
    let mut child = Command::new(env!("CARGO_BIN_EXE_edgevote"))
        .args(["collector", "run"])
        .current_dir(d)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let addr = first
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {first:?}"))
        .to_owned();
    let mut stream = std::net::TcpStream::connect(&addr).unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert!(exit.success(), "exit {exit:?}");
    assert!(rest.contains("collector stopped cleanly"), "{rest}");
}

#[test]
fn tally_of_an_empty_store_and_config_errors() {
    let dir = election_dir();
    let d = dir.path();
    write_config(d, "");
    let out = edgevote(d, &["collector", "tally", "--election", "ref"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tally: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(tally["voters"], 0);
    let out = edgevote(d, &["collector", "tally", "--election", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    write_config(d, "surprise = 1");
    let out = edgevote(d, &["collector", "run"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("collector.toml") && stderr.contains("surprise"),
        "{stderr}"
    );
}

//! Key rotation drill: the edge and authority keys are rotated mid-election; every receipt
//! from before and after still verifies with the archived key set, and all are in the log.

use crate::up::{metrics_of, start_up, stop_up};
use crate::{audit_verify, edgevote};

fn load(dir: &std::path::Path, data: &str) {
    let out = edgevote(
        dir,
        &["load", "--up", data, "--voters", "300", "--rate", "1000"],
    );
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "load failed:\n{report}");
}

#[test]
fn rotating_edge_and_authority_keys_mid_election_keeps_every_receipt_valid() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("stack");
    let data_arg = data.to_str().unwrap();
    let up = start_up(d, &data, &[]);
    load(d, data_arg);
    stop_up(d, up);

    let keys = data.join("keys");
    let keys_arg = keys.to_str().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100)); // rotation time > the old receipts' second
    for role in ["edge", "authority"] {
        // Every region's edge has its own key: rotate them all.
        let out = edgevote(
            d,
            &[
                "keys", "rotate", "--keys", keys_arg, "--role", role, "--all",
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // The restarted stack signs with the new keys; votes of both eras are counted.
    let up = start_up(d, &data, &[]);
    load(d, data_arg);
    stop_up(d, up);

    let out = d.join("audit");
    let published = edgevote(
        d,
        &[
            "audit",
            "publish",
            "--up",
            data_arg,
            "--before-close",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(
        published.status.success(),
        "{}",
        String::from_utf8_lossy(&published.stderr)
    );
    let receipts = data.join("receipts");
    let verified = audit_verify(d, &data, &out, &["--receipts", receipts.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&verified.stdout).into_owned();
    assert!(verified.status.success(), "{text}");
    assert!(text.contains(" 0 not included, 0 invalid"), "{text}");
    let table = edgevote(d, &["keys", "show", "--keys", keys_arg]);
    let table = String::from_utf8_lossy(&table.stdout).into_owned();
    // Every region's edge key and the authority key: retiring (inside the default 600 s grace
    // period), then archived.
    assert_eq!(
        table.matches("archived").count() + table.matches("retiring").count(),
        4,
        "{table}"
    );
}

/// The sum of a counter family's samples in a Prometheus text.
fn counter(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter(|l| l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .fold(0.0, |sum, n| sum + n)
}

/// A real mid-election rotation: every edge key is rotated (with a grace period) in the running
/// stack's key store while `edgevote load` votes. The hosts and collectors follow the key set:
/// load's reconciliation passes (every receipt verifies against the published key set, is
/// stored once, same tally in every region), no region dead-letters anything, and every edge
/// switched to its successor during the load.
#[test]
fn rotating_every_edge_key_while_load_runs_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("stack");
    let data_arg = data.to_str().unwrap();
    let up = start_up(d, &data, &["--open-for", "10m"]);
    let keys = data.join("keys");
    let keys_arg = keys.to_str().unwrap();
    let old_kids: Vec<String> = edgevote_signer::KeyStore::open(&keys)
        .unwrap()
        .keyset()
        .unwrap()
        .active(edgevote_shared::Role::Edge)
        .map(|k| k.kid.clone())
        .collect();
    assert_eq!(old_kids.len(), 3);

    // About 16 s of votes; the rotation 3 s in, the hosts switch about 5-7 s after it.
    let load = std::process::Command::new(env!("CARGO_BIN_EXE_edgevote"))
        .args([
            "load", "--up", data_arg, "--voters", "3000", "--rate", "200",
        ])
        .current_dir(d)
        .env_remove("EDGEVOTE_KEYS")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(3));
    let rotated = edgevote(
        d,
        &[
            "keys",
            "rotate",
            "--keys",
            keys_arg,
            "--role",
            "edge",
            "--all",
            "--grace-secs",
            "60",
        ],
    );
    let rotated_text = String::from_utf8_lossy(&rotated.stdout).into_owned();
    assert!(
        rotated.status.success(),
        "{rotated_text}{}",
        String::from_utf8_lossy(&rotated.stderr)
    );
    assert_eq!(
        rotated_text.matches("now holds it").count(),
        3,
        "{rotated_text}"
    );
    let load = load.wait_with_output().unwrap();
    let report = String::from_utf8_lossy(&load.stdout).into_owned();
    println!("{report}");
    assert!(
        load.status.success(),
        "load failed:\n{report}\n{}",
        String::from_utf8_lossy(&load.stderr)
    );
    assert!(
        report.contains("receipts issued = ballots stored"),
        "{report}"
    );
    assert!(report.contains(", 0 invalid receipts"), "{report}");
    assert_eq!(report.matches("  OK").count(), 3, "{report}");

    // Receipts of both keys of some edge: the load straddled the switch.
    let mut by_kid = std::collections::BTreeMap::<String, usize>::new();
    for entry in std::fs::read_dir(data.join("receipts")).unwrap() {
        let compact = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        let kid = edgevote_shared::jws::peek_header(compact.trim())
            .unwrap()
            .kid;
        *by_kid.entry(kid).or_default() += 1;
    }
    let signed_by_old: usize = old_kids.iter().filter_map(|k| by_kid.get(k)).sum();
    let signed_by_new: usize = by_kid.values().sum::<usize>() - signed_by_old;
    println!("receipts by the old keys: {signed_by_old}, by their successors: {signed_by_new}");
    assert!(signed_by_old > 0 && signed_by_new > 0, "{by_kid:?}");

    // Nothing dead-lettered anywhere; every edge switched once and refused nothing.
    let stack: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("stack.json")).unwrap()).unwrap();
    for region in stack["regions"].as_array().unwrap() {
        let name = region["name"].as_str().unwrap();
        let collector = metrics_of(region["collector_url"].as_str().unwrap());
        let edge = metrics_of(region["edge_url"].as_str().unwrap());
        let dead = counter(
            &collector,
            "edgevote_collector_messages_dead_lettered_total",
        );
        let depth = counter(&collector, "edgevote_collector_dead_letter_messages");
        let deferred = counter(&collector, "edgevote_collector_messages_deferred_total");
        let switches = counter(&edge, "edgevote_edge_key_switches_total");
        let expired = counter(&edge, "edgevote_edge_key_expired_refusals_total");
        println!(
            "{name}: dead-lettered {dead}, dead-letter depth {depth}, deferred {deferred}, key switches {switches}, edge_key_expired {expired}"
        );
        assert!(collector.contains("edgevote_collector_messages_received_total"));
        assert_eq!((dead, depth), (0.0, 0.0), "{name} dead-lettered messages");
        assert_eq!((switches, expired), (1.0, 0.0), "{name}");
    }
    stop_up(d, up);
}

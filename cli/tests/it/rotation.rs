//! Key rotation drill: the edge and authority keys are rotated mid-election; every receipt
//! from before and after still verifies with the archived key set, and all are in the log.

use crate::edgevote;
use crate::up::{start_up, stop_up};

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
    let verified = edgevote(
        d,
        &[
            "audit",
            "verify",
            "--log",
            out.to_str().unwrap(),
            "--receipts",
            receipts.to_str().unwrap(),
        ],
    );
    let text = String::from_utf8_lossy(&verified.stdout).into_owned();
    assert!(verified.status.success(), "{text}");
    assert!(text.contains(" 0 not included, 0 invalid"), "{text}");
    let table = edgevote(d, &["keys", "show", "--keys", keys_arg]);
    let table = String::from_utf8_lossy(&table.stdout).into_owned();
    assert_eq!(
        table.matches("archived").count() + table.matches("retiring").count(),
        2,
        "{table}"
    );
}

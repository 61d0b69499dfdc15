//! End to end: `edgevote up` as a process, `edgevote load` with double votes, cross-region
//! races and retries, then every receipt verifies and every region reports the same exact tally.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::edgevote;

#[test]
fn up_then_load_reconciles_in_every_region() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("stack");
    let data_arg = data.to_str().unwrap().to_owned();
    crate::edge::component();
    let component = crate::edge::component_path();
    let mut up = Command::new(env!("CARGO_BIN_EXE_edgevote"))
        .args([
            "up",
            "--data-dir",
            &data_arg,
            "--component",
            component.to_str().unwrap(),
            "--refresh-secs",
            "30",
        ])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.path().join("up.stderr")).unwrap())
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

    Command::new("kill")
        .args(["-INT", &up.id().to_string()])
        .status()
        .unwrap();
    let exit = up.wait().unwrap();
    assert!(
        exit.success(),
        "up exited {exit:?}: {}",
        std::fs::read_to_string(dir.path().join("up.stderr")).unwrap_or_default()
    );
}

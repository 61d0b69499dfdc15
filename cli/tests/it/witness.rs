//! `edgevote witness keygen|serve`, `audit witness` and `audit verify --witness`: a published
//! folder cosigned by a running witness verifies with 1 of it, and not with 2 of 2.

use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::{audit_verify, election_dir, ok};

/// Writes the witness's config for both logs of election `ref` into `dir/witness.toml`.
fn write_witness_config(dir: &Path, log_vkey: &str) {
    let logs: String = ["receipts", "choices"]
        .iter()
        .map(|log| format!("[[log]]\norigin = \"edgevote/ref/{log}\"\nvkey = {log_vkey:?}\n"))
        .collect();
    let config = format!(
        "listen = \"127.0.0.1:0\"\nkey_path = {:?}\nstate_path = {:?}\n{logs}",
        dir.join("w1.key").display().to_string(),
        dir.join("w1.state").display().to_string(),
    );
    std::fs::write(dir.join("witness.toml"), config).unwrap();
}

#[test]
fn a_folder_cosigned_by_a_running_witness_verifies_with_it_and_not_two_of_two() {
    let dir = election_dir();
    let d = dir.path();
    let data = crate::audit::stack(d);
    let out = d.join("audit");
    let (data_arg, out_arg) = (data.to_str().unwrap(), out.to_str().unwrap());
    ok(
        d,
        &[
            "audit",
            "publish",
            "--up",
            data_arg,
            "--out",
            out_arg,
            "--before-close",
        ],
    );
    for w in ["w1", "w2"] {
        let name = format!("witness.test/{w}");
        ok(
            d,
            &[
                "witness",
                "keygen",
                "--name",
                &name,
                "--key",
                &format!("{w}.key"),
            ],
        );
    }
    let log_vkey = std::fs::read_to_string(out.join("log.vkey")).unwrap();
    write_witness_config(d, log_vkey.trim());

    let mut server = Command::new(env!("CARGO_BIN_EXE_edgevote"))
        .args(["witness", "serve", "--config", "witness.toml"])
        .current_dir(d)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let url = first
        .split_whitespace()
        .find_map(|w| w.strip_suffix("/add-checkpoint"))
        .unwrap_or_else(|| panic!("no URL in {first:?}"))
        .to_owned();

    let submitted = ok(
        d,
        &["audit", "witness", "--log", out_arg, "--witness-url", &url],
    );
    assert!(
        submitted.contains("receipts.checkpoint cosigned by"),
        "{submitted}"
    );
    server.kill().unwrap();
    server.wait().unwrap();

    let one = audit_verify(
        d,
        &data,
        &out,
        &["--witness", "w1.vkey", "--min-witnesses", "1"],
    );
    assert!(
        one.status.success(),
        "{}",
        String::from_utf8_lossy(&one.stdout)
    );
    let two = [
        "--witness",
        "w1.vkey",
        "--witness",
        "w2.vkey",
        "--min-witnesses",
        "2",
    ];
    let two = audit_verify(d, &data, &out, &two);
    let text = String::from_utf8_lossy(&two.stdout);
    assert_eq!(two.status.code(), Some(1), "{text}");
    assert!(
        text.starts_with("INVALID receipts.checkpoint (too_few_witnesses)"),
        "{text}"
    );
}

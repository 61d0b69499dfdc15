//! `edgevote cost` as a capacity planner runs it.

use serde_json::Value;

use crate::{edgevote, ok};

fn cost_json(args: &[&str]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let mut all = vec!["cost", "--json"];
    all.extend_from_slice(args);
    let text = ok(dir.path(), &all);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn number(report: &Value, path: &[&str]) -> f64 {
    let mut value = report;
    for key in path {
        value = &value[*key];
    }
    value
        .as_f64()
        .unwrap_or_else(|| panic!("{path:?} is not a number: {value}"))
}

/// Runs `edgevote cost ARGS`, expects a failure, and returns stderr.
fn refused(dir: &std::path::Path, args: &[&str]) -> String {
    let mut all = vec!["cost"];
    all.extend_from_slice(args);
    let out = edgevote(dir, &all);
    assert!(!out.status.success(), "edgevote {all:?} succeeded");
    assert_ne!(out.status.code(), Some(0));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn json_report_parses_and_counts_the_ballots() {
    let report = cost_json(&[
        "--peak-votes-per-sec",
        "250000",
        "--duration-hours",
        "12",
        "--regions",
        "3",
    ]);
    let ballots = number(&report, &["derived", "ballots"]);
    assert!((ballots - 250_000.0 * 12.0 * 3600.0 * 0.35).abs() < 1.0);
    for design in ["group_commit", "naive"] {
        let total = number(&report, &[design, "usd_total", "total"]);
        let per_region = number(&report, &[design, "usd_per_region", "total"]);
        let per_million = number(&report, &[design, "usd_per_million_votes", "total"]);
        assert!(total > 0.0);
        assert!((per_region * 3.0 - total).abs() < 1e-6 * total);
        assert!((per_million * ballots / 1e6 - total).abs() < 1e-6 * total);
    }
    let assumptions = report["assumptions"].as_array().unwrap();
    let source = |name: &str| {
        assumptions
            .iter()
            .find(|a| a["name"] == name)
            .and_then(|a| a["source"].as_str())
            .unwrap_or_else(|| panic!("no assumption {name}"))
            .to_owned()
    };
    assert!(source("wcu_per_vote").starts_with("measured"));
    assert!(source("usd_per_million_sqs_requests").starts_with("list price"));
    assert!(source("regions").contains("--regions"));
}

#[test]
fn group_commit_saves_sqs_requests_by_about_the_packing_factor() {
    // Messages that fit one 64 KiB chunk and receives of one message: every message costs
    // send + receive + delete in both designs, so the ratio is exactly the packing factor.
    let report = cost_json(&[
        "--envelopes-per-message",
        "32",
        "--avg-envelope-bytes",
        "1000",
        "--messages-per-receive",
        "1",
    ]);
    let sqs_per_vote =
        |design: &str| number(&report, &["derived", &format!("{design}_sqs"), "total"]);
    let ratio = sqs_per_vote("naive") / sqs_per_vote("group_commit");
    assert!((ratio - 32.0).abs() < 1e-9, "{ratio}");
    // In dollars the empty long polls (the same in both) keep it just under.
    let dollars = number(&report, &["naive_to_group_ratio", "sqs"]);
    assert!(dollars > 0.95 * 32.0 && dollars <= 32.0, "{dollars}");

    // Defaults (batch receives of 10): receives of big messages are billed per 64 KiB chunk,
    // so the saving is below the packing factor but of its order.
    for packing in [8.0_f64, 32.0, 128.0] {
        let report = cost_json(&["--envelopes-per-message", &packing.to_string()]);
        let ratio = number(&report, &["naive_to_group_ratio", "sqs"]);
        assert!(
            ratio > packing / 8.0 && ratio < packing,
            "packing {packing}: ratio {ratio}"
        );
        let total = number(&report, &["naive_to_group_ratio", "total"]);
        assert!(total.is_finite() && total > 0.0);
    }
}

#[test]
fn per_million_votes_does_not_depend_on_the_duration() {
    let short = cost_json(&["--duration-hours", "1"]);
    let long = cost_json(&["--duration-hours", "24"]);
    assert!(
        number(&long, &["derived", "ballots"]) > 20.0 * number(&short, &["derived", "ballots"])
    );
    for design in ["group_commit", "naive"] {
        for part in ["sqs", "dynamodb", "edge", "collectors", "total"] {
            let a = number(&short, &[design, "usd_per_million_votes", part]);
            let b = number(&long, &[design, "usd_per_million_votes", part]);
            assert!(
                (a - b).abs() <= 1e-9 * a.abs().max(1e-12),
                "{design} {part}: {a} vs {b}"
            );
        }
    }
}

#[test]
fn text_report_lists_both_designs_and_the_assumptions() {
    let dir = tempfile::tempdir().unwrap();
    let text = ok(dir.path(), &["cost", "--regions", "2"]);
    for needle in [
        "Group commit: edge hosts behind CloudFront",
        "Naive: one SQS message per vote",
        "naive/group",
        "USD/M votes",
        "--peak-votes-per-sec",
        "measured: cargo bench -p edgevote-edge-host",
        "list price: SQS standard requests",
        "set with --regions",
        "Left out or simplified",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
}

#[test]
fn bad_input_is_refused_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let err = refused(d, &["--peak-votes-per-sec", "-5"]);
    assert!(err.contains("--peak-votes-per-sec"), "{err}");
    let err = refused(d, &["--regions", "0"]);
    assert!(err.contains("--regions"), "{err}");
    let err = refused(d, &["--regions", "17"]);
    assert!(err.contains("--regions"), "{err}");
    let err = refused(d, &["--duration-hours", "inf"]);
    assert!(err.contains("--duration-hours"), "{err}");
    let err = refused(d, &["--voters", "1000", "--average-to-peak", "0.5"]);
    assert!(err.contains("--voters"), "{err}");

    std::fs::write(
        d.join("prices.toml"),
        "usd_per_million_sqs_requests = 0.4\nusd_per_unicorn = 1\n",
    )
    .unwrap();
    let err = refused(d, &["--price-file", "prices.toml"]);
    assert!(
        err.contains("prices.toml") && err.contains("usd_per_unicorn"),
        "{err}"
    );
    std::fs::write(d.join("negative.toml"), "usd_per_gb_month_storage = -1\n").unwrap();
    let err = refused(d, &["--price-file", "negative.toml"]);
    assert!(err.contains("usd_per_gb_month_storage"), "{err}");
    let err = refused(d, &["--price-file", "missing.toml"]);
    assert!(err.contains("missing.toml"), "{err}");
}

#[test]
fn price_file_overrides_and_is_named_as_the_source() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("prices.toml"),
        "# twice the list price\nusd_per_million_sqs_requests = 0.80\n",
    )
    .unwrap();
    let base = cost_json(&[]);
    let text = ok(d, &["cost", "--json", "--price-file", "prices.toml"]);
    let doubled: Value = serde_json::from_str(&text).unwrap();
    for design in ["group_commit", "naive"] {
        let a = number(&base, &[design, "usd_total", "sqs"]);
        let b = number(&doubled, &[design, "usd_total", "sqs"]);
        assert!((b - 2.0 * a).abs() < 1e-6 * b, "{design}: {a} -> {b}");
    }
    let assumptions = doubled["assumptions"].as_array().unwrap();
    let sqs = assumptions
        .iter()
        .find(|a| a["name"] == "usd_per_million_sqs_requests")
        .unwrap();
    assert_eq!(sqs["source"], "price file prices.toml");
}

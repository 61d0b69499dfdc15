//! `edgevote bench` end to end at tiny sizes (`--quick`, a debug build): it runs every stage
//! and reports a sane structure. No figure is asserted: timing belongs to the benchmark.

use crate::edgevote;

#[test]
fn bench_quick_json_reports_every_stage() {
    let component = crate::edge::component();
    let wide = crate::edge::wide_component();
    let dir = tempfile::tempdir().unwrap();
    let out = edgevote(
        dir.path(),
        &[
            "bench",
            "--quick",
            "--json",
            "--regions",
            "2",
            "--component",
            component.to_str().unwrap(),
            "--wide-component",
            wide.to_str().unwrap(),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bench failed: {stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["settings"]["sealing"], "host", "{report}");
    assert_eq!(report["settings"]["verify_tokens"], true);
    assert_eq!(report["settings"]["regions"], 2);
    // The settings line names the edge host's own alone rule.
    let alone_after_ms = edgevote_edge_host::commit::SLOT_PRESSURE.as_millis() as u64;
    assert_eq!(
        report["settings"]["group_commit_alone_after_slot_wait_ms"], alone_after_ms,
        "{report}"
    );
    assert!(report["crypto"]["votes_per_sec"].as_f64().unwrap() > 0.0);
    assert!(report["handler"]["native"]["median"].as_f64().unwrap() > 0.0);
    // The wide-arithmetic build ran under component sealing and answered every vote.
    let wide_rate = &report["handler"]["wide_component_sealing"]["median"];
    assert!(wide_rate.as_f64().unwrap() > 0.0, "{report}");
    let steps = report["e2e"]["steps"].as_array().unwrap();
    assert!(!steps.is_empty());
    let judged = [
        &report["e2e"]["full_load_held"],
        &report["e2e"]["half_load"],
    ];
    for step in steps.iter().chain(judged) {
        assert!(step["acked"].as_u64().unwrap() > 0, "{step}");
        assert!(step["latency"]["p99_ms"].as_f64().unwrap() > 0.0, "{step}");
        assert!(step["messages_per_vote"].as_f64().unwrap() > 0.0, "{step}");
        // Read back from the edges' histograms: a step that committed votes sent messages.
        for histogram in [
            "queue_send_p99_ms",
            "group_commit_p99_ms",
            "edge_vote_p99_ms",
            "vote_commit_p99_ms",
        ] {
            assert!(
                step[histogram].as_f64().unwrap() > 0.0,
                "{histogram}: {step}"
            );
        }
        // Read back from the edges' counters (none need be stretched at these sizes).
        for counter in ["window_stretches", "stretched_windows", "commits_alone"] {
            assert!(step[counter].as_f64().unwrap() >= 0.0, "{counter}: {step}");
        }
        // Read back from the edges' close counters: a step that sent messages closed windows.
        let closes = &step["window_closes"];
        let closed: f64 = ["window", "full", "backlog_fell"]
            .iter()
            .map(|reason| closes[reason].as_f64().unwrap())
            .sum();
        assert!(closed >= 1.0, "{step}");
        // Every vote went through each phase past its window's deadline (`late` observes a
        // zero for a window closed early), so each has a p99.
        for phase in ["late", "slot", "seal", "store"] {
            assert!(
                step["commit_phase_p99_ms"][phase].as_f64().unwrap() > 0.0,
                "{phase}: {step}"
            );
        }
        // The step's windows of scheduled time: the worst judged one has a median.
        let stalls = &step["stalls"];
        let judged = stalls["windows"].as_u64().unwrap();
        assert!(stalls["slow_windows"].as_u64().unwrap() <= judged, "{step}");
        if judged > 0 {
            assert!(stalls["worst_median_ms"].as_f64().unwrap() > 0.0, "{step}");
        }
        let lag = &step["send_lag"];
        assert!(
            lag["max_ms"].as_f64().unwrap() >= lag["p99_ms"].as_f64().unwrap(),
            "{step}"
        );
    }
    // (a), (b), three (c) (host sealing, component sealing, the wide build), every rising step,
    // the step held at full load and the half-load step.
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 5 + steps.len() + 2, "{report}");
    let full = &steps[report["e2e"]["full_load"].as_u64().unwrap() as usize];
    let held = &report["e2e"]["full_load_held"];
    assert_eq!(held["offered_rate"], full["offered_rate"], "{report}");
    // Messages per vote at full load are judged on the held step, the rising one shown beside.
    let targets = &report["targets"];
    assert_eq!(
        targets["messages_per_vote_at_full_load"],
        held["messages_per_vote"]
    );
    assert_eq!(
        targets["messages_per_vote_at_full_load_rising"],
        full["messages_per_vote"]
    );
    assert_eq!(rows[0]["votes_per_sec_ratio"], 1.0);
    assert!(report["targets"]["met"].is_boolean());
    // (e): --quick holds 200 connections to one `edgevote edge run`, each with a vote.
    let held = &report["connections"];
    assert_eq!(held["connections"], 200, "{held}");
    assert_eq!(held["held_open"], 200, "{held}");
    assert_eq!(held["answered_again"], 200, "{held}");
    assert!(held["rss_peak_bytes"].as_u64().unwrap() >= held["rss_start_bytes"].as_u64().unwrap());
    for progress in ["(d) step 1 (rising)", "(full load held)", "(half of max)"] {
        assert!(stderr.contains(progress), "progress on stderr: {stderr}");
    }
}

#[test]
fn bench_refuses_a_missing_stack_and_bad_flags() {
    let dir = tempfile::tempdir().unwrap();
    let out = edgevote(dir.path(), &["bench", "--up", "no-such-stack"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no stack at"), "{stderr}");

    let out = edgevote(dir.path(), &["bench", "--start-rate", "0"]);
    assert_eq!(out.status.code(), Some(2));
    let out = edgevote(
        dir.path(),
        &["bench", "--quick", "--component", "missing.wasm"],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("scripts/build-wasm.sh spin"), "{stderr}");
    let out = edgevote(
        dir.path(),
        &["bench", "--quick", "--wide-component", "missing-wide.wasm"],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("scripts/build-wasm.sh wide"), "{stderr}");

    // More connections than the hard open-files limit (1000 here) allows: refused before
    // anything is measured (the component is not even read).
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg("ulimit -n 1000 && exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_edgevote"))
        .args([
            "bench",
            "--quick",
            "--connections",
            "5000",
            "--component",
            "missing.wasm",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("open files"), "{stderr}");
}

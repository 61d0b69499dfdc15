//! The model against figures computed by hand.

use edgevote_cost::{
    CostConfig, DesignCost, Group, NaiveEdge, derive, estimate, render_json, render_text,
    sqs_per_vote,
};

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

fn line(design: &DesignCost, item: &str) -> f64 {
    design
        .lines
        .iter()
        .find(|l| l.item == item)
        .map(|l| l.usd_total)
        .unwrap_or_else(|| panic!("no line {item}"))
}

/// A small election computed by hand.
fn hand_config() -> CostConfig {
    let mut config = CostConfig::default();
    let i = &mut config.inputs;
    i.peak_votes_per_sec = 1_000.0;
    i.duration_hours = 1.0;
    i.average_to_peak = 0.5;
    i.regions = 2;
    i.envelopes_per_message = Some(10.0);
    i.avg_envelope_bytes = 1_000.0;
    // 1 WRU per put, and the measurement's share of the counter update.
    i.wcu_per_vote = 1.0 + 1.0 / 1_500.0;
    i.rcu_per_vote = 1.0;
    i.ballot_item_bytes = 1_024.0;
    i.final_scans_per_region = 1;
    config.prices.dynamodb_item_overhead_bytes = 0.0;
    config
}

#[test]
fn hand_computed_case() {
    let report = estimate(&hand_config()).unwrap();
    let d = &report.derived;
    // 1,000 votes/s x 3,600 s x 0.5.
    assert!(close(d.ballots, 1_800_000.0));
    // A message: 10 x 1,001 - 1 = 10,009 bytes, one 64 KiB chunk; a receive of ten:
    // 100,090 bytes, two chunks; one delete per receive.
    let sqs = &d.group_commit_sqs;
    assert!(close(sqs.message_bytes, 10_009.0));
    assert!(close(sqs.send_chunks_per_message, 1.0));
    assert!(close(sqs.receive_chunks_per_receive, 2.0));
    // 180,000 messages: 180,000 sends + 36,000 receives + 18,000 deletes = 234,000.
    assert!(close(sqs.total * d.ballots, 234_000.0));
    // Naive: 1,800,000 sends + 180,000 receives + 180,000 deletes = 2,160,000.
    assert!(close(d.naive_sqs.total * d.ballots, 2_160_000.0));
    let (g, n) = (&report.group_commit, &report.naive);
    assert!(close(line(g, "SQS SendMessageBatch"), 0.072));
    assert!(close(line(n, "SQS SendMessage"), 0.72));
    // DynamoDB: 1 + 1/100 WRU per ballot (100 ballots per receive): 1,818,000 WRU, as
    // many rWRU (one other region); 1.8M RRU.
    assert!(close(d.group_commit_wcu_per_vote, 1.01));
    assert!(close(line(g, "DynamoDB writes"), 1.13625));
    assert!(close(line(g, "DynamoDB replicated writes"), 1.13625));
    assert!(close(line(g, "DynamoDB reads (voter queries)"), 0.225));
    // One scan per region of 1.8M items of 1 KiB: 450,000 RRU each, 900,000 in all.
    assert!(close(line(g, "DynamoDB final scans"), 0.1125));
    // 1.8M KiB = 1.8M / 1,048,576 GB in each of two regions, one month, at 0.25.
    assert!(close(
        line(g, "DynamoDB storage (every replica)"),
        1_800_000.0 / 1_048_576.0 * 2.0 * 0.25
    ));
    // Naive writes: 1 + 1/10 WRU per ballot.
    assert!(close(line(n, "DynamoDB writes"), 1_980_000.0 * 0.625 / 1e6));
    // Edge hosts: 500 votes/s per region x 2 / 5,500 rounds up to 1, at least 2 tasks;
    // 2 tasks x 2 regions x 1 h x (2 x 0.04048 + 4 x 0.004445).
    assert!(close(d.edge_tasks_per_region, 2.0));
    assert!(close(line(g, "edge hosts (Fargate)"), 4.0 * 0.09874));
    // CloudFront: 180 x 10,000 requests at 0.01; Workers: 1.8 x 0.30.
    assert!(close(line(g, "CloudFront HTTPS requests"), 1.8));
    assert!(close(line(n, "Workers requests"), 0.54));
    // Empty polls: 2 collectors x 2 regions x 4 loops x 3,600 polls.
    assert!(close(d.empty_polls, 57_600.0));
    // Per region is half; per million votes is total / 1.8.
    assert!(close(g.usd_per_region.total * 2.0, g.usd_total.total));
    assert!(close(
        g.usd_per_million_votes.total * 1.8,
        g.usd_total.total
    ));
}

#[test]
fn fill_estimate_follows_the_commit_cycle() {
    let config = CostConfig::default();
    let d = derive(&config.inputs, &config.prices);
    // 250,000 / 3 x 2 / 5,500 = 30.3, so 31 hosts per region; 87,500 votes/s on average.
    assert!(close(d.edge_tasks_per_region, 31.0));
    assert!(close(d.commit_cycle_ms, 10.0));
    let expected = 87_500.0 / 3.0 / 31.0 * 0.010;
    assert!(close(d.envelopes_per_message, expected));
    // The byte bound: 196,609 / 1,081 = 181 envelopes, so the count bound (128) holds.
    assert!(close(d.envelopes_per_message_cap, 128.0));
}

#[test]
fn payload_chunks_are_billed() {
    // 128 envelopes of 1,080 bytes: 138,367 bytes, three 64 KiB chunks to send.
    let sqs = sqs_per_vote(128.0, 1_080.0, 10.0, 65_536.0);
    assert!(close(sqs.send_chunks_per_message, 3.0));
    // Ten of them in one receive: 1,383,670 bytes, 22 chunks.
    assert!(close(sqs.receive_chunks_per_receive, 22.0));
}

#[test]
fn subtotals_add_up_and_the_naive_edge_decides_the_edge_lines() {
    let mut config = hand_config();
    for edge in [NaiveEdge::Workers, NaiveEdge::Host] {
        config.inputs.naive_edge = edge;
        let report = estimate(&config).unwrap();
        let naive = &report.naive;
        let sum = |group| {
            naive
                .lines
                .iter()
                .filter(|l| l.group == group)
                .map(|l| l.usd_total)
                .sum::<f64>()
        };
        assert!(close(naive.usd_total.edge, sum(Group::Edge)));
        let parts = [Group::Sqs, Group::Dynamodb, Group::Edge, Group::Collectors];
        let total: f64 = parts
            .into_iter()
            .map(|g| naive.usd_total.get(Some(g)))
            .sum();
        assert!(close(naive.usd_total.get(None), total));
        let workers = naive.lines.iter().any(|l| l.item == "Workers requests");
        let hosts = naive.lines.iter().any(|l| l.item == "edge hosts (Fargate)");
        assert_eq!(
            (workers, hosts),
            (edge == NaiveEdge::Workers, edge == NaiveEdge::Host)
        );
        // With the same edge on both sides, the edge costs the same.
        if edge == NaiveEdge::Host {
            let ratio = report.naive_to_group_ratio.edge.unwrap();
            assert!(close(ratio, 1.0), "{ratio}");
        }
    }
}

#[test]
fn reports_render() {
    let report = estimate(&CostConfig::default()).unwrap();
    let text = render_text(&report);
    assert!(text.starts_with("edgevote cost model: 250,000 votes/s peak, 12 h, 3 regions\n"));
    assert!(text.contains("  --regions                                            3 regions"));
    assert!(text.ends_with("many more SQS calls per vote\n"));
    let json: serde_json::Value = serde_json::from_str(&render_json(&report).unwrap()).unwrap();
    assert_eq!(json["group_commit"]["design"], "group_commit");
    assert_eq!(json["naive"]["lines"][0]["group"], "sqs");
    assert_eq!(json["inputs"]["voters"], serde_json::Value::Null);
}

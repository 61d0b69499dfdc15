//! The report for people ([`render_text`]) and for scripts ([`render_json`]).

use std::fmt::Write as _;

use crate::error::CostError;
use crate::model::{CostReport, DesignCost, Group, SqsPerVote};
use crate::text::{capitalized, num, times, usd};

/// The report as pretty-printed JSON, with a final newline.
pub fn render_json(report: &CostReport) -> Result<String, CostError> {
    Ok(format!("{}\n", serde_json::to_string_pretty(report)?))
}

/// One row of a design's table: item, quantity, unit, USD per region, USD total, USD per
/// million votes.
fn table_row(out: &mut String, cells: [&str; 6]) {
    let [item, quantity, unit, per_region, total, per_million] = cells;
    let _ = writeln!(
        out,
        "  {item:<38} {quantity:>17} {unit:<10} {per_region:>12} {total:>12} {per_million:>11}"
    );
}

/// One design's table.
fn render_design(out: &mut String, design: &DesignCost) {
    let _ = writeln!(out, "{}", capitalized(&design.description));
    table_row(
        out,
        [
            "item",
            "quantity",
            "unit",
            "USD/region",
            "USD total",
            "USD/M votes",
        ],
    );
    for line in &design.lines {
        let cells = [
            num(line.quantity),
            usd(line.usd_per_region),
            usd(line.usd_total),
            format!("{:.4}", line.usd_per_million_votes),
        ];
        let [quantity, per_region, total, per_million] = cells.each_ref().map(String::as_str);
        table_row(
            out,
            [
                line.item,
                quantity,
                line.unit,
                per_region,
                total,
                per_million,
            ],
        );
    }
    let cells = [
        usd(design.usd_per_region.total),
        usd(design.usd_total.total),
        format!("{:.4}", design.usd_per_million_votes.total),
    ];
    let [per_region, total, per_million] = cells.each_ref().map(String::as_str);
    table_row(out, ["total", "", "", per_region, total, per_million]);
    out.push('\n');
}

/// One labelled fact of "how the figures come about", continuation lines indented.
fn fact(out: &mut String, label: &str, lines: &[String]) {
    for (n, line) in lines.iter().enumerate() {
        let label = if n == 0 { label } else { "" };
        let _ = writeln!(out, "  {label:<13} {line}");
    }
}

/// SQS requests per vote, and of which kind.
fn sqs_breakdown(sqs: &SqsPerVote) -> String {
    format!(
        "{} (send {} + receive {} + delete {})",
        num(sqs.total),
        num(sqs.send),
        num(sqs.receive),
        num(sqs.delete)
    )
}

/// The parts of the comparison, in order, with their labels.
const PARTS: [(&str, Option<Group>); 5] = [
    ("SQS", Some(Group::Sqs)),
    ("DynamoDB", Some(Group::Dynamodb)),
    ("edge", Some(Group::Edge)),
    ("collectors", Some(Group::Collectors)),
    ("total", None),
];

/// Group commit against naive, per part, and the SQS requests per vote of each.
fn render_comparison(out: &mut String, report: &CostReport) {
    let d = &report.derived;
    let _ = writeln!(
        out,
        "Group commit vs naive, USD per million votes (same ratios for totals and per region)"
    );
    let _ = writeln!(
        out,
        "  {:<12} {:>14} {:>14} {:>12}",
        "part", "group commit", "naive", "naive/group"
    );
    for (label, part) in PARTS {
        let _ = writeln!(
            out,
            "  {:<12} {:>14.4} {:>14.4} {:>12}",
            label,
            report.group_commit.usd_per_million_votes.get(part),
            report.naive.usd_per_million_votes.get(part),
            times(report.naive_to_group_ratio.get(part))
        );
    }
    let _ = writeln!(
        out,
        "  SQS requests per vote, group commit: {}\n  SQS requests per vote, naive:        {}\n",
        sqs_breakdown(&d.group_commit_sqs),
        sqs_breakdown(&d.naive_sqs)
    );
}

/// How the figures come about: fleet sizes, packing, SQS billing, DynamoDB units, polls.
fn render_facts(out: &mut String, report: &CostReport) {
    let (i, d) = (&report.inputs, &report.derived);
    let regions = f64::from(i.regions);
    let _ = writeln!(out, "How the figures come about");
    fact(
        out,
        "edge hosts",
        &[
            format!(
                "{} per region: peak {} votes/s per region x headroom {} / {} votes/s per task",
                num(d.edge_tasks_per_region),
                num(d.peak_votes_per_sec_per_region),
                num(i.headroom),
                num(i.edge_votes_per_sec_per_task),
            ),
            format!(
                "(at least {}); {} vCPU and {} GB each, running {} h",
                i.min_tasks_per_region,
                num(i.edge_vcpu_per_task),
                num(i.edge_gb_per_task),
                num(i.duration_hours)
            ),
        ],
    );
    fact(
        out,
        "collectors",
        &[format!(
            "{} per region: {} vCPU needed ({} votes/s per vCPU, headroom {}), tasks of {} vCPU, {} GB",
            num(d.collector_tasks_per_region),
            num(d.collector_vcpus_needed_per_region),
            num(i.collector_votes_per_sec_per_vcpu),
            num(i.headroom),
            num(i.collector_vcpu_per_task),
            num(i.collector_gb_per_task)
        )],
    );
    let mut packing = vec![format!(
        "{} envelopes per message (at most {}), {}",
        num(d.envelopes_per_message),
        num(d.envelopes_per_message_cap),
        if i.envelopes_per_message.is_some() {
            "set with --envelopes-per-message"
        } else {
            "estimated:"
        }
    )];
    if i.envelopes_per_message.is_none() {
        packing.push(format!(
            "{} votes/s per edge host (average) x {} ms commit cycle,",
            num(d.average_votes_per_sec_per_edge_task),
            num(d.commit_cycle_ms)
        ));
        packing.push(format!(
            "the longer of the {} ms wait and {} ms SQS latency / {} commits in flight",
            num(i.group_commit_max_wait_ms),
            num(i.sqs_send_latency_ms),
            i.group_commit_in_flight
        ));
    }
    packing.push(
        "measure it: edgevote_edge_votes_committed_total / edgevote_edge_group_commits_total"
            .to_owned(),
    );
    fact(out, "packing", &packing);
    let billing = |label: &str, sqs: &SqsPerVote| {
        format!(
            "{label}: {}-byte messages, {} billed request(s) per send, {} per receive of {}",
            num(sqs.message_bytes),
            num(sqs.send_chunks_per_message),
            num(sqs.receive_chunks_per_receive),
            num(i.messages_per_receive)
        )
    };
    fact(
        out,
        "SQS billing",
        &[
            billing("group commit", &d.group_commit_sqs),
            billing("naive", &d.naive_sqs),
            "one DeleteMessageBatch per receive; every 64 KiB of payload is one request".to_owned(),
        ],
    );
    fact(
        out,
        "DynamoDB",
        &[
            format!(
                "WRU per ballot {} (group commit), {} (naive): measured {} at {} ballots per",
                num(d.group_commit_wcu_per_vote),
                num(d.naive_wcu_per_vote),
                num(i.wcu_per_vote),
                num(i.wcu_measured_ballots_per_call)
            ),
            "record call, with the live-tally update shared by the ballots of one receive"
                .to_owned(),
            format!(
                "replicated to {} other region(s); {} RRU per ballot",
                num(regions - 1.0),
                num(i.rcu_per_vote)
            ),
        ],
    );
    fact(
        out,
        "empty polls",
        &[format!(
            "{} receive loops per region polling every {} s all election long (an upper bound)",
            num(d.collector_tasks_per_region * f64::from(i.collector_receivers)),
            num(i.receive_wait_secs)
        )],
    );
    out.push('\n');
}

/// The report for people: both designs, the comparison, how the figures come about, and every
/// assumption with its source.
pub fn render_text(report: &CostReport) -> String {
    let (i, d) = (&report.inputs, &report.derived);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "edgevote cost model: {} votes/s peak, {} h, {} regions",
        num(i.peak_votes_per_sec),
        num(i.duration_hours),
        i.regions
    );
    let _ = writeln!(
        out,
        "ballots: {} = {} (average {} votes/s), {} per region\n",
        num(d.ballots),
        d.ballots_rule,
        num(d.average_votes_per_sec),
        num(d.ballots_per_region)
    );
    render_design(&mut out, &report.group_commit);
    render_design(&mut out, &report.naive);
    render_comparison(&mut out, report);
    render_facts(&mut out, report);

    let _ = writeln!(
        out,
        "Assumptions (inputs; prices are list prices, us-east-1, 2025, override with --price-file)"
    );
    for a in &report.assumptions {
        let value = if a.unit.is_empty() {
            a.value.clone()
        } else {
            format!("{} {}", a.value, a.unit)
        };
        let name = if a.set_with == "--price-file" {
            &a.name
        } else {
            &a.set_with
        };
        let _ = writeln!(out, "  {name:<52} {value:<22} {}", a.source);
    }
    let _ = writeln!(out, "\nLeft out or simplified:");
    for item in &report.not_modelled {
        let _ = writeln!(out, "  - {item}");
    }
    out
}

//! The model: quantities derived from the inputs ([`derive()`]), the priced lines of each design
//! ([`design_cost`]), the assumptions list ([`assumptions`]) and the whole [`estimate`].

use serde::Serialize;

use crate::error::CostError;
use crate::inputs::{CostConfig, CostInputs, NaiveEdge, Prices, validate};
use crate::text::{flag_of, group_digits, num};

/// Bytes in one GB as AWS bills storage and data transfer (GiB).
const BYTES_PER_GB: f64 = 1024.0 * 1024.0 * 1024.0;
/// Bytes one read request unit covers in a strongly consistent read or scan.
const RRU_BYTES: f64 = 4096.0;

/// Write units per ballot when `ballots_per_call` ballots share one live-tally update: the
/// measured figure, with its own share of that update replaced.
pub fn wcu_per_vote(inputs: &CostInputs, ballots_per_call: f64) -> f64 {
    inputs.wcu_per_vote - 1.0 / inputs.wcu_measured_ballots_per_call + 1.0 / ballots_per_call
}

/// SQS requests billed per vote in one design.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SqsPerVote {
    /// Envelopes (votes) per message.
    pub envelopes_per_message: f64,
    /// Bytes of one message body (envelopes joined by newlines).
    pub message_bytes: f64,
    /// Billed requests of one send (64 KiB chunks of the body).
    pub send_chunks_per_message: f64,
    /// Billed requests of one receive (64 KiB chunks of all the bodies it returns).
    pub receive_chunks_per_receive: f64,
    /// Billed send requests per vote.
    pub send: f64,
    /// Billed receive requests per vote.
    pub receive: f64,
    /// Billed delete requests per vote (one `DeleteMessageBatch` per receive).
    pub delete: f64,
    /// All three.
    pub total: f64,
}

/// Payload chunks SQS bills for `bytes` (at least one request).
fn billed_chunks(bytes: f64, chunk_bytes: f64) -> f64 {
    (bytes / chunk_bytes).ceil().max(1.0)
}

/// SQS requests per vote with `envelopes_per_message` envelopes of `envelope_bytes` per message.
pub fn sqs_per_vote(
    envelopes_per_message: f64,
    envelope_bytes: f64,
    messages_per_receive: f64,
    chunk_bytes: f64,
) -> SqsPerVote {
    let message_bytes = envelopes_per_message * (envelope_bytes + 1.0) - 1.0;
    let send_chunks = billed_chunks(message_bytes, chunk_bytes);
    let receive_chunks = billed_chunks(message_bytes * messages_per_receive, chunk_bytes);
    let send = send_chunks / envelopes_per_message;
    let receive = receive_chunks / messages_per_receive / envelopes_per_message;
    let delete = 1.0 / messages_per_receive / envelopes_per_message;
    SqsPerVote {
        envelopes_per_message,
        message_bytes,
        send_chunks_per_message: send_chunks,
        receive_chunks_per_receive: receive_chunks,
        send,
        receive,
        delete,
        total: send + receive + delete,
    }
}

/// Quantities the model derives from the inputs before pricing them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Derived {
    /// Ballots stored over the election (all regions).
    pub ballots: f64,
    /// How `ballots` was computed.
    pub ballots_rule: String,
    /// Length of the election in seconds.
    pub duration_secs: f64,
    /// Average votes per second over all regions.
    pub average_votes_per_sec: f64,
    /// Ballots first stored in each region (an even split).
    pub ballots_per_region: f64,
    /// Peak votes per second in one region.
    pub peak_votes_per_sec_per_region: f64,
    /// Edge host tasks per region.
    pub edge_tasks_per_region: f64,
    /// Collector tasks per region.
    pub collector_tasks_per_region: f64,
    /// Collector vCPUs the peak needs per region (before rounding up to tasks).
    pub collector_vcpus_needed_per_region: f64,
    /// Average votes per second reaching one edge host.
    pub average_votes_per_sec_per_edge_task: f64,
    /// Time between two group commits of a busy host, in ms: the wait, or the SQS latency
    /// shared by the commits in flight, whichever is longer.
    pub commit_cycle_ms: f64,
    /// Most envelopes a message holds (count and byte bounds).
    pub envelopes_per_message_cap: f64,
    /// Estimated envelopes per message: average votes per host x commit cycle, within 1..=cap.
    pub envelopes_per_message_estimate: f64,
    /// Envelopes per message used (the flag if set, else the estimate).
    pub envelopes_per_message: f64,
    /// SQS requests per vote under group commit.
    pub group_commit_sqs: SqsPerVote,
    /// SQS requests per vote with one message per vote.
    pub naive_sqs: SqsPerVote,
    /// Write units per ballot under group commit: the measured figure with the live-tally
    /// update shared by the ballots of one receive instead of the measurement's.
    pub group_commit_wcu_per_vote: f64,
    /// Write units per ballot of the naive design (one ballot per message, so the live-tally
    /// update is shared by only `messages_per_receive` ballots).
    pub naive_wcu_per_vote: f64,
    /// Empty long polls over the election (upper bound: every receive loop idle all along).
    pub empty_polls: f64,
}

/// Tasks of one kind per region: what the peak needs, at least `min_tasks` and at least one.
fn tasks(needed: f64, min_tasks: f64) -> f64 {
    needed.ceil().max(min_tasks).max(1.0)
}

/// Derives the quantities of [`Derived`] (no prices involved but the SQS billing chunk).
pub fn derive(inputs: &CostInputs, prices: &Prices) -> Derived {
    let duration_secs = inputs.duration_hours * 3600.0;
    let regions = f64::from(inputs.regions);
    let (ballots, ballots_rule) = match inputs.voters {
        Some(voters) => (
            voters as f64 * inputs.ballots_per_voter,
            format!(
                "{} voters x {} ballots per voter",
                group_digits(&voters.to_string()),
                num(inputs.ballots_per_voter)
            ),
        ),
        None => (
            inputs.peak_votes_per_sec * duration_secs * inputs.average_to_peak,
            format!(
                "peak {} votes/s x {} s x average-to-peak {}",
                num(inputs.peak_votes_per_sec),
                num(duration_secs),
                num(inputs.average_to_peak)
            ),
        ),
    };
    let average_votes_per_sec = ballots / duration_secs;
    let peak_per_region = inputs.peak_votes_per_sec / regions;
    let min_tasks = f64::from(inputs.min_tasks_per_region);
    let edge_tasks = tasks(
        peak_per_region * inputs.headroom / inputs.edge_votes_per_sec_per_task,
        min_tasks,
    );
    let collector_vcpus =
        peak_per_region * inputs.headroom / inputs.collector_votes_per_sec_per_vcpu;
    let collector_tasks = tasks(collector_vcpus / inputs.collector_vcpu_per_task, min_tasks);
    let per_edge_task = average_votes_per_sec / regions / edge_tasks;
    let commit_cycle_ms = inputs
        .group_commit_max_wait_ms
        .max(inputs.sqs_send_latency_ms / f64::from(inputs.group_commit_in_flight));
    let cap = inputs.envelopes_cap();
    let estimate = (per_edge_task * commit_cycle_ms / 1000.0).clamp(1.0, cap);
    let fill = inputs.envelopes_per_message.unwrap_or(estimate);
    let chunk = prices.sqs_billing_chunk_bytes;
    let receive = inputs.messages_per_receive;
    Derived {
        ballots,
        ballots_rule,
        duration_secs,
        average_votes_per_sec,
        ballots_per_region: ballots / regions,
        peak_votes_per_sec_per_region: peak_per_region,
        edge_tasks_per_region: edge_tasks,
        collector_tasks_per_region: collector_tasks,
        collector_vcpus_needed_per_region: collector_vcpus,
        average_votes_per_sec_per_edge_task: per_edge_task,
        commit_cycle_ms,
        envelopes_per_message_cap: cap,
        envelopes_per_message_estimate: estimate,
        envelopes_per_message: fill,
        group_commit_sqs: sqs_per_vote(fill, inputs.avg_envelope_bytes, receive, chunk),
        naive_sqs: sqs_per_vote(1.0, inputs.avg_envelope_bytes, receive, chunk),
        group_commit_wcu_per_vote: wcu_per_vote(inputs, fill * receive),
        naive_wcu_per_vote: wcu_per_vote(inputs, receive),
        empty_polls: collector_tasks
            * regions
            * f64::from(inputs.collector_receivers)
            * duration_secs
            / inputs.receive_wait_secs,
    }
}

/// The part of the system a cost line belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Group {
    /// The regional queues.
    Sqs,
    /// The global table.
    Dynamodb,
    /// CloudFront and edge hosts, or Workers.
    Edge,
    /// The collectors' compute.
    Collectors,
}

/// One priced item of a design.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CostLine {
    /// The part of the system.
    pub group: Group,
    /// What is billed.
    pub item: &'static str,
    /// How much of it, over the election and all regions.
    pub quantity: f64,
    /// Unit of `quantity`.
    pub unit: &'static str,
    /// USD over the election, all regions.
    pub usd_total: f64,
    /// USD per region (an even split).
    pub usd_per_region: f64,
    /// USD per million ballots.
    pub usd_per_million_votes: f64,
}

/// One figure per part of the system, and for everything.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct PerPart<T> {
    /// SQS.
    pub sqs: T,
    /// DynamoDB.
    pub dynamodb: T,
    /// Edge.
    pub edge: T,
    /// Collectors.
    pub collectors: T,
    /// Everything.
    pub total: T,
}

/// Sums of USD per part of the system.
pub type Subtotals = PerPart<f64>;

/// Naive cost divided by group-commit cost, per part (`None` when group commit costs nothing).
pub type Ratios = PerPart<Option<f64>>;

impl<T: Copy> PerPart<T> {
    /// The figure of one part, or the total for `None`.
    pub fn get(&self, part: Option<Group>) -> T {
        match part {
            Some(Group::Sqs) => self.sqs,
            Some(Group::Dynamodb) => self.dynamodb,
            Some(Group::Edge) => self.edge,
            Some(Group::Collectors) => self.collectors,
            None => self.total,
        }
    }

    /// Combines two sets of figures part by part.
    pub fn zip<U: Copy, V>(&self, other: &PerPart<U>, f: impl Fn(T, U) -> V) -> PerPart<V> {
        PerPart {
            sqs: f(self.sqs, other.sqs),
            dynamodb: f(self.dynamodb, other.dynamodb),
            edge: f(self.edge, other.edge),
            collectors: f(self.collectors, other.collectors),
            total: f(self.total, other.total),
        }
    }
}

impl Subtotals {
    /// The sums of `value` over the lines of each part, and their total.
    pub fn of(lines: &[CostLine], value: impl Fn(&CostLine) -> f64) -> Self {
        let sum = |group| {
            lines
                .iter()
                .filter(|l| l.group == group)
                .map(&value)
                .sum::<f64>()
        };
        let (sqs, dynamodb, edge, collectors) = (
            sum(Group::Sqs),
            sum(Group::Dynamodb),
            sum(Group::Edge),
            sum(Group::Collectors),
        );
        PerPart {
            sqs,
            dynamodb,
            edge,
            collectors,
            total: sqs + dynamodb + edge + collectors,
        }
    }
}

/// The costs of one design.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DesignCost {
    /// `group_commit` or `naive`.
    pub design: &'static str,
    /// What the design is.
    pub description: String,
    /// The priced items.
    pub lines: Vec<CostLine>,
    /// USD over the election, all regions.
    pub usd_total: Subtotals,
    /// USD per region.
    pub usd_per_region: Subtotals,
    /// USD per million ballots.
    pub usd_per_million_votes: Subtotals,
}

/// One input or price with its value and the source of that value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Assumption {
    /// Input name or price key.
    pub name: String,
    /// How to change it: the flag, or `--price-file`.
    pub set_with: String,
    /// The value, as printed.
    pub value: String,
    /// Its unit.
    pub unit: String,
    /// Where the value comes from.
    pub source: String,
}

/// The whole estimate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CostReport {
    /// The inputs used.
    pub inputs: CostInputs,
    /// The prices used.
    pub prices: Prices,
    /// Quantities before pricing.
    pub derived: Derived,
    /// Group commit at the edge hosts.
    pub group_commit: DesignCost,
    /// One SQS message per vote.
    pub naive: DesignCost,
    /// Naive divided by group commit (the same for totals, per region and per million votes).
    pub naive_to_group_ratio: Ratios,
    /// Every input and price with its source.
    pub assumptions: Vec<Assumption>,
    /// What the model leaves out or simplifies.
    pub not_modelled: Vec<&'static str>,
}

/// Which design [`design_cost`] prices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Design {
    /// Edge hosts behind CloudFront packing envelopes into messages.
    GroupCommit,
    /// One SQS message per vote.
    Naive,
}

/// One row of a design's bill: (part, item, quantity over the election, unit, USD per unit).
type Row = (Group, &'static str, f64, &'static str, f64);

/// Prices one design: one row per billed item, each priced the same way.
pub fn design_cost(config: &CostConfig, derived: &Derived, design: Design) -> DesignCost {
    let (i, p) = (&config.inputs, &config.prices);
    let (ballots, hours) = (derived.ballots, i.duration_hours);
    let regions = f64::from(i.regions);
    let others = regions - 1.0;
    let (sqs, wcu, edge) = match design {
        Design::GroupCommit => (
            &derived.group_commit_sqs,
            derived.group_commit_wcu_per_vote,
            None,
        ),
        Design::Naive => (
            &derived.naive_sqs,
            derived.naive_wcu_per_vote,
            Some(i.naive_edge),
        ),
    };
    let send = match design {
        Design::GroupCommit => "SQS SendMessageBatch",
        Design::Naive => "SQS SendMessage",
    };
    let (q, db, e) = (Group::Sqs, Group::Dynamodb, Group::Edge);
    let per_million = |usd: f64| usd / 1e6;
    let request = per_million(p.usd_per_million_sqs_requests);
    let read = per_million(p.usd_per_million_read_request_units);
    let write = per_million(p.usd_per_million_write_request_units);
    let replicated = per_million(p.usd_per_million_replicated_write_request_units);
    let stream = p.usd_per_100k_stream_read_request_units / 1e5;
    let storage = p.usd_per_gb_month_storage;
    let stored_gb = (i.ballot_item_bytes + p.dynamodb_item_overhead_bytes) / BYTES_PER_GB;
    let gb_months = ballots * stored_gb * regions * i.storage_months;
    let scans = f64::from(i.final_scans_per_region) * regions;
    let scanned = ballots * i.ballot_item_bytes / RRU_BYTES * scans;
    let replicated_gb = ballots * (i.ballot_item_bytes / BYTES_PER_GB) * others;
    let gb = |bytes_per_ballot: f64| ballots * bytes_per_ballot / BYTES_PER_GB;
    let (egress_gb, out_gb, origin_gb) = (
        gb(i.sqs_send_response_bytes),
        gb(i.response_bytes_per_vote),
        gb(i.request_bytes_per_vote),
    );
    let worker_request = per_million(p.usd_per_million_worker_requests);
    let worker_cpu_ms = per_million(p.usd_per_million_worker_cpu_ms);
    let cloudfront_request = p.usd_per_10k_cloudfront_https_requests / 1e4;
    let fargate =
        |vcpu: f64, gb: f64| vcpu * p.usd_per_vcpu_hour_fargate + gb * p.usd_per_gb_hour_fargate;
    let task_hours = |tasks_per_region: f64| tasks_per_region * regions * hours;
    let hosts = task_hours(derived.edge_tasks_per_region);
    let host = fargate(i.edge_vcpu_per_task, i.edge_gb_per_task);
    let (polls, collectors) = (
        derived.empty_polls,
        task_hours(derived.collector_tasks_per_region),
    );
    let collector = fargate(i.collector_vcpu_per_task, i.collector_gb_per_task);
    let replication = p.usd_per_gb_inter_region;
    #[rustfmt::skip]
    let shared: [Row; 11] = [
        (q, send, ballots * sqs.send, "requests", request),
        (q, "SQS ReceiveMessage", ballots * sqs.receive, "requests", request),
        (q, "SQS DeleteMessageBatch", ballots * sqs.delete, "requests", request),
        (q, "SQS empty long polls (upper bound)", polls, "requests", request),
        (db, "DynamoDB writes", ballots * wcu, "WRU", write),
        (db, "DynamoDB replicated writes", ballots * wcu * others, "rWRU", replicated),
        (db, "DynamoDB reads (voter queries)", ballots * i.rcu_per_vote, "RRU", read),
        (db, "DynamoDB final scans", scanned, "RRU", read),
        (db, "DynamoDB storage (every replica)", gb_months, "GB-month", storage),
        (db, "DynamoDB Streams reads", ballots * i.stream_read_units_per_vote, "units", stream),
        (db, "replication transfer (inter-region)", replicated_gb, "GB", replication),
    ];
    #[rustfmt::skip]
    let edge_rows: Vec<Row> = if edge == Some(NaiveEdge::Workers) {
        vec![
            (e, "Workers requests", ballots, "requests", worker_request),
            (e, "Workers CPU", ballots * i.worker_cpu_ms_per_vote, "CPU-ms", worker_cpu_ms),
            (e, "SQS responses to Workers (AWS egress)", egress_gb, "GB", p.usd_per_gb_internet_out),
        ]
    } else {
        vec![
            (e, "CloudFront HTTPS requests", ballots, "requests", cloudfront_request),
            (e, "CloudFront transfer out", out_gb, "GB", p.usd_per_gb_cloudfront_out),
            (e, "CloudFront transfer to origin", origin_gb, "GB", p.usd_per_gb_cloudfront_to_origin),
            (e, "edge hosts (Fargate)", hosts, "task-hours", host),
        ]
    };
    let collectors_row = (
        Group::Collectors,
        "collectors (Fargate)",
        collectors,
        "task-hours",
        collector,
    );
    let rows = shared.into_iter().chain(edge_rows).chain([collectors_row]);

    let lines: Vec<CostLine> = rows
        .map(|(group, item, quantity, unit, usd_per_unit)| {
            let usd_total = quantity * usd_per_unit;
            CostLine {
                group,
                item,
                quantity,
                unit,
                usd_total,
                usd_per_region: usd_total / regions,
                usd_per_million_votes: usd_total / ballots * 1e6,
            }
        })
        .collect();
    let description = match edge {
        None => format!(
            "group commit: edge hosts behind CloudFront, {:.1} envelopes per SQS message",
            derived.envelopes_per_message
        ),
        Some(NaiveEdge::Workers) => {
            "naive: one SQS message per vote, edge on Cloudflare Workers".to_owned()
        }
        Some(NaiveEdge::Host) => {
            "naive: one SQS message per vote, edge hosts behind CloudFront without group commit"
                .to_owned()
        }
    };
    DesignCost {
        design: match design {
            Design::GroupCommit => "group_commit",
            Design::Naive => "naive",
        },
        description,
        usd_total: Subtotals::of(&lines, |l| l.usd_total),
        usd_per_region: Subtotals::of(&lines, |l| l.usd_per_region),
        usd_per_million_votes: Subtotals::of(&lines, |l| l.usd_per_million_votes),
        lines,
    }
}

/// Every input and price with its value and source.
pub fn assumptions(config: &CostConfig) -> Vec<Assumption> {
    let mut out: Vec<Assumption> = config
        .inputs
        .fields()
        .into_iter()
        .map(|field| Assumption {
            name: field.name.to_owned(),
            set_with: flag_of(field.name),
            unit: if field.number.is_some() {
                field.unit.to_owned()
            } else {
                String::new()
            },
            value: field.text,
            source: if config.flags_set.contains(field.name) {
                format!("set with {}", flag_of(field.name))
            } else {
                field.source.to_owned()
            },
        })
        .collect();
    out.extend(
        config
            .prices
            .fields()
            .into_iter()
            .map(|(key, value, _, note)| Assumption {
                name: key.to_owned(),
                set_with: "--price-file".to_owned(),
                value: num(value),
                unit: String::new(),
                source: match &config.price_file {
                    Some(file) if file.keys.contains(key) => format!("price file {}", file.path),
                    _ if note.contains("billing rule") => note.to_owned(),
                    _ => format!("list price: {note}"),
                },
            }),
    );
    out
}

/// What the model leaves out or simplifies, for the report.
pub const NOT_MODELLED: [&str; 7] = [
    "free tiers and volume discounts (1M SQS requests, 25 GB of storage, CloudFront above 10 TB)",
    "a load balancer between CloudFront and the edge hosts, NAT gateways (public subnets assumed)",
    "refused, rate-limited (429) and retried requests, reads of manifests, keys and results",
    "redelivered messages (each redelivered ballot costs one more WRU) and dead letters",
    "autoscaling: fleets are sized for the peak and run the whole duration",
    "Spin hosting, the Workers monthly plan fee, CloudWatch, KMS, support plans and taxes",
    "the naive design's collectors get the same votes/s per vCPU, with many more SQS calls per vote",
];

/// Estimates both designs for a configuration, after [`validate`] accepts it.
pub fn estimate(config: &CostConfig) -> Result<CostReport, CostError> {
    validate(config)?;
    let derived = derive(&config.inputs, &config.prices);
    let group_commit = design_cost(config, &derived, Design::GroupCommit);
    let naive = design_cost(config, &derived, Design::Naive);
    let naive_to_group_ratio = group_commit
        .usd_total
        .zip(&naive.usd_total, |g, n| (g > 0.0).then(|| n / g));
    Ok(CostReport {
        inputs: config.inputs.clone(),
        prices: config.prices.clone(),
        derived,
        group_commit,
        naive,
        naive_to_group_ratio,
        assumptions: assumptions(config),
        not_modelled: NOT_MODELLED.to_vec(),
    })
}

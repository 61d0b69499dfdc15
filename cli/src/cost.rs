//! `edgevote cost`: what an election costs on AWS (and Cloudflare Workers), per region and per
//! million votes, for the group-commit design and for the naive one-message-per-vote design.
//!
//! The model is a set of pure functions over a [`CostConfig`]: [`CostInputs`] (the workload,
//! the figures measured by the benchmarks, the sizing rules) and [`Prices`] (on-demand list
//! prices). [`estimate`] turns a configuration into a [`CostReport`], [`render`] prints it for
//! people and `--json` prints the same report for machines.
//!
//! What each vote costs, by component:
//! - **SQS** (standard queue): one `SendMessageBatch` per message (the edge host sends each group
//!   commit as a batch of one entry; Spin and Workers send one `SendMessage` per vote), one
//!   `ReceiveMessage` per `messages_per_receive` messages and one `DeleteMessageBatch` per
//!   receive. SQS bills every 64 KiB chunk of a request's payload as one request, so a receive of
//!   ten 100 KiB messages is billed as 16 requests, not one.
//! - **DynamoDB** (on-demand, global table): write units per ballot in the region that stores
//!   it (the measured `wcu_per_vote`, corrected for how many ballots share one live-tally
//!   counter update: all the ballots of one receive), as many replicated write units in every
//!   other region, `rcu_per_vote` read units, the final-tally scans, storage of every ballot in
//!   every region, the inter-region transfer of replication, and stream reads (none by default).
//! - **Edge**: CloudFront requests and data transfer plus Fargate edge hosts for the group-commit
//!   design; Workers requests and CPU (or the same hosts without group commit) for the naive one.
//! - **Collectors**: Fargate tasks, sized like the edge hosts from a measured throughput.
//!
//! Fleets are sized for the peak (times `headroom`) and run for the whole duration; votes are
//! split evenly over the regions.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};
use clap::{Args, ValueEnum};
use serde::{Deserialize, Serialize};

/// Bytes in one GB as AWS bills storage and data transfer (GiB).
const BYTES_PER_GB: f64 = 1024.0 * 1024.0 * 1024.0;
/// Bytes one read request unit covers in a strongly consistent read or scan.
const RRU_BYTES: f64 = 4096.0;
/// Most messages one SQS `ReceiveMessage` returns.
const SQS_MAX_RECEIVE: f64 = 10.0;

/// Where the naive design's edge runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum NaiveEdge {
    /// Cloudflare Workers: billed per request and per CPU millisecond.
    Workers,
    /// The edgevote host on Fargate behind CloudFront, with group commit off
    /// (`forward_outbound = true`: the component sends each vote itself, as on Spin).
    Host,
}

/// Checks a numeric input or price must pass.
#[derive(Debug, Clone, Copy)]
enum Check {
    /// Anything (not a number, or free).
    Any,
    /// A finite number in `min..=max`, or in `(min, max]` when `min_exclusive`.
    Range {
        min: f64,
        min_exclusive: bool,
        max: f64,
    },
}

/// A finite number `> 0` and `<= max`.
const fn positive(max: f64) -> Check {
    Check::Range {
        min: 0.0,
        min_exclusive: true,
        max,
    }
}

/// A finite number in `min..=max`.
const fn between(min: f64, max: f64) -> Check {
    Check::Range {
        min,
        min_exclusive: false,
        max,
    }
}

/// Numbers and words an input can hold, for checking and printing.
trait InputValue {
    /// The value as a number, if it is one and is set.
    fn number(&self) -> Option<f64>;
    /// The value as printed in the assumptions.
    fn text(&self) -> String;
    /// True for whole-number inputs (counts).
    fn integer(&self) -> bool {
        false
    }
}

impl InputValue for f64 {
    fn number(&self) -> Option<f64> {
        Some(*self)
    }
    fn text(&self) -> String {
        num(*self)
    }
}

impl InputValue for u32 {
    fn number(&self) -> Option<f64> {
        Some(f64::from(*self))
    }
    fn integer(&self) -> bool {
        true
    }
    fn text(&self) -> String {
        num(f64::from(*self))
    }
}

impl InputValue for u64 {
    fn number(&self) -> Option<f64> {
        Some(*self as f64)
    }
    fn integer(&self) -> bool {
        true
    }
    fn text(&self) -> String {
        group_digits(&self.to_string())
    }
}

impl<T: InputValue> InputValue for Option<T> {
    fn number(&self) -> Option<f64> {
        self.as_ref().and_then(InputValue::number)
    }
    fn text(&self) -> String {
        self.as_ref()
            .map_or_else(|| "not set".to_owned(), InputValue::text)
    }
    fn integer(&self) -> bool {
        self.as_ref().is_some_and(InputValue::integer)
    }
}

impl InputValue for NaiveEdge {
    fn number(&self) -> Option<f64> {
        None
    }
    fn text(&self) -> String {
        match self {
            NaiveEdge::Workers => "workers".to_owned(),
            NaiveEdge::Host => "host".to_owned(),
        }
    }
}

/// One input as the assumptions list shows it.
struct InputField {
    name: &'static str,
    number: Option<f64>,
    text: String,
    integer: bool,
    unit: &'static str,
    check: Check,
    source: &'static str,
}

/// Declares [`CostInputs`], its defaults, the flags that override it ([`InputFlags`]) and the
/// per-field metadata (unit, check, source of the default) from one list.
macro_rules! cost_inputs {
    ($(
        $(#[doc = $doc:literal])+
        $name:ident: $ty:ty = $default:expr;
        flag $flag:ty; unit $unit:literal; check $check:expr; source $source:literal;
    )+) => {
        /// Every input of the cost model except the prices ([`Prices`]): the workload, the
        /// figures measured by the benchmarks and the sizing rules. Units are in the names.
        #[derive(Debug, Clone, PartialEq, Serialize)]
        pub struct CostInputs {
            $( $(#[doc = $doc])+ pub $name: $ty, )+
        }

        impl Default for CostInputs {
            fn default() -> Self {
                CostInputs { $( $name: $default, )+ }
            }
        }

        /// Command-line overrides of [`CostInputs`]; a flag left out keeps the default.
        #[derive(Debug, Clone, Default, Args)]
        pub struct InputFlags {
            $(
                $(#[doc = $doc])+
                #[arg(long, allow_negative_numbers = true)]
                pub $name: Option<$flag>,
            )+
        }

        impl InputFlags {
            /// Applies the flags that are set to `inputs`; returns the names of those inputs.
            pub fn apply(&self, inputs: &mut CostInputs) -> BTreeSet<String> {
                let mut set = BTreeSet::new();
                $(
                    if let Some(value) = self.$name.clone() {
                        inputs.$name = <$ty>::from(value);
                        set.insert(stringify!($name).to_owned());
                    }
                )+
                set
            }
        }

        impl CostInputs {
            /// Every input with its unit, check and the source of its default.
            fn fields(&self) -> Vec<InputField> {
                vec![$(
                    InputField {
                        name: stringify!($name),
                        number: self.$name.number(),
                        text: self.$name.text(),
                        integer: self.$name.integer(),
                        unit: $unit,
                        check: $check,
                        source: $source,
                    },
                )+]
            }
        }
    };
}

cost_inputs! {
    /// Peak vote rate over all regions, in votes per second (sizes the fleets).
    peak_votes_per_sec: f64 = 250_000.0;
    flag f64; unit "votes/s"; check positive(1e9);
    source "design target (README)";

    /// How long the polls are open, in hours.
    duration_hours: f64 = 12.0;
    flag f64; unit "h"; check positive(8_784.0);
    source "assumed: one polling day";

    /// Average rate divided by peak rate (the load shape); ballots = peak x duration x this.
    average_to_peak: f64 = 0.35;
    flag f64; unit "ratio"; check Check::Range { min: 0.0, min_exclusive: true, max: 1.0 };
    source "assumed load shape";

    /// Number of voters; when set, ballots = voters x ballots per voter instead of the rate.
    voters: Option<u64> = None;
    flag u64; unit "voters"; check between(1.0, 1e11);
    source "not set: ballots come from the rate";

    /// Ballots per voter, re-votes included (used with --voters).
    ballots_per_voter: f64 = 1.05;
    flag f64; unit "ballots"; check between(1.0, 100.0);
    source "assumed: 5% re-vote (as in the collector bench)";

    /// Regions, each with its queue, collectors and a replica of the global table (1..=16).
    regions: u32 = 3;
    flag u32; unit "regions"; check between(1.0, 16.0);
    source "edgevote up default";

    /// Envelopes (votes) per SQS message under group commit; by default estimated from the
    /// group-commit cycle. Measure it as edgevote_edge_votes_committed_total divided by
    /// edgevote_edge_group_commits_total.
    envelopes_per_message: Option<f64> = None;
    flag f64; unit "envelopes"; check between(1.0, 256.0);
    source "not set: estimated from the commit cycle";

    /// Group commit's bound on envelopes per message.
    group_commit_max_envelopes: u32 = 128;
    flag u32; unit "envelopes"; check between(1.0, 256.0);
    source "edge host default [group_commit] max_envelopes";

    /// Group commit's bound on message bytes.
    group_commit_max_message_bytes: f64 = 196_608.0;
    flag f64; unit "bytes"; check positive(1_048_576.0);
    source "edge host default [group_commit] max_message_bytes";

    /// Group commit's longest wait for more envelopes, in milliseconds.
    group_commit_max_wait_ms: f64 = 2.0;
    flag f64; unit "ms"; check between(0.0, 1_000.0);
    source "edge host default [group_commit] max_wait_ms";

    /// Group commits one edge host has in flight at once.
    group_commit_in_flight: u32 = 2;
    flag u32; unit "commits"; check between(1.0, 64.0);
    source "edge host constant (edge/host/src/commit.rs)";

    /// Latency of one SQS send from an edge host, in milliseconds.
    sqs_send_latency_ms: f64 = 20.0;
    flag f64; unit "ms"; check positive(10_000.0);
    source "estimate: no bench measures SQS latency";

    /// Average size of one signed envelope (one vote), in bytes.
    avg_envelope_bytes: f64 = 1_080.0;
    flag f64; unit "bytes"; check positive(196_608.0);
    source "derived: one-vote envelope JWS with a demo-sized token";

    /// Messages one collector ReceiveMessage returns on average (1..=10).
    messages_per_receive: f64 = 10.0;
    flag f64; unit "messages"; check between(1.0, SQS_MAX_RECEIVE);
    source "collector default receive_batch_messages, assuming a backlog";

    /// Receive loops per collector task.
    collector_receivers: u32 = 4;
    flag u32; unit "loops"; check between(1.0, 256.0);
    source "collector default [processing] receivers";

    /// Long-poll wait of each receive, in seconds.
    receive_wait_secs: f64 = 1.0;
    flag f64; unit "s"; check between(1.0, 20.0);
    source "collector default [processing] wait_time_secs";

    /// DynamoDB write request units per ballot, as measured with record calls of
    /// --wcu-measured-ballots-per-call ballots (one conditional put per ballot plus one
    /// live-tally update per call).
    wcu_per_vote: f64 = 1.001;
    flag f64; unit "WRU/ballot"; check positive(400.0);
    source "measured: cargo bench -p edgevote-collector (DynamoDB stand-in)";

    /// Ballots per record call in the measurement of --wcu-per-vote.
    wcu_measured_ballots_per_call: f64 = 1_500.0;
    flag f64; unit "ballots"; check between(1.0, 1e7);
    source "the collector bench's record calls";

    /// DynamoDB read request units per ballot (the voter's strongly consistent Query).
    rcu_per_vote: f64 = 0.95;
    flag f64; unit "RRU/ballot"; check between(0.0, 1_000.0);
    source "measured: cargo bench -p edgevote-collector (DynamoDB stand-in)";

    /// Size of one ballot item as DynamoDB counts it, in bytes.
    ballot_item_bytes: f64 = 336.0;
    flag f64; unit "bytes"; check positive(409_600.0);
    source "derived: ballot item layout (collector/aws dynamo/item.rs), demo-sized ids";

    /// How long the ballots stay in the table, in months.
    storage_months: f64 = 1.0;
    flag f64; unit "months"; check between(0.0, 1_200.0);
    source "assumed";

    /// Full scans of the ballots per region after the close (final tally, audit log).
    final_scans_per_region: u32 = 2;
    flag u32; unit "scans"; check between(0.0, 1_000.0);
    source "assumed: one collector tally and one audit publish";

    /// DynamoDB Streams read request units per ballot.
    stream_read_units_per_vote: f64 = 0.0;
    flag f64; unit "units/ballot"; check between(0.0, 1_000.0);
    source "not used: global tables replicate without billed stream reads";

    /// Votes per second one edge host task sustains.
    edge_votes_per_sec_per_task: f64 = 5_500.0;
    flag f64; unit "votes/s"; check positive(1e7);
    source "measured: cargo bench -p edgevote-edge-host (HTTP, 2 shared cores)";

    /// vCPUs of one edge host task.
    edge_vcpu_per_task: f64 = 2.0;
    flag f64; unit "vCPU"; check positive(16.0);
    source "the edge bench's 2 cores";

    /// Memory of one edge host task, in GB.
    edge_gb_per_task: f64 = 4.0;
    flag f64; unit "GB"; check positive(120.0);
    source "Fargate minimum for 2 vCPU";

    /// Votes per second one collector vCPU sustains.
    collector_votes_per_sec_per_vcpu: f64 = 70_000.0;
    flag f64; unit "votes/s"; check positive(1e7);
    source "measured: cargo bench -p edgevote-collector (embedded, per core)";

    /// vCPUs of one collector task.
    collector_vcpu_per_task: f64 = 1.0;
    flag f64; unit "vCPU"; check positive(16.0);
    source "assumed task size";

    /// Memory of one collector task, in GB.
    collector_gb_per_task: f64 = 2.0;
    flag f64; unit "GB"; check positive(120.0);
    source "Fargate minimum for 1 vCPU";

    /// Capacity over the peak that edge hosts and collectors are sized for (bursts, failover).
    headroom: f64 = 2.0;
    flag f64; unit "x"; check between(1.0, 100.0);
    source "assumed";

    /// Fewest tasks of each kind per region (availability).
    min_tasks_per_region: u32 = 2;
    flag u32; unit "tasks"; check between(0.0, 100_000.0);
    source "assumed";

    /// Bytes CloudFront forwards to the origin per vote (ballot and headers).
    request_bytes_per_vote: f64 = 900.0;
    flag f64; unit "bytes"; check between(0.0, 1e6);
    source "estimate: ballot JSON + HTTP headers";

    /// Bytes CloudFront sends back per vote (receipt and headers).
    response_bytes_per_vote: f64 = 1_000.0;
    flag f64; unit "bytes"; check between(0.0, 1e6);
    source "estimate: 202 with receipt + HTTP headers";

    /// CPU milliseconds of one vote on Cloudflare Workers.
    worker_cpu_ms_per_vote: f64 = 0.5;
    flag f64; unit "ms"; check between(0.0, 30_000.0);
    source "estimate: token check + two Ed25519 signatures in Wasm, not measured";

    /// Bytes of one SendMessage response that leave AWS for a Worker.
    sqs_send_response_bytes: f64 = 400.0;
    flag f64; unit "bytes"; check between(0.0, 1e6);
    source "estimate: SQS JSON response + headers";

    /// Edge of the naive design: `workers` (one message per vote, as Workers and Spin do) or
    /// `host` (the edge hosts with group commit off).
    naive_edge: NaiveEdge = NaiveEdge::Workers;
    flag NaiveEdge; unit ""; check Check::Any;
    source "Workers: the one-message-per-vote edge with a public price";
}

/// Declares [`Prices`], its defaults and the per-field metadata from one list.
macro_rules! prices {
    ($(
        $(#[doc = $doc:literal])+
        $name:ident = $default:expr; check $check:expr; note $note:literal;
    )+) => {
        /// Prices and billing rules: on-demand list prices, us-east-1, 2025 (North America for
        /// CloudFront). A price file overrides any of them; unknown keys are refused.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields, default)]
        pub struct Prices {
            $( $(#[doc = $doc])+ pub $name: f64, )+
        }

        impl Default for Prices {
            fn default() -> Self {
                Prices { $( $name: $default, )+ }
            }
        }

        impl Prices {
            /// Every price: (key, value, check, what it is).
            fn fields(&self) -> Vec<(&'static str, f64, Check, &'static str)> {
                vec![$( (stringify!($name), self.$name, $check, $note), )+]
            }
        }
    };
}

// list prices, us-east-1, 2025; override with --price-file
prices! {
    /// SQS standard queue, USD per million requests (64 KiB payload chunks).
    usd_per_million_sqs_requests = 0.40; check between(0.0, 1e6);
    note "SQS standard requests";

    /// Payload bytes SQS bills as one request.
    sqs_billing_chunk_bytes = 65_536.0; check positive(1e9);
    note "SQS billing rule: each 64 KiB chunk is one request";

    /// DynamoDB on-demand, USD per million write request units.
    usd_per_million_write_request_units = 0.625; check between(0.0, 1e6);
    note "DynamoDB on-demand writes";

    /// DynamoDB global tables, USD per million replicated write request units (per replica).
    usd_per_million_replicated_write_request_units = 0.625; check between(0.0, 1e6);
    note "DynamoDB global table replicated writes";

    /// DynamoDB on-demand, USD per million read request units.
    usd_per_million_read_request_units = 0.125; check between(0.0, 1e6);
    note "DynamoDB on-demand reads";

    /// DynamoDB standard table class storage, USD per GB-month.
    usd_per_gb_month_storage = 0.25; check between(0.0, 1e6);
    note "DynamoDB storage";

    /// Bytes DynamoDB adds to every item for storage billing.
    dynamodb_item_overhead_bytes = 100.0; check between(0.0, 1e6);
    note "DynamoDB billing rule: 100 bytes per item";

    /// DynamoDB Streams, USD per 100,000 read request units.
    usd_per_100k_stream_read_request_units = 0.02; check between(0.0, 1e6);
    note "DynamoDB Streams reads";

    /// Data transfer between AWS regions, USD per GB (global table replication).
    usd_per_gb_inter_region = 0.02; check between(0.0, 1e6);
    note "inter-region data transfer";

    /// CloudFront, USD per 10,000 HTTPS requests (North America).
    usd_per_10k_cloudfront_https_requests = 0.01; check between(0.0, 1e6);
    note "CloudFront HTTPS requests";

    /// CloudFront data transfer out to the internet, USD per GB (first 10 TB, North America).
    usd_per_gb_cloudfront_out = 0.085; check between(0.0, 1e6);
    note "CloudFront transfer out";

    /// CloudFront data transfer to the origin, USD per GB (North America).
    usd_per_gb_cloudfront_to_origin = 0.02; check between(0.0, 1e6);
    note "CloudFront transfer to origin";

    /// Cloudflare Workers (Standard), USD per million requests.
    usd_per_million_worker_requests = 0.30; check between(0.0, 1e6);
    note "Cloudflare Workers requests";

    /// Cloudflare Workers (Standard), USD per million CPU milliseconds.
    usd_per_million_worker_cpu_ms = 0.02; check between(0.0, 1e6);
    note "Cloudflare Workers CPU time";

    /// AWS data transfer out to the internet, USD per GB (first 10 TB).
    usd_per_gb_internet_out = 0.09; check between(0.0, 1e6);
    note "AWS transfer out to the internet";

    /// Fargate (Linux, x86), USD per vCPU-hour.
    usd_per_vcpu_hour_fargate = 0.04048; check between(0.0, 1e6);
    note "Fargate vCPU";

    /// Fargate (Linux, x86), USD per GB-hour of memory.
    usd_per_gb_hour_fargate = 0.004445; check between(0.0, 1e6);
    note "Fargate memory";
}

/// The price file a configuration read, and the keys it set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PriceFile {
    /// Its path as given.
    pub path: String,
    /// The keys it set (the other prices keep their list price).
    pub keys: BTreeSet<String>,
}

/// Everything the model needs, and where each value came from.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CostConfig {
    /// Workload, measured figures and sizing rules.
    pub inputs: CostInputs,
    /// Prices and billing rules.
    pub prices: Prices,
    /// Names of the inputs set on the command line (the others are defaults).
    pub flags_set: BTreeSet<String>,
    /// The price file, if one was read.
    pub price_file: Option<PriceFile>,
}

/// `edgevote cost` arguments.
#[derive(Debug, Args)]
pub struct CostArgs {
    /// Model inputs (boxed: they are many, and the command enum stays small).
    #[command(flatten)]
    pub inputs: Box<InputFlags>,
    /// Prices to use instead of the list prices: a flat TOML file of `key = number` lines
    /// (keys as in the assumptions list); unknown keys are refused.
    #[arg(long)]
    pub price_file: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Prints the cost report of the arguments.
pub fn run(args: CostArgs) -> anyhow::Result<ExitCode> {
    let config = config_of(&args)?;
    let report = estimate(&config).map_err(|e| anyhow!(e))?;
    let text = if args.json {
        format!("{}\n", serde_json::to_string_pretty(&report)?)
    } else {
        render(&report)
    };
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        // A reader that stopped early (`| head`) is not an error.
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            return Err(e).context("writing the report");
        }
        _ => {}
    }
    Ok(ExitCode::SUCCESS)
}

/// The configuration the arguments describe (defaults, then flags, then the price file).
pub fn config_of(args: &CostArgs) -> anyhow::Result<CostConfig> {
    let mut inputs = CostInputs::default();
    let flags_set = args.inputs.apply(&mut inputs);
    if flags_set.contains("voters") && flags_set.contains("average_to_peak") {
        bail!(
            "--voters and --average-to-peak exclude each other (with --voters the ballots come from the voters)"
        );
    }
    if flags_set.contains("ballots_per_voter") && !flags_set.contains("voters") {
        bail!("--ballots-per-voter needs --voters");
    }
    let (prices, price_file) = match &args.price_file {
        None => (Prices::default(), None),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading price file {}", path.display()))?;
            let (prices, keys) = parse_price_file(&text)
                .map_err(|e| anyhow!("price file {}: {e}", path.display()))?;
            let file = PriceFile {
                path: path.display().to_string(),
                keys,
            };
            (prices, Some(file))
        }
    };
    let config = CostConfig {
        inputs,
        prices,
        flags_set,
        price_file,
    };
    validate(&config).map_err(|e| anyhow!(e))?;
    Ok(config)
}

/// Reads a price file: flat TOML, one `key = number` per line, `#` comments. Returns the prices
/// (list prices for keys left out) and the keys it set. Unknown keys are refused.
pub fn parse_price_file(text: &str) -> Result<(Prices, BTreeSet<String>), String> {
    let mut map = serde_json::Map::new();
    for (index, raw) in text.lines().enumerate() {
        let line_no = index + 1;
        let line = raw.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        if line.starts_with('[') {
            return Err(format!(
                "line {line_no}: a price file has no tables, only `key = number` lines"
            ));
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!("line {line_no}: expected `key = number`"));
        };
        let (key, value) = (key.trim(), value.trim());
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(format!("line {line_no}: {key:?} is not a bare key"));
        }
        let number = value
            .replace('_', "")
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .ok_or_else(|| format!("line {line_no}: {key} = {value} is not a finite number"))?;
        if map
            .insert(key.to_owned(), serde_json::Value::Number(number))
            .is_some()
        {
            return Err(format!("line {line_no}: {key} is set twice"));
        }
    }
    let keys = map.keys().cloned().collect();
    let prices =
        serde_json::from_value(serde_json::Value::Object(map)).map_err(|e| e.to_string())?;
    Ok((prices, keys))
}

/// The command-line flag of an input.
fn flag_of(name: &str) -> String {
    format!("--{}", name.replace('_', "-"))
}

/// Checks `value` against `check`; the error starts with `what`.
fn check_value(what: &str, value: f64, integer: bool, check: Check) -> Result<(), String> {
    let Check::Range {
        min,
        min_exclusive,
        max,
    } = check
    else {
        return Ok(());
    };
    let low_ok = if min_exclusive {
        value > min
    } else {
        value >= min
    };
    if value.is_finite() && low_ok && value <= max {
        return Ok(());
    }
    let range = if min_exclusive {
        format!("greater than {} and at most {}", num(min), num(max))
    } else {
        format!("between {} and {}", num(min), num(max))
    };
    let kind = if integer {
        "an integer"
    } else {
        "a finite number"
    };
    Err(format!("{what} must be {kind} {range} (got {value})"))
}

/// Checks every input and price, and how they fit together. Errors name the flag or the
/// price file key.
pub fn validate(config: &CostConfig) -> Result<(), String> {
    let inputs = &config.inputs;
    for field in inputs.fields() {
        if let Some(value) = field.number {
            check_value(&flag_of(field.name), value, field.integer, field.check)?;
        }
    }
    for (key, value, check, _) in config.prices.fields() {
        let what = match &config.price_file {
            Some(file) if file.keys.contains(key) => format!("price file {}: {key}", file.path),
            _ => format!("price {key}"),
        };
        check_value(&what, value, false, check)?;
    }
    if inputs.avg_envelope_bytes + 1.0 > inputs.group_commit_max_message_bytes {
        return Err(format!(
            "--avg-envelope-bytes {} does not fit in a message of --group-commit-max-message-bytes {}",
            num(inputs.avg_envelope_bytes),
            num(inputs.group_commit_max_message_bytes)
        ));
    }
    if let Some(fill) = inputs.envelopes_per_message {
        let cap = envelopes_cap(inputs);
        if fill > cap {
            return Err(format!(
                "--envelopes-per-message {} exceeds what a message holds: {} envelopes of {} bytes \
                 (--group-commit-max-envelopes {}, --group-commit-max-message-bytes {})",
                num(fill),
                num(cap),
                num(inputs.avg_envelope_bytes),
                inputs.group_commit_max_envelopes,
                num(inputs.group_commit_max_message_bytes)
            ));
        }
    }
    if let Some(voters) = inputs.voters {
        let average = voters as f64 * inputs.ballots_per_voter / (inputs.duration_hours * 3600.0);
        if average > inputs.peak_votes_per_sec {
            return Err(format!(
                "--voters {voters} x --ballots-per-voter {} in --duration-hours {} is {} votes/s on \
                 average, more than --peak-votes-per-sec {}",
                num(inputs.ballots_per_voter),
                num(inputs.duration_hours),
                num(average),
                num(inputs.peak_votes_per_sec)
            ));
        }
    }
    Ok(())
}

/// Most envelopes one message can hold, by count and by bytes (one newline between envelopes).
fn envelopes_cap(inputs: &CostInputs) -> f64 {
    let by_bytes =
        ((inputs.group_commit_max_message_bytes + 1.0) / (inputs.avg_envelope_bytes + 1.0)).floor();
    f64::from(inputs.group_commit_max_envelopes)
        .min(by_bytes)
        .max(1.0)
}

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

/// Derives the quantities of [`Derived`] (no prices involved).
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
    let edge_tasks = (peak_per_region * inputs.headroom / inputs.edge_votes_per_sec_per_task)
        .ceil()
        .max(min_tasks)
        .max(1.0);
    let collector_vcpus =
        peak_per_region * inputs.headroom / inputs.collector_votes_per_sec_per_vcpu;
    let collector_tasks = (collector_vcpus / inputs.collector_vcpu_per_task)
        .ceil()
        .max(min_tasks)
        .max(1.0);
    let per_edge_task = average_votes_per_sec / regions / edge_tasks;
    let commit_cycle_ms = inputs
        .group_commit_max_wait_ms
        .max(inputs.sqs_send_latency_ms / f64::from(inputs.group_commit_in_flight));
    let cap = envelopes_cap(inputs);
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

/// Sums per part of the system.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Subtotals {
    /// SQS.
    pub sqs: f64,
    /// DynamoDB.
    pub dynamodb: f64,
    /// Edge.
    pub edge: f64,
    /// Collectors.
    pub collectors: f64,
    /// Everything.
    pub total: f64,
}

impl Subtotals {
    fn of(lines: &[CostLine], value: impl Fn(&CostLine) -> f64) -> Self {
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
        Subtotals {
            sqs,
            dynamodb,
            edge,
            collectors,
            total: sqs + dynamodb + edge + collectors,
        }
    }

    fn get(&self, group: Option<Group>) -> f64 {
        match group {
            Some(Group::Sqs) => self.sqs,
            Some(Group::Dynamodb) => self.dynamodb,
            Some(Group::Edge) => self.edge,
            Some(Group::Collectors) => self.collectors,
            None => self.total,
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

/// Naive cost divided by group-commit cost, per part (`None` when group commit costs nothing).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Ratios {
    /// SQS.
    pub sqs: Option<f64>,
    /// DynamoDB.
    pub dynamodb: Option<f64>,
    /// Edge.
    pub edge: Option<f64>,
    /// Collectors.
    pub collectors: Option<f64>,
    /// Everything.
    pub total: Option<f64>,
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

/// Prices one design.
pub fn design_cost(config: &CostConfig, derived: &Derived, design: Design) -> DesignCost {
    let (inputs, p) = (&config.inputs, &config.prices);
    let ballots = derived.ballots;
    let regions = f64::from(inputs.regions);
    let hours = inputs.duration_hours;
    let (sqs, wcu, edge) = match design {
        Design::GroupCommit => (
            &derived.group_commit_sqs,
            derived.group_commit_wcu_per_vote,
            None,
        ),
        Design::Naive => (
            &derived.naive_sqs,
            derived.naive_wcu_per_vote,
            Some(inputs.naive_edge),
        ),
    };
    let mut lines = Vec::new();
    let mut add = |group, item, quantity: f64, unit, usd_per_unit: f64| {
        let usd_total = quantity * usd_per_unit;
        lines.push(CostLine {
            group,
            item,
            quantity,
            unit,
            usd_total,
            usd_per_region: usd_total / regions,
            usd_per_million_votes: usd_total / ballots * 1e6,
        });
    };
    let (q, db, e) = (Group::Sqs, Group::Dynamodb, Group::Edge);
    let per_million = |usd: f64| usd / 1e6;
    let request = per_million(p.usd_per_million_sqs_requests);
    let send = match design {
        Design::GroupCommit => "SQS SendMessageBatch",
        Design::Naive => "SQS SendMessage",
    };
    add(q, send, ballots * sqs.send, "requests", request);
    add(
        q,
        "SQS ReceiveMessage",
        ballots * sqs.receive,
        "requests",
        request,
    );
    add(
        q,
        "SQS DeleteMessageBatch",
        ballots * sqs.delete,
        "requests",
        request,
    );
    let polls = derived.empty_polls;
    add(
        q,
        "SQS empty long polls (upper bound)",
        polls,
        "requests",
        request,
    );

    let (item_gb, stored_gb) = (
        inputs.ballot_item_bytes / BYTES_PER_GB,
        (inputs.ballot_item_bytes + p.dynamodb_item_overhead_bytes) / BYTES_PER_GB,
    );
    let scans = f64::from(inputs.final_scans_per_region) * regions;
    let read = per_million(p.usd_per_million_read_request_units);
    let write = per_million(p.usd_per_million_write_request_units);
    let replicated = per_million(p.usd_per_million_replicated_write_request_units);
    add(db, "DynamoDB writes", ballots * wcu, "WRU", write);
    let others = regions - 1.0;
    add(
        db,
        "DynamoDB replicated writes",
        ballots * wcu * others,
        "rWRU",
        replicated,
    );
    add(
        db,
        "DynamoDB reads (voter queries)",
        ballots * inputs.rcu_per_vote,
        "RRU",
        read,
    );
    let scanned = ballots * inputs.ballot_item_bytes / RRU_BYTES * scans;
    add(db, "DynamoDB final scans", scanned, "RRU", read);
    let gb_months = ballots * stored_gb * regions * inputs.storage_months;
    let storage = p.usd_per_gb_month_storage;
    add(
        db,
        "DynamoDB storage (every replica)",
        gb_months,
        "GB-month",
        storage,
    );
    let stream_units = ballots * inputs.stream_read_units_per_vote;
    let stream = p.usd_per_100k_stream_read_request_units / 1e5;
    add(db, "DynamoDB Streams reads", stream_units, "units", stream);
    let replicated_gb = ballots * item_gb * others;
    let transfer = p.usd_per_gb_inter_region;
    add(
        db,
        "replication transfer (inter-region)",
        replicated_gb,
        "GB",
        transfer,
    );

    let fargate =
        |vcpu: f64, gb: f64| vcpu * p.usd_per_vcpu_hour_fargate + gb * p.usd_per_gb_hour_fargate;
    if edge == Some(NaiveEdge::Workers) {
        let requests = per_million(p.usd_per_million_worker_requests);
        add(e, "Workers requests", ballots, "requests", requests);
        let cpu_ms = ballots * inputs.worker_cpu_ms_per_vote;
        let cpu = per_million(p.usd_per_million_worker_cpu_ms);
        add(e, "Workers CPU", cpu_ms, "CPU-ms", cpu);
        let egress_gb = ballots * inputs.sqs_send_response_bytes / BYTES_PER_GB;
        let egress = p.usd_per_gb_internet_out;
        add(
            e,
            "SQS responses to Workers (AWS egress)",
            egress_gb,
            "GB",
            egress,
        );
    } else {
        let requests = p.usd_per_10k_cloudfront_https_requests / 1e4;
        add(
            e,
            "CloudFront HTTPS requests",
            ballots,
            "requests",
            requests,
        );
        let out_gb = ballots * inputs.response_bytes_per_vote / BYTES_PER_GB;
        add(
            e,
            "CloudFront transfer out",
            out_gb,
            "GB",
            p.usd_per_gb_cloudfront_out,
        );
        let origin_gb = ballots * inputs.request_bytes_per_vote / BYTES_PER_GB;
        let origin = p.usd_per_gb_cloudfront_to_origin;
        add(e, "CloudFront transfer to origin", origin_gb, "GB", origin);
        let task_hours = derived.edge_tasks_per_region * regions * hours;
        let task = fargate(inputs.edge_vcpu_per_task, inputs.edge_gb_per_task);
        add(e, "edge hosts (Fargate)", task_hours, "task-hours", task);
    }
    let task_hours = derived.collector_tasks_per_region * regions * hours;
    let task = fargate(inputs.collector_vcpu_per_task, inputs.collector_gb_per_task);
    add(
        Group::Collectors,
        "collectors (Fargate)",
        task_hours,
        "task-hours",
        task,
    );

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
const NOT_MODELLED: [&str; 7] = [
    "free tiers and volume discounts (1M SQS requests, 25 GB of storage, CloudFront above 10 TB)",
    "a load balancer between CloudFront and the edge hosts, NAT gateways (public subnets assumed)",
    "refused, rate-limited (429) and retried requests, reads of manifests, keys and results",
    "redelivered messages (each redelivered ballot costs one more WRU) and dead letters",
    "autoscaling: fleets are sized for the peak and run the whole duration",
    "Spin hosting, the Workers monthly plan fee, CloudWatch, KMS, support plans and taxes",
    "the naive design's collectors get the same votes/s per vCPU, with many more SQS calls per vote",
];

/// Estimates both designs for a valid configuration.
pub fn estimate(config: &CostConfig) -> Result<CostReport, String> {
    validate(config)?;
    let derived = derive(&config.inputs, &config.prices);
    let group_commit = design_cost(config, &derived, Design::GroupCommit);
    let naive = design_cost(config, &derived, Design::Naive);
    let ratio = |g: f64, n: f64| (g > 0.0).then(|| n / g);
    let (g, n) = (&group_commit.usd_total, &naive.usd_total);
    let naive_to_group_ratio = Ratios {
        sqs: ratio(g.sqs, n.sqs),
        dynamodb: ratio(g.dynamodb, n.dynamodb),
        edge: ratio(g.edge, n.edge),
        collectors: ratio(g.collectors, n.collectors),
        total: ratio(g.total, n.total),
    };
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

/// Inserts thousands separators into the integer part of a decimal number.
fn group_digits(text: &str) -> String {
    let (sign, rest) = match text.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", text),
    };
    let (int, frac) = match rest.split_once('.') {
        Some((int, frac)) => (int, Some(frac)),
        None => (rest, None),
    };
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    match frac {
        Some(frac) => format!("{sign}{grouped}.{frac}"),
        None => format!("{sign}{grouped}"),
    }
}

/// A number with about five significant digits, thousands grouped, no trailing zeros.
fn num(x: f64) -> String {
    if !x.is_finite() {
        return x.to_string();
    }
    if x.abs() >= 1000.0 || x == x.trunc() {
        return group_digits(&format!("{x:.0}"));
    }
    let magnitude = x.abs().log10().floor();
    let decimals = (4.0 - magnitude).clamp(0.0, 9.0) as usize;
    let text = format!("{x:.decimals$}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    group_digits(text)
}

/// US dollars with cents, thousands grouped.
fn usd(x: f64) -> String {
    group_digits(&format!("{x:.2}"))
}

/// A ratio as `12.3x`, or `-` when undefined.
fn times(ratio: Option<f64>) -> String {
    ratio.map_or_else(
        || "-".to_owned(),
        |r| {
            if r < 10.0 {
                format!("{r:.2}x")
            } else {
                format!("{r:.1}x")
            }
        },
    )
}

/// One design's table.
fn render_design(out: &mut String, design: &DesignCost) {
    let _ = writeln!(out, "{}", capitalized(&design.description));
    let _ = writeln!(
        out,
        "  {:<38} {:>17} {:<10} {:>12} {:>12} {:>11}",
        "item", "quantity", "unit", "USD/region", "USD total", "USD/M votes"
    );
    for line in &design.lines {
        let _ = writeln!(
            out,
            "  {:<38} {:>17} {:<10} {:>12} {:>12} {:>11.4}",
            line.item,
            num(line.quantity),
            line.unit,
            usd(line.usd_per_region),
            usd(line.usd_total),
            line.usd_per_million_votes
        );
    }
    let _ = writeln!(
        out,
        "  {:<38} {:>17} {:<10} {:>12} {:>12} {:>11.4}",
        "total",
        "",
        "",
        usd(design.usd_per_region.total),
        usd(design.usd_total.total),
        design.usd_per_million_votes.total
    );
    out.push('\n');
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

/// One labelled fact of "how the figures come about", continuation lines indented.
fn fact(out: &mut String, label: &str, lines: &[String]) {
    for (n, line) in lines.iter().enumerate() {
        let label = if n == 0 { label } else { "" };
        let _ = writeln!(out, "  {label:<13} {line}");
    }
}

fn sqs_breakdown(sqs: &SqsPerVote) -> String {
    format!(
        "{} (send {} + receive {} + delete {})",
        num(sqs.total),
        num(sqs.send),
        num(sqs.receive),
        num(sqs.delete)
    )
}

/// The report for people: both designs, the comparison, how the figures come about, and every
/// assumption with its source.
pub fn render(report: &CostReport) -> String {
    let (i, d) = (&report.inputs, &report.derived);
    let regions = f64::from(i.regions);
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

    let _ = writeln!(
        out,
        "Group commit vs naive, USD per million votes (same ratios for totals and per region)"
    );
    let _ = writeln!(
        out,
        "  {:<12} {:>14} {:>14} {:>12}",
        "part", "group commit", "naive", "naive/group"
    );
    let r = &report.naive_to_group_ratio;
    let parts = [
        ("SQS", Some(Group::Sqs), r.sqs),
        ("DynamoDB", Some(Group::Dynamodb), r.dynamodb),
        ("edge", Some(Group::Edge), r.edge),
        ("collectors", Some(Group::Collectors), r.collectors),
        ("total", None, r.total),
    ];
    for (label, group, ratio) in parts {
        let _ = writeln!(
            out,
            "  {:<12} {:>14.4} {:>14.4} {:>12}",
            label,
            report.group_commit.usd_per_million_votes.get(group),
            report.naive.usd_per_million_votes.get(group),
            times(ratio)
        );
    }
    let _ = writeln!(
        out,
        "  SQS requests per vote, group commit: {}\n  SQS requests per vote, naive:        {}\n",
        sqs_breakdown(&d.group_commit_sqs),
        sqs_breakdown(&d.naive_sqs)
    );

    let _ = writeln!(out, "How the figures come about");
    fact(
        &mut out,
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
        &mut out,
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
    fact(&mut out, "packing", &packing);
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
        &mut out,
        "SQS billing",
        &[
            billing("group commit", &d.group_commit_sqs),
            billing("naive", &d.naive_sqs),
            "one DeleteMessageBatch per receive; every 64 KiB of payload is one request".to_owned(),
        ],
    );
    fact(
        &mut out,
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
        &mut out,
        "empty polls",
        &[format!(
            "{} receive loops per region polling every {} s all election long (an upper bound)",
            num(d.collector_tasks_per_region * f64::from(i.collector_receivers)),
            num(i.receive_wait_secs)
        )],
    );
    out.push('\n');

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
        let _ = writeln!(
            out,
            "  {:<52} {:<22} {}",
            if a.set_with == "--price-file" {
                a.name.clone()
            } else {
                a.set_with.clone()
            },
            value,
            a.source
        );
    }
    let _ = writeln!(out, "\nLeft out or simplified:");
    for item in &report.not_modelled {
        let _ = writeln!(out, "  - {item}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn validation_names_the_flag() {
        let mut config = CostConfig::default();
        config.inputs.regions = 0;
        assert!(validate(&config).unwrap_err().contains("--regions"));
        let mut config = CostConfig::default();
        config.inputs.peak_votes_per_sec = f64::NAN;
        assert!(
            validate(&config)
                .unwrap_err()
                .contains("--peak-votes-per-sec")
        );
        let mut config = CostConfig::default();
        config.inputs.envelopes_per_message = Some(200.0);
        assert!(
            validate(&config)
                .unwrap_err()
                .contains("--envelopes-per-message")
        );
        let mut config = CostConfig::default();
        config.inputs.voters = Some(20_000_000_000);
        assert!(validate(&config).unwrap_err().contains("--voters"));
    }

    #[test]
    fn price_file_is_flat_and_strict() {
        let (prices, keys) =
            parse_price_file("# cheaper queue\nusd_per_million_sqs_requests = 0.2 # note\n\n")
                .unwrap();
        assert!(close(prices.usd_per_million_sqs_requests, 0.2));
        assert!(close(prices.usd_per_gb_month_storage, 0.25));
        assert_eq!(keys.len(), 1);
        let unknown = parse_price_file("usd_per_bogus = 1").unwrap_err();
        assert!(unknown.contains("usd_per_bogus"), "{unknown}");
        assert!(parse_price_file("[prices]").is_err());
        assert!(parse_price_file("usd_per_gb_hour_fargate = \"x\"").is_err());
        assert!(
            parse_price_file("usd_per_gb_hour_fargate = 1\nusd_per_gb_hour_fargate = 2").is_err()
        );
    }

    #[test]
    fn numbers_print_readably() {
        assert_eq!(num(1_234_567.0), "1,234,567");
        assert_eq!(num(0.004445), "0.004445");
        assert_eq!(num(1.001), "1.001");
        assert_eq!(num(0.35), "0.35");
        assert_eq!(usd(12_345.678), "12,345.68");
    }
}

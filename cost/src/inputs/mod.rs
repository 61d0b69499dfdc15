//! The inputs of the model: the workload, the figures measured by the benchmarks and the sizing
//! rules ([`CostInputs`]), each with its default, unit, check and the source of its default; the
//! prices ([`Prices`]) and the price file that overrides them; and [`validate`], which checks
//! them all.
//!
//! Every input is one entry of one table, [`cost_inputs!`](crate::cost_inputs): this crate
//! builds [`CostInputs`] and its metadata from it, and a command line builds its flags from it.

mod prices;

use std::collections::BTreeSet;

use serde::Serialize;

pub use prices::{PriceFile, Prices, parse_price_file};

use crate::error::CostError;
use crate::text::{flag_of, group_digits, num};

/// Most messages one SQS `ReceiveMessage` returns.
pub const SQS_MAX_RECEIVE: f64 = 10.0;

/// Where the naive design's edge runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NaiveEdge {
    /// Cloudflare Workers: billed per request and per CPU millisecond.
    Workers,
    /// The edgevote host on Fargate behind CloudFront, with group commit off
    /// (`forward_outbound = true`: the component sends each vote itself, as on Spin).
    Host,
}

/// The check a numeric input or price must pass.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Check {
    /// Anything (not a number, or free).
    Any,
    /// A finite number in `min..=max`, or in `(min, max]` when `min_exclusive`.
    Range {
        /// The lower bound.
        min: f64,
        /// True when the lower bound itself is refused.
        min_exclusive: bool,
        /// The upper bound (allowed).
        max: f64,
    },
}

/// A finite number `> min` and `<= max`.
pub const fn above(min: f64, max: f64) -> Check {
    Check::Range {
        min,
        min_exclusive: true,
        max,
    }
}

/// A finite number in `min..=max`.
pub const fn between(min: f64, max: f64) -> Check {
    Check::Range {
        min,
        min_exclusive: false,
        max,
    }
}

impl Check {
    /// Checks `value`; the error starts with `what` and says `an integer` when `integer`.
    fn value(self, what: &str, value: f64, integer: bool) -> Result<(), CostError> {
        let Check::Range {
            min,
            min_exclusive,
            max,
        } = self
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
        Err(CostError::Invalid(format!(
            "{what} must be {kind} {range} (got {value})"
        )))
    }
}

/// The values an input can hold: numbers and words, for checking and printing.
pub(crate) trait InputValue {
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
    fn text(&self) -> String {
        num(f64::from(*self))
    }
    fn integer(&self) -> bool {
        true
    }
}

impl InputValue for u64 {
    fn number(&self) -> Option<f64> {
        Some(*self as f64)
    }
    fn text(&self) -> String {
        group_digits(&self.to_string())
    }
    fn integer(&self) -> bool {
        true
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

/// One input with its value and metadata, as checks and the assumptions list see it.
#[derive(Debug, Clone, PartialEq)]
pub struct InputField {
    /// The input's name (a [`CostInputs`] field; the flag is `--` and the name in kebab case).
    pub name: &'static str,
    /// The value as a number, if it is one and is set.
    pub number: Option<f64>,
    /// The value as printed.
    pub text: String,
    /// True for whole-number inputs.
    pub integer: bool,
    /// Unit of the value.
    pub unit: &'static str,
    /// The check the value must pass.
    pub check: Check,
    /// Where the default comes from.
    pub source: &'static str,
}

/// Passes the table of every input of the cost model to the macro `$callback`.
///
/// An entry is the input's doc comment (the flag's help), then
/// `name: type = default, "unit", check, "source of the default";`. This crate builds
/// [`CostInputs`](crate::CostInputs), its [`Default`] and its [`fields`](crate::CostInputs::fields)
/// from it; a command line builds one flag per entry from the same table, so an input is added
/// in one place. Types and defaults name this crate's items with `$crate`; `check` expressions
/// are meant for this crate (`above`, `between` and [`Check`](crate::Check)).
#[macro_export]
macro_rules! cost_inputs {
    ($callback:ident) => { $callback! {
        /// Peak vote rate over all regions, in votes per second (sizes the fleets).
        peak_votes_per_sec: f64 = 250_000.0, "votes/s", above(0.0, 1e9), "design target (README)";
        /// How long the polls are open, in hours.
        duration_hours: f64 = 12.0, "h", above(0.0, 8_784.0), "assumed: one polling day";
        /// Average rate divided by peak rate (the load shape); ballots = peak x duration x this.
        average_to_peak: f64 = 0.35, "ratio", above(0.0, 1.0), "assumed load shape";
        /// Number of voters; when set, ballots = voters x ballots per voter instead of the rate.
        voters: Option<u64> = None, "voters", between(1.0, 1e11), "not set: ballots come from the rate";
        /// Ballots per voter, re-votes included (used with --voters).
        ballots_per_voter: f64 = 1.05, "ballots", between(1.0, 100.0), "assumed: 5% re-vote (as in the collector bench)";
        /// Regions, each with its queue, collectors and a replica of the global table (1..=16).
        regions: u32 = 3, "regions", between(1.0, 16.0), "edgevote up default";
        /// Envelopes (votes) per SQS message under group commit; by default estimated from the
        /// group-commit cycle. Measure it as edgevote_edge_votes_committed_total divided by
        /// edgevote_edge_group_commits_total.
        envelopes_per_message: Option<f64> = None, "envelopes", between(1.0, 256.0), "not set: estimated from the commit cycle";
        /// Group commit's bound on votes per message (each its own envelope under component sealing).
        group_commit_max_votes: u32 = 128, "votes", between(1.0, 256.0), "edge host default [group_commit] max_votes";
        /// Group commit's bound on message bytes.
        group_commit_max_message_bytes: f64 = 196_608.0, "bytes", above(0.0, 1_048_576.0), "edge host default [group_commit] max_message_bytes";
        /// Group commit's longest wait for more envelopes, in milliseconds.
        group_commit_max_wait_ms: f64 = 2.0, "ms", between(0.0, 1_000.0), "edge host default [group_commit] max_wait_ms";
        /// Group commits one edge host has in flight at once.
        group_commit_in_flight: u32 = 2, "commits", between(1.0, 64.0), "edge host constant (edge/host/src/commit.rs)";
        /// Latency of one SQS send from an edge host, in milliseconds.
        sqs_send_latency_ms: f64 = 20.0, "ms", above(0.0, 10_000.0), "estimate: no bench measures SQS latency";
        /// Average size of one signed envelope (one vote), in bytes.
        avg_envelope_bytes: f64 = 1_080.0, "bytes", above(0.0, 196_608.0), "derived: one-vote envelope JWS with a demo-sized token";
        /// Messages one collector ReceiveMessage returns on average (1..=10).
        messages_per_receive: f64 = 10.0, "messages", between(1.0, SQS_MAX_RECEIVE), "collector default receive_batch_messages, assuming a backlog";
        /// Receive loops per collector task.
        collector_receivers: u32 = 4, "loops", between(1.0, 256.0), "collector default [processing] receivers";
        /// Long-poll wait of each receive, in seconds.
        receive_wait_secs: f64 = 1.0, "s", between(1.0, 20.0), "collector default [processing] wait_time_secs";
        /// DynamoDB write request units per ballot, as measured with record calls of
        /// --wcu-measured-ballots-per-call ballots (one conditional put per ballot plus one
        /// live-tally update per call).
        wcu_per_vote: f64 = 1.001, "WRU/ballot", above(0.0, 400.0), "measured: cargo bench -p edgevote-collector (DynamoDB stand-in)";
        /// Ballots per record call in the measurement of --wcu-per-vote.
        wcu_measured_ballots_per_call: f64 = 1_500.0, "ballots", between(1.0, 1e7), "the collector bench's record calls";
        /// DynamoDB read request units per ballot (the voter's strongly consistent Query).
        rcu_per_vote: f64 = 0.95, "RRU/ballot", between(0.0, 1_000.0), "measured: cargo bench -p edgevote-collector (DynamoDB stand-in)";
        /// Size of one ballot item as DynamoDB counts it, in bytes.
        ballot_item_bytes: f64 = 336.0, "bytes", above(0.0, 409_600.0), "derived: ballot item layout (collector/aws dynamo/item.rs), demo-sized ids";
        /// How long the ballots stay in the table, in months.
        storage_months: f64 = 1.0, "months", between(0.0, 1_200.0), "assumed";
        /// Full scans of the ballots per region after the close (final tally, audit log).
        final_scans_per_region: u32 = 2, "scans", between(0.0, 1_000.0), "assumed: one collector tally and one audit publish";
        /// DynamoDB Streams read request units per ballot.
        stream_read_units_per_vote: f64 = 0.0, "units/ballot", between(0.0, 1_000.0), "not used: global tables replicate without billed stream reads";
        /// Votes per second one edge host task sustains.
        edge_votes_per_sec_per_task: f64 = 5_500.0, "votes/s", above(0.0, 1e7), "measured: cargo bench -p edgevote-edge-host (HTTP, 2 shared cores)";
        /// vCPUs of one edge host task.
        edge_vcpu_per_task: f64 = 2.0, "vCPU", above(0.0, 16.0), "the edge bench's 2 cores";
        /// Memory of one edge host task, in GB.
        edge_gb_per_task: f64 = 4.0, "GB", above(0.0, 120.0), "Fargate minimum for 2 vCPU";
        /// Votes per second one collector vCPU sustains.
        collector_votes_per_sec_per_vcpu: f64 = 70_000.0, "votes/s", above(0.0, 1e7), "measured: cargo bench -p edgevote-collector (embedded, per core)";
        /// vCPUs of one collector task.
        collector_vcpu_per_task: f64 = 1.0, "vCPU", above(0.0, 16.0), "assumed task size";
        /// Memory of one collector task, in GB.
        collector_gb_per_task: f64 = 2.0, "GB", above(0.0, 120.0), "Fargate minimum for 1 vCPU";
        /// Capacity over the peak that edge hosts and collectors are sized for (bursts, failover).
        headroom: f64 = 2.0, "x", between(1.0, 100.0), "assumed";
        /// Fewest tasks of each kind per region (availability).
        min_tasks_per_region: u32 = 2, "tasks", between(0.0, 100_000.0), "assumed";
        /// Bytes CloudFront forwards to the origin per vote (ballot and headers).
        request_bytes_per_vote: f64 = 900.0, "bytes", between(0.0, 1e6), "estimate: ballot JSON + HTTP headers";
        /// Bytes CloudFront sends back per vote (receipt and headers).
        response_bytes_per_vote: f64 = 1_000.0, "bytes", between(0.0, 1e6), "estimate: 202 with receipt + HTTP headers";
        /// CPU milliseconds of one vote on Cloudflare Workers.
        worker_cpu_ms_per_vote: f64 = 1.5, "ms", between(0.0, 30_000.0), "measured: edge/worker under workerd, one vote at a time, 2 shared cores (edge/worker/README.md); 0.8 with 64 votes at once";
        /// Bytes of one SendMessage response that leave AWS for a Worker.
        sqs_send_response_bytes: f64 = 400.0, "bytes", between(0.0, 1e6), "estimate: SQS JSON response + headers";
        /// Edge of the naive design: `workers` (one message per vote, as Spin does and a Worker
        /// isolate without concurrent votes) or
        /// `host` (the edge hosts with group commit off).
        naive_edge: $crate::NaiveEdge = $crate::NaiveEdge::Workers, "", Check::Any, "Workers: the one-message-per-vote edge with a public price";
    } };
}

/// Declares [`CostInputs`], its default and its metadata from the entries of [`cost_inputs!`].
macro_rules! declare_inputs {
    ($(
        $(#[doc = $doc:literal])+
        $name:ident: $ty:ty = $default:expr, $unit:literal, $check:expr, $source:literal;
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

        impl CostInputs {
            /// Every input with its value, unit, check and the source of its default, in the
            /// order of the table.
            pub fn fields(&self) -> Vec<InputField> {
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

cost_inputs!(declare_inputs);

impl CostInputs {
    /// Most envelopes one message can hold, by count and by bytes (one newline between
    /// envelopes).
    pub fn envelopes_cap(&self) -> f64 {
        let by_bytes =
            ((self.group_commit_max_message_bytes + 1.0) / (self.avg_envelope_bytes + 1.0)).floor();
        f64::from(self.group_commit_max_votes)
            .min(by_bytes)
            .max(1.0)
    }
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

impl CostConfig {
    /// The inputs, of which those named in `flags_set` were set on the command line, at list
    /// prices. Refuses inputs set together that exclude each other or need one another.
    pub fn new(inputs: CostInputs, flags_set: BTreeSet<String>) -> Result<Self, CostError> {
        if flags_set.contains("voters") && flags_set.contains("average_to_peak") {
            return Err(CostError::Flags(
                "--voters and --average-to-peak exclude each other (with --voters the ballots come from the voters)".to_owned(),
            ));
        }
        if flags_set.contains("ballots_per_voter") && !flags_set.contains("voters") {
            return Err(CostError::Flags(
                "--ballots-per-voter needs --voters".to_owned(),
            ));
        }
        Ok(CostConfig {
            inputs,
            prices: Prices::default(),
            flags_set,
            price_file: None,
        })
    }

    /// The same configuration with the prices of a price file: `text` is its content and
    /// `path` how to name it (the keys it sets name it as their source).
    pub fn with_price_file(self, path: impl Into<String>, text: &str) -> Result<Self, CostError> {
        let path = path.into();
        match parse_price_file(text) {
            Ok((prices, keys)) => Ok(CostConfig {
                prices,
                price_file: Some(PriceFile { path, keys }),
                ..self
            }),
            Err(error) => Err(CostError::PriceFile { path, error }),
        }
    }
}

/// Checks every input and price, and how they fit together. Errors name the flag or the
/// price file key.
pub fn validate(config: &CostConfig) -> Result<(), CostError> {
    let inputs = &config.inputs;
    for field in inputs.fields() {
        if let Some(value) = field.number {
            field
                .check
                .value(&flag_of(field.name), value, field.integer)?;
        }
    }
    for (key, value, check, _) in config.prices.fields() {
        let what = match &config.price_file {
            Some(file) if file.keys.contains(key) => format!("price file {}: {key}", file.path),
            _ => format!("price {key}"),
        };
        check.value(&what, value, false)?;
    }
    if inputs.avg_envelope_bytes + 1.0 > inputs.group_commit_max_message_bytes {
        return Err(CostError::Invalid(format!(
            "--avg-envelope-bytes {} does not fit in a message of --group-commit-max-message-bytes {}",
            num(inputs.avg_envelope_bytes),
            num(inputs.group_commit_max_message_bytes)
        )));
    }
    if let Some(fill) = inputs.envelopes_per_message {
        let cap = inputs.envelopes_cap();
        if fill > cap {
            return Err(CostError::Invalid(format!(
                "--envelopes-per-message {} exceeds what a message holds: {} envelopes of {} bytes \
                 (--group-commit-max-votes {}, --group-commit-max-message-bytes {})",
                num(fill),
                num(cap),
                num(inputs.avg_envelope_bytes),
                inputs.group_commit_max_votes,
                num(inputs.group_commit_max_message_bytes)
            )));
        }
    }
    if let Some(voters) = inputs.voters {
        let average = voters as f64 * inputs.ballots_per_voter / (inputs.duration_hours * 3600.0);
        if average > inputs.peak_votes_per_sec {
            return Err(CostError::Invalid(format!(
                "--voters {voters} x --ballots-per-voter {} in --duration-hours {} is {} votes/s on \
                 average, more than --peak-votes-per-sec {}",
                num(inputs.ballots_per_voter),
                num(inputs.duration_hours),
                num(average),
                num(inputs.peak_votes_per_sec)
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(config: &CostConfig) -> String {
        validate(config).unwrap_err().to_string()
    }

    #[test]
    fn validation_names_the_flag() {
        let mut config = CostConfig::default();
        config.inputs.regions = 0;
        assert!(refused(&config).contains("--regions"));
        let mut config = CostConfig::default();
        config.inputs.peak_votes_per_sec = f64::NAN;
        assert!(refused(&config).contains("--peak-votes-per-sec"));
        let mut config = CostConfig::default();
        config.inputs.envelopes_per_message = Some(200.0);
        assert!(refused(&config).contains("--envelopes-per-message"));
        let mut config = CostConfig::default();
        config.inputs.voters = Some(20_000_000_000);
        assert!(refused(&config).contains("--voters"));
    }

    #[test]
    fn flags_that_exclude_each_other_are_refused() {
        let set = |names: &[&str]| names.iter().map(|n| (*n).to_owned()).collect();
        let inputs = CostInputs::default();
        let both = CostConfig::new(inputs.clone(), set(&["voters", "average_to_peak"]));
        assert!(matches!(both, Err(CostError::Flags(m)) if m.contains("--average-to-peak")));
        let alone = CostConfig::new(inputs.clone(), set(&["ballots_per_voter"]));
        assert!(matches!(alone, Err(CostError::Flags(m)) if m.contains("needs --voters")));
        assert!(CostConfig::new(inputs, set(&["voters", "ballots_per_voter"])).is_ok());
    }

    #[test]
    fn every_default_passes_its_check() {
        let config = CostConfig::default();
        validate(&config).unwrap();
        let fields = config.inputs.fields();
        assert_eq!(fields.len(), 36);
        assert_eq!(fields[0].name, "peak_votes_per_sec");
        assert_eq!(fields[3].text, "not set");
    }

    #[test]
    fn price_file_keys_are_named_as_set_there() {
        let config = CostConfig::default()
            .with_price_file("p.toml", "usd_per_gb_month_storage = -1")
            .unwrap();
        let message = refused(&config);
        assert!(
            message.starts_with("price file p.toml: usd_per_gb_month_storage"),
            "{message}"
        );
        let error = CostConfig::default()
            .with_price_file("p.toml", "[x]")
            .unwrap_err();
        assert!(matches!(error, CostError::PriceFile { .. }));
        assert!(error.to_string().starts_with("price file p.toml: line 1"));
    }
}

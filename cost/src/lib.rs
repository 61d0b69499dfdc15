//! The cost model behind `edgevote cost`: what an election costs on AWS (and Cloudflare
//! Workers), per region and per million votes, for the group-commit design and for the naive
//! one-message-per-vote design.
//!
//! The model is a set of pure functions over a [`CostConfig`]: [`CostInputs`] (the workload,
//! the figures measured by the benchmarks, the sizing rules, each with the source of its
//! default) and [`Prices`] (on-demand list prices, or a price file's). [`estimate`] turns a
//! configuration into a [`CostReport`]; [`render_text`] prints it for people and
//! [`render_json`] for machines. The crate does no I/O: the caller reads the price file and
//! prints the report.
//!
//! - [`inputs`]: the inputs with their defaults, units, checks and sources (one table,
//!   [`cost_inputs!`]), the prices and the price file, and [`validate`].
//! - [`model`]: the derived quantities, the priced lines of each design, the assumptions list.
//! - [`render`]: the text and JSON reports.
//!
//! What each vote costs, by component:
//! - **SQS** (standard queue): one `SendMessageBatch` per message (the edge host sends each group
//!   commit as a batch of one entry; Spin sends one `SendMessage` per vote, and so does a
//!   Worker isolate without concurrent votes: the naive design's bound for Workers), one
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

#![deny(missing_docs)]

mod error;
pub mod inputs;
pub mod model;
pub mod render;
mod text;

pub use error::{CostError, PriceFileError};
pub use inputs::{
    Check, CostConfig, CostInputs, InputField, NaiveEdge, PriceFile, Prices, SQS_MAX_RECEIVE,
    above, between, parse_price_file, validate,
};
pub use model::{
    Assumption, CostLine, CostReport, Derived, Design, DesignCost, Group, NOT_MODELLED, PerPart,
    Ratios, SqsPerVote, Subtotals, assumptions, derive, design_cost, estimate, sqs_per_vote,
    wcu_per_vote,
};
pub use render::{render_json, render_text};

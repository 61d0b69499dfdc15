//! Integration tests of edgevote-aws against a moto server (started by the tests; a missing
//! moto is a failure: run `scripts/bootstrap.sh python`).
#![allow(clippy::unwrap_used)]

mod config;
mod dynamo;
mod global;
mod sqs;

use std::sync::Arc;

use edgevote_aws::moto::MotoServer;

/// The moto server shared by the tests running at the moment.
fn moto() -> Arc<MotoServer> {
    MotoServer::shared().unwrap_or_else(|e| panic!("{e}"))
}

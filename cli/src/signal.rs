//! Ctrl-C handling that is armed at once. `tokio::signal::ctrl_c()` only installs its handler
//! when first polled, so a SIGINT arriving between "listening" and that first poll would kill
//! the process instead of stopping it cleanly.

use std::future::Future;

use anyhow::Context;

/// Installs the SIGINT handler now; the returned future resolves on the next Ctrl-C.
pub fn interrupt() -> anyhow::Result<impl Future<Output = ()>> {
    let mut signal = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("installing the Ctrl-C handler")?;
    Ok(async move {
        signal.recv().await;
    })
}

//! Stop-signal handling that is armed at once. `tokio::signal::ctrl_c()` only installs its
//! handler when first polled, so a signal arriving between "listening" and that first poll
//! would kill the process instead of stopping it cleanly. SIGINT (Ctrl-C) and SIGTERM (what
//! systemd, ECS and Kubernetes send) both stop cleanly.

use std::future::Future;

use anyhow::Context;
use tokio::signal::unix::{SignalKind, signal};

/// Installs the SIGINT and SIGTERM handlers now; the returned future resolves on the next one.
pub fn interrupt() -> anyhow::Result<impl Future<Output = ()>> {
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    })
}

//! The wall clock of native processes. `shared` and `edge/core` read no clock (callers pass
//! time in); the native edge host, the collector and the tools take it from here.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Current unix time in milliseconds (0 for a clock set before 1970).
pub fn now_ms() -> u64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

/// Current unix time in whole seconds.
pub fn now_secs() -> u64 {
    now_ms() / 1000
}

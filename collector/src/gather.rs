//! Spacing of one collector's receives while traffic is light, so that messages gather into
//! fuller batches.
//!
//! Every message a receive takes costs the same fixed work whether the receive holds one
//! message or ten: a queue commit to take them, a store commit, a live-log append and a queue
//! commit to delete them. With several receive loops each taking whatever is there the moment
//! it arrives, light traffic comes out as one message per receive. The gate spaces the receives
//! of all loops at least [`ProcessingConfig::receive_gather_ms`] apart while they come back
//! partly filled; once a receive comes back full there is a backlog, and the next receive may
//! start at once.
//!
//! What it costs: a vote waits up to the gather interval longer before it is stored. It is
//! never later acknowledged: the edge acknowledges once the queue holds the vote.
//!
//! [`ProcessingConfig::receive_gather_ms`]: crate::config::ProcessingConfig::receive_gather_ms

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// The shared schedule of one collector's receives.
#[derive(Debug)]
pub struct ReceiveGate {
    /// The earliest start of the next receive.
    next_at: Mutex<Instant>,
    gather: Duration,
}

impl ReceiveGate {
    /// A gate that spaces partly filled receives `gather` apart (zero: no spacing).
    pub fn new(gather: Duration) -> Self {
        ReceiveGate {
            next_at: Mutex::new(Instant::now()),
            gather,
        }
    }

    /// Reserves the next start time and returns it: the later of now and the previous
    /// reservation plus the gather interval. Loops that reserve one after the other get starts
    /// one interval apart.
    pub fn reserve(&self) -> Instant {
        let mut next_at = self.lock();
        let start = (*next_at).max(Instant::now());
        *next_at = start + self.gather;
        start
    }

    /// Waits for this loop's turn (see [`ReceiveGate::reserve`]).
    pub async fn turn(&self) {
        if self.gather.is_zero() {
            return;
        }
        tokio::time::sleep_until(self.reserve()).await;
    }

    /// A receive came back with `taken` of the `max` messages it asked for. A full one means a
    /// backlog: the next receive may start at once (later reservations keep their times).
    pub fn received(&self, taken: usize, max: usize) {
        if taken >= max {
            *self.lock() = Instant::now();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Instant> {
        // The guarded value is a plain time: a panic elsewhere cannot leave it half-written.
        self.next_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GATHER: Duration = Duration::from_millis(20);

    #[tokio::test(start_paused = true)]
    async fn partly_filled_receives_start_one_interval_apart() {
        let gate = ReceiveGate::new(GATHER);
        let t0 = Instant::now();
        let starts: Vec<_> = (0..4).map(|_| gate.reserve() - t0).collect();
        assert_eq!(
            starts,
            [0, 20, 40, 60].map(Duration::from_millis).to_vec(),
            "four loops reserving at once get starts one interval apart"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_receive_lets_the_next_one_start_at_once() {
        let gate = ReceiveGate::new(GATHER);
        let t0 = Instant::now();
        gate.reserve();
        gate.received(3, 10);
        assert_eq!(
            gate.reserve() - t0,
            GATHER,
            "a partial receive keeps the spacing"
        );
        gate.received(10, 10);
        assert_eq!(
            gate.reserve(),
            Instant::now(),
            "a full receive opens the gate"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_late_loop_starts_now_not_in_the_past() {
        let gate = ReceiveGate::new(GATHER);
        gate.reserve();
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(gate.reserve(), Instant::now());
    }

    #[tokio::test(start_paused = true)]
    async fn no_gather_interval_never_waits() {
        let gate = ReceiveGate::new(Duration::ZERO);
        let t0 = Instant::now();
        for _ in 0..5 {
            gate.turn().await;
        }
        assert_eq!(Instant::now(), t0);
    }
}

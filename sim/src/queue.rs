//! A regional queue with SQS semantics in memory, on the virtual clock, with faults: the queue
//! refusing sends (partition between edge and queue), a message handed to two consumers at once
//! (SQS's at-least-once delivery), deletes that do not happen, and delivery in random order.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use edgevote_queue::{DeadLetter, Queue, QueueError, QueueStats, Received};

use crate::rng::{Clock, Rng};

/// Faults the world switches on and off.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueFaults {
    /// Every send fails (the edge cannot reach the queue).
    pub send_down: bool,
    /// Chance, per mille, that a received message stays visible, so another receive gets it too.
    pub duplicate_per_mille: u32,
    /// Chance, per mille, that a delete call fails without deleting.
    pub delete_lost_per_mille: u32,
}

/// What happened in the queue, for the run's figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueCounters {
    /// Messages accepted.
    pub sent: u64,
    /// Deliveries (a message delivered twice counts twice).
    pub deliveries: u64,
    /// Deliveries of a message that was already delivered before.
    pub redeliveries: u64,
    /// Deliveries that left the message visible (duplicate delivery fault).
    pub duplicated: u64,
    /// Deletes that failed by fault.
    pub deletes_lost: u64,
}

#[derive(Debug)]
struct Message {
    body: String,
    sent_at_ms: u64,
    visible_at_ms: u64,
    receive_count: u32,
    handle: String,
}

#[derive(Debug)]
struct State {
    next_id: u64,
    messages: BTreeMap<u64, Message>,
    dead: Vec<DeadLetter>,
    faults: QueueFaults,
    counters: QueueCounters,
    rng: Rng,
}

/// The simulated queue.
#[derive(Debug)]
pub struct SimQueue {
    clock: Clock,
    state: Mutex<State>,
}

/// Most messages a simulated queue holds; a run that reaches it is a bug in the world.
const MAX_MESSAGES: usize = 100_000;

impl SimQueue {
    /// An empty queue drawing its random choices from `rng`.
    pub fn new(clock: Clock, rng: Rng) -> Self {
        SimQueue {
            clock,
            state: Mutex::new(State {
                next_id: 0,
                messages: BTreeMap::new(),
                dead: Vec::new(),
                faults: QueueFaults::default(),
                counters: QueueCounters::default(),
                rng,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces the active faults.
    pub fn set_faults(&self, faults: QueueFaults) {
        self.state().faults = faults;
    }

    /// The active faults.
    pub fn faults(&self) -> QueueFaults {
        self.state().faults
    }

    /// The figures so far.
    pub fn counters(&self) -> QueueCounters {
        self.state().counters
    }

    /// Puts a message in as an attacker with write access to the queue would.
    pub fn inject(&self, body: String) -> String {
        let now = self.clock.now_ms();
        let mut state = self.state();
        let id = state.next_id;
        state.next_id += 1;
        state.messages.insert(id, Message::new(body, now));
        id.to_string()
    }

    /// Every dead letter so far.
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.state().dead.clone()
    }
}

impl Message {
    fn new(body: String, now: u64) -> Self {
        Message {
            body,
            sent_at_ms: now,
            visible_at_ms: now,
            receive_count: 0,
            handle: String::new(),
        }
    }
}

fn message_id(handle: &str) -> Option<u64> {
    handle.split_once('.')?.0.parse().ok()
}

#[async_trait]
impl Queue for SimQueue {
    async fn send_batch(&self, bodies: Vec<String>) -> Result<Vec<String>, QueueError> {
        edgevote_queue::check_send(&bodies)?;
        let now = self.clock.now_ms();
        let mut state = self.state();
        if state.faults.send_down {
            return Err(QueueError::backend(
                "send",
                "simulated partition: queue unreachable",
            ));
        }
        if state.messages.len() + bodies.len() > MAX_MESSAGES {
            return Err(QueueError::backend("send", "simulated queue full"));
        }
        let mut ids = Vec::with_capacity(bodies.len());
        for body in bodies {
            let id = state.next_id;
            state.next_id += 1;
            state.messages.insert(id, Message::new(body, now));
            state.counters.sent += 1;
            ids.push(id.to_string());
        }
        Ok(ids)
    }

    async fn receive(
        &self,
        max: usize,
        wait: Duration,
        visibility: Duration,
    ) -> Result<Vec<Received>, QueueError> {
        edgevote_queue::check_receive(max, wait, visibility)?;
        let now = self.clock.now_ms();
        let state = &mut *self.state();
        let mut visible: Vec<u64> = state
            .messages
            .iter()
            .filter(|(_, m)| m.visible_at_ms <= now)
            .map(|(id, _)| *id)
            .collect();
        let mut out = Vec::new();
        // Random picks, not FIFO: SQS standard queues reorder.
        while out.len() < max && !visible.is_empty() {
            let id = visible.swap_remove(state.rng.index(visible.len()));
            let duplicate = state.rng.chance(state.faults.duplicate_per_mille);
            let message = state.messages.get_mut(&id).expect("listed above");
            message.receive_count += 1;
            message.handle = format!("{id}.{}", message.receive_count);
            if !duplicate {
                message.visible_at_ms = now + edgevote_queue::millis(visibility);
            }
            let counters = &mut state.counters;
            counters.deliveries += 1;
            counters.redeliveries += u64::from(message.receive_count > 1);
            counters.duplicated += u64::from(duplicate);
            out.push(Received {
                id: id.to_string(),
                handle: message.handle.clone(),
                body: message.body.clone(),
                receive_count: message.receive_count,
                sent_at_ms: message.sent_at_ms,
            });
        }
        Ok(out)
    }

    async fn delete_batch(&self, handles: Vec<String>) -> Result<(), QueueError> {
        let state = &mut *self.state();
        if state.rng.chance(state.faults.delete_lost_per_mille) {
            state.counters.deletes_lost += 1;
            return Err(QueueError::backend("delete", "simulated lost delete"));
        }
        for handle in handles {
            let Some(id) = message_id(&handle) else {
                continue;
            };
            // A stale handle (the message was received again since) deletes nothing.
            if state.messages.get(&id).is_some_and(|m| m.handle == handle) {
                state.messages.remove(&id);
            }
        }
        Ok(())
    }

    async fn change_visibility(
        &self,
        handles: Vec<String>,
        visibility: Duration,
    ) -> Result<(), QueueError> {
        // The real backends refuse a visibility SQS would refuse; so does the simulated one.
        edgevote_queue::check_visibility("change_visibility", visibility)?;
        let now = self.clock.now_ms();
        let state = &mut *self.state();
        for handle in handles {
            if let Some(m) = message_id(&handle).and_then(|id| state.messages.get_mut(&id))
                && m.handle == handle
            {
                m.visible_at_ms = now + edgevote_queue::millis(visibility);
            }
        }
        Ok(())
    }

    async fn dead_letter(&self, message: &Received, reason: &str) -> Result<(), QueueError> {
        let state = &mut *self.state();
        let Some(id) = message_id(&message.handle) else {
            return Ok(());
        };
        // Only the current holder moves it (a duplicate delivery's second holder finds it gone).
        if state
            .messages
            .get(&id)
            .is_some_and(|m| m.handle == message.handle)
            && let Some(m) = state.messages.remove(&id)
        {
            state.dead.push(DeadLetter {
                id: id.to_string(),
                reason: edgevote_queue::bounded_reason(reason).to_owned(),
                body: m.body,
                receive_count: m.receive_count,
            });
        }
        Ok(())
    }

    async fn peek_dead_letters(&self, max: usize) -> Result<Vec<DeadLetter>, QueueError> {
        Ok(self.state().dead.iter().take(max).cloned().collect())
    }

    async fn stats(&self) -> Result<QueueStats, QueueError> {
        let now = self.clock.now_ms();
        let state = self.state();
        let visible = state
            .messages
            .values()
            .filter(|m| m.visible_at_ms <= now)
            .count() as u64;
        Ok(QueueStats {
            visible,
            in_flight: state.messages.len() as u64 - visible,
            dead_letters: state.dead.len() as u64,
            oldest_age_ms: state
                .messages
                .values()
                .map(|m| now.saturating_sub(m.sent_at_ms))
                .max()
                .unwrap_or(0),
            commits: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use edgevote_queue::{MAX_VISIBILITY, Queue, QueueError};

    use super::SimQueue;
    use crate::rng::{Clock, Rng};

    /// The simulated queue refuses a visibility the real backends (SQS, embedded) refuse,
    /// through the trait crate's one check; it used to accept any.
    #[tokio::test]
    async fn a_visibility_beyond_the_sqs_bound_is_refused_as_by_every_backend() {
        let queue = SimQueue::new(Clock::starting_at(1_000), Rng::new(1));
        let too_long = MAX_VISIBILITY + Duration::from_secs(1);
        let refused = queue
            .change_visibility(vec!["0.1".into()], too_long)
            .await
            .expect_err("over the SQS bound");
        assert!(matches!(
            refused,
            QueueError::Invalid {
                stage: "change_visibility",
                ..
            }
        ));
        queue
            .change_visibility(vec!["0.1".into()], MAX_VISIBILITY)
            .await
            .expect("at the bound");
    }
}
